"""Which initialisation of the gated cells learns best: rnncore's 2x128 LSTM and GRU, started
from each scheme below, trained 1,500 Adam steps at train's usual settings on Python source,
and scored on held-out source; PyTorch with its own initialisation beside them, and a twin
check (rnncore and PyTorch from the same weights).

    python bench/init_trials.py                 # the record: docs/init-trials.json (~30 min)
    python bench/init_trials.py --steps 30 --seeds 1 --cells gru --out /tmp/quick.json

The corpus is the running interpreter's own standard library (sysconfig's "stdlib" folder):
the .py files of TRAIN_FILES for training, those of HELD_OUT_FILES (whole files, never seen
in training) for the held-out loss.  The record names each file relative to that folder,
with its size and SHA-256, and the Python version.

Every scheme draws the weights exactly as CharRNN does (uniform(±1/√H), from
numpy.random.default_rng(seed), weights first in the canonical order), so for one seed the
schemes start from the same weights and differ only in the biases, and they train on the
same windows with the same dropout masks (Trainer(seed=seed)): the seed-by-seed differences
are the biases' doing.  Losses are mean nats per character.  Nothing here is timed.
"""
import argparse
import datetime
import hashlib
import json
import platform
import sys
import sysconfig
from pathlib import Path

import numpy as np

import rnncore
from rnncore.reference import param_shapes
from rnncore.train import Trainer, evaluate

ROOT = Path(__file__).resolve().parent.parent
# tests/package/test_records.py loads this file by path, where bench/ is not on sys.path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from shakespeare import TorchStack, twin_window  # noqa: E402  (bench/shakespeare.py)

# .py files of the standard library (single files in Python 3.9 to 3.13), sorted
TRAIN_FILES = (
    "argparse.py", "ast.py", "base64.py", "bdb.py", "cmd.py", "codecs.py", "configparser.py",
    "contextlib.py", "copy.py", "csv.py", "dataclasses.py", "difflib.py", "dis.py",
    "enum.py", "fileinput.py", "fnmatch.py", "ftplib.py", "functools.py", "getopt.py",
    "gettext.py", "glob.py", "gzip.py", "heapq.py", "hmac.py", "imaplib.py", "inspect.py",
    "ipaddress.py", "locale.py", "mailbox.py", "mimetypes.py", "numbers.py", "operator.py",
    "optparse.py", "os.py", "pdb.py", "pickle.py", "pkgutil.py", "platform.py",
    "plistlib.py", "poplib.py", "pprint.py", "queue.py", "random.py", "sched.py",
    "selectors.py", "shutil.py", "smtplib.py", "socket.py", "socketserver.py",
    "statistics.py", "string.py", "subprocess.py", "tarfile.py", "tempfile.py",
    "threading.py", "timeit.py", "trace.py", "traceback.py", "types.py", "typing.py",
    "uuid.py", "warnings.py", "weakref.py", "webbrowser.py")
HELD_OUT_FILES = ("calendar.py", "fractions.py", "shlex.py", "textwrap.py", "tokenize.py")

# train's usual settings (rnncore.TRAIN_DEFAULTS) but the model's size; fixed across schemes
SETTINGS = {k: rnncore.TRAIN_DEFAULTS[k] for k in (
    "dtype", "seq_length", "batch_size", "optimizer", "learning_rate", "clip")}
SETTINGS.update(num_layers=2, hidden_size=128, lr_schedule="constant")
DROPOUTS = (0.0, 0.1)


# ---- the schemes: {name: (description, cells, draw(name, shape, cell, H, rng))} ----------
def _uniform(rng, H, shape):
    return rng.uniform(-1 / np.sqrt(H), 1 / np.sqrt(H), shape)


def _weight(name, shape, H, rng):
    return _uniform(rng, H, shape)


def draw_zero(name, shape, cell, H, rng):
    """Weights uniform(±1/√H), every bias zero (rnncore 0.1's GRU start)."""
    return _weight(name, shape, H, rng) if name.startswith("W") else np.zeros(shape)


def draw_forget1(name, shape, cell, H, rng):
    """Zero biases but 1.0 on every LSTM layer's forget-gate block (rnncore 0.1's LSTM
    start)."""
    p = draw_zero(name, shape, cell, H, rng)
    if cell == "lstm" and name.startswith("bh"):
        p[H:2 * H] = 1.0
    return p


