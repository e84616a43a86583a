"""Files written whole or not at all, and JSON read leniently: the one owner of both for the package.

* :func:`atomic_write_bytes` / :func:`atomic_write_text`: one file (temp file beside it, fsync, rename).
* :func:`staged`: several files that belong together (an export bundle, a report with its figures) are built
  in a staging directory beside the targets and moved into place at the end, with the previous files kept
  aside until every new one is in place; a failure or a signal (SIGINT, SIGTERM) leaves the previous state
  exactly as it was and no stray files.
"""

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time

# Test hook: seconds to sleep at each :meth:`Stage.checkpoint` (makes a bundle writer slow deterministically
# so that a test can signal it mid-way).  Unset in normal use.
PAUSE_ENV = "GLUON_RESNETV2_STAGE_PAUSE"
_STAGE_PREFIX = ".staging-"


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


def load_json(path, what="JSON file"):
    """The JSON in ``path``; a missing or unreadable file is an error naming it and what was expected."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"no such file (expected a {what})", path) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); expected a {what}") from None


# -- several files, all or nothing ------------------------------------------------------------------------


class Stage:
    """The staging directory of :func:`staged`: :meth:`path` gives where to write each target."""

    def __init__(self, root, targets):
        self.root = root
        self.targets = [os.path.abspath(t) for t in targets]
        self._paths = {t: os.path.join(root, "new", f"{i}-{os.path.basename(t)}") for i, t in enumerate(self.targets)}
        self._final = {v: k for k, v in self._paths.items()}

    def path(self, target):
        """Where to write ``target`` (one of the targets :func:`staged` was given)."""
        return self._paths[os.path.abspath(target)]

    def target_of(self, path):
        """The target a staged ``path`` (or a file inside the staging directory) stands for, else ``path``."""
        if path is None:
            return None
        path = os.path.abspath(os.fspath(path))
        if path in self._final:
            return self._final[path]
        for staged_path, target in self._final.items():  # e.g. a writer's own temp file beside the staged one
            if os.path.dirname(path) == os.path.dirname(staged_path) and os.path.basename(staged_path) in path:
                return target
        return os.path.dirname(self.targets[0]) if path.startswith(self.root) else path

    def checkpoint(self):
        """Between two files: the test hook's pause (see :data:`PAUSE_ENV`)."""
        pause = os.environ.get(PAUSE_ENV)
        if pause:
            time.sleep(float(pause))


class _Signals:
    """SIGINT/SIGTERM while files are staged: raise ``Interrupted`` (a KeyboardInterrupt, exit code 130/143)
    so that the staging directory is removed; while the files are moved into place, hold the signal until the
    move is complete (the signal is then raised)."""

    def __init__(self):
        self.deferred = None
        self.holding = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.holding:
            self.deferred = signum
            return
        self._raise(signum)

    @staticmethod
    def _raise(signum):
        from .train.signals import Interrupted  # lazily: train imports this module

        raise Interrupted(signum)

    @contextlib.contextmanager
    def held(self):
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        signum, self.deferred = self.deferred, None
        if signum is not None:
            self._raise(signum)

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_stages(directory, name):
    """Staging directories that a killed writer (SIGKILL, power loss) left beside the same target."""
    pattern = re.compile(re.escape(f".{name}{_STAGE_PREFIX}") + r"(\d+)-")
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry)
        if match and not _pid_alive(int(match.group(1))):
            shutil.rmtree(os.path.join(directory, entry), ignore_errors=True)


