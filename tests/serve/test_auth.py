"""Who may use the server, over real sockets: with an API key (from --api-key-file,
--api-key or RNNCORE_API_KEY) every /v1/ request needs `Authorization: Bearer KEY`, and
gets 401 with the JSON error and WWW-Authenticate otherwise; /healthz, the page, its icon
and the OpenAPI schema stay open."""
import pytest

from support import Server, assert_clean_error, demo_ckpt, run  # noqa: F401

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

pytestmark = pytest.mark.slow

KEY = "s3cret-Key_with.punctuation"


@pytest.fixture(scope="module")
def keyed(demo_ckpt, tmp_path_factory):
    folder = tmp_path_factory.mktemp("auth")
    (folder / "key.txt").write_text(KEY + "\n")
    server = Server(demo_ckpt, "--api-key-file", folder / "key.txt", "--host", "0.0.0.0",
                    cwd=folder)
    url = "http://127.0.0.1:" + server.url.rsplit(":", 1)[1]
    yield url
    status, out, err = server.stop()
    assert status == 0 and err == ""    # keyed: no warning about other machines either


@pytest.mark.parametrize("headers,says", [
    ({}, "this server needs an API key: send Authorization: Bearer KEY"),
    ({"Authorization": "Bearer wrong"}, "the API key is not valid"),
    ({"Authorization": f"Bearer {KEY}x"}, "the API key is not valid"),
    ({"Authorization": f"Bearer {KEY[:-1]}"}, "the API key is not valid"),
    ({"Authorization": f"Basic {KEY}"}, "the API key is not valid"),
    ({"Authorization": KEY}, "the API key is not valid"),
])
def test_model_endpoints_need_the_key(keyed, headers, says):
    with httpx.Client(base_url=keyed, trust_env=False, timeout=30) as client:
        for method, path, body in [("POST", "/v1/next", {"text": "Ho"}),
                                   ("POST", "/v1/suggest", {"text": "Ho"}),
                                   ("POST", "/v1/sample", {"length": 5}),
                                   ("POST", "/v1/complete", {"prime": "H", "length": 3}),
                                   ("GET", "/v1/model", None), ("GET", "/v1/stats", None),
                                   ("POST", "/v1/nothing", {})]:
            got = client.request(method, path, json=body, headers=headers)
            assert got.status_code == 401, (path, got.text)
            assert got.json() == {"error": got.json()["error"]}
            assert says in got.json()["error"]
            assert got.headers["www-authenticate"] == "Bearer"


def test_the_key_opens_them_and_open_paths_stay_open(keyed):
    auth = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=keyed, trust_env=False, timeout=30) as client:
        assert client.post("/v1/next", json={"text": "Ho"}, headers=auth).status_code == 200
        assert client.get("/v1/model", headers={"authorization": f"bearer {KEY}"}
                          ).status_code == 200
        for path in ("/healthz", "/", "/favicon.ico", "/openapi.json", "/docs"):
            assert client.get(path).status_code == 200, path
        # a bad request with the key is the request's own error, not a 401
        got = client.post("/v1/next", json={"text": 3}, headers=auth)
        assert got.status_code == 422


def test_the_key_from_the_command_line_or_the_environment(demo_ckpt, tmp_path, monkeypatch):
    for args, env in ((["--api-key", "k1"], None), ([], "k2")):
        if env:
            monkeypatch.setenv("RNNCORE_API_KEY", env)
        server = Server(demo_ckpt, *args, cwd=tmp_path)
        key = env or "k1"
        try:
            with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client:
                assert client.get("/v1/model").status_code == 401
                assert client.get("/v1/model", headers={
                    "Authorization": f"Bearer {key}"}).status_code == 200
        finally:
            assert server.stop()[0] == 0


def test_bad_key_options_are_one_line_errors(demo_ckpt, tmp_path):
    (tmp_path / "empty.txt").write_text("\n")
    assert_clean_error(run("serve", demo_ckpt, "--api-key", "a", "--api-key-file", "k",
                           cwd=tmp_path), "--api-key and --api-key-file: give one of them")
    assert_clean_error(run("serve", demo_ckpt, "--api-key-file", tmp_path / "none.txt",
                           cwd=tmp_path), "No such file or directory")
    assert_clean_error(run("serve", demo_ckpt, "--api-key-file", tmp_path / "empty.txt",
                           cwd=tmp_path), "the file's first line is empty")
    assert_clean_error(run("serve", demo_ckpt, "--api-key", " ", cwd=tmp_path),
                       "--api-key is empty")
