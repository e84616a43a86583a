"""Host synchronisations of the training step and the evaluation (issue 18, point 9), on 2-4 CPU contexts.

Reading a value (``asnumpy``/``asscalar``/``wait_to_read``/``waitall``) makes the host wait for the devices;
on GPUs each read per step stalls them all and serialises the evaluation device by device.  The step reads
nothing (the loss and error sums stay on the device until a row is logged), an evaluation reads once, and
the numbers are the ones per-step reads gave, bit for bit.
"""

import mxnet as mx
import numpy as np
import pytest
from data_fixtures import tiny_run
from mxnet import gluon

from gluon_resnetv2.data import load_dataset, make_loader
from gluon_resnetv2.train import TrainConfig, steps, train
from gluon_resnetv2.train.devices import make_contexts
from gluon_resnetv2.train.loop import Run
from gluon_resnetv2.train.runlog import read_log_rows

TINY = tiny_run()


class SyncCounter:
    """Counts the host reads of NDArray values (``asscalar`` reads through ``asnumpy``), the waits
    (``wait_to_read``, recording which array) and the engine drains (``waitall``)."""

    def __init__(self, monkeypatch):
        self.reads = self.drains = 0
        self.waited = []
        asnumpy, wait_to_read, waitall = mx.nd.NDArray.asnumpy, mx.nd.NDArray.wait_to_read, mx.nd.waitall

        def read(array, *args, **kwargs):
            self.reads += 1
            return asnumpy(array, *args, **kwargs)

        def wait(array):
            self.waited.append(id(array))
            return wait_to_read(array)

        def drain():
            self.drains += 1
            return waitall()

        monkeypatch.setattr(mx.nd.NDArray, "asnumpy", read)
        monkeypatch.setattr(mx.nd.NDArray, "wait_to_read", wait)
        monkeypatch.setattr(mx.nd, "waitall", drain)

    def state(self):
        return self.reads, len(self.waited), self.drains


def _count_in(monkeypatch, counter, cls, name, log):
    """Record ``(reads, waits, drains)`` made inside each call of ``cls.name``."""
    method = getattr(cls, name)

    def wrapper(*args, **kwargs):
        before = counter.state()
        result = method(*args, **kwargs)
        log.append(tuple(b - a for a, b in zip(before, counter.state())))
        return result

    monkeypatch.setattr(cls, name, wrapper)


@pytest.mark.parametrize("devices", [2, 4])
def test_training_steps_read_nothing_and_rows_read_once(tmp_path, monkeypatch, devices):
    counter = SyncCounter(monkeypatch)
    per_step, per_read, lagged = [], [], []
    step = Run._step

    def spy(self, pos, *args):
        previous = getattr(getattr(pos, "sums", None), "_previous", None)
        start = len(counter.waited)
        result = step(self, pos, *args)
        lagged.append(counter.waited[start:] == ([id(previous)] if previous is not None else []))
        return result

    monkeypatch.setattr(Run, "_step", spy)
    _count_in(monkeypatch, counter, Run, "_step", per_step)
    if hasattr(Run, "_read_sums"):  # (absent before: every step read)
        _count_in(monkeypatch, counter, Run, "_read_sums", per_read)
    out = str(tmp_path / "run")
    status = train(TrainConfig(out=out, iterations=6, log_interval=2, cpus=devices, seed=2, **TINY))
    assert status["status"] == "finished"
    # no value read (before: 2 reads per device per step); from the second step on one wait, for the
    # previous step's sums, issued after this step's work (the queue stays bounded, the devices busy)
    assert per_step == [(0, 0, 0)] + [(0, 1, 0)] * 5
    assert lagged == [True] * 6
    # one read at each log row (2, 4, 6) and checkpoint (end of epoch 1 at 3; 6 is both)
    assert per_read == [(1, 0, 0)] * 4
    assert [r["iteration"] for r in read_log_rows(out) if r["train_loss"] is not None] == [2, 4, 6]


def test_recomputation_waits_for_its_own_backward_not_the_whole_queue(tmp_path, monkeypatch):
    monkeypatch.setenv("GLUON_RESNETV2_MIRROR", "1")
    counter = SyncCounter(monkeypatch)
    per_step = []
    _count_in(monkeypatch, counter, Run, "_step", per_step)
    status = train(TrainConfig(out=str(tmp_path / "m"), iterations=3, log_interval=3, cpus=2, seed=2, **TINY))
    assert status["status"] == "finished"
    assert counter.drains == 0  # before: mx.nd.waitall() every step
    # one wait per device (the Python backward must have run before the update is issued), and the lag
    assert per_step == [(0, 2, 0), (0, 3, 0), (0, 3, 0)]


def _old_evaluate(net, loader, contexts, loss_fn):
    """The evaluation as it was: two reads per device per batch, one device after the other."""
    loss_sum = errors = count = 0.0
    for data, label in loader.iterate(start_batch=0, epoch=0):
        datas, labels = steps.split_batch(data, label, contexts)
        for x, y in zip(datas, labels):
            out = net(x)
            loss_sum += loss_fn(out, y).sum().asscalar()
            errors += (out.argmax(axis=1) != y).sum().asscalar()
        count += data.shape[0]
    return loss_sum / count, errors / count


@pytest.mark.parametrize("devices", [3, 4])
def test_evaluation_reads_once_and_gives_the_same_numbers(monkeypatch, devices):
    ctxs = make_contexts(cpus=devices)
    mx.random.seed(0)
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(16, activation="relu"), gluon.nn.Dense(5))
    net.initialize(mx.init.Xavier(), ctx=ctxs)
    ds = load_dataset("synthetic", split="test", num_samples=50, num_classes=5, image_shape=(6, 1, 1))
    loader = make_loader(ds, 8, train=False, num_workers=0)  # 7 batches, the last of 2 images
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    expected = _old_evaluate(net, loader, ctxs, loss_fn)
    counter = SyncCounter(monkeypatch)
    result = steps.evaluate(net, loader, ctxs, loss_fn)
    # one read (before: 2 per device per batch, 2 * 25 here) and a wait per batch for the one before
    assert counter.state() == (1, 6, 0)
    assert result == expected  # bit for bit


def test_device_sums_equal_per_step_host_sums_bit_for_bit():
    ctxs = make_contexts(cpus=3)
    rng = np.random.RandomState(0)
    sums = steps.DeviceSums(ctxs[1], loss=1.25, errors=3.0, count=32)  # a resumed partial interval
    host = [1.25, 3.0, 32.0]
    for _ in range(20):
        losses = [mx.nd.array([rng.rand() * 100], ctx=c) for c in ctxs]
        errors = [mx.nd.array([rng.randint(0, 40)], ctx=c) for c in ctxs]
        sums.add(losses, errors, 96)
        host[0] += float(sum(v.asscalar() for v in losses))  # what the loop did per step
        host[1] += float(sum(v.asscalar() for v in errors))
        host[2] += 96
    assert sums.read().tolist() == host and sums.value.context == ctxs[1]
    sums.reset()
    assert sums.read().tolist() == [0.0, 0.0, 0.0]
