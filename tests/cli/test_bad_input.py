"""The Bad input table (docs/user-guide.md), row by row, through the real CLI: one `rnncore: error:` line
and a non-zero status, never a traceback, and nothing the user had is lost."""
import os
import pickle
import shutil

import numpy as np
import pytest

import rnncore
from rnncore.checkpoint import load_checkpoint

from support import (SMALL, assert_clean_error, corpus, digest, rewrite_npz, run, run_unprivileged, shared_tmp, trained)

pytestmark = pytest.mark.slow   # every test here starts a process


class Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


# ---- the bad-input table (docs/user-guide.md) -------------------------------------------
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
    rewrite_npz(out, version=np.array(99))
    assert_clean_error(run("sample", out, cwd=tmp_path), "format version 99")


def test_row_unseen_prime_characters(tmp_path):
    out = trained(tmp_path, steps=2)
    assert_clean_error(run("sample", out, "--prime", "the QZ", cwd=tmp_path),
                       "never seen: 'QZ'")
    proc = run("sample", out, "--prime", "the QZ", "--skip-unknown", "--length", "5",
               cwd=tmp_path)
    # the prime echoed is the one the model saw: without the characters it dropped
    assert proc.returncode == 0 and proc.stdout.startswith("the ")
    assert len(proc.stdout) == len("the ") + 5 + 1 and not {"Q", "Z"} & set(proc.stdout)


def test_row_out_directory_missing(tmp_path):
    assert_clean_error(run("train", corpus(tmp_path), "--out", tmp_path / "no" / "m.npz",
                           *SMALL, cwd=tmp_path), "does not exist")
    assert_clean_error(run("train", corpus(tmp_path), "--out", tmp_path / "corpus.txt" / "m.npz",
                           *SMALL, cwd=tmp_path), "is not a directory")


def test_row_out_directory_not_writable(tmp_path):
    # runs as root too: the CLI drops to the user nobody, for whom the folder is read-only
    folder = shared_tmp(tmp_path)
    try:
        text = corpus(folder)
        text.chmod(0o644)
        locked = folder / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        proc = run_unprivileged("train", text, "--out", locked / "m.npz", *SMALL, cwd=folder)
        assert_clean_error(proc, f"--out {locked / 'm.npz'}: directory {locked} is not "
                                 "writable")
        assert os.listdir(locked) == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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


def test_row_resume_of_a_model_without_training_state(tmp_path):
    model = rnncore.CharRNN(rnncore.Vocab.from_text("the cat sat on the mat. "), 16, seed=0)
    path = tmp_path / "bare.npz"
    model.save(path)
    before = digest(path)
    assert_clean_error(run("train", corpus(tmp_path), "--out", path, "--resume", cwd=tmp_path),
                       "holds a model without training state")
    assert digest(path) == before
