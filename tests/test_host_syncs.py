"""Host synchronisations of the training step and the evaluation (issue 18, point 9), on 2-4 CPU contexts.

Reading a value (``asnumpy``/``asscalar``/``wait_to_read``/``waitall``) makes the host wait for the devices;
on GPUs each read per step stalls them all and serialises the evaluation device by device.  The step reads
nothing (the loss and error sums stay on the device until a row is logged), an evaluation reads once, and
the numbers are the ones per-step reads gave, bit for bit.
"""

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from gluon_resnetv2.data import load_dataset, make_loader
from gluon_resnetv2.train import TrainConfig, steps, train
from gluon_resnetv2.train.devices import make_contexts
from gluon_resnetv2.train.loop import Run
from gluon_resnetv2.train.runlog import read_log_rows

TINY = dict(
    model="cifar_resnet20_v2",
    dataset="synthetic",
    num_workers=0,
    progress=False,
    batch_size=32,
    dataset_options={"num_samples": 96, "image_shape": [3, 8, 8]},
)


class SyncCounter:
    """Counts the host reads of NDArrays (``asscalar`` reads through ``asnumpy``) and engine drains."""

    def __init__(self, monkeypatch):
        self.reads = self.drains = 0
        asnumpy, wait_to_read, waitall = mx.nd.NDArray.asnumpy, mx.nd.NDArray.wait_to_read, mx.nd.waitall

        def counted(function, field):
            def wrapper(*args, **kwargs):
                setattr(self, field, getattr(self, field) + 1)
                return function(*args, **kwargs)

            return wrapper

        monkeypatch.setattr(mx.nd.NDArray, "asnumpy", counted(asnumpy, "reads"))
        monkeypatch.setattr(mx.nd.NDArray, "wait_to_read", counted(wait_to_read, "reads"))
        monkeypatch.setattr(mx.nd, "waitall", counted(waitall, "drains"))

    def total(self):
        return self.reads + self.drains


def _count_in(monkeypatch, counter, cls, name, log):
    """Record the syncs made inside each call of ``cls.name``."""
    method = getattr(cls, name)

    def wrapper(*args, **kwargs):
        before = counter.total()
        result = method(*args, **kwargs)
        log.append(counter.total() - before)
        return result

    monkeypatch.setattr(cls, name, wrapper)


@pytest.mark.parametrize("devices", [2, 4])
def test_training_steps_read_nothing_and_rows_read_once(tmp_path, monkeypatch, devices):
    counter = SyncCounter(monkeypatch)
    per_step, per_read = [], []
    _count_in(monkeypatch, counter, Run, "_step", per_step)
    if hasattr(Run, "_read_sums"):  # (absent before: every step read)
        _count_in(monkeypatch, counter, Run, "_read_sums", per_read)
    out = str(tmp_path / "run")
    status = train(TrainConfig(out=out, iterations=6, log_interval=2, cpus=devices, seed=2, **TINY))
    assert status["status"] == "finished"
    assert per_step == [0] * 6  # before: 2 reads per device per step
    # one read at each log row (2, 4, 6) and checkpoint (end of epoch 1 at 3; 6 is both)
    assert per_read == [1] * 4
    assert [r["iteration"] for r in read_log_rows(out) if r["train_loss"] is not None] == [2, 4, 6]


def test_recomputation_waits_for_its_own_backward_not_the_whole_queue(tmp_path, monkeypatch):
    monkeypatch.setenv("GLUON_RESNETV2_MIRROR", "1")
    counter = SyncCounter(monkeypatch)
    per_step = []
    _count_in(monkeypatch, counter, Run, "_step", per_step)
    status = train(TrainConfig(out=str(tmp_path / "m"), iterations=3, log_interval=3, cpus=2, seed=2, **TINY))
    assert status["status"] == "finished"
    assert counter.drains == 0  # before: mx.nd.waitall() every step
    assert per_step == [2] * 3  # one wait per device: the Python backward must run before the update


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
    assert counter.total() == 1  # before: 2 per device per batch (2 * 25 here)
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
