"""A real checkpoint damaged a few hundred ways (bits flipped, truncated, blocks overwritten,
zip headers and their fields zeroed or changed, a valid zip holding wrong arrays), read by
every reader: the loader, `sample`, `eval` and `train --resume` in-process for every case,
and through the real CLI for a few.  Each either works or ends in one clean error naming
the file; the damaged file is never changed by a failed resume."""
import json
import struct

import numpy as np
import pytest

from rnncore import cli
from rnncore.checkpoint import CheckpointError, load_checkpoint

from support import assert_clean_error, corpus, run

TEXT = "the cat sat on the mat. " * 40
TRAIN_OPTS = ["--hidden-size", "8", "--seq-length", "8", "--batch-size", "2",
              "--eval-every", "3", "--keep-best"]
STEPS = 6


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """(bytes of a real trained checkpoint with optimizer state and best weights, corpus)"""
    tmp = tmp_path_factory.mktemp("fuzz-original")
    text = corpus(tmp, TEXT)
    out = tmp / "model.npz"
    assert cli.main(["train", str(text), "--out", str(out), "--steps", str(STEPS),
                     *TRAIN_OPTS]) == 0
    return out.read_bytes(), text


# ---- the ways to damage it ----------------------------------------------------------------
def _flips(data, rng, n):
    for _ in range(n):
        damaged = bytearray(data)
        for pos in rng.integers(0, len(data), rng.integers(1, 9)):
            damaged[pos] ^= 1 << int(rng.integers(0, 8))
        yield "flip", bytes(damaged)


def _truncations(data, rng, n):
    for cut in [0, 1, 4, 21, 29, 30, 100, len(data) - 22, len(data) - 1]:
        yield f"truncate {cut}", data[:cut]
    for cut in rng.integers(0, len(data), n):
        yield f"truncate {cut}", data[:int(cut)]


def _overwritten_blocks(data, rng, n):
    for i in range(n):
        start = int(rng.integers(0, len(data)))
        size = int(rng.integers(8, 600))
        block = [bytes(size), b"\xff" * size,
                 rng.integers(0, 256, size, dtype=np.uint8).tobytes()][i % 3]
        yield "overwrite", (data[:start] + block + data[start + size:])[:len(data)]


def _header_offsets(data, signature):
    offsets, pos = [], data.find(signature)
    while pos >= 0:
        offsets.append(pos)
        pos = data.find(signature, pos + 1)
    return offsets


def _put(data, offset, fmt, value):
    damaged = bytearray(data)
    struct.pack_into(fmt, damaged, offset, value)
    return bytes(damaged)


def _zip_headers(data, rng):
    """Zeroed headers, and single fields set to values the zip layer chokes on (the
    compression method and the version needed are what made numpy raise
    NotImplementedError)."""
    local = _header_offsets(data, b"PK\x03\x04")
    central = _header_offsets(data, b"PK\x01\x02")
    end = _header_offsets(data, b"PK\x05\x06") + _header_offsets(data, b"PK\x06\x06")
    for offsets, size in ((local, 30), (central, 46), (end, 22)):
        for off in rng.choice(offsets, min(4, len(offsets)), replace=False):
            yield "zeroed header", data[:off] + bytes(size) + data[off + size:]
    # (field offset in a local / central header, struct format, bad values)
    fields = [((4, 6), "<H", [0xFFFF, 63, 99]),               # version needed
              ((8, 10), "<H", [1, 6, 8, 9, 12, 14, 98, 99]),  # compression method
              ((6, 8), "<H", [1, 0x41]),                      # flags: encrypted, ...
              ((14, 16), "<I", [0, 0xDEADBEEF]),              # crc-32
              ((18, 20), "<I", [0, 7, 0xFFFFFFFF]),           # compressed size
              ((22, 24), "<I", [0, 7, 0x7FFFFFFF]),           # uncompressed size
              ((26, 28), "<H", [0, 200, 0xFFFF])]             # file name length
    for (in_local, in_central), fmt, values in fields:
        for value in values:
            yield "local field", _put(data, int(rng.choice(local)) + in_local, fmt, value)
            yield "central field", _put(data, int(rng.choice(central)) + in_central, fmt,
                                        value)
    for value in [0, 1, 0xFFFF]:   # number of entries, in the end record
        yield "entry count", _put(data, end[0] + 10, "<H", value)
    yield "central directory offset", _put(data, end[0] + 16, "<I", 0xFFFFFF)


