"""The state cache over real sockets: it never changes an answer (every endpoint, hit or
miss, the same bytes as a server without a cache and as the Python API), a text that
extends or shares a prefix with a recent one (sent by any client) feeds only the rest,
and its memory stays within --state-cache-mb."""
import numpy as np
import pytest

import rnncore
from support import demo_ckpt, running_server  # noqa: F401  (a fixture)

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

pytestmark = pytest.mark.slow

HOLA = "Hola mundo, aprendiendo redes recurrentes! "
LONG = HOLA * 14         # 602 characters: the cache keeps states at 256 and 512


@pytest.fixture(scope="module")
def cached(demo_ckpt, tmp_path_factory):
    yield from running_server(demo_ckpt, cwd=tmp_path_factory.mktemp("cached"))


@pytest.fixture(scope="module")
def uncached(demo_ckpt, tmp_path_factory):
    yield from running_server(demo_ckpt, "--state-cache-mb", 0,
                              cwd=tmp_path_factory.mktemp("uncached"))


def requests_of(text):
    return [("/v1/next", {"text": text, "k": 18}),
            ("/v1/suggest", {"text": text, "k": 3, "next": 5}),
            ("/v1/complete", {"prime": text or "H", "length": 30, "beam": 3}),
            ("/v1/complete", {"prime": text or "H", "length": 20}),
            ("/v1/sample", {"prime": text, "length": 100, "seed": 5, "top_p": 0.9})]


def stats(client):
    return client.get("/v1/stats").json()["state_cache"]


def test_hit_or_miss_the_same_bytes(cached, uncached, demo_ckpt):
    model = rnncore.CharRNN.load(demo_ckpt)
    with httpx.Client(base_url=cached.url, trust_env=False, timeout=60) as hot, \
            httpx.Client(base_url=uncached.url, trust_env=False, timeout=60) as cold:
        for text in ["", "Hola", "Hola mundo, apr", LONG[:300], LONG]:
            for path, body in requests_of(text):
                hits = stats(hot)["hits"]
                first = hot.post(path, json=body)
                again = hot.post(path, json=body)
                plain = cold.post(path, json=body)
                assert first.status_code == again.status_code == plain.status_code == 200
                assert first.content == again.content == plain.content, (path, text)
                if text:
                    assert stats(hot)["hits"] > hits        # the second was a hit
            # and the Python API's numbers, to the last bit (JSON keeps a float's repr)
            got = hot.post("/v1/next", json={"text": text, "k": 18}).json()["next"]
            assert [(n["char"], n["prob"]) for n in got] == model.next_chars(text)
        assert stats(cold)["hits"] == 0 and stats(cold)["entries"] == 0


def test_a_text_that_extends_a_recent_one_feeds_only_the_rest(cached):
    with httpx.Client(base_url=cached.url, trust_env=False, timeout=60) as one, \
            httpx.Client(base_url=cached.url, trust_env=False, timeout=60) as other:
        text = "redes recurrentes, " * 20 + "Hola mun"
        one.post("/v1/suggest", json={"text": text})
        fed = stats(one)["chars_fed"]
        # another client types on: only the new characters are fed
        for c in "do, apr":
            text += c
            assert other.post("/v1/suggest", json={"text": text}).status_code == 200
        assert stats(one)["chars_fed"] - fed == len("do, apr")
        # an edit in the middle refeeds from the state kept at 256 characters
        edited = text[:300] + "Hola" + text[300:]
        fed = stats(one)["chars_fed"]
        one.post("/v1/next", json={"text": edited})
        assert stats(one)["chars_fed"] - fed == len(edited) - 256


def test_the_cache_stays_within_its_bytes(demo_ckpt, tmp_path):
    limit_mb = 0.02
    for server in running_server(demo_ckpt, "--state-cache-mb", limit_mb, cwd=tmp_path):
        with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as client:
            rng = np.random.default_rng(0)
            for i in range(60):
                words = rng.choice(HOLA.split(), 30)
                client.post("/v1/next", json={"text": " ".join(words)})
            s = stats(client)
            assert 0 < s["bytes"] <= s["max_bytes"] == int(limit_mb * 2 ** 20)
            assert s["evictions"] > 0
