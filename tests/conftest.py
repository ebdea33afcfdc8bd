import os

import numpy as np
import pytest
from hypothesis import settings

import rnncore

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


def random_model(n_vocab, hidden_size, dtype="float64", seed=0, scale=0.5):
    """A model over the first n_vocab printable characters with O(scale) weights, so that
    tanh and softmax are far from their linear regimes.  Whh is scaled by 1/sqrt(H) so the
    recurrence stays contracting: in the chaotic regime any two correct implementations
    drift apart exponentially in T, and no tolerance would be meaningful."""
    vocab = rnncore.Vocab([chr(33 + i) for i in range(n_vocab)])
    model = rnncore.CharRNN(vocab, hidden_size, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name, p in model.params.items():
        p[...] = rng.standard_normal(p.shape) * scale
    model.params["Whh"] /= max(1.0, np.sqrt(hidden_size) * scale / 0.9)
    return model
