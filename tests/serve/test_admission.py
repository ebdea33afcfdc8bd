"""Admission and departure over real sockets: beyond --max-queue, 429 with Retry-After
and the JSON error; a burst of 1,000 connections is answered 200 or 429, none 5xx or
reset, in bounded memory; a client that disconnects stops costing, streamed or not; and
SIGTERM or Ctrl-C with requests in flight stops cleanly (they get 503 or an error event,
the server no traceback)."""
import asyncio
import json
import signal
import time

import pytest

from support import Server, demo_ckpt  # noqa: F401  (a fixture)

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

pytestmark = pytest.mark.slow

ENDLESS = 5_000_000      # a sample far longer than any test waits for


def cpu_seconds(pid):
    """User + system CPU time of process `pid` so far."""
    import os
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def stats(url):
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:
        return client.get("/v1/stats").json()


def wait_for(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def server(demo_ckpt, tmp_path):
    server = Server(demo_ckpt, "--max-length", ENDLESS, "--max-queue", 4, cwd=tmp_path)
    yield server
    status, out, err = server.stop()
    assert status == 0 and "Traceback" not in err, err


async def endless_samples(url, count, stream=False):
    """Start `count` endless samples; returns their (client, response-task) pairs."""
    client = httpx.AsyncClient(base_url=url, trust_env=False, timeout=120,
                               limits=httpx.Limits(max_connections=count + 8))
    tasks = [asyncio.ensure_future(client.post("/v1/sample", json={
        "prime": "Hola", "length": ENDLESS, "seed": i, "stream": stream}))
        for i in range(count)]
    return client, tasks


def test_beyond_max_queue_requests_get_429_and_retry_after(server):
    async def main():
        client, tasks = await endless_samples(server.url, 4)
        await asyncio.sleep(0)
        for _ in range(200):
            if stats(server.url)["queue"]["in_flight"] == 4:
                break
            await asyncio.sleep(0.05)
        got = await client.post("/v1/next", json={"text": "Ho"})
        assert got.status_code == 429, got.text
        assert got.headers["retry-after"] == "1"
        assert got.json() == {"error": "the server is busy: 4 requests are in flight "
                              "(--max-queue 4); retry after 1 s"}
        assert (await client.get("/healthz")).status_code == 200    # not counted
        assert (await client.get("/v1/stats")).json()["queue"]["refused_busy"] == 1
        for task in tasks:
            task.cancel()          # the clients give up: their connections close
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()
    asyncio.run(main())
    # they stop costing, and new requests are admitted again
    wait_for(lambda: stats(server.url)["sampling"] == 0 and
             stats(server.url)["queue"]["in_flight"] == 0)
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client:
        assert client.post("/v1/next", json={"text": "Ho"}).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_disconnects_stops_costing(server, stream):
    pid = server.proc.pid
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client:
        body = {"prime": "Hola", "length": ENDLESS, "seed": 1, "stream": stream}
        if stream:
            with client.stream("POST", "/v1/sample", json=body) as response:
                next(response.iter_lines())          # one piece, then it leaves
        else:
            with pytest.raises(httpx.ReadTimeout):
                client.post("/v1/sample", json=body, timeout=1.0)
    wait_for(lambda: stats(server.url)["sampling"] == 0, timeout=10)
    before = cpu_seconds(pid)
    time.sleep(1.0)
    assert cpu_seconds(pid) - before < 0.2        # idle: the sample was dropped
    assert stats(server.url)["queue"]["in_flight"] == 0


def test_a_burst_of_a_thousand_connections_gets_200_or_429(demo_ckpt, tmp_path):
    server = Server(demo_ckpt, "--max-queue", 64, cwd=tmp_path)
    pid = server.proc.pid
    try:
        before = rss_mb(pid)

        async def one(client, i):
            kind = i % 3
            path, body = [("/v1/suggest", {"text": "Hola mundo, apr"}),
                          ("/v1/next", {"text": "Hola"}),
                          ("/v1/sample", {"prime": "Hola", "length": 300, "seed": i})][kind]
            got = await client.post(path, json=body)
            return got.status_code, got.headers.get("retry-after"), got.json()

        async def burst():
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=120,
                                         limits=limits) as client:
                return await asyncio.gather(*(one(client, i) for i in range(1000)),
                                            return_exceptions=True)
        answers = asyncio.run(burst())
        errors = [a for a in answers if isinstance(a, BaseException)]
        assert not errors, errors[:3]          # none reset, none timed out
        codes = [status for status, _, _ in answers]
        assert set(codes) <= {200, 429} and codes.count(200) >= 64
        for status, retry, body in answers:
            if status == 429:
                assert retry == "1" and "the server is busy" in body["error"]
        assert rss_mb(pid) - before < 300
        wait_for(lambda: stats(server.url)["queue"]["in_flight"] == 0)
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client:
            assert client.post("/v1/suggest", json={"text": "Hola mundo, apr"}
                               ).json()["suggestions"][0]["word"] == "aprendiendo"
    finally:
        status, _, err = server.stop()
        assert status == 0 and err == "", err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_with_requests_in_flight_is_clean(demo_ckpt, tmp_path, sig):
    server = Server(demo_ckpt, "--max-length", ENDLESS, cwd=tmp_path)
    outcome = {}

    async def main():
        async with httpx.AsyncClient(base_url=server.url, trust_env=False,
                                     timeout=60) as client:
            async def streamed():
                events = []
                async with client.stream("POST", "/v1/sample", json={
                        "prime": "Hola", "length": ENDLESS, "seed": 2,
                        "stream": True}) as response:
                    async for line in response.aiter_lines():
                        events.append(line)
                return events

            async def plain(path, body):
                got = await client.post(path, json=body)
                return got.status_code, got.json()

            tasks = [asyncio.ensure_future(streamed()),
                     asyncio.ensure_future(plain("/v1/sample", {
                         "prime": "Hola", "length": ENDLESS, "seed": 3})),
                     asyncio.ensure_future(plain("/v1/complete", {
                         "prime": "Hola", "length": 4096, "beam": 64}))]
            wait = time.monotonic() + 30
            while time.monotonic() < wait:
                s = (await client.get("/v1/stats")).json()
                if s["sampling"] == 2 and s["long_lane"]["running"] == 1:
                    break
                await asyncio.sleep(0.05)
            server.proc.send_signal(sig)
            outcome["results"] = await asyncio.gather(*tasks)
    asyncio.run(main())
    server.proc.wait(timeout=30)        # it stops by itself
    status, out, err = server.stop()
    assert status == 0 and err == "", err
    assert out.strip().endswith(f"({sig.name})")
    events, sample, complete = outcome["results"]
    assert "event: error" in events
    assert json.loads(events[events.index("event: error") + 1][6:]) == {
        "error": "the server is stopping"}
    assert sample == complete == (503, {"error": "the server is stopping"})
