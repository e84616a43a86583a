"""What a run directory holds (finished, diverged, running, resumable ...), the attempts made on it and the
check that a directory is reused only for the same run."""

import contextlib
import json
import os
import time

from ..fileio import atomic_write_text, exclusive_lock
from ..fileio import read_json as _read_json
from ..train.checkpoint import checkpoint_path
from ..train.runlog import LOCK_NAME, read_status  # LOCK_NAME: <out>/.lock, held by its reproduce

ATTEMPTS_NAME = "reproduce.json"


@contextlib.contextmanager
def locked_out(out):
    """Hold an exclusive lock on ``<out>/.lock`` while the block runs; RuntimeError at once when another
    process holds it.  The lock is the kernel's (flock): it dies with its process, so a crashed run leaves
    nothing that blocks the next one."""
    os.makedirs(out, exist_ok=True)
    handle = exclusive_lock(
        os.path.join(out, LOCK_NAME),
        lambda pid: (
            f"{out} is in use by another `reproduce` ({f'pid {pid}' if pid else 'another process'}); "
            "wait for it to end or give another --out"
        ),
    )
    try:
        yield
    finally:
        handle.close()  # releases the lock


def _read_status(run_dir):
    """``status.json`` of ``run_dir`` (:func:`gluon_resnetv2.train.runlog.read_status`), None when absent or
    unreadable (a run that never started, or a write cut short)."""

    try:
        return read_status(run_dir)
    except (OSError, ValueError):
        return None


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def run_state(run_dir):
    """What is in ``run_dir``: 'missing', 'finished', 'failed' (diverged: the paper's fail), 'running'
    (another live process), 'resumable' (stopped with a checkpoint), 'restart' (stopped before its first
    checkpoint) or 'error' (stopped on an exception; retried)."""

    status = _read_status(run_dir)
    if status is None:
        return "resumable" if os.path.isfile(checkpoint_path(run_dir)) else "missing"
    state = status.get("status")
    if state in ("finished", "failed"):
        return state
    if state == "running" and status.get("pid") not in (None, os.getpid()) and _pid_alive(status.get("pid")):
        return "running"
    return "resumable" if os.path.isfile(checkpoint_path(run_dir)) else ("error" if state == "error" else "restart")


def _record_attempt(run_dir, **fields):
    path = os.path.join(run_dir, ATTEMPTS_NAME)
    data = _read_json(path) or {"attempts": []}
    data["attempts"].append(dict(fields, pid=os.getpid(), time=time.time()))
    os.makedirs(run_dir, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2))


def attempts(run_dir):
    """The list of attempts :func:`run_experiment` made in ``run_dir`` (mode 'train', 'resume', 'skip')."""
    return (_read_json(os.path.join(run_dir, ATTEMPTS_NAME)) or {}).get("attempts", [])


_SETTINGS = (
    "model",
    "dataset",
    "model_kwargs",
    "iterations",
    "batch_size",
    "warmup",
    "seed",
    "optimizer",
    "lr_steps",
    "dataset_options",
    "dtype",
)
_SETTING_DEFAULTS = {"optimizer": "sgd", "dtype": "float32"}  # a config.json written before the setting existed


def _check_same_run(run_dir, config):
    saved = _read_json(os.path.join(run_dir, "config.json"))
    if not saved:
        return
    saved = {k: saved.get(k, _SETTING_DEFAULTS.get(k)) for k in _SETTINGS}
    new = config.to_dict()
    diff = [k for k in _SETTINGS if saved.get(k) != new.get(k)]
    if diff:
        details = "; ".join(f"{k}: {saved.get(k)!r} there, {new.get(k)!r} now" for k in diff)
        raise ValueError(f"{run_dir} holds a run with other settings ({details}); choose another --out")


def run_dir_of(out, key, seed):
    return os.path.join(out, key, f"seed{seed}")
