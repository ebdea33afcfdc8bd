"""Export's bias folding and which parameters it writes, value by value (no PyTorch
needed: the files are written with safetensors' numpy API as PyTorch would write them)."""
import numpy as np
import pytest

import rnncore
from rnncore import cli, export


safetensors = pytest.importorskip("safetensors")
from safetensors.numpy import load_file, save_file  # noqa: E402
from support import fit_then_spoil, gated_model


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_nonzero_bias_hh_is_folded_where_the_equations_allow(tmp_path, cell):
    model = gated_model(cell, 2, 7, 5, seed=3)
    tensors = export.torch_tensors(model)
    rng = np.random.default_rng(0)
    for k in range(2):
        tensors[f"rnn.bias_hh_l{k}"] = rng.standard_normal(
            tensors[f"rnn.bias_hh_l{k}"].shape)
    path = tmp_path / "fine-tuned.safetensors"
    save_file(tensors, str(path), metadata=export.metadata(model))
    back = rnncore.CharRNN.from_safetensors(path)
    H = 5
    for k, s in ((0, ""), (1, "_l1")):
        ih, hh = tensors[f"rnn.bias_ih_l{k}"], tensors[f"rnn.bias_hh_l{k}"]
        if cell == "gru":       # r and z are sums; n's hidden bias sits inside r ⊙ (...)
            np.testing.assert_array_equal(back.params["bh" + s][:2 * H], ih[:2 * H] + hh[:2 * H])
            np.testing.assert_array_equal(back.params["bh" + s][2 * H:], ih[2 * H:])
            np.testing.assert_array_equal(back.params["bhn" + s], hh[2 * H:])
        else:
            np.testing.assert_array_equal(back.params["bh" + s], ih + hh)
        np.testing.assert_array_equal(back.params["Whh" + s], tensors[f"rnn.weight_hh_l{k}"])
    np.testing.assert_array_equal(back.params["Why"], tensors["decoder.weight"])


def test_export_writes_the_best_parameters_unless_latest(tmp_path, capsys):
    ckpt = rnncore.load_checkpoint(fit_then_spoil(tmp_path))
    assert not np.array_equal(ckpt.best_model.params["Why"], ckpt.model.params["Why"])
    for flags, model in (([], ckpt.best_model), (["--latest"], ckpt.model)):
        out = tmp_path / f"m{len(flags)}.safetensors"
        assert cli.main(["export", str(tmp_path / "model.npz"), str(out), *flags]) == 0
        written = load_file(str(out))
        for name, array in export.torch_tensors(model).items():
            np.testing.assert_array_equal(written[name], array)
    capsys.readouterr()


def test_the_exported_names_and_metadata_are_exactly_pytorchs(tmp_path):
    model = gated_model("lstm", 2, 6, 4, seed=0)
    assert sorted(export.torch_tensors(model)) == sorted(
        [f"rnn.{w}_{hi}_l{k}" for k in range(2) for w in ("weight", "bias")
         for hi in ("ih", "hh")] + ["decoder.weight", "decoder.bias"])
    meta = export.metadata(model)
    assert meta == {"format": "rnncore-safetensors", "format_version": "1", "cell": "lstm",
                    "torch_module": "LSTM", "hidden_size": "4", "num_layers": "2",
                    "dropout": "0.0", "dropout_mode": "step",
                    "weight_drop": "0.0", "n_vocab": "6", "vocab": "[33, 34, 35, 36, 37, 38]"}