def _npy_headers(data):
    """Edits inside an entry's .npy header.  The zip CRC would catch them, so they are
    made with the CRC left alone: what numpy's header parser raised on (tokenize errors)
    must now be a clean error too."""
    for old, new in [(b"'descr': '<f4'", b"'descr': '|O8'"), (b"'descr': '<f4'", b"'descr': '<f4"),
                     (b"'shape': (", b"'shape': [("), (b"'shape': (", b"'shape': 9e99*("),
                     (b"'fortran_order': False", b"'fortran_order': Fals\x00"),
                     (b"\x93NUMPY\x01\x00", b"\x93NUMPY\x03\x00"),
                     (b"\x93NUMPY", b"\x93NUMPZ")]:
        pos = data.find(old, data.find(b"param.Whh"))
        yield "npy header", data[:pos] + new + data[pos + len(old):]


def _rewritten(path, tmp_path, arrays):
    np.savez(path, **arrays)
    return path.read_bytes()


def _wrong_arrays(data, tmp_path):
    """Valid zips holding the wrong arrays or the wrong training state."""
    src = tmp_path / "src.npz"
    src.write_bytes(data)
    with np.load(src, allow_pickle=False) as npz:
        good = {k: npz[k] for k in npz.files}
    meta = json.loads(str(good["train"]))
    scratch = tmp_path / "rewritten.npz"

    def variant(**changes):
        arrays = {k: v for k, v in good.items() if changes.get(k, 0) is not None}
        arrays.update({k: v for k, v in changes.items() if v is not None})
        return _rewritten(scratch, tmp_path, arrays)

    for key in good:
        yield f"without {key}", variant(**{key: None})
    for key in ["param.Whh", "param.by", "state.optim.m.Wxh", "state.hidden", "state.best.bh",
                "vocab", "version"]:
        a = good[key]
        yield f"{key} as float64", variant(**{key: a.astype(np.float64)})
        yield f"{key} reshaped", variant(**{key: a.reshape(-1)[:-1] if a.size > 1 else
                                            np.zeros((2, 2), a.dtype)})
        yield f"{key} as text", variant(**{key: np.array("nonsense")})
        yield f"{key} as a record", variant(**{key: np.zeros(3, "i4,f4")})
    for key in ["param.Why", "state.optim.v.bh", "state.hidden"]:
        yield f"{key} nan", variant(**{key: np.full_like(good[key], np.nan)})
    yield "weights that overflow", variant(**{"param.Why": good["param.Why"] * 1e37,
                                              "state.best.Why": good["state.best.Why"] * 1e37})
    config = json.loads(str(good["config"]))
    for change in [{"hidden_size": 10 ** 6}, {"hidden_size": -1}, {"hidden_size": "8"},
                   {"dtype": "float16"}, {"dtype": [1]}, {"n_vocab": 3}, {"cell": "lstm"}]:
        yield f"config {change}", variant(config=np.array(json.dumps({**config, **change})))
    yield "config a list", variant(config=np.array("[1, 2]"))
    yield "vocab unsorted", variant(vocab=good["vocab"][::-1].copy())
    yield "vocab out of range", variant(vocab=good["vocab"] + np.uint32(0x10FFFF))
    broken_meta = [{"step": -1}, {"step": "6"}, {"step": 6.5}, {"epoch": None},
                   {"pointer": True}, {"optimizer": {"name": "lbfgs"}},
                   {"optimizer": {**meta["optimizer"], "name": "sgd"}},
                   {"optimizer": {**meta["optimizer"], "step_count": "x"}},
                   {"config": None}, {"config": {**meta["config"], "seq_length": 0}},
                   {"config": {**meta["config"], "learning_rate": "fast"}},
                   {"config": {**meta["config"], "lr_schedule": "zigzag"}},
                   {"config": {**meta["config"], "batch_size": 3}},
                   {"config": {**meta["config"], "val_fraction": 7}},
                   {"best": {"val_loss": "low"}}, {"best": 3}, {"elapsed": -5},
                   {"evals_since_best": "two"}, {"corpus_sha256": 12}]
    for change in broken_meta:
        yield f"train {change}", variant(train=np.array(json.dumps({**meta, **change})))
    for key in ["step", "epoch", "pointer", "optimizer", "config"]:
        yield f"train without {key}", variant(
            train=np.array(json.dumps({k: v for k, v in meta.items() if k != key})))
    yield "train not an object", variant(train=np.array("[]"))
    yield "train NaN", variant(train=np.array(json.dumps({**meta, "elapsed": float("nan")})))


