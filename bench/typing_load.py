"""Predictive text as people type: what a keystroke costs on a short and a long document,
and 32 clients each typing their own text, against another release's server side by side.

    python bench/typing_load.py --checkpoint shakespeare.npz --text heldout.txt \\
        --baseline-source ../old-release --json docs/typing.json --markdown docs/typing.md

Three measurements, the model's own work first:
  1. in-process (this tree): a keystroke through the typing session (type one character,
     then suggest) on a document of 20 and of 2,000 characters, and model.suggest of the
     whole text (what every keystroke cost before sessions); medians of --keystrokes; the
     two documents end in the same --keystrokes characters of --text, so the words
     typed are the same and only the document's length differs;
  2. over HTTP, one client, each server: those keystrokes (/v1/suggest with the whole
     text so far, one character more each time) on the two documents;
  3. the typing workload: --clients closed-loop clients, each typing its own slice of
     --text one character at a time and asking /v1/suggest with the whole text so far at
     every keystroke.  Client c opens its document with c/clients · --start-max
     characters already in it (a document of thousands of characters, as an editor or a
     mail client holds), each repeat on new documents.  Both servers run at once; each
     repeat runs the workload on one, then the other; req/s is the median of --repeats,
     p50/p99 over all their requests.
The servers' kernels run on --threads threads (default 1: the clients share the cores).
"""
import argparse
import asyncio
import os
import sys
import tempfile
import time

import numpy as np

from blas_report import write_outputs
from serving import Server, closed_loop, cpu_model, make_checkpoint, summary

SHORT, LONG = 20, 2000
#: where the keystrokes of the document-length comparison are typed, in --text
AT = 2500
#: characters of its text each client has left to type after its document's opening
MARGIN = 1500


def documents(text, count):
    """The keystrokes both document lengths type: the same `count` characters from AT on,
    after SHORT or LONG characters of the text before them (so the words being typed are
    the same, and only the length of the document differs)."""
    return {length: text[AT - length:AT + count + 1] for length in (SHORT, LONG)}


def keystroke_costs(checkpoint, text, count, threads):
    """Median ms of a keystroke in-process, through a session and without one."""
    import rnncore
    rnncore.set_num_threads(threads)
    model = rnncore.CharRNN.load(checkpoint)
    docs = documents(text, count)
    sessions = {length: model.session(document[:length])
                for length, document in docs.items()}
    times = {(kind, length): [] for kind in ("session", "model.suggest(whole text)")
             for length in docs}
    # the two lengths take turns keystroke by keystroke (the machine's drifts fall on
    # both); each kind in a loop of its own (a whole text fed between two session
    # keystrokes would leave the weights out of the caches the session uses)
    for i in range(count):
        for length, document in docs.items():
            t0 = time.perf_counter()
            sessions[length].type(document[length + i])
            sessions[length].suggest()
            times["session", length].append(time.perf_counter() - t0)
    for i in range(count):
        for length, document in docs.items():
            t0 = time.perf_counter()
            model.suggest(document[:length + i + 1])
            times["model.suggest(whole text)", length].append(time.perf_counter() - t0)
    return {f"{kind}, {length} characters": float(np.median(t)) * 1e3
            for (kind, length), t in times.items()}


async def keystrokes_over_http(server, text, count):
    """Median ms of a keystroke over HTTP on each document of documents(): /v1/suggest
    with the whole text so far, one character longer each time, the two documents taking
    turns (each document's opening, its first request, not counted)."""
    from serving import Connection
    conn = await Connection(server.host, server.port).open()
    docs = documents(text, count)
    times = {length: [] for length in docs}
    try:
        for i in range(count + 1):
            for length, document in docs.items():
                body = {"text": document[:length + i], "k": 3, "skip_unknown": True}
                t0 = time.perf_counter()
                status, answer = await conn.post("/v1/suggest", body)
                if status != 200:
                    raise RuntimeError(f"/v1/suggest answered {status}: {answer[:200]!r}")
                if i:
                    times[length].append((time.perf_counter() - t0) * 1e3)
    finally:
        conn.close()
    return {length: float(np.median(t)) for length, t in times.items()}


