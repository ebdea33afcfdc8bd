"""The model's layout: cells, gate blocks, parameter names and shapes, state rows, dtypes.

Everything that says what a model *is* (not how it computes) lives here, once: the
model, the checkpoint loader, the exporter, generation and the numpy oracle all read it.

Sizes: V vocabulary, H hidden units, B streams, T time steps, L layers, G gate blocks
(1 rnn, 4 lstm, 3 gru).  Parameters (PyTorch's names per layer, the seed's names):
    layer 0:       Wxh (G·H, V)   Whh (G·H, H)   bh (G·H,)   [gru: bhn (H,)]
    layer k >= 1:  Wxh_l{k} (G·H, H)  Whh_l{k} (G·H, H)  bh_l{k} (G·H,)  [gru: bhn_l{k} (H,)]
    decoder:       Why (V, H)   by (V,)
The recurrent state is one array of S·L rows of (B, H) (S = 2 for lstm: every layer's h,
then every layer's c), the leading axis dropped when S·L == 1; the streams are axis -2.

Floor 1: imports nothing from rnncore but its errors.
"""
import os

import numpy as np

from .errors import ConfigError, NotEnoughMemory

CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}

#: the single-layer vanilla model's parameter names, in their order
PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")

#: the float dtypes a model may have, and the kernels' fused-type name for each
DTYPES = ("float32", "float64")
FUSED = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def resolve_dtype(dtype):
    """np.dtype for 'float32'/'float64' (or the numpy types); anything else is an error."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved not in FUSED:
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return resolved


def layer_suffix(k):
    """'' for layer 0, '_l{k}' for deeper layers (PyTorch's numbering)."""
    return "" if k == 0 else f"_l{k}"


def param_shapes(cell, n_vocab, hidden_size, num_layers=1):
    """{name: shape} of every parameter, in the canonical order: the weight matrices
    layer by layer, Why, the biases layer by layer, by.  For the single-layer rnn this is
    exactly PARAM_NAMES."""
    if cell not in CELLS:
        raise ConfigError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    V, H, GH = n_vocab, hidden_size, GATES[cell] * hidden_size
    shapes = {}
    for k in range(num_layers):
        s = layer_suffix(k)
        shapes["Wxh" + s] = (GH, V if k == 0 else H)
        shapes["Whh" + s] = (GH, H)
    shapes["Why"] = (V, H)
    for k in range(num_layers):
        s = layer_suffix(k)
        shapes["bh" + s] = (GH,)
        if cell == "gru":
            shapes["bhn" + s] = (H,)
    shapes["by"] = (V,)
    return shapes


def num_parameters(cell, n_vocab, hidden_size, num_layers=1):
    """How many numbers the parameters of such a model hold."""
    return sum(int(np.prod(s)) for s in
               param_shapes(cell, n_vocab, hidden_size, num_layers).values())


def infer_config(params):
    """(cell, num_layers) of a parameter dict, read from its names and shapes."""
    num_layers = 1
    while f"Whh_l{num_layers}" in params:
        num_layers += 1
    G, H = params["Whh"].shape[0] // params["Whh"].shape[1], params["Whh"].shape[1]
    cell = "gru" if "bhn" in params else {1: "rnn", 4: "lstm"}.get(G)
    if cell is None or GATES[cell] * H != params["Whh"].shape[0]:
        raise ValueError(f"Whh has shape {params['Whh'].shape}: not an rnn, lstm or gru layer")
    return cell, num_layers


def state_rows(cell, num_layers):
    """S·L: how many (B, H) slices the recurrent state holds."""
    return (2 if cell == "lstm" else 1) * num_layers


def state_shape(cell, num_layers, hidden_size, batch_size=None):
    """(S·L, B, H), or (S·L, H) for batch_size None (1-D inputs); the leading axis is
    dropped when S·L == 1.  The streams are axis -2."""
    rows = state_rows(cell, num_layers)
    shape = (hidden_size,) if batch_size is None else (batch_size, hidden_size)
    return shape if rows == 1 else (rows,) + shape


def training_bytes(cell, n_vocab, hidden_size, num_layers, batch_size, seq_length, dtype,
                   optimizer_slots=2):
    """A floor on the memory (bytes) that training such a model needs: the parameters,
    their gradients and optimizer_slots state arrays like them, and the window's
    buffers (every layer's gates, outputs and dropout masks for B·T positions, the
    logits, the stream states) and the kernels' packed copies of the weights (four of
    every layer's G·H² recurrent and input weights, the decoder's twice, layer 0's
    input table).  Used to refuse, in one line, a model that cannot fit before a single
    array of it is allocated."""
    itemsize = np.dtype(dtype).itemsize
    V, H, L, G = n_vocab, hidden_size, num_layers, GATES[cell]
    params = num_parameters(cell, V, H, L)
    window = batch_size * seq_length * (L * (2 * G + 4) * H + 2 * V)
    states = 4 * state_rows(cell, L) * batch_size * H
    packed = 4 * L * G * H * H + V * G * H + 2 * V * H
    return (params * (2 + optimizer_slots) + window + states + packed) * itemsize


def generation_bytes_per_stream(cell, num_layers, hidden_size, dtype):
    """Generation memory of one stream or beam: its state and step scratch (bytes)."""
    rows = state_rows(cell, num_layers)
    return (2 * rows + 2 * GATES[cell] + 1) * hidden_size * np.dtype(dtype).itemsize


def physical_memory():
    """The machine's physical memory in bytes, or None where it cannot be read."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(needed_bytes, what, hint=None):
    """Refuse, with NotEnoughMemory naming `what`, an allocation larger than the
    machine's physical memory (rather than let the system kill the process part way, or
    numpy fail with a traceback): "<what> would need N GB, more than this machine's M GB
    of memory[: hint]"."""
    physical = physical_memory()
    if physical is not None and needed_bytes > physical:
        raise NotEnoughMemory(f"{what} would need {needed_bytes / 1e9:,.1f} GB, more than "
                              f"this machine's {physical / 1e9:,.1f} GB of memory"
                              + (f": {hint}" if hint else ""))
