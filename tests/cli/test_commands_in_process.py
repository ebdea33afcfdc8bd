"""Each command's output to its exact values, through cli.main in this process (the
subprocess tests beside it check the console script; these are the fast tier's)."""
import json

import numpy as np
import pytest

import rnncore
from rnncore import cli

from support import FOX, fit_then_spoil


@pytest.fixture
def spoiled(tmp_path):
    """A keep-best checkpoint whose best (step 60) and latest (step 100) differ."""
    return fit_then_spoil(tmp_path)


def out_of(capsys, *argv):
    assert cli.main([str(a) for a in argv]) == 0
    return capsys.readouterr().out


def test_info_json_holds_the_checkpoints_values(spoiled, capsys):
    ckpt = rnncore.load_checkpoint(spoiled)
    info = json.loads(out_of(capsys, "info", spoiled, "--json"))
    meta, config = ckpt.train_meta, ckpt.train_meta["config"]
    assert info["model"] == {**ckpt.model.config, "parameters": ckpt.model.num_parameters()}
    assert info["vocabulary"] == "".join(sorted(set(FOX)))
    assert info["best_parameters_kept"] is True
    t = info["training"]
    assert (t["step"], t["epoch"], t["target_steps"]) == (100, meta["epoch"], 100)
    assert (t["streams"], t["window"], t["optimizer"]) == (2, 8, "adam")
    assert t["learning_rate"] == 0.5 == config["learning_rate"]
    assert t["best_validation"] == meta["best"] and t["best_validation"]["step"] == 60
    assert t["last_validation"] == meta["last_validation"] and \
        t["last_validation"]["step"] == 100
    assert info["corpus"]["sha256"] == meta["corpus_sha256"]
    text = out_of(capsys, "info", spoiled).splitlines()
    assert "  parameters kept; sample and eval use it" in text
    assert f"last validation: {meta['last_validation']['val_loss']:.4f} nats/char at step 100" \
        in text


def test_eval_uses_the_best_parameters_unless_latest(spoiled, capsys, tmp_path):
    ckpt = rnncore.load_checkpoint(spoiled)
    ids = ckpt.model.vocab.encode(FOX)
    for flags, model in (([], ckpt.best_model), (["--latest"], ckpt.model)):
        got = json.loads(out_of(capsys, "eval", spoiled, tmp_path / "corpus.txt", "--json",
                                *flags))
        assert got["nats_per_char"] == rnncore.evaluate(model, ids)["nats_per_char"]
        assert (got["chars"], got["unseen_chars"], got["unseen_symbols"]) == (len(FOX) - 1,
                                                                             0, "")


def test_sample_uses_the_best_parameters_unless_latest(spoiled, capsys):
    ckpt = rnncore.load_checkpoint(spoiled)
    for flags, model in (([], ckpt.best_model), (["--latest"], ckpt.model)):
        got = out_of(capsys, "sample", spoiled, "--prime", "the", "--length", 80, "--seed", 3,
                     *flags)
        assert got == "the" + model.sample(80, prime="the", seed=3) + "\n"


@pytest.mark.parametrize("argv, says", [
    (["train", "c.txt", "--out", "m.npz", "--cell", "vanilla"],
     "argument --cell: invalid choice: 'vanilla'"),
    (["train", "c.txt", "--out", "m.npz", "--optimizer", "lbfgs"],
     "argument --optimizer: invalid choice: 'lbfgs'"),
    (["eval", "m.npz", "f.txt", "--latest", "yes"], "unrecognized arguments: yes")])
def test_choices_and_flags_are_checked_by_argparse(capsys, argv, says):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2 and says in capsys.readouterr().err


def test_export_says_what_pytorch_loads(spoiled, capsys, tmp_path):
    pytest.importorskip("safetensors")
    out = out_of(capsys, "export", spoiled, tmp_path / "m.safetensors")
    assert out == (f"wrote {tmp_path / 'm.safetensors'}: rnn, 1 layer(s) of 16, 28 symbols, "
                   "float32; in PyTorch: nn.RNN(28, 16, num_layers=1, batch_first=True) and "
                   "nn.Linear(16, 28)\n")
    back = rnncore.CharRNN.from_safetensors(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(back.params["Why"],
                                  rnncore.load_checkpoint(spoiled).best_model.params["Why"])


def test_eval_drops_and_counts_the_characters_the_model_never_saw(spoiled, capsys, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("the lazy fox, QUICK!", encoding="utf-8")
    got = json.loads(out_of(capsys, "eval", spoiled, other, "--json"))
    known = "the lazy fox "
    assert (got["chars"], got["unseen_chars"]) == (len(known) - 1, 7)
    assert got["unseen_symbols"] == "!,CIKQU"
    model = rnncore.load_checkpoint(spoiled).best_model
    assert got["nats_per_char"] == rnncore.evaluate(
        model, model.vocab.encode(known))["nats_per_char"]


def test_plot_names_a_missing_log(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path / "none.npz")]) == 1
    assert capsys.readouterr().err == (f"rnncore: error: no metrics log at "
                                       f"{tmp_path / 'none.metrics.jsonl'} (written by "
                                       "`rnncore train` beside its checkpoint)\n")


def _arguments():
    parser = cli.build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            if action.dest != "help":
                yield name, action


def test_every_argument_of_every_command_says_what_it_is():
    for command, action in _arguments():
        assert action.help, (command, action.dest)


def test_every_setting_flag_gives_its_default_and_range():
    from rnncore.config import field_of
    ranges = {"positive_int": ">= 1", "nonnegative_int": ">= 0", "positive_float": "> 0",
              "nonnegative_float": ">= 0", "fraction": "[0, 1)", "decay": "(0, 1]"}
    helps = {a.dest: a.help for c, a in _arguments() if c == "train"}
    for name, kind in [(n, field_of(n).metadata["kind"]) for n in helps
                       if n in rnncore.TRAIN_DEFAULTS]:
        default = field_of(name).default
        assert f"(default {'off' if default is None else default}" in helps[name]
        if kind in ranges:
            assert f"; {ranges[kind]}" in helps[name], (name, helps[name])
    assert "; [0, 1)" in helps["dropout"] and "; > 0" in helps["learning_rate"]


def test_info_of_a_checkpoint_a_trainer_saved(tmp_path, capsys):
    """save_checkpoint(path, model, trainer.state()): no run around it, so no training
    time, corpus or best validation recorded; info says so rather than failing."""
    model = rnncore.CharRNN(rnncore.Vocab.from_text(FOX), 6, seed=0)
    trainer = rnncore.Trainer(model, FOX, seq_length=5, batch_size=2)
    trainer.train(3)
    rnncore.save_checkpoint(tmp_path / "m.npz", model, trainer.state())
    text = out_of(capsys, "info", tmp_path / "m.npz").splitlines()
    assert "training: step 3, epoch 0, 0 s of training" in text
    assert "best validation: none yet" in text and "corpus: (path not recorded)" in text
