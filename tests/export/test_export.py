"""Export to PyTorch's names in a safetensors file and back: exact round trip, PyTorch's
modules reproduce rnncore's loss (skipped without torch), bad files named, and the CLI."""
import json
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnncore import export, layout

from support import assert_clean_error, gated_model, require, run, saved_small_model

safetensors = pytest.importorskip("safetensors")


def saved(model, tmp_path, name="m.safetensors"):
    path = tmp_path / name
    model.to_safetensors(path)
    return path


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_is_exact(tmp_path, cell, L, dtype):
    model = gated_model(cell, L, 7, 5, dtype=dtype, seed=L, dropout=0.25)
    back = rnncore.CharRNN.from_safetensors(saved(model, tmp_path))
    assert back.config == model.config and back.vocab == model.vocab
    for name, p in model.params.items():
        assert back.params[name].dtype == p.dtype
        assert np.array_equal(back.params[name], p), name
        assert back.params[name].tobytes() == p.tobytes(), name


def test_names_dtype_and_metadata(tmp_path):
    vocab = rnncore.Vocab.from_text("héllo wörld")
    model = rnncore.CharRNN(vocab, 6, dtype="float32", cell="gru", num_layers=2,
                            dropout=0.1, seed=0)
    with safetensors.safe_open(saved(model, tmp_path), framework="np") as f:
        meta = f.metadata()
        shapes = {name: f.get_tensor(name).shape for name in f.keys()}
        dtypes = {f.get_tensor(name).dtype for name in f.keys()}
    V = len(vocab)
    assert shapes == {
        "rnn.weight_ih_l0": (18, V), "rnn.weight_hh_l0": (18, 6), "rnn.bias_ih_l0": (18,),
        "rnn.bias_hh_l0": (18,), "rnn.weight_ih_l1": (18, 6), "rnn.weight_hh_l1": (18, 6),
        "rnn.bias_ih_l1": (18,), "rnn.bias_hh_l1": (18,),
        "decoder.weight": (V, 6), "decoder.bias": (V,)}
    assert dtypes == {np.dtype(np.float32)}
    assert meta["format"] == "rnncore-safetensors" and meta["format_version"] == "1"
    assert (meta["cell"], meta["torch_module"], meta["hidden_size"], meta["num_layers"],
            float(meta["dropout"])) == ("gru", "GRU", "6", "2", 0.1)
    assert json.loads(meta["vocab"]) == [ord(c) for c in vocab.chars]


@pytest.fixture
def torch_module():
    return require("torch")


def torch_loss(torch, tensors_path, cell, V, inputs, targets, dtype, state=None):
    """Mean cross-entropy of nn.RNN/LSTM/GRU + nn.Linear loaded from the file with
    strict=True, on one-hot inputs (B, T); and the last state in rnncore's layout."""
    from safetensors.torch import load_file
    tensors = load_file(str(tensors_path))
    with safetensors.safe_open(str(tensors_path), framework="np") as f:
        meta = f.metadata()
    H, L = int(meta["hidden_size"]), int(meta["num_layers"])
    # (PyTorch drops out between layers only, and warns of it at one layer)
    rnn = getattr(torch.nn, meta["torch_module"])(
        V, H, L, batch_first=True, dropout=float(meta["dropout"]) if L > 1 else 0.0)
    decoder = torch.nn.Linear(H, V)
    if dtype == "float64":
        rnn, decoder = rnn.double(), decoder.double()
    rnn.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("rnn.")},
                        strict=True)
    decoder.load_state_dict({k[8:]: v for k, v in tensors.items()
                             if k.startswith("decoder.")}, strict=True)
    rnn.eval()
    torch_dtype = getattr(torch, dtype)
    x = torch.nn.functional.one_hot(torch.as_tensor(inputs), V).to(torch_dtype)
    with torch.no_grad():
        if state is not None:
            state = torch.as_tensor(state)
            state = (state[:L], state[L:]) if cell == "lstm" else state
        out, last = rnn(x, state)
        logits = decoder(out)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V),
                                                 torch.as_tensor(targets).reshape(-1))
    last = torch.cat(last) if cell == "lstm" else last
    return float(loss), last.numpy()


