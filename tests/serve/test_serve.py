"""`rnncore serve` over real sockets: every endpoint's success and error paths, results
equal to the Python API's, concurrent requests equal to sequential ones, 200 mixed
concurrent requests, SIGTERM and Ctrl-C, a busy port, the loopback default."""
import asyncio
import json
import math
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

import rnncore
from support import Server, assert_clean_error, demo_ckpt, run, running_server  # noqa: F401

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

pytestmark = pytest.mark.slow

MAX_LENGTH = 300


@pytest.fixture(scope="module")
def server(demo_ckpt, tmp_path_factory):
    yield from running_server(demo_ckpt, "--max-length", MAX_LENGTH,
                              cwd=tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def model(demo_ckpt):
    return rnncore.CharRNN.load(demo_ckpt)


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as c:
        yield c


def post(client, path, body):
    response = client.post(path, json=body)
    return response.status_code, response.json()


# ---- successes, equal to the Python API ---------------------------------------------
def test_it_says_where_it_serves_and_binds_loopback(server, demo_ckpt):
    assert server.lines[-1].strip() == f"serving {demo_ckpt} on {server.url}"
    assert server.url.startswith("http://127.0.0.1:")


def test_model_health_schema_and_docs(client, model):
    info = client.get("/v1/model").json()
    assert info == {"cell": "rnn", "num_layers": 1, "hidden_size": 64,
                    "vocab_size": model.n_vocab, "dtype": "float64",
                    "parameters": model.num_parameters(),
                    "vocab": "".join(model.vocab.chars), "max_length": MAX_LENGTH,
                    "start_text": " "}
    assert client.get("/healthz").json() == {"status": "ok"}
    schema = client.get("/openapi.json").json()
    assert {"/v1/model", "/v1/next", "/v1/suggest", "/v1/complete", "/v1/sample",
            "/v1/stats", "/healthz"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("text", ["Hola mundo, aprendien", "", "Hola "])
def test_next_is_the_python_api(client, model, text):
    status, got = post(client, "/v1/next", {"text": text, "k": 5})
    assert status == 200
    expected = model.next_chars(text, k=5)
    assert [n["char"] for n in got["next"]] == [c for c, _ in expected]
    np.testing.assert_allclose([n["prob"] for n in got["next"]], [p for _, p in expected],
                               rtol=1e-12)
    assert len(post(client, "/v1/next", {"text": text})[1]["next"]) == 10


@pytest.mark.parametrize("body", [{"text": "Hola mundo, aprendien"},
                                  {"text": "Hola mundo,", "k": 5, "max_chars": 12},
                                  {"text": "", "k": 2, "beam": 4}])
def test_suggest_is_the_python_api(client, model, body):
    status, got = post(client, "/v1/suggest", body)
    assert status == 200
    expected = model.suggest(body["text"], k=body.get("k", 3),
                             max_chars=body.get("max_chars", 32), beam=body.get("beam", 16))
    assert [(s["word"], s["completion"]) for s in got["suggestions"]] == \
        [(s.word, s.completion) for s in expected]
    np.testing.assert_allclose([s["log_prob"] for s in got["suggestions"]],
                               [s.log_prob for s in expected], rtol=1e-12)
    if body["text"] == "Hola mundo, aprendien":
        assert got["suggestions"][0]["word"] == "aprendiendo"


@pytest.mark.parametrize("beam", [1, 4])
def test_complete_is_the_python_api(client, model, beam):
    status, got = post(client, "/v1/complete", {"prime": "Hola mundo, ap", "length": 28,
                                                "beam": beam})
    assert status == 200
    best = model.beam_search("Hola mundo, ap", 28, beam=beam)[0]
    assert got["completion"] == best.text == model.complete("Hola mundo, ap", 28, beam=beam)
    assert math.isclose(got["log_prob"], best.log_prob, rel_tol=1e-12)


@pytest.mark.parametrize("body", [
    {"prime": "Hola", "length": 200, "seed": 3},
    {"prime": "", "length": 50, "seed": 1, "temperature": 0.7, "top_k": 4},
    {"prime": "Hola mundo", "length": 250, "seed": 8, "top_p": 0.9, "stop": ["es", "!"]},
    {"prime": "Ho", "length": 120, "seed": 2, "temperature": 1.5, "stop": "o"}])
def test_sample_is_the_python_api_with_the_same_seed(client, model, body):
    status, got = post(client, "/v1/sample", body)
    assert status == 200
    expected = model.sample(body["length"], body["prime"], seed=body["seed"],
                            temperature=body.get("temperature", 1.0),
                            top_k=body.get("top_k"), top_p=body.get("top_p"),
                            stop=body.get("stop"))
    assert got == {"text": expected}


def sse_events(response):
    events, current = [], {}
    for line in response.iter_lines():
        if not line:
            if current:
                events.append(current)
            current = {}
            continue
        field, _, value = line.partition(": ")
        current[field] = value
    return events


def test_sample_streams_server_sent_events(client, model):
    body = {"prime": "Hola", "length": MAX_LENGTH, "seed": 5, "stream": True}
    with client.stream("POST", "/v1/sample", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == {"event": "done", "data": "{}"}
    pieces = [json.loads(e["data"])["text"] for e in events[:-1]]
    assert len(pieces) > 1                    # it arrives as it is generated
    assert "".join(pieces) == model.sample(MAX_LENGTH, "Hola", seed=5)


def test_the_typing_page_is_served(client):
    response = client.get("/")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert "/v1/suggest" in response.text and "http" not in response.text.split(
        "<script>")[0].replace("http-equiv", "")   # nothing fetched from elsewhere


def test_the_empty_text_is_read_as_the_start_text(client, model):
    # the demo's vocabulary has no newline: its start text is a space
    status, got = post(client, "/v1/next", {"text": "", "k": 4})
    assert [n["char"] for n in got["next"]] == [c for c, _ in model.next_chars(" ", k=4)]
    status, got = post(client, "/v1/suggest", {"text": ""})
    assert [s["word"] for s in got["suggestions"]] == [s.word for s in model.suggest("")]


def test_suggest_with_next_answers_both_in_one_request(client, model):
    text = "Hola mundo, apr"
    status, got = post(client, "/v1/suggest", {"text": text, "k": 2, "next": 5})
    assert status == 200 and set(got) == {"suggestions", "next"}
    assert [(s["word"], s["log_prob"]) for s in got["suggestions"]] == \
        [(s.word, s.log_prob) for s in model.suggest(text, k=2)]
    assert [(n["char"], n["prob"]) for n in got["next"]] == model.next_chars(text, k=5)
    assert "next" not in post(client, "/v1/suggest", {"text": text})[1]


@pytest.mark.parametrize("span", [(20, 60), (30, 100), (31, 33), (0, 150), (64, 200)])
@pytest.mark.parametrize("stream", [False, True])
def test_stop_texts_across_and_beyond_the_servers_chunks(client, model, span, stream):
    # the server generates 32 characters a round: these stop texts cross rounds, or
    # are longer than several of them
    whole = model.sample(MAX_LENGTH, "Hola", seed=3)
    stop = whole[span[0]:span[1]]
    expected = model.sample(MAX_LENGTH, "Hola", seed=3, stop=stop)
    assert expected == whole[:whole.find(stop) + len(stop)] and len(expected) < MAX_LENGTH
    body = {"prime": "Hola", "length": MAX_LENGTH, "seed": 3, "stop": stop}
    if stream:
        with client.stream("POST", "/v1/sample", json={**body, "stream": True}) as r:
            events = sse_events(r)
        assert events[-1] == {"event": "done", "data": "{}"}
        got = "".join(json.loads(e["data"])["text"] for e in events[:-1])
    else:
        got = post(client, "/v1/sample", body)[1]["text"]
    assert got == expected
    # among other stop texts (one that never appears, one shorter and later), as a list
    later = whole[span[1] + 5:span[1] + 8]
    if later and later not in expected:
        got = post(client, "/v1/sample", {**body, "stop": ["zzzz", later, stop]})[1]
        assert got["text"] == expected


def test_a_single_long_stop_string_is_one_stop_text(client, model):
    whole = model.sample(MAX_LENGTH, "Hola", seed=4)
    stop = whole[10:10 + MAX_LENGTH // 2]       # one string, longer than several chunks
    status, got = post(client, "/v1/sample", {"prime": "Hola", "length": MAX_LENGTH,
                                              "seed": 4, "stop": stop})
    assert status == 200 and got["text"] == whole[:10 + MAX_LENGTH // 2]
    # a single string is one stop text, not one per character
    status, got = post(client, "/v1/sample", {"prime": "Hola", "length": 50, "seed": 4,
                                              "stop": "Qz" + whole[:3]})
    assert got["text"] == model.sample(50, "Hola", seed=4, stop="Qz" + whole[:3])
    for stop in ("a" * (MAX_LENGTH + 1), ["b", "a" * (MAX_LENGTH + 1)]):
        status, got = post(client, "/v1/sample", {"prime": "Ho", "stop": stop})
        assert (status, got) == (422, {"error": f"stop: a stop text of {MAX_LENGTH + 1} "
                                                f"characters is longer than the limit of "
                                                f"{MAX_LENGTH}"})


def test_the_icon_and_the_statistics(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.text.startswith("<svg")
    stats = client.get("/v1/stats").json()
    assert set(stats["state_cache"]) >= {"hits", "misses", "bytes", "entries", "max_bytes"}
    assert stats["queue"]["max_queue"] == 512 and stats["queue"]["in_flight"] == 0
    assert stats["state_cache"]["bytes"] <= stats["state_cache"]["max_bytes"]


# ---- errors: 4xx with one line, never a 5xx -------------------------------------------
BIG = "a" * (65 * 1024)


@pytest.mark.parametrize("path,body,status,says", [
    ("/v1/next", b"{not json", 400, "malformed JSON: Expecting property name enclosed "
     "in double quotes at line 1 column 2"),
    ("/v1/next", b'{"text": "Ho",}', 400, "malformed JSON: Expecting property name"),
    ("/v1/next", b'{"text": "\xff\xfe"}', 400, "malformed JSON: not UTF-8 (byte 10 is 0xff)"),
    ("/v1/next", b"[" * 20000 + b"]" * 20000, 400, "malformed JSON: nested too deeply"),
    ("/v1/next", b'{"text": ' + b'[' * 3000 + b']' * 3000 + b'}', 400,
     "malformed JSON: nested too deeply"),
    ("/v1/next", b'{"text": "Ho"} trailing', 400, "malformed JSON: Extra data"),
    ("/v1/next", b"", 422, "needs a JSON object"),
    ("/v1/next", [1, 2], 422, "valid dictionary"),
    ("/v1/next", {"text": 3}, 422, "text: Input should be a valid string"),
    ("/v1/next", {"text": "Ho", "k": "3"}, 422, "k: Input should be a valid integer"),
    ("/v1/next", {"text": "Ho", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
    ("/v1/next", {"text": "Ho", "k": 19}, 422, "k: Input should be less than or equal to 18"),
    ("/v1/next", {"text": "Ho", "kk": 3}, 422, "kk: Extra inputs are not permitted"),
    ("/v1/next", {}, 422, "text: Field required"),
    ("/v1/next", {"text": "HoQZ"}, 422, 'characters the model has never seen: "QZ"'),
    ("/v1/next", {"text": "a" * (MAX_LENGTH + 1)}, 422, "text: String should have at most"),
    ("/v1/suggest", {"text": "Ho", "k": 33}, 422, "k: Input should be less than or equal to 32"),
    ("/v1/suggest", {"text": "Ho", "beam": 0}, 422, "beam: Input should be greater"),
    ("/v1/suggest", {"text": "Ho", "max_chars": -1}, 422, "max_chars"),
    ("/v1/suggest", {"text": "\u00e9"}, 422, 'never seen: "\\u00e9"'),
    ("/v1/complete", {"prime": "", "length": 5}, 422, "prime: String should have at least 1"),
    ("/v1/complete", {"prime": "Q", "length": 5, "skip_unknown": True}, 422,
     "prime: empty once the unknown characters are dropped"),
    ("/v1/complete", {"prime": "Ho", "length": MAX_LENGTH + 1}, 422,
     "length: Input should be less than or equal to 300"),
    ("/v1/complete", {"prime": "Ho", "length": 5, "beam": 65}, 422, "beam"),
    ("/v1/complete", {"prime": "Ho"}, 422, "length: Field required"),
    ("/v1/sample", {"prime": "Ho", "temperature": 0}, 422, "temperature: Input should be greater"),
    ("/v1/sample", {"prime": "Ho", "temperature": "hot"}, 422, "temperature"),
    ("/v1/sample", {"prime": "Ho", "top_p": 1.5}, 422, "top_p: Input should be less"),
    ("/v1/sample", {"prime": "Ho", "seed": -1}, 422, "seed: Input should be greater"),
    ("/v1/sample", {"prime": "Ho", "seed": 2 ** 70}, 422, "seed"),
    ("/v1/sample", {"prime": "Ho", "stop": ""}, 422, "stop: a stop text must not be empty"),
    ("/v1/sample", {"prime": "Ho", "stop": ["a"] * 17}, 422, "stop: at most 16 texts"),
    ("/v1/sample", {"prime": "Ho", "stop": [3]}, 422, "stop"),
    ("/v1/sample", {"prime": "Ho", "stream": "yes"}, 422, "stream"),
    ("/v1/sample", {"prime": "Ho", "length": 0}, 422, "length"),
    ("/v1/next", {"text": BIG}, 413, "the body is over 64 KiB"),
])
def test_bad_requests_get_one_line_4xx(client, path, body, status, says):
    if isinstance(body, bytes):
        response = client.post(path, content=body,
                               headers={"content-type": "application/json"})
    else:
        response = client.post(path, json=body)
    assert response.status_code == status, response.text
    got = response.json()
    assert list(got) == ["error"] and "\n" not in got["error"]
    assert says in got["error"], got["error"]


def test_a_chunked_body_over_the_limit_is_413_too(client):
    def chunks():
        for _ in range(70):
            yield b" " * 1024
    response = client.post("/v1/next", content=chunks(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413 and "64 KiB" in response.json()["error"]


def test_unknown_paths_methods_and_content_types(client):
    got = client.get("/v1/nothing")
    assert got.status_code == 404 and got.json() == {"error": "not found: /v1/nothing"}
    got = client.get("/v1/next")
    assert got.status_code == 405 and "GET is not allowed on /v1/next" in got.json()["error"]
    got = client.post("/v1/next", data={"text": "Ho"})
    assert got.status_code == 422 and "Content-Type: application/json" in got.json()["error"]


def test_skip_unknown_drops_them(client, model):
    status, got = post(client, "/v1/suggest", {"text": "Hola mQundo, aprendZien",
                                               "skip_unknown": True})
    assert status == 200 and got["suggestions"][0]["word"] == "aprendiendo"


def test_the_server_still_serves_after_all_that(client):
    assert client.get("/healthz").json() == {"status": "ok"}


# ---- concurrency --------------------------------------------------------------------------
def mixed_requests(count, rng):
    texts = ["Hola mundo, aprendien", "Hola ", "Hola mundo, aprendiendo redes rec", "",
             "mundo", "redes recurrentes"]
    requests = []
    for i in range(count):
        text = texts[int(rng.integers(len(texts)))]
        kind = ["next", "suggest", "complete", "sample", "stream"][i % 5]
        if kind == "next":
            requests.append(("/v1/next", {"text": text, "k": 4}))
        elif kind == "suggest":
            requests.append(("/v1/suggest", {"text": text, "k": 3}))
        elif kind == "complete":
            requests.append(("/v1/complete", {"prime": text or "H", "length": 12,
                                              "beam": int(rng.integers(1, 4))}))
        else:
            requests.append(("/v1/sample", {"prime": text, "length": int(rng.integers(5, 80)),
                                            "seed": i, "top_p": 0.95,
                                            "stream": kind == "stream"}))
    return requests


def expected_answer(model, path, body):
    if path == "/v1/next":
        return [c for c, _ in model.next_chars(body["text"], k=body["k"])]
    if path == "/v1/suggest":
        return [s.word for s in model.suggest(body["text"], k=body["k"])]
    if path == "/v1/complete":
        return model.complete(body["prime"], body["length"], beam=body["beam"])
    return model.sample(body["length"], body["prime"], seed=body["seed"],
                        top_p=body["top_p"])


async def ask(client, path, body):
    if body.get("stream"):
        async with client.stream("POST", path, json=body) as response:
            text = ""
            async for line in response.aiter_lines():
                if line.startswith("data: ") and line != "data: {}":
                    text += json.loads(line[6:])["text"]
            return response.status_code, {"text": text}
    response = await client.post(path, json=body)
    return response.status_code, response.json()


def answer_of(path, got):
    if path == "/v1/next":
        return [n["char"] for n in got["next"]]
    if path == "/v1/suggest":
        return [s["word"] for s in got["suggestions"]]
    if path == "/v1/complete":
        return got["completion"]
    return got["text"]


def run_concurrently(url, requests):
    async def main():
        limits = httpx.Limits(max_connections=len(requests))
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=60,
                                     limits=limits) as client:
            return await asyncio.gather(*(ask(client, p, b) for p, b in requests))
    return asyncio.run(main())


def test_concurrent_requests_give_what_sequential_ones_give(server, model):
    requests = mixed_requests(40, np.random.default_rng(1))
    together = run_concurrently(server.url, requests)
    with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as client:
        one_by_one = [(r.status_code, r.json()) for r in
                      (client.post(p, json={**b, "stream": False} if "stream" in b else b)
                       for p, b in requests)]
    for (path, body), (s1, a), (s2, b) in zip(requests, together, one_by_one):
        assert s1 == s2 == 200
        assert answer_of(path, a) == answer_of(path, b) == expected_answer(model, path, body)


def test_two_hundred_mixed_concurrent_requests_lose_none(server, model):
    requests = mixed_requests(200, np.random.default_rng(2))
    answers = run_concurrently(server.url, requests)
    assert len(answers) == 200
    assert all(status == 200 for status, _ in answers)
    for (path, body), (_, got) in zip(requests, answers):
        assert answer_of(path, got) == expected_answer(model, path, body)


# ---- starting and stopping -------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_it_cleanly(demo_ckpt, tmp_path, sig):
    server = Server(demo_ckpt, cwd=tmp_path)
    with httpx.Client(base_url=server.url, trust_env=False) as client:
        assert client.get("/healthz").status_code == 200
    status, out, err = server.stop(sig)
    assert status == 0, err
    assert out.strip() == f"stopped serving {demo_ckpt} ({sig.name})"
    assert err == ""
    with pytest.raises(OSError):    # and the port is closed
        socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), 1)


def test_a_busy_port_is_a_one_line_error(demo_ckpt, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run("serve", demo_ckpt, "--port", port, cwd=tmp_path, timeout=60)
    assert_clean_error(proc, f"port {port} on 127.0.0.1 is in use")
    assert proc.stdout == ""


def test_another_host_is_served_only_when_asked_and_with_a_warning(demo_ckpt, tmp_path):
    server = Server(demo_ckpt, "--host", "0.0.0.0", cwd=tmp_path)
    port = server.url.rsplit(":", 1)[1]
    with httpx.Client(trust_env=False) as client:   # reached here through loopback
        assert client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    status, _, err = server.stop()
    assert status == 0
    assert err.strip() == ("rnncore: warning: serving on 0.0.0.0, which other machines "
                           "can reach, without an API key: anyone who reaches it may use "
                           "the model (see --api-key-file)")


def test_bad_serve_arguments(demo_ckpt, tmp_path):
    assert_clean_error(run("serve", tmp_path / "missing.npz", cwd=tmp_path),
                       "checkpoint not found")
    assert_clean_error(run("serve", demo_ckpt, "--port", "-1", cwd=tmp_path),
                       "argument --port: must be >= 0", status=2)
    assert_clean_error(run("serve", demo_ckpt, "--host", "no.such.host.invalid",
                           cwd=tmp_path), "cannot listen on no.such.host.invalid")


def test_without_fastapi_serve_says_what_to_install(demo_ckpt, tmp_path):
    code = ("import sys; sys.modules['fastapi'] = None; from rnncore import cli; "
            f"sys.exit(cli.main(['serve', {str(demo_ckpt)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert_clean_error(proc, "rnncore serve needs FastAPI and uvicorn (fastapi is "
                       "missing): pip install 'rnncore[serve]'")