def draw_pytorch(name, shape, cell, H, rng):
    """PyTorch's start: its bias_ih and bias_hh each uniform(±1/√H), and nn.Linear's bias
    too.  rnncore's bh is PyTorch's bias_ih + bias_hh (the GRU's n block: bias_ih alone,
    bias_hh's n block being bhn), so it is the sum of two uniform draws."""
    if name.startswith("W"):
        return _weight(name, shape, H, rng)
    p = _uniform(rng, H, shape)
    if name.startswith("bh") and not name.startswith("bhn"):
        summed = shape[0] if cell == "lstm" else 2 * H     # gru: r and z, not n
        p[:summed] += _uniform(rng, H, summed)
    return p


def draw_pytorch_forget1(name, shape, cell, H, rng):
    """PyTorch's start with the LSTM forget-gate block of bh (bias_ih + bias_hh) at 1.0."""
    p = draw_pytorch(name, shape, cell, H, rng)
    if cell == "lstm" and name.startswith("bh"):
        p[H:2 * H] = 1.0
    return p


SCHEMES = {   # {name: the cells it is tried on}
    "forget1": ("lstm",),
    "zero": ("lstm", "gru"),
    "pytorch": ("lstm", "gru"),
    "pytorch-forget1": ("lstm",),
}
DRAWS = {"forget1": draw_forget1, "zero": draw_zero, "pytorch": draw_pytorch,
         "pytorch-forget1": draw_pytorch_forget1}
RNNCORE_0_1 = {"lstm": "forget1", "gru": "zero"}      # the start before these trials


def initial_params(scheme, cell, n_vocab, hidden_size, num_layers, seed, dtype="float64"):
    """The parameters `scheme` starts a model from: drawn from default_rng(seed) in the
    canonical order (rnncore.reference.param_shapes), in float64, then cast."""
    rng = np.random.default_rng(seed)
    shapes = param_shapes(cell, n_vocab, hidden_size, num_layers)
    return {name: DRAWS[scheme](name, shape, cell, hidden_size, rng).astype(dtype)
            for name, shape in shapes.items()}


# ---- the corpus -------------------------------------------------------------------------
def stdlib_corpus(train_files=TRAIN_FILES, held_out_files=HELD_OUT_FILES, stdlib=None):
    """{"train": str, "held_out": str, "files": [...]} from the standard library's .py files
    (those missing from this Python are left out and listed)."""
    folder = Path(stdlib or sysconfig.get_paths()["stdlib"])
    parts, files, missing = {"train": [], "held_out": []}, [], []
    for part, names in (("train", train_files), ("held_out", held_out_files)):
        for name in names:
            path = folder / name
            if not path.is_file():
                missing.append(name)
                continue
            raw = path.read_bytes()
            text = raw.decode("utf-8")
            parts[part].append(text)
            files.append({"file": name, "part": part, "bytes": len(raw), "chars": len(text),
                          "sha256": hashlib.sha256(raw).hexdigest()})
    if not parts["train"] or not parts["held_out"]:
        raise SystemExit(f"init_trials: {folder} lacks the corpus's files "
                         f"({', '.join(missing)})")
    return {"train": "".join(parts["train"]), "held_out": "".join(parts["held_out"]),
            "files": files, "missing": missing}


def corpus_record(corpus, vocab):
    return {"source": f"the .py files of Python {platform.python_version()}'s standard "
                      "library (sysconfig.get_paths()['stdlib']), named relative to it",
            "python": platform.python_version(),
            "train_chars": len(corpus["train"]), "held_out_chars": len(corpus["held_out"]),
            "symbols": len(vocab), "files": corpus["files"], "missing": corpus["missing"]}


# ---- training ---------------------------------------------------------------------------
def checkpoints(steps, every):
    marks = list(range(every, steps, every)) + [steps]
    return sorted(set(m for m in marks if m > 0))


