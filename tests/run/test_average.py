"""--average: the averaged weights are what a run validates, keeps as the best, and
what sample, eval and export use; the latest ones are what training continues from."""
import numpy as np
import pytest

import rnncore
from rnncore.corpus import load_corpus
from rnncore.train import evaluate

from support import corpus, run

TEXT = "she sells sea shells by the sea shore, the shells she sells are sea shells. " * 30
SMALL = dict(cell="gru", num_layers=1, hidden_size=12, seq_length=8, batch_size=3,
             learning_rate=0.02, val_fraction=0.2, echo=None)


def test_validation_uses_the_averaged_weights(tmp_path):
    text = corpus(tmp_path, TEXT)
    result = rnncore.fit(text, tmp_path / "m.npz", steps=60, eval_every=30, average=0.8,
                         average_start=10, **SMALL)
    ckpt = rnncore.load_checkpoint(tmp_path / "m.npz")
    _, val = load_corpus(text).split(0.2)
    averaged = evaluate(ckpt.average_model, val)["nats_per_char"]
    latest = evaluate(ckpt.model, val)["nats_per_char"]
    assert averaged != latest
    assert result.history[-1]["val_loss"] == averaged
    # without --keep-best the averaged weights are the ones a user gets
    assert ckpt.preferred_model is ckpt.average_model
    loaded = rnncore.CharRNN.load(tmp_path / "m.npz")
    for name, p in ckpt.average_model.params.items():
        np.testing.assert_array_equal(loaded.params[name], p)
    latest_model = rnncore.CharRNN.load(tmp_path / "m.npz", latest=True)
    np.testing.assert_array_equal(latest_model.params["Whh"], ckpt.model.params["Whh"])


def test_keep_best_keeps_the_best_of_the_averaged_weights(tmp_path):
    text = corpus(tmp_path, TEXT)
    result = rnncore.fit(text, tmp_path / "m.npz", steps=60, eval_every=20, average=0.8,
                         keep_best=True, **SMALL)
    ckpt = rnncore.load_checkpoint(tmp_path / "m.npz")
    _, val = load_corpus(text).split(0.2)
    best = evaluate(ckpt.best_model, val)["nats_per_char"]
    assert best == result.best["val_loss"] == min(r["val_loss"] for r in result.history
                                                  if "val_loss" in r)
    assert ckpt.preferred_model is ckpt.best_model


def test_before_its_start_the_run_validates_the_latest_weights(tmp_path):
    text = corpus(tmp_path, TEXT)
    rnncore.fit(text, tmp_path / "m.npz", steps=20, eval_every=20, average=0.8,
                average_start=1000, **SMALL)
    ckpt = rnncore.load_checkpoint(tmp_path / "m.npz")
    assert ckpt.average_model is None and ckpt.preferred_model is ckpt.model
    assert not any(k.startswith("average.") for k in ckpt.train_arrays)


@pytest.mark.slow
def test_the_cli_trains_samples_and_exports_the_averaged_weights(tmp_path):
    text = corpus(tmp_path, TEXT)
    proc = run("train", text, "--out", tmp_path / "m.npz", "--steps", "40",
               "--hidden-size", "12", "--batch-size", "3", "--seq-length", "8",
               "--average", "0.9", "--average-start", "5", "--weight-drop", "0.2",
               "--dropout-mode", "locked", "--weight-decay", "0.1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ckpt = rnncore.load_checkpoint(tmp_path / "m.npz")
    assert ckpt.train_meta["config"]["average"] == 0.9
    assert ckpt.model.config["weight_drop"] == 0.2
    assert ckpt.model.config["dropout_mode"] == "locked"
    proc = run("export", tmp_path / "m.npz", tmp_path / "m.safetensors", cwd=tmp_path)
    if proc.returncode == 0:   # safetensors installed
        exported = rnncore.CharRNN.from_safetensors(tmp_path / "m.safetensors")
        np.testing.assert_array_equal(exported.params["Whh"],
                                      ckpt.average_model.params["Whh"])
        assert exported.weight_drop == 0.2 and exported.dropout_mode == "locked"
    proc = run("train", text, "--out", tmp_path / "m.npz", "--steps", "40",
               "--weight-drop", "1.5", "--force", cwd=tmp_path)
    assert proc.returncode == 2 and "--weight-drop" in proc.stderr
