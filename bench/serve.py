"""The model server under concurrent load: requests/s and latency (p50, p99) of
`suggest` and `sample` at 1, 8 and 32 concurrent clients, with the request batcher
(concurrent requests advanced as one batch) against one request at a time
(`rnncore serve --max-batch 1`), on a 2x256 GRU.

    python bench/serve.py                                    # README's table
    python bench/serve.py --checkpoint shakespeare.npz --json docs/serve.json \\
        --markdown docs/serve.md

Two real `rnncore serve` run on free loopback ports, one batching and one with
--max-batch 1.  Each configuration runs C closed-loop clients (each sends its next request
as soon as its last is answered) from this process over HTTP for --seconds, after a
warm-up, on one server and then the other, --repeats times over (req/s is the median of
the repeats; p50 and p99 are over all their requests).  A `suggest` request asks for the
3 best words after a text drawn from a list of typing positions; a `sample` request asks
for --sample-length characters at temperature 0.8 with its own seed.  Without
--checkpoint the model is a freshly initialised one over tinyshakespeare's 65 symbols
(its words end where its uniform-ish distribution puts separators: give a trained
checkpoint for a typing workload).  The server's kernels run on --threads threads
(default 1: the server and the clients share this machine's cores).
"""
import argparse
import asyncio
import json
import os
import re
import selectors
import subprocess
import sys
import tempfile
import time

import numpy as np

SHAKESPEARE_SYMBOLS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TYPING = ["ROMEO:\nWhat light through yonder win", "First Citizen:\nBefore we proceed any",
          "KING RICHARD III:\nNow is the winter of our disc", "To be, or not to be, that is",
          "My lord, I ", "And so, from hour to hour, we ripe and ", "O, she doth teach the t",
          "JULIET:\nGood night, good night! Parting is such sweet sor"]


def rnncore_command():
    script = os.path.join(os.path.dirname(sys.executable), "rnncore")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "rnncore"]


def make_model(args, folder):
    """The checkpoint to serve: --checkpoint, or a fresh model saved in `folder`."""
    import rnncore
    if args.checkpoint:
        return args.checkpoint, rnncore.CharRNN.load(args.checkpoint)
    vocab = rnncore.Vocab(sorted(SHAKESPEARE_SYMBOLS))
    model = rnncore.CharRNN(vocab, args.hidden_size, dtype=args.dtype, seed=0,
                            cell=args.cell, num_layers=args.num_layers)
    path = os.path.join(folder, "model.npz")
    model.save(path)
    return path, model