@pytest.mark.parametrize("cell", layout.CELLS)
@pytest.mark.parametrize("L", [1, 2])
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-6), ("float64", 1e-12)])
def test_pytorch_predicts_what_rnncore_predicts(tmp_path, torch_module, cell, L, dtype, tol):
    torch = torch_module
    V, H, B, T = 9, 7, 3, 12
    model = gated_model(cell, L, V, H, dtype=dtype, seed=L, scale=0.6, dropout=0.3)
    path = saved(model, tmp_path)
    rng = np.random.default_rng(0)
    inputs, targets = rng.integers(0, V, (2, B, T)), rng.integers(0, V, (2, B, T))
    loss, state = model.loss(inputs[0], targets[0])
    t_loss, t_state = torch_loss(torch, path, cell, V, inputs[0], targets[0], dtype)
    assert t_loss == pytest.approx(loss, rel=tol, abs=0)
    # the state carried into the next window is PyTorch's h_n (and c_n)
    full = model.state_shape(B)
    loss2, _ = model.loss(inputs[1], targets[1], state)
    t_loss2, _ = torch_loss(torch, path, cell, V, inputs[1], targets[1], dtype,
                            t_state.reshape((-1, B, H)))
    np.testing.assert_allclose(t_state.reshape(full), state, rtol=0,
                               atol=10 * tol)
    assert t_loss2 == pytest.approx(loss2, rel=tol, abs=0)


@pytest.mark.parametrize("cell", layout.CELLS)
def test_a_model_changed_in_pytorch_comes_back(tmp_path, torch_module, cell):
    # fine-tuning in PyTorch makes bias_hh nonzero; rnncore folds it in
    torch = torch_module
    from safetensors.torch import load_file, save_file
    V, H, L = 6, 5, 2
    model = gated_model(cell, L, V, H, seed=3)
    path = saved(model, tmp_path)
    tensors = load_file(str(path))
    with safetensors.safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    gen = torch.Generator().manual_seed(0)
    for name in tensors:
        tensors[name] = tensors[name] + 0.3 * torch.randn(tensors[name].shape, generator=gen,
                                                          dtype=tensors[name].dtype)
    tuned = tmp_path / "tuned.safetensors"
    save_file(tensors, str(tuned), metadata=meta)
    back = rnncore.CharRNN.from_safetensors(tuned)
    rng = np.random.default_rng(1)
    inputs, targets = rng.integers(0, V, (2, 10)), rng.integers(0, V, (2, 10))
    loss, _ = back.loss(inputs, targets)
    t_loss, _ = torch_loss(torch, tuned, cell, V, inputs, targets, "float64")
    assert t_loss == pytest.approx(loss, rel=1e-12, abs=0)
    assert abs(loss - model.loss(inputs, targets)[0]) > 1e-3


def write_raw(path, tensors, meta):
    from safetensors.numpy import save_file
    save_file(tensors, str(path), metadata=meta)


def test_bad_files_are_named(tmp_path):
    model = gated_model("lstm", 2, 4, 3)
    good = saved(model, tmp_path)
    tensors, meta = export.torch_tensors(model), export.metadata(model)
    cases = []
    (tmp_path / "text.safetensors").write_text("not a model")
    cases.append(("text.safetensors", "is not a readable safetensors file"))
    write_raw(tmp_path / "nometa.safetensors", tensors, None)
    cases.append(("nometa.safetensors", "is not an rnncore export"))
    write_raw(tmp_path / "v9.safetensors", tensors, {**meta, "format_version": "9"})
    cases.append(("v9.safetensors", "export format version 9"))
    write_raw(tmp_path / "missing.safetensors",
              {k: v for k, v in tensors.items() if k != "rnn.bias_hh_l1"}, meta)
    cases.append(("missing.safetensors", "missing: rnn.bias_hh_l1"))
    write_raw(tmp_path / "shape.safetensors",
              {**tensors, "decoder.bias": np.zeros(5, tensors["decoder.bias"].dtype)}, meta)
    cases.append(("shape.safetensors", r"tensor decoder.bias has shape \(5,\)"))
    write_raw(tmp_path / "nan.safetensors",
              {**tensors, "rnn.weight_hh_l0": tensors["rnn.weight_hh_l0"] * np.nan}, meta)
    cases.append(("nan.safetensors", "rnn.weight_hh_l0 holds nan or inf"))
    write_raw(tmp_path / "cell.safetensors", tensors, {**meta, "cell": "transformer"})
    cases.append(("cell.safetensors", "not an rnncore model"))
    cases.append(("absent.safetensors", "model file not found"))
    for name, match in cases:
        with pytest.raises(rnncore.checkpoint.CheckpointError, match=match):
            rnncore.CharRNN.from_safetensors(tmp_path / name)
    assert rnncore.CharRNN.from_safetensors(good).config == model.config


