"""Checkpoints: plain arrays only, the round trip, what loading checks."""
import json
import os

import numpy as np
import pytest

import rnncore
from rnncore.checkpoint import CheckpointError, load_checkpoint

from support import digest, rewrite_npz, trained


# ---- format -------------------------------------------------------------------------
@pytest.mark.slow
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


@pytest.mark.slow
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
    rewrite_npz(out, **change)
    with pytest.raises(CheckpointError, match=match.replace("(", r"\(").replace(")", r"\)")):
        load_checkpoint(out)


@pytest.mark.slow
def test_wrong_dtype_parameter(tmp_path):
    out = trained(tmp_path, steps=2)
    ckpt = load_checkpoint(out)
    rewrite_npz(out, **{"param.bh": ckpt.model.params["bh"].astype(np.float64)})
    with pytest.raises(CheckpointError, match="parameter bh has shape .* and dtype float64"):
        load_checkpoint(out)
