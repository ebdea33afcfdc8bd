"""README: the checkpoint is written to a temporary file in the same directory, flushed and
fsync'ed, then renamed over the old one.  A killed process cannot show a missing fsync (the
page cache survives it), so the order of the calls is observed directly."""
import os

import numpy as np
import pytest

import rnncore
from rnncore.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_the_whole_temporary_file_is_fsynced_before_it_replaces_the_checkpoint(tmp_path,
                                                                               monkeypatch):
    events = []
    real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync", (st.st_dev, st.st_ino), st.st_size))
        return real_fsync(fd)

    def renamer(real):
        def rename(src, dst, *args, **kwargs):
            st = os.stat(src)
            events.append(("rename", (st.st_dev, st.st_ino), os.fspath(dst)))
            return real(src, dst, *args, **kwargs)
        return rename

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", renamer(real_replace))
    monkeypatch.setattr(os, "rename", renamer(real_rename))
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abcdef"), 8, seed=0)
    path = tmp_path / "m.npz"
    for _ in range(2):            # a new file, then over an existing one
        events.clear()
        save_checkpoint(path, model)
        renames = [e for e in events if e[0] == "rename" and e[2] == str(path)]
        assert len(renames) == 1, events
        file_id = renames[0][1]
        before = events[:events.index(renames[0])]
        synced = [size for kind, fid, size in before if kind == "fsync" and fid == file_id]
        # the renamed file was fsynced before the rename, with all its bytes in it
        assert synced and synced[-1] == os.path.getsize(path), events
        assert [n for n in os.listdir(tmp_path)] == ["m.npz"]
    np.testing.assert_array_equal(load_checkpoint(path).model.params["Why"],
                                  model.params["Why"])


def test_a_checkpoint_gets_an_ordinary_files_permissions(tmp_path):
    # not mkstemp's 0600: 0666 less the umask, like any file the user creates; the
    # process's umask is left as it was
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "m.npz", rnncore.CharRNN(rnncore.Vocab.from_text("ab"), 2))
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == 0o644


def test_a_failed_write_raises_removes_its_temporary_file_and_keeps_the_old_one(tmp_path,
                                                                              monkeypatch):
    path = tmp_path / "m.npz"
    model = rnncore.CharRNN(rnncore.Vocab.from_text("abc"), 4, seed=0)
    save_checkpoint(path, model)
    before = path.read_bytes()

    def replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", replace)
    model.params["Why"] += 1
    with pytest.raises((OSError, CheckpointError)):
        save_checkpoint(path, model)
    assert os.listdir(tmp_path) == ["m.npz"] and path.read_bytes() == before


def test_the_temporary_file_is_hidden_beside_the_checkpoint_and_named_for_it(tmp_path):
    """.NAME.<random>.tmp in the same directory: what a later run clears when a killed
    writer left one (remove_stale_temp_files), and never the checkpoint itself."""
    from rnncore.files import remove_stale_temp_files, write_atomically
    seen = []
    write_atomically(str(tmp_path / "m.npz"), lambda f: seen.append(os.listdir(tmp_path)))
    (name,) = seen[0]
    assert name.startswith(".m.npz.") and name.endswith(".tmp")
    (tmp_path / name).write_bytes(b"left by a killed writer")
    (tmp_path / ".other.npz.x.tmp").write_bytes(b"another checkpoint's")
    assert remove_stale_temp_files(str(tmp_path / "m.npz")) == 1
    assert sorted(os.listdir(tmp_path)) == [".other.npz.x.tmp", "m.npz"]
