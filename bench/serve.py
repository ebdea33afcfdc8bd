"""The model server under concurrent load: requests/s and latency (p50, p99) of
`suggest` and `sample` at 1, 8 and 32 concurrent clients, with the request batcher
(concurrent requests advanced together) against one request at a time (`rnncore serve
--max-batch 1`) and, given --baseline-source, against another release's server; then a
suggest's latency beside three clients asking for beams of 64 over 4,096 characters.
On a 2x256 GRU.

    python bench/serve.py                                    # README's table
    python bench/serve.py --checkpoint shakespeare.npz --baseline-source ../old-release \
        --json docs/serve.json --markdown docs/serve.md

Real `rnncore serve` run on free loopback ports, all at once.  Each configuration runs C
closed-loop clients (each sends its next request as soon as its last is answered) from
this process over HTTP for --seconds, after a warm-up, on one server after the other,
--repeats times over (req/s is the median of the repeats; p50 and p99 are over all
their requests).  A `suggest` request asks for the 3 best words after a text drawn from
a list of typing positions; a `sample` request asks for --sample-length characters at
temperature 0.8 with its own seed.  Without --checkpoint the model is a freshly
initialised one over tinyshakespeare's 65 symbols (its words end where its uniform-ish
distribution puts separators: give a trained checkpoint for a typing workload).  The
servers' kernels run on --threads threads (default 1: the servers and the clients share
this machine's cores).
"""
import argparse
import asyncio
import json
import sys
import tempfile
import time

import numpy as np

from serving import Connection, Server, closed_loop, cpu_model, make_checkpoint, summary

TYPING = ["ROMEO:\nWhat light through yonder win", "First Citizen:\nBefore we proceed any",
          "KING RICHARD III:\nNow is the winter of our disc", "To be, or not to be, that is",
          "My lord, I ", "And so, from hour to hour, we ripe and ", "O, she doth teach the t",
          "JULIET:\nGood night, good night! Parting is such sweet sor"]


def request_of(kind, i, args, texts):
    if kind == "suggest":
        return "/v1/suggest", {"text": texts[i % len(texts)], "k": 3, "skip_unknown": True}
    return "/v1/sample", {"prime": texts[i % len(texts)], "length": args.sample_length,
                          "temperature": 0.8, "seed": i, "skip_unknown": True}


def load(server, kind, clients, args, texts):
    counter = [0]

    def next_request(c):
        counter[0] += 1
        return request_of(kind, counter[0], args, texts)

    return asyncio.run(closed_loop(server, clients, args.seconds, args.warmup, next_request))


def beside_beams(server, args, texts):
    """Latencies of one client's suggests while --beams clients each ask for a beam of 64
    over 4,096 characters, again and again: (suggest latencies (s), beams answered)."""
    async def run():
        stop = time.perf_counter() + args.beam_seconds
        answered = [0]

        async def beams():
            conn = await Connection(server.host, server.port).open()
            try:
                while time.perf_counter() < stop:
                    status, body = await conn.post("/v1/complete", {
                        "prime": texts[0], "length": 4096, "beam": 64, "skip_unknown": True})
                    if status != 200:
                        raise RuntimeError(f"/v1/complete answered {status}: {body[:200]!r}")
                    answered[0] += 1
            finally:
                conn.close()

        async def suggests():
            await asyncio.sleep(0.5)        # the beams are under way
            conn = await Connection(server.host, server.port).open()
            latencies, i = [], 0
            try:
                while time.perf_counter() < stop:
                    i += 1
                    t0 = time.perf_counter()
                    status, _ = await conn.post(*request_of("suggest", i, args, texts))
                    latencies.append(time.perf_counter() - t0)
            finally:
                conn.close()
            return latencies

        *_, latencies = await asyncio.gather(*(beams() for _ in range(args.beams)),
                                             suggests())
        return latencies, answered[0]
    return asyncio.run(run())


