"""`rnncore sample` as people use it: streamed output, beam search, --stop,
--num-samples, the echoed prime, and conflicting options as one-line usage errors."""
import subprocess
import sys

import pytest

import rnncore
from rnncore import cli

from support import RNNCORE, assert_clean_error, run, saved_small_model


@pytest.fixture
def ckpt(tmp_path):
    """A small saved 2-layer LSTM over 'the cat sat on a mat.' characters."""
    return saved_small_model(tmp_path / "m.npz", "lstm")


def sample_out(capsys, *args):
    assert cli.main(["sample", *map(str, args)]) == 0
    return capsys.readouterr().out


def test_output_is_the_prime_and_the_sample(ckpt, capsys):
    model = rnncore.CharRNN.load(ckpt)
    out = sample_out(capsys, ckpt, "--prime", "the ", "--length", 1000, "--seed", 3,
                     "--temperature", 0.8, "--top-k", 5)
    assert out == "the " + model.sample(1000, "the ", temperature=0.8, top_k=5, seed=3) + "\n"


def test_echoed_prime_is_the_one_the_model_saw(ckpt, capsys):
    model = rnncore.CharRNN.load(ckpt)
    out = sample_out(capsys, ckpt, "--prime", "thQe cZat", "--skip-unknown", "--length", 30,
                     "--seed", 1)
    assert out == "the cat" + model.sample(30, "the cat", seed=1) + "\n"


def test_beam(ckpt, capsys):
    model = rnncore.CharRNN.load(ckpt)
    out = sample_out(capsys, ckpt, "--prime", "the c", "--length", 12, "--beam", 4)
    assert out == "the c" + model.complete("the c", 12, beam=4) + "\n"
    assert sample_out(capsys, ckpt, "--prime", "the c", "--length", 12, "--beam", 1) == \
        sample_out(capsys, ckpt, "--prime", "the c", "--length", 12, "--greedy")


def test_stop(ckpt, capsys):
    model = rnncore.CharRNN.load(ckpt)
    whole = model.sample(2000, "a", seed=7)
    stop = whole[100:103]
    out = sample_out(capsys, ckpt, "--prime", "a", "--length", 2000, "--seed", 7,
                     "--stop", stop)
    assert out == "a" + whole[:whole.find(stop) + 3] + "\n"


def test_num_samples_are_separated(ckpt, capsys):
    model = rnncore.CharRNN.load(ckpt)
    out = sample_out(capsys, ckpt, "--prime", "the", "--length", 150, "--seed", 2,
                     "--num-samples", 3)
    texts = model.sample(150, "the", seed=2, num_samples=3)
    assert out == "".join(f"=== sample {i} of 3 ===\nthe{t}\n"
                          for i, t in enumerate(texts, start=1))


@pytest.mark.slow
def test_output_is_streamed(ckpt, tmp_path):
    # like `rnncore sample ... --length 100000000 | head -c 50`: the first characters
    # arrive while the rest is still to be generated, and closing the pipe ends it quietly
    cmd = [RNNCORE] if RNNCORE else [sys.executable, "-m", "rnncore"]
    proc = subprocess.Popen(cmd + ["sample", str(ckpt), "--length", "100000000",
                                   "--prime", "the"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = proc.stdout.read(50)
    assert proc.poll() is None
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0
    assert len(head) == 50 and head.startswith(b"the")
    assert b"Traceback" not in proc.stderr.read()


@pytest.mark.slow
@pytest.mark.parametrize("flags,named", [
    (["--beam", "3", "--temperature", "0.5"], "--beam: not allowed with argument --temperature"),
    (["--beam", "3", "--top-k", "2"], "--beam: not allowed with argument --top-k"),
    (["--beam", "3", "--seed", "1"], "--beam: not allowed with argument --seed"),
    (["--beam", "3", "--greedy"], "--beam: not allowed with argument --greedy"),
    (["--beam", "3", "--top-p", "0.5"], "--beam: not allowed with argument --top-p"),
    (["--beam", "3", "--num-samples", "4"], "--num-samples: 4 is more than the 3 beams"),
    (["--greedy", "--top-p", "0.5"], "--greedy: not allowed with argument --top-p"),
    (["--top-p", "0"], "argument --top-p: must be in (0, 1], got 0"),
    (["--top-p", "1.5"], "argument --top-p: must be in (0, 1], got 1.5"),
    (["--beam", "3", "--stop", "."], "--beam: not allowed with argument --stop"),
    (["--greedy", "--temperature", "0.5"], "--greedy: not allowed with argument --temperature"),
    (["--greedy", "--top-k", "2"], "--greedy: not allowed with argument --top-k"),
    (["--greedy", "--seed", "1"], "--greedy: not allowed with argument --seed"),
    (["--greedy", "--num-samples", "2"], "--greedy: not allowed with argument --num-samples"),
    (["--beam", "0"], "argument --beam: must be a positive integer, got 0"),
    (["--num-samples", "0"], "argument --num-samples: must be a positive integer, got 0"),
    (["--stop", ""], "argument --stop: must not be empty"),
])
def test_conflicting_options_are_one_line_usage_errors(ckpt, tmp_path, flags, named):
    proc = run("sample", ckpt, *flags, cwd=tmp_path)
    assert_clean_error(proc, named, status=2)
    assert proc.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize("flags,named", [
    (["--beam", str(10 ** 20)], "a beam of width 100,000,000,000,000,000,000 over 30 "
                                "characters would need"),
    (["--num-samples", str(10 ** 12)], "1,000,000,000,000 streams would need"),
])
def test_more_streams_than_memory_is_refused_before_allocating(ckpt, tmp_path, flags, named):
    proc = run("sample", ckpt, "--length", "30", *flags, cwd=tmp_path)
    assert_clean_error(proc, named, status=1)
    assert "lower --num-samples or --beam" in proc.stderr