@pytest.mark.slow
def test_cli_export_then_sample_and_eval(tmp_path):
    ckpt = saved_small_model(tmp_path / "m.npz", "gru")
    model = rnncore.CharRNN.load(ckpt)
    out = tmp_path / "m.safetensors"
    proc = run("export", ckpt, out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "nn.GRU(" in proc.stdout and out.exists()
    back = rnncore.CharRNN.from_safetensors(out)
    assert all(np.array_equal(back.params[k], v) for k, v in model.params.items())
    a = run("sample", ckpt, "--prime", "the", "--length", 40, "--seed", 1, cwd=tmp_path)
    b = run("sample", out, "--prime", "the", "--length", 40, "--seed", 1, cwd=tmp_path)
    assert a.returncode == 0 and a.stdout == b.stdout
    (tmp_path / "t.txt").write_text("the mat sat on the cat.")
    a = run("eval", ckpt, tmp_path / "t.txt", "--json", cwd=tmp_path)
    b = run("eval", out, tmp_path / "t.txt", "--json", cwd=tmp_path)
    assert b.returncode == 0 and json.loads(a.stdout) == json.loads(b.stdout)
    # an existing file is kept unless --force
    before = out.read_bytes()
    assert_clean_error(run("export", ckpt, out, cwd=tmp_path), "exists: pass --force")
    assert out.read_bytes() == before
    assert run("export", ckpt, out, "--force", cwd=tmp_path).returncode == 0
    assert_clean_error(run("export", ckpt, tmp_path / "m.bin", cwd=tmp_path),
                       "must end in .safetensors")
    assert_clean_error(run("export", tmp_path / "nope.npz", out, "--force", cwd=tmp_path),
                       "checkpoint not found")
    assert_clean_error(run("sample", out, "--latest", cwd=tmp_path),
                       "holds one set of parameters")


def test_the_guides_pytorch_snippet_loads_and_samples(tmp_path, torch_module, monkeypatch,
                                                      capsys):
    """The user guide's "To PyTorch and back" snippet, run as written."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    if not docs.is_dir():
        pytest.skip("no docs/ beside tests/ (a source distribution)")
    guide = (docs / "user-guide.md").read_text(encoding="utf-8")
    after = guide.split("In PyTorch, loading and sampling", 1)[1]
    snippet = after.split("```python\n", 1)[1].split("```", 1)[0]
    text = "Hola mundo, aprendiendo redes recurrentes!"
    model = rnncore.CharRNN(rnncore.Vocab.from_text(text), 8, cell="lstm", num_layers=2,
                            dtype="float32", seed=0)
    model.to_safetensors(tmp_path / "hola.safetensors")
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "the user guide's snippet", "exec"), {})
    printed = capsys.readouterr().out.rstrip("\n")
    assert len(printed) == 21 and set(printed) <= set(text)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["sample", "eval"])
def test_cli_names_a_bad_safetensors_file(tmp_path, command):
    model = gated_model("lstm", 2, 4, 3)
    tensors = export.torch_tensors(model)
    del tensors["rnn.bias_hh_l1"]
    write_raw(tmp_path / "bad.safetensors", tensors, export.metadata(model))
    (tmp_path / "junk.safetensors").write_text("not a model")
    (tmp_path / "t.txt").write_text("!#$%")
    extra = [tmp_path / "t.txt"] if command == "eval" else []
    assert_clean_error(run(command, tmp_path / "bad.safetensors", *extra, cwd=tmp_path),
                       "tensors do not match a 2-layer lstm model (missing: rnn.bias_hh_l1",
                       status=1)
    assert_clean_error(run(command, tmp_path / "junk.safetensors", *extra, cwd=tmp_path),
                       "is not a readable safetensors file", status=1)


def test_a_failed_export_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch,
                                                                     capsys):
    import errno
    from rnncore import checkpoint, cli
    model = gated_model("gru", 1, 5, 4, seed=0)
    ckpt = tmp_path / "m.npz"
    model.save(ckpt)
    out = saved(model, tmp_path, "old.safetensors")
    before = out.read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint.os, "fsync", disk_full)
    assert cli.main(["export", str(ckpt), str(out), "--force"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"rnncore: error: could not write the exported model {out} "
                   "(No space left on device)"]
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "old.safetensors"]
