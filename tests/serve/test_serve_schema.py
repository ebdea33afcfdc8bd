"""A schemathesis run against the server's /openapi.json: generated requests, valid
and invalid, to every operation over real sockets.  None gets a 5xx, and every response
conforms to the schema (status codes, content types, bodies, headers).  Left out is the
check that every schema-valid request is accepted: a text of characters the model has
never seen is valid JSON for the schema and rightly refused (422)."""
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from support import demo_ckpt, running_server  # noqa: F401  (a fixture)

pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(demo_ckpt, tmp_path_factory):
    yield from running_server(demo_ckpt, "--max-length", 200,
                              cwd=tmp_path_factory.mktemp("schema"))


def schemathesis_command():
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) \
        or shutil.which("schemathesis")
    return [found] if found else [sys.executable, "-m", "schemathesis.cli"]


def test_generated_requests_get_no_5xx_and_answers_that_fit_the_schema(server, tmp_path):
    proc = subprocess.run(
        schemathesis_command() + ["run", f"{server.url}/openapi.json",
                                  "--exclude-checks", "positive_data_acceptance",
                                  "--max-examples", "100", "--seed", "1",
                                  "--request-timeout", "30", "--no-color"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NO_PROXY": "*", "no_proxy": "*"})
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "Test cases:" in proc.stdout and " passed" in proc.stdout
    # it exercised every operation (/v1/stats among them)
    assert "Tested: 7" in proc.stdout, proc.stdout[-3000:]
    # and the server is still there
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{server.url}/healthz", timeout=10) as r:
        assert r.status == 200