class Server:
    def __init__(self, ckpt, max_batch, threads):
        env = dict(os.environ)
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            env.pop(name, None)
        self.proc = subprocess.Popen(
            rnncore_command() + ["serve", ckpt, "--port", "0", "--max-batch",
                                 str(max_batch), "--threads", str(threads)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL, env=env)
        self.url = None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 60
            while self.url is None and time.monotonic() < deadline:
                if sel.select(timeout=0.2):
                    line = self.proc.stdout.readline()
                    if not line:
                        break
                    found = re.search(r"on (http://\S+)$", line.strip())
                    if found:
                        self.url = found.group(1)
        if self.url is None:
            self.proc.kill()
            raise RuntimeError(f"rnncore serve did not start: {self.proc.stderr.read()}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def request_of(kind, i, args, texts):
    if kind == "suggest":
        return "/v1/suggest", {"text": texts[i % len(texts)], "k": 3, "skip_unknown": True}
    return "/v1/sample", {"prime": texts[i % len(texts)], "length": args.sample_length,
                          "temperature": 0.8, "seed": i, "skip_unknown": True}


class Connection:
    """One keep-alive HTTP/1.1 connection, as lean as a load generator can be (httpx
    costs the client more CPU per request than the server spends on a suggestion)."""

    def __init__(self, host, port):
        self.host, self.port = host, port

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def post(self, path, body):
        data = json.dumps(body).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                          "Content-Type: application/json\r\n"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        return status, await self.reader.readexactly(length)

    def close(self):
        self.writer.close()


async def load(url, kind, clients, seconds, warmup, args, texts):
    """C closed-loop clients for warmup + seconds; the latencies (s) of the requests
    that started after the warm-up and the time they spanned."""
    host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()
    latencies, counter = [], [0]
    t_start = time.perf_counter() + warmup
    t_end = t_start + seconds

    async def client(c):
        conn = await Connection(host, int(port)).open()
        try:
            while time.perf_counter() < t_end:
                counter[0] += 1
                path, body = request_of(kind, counter[0], args, texts)
                started = time.perf_counter()
                status, answer = await conn.post(path, body)
                if status != 200:
                    raise RuntimeError(f"{path} answered {status}: {answer[:200]!r}")
                if started >= t_start:
                    latencies.append(time.perf_counter() - started)
        finally:
            conn.close()

    await asyncio.gather(*(client(c) for c in range(clients)))
    return latencies, time.perf_counter() - t_start


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
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--markdown", help="write the table here")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    kinds = args.kinds.split(",")

    rows = []
    modes = (("batched", 256), ("one at a time", 1))
    with tempfile.TemporaryDirectory() as folder:
        ckpt, model = make_model(args, folder)
        texts = [t for t in TYPING]
        batch = max(clients)
        work = model_work(model, texts, batch, max(args.repeats, 5), args.threads)
        for key, ms in work.items():
            print(f"model work per suggest request, {batch} texts {key}: {ms:.3f} ms", flush=True)
        # both servers up at once (the one not under load sleeps), each configuration run
        # on one then the other, --repeats times over: the machine's drifts fall on both
        servers = {}
        try:
            for mode, max_batch in modes:
                servers[mode] = Server(ckpt, max_batch, args.threads)
            runs = {}
            for repeat in range(args.repeats):
                for kind in kinds:
                    for c in clients:
                        for mode, _ in modes:
                            lat, spanned = asyncio.run(load(servers[mode].url, kind, c,
                                                            args.seconds, args.warmup, args,
                                                            texts))
                            runs.setdefault((kind, c, mode), []).append((lat, spanned))
                            print(f"{kind:8s} {c:3d} clients  {mode:14s} repeat {repeat + 1}: "
                                  f"{len(lat) / spanned:9.1f} req/s", flush=True)
        finally:
            for server in servers.values():
                server.stop()
    for (kind, c, mode), done in runs.items():
        rates = [len(lat) / spanned for lat, spanned in done]
        lat = np.concatenate([lat for lat, _ in done]) * 1e3
        rows.append({"kind": kind, "clients": c, "mode": mode, "requests": len(lat),
                     "requests_per_s": float(np.median(rates)),
                     "requests_per_s_min_max": [min(rates), max(rates)],
                     "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
                     "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None})

    def find(kind, c, mode):
        return next(r for r in rows if (r["kind"], r["clients"], r["mode"]) == (kind, c, mode))

    lines = ["| request | clients | batched req/s | p50 / p99 ms | one at a time req/s | "
             "p50 / p99 ms | × |", "|---|---|---|---|---|---|---|"]
    for kind in kinds:
        for c in clients:
            b, o = find(kind, c, "batched"), find(kind, c, "one at a time")
            ratio = b["requests_per_s"] / o["requests_per_s"] if o["requests_per_s"] else 0
            lines.append(f"| {kind} | {c} | {b['requests_per_s']:,.0f} | "
                         f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f} | "
                         f"{o['requests_per_s']:,.0f} | {o['p50_ms']:.1f} / "
                         f"{o['p99_ms']:.1f} | {ratio:.2f}× |")
    table = "\n".join(lines)
    print(table)
    work_table = "\n".join(
        [f"Model work per `suggest` request, in-process, {args.threads} kernel thread(s), "
         f"ms ({batch} typing positions):", "",
         "| the texts | feeding the text | word search | together |", "|---|---|---|---|"]
        + [f"| {mode} | {work[mode + ', feed']:.2f} | {work[mode + ', word search']:.2f} | "
           f"{work[mode + ', feed'] + work[mode + ', word search']:.2f} |"
           for mode in ("one at a time", "as one batch")])
    print(work_table)
    model_line = (f"{model.cell} {model.num_layers}x{model.hidden_size} "
                  f"{model.dtype.name}, {model.n_vocab} symbols")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": " ".join(["python", "bench/serve.py"] + (argv or
                                                                           sys.argv[1:])),
                       "model": model_line, "checkpoint": args.checkpoint,
                       "seconds": args.seconds, "repeats": args.repeats,
                       "sample_length": args.sample_length,
                       "threads": args.threads, "rows": rows,
                       "model_work_ms": {"texts": batch, **work}}, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"{model_line}; {args.repeats} interleaved repeats of {args.seconds:g} s "
                    f"per row (req/s: their median), samples of "
                    f"{args.sample_length} characters, {args.threads} kernel thread(s)\n\n"
                    + table + "\n\n" + work_table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
