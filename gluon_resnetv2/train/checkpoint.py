"""Checkpoints: everything a run needs to continue exactly where it stopped, in one atomic file.

``<out>/checkpoint.zip`` holds

- ``net.params``: the network parameters, running BatchNorm statistics included (``save_parameters``'s
  layout), always in float32 (:func:`params_bytes`);
- ``trainer.states``: the optimizer states (SGD momentum, fp32 master weights under ``--dtype float16``),
  on the CPU: device-neutral, see :func:`trainer_states_bytes`;
- ``state.json``: iteration, epoch, the position in ``log.csv`` (rows written), the partial sums of the
  current log interval, elapsed training time, the Python / NumPy RNG states and, under ``--dtype float16``,
  the dynamic loss scale (:mod:`.loss_scale`).

It is written to a temporary file in the same directory, flushed and fsync'ed, then moved over the old
one with :func:`os.replace`, so a run killed at any moment leaves either the previous or the new
checkpoint, never a torn one.
"""

import copy
import io
import json
import os
import pickle
import random
import tempfile
import zipfile

import mxnet as mx
import numpy as np

from ..fileio import atomic_write_bytes
from .loss_scale import loss_scaler

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


def params_bytes(net, trainer=None):
    """``net.save_parameters``'s file, as bytes, with every parameter in float32.

    A ``--dtype float16`` network holds float16 weights, which a float32 network (``export``, ``predict``,
    ``get_model``) cannot load; the weights that matter are the float32 master copies that multi-precision
    SGD keeps in the optimizer state of ``trainer`` and rounds to float16 after each update.  Those are
    written; a float16 parameter without one (before the first step) is cast, exactly.  Loading into a float16
    network again (``load_parameters(..., cast_dtype=True)``) rounds them to the same float16 weights.
    """
    masters = {}
    if trainer is not None:
        _ready(trainer)
        states = trainer._updaters[0].states
        for index, param in enumerate(trainer._params):
            state = states.get(index)  # SGD / NAG multi-precision: (momentum or None, float32 master weight)
            if np.dtype(param.dtype) == np.float16 and isinstance(state, (tuple, list)) and len(state) == 2:
                if isinstance(state[1], mx.nd.NDArray) and state[1].dtype == np.float32:
                    masters[id(param)] = state[1]
    cpu = mx.cpu()
    arrays = {}
    for name, param in net._collect_params_with_prefix().items():
        master = masters.get(id(param))
        value = master.copyto(cpu) if master is not None else param._reduce()
        arrays[name] = value.astype(np.float32) if value.dtype == np.float16 else value
    with tempfile.TemporaryDirectory(prefix="gluon-resnetv2-ckpt-") as tmp:
        path = os.path.join(tmp, "net.params")
        mx.nd.save(path, arrays)
        with open(path, "rb") as handle:
            return handle.read()


def _ready(trainer):
    if trainer._update_on_kvstore:
        raise ValueError("checkpoints need the optimizer on the workers (Trainer(update_on_kvstore=False))")
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()


def trainer_states_bytes(trainer):
    """The optimizer states of ``trainer`` (what ``Trainer.save_states`` writes), with every array on the CPU.

    ``save_states`` pickles the states where they live, and unpickling puts each array back on that device
    id: a run trained on GPUs 2,3 could only resume where a GPU 2 exists ("invalid device ordinal").
    Here the states of the first device (every device holds the same ones: the gradients are summed before
    the update) are copied to ``cpu(0)``, and the optimizer's per-device update counters keep only that
    device's, under device 0; :func:`load_trainer_states` puts them on whatever devices resume the run.
    """
    _ready(trainer)
    updater = trainer._updaters[0]
    cpu = mx.cpu()
    states = {index: updater.sync_state_context(state, cpu) for index, state in updater.states.items()}
    optimizer = copy.copy(updater.optimizer)  # its pickled state: param_dict dropped, the rest shared
    counts = dict(optimizer._all_index_update_counts.get(trainer._contexts[0].device_id, {}))
    optimizer._all_index_update_counts = {0: counts}
    optimizer._index_update_count = counts
    return pickle.dumps((states, optimizer))


def load_trainer_states(trainer, data):
    """Restore :func:`trainer_states_bytes` (or ``Trainer.save_states``) ``data`` onto the devices of
    ``trainer``, however many and numbered however: each device's updater gets the states, on its device."""
    _ready(trainer)
    with tempfile.TemporaryDirectory(prefix="gluon-resnetv2-ckpt-") as tmp:
        path = os.path.join(tmp, "trainer.states")
        with open(path, "wb") as handle:
            handle.write(data)
        trainer.load_states(path)
    optimizer = trainer._optimizer
    # one device's counters (a checkpoint written by Trainer.save_states has one set per device id)
    saved = max(optimizer._all_index_update_counts.values(), key=lambda counts: sum(counts.values()))
    optimizer._all_index_update_counts = {ctx.device_id: dict(saved) for ctx in trainer._contexts}
    optimizer._index_update_count = optimizer._all_index_update_counts[trainer._contexts[0].device_id]
    for updater, ctx in zip(trainer._updaters, trainer._contexts):
        updater.states = {index: updater.sync_state_context(state, ctx) for index, state in updater.states.items()}
        updater.states_synced = dict.fromkeys(updater.states, True)


def save_checkpoint(out_dir, net, trainer, state, extra=None):
    """Write ``<out_dir>/checkpoint.zip`` atomically; ``state`` is a JSON-ready dict (see module doc);
    ``extra``: ``{member name: bytes}`` of optional parts (``--ema``'s average: ``ema.params``)."""

    params = params_bytes(net, trainer)
    states = trainer_states_bytes(trainer)
    state = dict(state, format=FORMAT_VERSION, rng=rng_state())
    scaler = loss_scaler(trainer)
    if scaler is not None:
        state["loss_scale"] = scaler.state()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("net.params", params)
        archive.writestr("trainer.states", states)
        archive.writestr("state.json", json.dumps(state, sort_keys=True))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
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


def read_checkpoint_member(out_dir, name):
    """The bytes of ``name`` in ``<out_dir>/checkpoint.zip`` (an ``extra`` of :func:`save_checkpoint`);
    ValueError naming the file when it has none."""
    path = checkpoint_path(out_dir)
    with zipfile.ZipFile(path) as archive:
        if name not in archive.namelist():
            raise ValueError(f"cannot resume {out_dir}: {path} has no {name} (was the run started without it?)")
        return archive.read(name)


def load_checkpoint(out_dir, net, trainer, ctx):
    """Restore ``net`` and ``trainer`` from ``<out_dir>/checkpoint.zip``, set the RNG states, return the state."""
    path = checkpoint_path(out_dir)
    state = read_checkpoint_state(out_dir)
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory(prefix="gluon-resnetv2-ckpt-") as tmp:
        params = os.path.join(tmp, "net.params")
        with open(params, "wb") as handle:
            handle.write(archive.read("net.params"))
        try:
            net.load_parameters(params, ctx=ctx, cast_dtype=True)  # float32 file, float16 network under float16
        except (ValueError, AssertionError, mx.base.MXNetError):
            # The message would name the temporary copy; the file the user has is the checkpoint.
            raise ValueError(
                f"cannot resume {out_dir}: the weights in {path} do not fit the network that "
                f"{os.path.join(out_dir, 'config.json')} describes (was its model or a model option edited?)"
            ) from None
        load_trainer_states(trainer, archive.read("trainer.states"))
    scaler = loss_scaler(trainer)
    if scaler is not None and "loss_scale" in state:
        scaler.set_state(state["loss_scale"])
    set_rng_state(state["rng"])
    return state
