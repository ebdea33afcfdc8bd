"""Back-to-back training windows of one shape, for a profiler to watch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE perf record -g \
        python bench/window_loop.py --cell lstm --num-layers 2 --hidden-size 128 --batch-size 1
    perf report --no-children --sort dso,symbol

Runs forward + backward + clipping (as bench/run.py times them: V=65, T=25, state carried)
for --seconds, then prints the median time of a window.  README's Speed section names the
profiles taken this way.
"""
import argparse
import string
import time

import numpy as np

import rnncore


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="rnn", choices=["rnn", "lstm", "gru"])
    ap.add_argument("--num-layers", type=int, default=1)
    ap.add_argument("--hidden-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=1,
                    help="threads of rnncore's team (default 1)")
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    V, T, B = 65, 25, args.batch_size
    vocab = rnncore.Vocab.from_text((string.ascii_letters + string.digits + " .,!?:;'\n-")[:V])
    model = rnncore.CharRNN(vocab, args.hidden_size, dtype=args.dtype, seed=0,
                            cell=args.cell, num_layers=args.num_layers)
    rng = np.random.default_rng(0)
    inputs, targets = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    grads = model.zeros_like_params()
    rnncore.set_num_threads(args.threads)
    state, times = None, []
    for _ in range(5):   # warm-up: buffers bound, caches filled
        _, _, state = model.loss_and_grads(inputs, targets, state, out=grads)
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        _, _, state = model.loss_and_grads(inputs, targets, state, out=grads)
        times.append(time.perf_counter() - start)
    print(f"{args.cell} {args.num_layers}x{args.hidden_size} B={B} {args.dtype}, "
          f"{args.threads} thread(s): median {np.median(times) * 1e6:,.0f} µs a window "
          f"over {len(times):,} windows")


if __name__ == "__main__":
    main()
