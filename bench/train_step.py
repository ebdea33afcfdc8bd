"""What one training step of `rnncore train`'s defaults costs, and where the time goes:
the whole step (the window's forward and backward passes, the weight-drop masks, the
clip, the optimizer, the moving average), and apart from it each part that is not the
compiled window.

    python bench/train_step.py                         # this tree: one JSON line
    python bench/train_step.py --compare ../base .     # interleaved, each tree in turn

--compare runs this script in a fresh process for each source tree (PYTHONPATH set to
it), the trees taking turns --repeats times, and prints the median of each figure per
tree and the ratio: run it on an otherwise idle machine (no build, test or other
benchmark beside it) for figures to report.  The trees need their kernels built.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare.txt"


def median_ms(f, repeats):
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def measure(args):
    """{figure: milliseconds} for the defaults on the corpus, in this process."""
    import numpy as np

    import rnncore
    from rnncore.corpus import load_corpus
    from rnncore.train import Trainer

    corpus = load_corpus(args.corpus)
    train_data, _ = corpus.split(0.1)
    model = rnncore.CharRNN(corpus.vocab, config=rnncore.ModelConfig(), seed=0)
    # the average from the first step, so every timed step takes it in, as after step 1,000
    trainer = Trainer(model, train_data, rnncore.TrainConfig(average_start=1))
    out = {}
    with rnncore.threads.num_threads(args.threads):
        trainer.train(args.warmup)
        start = time.perf_counter()
        trainer.train(args.steps)
        out["step"] = 1e3 * (time.perf_counter() - start) / args.steps
        grads = {k: np.array(v) for k, v in trainer.grads.items()}
        rng = np.random.default_rng(1)
        out["optimizer"] = median_ms(lambda: trainer.optimizer.step(grads, 1e-9), 30)
        out["average"] = median_ms(lambda: trainer.average.update(trainer.step), 30)
        out["weight_drop_masks"] = median_ms(lambda: model.weight_drop_masks(rng), 30)
        out["dropout_masks"] = median_ms(
            lambda: model.dropout_masks(rng, trainer.batch_size, trainer.seq_length), 30)
    return out


def compare(args):
    trees = [os.path.abspath(t) for t in args.compare]
    runs = {t: [] for t in trees}
    for r in range(args.repeats):
        for tree in trees:
            env = {k: v for k, v in os.environ.items()
                   if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
            env["PYTHONPATH"] = tree
            command = [sys.executable, os.path.abspath(__file__), "--corpus", args.corpus,
                       "--steps", str(args.steps), "--warmup", str(args.warmup),
                       "--threads", str(args.threads)]
            line = subprocess.run(command, env=env, cwd=tree, check=True, text=True,
                                  capture_output=True).stdout.strip().splitlines()[-1]
            runs[tree].append(json.loads(line))
            print(f"repeat {r + 1} {tree}: {line}", file=sys.stderr, flush=True)
    figures = list(runs[trees[0]][0])
    summary = {t: {f: round(statistics.median(x[f] for x in runs[t]), 3) for f in figures}
               for t in trees}
    first, last = summary[trees[0]], summary[trees[-1]]
    summary["ratio first/last"] = {f: round(first[f] / last[f], 3) for f in figures}
    # each repeat's two runs side by side: the median of their ratios is steadier than
    # the ratio of medians on a machine whose load drifts
    summary["paired ratio first/last"] = {
        f: round(statistics.median(a[f] / b[f] for a, b in zip(runs[trees[0]],
                                                               runs[trees[-1]])), 3)
        for f in figures}
    summary["repeats"], summary["steps"], summary["threads"] = (args.repeats, args.steps,
                                                                args.threads)
    print(json.dumps(summary, indent=1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--steps", type=int, default=60, help="timed steps")
    ap.add_argument("--warmup", type=int, default=10, help="steps before the timed ones")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compare", nargs="+", metavar="TREE",
                    help="source trees to time in turn (each in a fresh process)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if args.compare:
        compare(args)
    else:
        print(json.dumps({k: round(v, 3) for k, v in measure(args).items()}))


if __name__ == "__main__":
    main()
