"""File utilities every writer and reader shares: the atomic write, the existing-file
check, the stale temporary files a killed writer left, the writable-directory probe.

Floor 1: imports nothing from rnncore but its errors.
"""
import os
import tempfile

from .errors import CheckpointError, CheckpointWriteError


def require_file(path, file_noun, path_noun):
    """CheckpointError "<file_noun> not found: path" or "<path_noun> path is a directory:
    path" unless `path` names an existing file."""
    if not os.path.exists(path):
        raise CheckpointError(f"{file_noun} not found: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path_noun} path is a directory: {path}")


def _temp_prefix(path):
    return "." + os.path.basename(path) + "."


def remove_stale_temp_files(path):
    """Delete temporary files that an earlier writer of `path` left when it was killed
    mid-write (they are never the file itself).  Returns how many it removed."""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _temp_prefix(path)
    removed = 0
    for name in os.listdir(directory):
        if name.startswith(prefix) and name.endswith(".tmp"):
            try:
                os.unlink(os.path.join(directory, name))
                removed += 1
            except OSError:
                pass
    return removed


def write_atomically(path, write, what="the checkpoint"):
    """Call write(f) on a temporary file beside `path`, fsync it, rename it over `path`
    and fsync the directory: at any moment `path` holds the old or the new file.  A
    failure removes the temporary file and raises CheckpointWriteError naming `what`."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CheckpointError(f"cannot write {path}: directory {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp",
                                   dir=directory)
    except OSError as e:
        raise CheckpointWriteError(path, e, what) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        failure = _os_error_in(e)
        if failure is not None:
            raise CheckpointWriteError(path, failure, what) from None
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _os_error_in(e):
    """The OSError that made `e`: e itself, or one it was raised while handling (numpy
    1.24 on Python 3.10: a write that hits a file size limit leaves zipfile's close to
    raise ValueError("seek of closed file") over the OSError)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def writable_directory_problem(path, flag="--out"):
    """Why nothing can be created beside `path` (one line naming it), or None: its
    directory is missing, is not a directory, or refuses a file (probed by creating
    one, so that read-only mounts and permissions count alike)."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return f"{flag} {path} is a directory"
    if not os.path.isdir(directory):
        what = "is not a directory" if os.path.exists(directory) else "does not exist"
        return f"{flag} {path}: {directory} {what}"
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".rnncore-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"{flag} {path}: directory {directory} is not writable ({e.strerror})"
    return None