def model_work(model, texts, clients, repeats, threads):
    """Milliseconds of model work per `suggest` request, in this process (no HTTP) on the
    server's kernel threads: feeding the text, then the word search, for `clients` texts
    one at a time and as one batch (what a batched round of that many requests runs);
    medians over interleaved repeats."""
    import rnncore
    from rnncore.predict import SUGGEST_BEAM, feed_texts, suggest_from_state
    rnncore.set_num_threads(threads)
    batch = [texts[i % len(texts)] for i in range(clients)]
    ids = [model.vocab.encode(t).astype(np.intp) for t in batch]
    alone = [feed_texts(model, [i]) for i in ids]
    together = feed_texts(model, ids)
    parts = {
        ("one at a time", "feed"): lambda: [feed_texts(model, [i]) for i in ids],
        ("one at a time", "word search"): lambda: [
            suggest_from_state(model, s, [t], 3, 32, SUGGEST_BEAM) for s, t in zip(alone, batch)],
        ("as one batch", "feed"): lambda: feed_texts(model, ids),
        ("as one batch", "word search"): lambda: suggest_from_state(model, together, batch, 3, 32,
                                                                    SUGGEST_BEAM),
    }
    times = {key: [] for key in parts}
    for _ in range(repeats):
        for key, work in parts.items():
            t0 = time.perf_counter()
            work()
            times[key].append((time.perf_counter() - t0) / clients * 1e3)
    return {f"{mode}, {part}": float(np.median(v)) for (mode, part), v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="serve this model (default: a fresh one)")
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--clients", default="1,8,32",
                        help="concurrent clients, comma-separated (default 1,8,32)")
    parser.add_argument("--kinds", default="suggest,sample")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="measured seconds per configuration and repeat (default 4)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved repeats; req/s is their median, p50/p99 over all "
                             "their requests (default 3)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of load before each measurement (default 1)")
    parser.add_argument("--sample-length", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of the server's kernels (default 1)")
    parser.add_argument("--baseline-source", help="the folder of another release's rnncore "
                        "(its source tree, built in place): its server runs every row too")
    parser.add_argument("--beams", type=int, default=3,
                        help="long beams beside the suggests of the last measurement "
                        "(default 3; 0: skip it)")
    parser.add_argument("--beam-seconds", type=float, default=30.0)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--markdown", help="write the table here")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    kinds = args.kinds.split(",")
    texts = list(TYPING)
    modes = [("batched", None, []), ("one at a time", None, ["--max-batch", 1])]
    if args.baseline_source:
        modes.append(("baseline", args.baseline_source, []))
    with tempfile.TemporaryDirectory() as folder:
        ckpt = make_checkpoint(args.checkpoint, folder, args.cell, args.num_layers,
                               args.hidden_size, args.dtype)
        import rnncore
        model = rnncore.CharRNN.load(ckpt)
        batch = max(clients)
        work = model_work(model, texts, batch, max(args.repeats, 5), args.threads)
        for key, ms in work.items():
            print(f"model work per suggest request, {batch} texts {key}: {ms:.3f} ms",
                  flush=True)
        # every server up at once (those not under load sleep), each configuration run
        # on one after the other, --repeats times over: the machine's drifts fall on all
        servers, runs, beams = {}, {}, {}
        try:
            for mode, source, extra in modes:
                servers[mode] = Server(ckpt, "--threads", args.threads, *extra,
                                       source=source)
            for repeat in range(args.repeats):
                for kind in kinds:
                    for c in clients:
                        for mode, _, _ in modes:
                            done = load(servers[mode], kind, c, args, texts)
                            runs.setdefault((kind, c, mode), []).append(done)
                            print(f"{kind:8s} {c:3d} clients  {mode:14s} repeat "
                                  f"{repeat + 1}: {len(done[0]) / done[1]:9.1f} req/s",
                                  flush=True)
            if args.beams:
                for mode, _, _ in modes:
                    if mode != "one at a time":
                        lat, answered = beside_beams(servers[mode], args, texts)
                        beams[mode] = {**summary([(lat, args.beam_seconds)]),
                                       "max_ms": float(max(lat) * 1e3) if lat else None,
                                       "beams_answered": answered}
                        print(f"suggest beside {args.beams} beams, {mode}: "
                              f"{beams[mode]}", flush=True)
        finally:
            for server in servers.values():
                server.stop()
    rows = [{"kind": kind, "clients": c, "mode": mode, **summary(done)}
            for (kind, c, mode), done in runs.items()]
    table = markdown(rows, kinds, clients, [m for m, _, _ in modes], beams, args)
    work_table = "\n".join(
        [f"Model work per `suggest` request, in-process, {args.threads} kernel thread(s), "
         f"ms ({batch} typing positions):", "",
         "| the texts | feeding the text | word search | together |", "|---|---|---|---|"]
        + [f"| {mode} | {work[mode + ', feed']:.2f} | {work[mode + ', word search']:.2f} | "
           f"{work[mode + ', feed'] + work[mode + ', word search']:.2f} |"
           for mode in ("one at a time", "as one batch")])
    print(table)
    print(work_table)
    model_line = (f"{model.cell} {model.num_layers}x{model.hidden_size} "
                  f"{model.dtype.name}, {model.n_vocab} symbols")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": " ".join(["python", "bench/serve.py"] + (argv or
                                                                           sys.argv[1:])),
                       "cpu": cpu_model(), "model": model_line,
                       "checkpoint": args.checkpoint, "seconds": args.seconds,
                       "repeats": args.repeats, "sample_length": args.sample_length,
                       "threads": args.threads, "baseline": args.baseline_source,
                       "rows": rows, "beside_beams": beams,
                       "model_work_ms": {"texts": batch, **work}}, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"{model_line}; {args.repeats} interleaved repeats of {args.seconds:g} s "
                    f"per row (req/s: their median), samples of "
                    f"{args.sample_length} characters, {args.threads} kernel thread(s); "
                    f"{cpu_model()}\n\n" + table + "\n\n" + work_table + "\n")
    return 0


