"""Reading a corpus file: strict decoding, with errors that say what is wrong."""
import codecs
import os


class CorpusError(ValueError):
    """The corpus file is missing, unreadable, empty or not in the stated encoding."""


def read_corpus(path, encoding="utf-8"):
    """The text of the file at `path`, decoded strictly with `encoding`."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}") from None
    if not os.path.exists(path):
        raise CorpusError(f"corpus file not found: {path}")
    if os.path.isdir(path):
        raise CorpusError(f"corpus path is a directory: {path}")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise CorpusError(f"cannot read corpus {path}: {e.strerror}") from None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        raise CorpusError(f"corpus {path} is not valid {encoding}: byte 0x{raw[e.start]:02x} "
                          f"at offset {e.start} ({e.reason}); pass --encoding") from None
    if not text:
        raise CorpusError(f"corpus {path} is empty")
    if len(text) < 2:
        raise CorpusError(f"corpus {path} has a single character: nothing to predict")
    return text
