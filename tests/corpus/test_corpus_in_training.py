"""A corpus in a run: memory-mapped and released as it is read; UTF-8 end to end."""
import mmap

import numpy as np
import pytest

import rnncore.corpus
import rnncore.train
from rnncore import cli

from support import FOX, corpus, run, text_of_random_words, train_fox


# ---- a memory-mapped corpus: read in place, pages let go -----------------------------------
def backed_by_a_mapping(a):
    while a is not None:
        if isinstance(a, mmap.mmap):
            return True
        a = getattr(a, "base", None)
    return False


def mapping_rss_kb(path):
    """Resident kB of this process's mappings of `path` (Linux /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if fields and "-" in fields[0] and len(fields) >= 5:   # a mapping's header
                inside = fields[-1] == str(path)
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total


def test_a_cached_corpus_is_trained_in_place_and_its_pages_released(tmp_path, monkeypatch,
                                                                     capsys):
    text = text_of_random_words(250_000, seed=2)
    assert len(text.encode()) > rnncore.corpus.CACHE_MIN_BYTES   # so it is memory-mapped
    path = corpus(tmp_path, text)
    streams_of, released = [], []
    real_make_streams = rnncore.train.make_streams
    real_release = rnncore.corpus.Corpus.release_pages

    def make_streams(data, n_streams):
        streams_of.append(data)
        return real_make_streams(data, n_streams)

    def release_pages(self):
        released.append(self)
        return real_release(self)

    monkeypatch.setattr(rnncore.train, "make_streams", make_streams)
    monkeypatch.setattr(rnncore.corpus.Corpus, "release_pages", release_pages)
    status = cli.main(["train", str(path), "--out", str(tmp_path / "m.npz"), "--steps", "2000",
                       "--hidden-size", "4", "--seq-length", "4", "--batch-size", "1",
                       "--val-fraction", "0.001", "--print-every", "1000"])
    assert status == 0, capsys.readouterr().err
    assert len(streams_of) == 1 and backed_by_a_mapping(streams_of[0])  # no copy in RAM
    assert 2 <= len(released) <= 3      # every 1,000 steps (and perhaps at the end)


@pytest.mark.skipif(not hasattr(mmap, "MADV_DONTNEED"), reason="no madvise here")
def test_release_pages_drops_the_resident_pages_of_the_mapping(tmp_path):
    try:
        open("/proc/self/smaps").close()
    except OSError:
        pytest.skip("no /proc/self/smaps")
    path = corpus(tmp_path, text_of_random_words(400_000, seed=3))
    c = rnncore.corpus.load_corpus(str(path), cache_min_bytes=0)
    assert int(np.asarray(c.data, dtype=np.int64).sum()) > 0       # touch every page
    assert mapping_rss_kb(c.cache_path) > 1000
    c.release_pages()
    assert mapping_rss_kb(c.cache_path) == 0
    assert c.vocab.decode(c.data[:20]) == path.read_text()[:20]     # still readable


TEXT = FOX


@pytest.mark.slow
def test_utf8_end_to_end(tmp_path):
    text = "año ñandú 日本語 🙂 " * 60
    out, _ = train_fox(tmp_path, text=text, steps=30)
    proc = run("sample", out, "--prime", "日本", "--length", "20", "--seed", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    generated = proc.stdout.rstrip("\n")
    assert generated.startswith("日本") and len(generated) == 22
    assert set(generated) <= set(text)