def damaged_copies(data, tmp_path):
    rng = np.random.default_rng(11)
    yield from _flips(data, rng, 70)
    yield from _truncations(data, rng, 30)
    yield from _overwritten_blocks(data, rng, 50)
    yield from _zip_headers(data, rng)
    yield from _npy_headers(data)
    yield from _wrong_arrays(data, tmp_path)


# ---- every reader on every case --------------------------------------------------------------
def _cli(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.err


def test_every_reader_gives_a_clean_error_on_any_damage(original, tmp_path, capsys):
    data, text = original
    path = tmp_path / "damaged.npz"
    cases = failed = 0
    for how, damaged in damaged_copies(data, tmp_path):
        cases += 1
        path.write_bytes(damaged)
        try:
            ckpt, error = load_checkpoint(path), None
        except CheckpointError as e:
            ckpt, error = None, str(e)
            assert str(path) in error, (how, error)
            assert "\n" not in error, (how, error)
        readers = {"sample": ["sample", path, "--length", 5, "--seed", 0],
                   "eval": ["eval", path, text],
                   "resume": ["train", text, "--out", path, "--resume", "--steps", STEPS + 2]}
        for reader, argv in readers.items():
            path.write_bytes(damaged)
            status, err = _cli(capsys, *argv)
            if error is not None:
                assert (status, err) == (1, f"rnncore: error: {error}\n"), (how, reader, err)
                assert path.read_bytes() == damaged, (how, reader)   # nothing changed
            elif reader == "resume" and ckpt.train_meta is None:
                assert status == 1 and "without training state" in err, (how, err)
            elif reader == "resume" and status == 1:   # weights that overflow at once
                assert "training diverged" in err and f"(step {STEPS}) was kept" in err
                assert path.read_bytes() == damaged, how
            else:
                assert status == 0, (how, reader, err)
        failed += error is not None
    assert cases >= 300
    assert failed >= 0.8 * cases   # most damage is caught by the loader itself


@pytest.mark.slow
def test_a_sample_of_damaged_checkpoints_through_the_real_cli(original, tmp_path):
    data, text = original
    picked = [damaged for n, (how, damaged) in enumerate(damaged_copies(data, tmp_path))
              if n % 97 == 5][:4]
    for n, damaged in enumerate(picked):
        path = tmp_path / f"damaged{n}.npz"
        path.write_bytes(damaged)
        try:
            load_checkpoint(path)
            continue
        except CheckpointError as e:
            expected = str(e)
        for argv in (["sample", path], ["eval", path, text],
                     ["train", text, "--out", path, "--resume", "--steps", STEPS + 2]):
            assert_clean_error(run(*argv, cwd=tmp_path), expected, status=1)
            assert path.read_bytes() == damaged


@pytest.mark.slow
def test_row_wrong_arrays_or_a_broken_training_state_through_the_real_cli(original, tmp_path):
    data, text = original
    src = tmp_path / "src.npz"
    src.write_bytes(data)
    with np.load(src, allow_pickle=False) as npz:
        good = {k: npz[k] for k in npz.files}
    meta = json.loads(str(good["train"]))
    cases = [({"param.Whh": np.zeros((3, 3), np.float32)}, "parameter Whh has shape (3, 3)"),
             ({"train": np.array(json.dumps({**meta, "step": -1}))},
              "the training state is malformed (step must be an integer >= 0)")]
    for change, message in cases:
        path = tmp_path / "wrong.npz"
        np.savez(path, **{**good, **change})
        before = path.read_bytes()
        for argv in (["sample", path], ["eval", path, text],
                     ["train", text, "--out", path, "--resume", "--steps", STEPS + 2]):
            assert_clean_error(run(*argv, cwd=tmp_path), f"{path}: {message}", status=1)
        assert path.read_bytes() == before
