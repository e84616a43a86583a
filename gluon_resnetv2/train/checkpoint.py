"""Checkpoints: everything a run needs to continue exactly where it stopped, in one atomic file.

``<out>/checkpoint.zip`` holds

- ``net.params``: the network parameters, running BatchNorm statistics included (``save_parameters``);
- ``trainer.states``: the optimizer states (SGD momentum, fp32 master weights under ``--dtype float16``);
- ``state.json``: iteration, epoch, the position in ``log.csv`` (rows written), the partial sums of the
  current log interval, elapsed training time and the Python / NumPy RNG states.

It is written to a temporary file in the same directory, flushed and fsync'ed, then moved over the old
one with :func:`os.replace`, so a run killed at any moment leaves either the previous or the new
checkpoint, never a torn one.
"""

import io
import json
import os
import random
import tempfile
import zipfile

import numpy as np

from ..fileio import atomic_write_bytes

CHECKPOINT_NAME = "checkpoint.zip"
FORMAT_VERSION = 1


def rng_state():
    """Python and NumPy global RNG states, JSON-ready."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [py_version, list(py_state), py_gauss],
    }


def set_rng_state(state):
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))


def _file_bytes(save):
    """Call ``save(path)`` on a temporary path and return the bytes written."""
    with tempfile.TemporaryDirectory(prefix="gluon-resnetv2-ckpt-") as tmp:
        path = os.path.join(tmp, "blob")
        save(path)
        with open(path, "rb") as handle:
            return handle.read()


def save_checkpoint(out_dir, net, trainer, state):
    """Write ``<out_dir>/checkpoint.zip`` atomically; ``state`` is a JSON-ready dict (see module doc)."""

    params = _file_bytes(net.save_parameters)
    states = _file_bytes(trainer.save_states)
    state = dict(state, format=FORMAT_VERSION, rng=rng_state())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("net.params", params)
        archive.writestr("trainer.states", states)
        archive.writestr("state.json", json.dumps(state, sort_keys=True))
    path = os.path.join(out_dir, CHECKPOINT_NAME)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def checkpoint_path(out_dir):
    return os.path.join(out_dir, CHECKPOINT_NAME)


def read_checkpoint_state(out_dir):
    """The ``state.json`` of ``<out_dir>/checkpoint.zip``; FileNotFoundError with a clear message if absent."""
    path = checkpoint_path(out_dir)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"cannot resume {out_dir}: it has no checkpoint ({path} is missing); a run writes "
            "its first checkpoint at the end of its first epoch"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("state.json").decode("utf-8"))
    except (zipfile.BadZipFile, KeyError, ValueError) as err:
        raise RuntimeError(f"checkpoint {path} is unreadable ({err})") from None


def load_checkpoint(out_dir, net, trainer, ctx):
    """Restore ``net`` and ``trainer`` from ``<out_dir>/checkpoint.zip``, set the RNG states, return the state."""
    path = checkpoint_path(out_dir)
    state = read_checkpoint_state(out_dir)
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory(prefix="gluon-resnetv2-ckpt-") as tmp:
        params = os.path.join(tmp, "net.params")
        states = os.path.join(tmp, "trainer.states")
        with open(params, "wb") as handle:
            handle.write(archive.read("net.params"))
        with open(states, "wb") as handle:
            handle.write(archive.read("trainer.states"))
        net.load_parameters(params, ctx=ctx)
        trainer.load_states(states)
    set_rng_state(state["rng"])
    return state