def train_rnncore(vocab, train_ids, held_ids, cell, dropout, params, seed, steps, every):
    """Held-out loss at each checkpoint step and the mean training loss of the last 100
    steps, for a model started from `params`."""
    s = SETTINGS
    model = rnncore.CharRNN(vocab, s["hidden_size"], dtype=s["dtype"], cell=cell,
                            num_layers=s["num_layers"], dropout=dropout)
    model.params = {k: v.copy() for k, v in params.items()}
    trainer = Trainer(model, train_ids, seq_length=s["seq_length"],
                      batch_size=s["batch_size"], learning_rate=s["learning_rate"],
                      optimizer=s["optimizer"], clip=s["clip"], lr_schedule=s["lr_schedule"],
                      seed=seed)
    held, losses = {}, []
    for mark in checkpoints(steps, every):
        losses += trainer.train(mark - trainer.step)
        held[str(mark)] = evaluate(model, held_ids)["nats_per_char"]
    return {"held_out": held, "final_held_out": held[str(steps)],
            "final_train": float(np.mean(losses[-100:]))}


class TorchOwn(TorchStack):
    """TorchStack (one single-layer nn.LSTM/GRU per layer, so rnncore's dropout masks
    apply, an nn.Linear decoder) with PyTorch's own initialisation and every parameter
    trained, both redundant biases included: what a PyTorch user has."""

    def __init__(self, torch, model, seed):
        torch.manual_seed(seed)
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[model.cell]
        dt = {"float32": torch.float32, "float64": torch.float64}[model.dtype.name]
        self.torch, self.cell = torch, model.cell
        self.L, self.H, self.V = model.num_layers, model.hidden_size, model.n_vocab
        self.layers = [module(self.V if k == 0 else self.H, self.H, batch_first=True, dtype=dt)
                       for k in range(self.L)]
        self.head = torch.nn.Linear(self.H, self.V, dtype=dt)
        self.dtype = dt


def train_torch(vocab, train_ids, held_ids, cell, dropout, seed, steps, every, params=None):
    """PyTorch on the same windows and dropout masks as train_rnncore(seed): from its own
    initialisation (params None), or as rnncore's twin from `params` (TorchStack: bias_hh
    held at zero where rnncore has no such parameter)."""
    import torch
    import torch.nn.functional as F
    s = SETTINGS
    masks_of = rnncore.CharRNN(vocab, s["hidden_size"], dtype=s["dtype"], cell=cell,
                               num_layers=s["num_layers"], dropout=dropout)
    net = TorchOwn(torch, masks_of, seed) if params is None else TorchStack(torch, masks_of,
                                                                            params)
    weights = net.parameters()
    opt = torch.optim.Adam(weights, lr=s["learning_rate"], betas=(0.9, 0.999), eps=1e-8)
    shadow = Trainer(rnncore.CharRNN(vocab, 1), train_ids, seq_length=s["seq_length"],
                     batch_size=s["batch_size"], optimizer="sgd", seed=seed)
    h = net.zero_state(s["batch_size"])
    held_x = torch.from_numpy(np.asarray(held_ids[:-1], np.int64))
    held_y = torch.from_numpy(np.asarray(held_ids[1:], np.int64))

    def held_out_loss():
        with torch.no_grad():
            hv, total = net.zero_state(1), 0.0
            for start in range(0, len(held_x), 1024):
                logits, hv = net(held_x[start:start + 1024][None], hv)
                total += F.cross_entropy(logits[0], held_y[start:start + 1024],
                                         reduction="sum").item()
            return total / len(held_x)

    held, losses = {}, []
    for mark in checkpoints(steps, every):
        while shadow.step < mark:
            inputs, targets = shadow.next_window()
            loss, h = twin_window(net, opt, weights, shadow, masks_of, h, inputs, targets,
                                  {**s, "dropout": dropout})
            losses.append(loss)
        held[str(mark)] = held_out_loss()
    return {"held_out": held, "final_held_out": held[str(steps)],
            "final_train": float(np.mean(losses[-100:]))}