def markdown(rows, kinds, clients, modes, beams, args):
    def find(kind, c, mode):
        return next(r for r in rows if (r["kind"], r["clients"], r["mode"]) == (kind, c, mode))

    head = "| request | clients | batched req/s | p50 / p99 ms | one at a time req/s | " \
        "p50 / p99 ms | × |"
    rule = "|---|---|---|---|---|---|---|"
    if "baseline" in modes:
        head += " baseline req/s | p50 / p99 ms | × baseline |"
        rule += "---|---|---|"
    lines = [head, rule]
    for kind in kinds:
        for c in clients:
            b, o = find(kind, c, "batched"), find(kind, c, "one at a time")
            line = (f"| {kind} | {c} | {b['requests_per_s']:,.0f} | "
                    f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f} | {o['requests_per_s']:,.0f} | "
                    f"{o['p50_ms']:.1f} / {o['p99_ms']:.1f} | "
                    f"{b['requests_per_s'] / o['requests_per_s']:.2f}× |")
            if "baseline" in modes:
                old = find(kind, c, "baseline")
                line += (f" {old['requests_per_s']:,.0f} | {old['p50_ms']:.1f} / "
                         f"{old['p99_ms']:.1f} | "
                         f"{b['requests_per_s'] / old['requests_per_s']:.2f}× |")
            lines.append(line)
    if beams:
        lines += ["", f"A suggest beside {args.beams} clients asking for beams of 64 over "
                  f"4,096 characters, {args.beam_seconds:g} s:", "",
                  "| server | suggests | p50 ms | p99 ms | max ms | beams answered |",
                  "|---|---|---|---|---|---|"]
        for mode, r in beams.items():
            lines.append(f"| {mode} | {r['requests']} | {r['p50_ms']:.1f} | "
                         f"{r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['beams_answered']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