@contextlib.contextmanager
def staged(targets, remove=(), what=None):
    """Write ``targets`` (paths) all or nothing::

        with staged([a, b]) as stage:
            write(stage.path(a)); stage.checkpoint(); write(stage.path(b))

    The files are written into a staging directory beside the first target; when the block ends normally,
    each existing target and each existing path in ``remove`` is moved into the staging directory, the new
    files are moved into place, and the staging directory (now holding the old files) is deleted.  If
    anything fails before the last new file is in place, the old files are moved back.  An exception in
    the block (an OSError, a full disk, Ctrl-C, SIGTERM) leaves the targets as they were and removes the
    staging directory and any directory this call created; an OSError about a staged file names its target.
    A KeyboardInterrupt (``Interrupted`` for SIGTERM) gets ``kept``: "``what`` left as it was".
    """
    targets = [os.path.abspath(os.fspath(t)) for t in targets]
    remove = [os.path.abspath(os.fspath(p)) for p in remove if os.path.abspath(os.fspath(p)) not in targets]
    directory = os.path.dirname(targets[0])
    created = _make_dirs([os.path.dirname(t) for t in targets])
    name = os.path.basename(targets[0])
    _remove_stale_stages(directory, name)
    done = False
    try:
        with _Signals() as signals:
            with signals.held():  # a signal between making the directory and the try below would leak it
                try:
                    root = tempfile.mkdtemp(prefix=f".{name}{_STAGE_PREFIX}{os.getpid()}-", dir=directory)
                except OSError as err:  # name the user's directory, not the staging directory's random name
                    raise OSError(err.errno, err.strerror, directory) from None
            stage = Stage(root, targets)
            try:
                os.mkdir(os.path.join(root, "new"))
                try:
                    yield stage
                except OSError as err:
                    raise _renamed(err, stage) from None
                missing = [t for t in targets if not os.path.exists(stage.path(t))]
                if missing:
                    raise RuntimeError(f"staged: {', '.join(missing)} not written")
                with signals.held():
                    _commit(stage, targets, remove)
                    done = True
            finally:
                with signals.held():
                    shutil.rmtree(root, ignore_errors=True)
    except KeyboardInterrupt as err:
        if not done:
            err.kept = f"{what or targets[0]} left as it was"
        raise
    finally:
        if not done:
            for path in reversed(created):
                with contextlib.suppress(OSError):
                    os.rmdir(path)


def _renamed(err, stage):
    """``err`` with the staged paths it names replaced by the targets they stand for."""
    if err.errno is None:
        return err
    first, second = stage.target_of(err.filename), stage.target_of(err.filename2)
    return OSError(err.errno, err.strerror, first, None, second) if second else OSError(err.errno, err.strerror, first)


def _make_dirs(directories):
    """Create missing directories; returns those created, parents first."""
    created = []
    for directory in dict.fromkeys(directories):
        missing = []
        while directory and not os.path.lexists(directory):
            missing.append(directory)
            directory = os.path.dirname(directory)
        for path in reversed(missing):
            os.mkdir(path)  # an OSError names the path that cannot be made (a file in the way, no permission)
            created.append(path)
    return created


def _commit(stage, targets, remove):
    old = os.path.join(stage.root, "old")
    os.mkdir(old)
    moved_aside, placed = [], []
    try:
        for i, path in enumerate(targets + remove):
            if os.path.lexists(path):
                aside = os.path.join(old, str(i))
                os.rename(path, aside)
                moved_aside.append((aside, path))
        for target in targets:
            os.rename(stage.path(target), target)
            placed.append(target)
    except BaseException:
        for target in reversed(placed):
            with contextlib.suppress(OSError):
                os.rename(target, stage.path(target))
        for aside, path in reversed(moved_aside):
            with contextlib.suppress(OSError):
                os.rename(aside, path)
        raise
    for directory in dict.fromkeys(os.path.dirname(t) for t in targets):
        _fsync_dir(directory)


def exclusive_lock(path, refused):
    """Take the kernel's exclusive lock (flock) on the file ``path`` (created if missing) and write this
    process's pid into it; returns the open file, which holds the lock until it is closed.  The lock dies with
    its process, so a crash leaves nothing that blocks the next one.  When another process holds it:
    ``RuntimeError(refused(pid))``, ``pid`` as the holder wrote it (None if it wrote nothing yet)."""
    handle = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or None
        handle.close()
        raise RuntimeError(refused(holder)) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
