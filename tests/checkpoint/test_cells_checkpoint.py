"""Checkpoints of every cell and depth: configuration, round trip, resuming with dropout
bit for bit, and loading a checkpoint written before there were other cells."""
import json
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnncore import layout
from rnncore.checkpoint import load_checkpoint, save_checkpoint

TEXT = "Hola mundo, aprendiendo redes recurrentes! " * 3
# written by rnncore at commit 3381594 (single-layer vanilla only): CharRNN(vocab of
# TEXT, hidden 6, float64, seed 0), 7 Adam steps of 2 streams x 5 with Trainer
OLD_VANILLA = Path(__file__).parents[1] / "data" / "vanilla-main-3381594.npz"
OLD_VANILLA_LOSS = 2.85531256896267   # its loss on TEXT, computed by that commit


def test_checkpoint_from_before_the_gated_cells_loads_and_gives_the_same_loss():
    ckpt = load_checkpoint(OLD_VANILLA)
    model = ckpt.model
    assert (model.cell, model.num_layers, model.dropout) == ("rnn", 1, 0.0)
    assert tuple(model.params) == layout.PARAM_NAMES
    ids = model.vocab.encode(TEXT)
    loss, state = model.loss(ids[:-1], ids[1:])
    assert loss == pytest.approx(OLD_VANILLA_LOSS, rel=1e-12)
    assert state.shape == (6,)
    # and its training state resumes: the streams' hidden state is (B, H) as before
    trainer = rnncore.Trainer(model, TEXT, seq_length=5, batch_size=2, optimizer="adam")
    assert trainer.load_state(ckpt.train_arrays, ckpt.train_meta)
    assert trainer.hidden.shape == (2, 6) and trainer.step == 7
    assert np.isfinite(trainer.train_step())


@pytest.mark.parametrize("cell", layout.CELLS)
def test_config_records_the_cell_and_round_trips(tmp_path, cell):
    vocab = rnncore.Vocab.from_text(TEXT)
    model = rnncore.CharRNN(vocab, 5, cell=cell, num_layers=2, dropout=0.3, seed=1,
                            dtype="float32")
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as npz:
        config = json.loads(str(npz["config"]))
    assert (config["cell"], config["num_layers"], config["dropout"]) == (cell, 2, 0.3)
    loaded = rnncore.CharRNN.load(path)
    assert loaded.config == model.config
    assert list(loaded.params) == list(model.params)
    for name in model.params:
        np.testing.assert_array_equal(loaded.params[name], model.params[name])
    ids = vocab.encode(TEXT)
    assert loaded.loss(ids[:-1], ids[1:])[0] == model.loss(ids[:-1], ids[1:])[0]
    assert loaded.sample(30, "Hola", seed=2) == model.sample(30, "Hola", seed=2)


@pytest.mark.parametrize("cell", layout.CELLS)
def test_resume_with_dropout_is_bit_identical(tmp_path, cell):
    vocab = rnncore.Vocab.from_text(TEXT)

    def trainer(seed):
        model = rnncore.CharRNN(vocab, 6, cell=cell, num_layers=2, dropout=0.4, seed=3)
        return rnncore.Trainer(model, TEXT, seq_length=7, batch_size=3, optimizer="adam",
                               learning_rate=5e-3, seed=seed)

    straight = trainer(seed=11)
    losses = straight.train(12)        # crosses the end of the streams (wrap to zeros)

    first = trainer(seed=11)
    first_losses = first.train(5)
    path = tmp_path / "run.npz"
    save_checkpoint(path, first.model, first.state())
    ckpt = load_checkpoint(path)
    resumed = trainer(seed=999)        # the checkpoint's generator state wins
    resumed.model.params = ckpt.model.params
    resumed.optimizer.model = resumed.model
    assert resumed.load_state(ckpt.train_arrays, ckpt.train_meta)
    assert resumed.hidden.shape == resumed.model.state_shape(3)
    assert first_losses + resumed.train(7) == losses
    for name, p in straight.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], p)
    # with dropout on, a different generator gives a different run
    assert trainer(seed=12).train(12) != losses


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cli_samples_and_evaluates_any_cell(tmp_path, cell):
    from support import run
    vocab = rnncore.Vocab.from_text(TEXT)
    model = rnncore.CharRNN(vocab, 8, cell=cell, num_layers=2, dropout=0.2, seed=5)
    trainer = rnncore.Trainer(model, TEXT, seq_length=6, batch_size=2, optimizer="adam",
                              learning_rate=1e-2)
    trainer.train(5)
    path = tmp_path / "m.npz"
    save_checkpoint(path, model, trainer.state())
    proc = run("sample", path, "--prime", "Hola", "--length", "25", "--seed", "1",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip("\n") == "Hola" + model.sample(25, "Hola", seed=1)
    text_file = tmp_path / "t.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    proc = run("eval", path, text_file, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ids = vocab.encode(TEXT)
    expected = model.loss(ids[:-1], ids[1:])[0]
    assert json.loads(proc.stdout)["nats_per_char"] == pytest.approx(expected, rel=1e-9)
