"""The real `rnncore` console script in a subprocess: demo, train -> sample, argparse."""
import re

import numpy as np
import pytest

import rnncore
import rnncore.checkpoint
from rnncore import cli

from support import RNNCORE, SMALL, assert_clean_error, corpus, rnncore_command, run


def test_console_script_is_installed():
    assert RNNCORE is not None, "pip install should put the `rnncore` script beside python"


@pytest.mark.slow
def test_demo_completes_the_sentence(tmp_path):
    proc = run("demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].endswith("do redes recurrentes!")
    assert lines[-1] == "completion: do redes recurrentes!"
    assert "Hola mundo, aprendien" in lines[-2]
    assert any(re.match(r"step\s+100\s+loss \d+\.\d+ nats/char", l) for l in lines)


@pytest.mark.slow
def test_python_dash_m_works_too(tmp_path):
    proc = run("demo", "--steps", "200", cwd=tmp_path, script=False)
    assert proc.returncode == 0 and "completion:" in proc.stdout


@pytest.mark.parametrize("seed", range(20))
def test_demo_default_steps_suffice_for_many_seeds(seed, capsys):
    assert cli.main(["demo", "--seed", str(seed)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("do redes recurrentes!")


@pytest.mark.slow
def test_train_then_sample_round_trip(tmp_path):
    text = corpus(tmp_path)
    out = tmp_path / "model.npz"
    proc = run("train", text, "--out", out, "--steps", "60", *SMALL, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "step 60/60" in proc.stdout and "saved" in proc.stdout
    model = rnncore.CharRNN.load(out)
    assert model.hidden_size == 16 and model.dtype == np.float32
    proc = run("sample", out, "--prime", "the ", "--length", "80", "--seed", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    text_out = proc.stdout
    assert text_out.startswith("the ") and len(text_out) == 4 + 80 + 1
    again = run("sample", out, "--prime", "the ", "--length", "80", "--seed", "3", cwd=tmp_path)
    assert again.stdout == text_out
    greedy = run("sample", out, "--greedy", "--length", "20", cwd=tmp_path)
    assert greedy.stdout.rstrip("\n") == model.complete("", 20)


@pytest.mark.slow
def test_sample_top_k_and_temperature(tmp_path):
    out = tmp_path / "m.npz"
    assert run("train", corpus(tmp_path), "--out", out, "--steps", "5", *SMALL,
               cwd=tmp_path).returncode == 0
    proc = run("sample", out, "--length", "30", "--top-k", "2", "--temperature", "0.7",
               "--seed", "1", cwd=tmp_path)
    assert proc.returncode == 0 and len(proc.stdout) == 31


@pytest.mark.slow
@pytest.mark.parametrize("command", [["demo"], ["train"], ["sample"], []])
def test_help(command, tmp_path):
    proc = run(*command, "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "usage: rnncore" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("args,match", [
    (["train", "c.txt", "--out", "m.npz", "--hidden-size", "0"], "must be a positive integer"),
    (["train", "c.txt", "--out", "m.npz", "--seq-length", "-3"], "must be a positive integer"),
    (["train", "c.txt", "--out", "m.npz", "--batch-size", "0"], "must be a positive integer"),
    (["train", "c.txt", "--out", "m.npz", "--steps", "0"], "must be a positive integer"),
    (["train", "c.txt", "--out", "m.npz", "--learning-rate", "0"], "must be > 0"),
    (["train", "c.txt", "--out", "m.npz", "--learning-rate=-1e-3"], "must be > 0"),
    (["train", "c.txt", "--out", "m.npz", "--learning-rate", "nan"], "must be finite"),
    (["train", "c.txt", "--out", "m.npz", "--clip", "-1"], "must be >= 0"),
    (["train", "c.txt", "--out", "m.npz", "--optimizer", "lbfgs"], "invalid choice"),
    (["train", "c.txt", "--out", "m.npz", "--hidden-size", "ten"], "is not an integer"),
    (["train", "c.txt"], "required: --out"),
    (["sample", "m.npz", "--temperature", "0"], "must be > 0"),
    (["sample", "m.npz", "--temperature", "-1"], "must be > 0"),
    (["sample", "m.npz", "--length", "0"], "must be a positive integer"),
    (["sample", "m.npz", "--top-k", "0"], "must be a positive integer"),
    (["frobnicate"], "invalid choice"),
])
def test_argparse_errors(args, match, tmp_path):
    proc = run(*args, cwd=tmp_path)
    assert_clean_error(proc, match, status=2)


@pytest.mark.slow
def test_output_into_a_closed_pipe_is_quiet(tmp_path):
    import subprocess
    out = tmp_path / "m.npz"
    assert run("train", corpus(tmp_path), "--out", out, "--steps", "3", *SMALL,
               cwd=tmp_path).returncode == 0
    proc = subprocess.Popen([*rnncore_command(), "sample", str(out), "--length", "200000"],
                            cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(10)   # like `| head -c 10`
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0
    assert proc.stderr.read() == b""


@pytest.mark.slow
def test_threads_and_clip_norm_options(tmp_path):
    out = tmp_path / "m.npz"
    proc = run("train", corpus(tmp_path), "--out", out, "--steps", "5", *SMALL, "--threads",
               "1", "--clip-norm", "1.0", "--clip", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = rnncore.checkpoint.load_checkpoint(out).train_meta["config"]
    assert config["clip_norm"] == 1.0 and config["clip"] == 0.0
    assert_clean_error(run("train", corpus(tmp_path), "--out", out, "--threads", "0",
                           cwd=tmp_path), "must be a positive integer", status=2)
