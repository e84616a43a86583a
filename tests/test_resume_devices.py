"""Checkpoints are device-neutral (issue 18, point 2): a run trained on devices 2,3 resumes on device 0
alone, on 3 devices or on 0,1, with its optimizer states on the resuming devices.

MXNet unpickles the arrays of ``Trainer.save_states`` onto the device (type, id) recorded in their bytes,
which on GPUs fails where that id does not exist ("invalid device ordinal").  A CPU array is loaded on
cpu(0) whatever its recorded id, so the test reads the recorded devices from the bytes, and the devices of
the resumed trainer's states.
"""

import pickle
import shutil
import struct
import zipfile

import mxnet as mx
import numpy as np
import pytest
from data_fixtures import tiny_run

from gluon_resnetv2.train import TrainConfig, build, resume, train
from gluon_resnetv2.train import checkpoint as ckpt
from gluon_resnetv2.train.loop import Run
from gluon_resnetv2.train.runlog import read_log_rows

TINY = tiny_run(epochs=2, log_interval=1, seed=4)


def _on(monkeypatch, *ids):
    monkeypatch.setattr(build, "make_contexts", lambda cpus=None, gpus=None: [mx.cpu(i) for i in ids])


def _contexts(state):
    if isinstance(state, mx.nd.NDArray):
        return [state.context]
    if isinstance(state, (tuple, list)):
        return [ctx for part in state for ctx in _contexts(part)]
    return []


def _recorded_devices(blob):
    """The (device type, id) pairs recorded in the pickled NDArrays of ``blob`` (1 = CPU, 2 = GPU)."""
    seen = []
    original = mx.nd.NDArray.__setstate__

    def spy(self, state):
        raw = bytes(state["handle"])  # magic, storage type, ndim, dims (int64), device type, device id, ...
        ndim = struct.unpack_from("<i", raw, 8)[0]
        seen.append(struct.unpack_from("<ii", raw, 12 + 8 * ndim))
        original(self, state)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mx.nd.NDArray, "__setstate__", spy)
        loaded = pickle.loads(blob)
    return set(seen), loaded


def _stop_after_first_checkpoint(monkeypatch):
    original = Run._checkpoint

    def checkpoint_then_die(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise KeyboardInterrupt  # killed right after the checkpoint at the end of epoch 1

    monkeypatch.setattr(Run, "_checkpoint", checkpoint_then_die)


@pytest.fixture(scope="module")
def trained_on_2_3(tmp_path_factory):
    """A run stopped after epoch 1 on cpu(2), cpu(3) (its checkpoint), and the same run uninterrupted."""
    with pytest.MonkeyPatch.context() as mp:
        _on(mp, 2, 3)
        base = tmp_path_factory.mktemp("devices")
        full = str(base / "full")
        train(TrainConfig(out=full, cpus=2, **TINY))
        _stop_after_first_checkpoint(mp)
        cut = str(base / "cut")
        with pytest.raises(KeyboardInterrupt):
            train(TrainConfig(out=cut, cpus=2, **TINY))
    with zipfile.ZipFile(ckpt.checkpoint_path(cut)) as archive:
        saved = archive.read("trainer.states")
    return full, cut, saved


def test_checkpoint_states_are_on_the_cpu(trained_on_2_3):
    devices, (states, optimizer) = _recorded_devices(trained_on_2_3[2])
    assert devices == {(1, 0)}  # cpu(0); before: (1, 2), where it was trained (a GPU id on GPUs)
    assert len(states) > 40
    assert list(optimizer._all_index_update_counts) == [0]


def _resumed_states(monkeypatch, tmp_path, cut, ids):
    """Resume a copy of ``cut`` on cpu(ids); the states the trainer loaded, per device, and the run."""
    out = str(tmp_path / f"on{'-'.join(map(str, ids))}")
    shutil.copytree(cut, out)
    _on(monkeypatch, *ids)
    loaded = []
    original = ckpt.load_trainer_states

    def spy(trainer, data):
        original(trainer, data)
        loaded.append([{i: s.asnumpy() for i, s in u.states.items()} for u in trainer._updaters])  # momenta
        loaded.append([{ctx for s in u.states.values() for ctx in _contexts(s)} for u in trainer._updaters])

    monkeypatch.setattr(ckpt, "load_trainer_states", spy)
    status = resume(out, cpus=len(ids))
    return out, status, loaded


@pytest.mark.parametrize("ids", [(0,), (0, 1, 4)])
def test_resume_on_other_devices_puts_the_states_there(monkeypatch, tmp_path, trained_on_2_3, ids):
    full, cut, saved = trained_on_2_3
    out, status, (momenta, contexts) = _resumed_states(monkeypatch, tmp_path, cut, ids)
    assert status["status"] == "finished"
    assert contexts == [{mx.cpu(i)} for i in ids]  # one updater per device, its states on that device
    states, _ = pickle.loads(saved)
    for per_device in momenta:  # the momentum of the checkpoint, on every device
        assert per_device.keys() == states.keys()
        for index, momentum in states.items():
            np.testing.assert_array_equal(per_device[index], momentum.asnumpy())
    rows, reference = read_log_rows(out), read_log_rows(full)
    assert [r["iteration"] for r in rows] == [r["iteration"] for r in reference]
    # BatchNorm sees other slices on other device counts: close to the uninterrupted run, not equal
    assert rows[-1]["train_loss"] == pytest.approx(reference[-1]["train_loss"], rel=0.05)


def test_resume_on_0_1_is_the_uninterrupted_run_on_2_3(monkeypatch, tmp_path, trained_on_2_3):
    full, cut, _ = trained_on_2_3
    out, status, (_, contexts) = _resumed_states(monkeypatch, tmp_path, cut, (0, 1))
    assert contexts == [{mx.cpu(0)}, {mx.cpu(1)}]
    assert read_log_rows(out) and [{k: v for k, v in r.items() if k != "time"} for r in read_log_rows(out)] == [
        {k: v for k, v in r.items() if k != "time"} for r in read_log_rows(full)
    ]
