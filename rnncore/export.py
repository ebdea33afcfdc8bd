"""Models to PyTorch and back: a safetensors file with torch.nn.RNN/LSTM/GRU's names.

Tensors (in the model's dtype), for every layer k:
    rnn.weight_ih_l{k}   Wxh(_l{k})  (G·H, V) for k = 0, (G·H, H) above
    rnn.weight_hh_l{k}   Whh(_l{k})  (G·H, H)
    rnn.bias_ih_l{k}     bh(_l{k})   (G·H,)
    rnn.bias_hh_l{k}     (G·H,) zero, except gru's n block, which is bhn(_l{k})
    decoder.weight       Why (V, H)
    decoder.bias         by (V,)
so `torch.nn.LSTM/GRU/RNN(V, H, num_layers, batch_first=True)` loads the rnn.* tensors
with strict=True, `torch.nn.Linear(H, V)` the decoder.* ones, and with one-hot inputs
they predict what rnncore predicts.  Metadata (all strings, as safetensors requires):
format, format_version, cell, torch_module, hidden_size, num_layers, dropout, dropout_mode,
weight_drop (the training regularisers, kept so a model read back trains on as it did;
files without the last two read as "step" and 0), n_vocab and vocab (the characters' code
points as a JSON list).

Reading back folds PyTorch's two biases into rnncore's one where the equations allow
(rnn, lstm, and gru's r and z blocks: they are only ever added), so a model fine-tuned in
PyTorch, whose bias_hh is no longer zero, returns with the same predictions.
"""
import json
import os

import numpy as np

from .errors import CheckpointError, SafetensorsMissing
from .files import require_file, write_atomically
from .layout import CELLS, layer_suffix
from .model import FILE_FORMATS, CharRNN, FileFormat
from .vocab import Vocab

FORMAT = "rnncore-safetensors"
VERSION = 1
INSTALL = "pip install 'rnncore[export]'"
TORCH_MODULES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _safetensors():
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise SafetensorsMissing("reading and writing .safetensors files needs the "
                                 f"safetensors package: {INSTALL}") from None
    return safetensors


def torch_tensors(model):
    """{PyTorch name: array} of `model`, as the module docstring lays out."""
    H = model.hidden_size
    tensors = {}
    for k in range(model.num_layers):
        s = layer_suffix(k)
        bias_hh = np.zeros_like(model.params["bh" + s])
        if model.cell == "gru":
            bias_hh[2 * H:] = model.params["bhn" + s]
        tensors[f"rnn.weight_ih_l{k}"] = model.params["Wxh" + s]
        tensors[f"rnn.weight_hh_l{k}"] = model.params["Whh" + s]
        tensors[f"rnn.bias_ih_l{k}"] = model.params["bh" + s]
        tensors[f"rnn.bias_hh_l{k}"] = bias_hh
    tensors["decoder.weight"] = model.params["Why"]
    tensors["decoder.bias"] = model.params["by"]
    return {name: np.ascontiguousarray(a) for name, a in tensors.items()}


def metadata(model):
    return {"format": FORMAT, "format_version": str(VERSION), "cell": model.cell,
            "torch_module": TORCH_MODULES[model.cell], "hidden_size": str(model.hidden_size),
            "num_layers": str(model.num_layers), "dropout": repr(model.dropout),
            "dropout_mode": model.dropout_mode, "weight_drop": repr(model.weight_drop),
            "n_vocab": str(model.n_vocab),
            "vocab": json.dumps([int(c) for c in model.vocab.codepoints])}


def save_safetensors(model, path):
    """Write `model` to `path` as a safetensors file, atomically: `path` holds the old
    file or the whole new one, never part of it."""
    st = _safetensors()
    for name in model.shapes:
        if not np.isfinite(model.params[name]).all():
            raise CheckpointError(f"refusing to export: parameter {name} holds nan or inf")
    data = st.numpy.save(torch_tensors(model), metadata=metadata(model))
    write_atomically(os.fspath(path), lambda f: f.write(data), what="the exported model")


def load_safetensors(path):
    """The CharRNN in a safetensors file written by save_safetensors (or by PyTorch with
    the same names and metadata).  Raises CheckpointError naming what is wrong."""
    st = _safetensors()
    path = os.fspath(path)
    require_file(path, "model file", "model")
    try:
        with st.safe_open(path, framework="np") as f:
            meta = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as e:  # the parser's own error types vary between versions
        raise CheckpointError(f"{path} is not a readable safetensors file "
                              f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                              ) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rnncore export (its metadata has no "
                              f"format {FORMAT!r})")
    if meta.get("format_version") != str(VERSION):
        raise CheckpointError(f"{path} has export format version "
                              f"{meta.get('format_version')}; this rnncore reads version "
                              f"{VERSION}")
    try:
        cell = meta["cell"]
        if cell not in CELLS:
            raise ValueError(f"cell {cell!r}")
        vocab = Vocab.from_codepoints(np.array(json.loads(meta["vocab"]), np.int64))
        hidden_size, num_layers = int(meta["hidden_size"]), int(meta["num_layers"])
        dropout = float(meta["dropout"])
        if "decoder.weight" not in tensors:
            raise ValueError("tensor decoder.weight is missing")
        model = CharRNN(vocab, hidden_size, dtype=tensors["decoder.weight"].dtype,
                        cell=cell, num_layers=num_layers, dropout=dropout,
                        dropout_mode=meta.get("dropout_mode", "step"),
                        weight_drop=float(meta.get("weight_drop", "0")))
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: not an rnncore model ({e})") from None
    expected = torch_tensors(model)
    missing = [name for name in expected if name not in tensors]
    extra = [name for name in tensors if name not in expected]
    if missing or extra:
        raise CheckpointError(f"{path}: tensors do not match a {num_layers}-layer {cell} "
                              f"model (missing: {', '.join(missing) or 'none'}; "
                              f"unexpected: {', '.join(extra) or 'none'})")
    for name, want in expected.items():
        a = tensors[name]
        if a.shape != want.shape or a.dtype != want.dtype:
            raise CheckpointError(f"{path}: tensor {name} has shape {a.shape} and dtype "
                                  f"{a.dtype}, expected {want.shape} {want.dtype}")
        if not np.isfinite(a).all():
            raise CheckpointError(f"{path}: tensor {name} holds nan or inf")
    H = hidden_size
    for k in range(num_layers):
        s = layer_suffix(k)
        bias_ih, bias_hh = tensors[f"rnn.bias_ih_l{k}"], tensors[f"rnn.bias_hh_l{k}"]
        model.params["Wxh" + s][...] = tensors[f"rnn.weight_ih_l{k}"]
        model.params["Whh" + s][...] = tensors[f"rnn.weight_hh_l{k}"]
        # the biases are only ever added, except gru's n block of bias_hh, which sits
        # inside r ⊙ (Whh_n·h + bhn); zeros are not added, so a round trip is bit-exact
        model.params["bh" + s][...] = bias_ih
        folded = 2 * H if cell == "gru" else len(bias_hh)
        if bias_hh[:folded].any():
            model.params["bh" + s][:folded] += bias_hh[:folded]
        if cell == "gru":
            model.params["bhn" + s][...] = bias_hh[2 * H:]
    model.params["Why"][...] = tensors["decoder.weight"]
    model.params["by"][...] = tensors["decoder.bias"]
    return model


FILE_FORMATS["safetensors"] = FileFormat(lambda path, model: save_safetensors(model, path),
                                         load_safetensors)
