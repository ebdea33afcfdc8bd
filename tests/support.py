"""What many tests share, in one place: running the real CLI, small corpora and models.

Tests build what they need themselves (never from ../shared): corpus() writes a small text,
random_model() and gated_model() give models with O(1) weights whose recurrence contracts,
saved_small_model() a checkpoint the CLI tests sample from; Server a real `rnncore serve`
on a free loopback port for the server's tests.
"""
import hashlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import time

import numpy as np
import pytest

import rnncore


def _installed_script():
    """The `rnncore` console script of this interpreter's installation: beside the
    interpreter (a venv's bin, also when that venv is not activated), else on PATH."""
    for folder in (os.path.dirname(sys.executable), sysconfig.get_path("scripts")):
        found = shutil.which("rnncore", path=folder)
        if found:
            return found
    return shutil.which("rnncore")


RNNCORE = _installed_script()


def rnncore_command(script=True):
    """argv prefix that starts rnncore: the console script when installed, else
    `python -m rnncore` with the interpreter running the tests."""
    return [RNNCORE] if script and RNNCORE else [sys.executable, "-m", "rnncore"]


def run(*args, cwd, timeout=120, script=True):
    """Run the installed console script (or `python -m rnncore`) in a subprocess."""
    return subprocess.run(rnncore_command(script) + [str(a) for a in args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def assert_clean_error(proc, match, status=1):
    """Exit status `status` (README: 1 for bad input, 2 for a bad argument) with one
    `rnncore: error:` line naming the problem, and no traceback."""
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [l for l in proc.stderr.splitlines() if "error:" in l]
    assert len(errors) == 1, proc.stderr
    assert match in errors[0], errors[0]


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def corpus(tmp_path, text="the cat sat on the mat. " * 40, name="corpus.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


FOX = "the quick brown fox jumps over the lazy dog; " * 60   # 28 symbols, 2,700 chars
SMALL_SETTINGS = {"hidden_size": 16, "seq_length": 8, "batch_size": 2}


def quiet_fit(tmp_path, text=FOX, **kwargs):
    """fit() on `text` (written to tmp_path/corpus.txt) into tmp_path/model.npz, with
    small settings, echoing into a list: (RunResult, lines)."""
    lines = []
    options = {**SMALL_SETTINGS, "print_every": 10, "eval_every": 20, **kwargs}
    result = rnncore.fit(corpus(tmp_path, text), tmp_path / "model.npz", echo=lines.append,
                         **options)
    return result, lines


def read_log(tmp_path, name="model.metrics.jsonl"):
    """The records of the metrics log tmp_path/name, line by line."""
    with open(tmp_path / name) as f:
        return [json.loads(line) for line in f]


def text_of_random_words(n_words, seed=0):
    """Text of random words, not periodic: its held-out end repeats no training window."""
    rng = np.random.default_rng(seed)
    lexicon = ["".join(rng.choice(list("abcdefghijklmnop"), rng.integers(1, 7)))
               for _ in range(60)]
    return " ".join(rng.choice(lexicon, n_words)) + ".\n"


#: the scenarios of the CLI tests were set up with the model train had before issue 27's
#: defaults (a GRU, step dropout 0.1, no weight drop, decay or average): kept by name
PREVIOUS_MODEL = ["--cell", "gru", "--dropout", "0.1", "--dropout-mode", "step",
                  "--weight-drop", "0", "--weight-decay", "0", "--average", "0"]
SMALL = ["--hidden-size", "16", "--seq-length", "8", "--batch-size", "2", "--print-every", "10",
         *PREVIOUS_MODEL]


def random_model(n_vocab, hidden_size, dtype="float64", seed=0, scale=0.5):
    """A model over the first n_vocab printable characters with O(scale) weights, so that
    tanh and softmax are far from their linear regimes.  Whh is scaled by 1/sqrt(H) so the
    recurrence stays contracting: in the chaotic regime any two correct implementations
    drift apart exponentially in T, and no tolerance would be meaningful."""
    vocab = rnncore.Vocab([chr(33 + i) for i in range(n_vocab)])
    model = rnncore.CharRNN(vocab, hidden_size, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name, p in model.params.items():
        p[...] = rng.standard_normal(p.shape) * scale
    model.params["Whh"] /= max(1.0, np.sqrt(hidden_size) * scale / 0.9)
    return model


def gated_model(cell, L, V, H, dtype="float64", seed=0, scale=0.5, dropout=0.0):
    """A model with O(scale) weights and nonzero biases; recurrent weights scaled by
    1/sqrt(H) so the recurrence contracts (see random_model)."""
    vocab = rnncore.Vocab([chr(33 + i) for i in range(V)])
    model = rnncore.CharRNN(vocab, H, dtype=dtype, seed=seed, cell=cell, num_layers=L,
                            dropout=dropout)
    rng = np.random.default_rng(seed + 1)
    for name, p in model.params.items():
        p[...] = rng.standard_normal(p.shape) * scale
        if name.startswith("Whh"):
            p /= max(1.0, np.sqrt(H) * scale / 0.9)
    return model


def ragged_texts(rng, B, V, longest):
    """(B, P) right-aligned texts for feed_rows and their starts: lengths 0 .. longest,
    some of them at and just past the feed chunks' edges (FEED_ROWS = 256 rows of streams
    × steps, pyx/generate.pxi)."""
    chunk = max(1, 256 // B)
    lengths = rng.integers(0, longest + 1, B)
    lengths[:4] = [0, longest, longest - chunk, longest - chunk - 1]
    P = int(lengths.max())
    chars = rng.integers(0, V, (B, P)).astype(np.intp)
    return chars, (P - lengths).astype(np.intp)


def saved_small_model(path, cell):
    """A 2-layer model of `cell` (8 units, weights as gated_model's) over the characters of
    'the cat sat on a mat.', saved at path; returns path."""
    vocab = rnncore.Vocab.from_text("the cat sat on a mat.")
    model = gated_model(cell, 2, len(vocab), 8, seed=1, scale=0.9)
    model.vocab = vocab
    model.save(path)
    return path


def gradient_floor(ref_grads, dtype):
    """In float32, a gradient far smaller than the largest one (cancelling terms: a bias
    of two characters, a recurrent weight of one unit) is judged on 1% of the largest one's
    scale: its terms are that large, and float32 sums them with errors of their size."""
    if dtype == "float64":
        return 0.0
    return 1e-2 * max(np.abs(g).max() for g in ref_grads.values())


def assert_close(a, b, rtol, name, floor=0.0):
    """max |a - b| within rtol of max |b| (or of `floor`, if larger)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"{name}: shape {a.shape} != {b.shape}"
    scale = max(np.abs(b).max(), floor, 1e-30)
    err = np.abs(a - b).max() / scale
    assert err <= rtol, f"{name}: relative error {err:.3g} > {rtol}"


# ---- generation ------------------------------------------------------------------------
def continuation_log_prob(model, prime, cont):
    """log p(cont | prime) in nats, from the window kernel's loss (an independent path:
    GEMMs over a window, not the generation step)."""
    ids = model.vocab.encode(prime)
    cont = np.asarray(cont, np.int64)
    if len(ids) == 0:
        # the first character is predicted from the zero state, where the logits are by
        by = model.params["by"].astype(np.float64)
        first = by[cont[0]] - (by.max() + np.log(np.exp(by - by.max()).sum()))
        if len(cont) == 1:
            return first
        loss, _ = model.loss(cont[:-1], cont[1:])
        return first - loss * (len(cont) - 1)
    state = None
    if len(ids) > 1:
        _, state = model.loss(ids[:-1], ids[1:])
    inputs = np.concatenate([ids[-1:], cont[:-1]])
    loss, _ = model.loss(inputs, cont, state)
    return -loss * len(cont)


def fixed_distribution_model(probs):
    """A model whose next-character distribution is `probs` whatever came before:
    Why = 0, so the logits are by = log(probs)."""
    vocab = rnncore.Vocab([chr(97 + i) for i in range(len(probs))])
    model = rnncore.CharRNN(vocab, 4, seed=0)
    model.params["Why"][...] = 0
    model.params["by"][...] = np.log(probs)
    return model


def frequencies(model, text):
    counts = np.bincount(model.vocab.encode(text), minlength=model.n_vocab)
    return counts / counts.sum()


P = np.array([0.5, 0.25, 0.15, 0.07, 0.03])
N_DRAWS = 40000


def assert_binomial(f, p, n=N_DRAWS, z=4.5):
    """Each frequency f[i] of n draws within z standard deviations sqrt(p(1-p)/n) of its
    probability p[i]: a bound that scales with p (at p = 0.03 it is ±0.0038, not ±0.01),
    exceeded by chance with probability ~1e-5 per class (and the seeds are fixed)."""
    p = np.asarray(p, dtype=float)
    bound = z * np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(f - p) <= bound), (f, p, bound)




def require(module):
    """The module, or a skip where it is not installed; in CI (CI=true, where .ci/run
    installs it) a missing module fails instead, so that its tests never skip unseen."""
    import importlib
    import pytest
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def trained(tmp_path, steps=20, extra=()):
    """A checkpoint tmp_path/model.npz trained by the CLI on corpus()'s text (SMALL)."""
    out = tmp_path / "model.npz"
    proc = run("train", corpus(tmp_path), "--out", out, "--steps", steps, *SMALL, *extra,
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out


def rewrite_npz(path, **changes):
    """Rewrite the .npz at path with entries changed (None: removed)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del arrays[k]
    np.savez(path, **arrays)


WORDS = text_of_random_words(500)
WORD_OPTS = ["--hidden-size", "16", "--seq-length", "8", "--batch-size", "2", *PREVIOUS_MODEL]


def train_words(tmp_path, *extra, steps, name="model.npz"):
    """The CLI trained on WORDS (random words: a held-out end unlike any training window)."""
    out = tmp_path / name
    proc = run("train", corpus(tmp_path, WORDS), "--out", out, "--steps", steps,
               *WORD_OPTS, *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def held_out(tmp_path, fraction, text=WORDS):
    """README: --val-fraction F holds out the end of the corpus; that end, as a file."""
    n_val = int(len(text) * fraction)
    path = tmp_path / "held_out.txt"
    path.write_text(text[len(text) - n_val:], encoding="utf-8")
    return path, n_val


def eval_json(tmp_path, out, text_path, *extra):
    """`rnncore eval --json` of out on text_path, parsed."""
    proc = run("eval", out, text_path, "--json", *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def train_fox(tmp_path, *extra, steps=60, text=FOX):
    """The CLI trained on `text` into tmp_path/model.npz (SMALL, validating every 20)."""
    out = tmp_path / "model.npz"
    proc = run("train", corpus(tmp_path, text), "--out", out, "--steps", steps, *SMALL,
               "--eval-every", "20", *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out, proc


#: a learning rate so high the loss stays above ln V
EXPLODING = ["--optimizer", "sgd", "--learning-rate", "50", "--clip", "0"]


def train_to(tmp_path, out, *extra):
    """The CLI trained on FOX into `out` (SMALL, logging every 100, validating every 200)."""
    proc = run("train", corpus(tmp_path, FOX), "--out", out, *SMALL, "--print-every", 100,
               "--eval-every", 200, *extra, cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc


def warnings_of(proc):
    """The warning lines a CLI run printed on stderr."""
    return [line for line in proc.stderr.splitlines() if "warning:" in line]


def run_unprivileged(*args, cwd, timeout=120):
    """The CLI in a subprocess that cannot write where only root could: as root (who
    writes anywhere) it imports rnncore, then drops to the user nobody before main runs;
    as anyone else it runs as that user.  cwd must be readable by nobody (see
    shared_tmp)."""
    code = ("import os, sys\n"
            "import rnncore, rnncore.cli\n"
            "rnncore.cli.build_parser()  # what argparse imports lazily (locale), while root\n"
            "if os.geteuid() == 0:\n"
            "    os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
            "sys.exit(rnncore.cli.main(sys.argv[1:]))\n")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


def shared_tmp(tmp_path):
    """A folder the user nobody can read and enter (pytest's tmp_path is root's alone)."""
    import tempfile
    from pathlib import Path
    folder = Path(tempfile.mkdtemp(prefix="rnncore-shared-"))
    folder.chmod(0o755)
    return folder


def run_dying(*args, cwd, kill_at, where="mid-write", timeout=120):
    """The CLI in a subprocess that SIGKILLs itself inside its kill_at-th checkpoint
    write: "mid-write" after half the file's bytes, "before-rename" once the whole
    temporary file is written and fsync'ed, just before it would replace the checkpoint.
    A deterministic stand-in for a kill that happens to land inside a write."""
    code = f"""
import io, os, signal, sys
import rnncore.checkpoint as checkpoint, rnncore.files as files
original, count = files.write_atomically, [0]

def dying(path, write, what="the checkpoint"):
    count[0] += 1
    if count[0] < {kill_at}:
        return original(path, write, what)
    if {where!r} == "mid-write":
        def half(f):
            buf = io.BytesIO()
            write(buf)
            data = buf.getvalue()
            f.write(data[:len(data) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return original(path, half, what)
    os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
    return original(path, write, what)

checkpoint.write_atomically = dying
import rnncore.cli
sys.exit(rnncore.cli.main(sys.argv[1:]))
"""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def fit_then_spoil(tmp_path):
    """A keep-best run (vanilla, 60 steps) resumed to step 100 at a rate that spoils it:
    its best (step 60) and latest parameters differ.  Returns the checkpoint path."""
    vanilla = dict(cell="rnn", num_layers=1, dropout=0.0, lr_schedule="constant")
    quiet_fit(tmp_path, steps=60, keep_best=True, learning_rate=0.01, **vanilla)
    result, _ = quiet_fit(tmp_path, steps=100, resume=True, learning_rate=0.5)
    assert result.best["step"] == 60, "the scenario needs its best before the spoiling"
    return tmp_path / "model.npz"


# ---- a real server ------------------------------------------------------------------
HOLA = "Hola mundo, aprendiendo redes recurrentes!"


def demo_model(steps=3000):
    """The demo's model, trained as `rnncore demo` trains it (about 0.2 s)."""
    model = rnncore.CharRNN(rnncore.Vocab.from_text(HOLA), hidden_size=64, seed=0)
    rnncore.Trainer(model, HOLA, seq_length=10, learning_rate=1e-2, optimizer="sgd",
                    clip=5.0).train(steps)
    return model


class Server:
    """`rnncore serve CKPT --port 0 ...` started and waited for: .url, .proc, .lines
    (what it printed)."""

    def __init__(self, ckpt, *args, cwd, timeout=60):
        self.proc = subprocess.Popen(
            rnncore_command() + ["serve", str(ckpt), "--port", "0", *map(str, args)],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL)
        self.lines = []
        self.url = None
        deadline = time.monotonic() + timeout
        while self.url is None:
            line = self._readline(deadline)
            if line is None:
                self.stop()
                raise RuntimeError(f"rnncore serve did not start: {self.lines} "
                                   f"{self.proc.stderr.read()}")
            self.lines.append(line)
            found = re.match(r"serving .* on (http://\S+)$", line.strip())
            if found:
                self.url = found.group(1)

    def _readline(self, deadline):
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if sel.select(timeout=0.1):
                    line = self.proc.stdout.readline()
                    return line if line else None
                if self.proc.poll() is not None:
                    return None
        return None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Send `sig`; returns (exit status, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"the server did not stop on {sig!r} within {timeout} s")
        return self.proc.returncode, out, err


@pytest.fixture(scope="module")
def demo_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "hola.npz"
    demo_model().save(path)
    return path


def running_server(ckpt, *args, cwd):
    """A generator for a fixture: yields a started Server, stops it with SIGTERM after,
    and checks that it stopped cleanly."""
    server = Server(ckpt, *args, cwd=cwd)
    try:
        yield server
    finally:
        status, out, err = server.stop()
        assert status == 0, (status, out, err)
        assert "Traceback" not in err, err

