"""What the server benchmarks share (bench/serve.py, bench/typing_load.py): a real `rnncore
serve` in a process of its own (this tree's, or another release's through its source
folder), a lean keep-alive HTTP/1.1 client, closed-loop load, and latency statistics.

Nothing here measures by itself; the scripts time under `flock -x /tmp/rnncore-cpu.lock`.
"""
import asyncio
import json
import os
import re
import selectors
import subprocess
import sys
import time

import numpy as np

SHAKESPEARE_SYMBOLS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def cpu_model():
    """The CPU's model name and family/model numbers (Linux: /proc/cpuinfo)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return sys.platform
    return (f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')}, "
            f"model {fields.get('model', '?')}, {os.cpu_count()} CPUs)")


def make_checkpoint(path, folder, cell="gru", num_layers=2, hidden_size=256,
                    dtype="float32"):
    """`path`, or a fresh model over tinyshakespeare's symbols saved in `folder`."""
    if path:
        return path
    import rnncore
    vocab = rnncore.Vocab(sorted(SHAKESPEARE_SYMBOLS))
    model = rnncore.CharRNN(vocab, hidden_size, dtype=dtype, seed=0, cell=cell,
                            num_layers=num_layers)
    out = os.path.join(folder, "model.npz")
    model.save(out)
    return out


def this_source():
    """The folder this interpreter imports rnncore from."""
    import rnncore
    return os.path.dirname(os.path.dirname(os.path.abspath(rnncore.__file__)))


class Server:
    """`rnncore serve CKPT --port 0 ARGS` in a process of its own, importing rnncore from
    the folder `source` (another release's tree; default: this interpreter's)."""

    def __init__(self, ckpt, *args, source=None):
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy")}
        env["PYTHONPATH"] = os.path.abspath(source or this_source())
        ckpt = os.path.abspath(ckpt)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rnncore", "serve", ckpt, "--port", "0",
             *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL, env=env, cwd="/")
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
        self.host, self.port = re.match(r"http://([^:/]+):(\d+)", self.url).groups()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


class Connection:
    """One keep-alive HTTP/1.1 connection, as lean as a load generator can be (httpx
    costs the client more CPU per request than the server spends on a suggestion)."""

    def __init__(self, host, port):
        self.host, self.port = host, int(port)

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


async def closed_loop(server, clients, seconds, warmup, next_request):
    """`clients` closed-loop clients (each sends its next request as soon as its last is
    answered) for warmup + seconds; next_request(client) -> (path, body).  Returns the
    latencies (s) of the requests that started after the warm-up, and the time they
    spanned."""
    latencies = []
    t_start = time.perf_counter() + warmup
    t_end = t_start + seconds

    async def client(c):
        conn = await Connection(server.host, server.port).open()
        try:
            while time.perf_counter() < t_end:
                path, body = next_request(c)
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


def summary(runs):
    """{requests, requests_per_s (median of the runs), min/max, p50_ms, p99_ms (over
    all their requests)} of [(latencies, seconds spanned)]."""
    rates = [len(lat) / spanned for lat, spanned in runs]
    lat = np.concatenate([np.asarray(lat) for lat, _ in runs]) * 1e3
    return {"requests": int(len(lat)), "requests_per_s": float(np.median(rates)),
            "requests_per_s_min_max": [float(min(rates)), float(max(rates))],
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None}
