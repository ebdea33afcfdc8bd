import os

import pytest
from hypothesis import settings


# no example database: a test run writes nothing into the working directory
settings.register_profile("rnncore", database=None)
settings.load_profile("rnncore")


def pytest_addoption(parser):
    parser.addoption("--run-bench", action="store_true", default=False,
                     help="also run the benchmark scripts in bench/ (tests marked `bench`)")


def pytest_configure(config):
    config.addinivalue_line("markers", "bench: runs a script from bench/; opt in with "
                            "--run-bench or RNNCORE_RUN_BENCH=1")


def pytest_collection_modifyitems(config, items):
    for item in items:   # building the wheel takes minutes: not in the fast tier
        if item.get_closest_marker("wheel") is not None:
            item.add_marker(pytest.mark.slow)
    if config.getoption("--run-bench") or os.environ.get("RNNCORE_RUN_BENCH") == "1":
        return
    skip = pytest.mark.skip(reason="benchmark script: opt in with --run-bench")
    for item in items:
        if item.get_closest_marker("bench") is not None:
            item.add_marker(skip)


@pytest.fixture
def hola():
    return "Hola mundo, aprendiendo redes recurrentes!"
