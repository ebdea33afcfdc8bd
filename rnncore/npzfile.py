"""Reading an .npz archive that may be damaged in any way, and writing one.

numpy's own `np.load` lets a damaged archive escape as whatever the zip or .npy layer
happens to raise (BadZipFile, NotImplementedError for a flipped compression method or zip
version, tokenize errors from the header parser, MemoryError for a header that claims a
huge shape, ...).  `read_npz` parses the two layers itself and turns every one of those
failures into one `ArchiveError` with a short reason.  It never unpickles, and never
allocates an array larger than the bytes the archive actually holds for it.
"""
import os
import zipfile

import numpy as np

# deflate cannot compress better than about 1032:1; a larger claimed ratio is a lie
_MAX_DEFLATE_RATIO = 1032
_MAX_HEADER_SIZE = 10000   # numpy's own default limit on an .npy header


class ArchiveError(ValueError):
    """The file is not a readable .npz archive; str() is a short reason."""


class PickledData(ArchiveError):
    """An entry holds Python objects, which only unpickling could read."""


def read_npz(path):
    """{name: array} of every entry of the .npz archive at `path` (writable arrays).

    Raises ArchiveError (PickledData for object arrays) for any damage, and OSError only
    when the file itself cannot be opened.
    """
    with open(path, "rb") as f:
        archive_size = os.fstat(f.fileno()).st_size
        try:
            return _read_entries(f, archive_size)
        except ArchiveError:
            raise
        # A damaged archive can make the zip and .npy layers raise almost anything
        # (BadZipFile, NotImplementedError, struct.error, EOFError, UnicodeDecodeError,
        # SyntaxError, MemoryError, zlib.error, ...): all of it means "damaged".
        except Exception as e:
            raise ArchiveError(_short_reason(e)) from None


def _read_entries(f, archive_size):
    arrays = {}
    with zipfile.ZipFile(f) as zf:
        for info in zf.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                raise ArchiveError(f"entry {name!r} is not an .npy array")
            key = name[:-len(".npy")]
            if key in arrays:
                raise ArchiveError(f"entry {name!r} appears twice")
            _check_entry_size(info, archive_size)
            with zf.open(info) as member:
                arrays[key] = _read_npy(member, info.file_size, name)
    return arrays


def _check_entry_size(info, archive_size):
    """Refuse sizes the archive cannot back, before anything is allocated for them."""
    if info.compress_size > archive_size:
        raise ArchiveError(f"entry {info.filename!r} claims {info.compress_size} bytes, "
                           f"more than the file's {archive_size}")
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            raise ArchiveError(f"entry {info.filename!r} has inconsistent sizes")
    elif info.compress_type == zipfile.ZIP_DEFLATED:   # np.savez_compressed
        if info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 1024:
            raise ArchiveError(f"entry {info.filename!r} claims an impossible "
                               "compression ratio")
    else:
        raise ArchiveError(f"entry {info.filename!r} uses compression method "
                           f"{info.compress_type}, which rnncore does not read")


def _read_npy(member, entry_size, name):
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(
            member, max_header_size=_MAX_HEADER_SIZE)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(
            member, max_header_size=_MAX_HEADER_SIZE)
    else:
        raise ArchiveError(f"entry {name!r} has .npy version {version}")
    if dtype.hasobject:
        raise PickledData(f"entry {name!r} holds Python objects")
    count = 1
    for n in shape:
        count *= n
    n_bytes = count * dtype.itemsize
    if n_bytes != entry_size - member.tell():
        raise ArchiveError(f"entry {name!r}: its header describes {n_bytes} bytes of data, "
                           f"the entry holds {entry_size - member.tell()}")
    data = bytearray(member.read(n_bytes))
    # reading past the end makes zipfile compare the CRC-32 of everything read
    if len(data) != n_bytes or member.read(1):
        raise ArchiveError(f"entry {name!r} is truncated")
    flat = np.frombuffer(data, dtype=dtype) if n_bytes else np.zeros(count, dtype)
    return flat.reshape(shape, order="F" if fortran_order else "C")


def _short_reason(error):
    """One short line: the message, after the exception's type unless zipfile's own
    BadZipFile message says enough."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if len(text) > 120:
        text = text[:117] + "..."
    if not text:
        return type(error).__name__
    if isinstance(error, zipfile.BadZipFile):
        return text
    return f"{type(error).__name__}: {text}"


def write_npz(f, arrays):
    """Write {name: array} to the open binary file f as an uncompressed .npz (np.savez's
    format: one .npy member per array, zip64).  The archive is closed whatever happens, so
    a write that fails part way (a full disk, a file size limit) raises its own OSError
    and leaves nothing behind to complain when collected (np.savez leaves its ZipFile
    open on a failed write, on some numpy versions)."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        for name, value in arrays.items():
            with z.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
