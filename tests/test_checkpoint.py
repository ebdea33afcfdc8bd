"""Checkpoints: format, safe loading, exact resume, atomic writes, and the bad-input table
of README.md, each row run through the real CLI."""
import json
import os
import pickle
import signal
import subprocess
import time
import zipfile

import numpy as np
import pytest

import rnncore
from rnncore.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from cli_helpers import SMALL, assert_clean_error, corpus, digest, rnncore_command, run


def trained(tmp_path, steps=20, extra=()):
    out = tmp_path / "model.npz"
    proc = run("train", corpus(tmp_path), "--out", out, "--steps", steps, *SMALL, *extra,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out


# ---- format -------------------------------------------------------------------------
def test_checkpoint_holds_plain_arrays_only(tmp_path):
    out = trained(tmp_path)
    with np.load(out, allow_pickle=False) as npz:
        keys = set(npz.files)
        assert str(npz["format"]) == "rnncore-checkpoint" and int(npz["version"]) == 1
        assert json.loads(str(npz["config"]))["hidden_size"] == 16
        assert npz["vocab"].dtype == np.uint32
        assert all(npz[k].dtype != object for k in keys)
    assert {"param.Wxh", "param.Whh", "param.Why", "param.bh", "param.by", "train",
            "state.hidden", "state.optim.m.Wxh", "state.optim.v.by"} <= keys


def test_model_save_load_round_trip(tmp_path):
    model = rnncore.CharRNN(rnncore.Vocab.from_text("ñandú 🙂 abc"), 6, dtype="float32", seed=2)
    model.save(tmp_path / "m.npz")
    loaded = rnncore.CharRNN.load(tmp_path / "m.npz")
    assert loaded.vocab == model.vocab and loaded.dtype == np.float32
    for k in model.params:
        np.testing.assert_array_equal(loaded.params[k], model.params[k])
    assert loaded.complete("abc", 10) == model.complete("abc", 10)


def test_saving_non_finite_weights_is_refused_and_keeps_the_old_file(tmp_path):
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abc"), 4, seed=0)
    path = tmp_path / "m.npz"
    model.save(path)
    before = digest(path)
    model.params["bh"][0] = np.inf
    with pytest.raises(CheckpointError, match="parameter bh holds nan or inf"):
        model.save(path)
    assert digest(path) == before
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del arrays[k]
    np.savez(path, **arrays)


@pytest.mark.parametrize("change,match", [
    ({"version": np.array(2)}, "format version 2"),
    ({"format": np.array("something-else")}, "not an rnncore checkpoint"),
    ({"param.Whh": np.zeros((3, 3), np.float32)}, "parameter Whh has shape (3, 3)"),
    ({"param.Why": None}, "parameter Why is missing"),
    ({"param.by": np.full(4, np.nan, np.float32)}, None),
    ({"config": np.array("{not json")}, "not valid JSON"),
    ({"vocab": np.array([98, 97], np.uint32)}, "bad vocabulary"),
])
def test_load_checks_version_names_shapes_dtypes_finiteness(tmp_path, change, match):
    out = trained(tmp_path, steps=2)
    if "param.by" in change:  # keep the shape, break the values
        n = load_checkpoint(out).model.n_vocab
        change = {"param.by": np.full(n, np.nan, np.float32)}
        match = "parameter by holds nan or inf"
    _rewrite(out, **change)
    with pytest.raises(CheckpointError, match=match.replace("(", r"\(").replace(")", r"\)")):
        load_checkpoint(out)


def test_wrong_dtype_parameter(tmp_path):
    out = trained(tmp_path, steps=2)
    ckpt = load_checkpoint(out)
    _rewrite(out, **{"param.bh": ckpt.model.params["bh"].astype(np.float64)})
    with pytest.raises(CheckpointError, match="parameter bh has shape .* and dtype float64"):
        load_checkpoint(out)


# ---- exact resume ----------------------------------------------------------------------
@pytest.mark.parametrize("optimizer,batch,dtype", [
    ("sgd", "1", "float64"), ("adagrad", "3", "float32"), ("rmsprop", "2", "float64"),
    ("adam", "4", "float32"), ("adam", "1", "float64"),
])
def test_resume_is_bit_identical(tmp_path, optimizer, batch, dtype):
    text = corpus(tmp_path, "abracadabra, said the rabbit; " * 12)
    opts = ["--hidden-size", "12", "--seq-length", "7", "--batch-size", batch,
            "--optimizer", optimizer, "--dtype", dtype, "--seed", "3", "--learning-rate", "0.01"]
    straight, halves = tmp_path / "straight.npz", tmp_path / "halves.npz"
    # 37 steps crosses several epoch boundaries with their shorter final window
    assert run("train", text, "--out", straight, "--steps", 37, *opts, cwd=tmp_path).returncode == 0
    assert run("train", text, "--out", halves, "--steps", 18, *opts, cwd=tmp_path).returncode == 0
    proc = run("train", text, "--out", halves, "--steps", 37, "--resume", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stdout
    a, b = load_checkpoint(straight), load_checkpoint(halves)
    for k in a.model.params:
        np.testing.assert_array_equal(a.model.params[k], b.model.params[k])
    for k in a.train_arrays:
        np.testing.assert_array_equal(a.train_arrays[k], b.train_arrays[k])
    # the training state is identical; only bookkeeping of when validation ran may differ
    # (the first half validated at its own end)
    bookkeeping = ("elapsed", "best", "evals_since_best")
    assert {k: v for k, v in a.train_meta.items() if k not in bookkeeping} == \
        {k: v for k, v in b.train_meta.items() if k not in bookkeeping}


def test_resume_may_change_the_learning_rate_only(tmp_path):
    out = trained(tmp_path, steps=4)
    proc = run("train", corpus(tmp_path), "--out", out, "--steps", 6, "--resume",
               "--learning-rate", "0.0005", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(out).train_meta["config"]["learning_rate"] == 0.0005


def test_resume_past_the_target_does_nothing(tmp_path):
    out = trained(tmp_path, steps=4)
    before = digest(out)
    proc = run("train", corpus(tmp_path), "--out", out, "--steps", 3, "--resume", cwd=tmp_path)
    assert proc.returncode == 0 and "nothing to do" in proc.stdout
    assert digest(out) == before


# ---- the bad-input table (README.md) ----------------------------------------------------
def test_row_missing_corpus(tmp_path):
    assert_clean_error(run("train", "nope.txt", "--out", "m.npz", cwd=tmp_path),
                       "corpus file not found: nope.txt")


def test_row_empty_corpus(tmp_path):
    assert_clean_error(run("train", corpus(tmp_path, ""), "--out", "m.npz", cwd=tmp_path),
                       "is empty")


def test_row_one_character_corpus(tmp_path):
    assert_clean_error(run("train", corpus(tmp_path, "x"), "--out", "m.npz", cwd=tmp_path),
                       "single character: nothing to predict")


def test_row_non_utf8_corpus(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("canción de cuna".encode("latin-1"))
    assert_clean_error(run("train", path, "--out", "m.npz", cwd=tmp_path),
                       "is not valid utf-8: byte 0xf3 at offset 5")
    proc = run("train", path, "--out", "m.npz", "--encoding", "latin-1", "--steps", "2",
               "--seq-length", "4", "--batch-size", "1", "--hidden-size", "4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_row_corpus_shorter_than_a_window(tmp_path):
    assert_clean_error(run("train", corpus(tmp_path, "short text"), "--out", "m.npz",
                           "--seq-length", "50", "--batch-size", "1", cwd=tmp_path),
                       "shorter than one window")


def test_row_missing_checkpoint(tmp_path):
    assert_clean_error(run("sample", "gone.npz", cwd=tmp_path), "checkpoint not found: gone.npz")


def test_row_truncated_checkpoint(tmp_path):
    out = trained(tmp_path, steps=2)
    data = out.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    assert_clean_error(run("sample", out, cwd=tmp_path), "not a readable rnncore checkpoint")


def test_row_foreign_checkpoint(tmp_path):
    path = corpus(tmp_path, "just some text\n", name="notes.npz")
    assert_clean_error(run("sample", path, cwd=tmp_path), "not a readable rnncore checkpoint")
    np.save(tmp_path / "array.npy", np.zeros(3))
    assert_clean_error(run("sample", tmp_path / "array.npy", cwd=tmp_path),
                       "not an rnncore checkpoint")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    assert_clean_error(run("sample", tmp_path / "other.npz", cwd=tmp_path),
                       "is not an rnncore checkpoint")


class Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_row_pickle_bearing_checkpoint_is_never_unpickled(tmp_path):
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps(Boom()))
    assert_clean_error(run("sample", raw, cwd=tmp_path), "pickled data")
    npz = tmp_path / "objects.npz"
    np.savez(npz, format=np.array("rnncore-checkpoint"), version=np.array(1),
             evil=np.array([Boom()], dtype=object))
    assert_clean_error(run("sample", npz, cwd=tmp_path), "pickled data")
    assert not (tmp_path / "PWNED").exists()


def test_row_wrong_version_checkpoint(tmp_path):
    out = trained(tmp_path, steps=2)
    _rewrite(out, version=np.array(99))
    assert_clean_error(run("sample", out, cwd=tmp_path), "format version 99")


def test_row_unseen_prime_characters(tmp_path):
    out = trained(tmp_path, steps=2)
    assert_clean_error(run("sample", out, "--prime", "the QZ", cwd=tmp_path),
                       "never seen: 'QZ'")
    proc = run("sample", out, "--prime", "the QZ", "--skip-unknown", "--length", "5",
               cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("the QZ")


def test_row_out_directory_missing(tmp_path):
    assert_clean_error(run("train", corpus(tmp_path), "--out", tmp_path / "no" / "m.npz",
                           *SMALL, cwd=tmp_path), "does not exist")
    assert_clean_error(run("train", corpus(tmp_path), "--out", tmp_path / "corpus.txt" / "m.npz",
                           *SMALL, cwd=tmp_path), "is not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_row_out_directory_not_writable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert_clean_error(run("train", corpus(tmp_path), "--out", locked / "m.npz", *SMALL,
                               cwd=tmp_path), "is not writable")
    finally:
        locked.chmod(0o700)


def test_row_out_exists_without_resume(tmp_path):
    out = trained(tmp_path, steps=2)
    before = digest(out)
    assert_clean_error(run("train", corpus(tmp_path), "--out", out, *SMALL, cwd=tmp_path),
                       "exists: pass --resume")
    assert digest(out) == before


@pytest.mark.parametrize("args,match", [
    (["--hidden-size", "32"], "--hidden-size 32 conflicts with the checkpoint's 16"),
    (["--batch-size", "5"], "--batch-size 5 conflicts"),
    (["--optimizer", "sgd"], "--optimizer sgd conflicts"),
    (["--dtype", "float64"], "--dtype float64 conflicts"),
])
def test_row_failed_resume_leaves_the_checkpoint_untouched(tmp_path, args, match):
    out = trained(tmp_path, steps=3)
    before = digest(out)
    assert_clean_error(run("train", corpus(tmp_path), "--out", out, "--steps", "9",
                           "--resume", *args, cwd=tmp_path), match)
    assert digest(out) == before


def test_row_resume_on_corpus_with_unseen_characters(tmp_path):
    out = trained(tmp_path, steps=3)
    before = digest(out)
    other = corpus(tmp_path, "the cat sat on the XYZ mat " * 20, name="other.txt")
    assert_clean_error(run("train", other, "--out", out, "--steps", "9", "--resume",
                           cwd=tmp_path), "not in the checkpoint's vocabulary: 'XYZ'")
    assert digest(out) == before


def test_row_resume_of_a_missing_or_bad_checkpoint(tmp_path):
    assert_clean_error(run("train", corpus(tmp_path), "--out", "none.npz", "--resume",
                           cwd=tmp_path), "cannot resume: none.npz does not exist")
    bad = corpus(tmp_path, "garbage", name="bad.npz")
    before = digest(bad)
    assert_clean_error(run("train", corpus(tmp_path), "--out", bad, "--resume",
                           cwd=tmp_path), "not a readable rnncore checkpoint")
    assert digest(bad) == before


def test_row_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    out = trained(tmp_path, steps=3, extra=["--optimizer", "sgd"])
    good = load_checkpoint(out)
    proc = run("train", corpus(tmp_path), "--out", out, "--steps", "50", "--resume",
               "--learning-rate", "1e300", "--clip", "0", cwd=tmp_path)
    assert_clean_error(proc, "diverged")
    assert "(step 3) was kept" in proc.stderr
    kept = load_checkpoint(out)
    assert kept.train_meta["step"] == 3
    for k in good.model.params:
        np.testing.assert_array_equal(kept.model.params[k], good.model.params[k])


def test_row_interrupt_saves_a_consistent_checkpoint(tmp_path):
    big = corpus(tmp_path, "to be or not to be, that is the question. " * 400)
    out = tmp_path / "m.npz"
    proc = subprocess.Popen([*rnncore_command(), "train", big, "--out", out, "--steps",
                             "10000000", "--hidden-size", "32", "--checkpoint-every", "1000000"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until training is under way
        line = proc.stdout.readline()
        if line.startswith("step "):
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted at step" in stdout
    ckpt = load_checkpoint(out)
    assert ckpt.train_meta["step"] >= 100
    # and it resumes from exactly there
    step = ckpt.train_meta["step"]
    proc = run("train", big, "--out", out, "--steps", step + 5, "--resume", cwd=tmp_path)
    assert proc.returncode == 0 and load_checkpoint(out).train_meta["step"] == step + 5


# ---- atomic writes under SIGKILL -------------------------------------------------------------
def test_sigkill_at_random_moments_never_leaves_a_broken_checkpoint(tmp_path):
    text = corpus(tmp_path, "all work and no play makes jack a dull boy. " * 300)
    out = tmp_path / "m.npz"
    opts = ["--hidden-size", "192", "--seq-length", "8", "--batch-size", "1"]
    assert run("train", text, "--out", out, "--steps", "1", *opts, cwd=tmp_path).returncode == 0
    rng = np.random.default_rng(0)
    steps_seen, killed_mid_write = set(), 0
    for trial in range(12):
        proc = subprocess.Popen([*rnncore_command(), "train", text, "--out", out, "--steps",
                                 "100000000", "--resume", "--checkpoint-every", "1"], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        proc.stdout.readline()  # the resume line: it is saving continuously from here on
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        proc.wait()
        ckpt = load_checkpoint(out)  # must load, whatever moment the kill hit
        steps_seen.add(ckpt.train_meta["step"])
        # a temporary file left behind shows this kill landed inside a write
        killed_mid_write += any(n.endswith(".tmp") for n in os.listdir(tmp_path))
    assert len(steps_seen) > 1
    assert killed_mid_write >= 1
    # the next run clears what the killed writers left
    assert run("train", text, "--out", out, "--steps", max(steps_seen) + 1, "--resume",
               cwd=tmp_path).returncode == 0
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_row_resume_of_a_model_without_training_state(tmp_path):
    model = rnncore.CharRNN(rnncore.Vocab.from_text("the cat sat on the mat. "), 16, seed=0)
    path = tmp_path / "bare.npz"
    model.save(path)
    before = digest(path)
    assert_clean_error(run("train", corpus(tmp_path), "--out", path, "--resume", cwd=tmp_path),
                       "holds a model without training state")
    assert digest(path) == before