# ---- the summary ------------------------------------------------------------------------
def mean_std(values):
    values = np.asarray(values, float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarise(runs):
    """One row per (system/scheme, cell, dropout): mean ± std over seeds, and the gap to
    PyTorch's own start and to rnncore 0.1's start, seed by seed (mean ± std)."""
    def finals(scheme, cell, dropout):
        return {r["seed"]: r["final_held_out"] for r in runs
                if (r["scheme"], r["cell"], r["dropout"]) == (scheme, cell, dropout)}

    rows = []
    keys = sorted({(r["cell"], r["dropout"]) for r in runs})
    for cell, dropout in keys:
        torch_f = finals("torch", cell, dropout)
        base = RNNCORE_0_1[cell]
        base_f = finals(base, cell, dropout)
        for scheme in [*[k for k in SCHEMES if cell in SCHEMES[k]], "torch"]:
            f = finals(scheme, cell, dropout)
            if not f:
                continue
            mean, std = mean_std(list(f.values()))
            row = {"scheme": scheme, "cell": cell, "dropout": dropout, "seeds": sorted(f),
                   "mean": mean, "std": std}
            for label, name, other in (("minus_torch", "torch", torch_f),
                                       ("minus_rnncore_0_1", base, base_f)):
                common = sorted(set(f) & set(other))
                if common and scheme != name:
                    row[label] = mean_std([f[s] - other[s] for s in common])
            rows.append(row)
    return rows


def choose(rows):
    """{cell: the rnncore scheme with the lowest held-out loss, averaged over the dropout
    settings and seeds}."""
    chosen = {}
    for cell in sorted({r["cell"] for r in rows}):
        means = {}
        for r in rows:
            if r["cell"] == cell and r["scheme"] != "torch":
                means.setdefault(r["scheme"], []).append(r["mean"])
        chosen[cell] = min(means, key=lambda k: np.mean(means[k]))
    return chosen


def pm(pair):
    return "" if pair is None else f"{pair[0]:+.4f} ± {pair[1]:.4f}"


LABELS = {"forget1": "biases 0, forget gate 1",
          "zero": "every bias 0", "pytorch": "PyTorch's biases (uniform)",
          "pytorch-forget1": "PyTorch's biases, forget gate 1",
          "torch": "PyTorch itself, its own start"}


def table(rows, chosen):
    """Markdown: a row per (cell, start), for each dropout the held-out loss over the
    seeds (mean ± std) and its difference from PyTorch's, seed by seed (mean ± std)."""
    dropouts = sorted({r["dropout"] for r in rows})
    head = "| cell | start | " + " | ".join(
        f"dropout {p:g}: held-out nats/char | minus PyTorch's" for p in dropouts) + " |"
    lines = [head, "|---|---|" + "---|---|" * len(dropouts)]
    for cell in sorted({r["cell"] for r in rows}, key=["lstm", "gru"].index):
        for scheme in [*SCHEMES, "torch"]:
            cells = {r["dropout"]: r for r in rows if (r["cell"], r["scheme"]) == (cell, scheme)}
            if not cells:
                continue
            label = LABELS[scheme]
            if RNNCORE_0_1[cell] == scheme:
                label += " (rnncore 0.1's)"
            if chosen.get(cell) == scheme:
                label = f"**{label}**"
            values = []
            for p in dropouts:
                r = cells.get(p)
                values += ["", ""] if r is None else [
                    f"{r['mean']:.4f} ± {r['std']:.4f}", pm(r.get("minus_torch")) or "—"]
            lines.append(f"| {cell.upper()} | {label} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seeds", type=int, default=5, help="seeds 1..N")
    ap.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=["lstm", "gru"])
    ap.add_argument("--dropouts", nargs="+", type=float, default=list(DROPOUTS))
    ap.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=list(SCHEMES))
    ap.add_argument("--eval-every", type=int, default=500,
                    help="held-out loss every this many steps (and at the end)")
    ap.add_argument("--threads", type=int, default=1,
                    help="rnncore's and PyTorch's threads (default 1: the results are the "
                         "same bits on any number, and the machine is shared)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs" / "init-trials.json"))
    args = ap.parse_args(argv)

    rnncore.set_num_threads(args.threads)
    has_torch = not args.no_torch
    if has_torch:
        try:
            import torch
        except ImportError:
            raise SystemExit("init_trials: PyTorch is not installed (pip install "
                             "torch==2.13.0, or pass --no-torch)") from None
        torch.set_num_threads(args.threads)
    corpus = stdlib_corpus()
    vocab = rnncore.Vocab.from_text(corpus["train"] + corpus["held_out"])
    train_ids, held_ids = vocab.encode(corpus["train"]), vocab.encode(corpus["held_out"])
    print(f"corpus: {len(corpus['train']):,} training and {len(corpus['held_out']):,} "
          f"held-out chars of Python {platform.python_version()}'s standard library, "
          f"{len(vocab)} symbols", flush=True)
    s = SETTINGS
    seeds = list(range(1, args.seeds + 1))
    runs, twins = [], []

    def log(run):
        print(f"{run['system']:8s} {run['scheme']:16s} {run['cell']} dropout {run['dropout']:g} "
              f"seed {run['seed']}: held-out {run['final_held_out']:.4f}  train "
              f"{run['final_train']:.4f}", flush=True)

    for cell in args.cells:
        for dropout in args.dropouts:
            for seed in seeds:
                for scheme in args.schemes:
                    if cell not in SCHEMES[scheme]:
                        continue
                    params = initial_params(scheme, cell, len(vocab), s["hidden_size"],
                                            s["num_layers"], seed, s["dtype"])
                    run = {"system": "rnncore", "scheme": scheme, "cell": cell,
                           "dropout": dropout, "seed": seed,
                           **train_rnncore(vocab, train_ids, held_ids, cell, dropout, params,
                                           seed, args.steps, args.eval_every)}
                    runs.append(run)
                    log(run)
                if has_torch:
                    run = {"system": "torch", "scheme": "torch", "cell": cell,
                           "dropout": dropout, "seed": seed,
                           **train_torch(vocab, train_ids, held_ids, cell, dropout, seed,
                                         args.steps, args.eval_every)}
                    runs.append(run)
                    log(run)
            base = RNNCORE_0_1[cell]
            if has_torch and base in args.schemes:   # the twins: the first seed, 0.1's start
                twin = next(r for r in runs if (r["scheme"], r["cell"], r["dropout"],
                                                r["seed"]) == (base, cell, dropout, seeds[0]))
                params = initial_params(base, cell, len(vocab), s["hidden_size"],
                                        s["num_layers"], seeds[0], s["dtype"])
                other = train_torch(vocab, train_ids, held_ids, cell, dropout, seeds[0],
                                    args.steps, args.eval_every, params=params)
                twins.append({"cell": cell, "dropout": dropout, "seed": seeds[0],
                              "scheme": base, "rnncore": twin["held_out"],
                              "torch": other["held_out"],
                              "max_abs_difference": max(
                                  abs(twin["held_out"][k] - other["held_out"][k])
                                  for k in other["held_out"])})
                print(f"twins    {cell} dropout {dropout:g} seed {seeds[0]}: rnncore "
                      f"{twin['final_held_out']:.4f}, PyTorch from the same weights "
                      f"{other['final_held_out']:.4f}", flush=True)

    rows = summarise(runs)
    chosen = choose(rows)
    record = {
        "what": "held-out loss (mean nats/char) of rnncore's 2x128 gated cells after "
                f"{args.steps} Adam steps from each initialisation scheme, PyTorch from "
                "its own beside them",
        "command": " ".join(["python bench/init_trials.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.date.today().isoformat(),
        "settings": {**s, "steps": args.steps, "seeds": seeds, "dropouts": args.dropouts,
                     "threads": args.threads, "trainer_seed": "the run's seed (dropout "
                     "masks)", "held_out_every": args.eval_every},
        "versions": {"rnncore": rnncore.__version__, "numpy": np.__version__,
                     "torch": torch.__version__ if has_torch else None,
                     "python": platform.python_version()},
        "corpus": corpus_record(corpus, vocab),
        "schemes": {k: " ".join(f.__doc__.split()) for k, f in
                    [*DRAWS.items(), ("torch", TorchOwn)]},
        "summary": rows,
        "chosen": chosen,
        "twins": twins,
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(table(rows, chosen))
    print("the lowest held-out loss: " + ", ".join(f"{c}: {k}" for c, k in chosen.items()))
    for t in twins:
        print(f"twins {t['cell']} dropout {t['dropout']:g}: agree to "
              f"{t['max_abs_difference']:.4f} nats/char")
    try:
        shown = out.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = out
    print(f"wrote {shown}")


if __name__ == "__main__":
    main()
