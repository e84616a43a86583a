"""Files written whole or not at all, and JSON read leniently: the one owner of both for the package."""

import json
import os
import tempfile


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, os.replace)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 -> the mode open() gives a new file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:  # e.g. a full disk at write or fsync
            raise OSError(err.errno, err.strerror, path) from err
        raise
    _fsync_dir(directory)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_json(path):
    """The JSON in ``path``, or None when it is missing or unreadable (e.g. a run that is still starting)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None
