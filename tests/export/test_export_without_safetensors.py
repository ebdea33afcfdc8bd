"""Without the optional safetensors package, export says how to install it (this runs
whether or not safetensors is installed: the import is made to fail)."""
import sys

from rnncore import cli

from support import gated_model


def test_without_safetensors_the_error_names_the_install_command(tmp_path, capsys,
                                                                 monkeypatch):
    model = gated_model("rnn", 1, 4, 3)
    ckpt = tmp_path / "m.npz"
    model.save(ckpt)
    for name in [m for m in sys.modules if m == "safetensors" or m.startswith("safetensors.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import fails
    assert cli.main(["export", str(ckpt), str(tmp_path / "m.safetensors")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rnncore: error: reading and writing .safetensors files needs the "
                   "safetensors package: pip install 'rnncore[export]'"]
    assert not (tmp_path / "m.safetensors").exists()
