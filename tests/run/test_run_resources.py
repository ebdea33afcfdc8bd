"""What a run holds while it runs: the lock on its checkpoint, the BLAS threads asked for."""
import os

import pytest

import rnncore
from rnncore.lock import CheckpointLock, lock_path

from support import corpus

TEXT = "the quick brown fox jumps over the lazy dog; " * 60
SMALL = dict(cell="rnn", num_layers=1, hidden_size=8, dropout=0.0, seq_length=5,
             batch_size=2, echo=None, print_every=5)


def test_the_lock_is_held_for_the_whole_run_and_removed_after(tmp_path):
    out = tmp_path / "m.npz"
    seen = []

    def callback(record):
        with pytest.raises(rnncore.errors.CheckpointInUse, match=f"pid {os.getpid()}"):
            CheckpointLock(out).__enter__()
        seen.append(os.path.exists(lock_path(out)))
    rnncore.fit(corpus(tmp_path, TEXT), out, steps=10, callback=callback, **SMALL)
    assert seen == [True, True] and not os.path.exists(lock_path(out))


def test_a_run_that_fails_lets_go_of_the_lock(tmp_path):
    out = tmp_path / "m.npz"
    text = corpus(tmp_path, TEXT)
    rnncore.fit(text, out, steps=5, **SMALL)
    with pytest.raises(rnncore.RunError, match="exists: pass --resume"):
        rnncore.fit(text, out, steps=5, **SMALL)
    assert not os.path.exists(lock_path(out))
    with CheckpointLock(out):     # free
        pass


@pytest.mark.parametrize("threads", [1, 3])
def test_threads_sizes_the_kernels_team_for_the_run_only(tmp_path, threads):
    before = rnncore.get_num_threads()
    during = []
    rnncore.fit(corpus(tmp_path, TEXT), tmp_path / "m.npz", steps=5, threads=threads,
                callback=lambda record: during.append(rnncore.get_num_threads()), **SMALL)
    assert during and all(n == threads for n in during)
    assert rnncore.get_num_threads() == before
