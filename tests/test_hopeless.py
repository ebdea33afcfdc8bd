"""Hopeless numbers: a loss that explodes but stays finite is reported (perplexity inf, never
a traceback), a run worse than uniform guessing says so once, and keep-best/patience never
prefer such weights over better ones."""
import json
import math

from rnncore.checkpoint import load_checkpoint
from cli_helpers import SMALL, corpus, run

TEXT = "the quick brown fox jumps over the lazy dog; " * 60   # 28 symbols
LN_V = math.log(28)
EXPLODING = ["--optimizer", "sgd", "--learning-rate", "50", "--clip", "0"]


def train(tmp_path, out, *extra):
    proc = run("train", corpus(tmp_path, TEXT), "--out", out, *SMALL, "--print-every", 100,
               "--eval-every", 200, *extra, cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


def warnings(proc):
    return [line for line in proc.stderr.splitlines() if "warning:" in line]


def test_row_a_run_worse_than_uniform_guessing_says_so_once(tmp_path):
    out = tmp_path / "model.npz"
    proc = train(tmp_path, out, "--steps", 600, *EXPLODING)
    [warning] = warnings(proc)   # once, though every later line is as bad
    assert warning.startswith("rnncore: warning: the training loss is ")
    assert ("worse than guessing uniformly among the 28 symbols (ln 28 = 3.3322): the model "
            "is learning nothing, most likely because the learning rate (50) is too high"
            in warning)
    assert " at step 300," in warning   # after its first few hundred steps, not before
    assert not [line for line in proc.stderr.splitlines() if "error:" in line]
    assert load_checkpoint(out).train_meta["step"] == 600   # saved, as any finite run is


def test_a_short_or_healthy_run_gives_no_warning(tmp_path):
    assert warnings(train(tmp_path, tmp_path / "short.npz", "--steps", 200, *EXPLODING)) == []
    healthy = train(tmp_path, tmp_path / "healthy.npz", "--steps", 400, "--optimizer", "sgd",
                    "--learning-rate", "0.1")
    assert warnings(healthy) == []


def test_row_keep_best_and_patience_never_keep_weights_worse_than_uniform(tmp_path):
    out = tmp_path / "model.npz"
    proc = train(tmp_path, out, "--steps", 2000, "--keep-best", "--patience", "2",
                 *EXPLODING)
    # every validation is worse than uniform: none is an improvement, so patience stops it
    # at the second (steps 200 and 400)
    assert "stopped early at step 400: no validation improvement in 2 evaluations" in \
        proc.stdout
    assert "best validation" not in proc.stdout
    ckpt = load_checkpoint(out)
    assert ckpt.best_model is None and ckpt.train_meta["best"] is None


def test_keep_best_keeps_the_good_weights_when_training_explodes_later(tmp_path):
    out = tmp_path / "model.npz"
    train(tmp_path, out, "--steps", 400, "--keep-best", "--optimizer", "sgd",
          "--learning-rate", "0.1")
    good = load_checkpoint(out).train_meta["best"]
    assert good["step"] == 400 and good["val_loss"] < LN_V
    proc = run("train", corpus(tmp_path, TEXT), "--out", out, "--steps", 800, "--resume",
               "--learning-rate", "50", "--clip", "0", "--print-every", 100,
               "--eval-every", 200, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(warnings(proc)) == 1
    ckpt = load_checkpoint(out)
    assert ckpt.train_meta["best"] == good
    best = json.loads(run("eval", out, tmp_path / "corpus.txt", "--json", cwd=tmp_path).stdout)
    latest = json.loads(run("eval", out, tmp_path / "corpus.txt", "--json", "--latest",
                            cwd=tmp_path).stdout)
    assert best["nats_per_char"] < LN_V < latest["nats_per_char"]


def test_row_eval_of_a_model_whose_perplexity_overflows(tmp_path):
    out = tmp_path / "model.npz"
    train(tmp_path, out, "--steps", 600, *EXPLODING)
    text = tmp_path / "corpus.txt"
    proc = run("eval", out, text, "--latest", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    nats = float(proc.stdout.split("predicted: ")[1].split(" nats/char")[0])
    assert nats > 710   # e^710 is beyond a double
    assert proc.stdout.rstrip().endswith("perplexity inf")
    as_json = json.loads(run("eval", out, text, "--json", cwd=tmp_path).stdout)
    assert as_json["perplexity"] is None   # JSON has no inf
    assert abs(as_json["nats_per_char"] - nats) < 1e-3   # no best kept: the same weights