def typing_workload(server, slices, args, repeat):
    """One run of the typing workload on `server`."""
    typed = [args.start_max * c // args.clients + 17 * repeat for c in range(args.clients)]

    def next_request(c):
        typed[c] += 1
        return "/v1/suggest", {"text": slices[c][:typed[c]], "k": 3, "skip_unknown": True}

    return asyncio.run(closed_loop(server, args.clients, args.seconds, args.warmup,
                                   next_request))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="the model to serve (default: a fresh 2x256 GRU)")
    ap.add_argument("--text", required=True, help="the text the clients type (held out)")
    ap.add_argument("--baseline-source", help="the folder of another release's rnncore "
                    "(its source tree, built in place) to compare with")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--start-max", type=int, default=1500)
    ap.add_argument("--keystrokes", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)
    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    size = len(text) // args.clients
    if size < args.start_max + MARGIN:
        raise SystemExit(f"--text has {len(text):,} characters: {args.clients} clients "
                         f"need {args.clients * (args.start_max + MARGIN):,}")
    slices = [text[c * size:(c + 1) * size] for c in range(args.clients)]
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = make_checkpoint(args.checkpoint, folder)
        costs = keystroke_costs(checkpoint, text, args.keystrokes, args.threads)
        for name, ms in costs.items():
            print(f"in-process keystroke, {name}: {ms:.2f} ms", flush=True)
        systems = {"this": None}
        if args.baseline_source:
            systems["baseline"] = args.baseline_source
        servers, http, runs = {}, {}, {}
        try:
            for name, source in systems.items():
                servers[name] = Server(checkpoint, "--threads", args.threads, source=source)
            for name, server in servers.items():
                lat = asyncio.run(keystrokes_over_http(server, text, args.keystrokes))
                for length, ms in lat.items():
                    http[f"{name}, {length} characters"] = ms
                    print(f"HTTP keystroke, {name} server, {length} characters: "
                          f"{ms:.2f} ms", flush=True)
            for repeat in range(args.repeats):
                for name, server in servers.items():
                    done = typing_workload(server, slices, args, repeat)
                    runs.setdefault(name, []).append(done)
                    print(f"typing, {args.clients} clients, {name} server, repeat "
                          f"{repeat + 1}: {len(done[0]) / done[1]:.1f} req/s", flush=True)
        finally:
            for server in servers.values():
                server.stop()
    rows = {name: summary(r) for name, r in runs.items()}
    result = {"command": "python bench/typing_load.py " + " ".join(argv or sys.argv[1:]),
              "cpu": cpu_model(), "threads": args.threads, "clients": args.clients,
              "seconds": args.seconds, "repeats": args.repeats,
              "start_max": args.start_max, "keystroke_ms_in_process": costs,
              "keystroke_ms_http": http, "typing": rows,
              "checkpoint": os.path.basename(args.checkpoint) if args.checkpoint else None}
    write_outputs(args, result, markdown(result))
    return 0


def markdown(result):
    c = result["keystroke_ms_in_process"]
    lines = [f"CPU: {result['cpu']}; server kernels on {result['threads']} thread(s)", "",
             "| a keystroke (ms, median) | 20 characters | 2,000 characters | ratio |",
             "|---|---|---|---|"]
    for label, key in (("typing session: type + suggest", "session"),
                       ("model.suggest(whole text)", "model.suggest(whole text)")):
        a, b = c[f"{key}, {SHORT} characters"], c[f"{key}, {LONG} characters"]
        lines.append(f"| {label} | {a:.2f} | {b:.2f} | {b / a:.2f}× |")
    h = result["keystroke_ms_http"]
    for name in ("this", "baseline"):
        if f"{name}, {SHORT} characters" in h:
            a, b = h[f"{name}, {SHORT} characters"], h[f"{name}, {LONG} characters"]
            lines.append(f"| over HTTP (suggest), {name} server | {a:.2f} | {b:.2f} | "
                         f"{b / a:.2f}× |")
    lines += ["", f"| typing, {result['clients']} clients | req/s | p50 ms | p99 ms |",
              "|---|---|---|---|"]
    for name, row in result["typing"].items():
        lines.append(f"| {name} server | {row['requests_per_s']:,.0f} | "
                     f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} |")
    t = result["typing"]
    if "baseline" in t:
        lines.append(f"\nthis server / baseline: "
                     f"{t['this']['requests_per_s'] / t['baseline']['requests_per_s']:.2f}×")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
