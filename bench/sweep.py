"""A sweep of training settings on one corpus, compared at equal optimizer steps.

    python bench/sweep.py --steps 5000 --jobs 2 --threads 1 base locked wd-avg
    python bench/sweep.py --list

Each named configuration (CONFIGS below: `rnncore train` flags) is trained with
`rnncore train CORPUS --out DIR/NAME.npz --steps N --val-fraction 0.1 --eval-every E`
(under the machine's shared CPU lock, /tmp/rnncore-cpu.lock), validating over the whole
held-out 10%.  Equal steps do not depend on how busy the machine is, so runs made side by
side (--jobs 2, one thread each) compare fairly; time is not compared here (the timed runs
are the final 20-minute ones).  Writes DIR/NAME.metrics.jsonl and the summary
--record (default docs/sweep.json): every configuration's flags and its validation loss
at every evaluated step, and the best.
"""
import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
LOCK = "/tmp/rnncore-cpu.lock"

#: the README recipe of the previous release (LSTM 2x256, dropout 0.25, 32 x 50, Adam 2e-3)
#: and what issue 27's regularisers add to it, one at a time; the previous defaults (a GRU
#: 2x256 with step dropout 0.1, 16 x 50)
RECIPE = ["--cell", "lstm", "--num-layers", "2", "--hidden-size", "256", "--batch-size",
          "32", "--seq-length", "50", "--learning-rate", "2e-3", "--dropout", "0.25"]
#: today's defaults regularise: the recipe's runs start with each regulariser off, as that
#: release trained (a flag given later turns one back on)
OFF = ["--dropout-mode", "step", "--weight-drop", "0", "--weight-decay", "0", "--average",
       "0"]
REGULARISED = ["--dropout-mode", "locked", "--weight-drop", "0.25"]
AVERAGED = ["--weight-decay", "0.1", "--average", "0.999", "--average-start", "1000"]
#: a decaying schedule's companions: 100 steps of warm-up, a floor of a tenth of the rate
DECAY = ["--warmup-steps", "100", "--lr-floor", "0.1"]
CONFIGS = {
    "old-defaults": ["--cell", "gru", "--num-layers", "2", "--hidden-size", "256",
                     "--dropout", "0.1", "--dropout-mode", "step", "--weight-drop", "0",
                     "--batch-size", "16", "--weight-decay", "0", "--average", "0"],
    "recipe": OFF + RECIPE,
    "locked": OFF + RECIPE + ["--dropout-mode", "locked"],
    "locked-wdrop": OFF + RECIPE + REGULARISED,
    "locked-wdrop-avg": OFF + RECIPE + REGULARISED + AVERAGED,
    "avg": OFF + RECIPE + AVERAGED,
    "lstm384-reg": [*OFF, *RECIPE[:4], "--hidden-size", "384", *RECIPE[6:], *REGULARISED,
                    *AVERAGED],
    "lstm512-reg": [*OFF, *RECIPE[:4], "--hidden-size", "512", *RECIPE[6:], *REGULARISED,
                    *AVERAGED],
    "lstm384-reg-d35": [*OFF, *RECIPE[:4], "--hidden-size", "384", *RECIPE[6:-1], "0.35",
                        "--dropout-mode", "locked", "--weight-drop", "0.35", *AVERAGED],
    "gru384-reg": [*OFF, "--cell", "gru", "--num-layers", "2", "--hidden-size", "384",
                   *RECIPE[6:], *REGULARISED, *AVERAGED],
    # the learning-rate schedule over the budget, on the defaults of issue 27 (the LSTM
    # 2x384, locked dropout 0.25, weight drop 0.2, weight decay 0.1, the average):
    # the constant rate against warm-up and a decay to a tenth of it over the --steps
    "defaults-constant": ["--lr-schedule", "constant", "--warmup-steps", "0"],
    "defaults-cosine": [*DECAY, "--lr-schedule", "cosine"],
    "defaults-linear": [*DECAY, "--lr-schedule", "linear"],
    "defaults-cosine-3e-3": [*DECAY, "--lr-schedule", "cosine", "--learning-rate", "3e-3"],
}


def train(name, args):
    out = Path(args.out_dir) / f"{name}.npz"
    command = ["flock", "-s", LOCK, sys.executable, "-c",
               "import sys; from rnncore.cli import main; sys.exit(main())", "train",
               str(args.corpus), "--out", str(out), "--force", "--steps", str(args.steps),
               "--val-fraction", "0.1", "--eval-every", str(args.eval_every),
               "--print-every", str(args.eval_every), "--threads", str(args.threads),
               "--seed", str(args.seed), *CONFIGS[name]]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"{name}: {proc.stderr.strip().splitlines()[-1]}")
    records = [json.loads(line) for line in
               (Path(args.out_dir) / f"{name}.metrics.jsonl").read_text().splitlines()]
    validations = [{"step": r["step"], "val_loss": r["val_loss"],
                    "train_loss": r["train_loss"]} for r in records if "val_loss" in r]
    best = min(validations, key=lambda r: r["val_loss"])
    print(f"{name:20s} best {best['val_loss']:.4f} at step {best['step']}", flush=True)
    return name, {"flags": CONFIGS[name], "validations": validations, "best": best}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="configurations to run (default: all)")
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default="sweep-run")
    ap.add_argument("--record", default=str(ROOT / "docs" / "sweep.json"))
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for name, flags in CONFIGS.items():
            print(name, " ".join(flags))
        return
    names = args.names or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {', '.join(unknown)}: see --list")
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(pool.map(lambda n: train(n, args), names))
    record = Path(args.record)
    previous = json.loads(record.read_text()) if record.exists() else {"runs": {}}
    previous["runs"].update(results)
    previous["command"] = ("python bench/sweep.py --steps N --jobs 2 --threads 1 NAME...; "
                           "rnncore train ../shared/data/tinyshakespeare.txt --steps N "
                           "--val-fraction 0.1 --seed 0 and each run's flags")
    previous.setdefault("settings", {})[f"steps={args.steps}"] = {
        "eval_every": args.eval_every, "threads": args.threads, "jobs": args.jobs}
    record.write_text(json.dumps(previous, indent=1) + "\n")


if __name__ == "__main__":
    main()
