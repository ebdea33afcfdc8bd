"""README's promises about a training run, each checked exactly through the CLI:
validation on the held-out text, keep-best, patience, the metrics log across a resume,
--latest, --force, SIGTERM, and a memory-mapped corpus that is neither copied nor held."""
import json
import math
import mmap
import re
import signal
import subprocess
import time

import numpy as np
import pytest

import rnncore.corpus
import rnncore.train
from rnncore import cli
from rnncore.checkpoint import load_checkpoint
from cli_helpers import corpus, rnncore_command, run

OPTS = ["--hidden-size", "16", "--seq-length", "8", "--batch-size", "2"]


def text_of_random_words(n_words, seed=0):
    """Text of random words, not periodic: its held-out end repeats no training window."""
    rng = np.random.default_rng(seed)
    lexicon = ["".join(rng.choice(list("abcdefghijklmnop"), rng.integers(1, 7)))
               for _ in range(60)]
    return " ".join(rng.choice(lexicon, n_words)) + ".\n"


TEXT = text_of_random_words(500)


def train(tmp_path, *extra, steps, name="model.npz"):
    out = tmp_path / name
    proc = run("train", corpus(tmp_path, TEXT), "--out", out, "--steps", steps, *OPTS,
               *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def read_log(tmp_path, name="model.metrics.jsonl"):
    with open(tmp_path / name) as f:
        return [json.loads(line) for line in f]


def held_out(tmp_path, fraction):
    """README: --val-fraction F holds out the end of the corpus."""
    n_val = int(len(TEXT) * fraction)
    path = tmp_path / "held_out.txt"
    path.write_text(TEXT[len(TEXT) - n_val:], encoding="utf-8")
    return path, n_val


def eval_json(tmp_path, out, text_path, *extra):
    proc = run("eval", out, text_path, "--json", *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# ---- validation is the held-out text, and keep-best keeps the best -----------------------
def test_logged_validation_is_evaluate_on_the_held_out_end(tmp_path):
    out, _ = train(tmp_path, "--val-fraction", "0.1", "--eval-every", "20",
                   "--print-every", "10", steps=60)
    log = read_log(tmp_path)
    validated = [r for r in log if "val_loss" in r]
    assert [r["step"] for r in validated] == [20, 40, 60]
    path, n_val = held_out(tmp_path, 0.1)
    result = eval_json(tmp_path, out, path, "--latest")
    assert result["chars"] == n_val - 1 and result["unseen_chars"] == 0
    assert validated[-1]["val_loss"] == result["nats_per_char"]
    assert validated[-1]["val_bits_per_char"] == pytest.approx(result["bits_per_char"],
                                                               rel=1e-12)
    # and not the training text: the same model scores differently there
    train_part = corpus(tmp_path, TEXT[:len(TEXT) - n_val], name="train_part.txt")
    assert eval_json(tmp_path, out, train_part, "--latest")["nats_per_char"] != \
        result["nats_per_char"]


KEEP_BEST = ["--keep-best", "--val-fraction", "0.1", "--eval-every", "10", "--print-every",
             "10", "--optimizer", "adam", "--learning-rate", "1", "--warmup-steps", "1000"]


def train_then_spoil(tmp_path):
    """80 steps in one run, at a rate rising from 0 (a warm-up longer than the run): it
    learns, then the rate grows too high and validation gets worse, so the best parameters
    are an earlier step's, not the latest."""
    return train(tmp_path, *KEEP_BEST, steps=80)


def test_keep_best_keeps_the_best_validation_parameters(tmp_path):
    out, proc = train_then_spoil(tmp_path)
    validated = {r["step"]: r["val_loss"] for r in read_log(tmp_path) if "val_loss" in r}
    assert sorted(validated) == [10, 20, 30, 40, 50, 60, 70, 80]
    best_step = min(validated, key=validated.get)
    assert best_step != 80, "the scenario must have a best step before the last"
    ckpt = load_checkpoint(out)
    assert ckpt.train_meta["best"] == {"val_loss": validated[best_step], "step": best_step}
    assert f"best validation {validated[best_step]:.4f} nats/char" in proc.stdout
    assert f"at step {best_step}" in proc.stdout.splitlines()[-1]
    path, _ = held_out(tmp_path, 0.1)
    # eval uses the best parameters unless given --latest: each equals its logged value
    assert eval_json(tmp_path, out, path)["nats_per_char"] == validated[best_step]
    assert eval_json(tmp_path, out, path, "--latest")["nats_per_char"] == validated[80]


def test_sample_uses_the_best_parameters_unless_latest(tmp_path):
    out, _ = train_then_spoil(tmp_path)
    ckpt = load_checkpoint(out)
    best = ckpt.best_model.sample(300, prime="a", seed=5)
    latest = ckpt.model.sample(300, prime="a", seed=5)
    assert best != latest, "the scenario must have best and latest parameters that differ"
    args = ["sample", out, "--prime", "a", "--length", "300", "--seed", "5"]
    assert run(*args, cwd=tmp_path).stdout == "a" + best + "\n"
    assert run(*args, "--latest", cwd=tmp_path).stdout == "a" + latest + "\n"


# ---- patience ---------------------------------------------------------------------------
def expected_stop(validations, patience, n_vocab):
    """The step of the validation that makes `patience` in a row without improvement (a
    loss above ln V, worse than uniform guessing, is never an improvement)."""
    best, since = math.inf, 0
    for step, loss in validations:
        if loss < best and loss <= math.log(n_vocab):
            best, since = loss, 0
        else:
            since += 1
            if since == patience:
                return step
    return None


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_patience_n_stops_at_the_nth_validation_without_improvement(tmp_path, patience):
    # a run that improves in fits and starts: patience 2 and 3 meet single misses first
    out, proc = train(tmp_path, "--patience", patience, "--val-fraction", "0.1",
                      "--eval-every", "5", "--print-every", "1000", "--optimizer", "adam",
                      "--learning-rate", "0.02", steps=1000)
    validations = [(r["step"], r["val_loss"]) for r in read_log(tmp_path) if "val_loss" in r]
    stop = expected_stop(validations, patience, len(set(TEXT)))
    assert stop is not None and stop < 1000, "the scenario must stop early"
    assert all(loss < math.log(len(set(TEXT))) for _, loss in validations[1:])
    assert validations[-1][0] == stop            # not one validation later
    assert load_checkpoint(out).train_meta["step"] == stop
    last = proc.stdout.splitlines()[-1]
    assert last.startswith(f"stopped early at step {stop}:")
    # the message names the count it stopped at (wording aside)
    assert re.search(rf"\b{patience} (validation|evaluation)s?\b", last), last


# ---- the metrics log across a resume ------------------------------------------------------
def test_resume_keeps_the_log_up_to_the_checkpoint_and_appends(tmp_path):
    every = ["--print-every", "10", "--eval-every", "20", "--val-fraction", "0.1"]
    out, _ = train(tmp_path, *every, steps=40)
    before = read_log(tmp_path)
    assert [r["step"] for r in before] == [10, 20, 30, 40]
    with open(tmp_path / "model.metrics.jsonl", "a") as f:  # what an interrupted run
        for step in (50, 55):                                # logged after its checkpoint
            f.write(json.dumps({"step": step, "train_loss": -1.0}) + "\n")
    proc = run("train", tmp_path / "corpus.txt", "--out", out, "--steps", 70, "--resume",
               *every, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    log = read_log(tmp_path)
    assert [r["step"] for r in log] == [10, 20, 30, 40, 50, 60, 70]
    assert log[:4] == before                     # the checkpoint step's own line included
    assert all(r["train_loss"] > 0 for r in log)  # the stale lines are gone
    assert [r["step"] for r in log if "val_loss" in r] == [20, 40, 60, 70]
    elapsed = [r["elapsed"] for r in log]
    assert elapsed == sorted(elapsed)


# ---- --force ----------------------------------------------------------------------------
def test_force_overwrites_an_existing_run_from_scratch(tmp_path):
    out, _ = train(tmp_path, "--print-every", "5", steps=20)
    proc = run("train", tmp_path / "corpus.txt", "--out", out, "--steps", 6, "--force",
               "--hidden-size", "8", "--print-every", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ckpt = load_checkpoint(out)
    assert ckpt.model.hidden_size == 8 and ckpt.train_meta["step"] == 6
    assert [r["step"] for r in read_log(tmp_path)] == [3, 6]   # a new log, not appended


# ---- SIGTERM ----------------------------------------------------------------------------
def test_sigterm_finishes_the_step_saves_and_exits_130(tmp_path):
    text = corpus(tmp_path, text_of_random_words(20000, seed=1))
    out = tmp_path / "m.npz"
    proc = subprocess.Popen([*rnncore_command(), "train", text, "--out", out, "--steps",
                             "100000000", "--hidden-size", "32", "--print-every", "10",
                             "--checkpoint-every", "1000000"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:   # wait until training is under way
        if proc.stdout.readline().startswith("step "):
            break
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    line = [l for l in stdout.splitlines() if l.startswith("interrupted at step ")][-1]
    step = int(line.split()[3].rstrip(":"))
    assert f"saved {out}" in line
    assert load_checkpoint(out).train_meta["step"] == step >= 10


# ---- a memory-mapped corpus: read in place, pages let go -----------------------------------
def backed_by_a_mapping(a):
    while a is not None:
        if isinstance(a, mmap.mmap):
            return True
        a = getattr(a, "base", None)
    return False


def test_a_cached_corpus_is_trained_in_place_and_its_pages_released(tmp_path, monkeypatch,
                                                                     capsys):
    text = text_of_random_words(250_000, seed=2)
    assert len(text.encode()) > rnncore.corpus.CACHE_MIN_BYTES   # so it is memory-mapped
    path = corpus(tmp_path, text)
    streams_of, released = [], []
    real_make_streams = rnncore.train.make_streams
    real_release = rnncore.corpus.Corpus.release_pages

    def make_streams(data, n_streams):
        streams_of.append(data)
        return real_make_streams(data, n_streams)

    def release_pages(self):
        released.append(self)
        return real_release(self)

    monkeypatch.setattr(rnncore.train, "make_streams", make_streams)
    monkeypatch.setattr(rnncore.corpus.Corpus, "release_pages", release_pages)
    status = cli.main(["train", str(path), "--out", str(tmp_path / "m.npz"), "--steps", "2000",
                       "--hidden-size", "4", "--seq-length", "4", "--batch-size", "1",
                       "--val-fraction", "0.001", "--print-every", "1000"])
    assert status == 0, capsys.readouterr().err
    assert len(streams_of) == 1 and backed_by_a_mapping(streams_of[0])  # no copy in RAM
    assert 2 <= len(released) <= 3      # every 1,000 steps (and perhaps at the end)


def mapping_rss_kb(path):
    """Resident kB of this process's mappings of `path` (Linux /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if fields and "-" in fields[0] and len(fields) >= 5:   # a mapping's header
                inside = fields[-1] == str(path)
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total


@pytest.mark.skipif(not hasattr(mmap, "MADV_DONTNEED"), reason="no madvise here")
def test_release_pages_drops_the_resident_pages_of_the_mapping(tmp_path):
    try:
        open("/proc/self/smaps").close()
    except OSError:
        pytest.skip("no /proc/self/smaps")
    path = corpus(tmp_path, text_of_random_words(400_000, seed=3))
    c = rnncore.corpus.load_corpus(str(path), cache_min_bytes=0)
    assert int(np.asarray(c.data, dtype=np.int64).sum()) > 0       # touch every page
    assert mapping_rss_kb(c.cache_path) > 1000
    c.release_pages()
    assert mapping_rss_kb(c.cache_path) == 0
    assert c.vocab.decode(c.data[:20]) == path.read_text()[:20]     # still readable


def test_resume_without_a_metrics_log_starts_one(tmp_path):
    out, _ = train(tmp_path, "--print-every", "5", steps=10)
    (tmp_path / "model.metrics.jsonl").unlink()
    proc = run("train", tmp_path / "corpus.txt", "--out", out, "--steps", 20, "--resume",
               "--print-every", "5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [r["step"] for r in read_log(tmp_path)] == [15, 20]
