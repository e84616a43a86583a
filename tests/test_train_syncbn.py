"""``--sync-bn`` on CPU contexts: SyncBatchNorm over two devices equals BatchNorm on the whole batch."""

import threading

import mxnet as mx
import numpy as np
import pytest
from cli_process import cli, communicate
from mxnet import gluon

from gluon_resnetv2.nets.zoo import get_model
from gluon_resnetv2.train.runlog import read_log_rows
from gluon_resnetv2.train.steps import forward_backward
from gluon_resnetv2.train.syncbn import in_threads, sync_bn_kwargs, threaded_forward_backward

CONTEXTS = [mx.cpu(0), mx.cpu(1)]


def _nets():
    synced = get_model("cifar_resnet20_v2", **sync_bn_kwargs(CONTEXTS, {"classes": 3}))
    plain = get_model("cifar_resnet20_v2", classes=3)
    synced.initialize(ctx=CONTEXTS)
    plain.initialize(ctx=mx.cpu(0))
    x = mx.nd.zeros((2, 3, 8, 8))
    synced(x.as_in_context(CONTEXTS[0]))
    plain(x)
    for a, b in zip(synced.collect_params().values(), plain.collect_params().values()):
        assert a.shape == b.shape
        b.set_data(a.data(CONTEXTS[0]))
    return synced, plain


def test_one_step_gives_the_running_statistics_of_one_device_on_the_whole_batch():
    synced, plain = _nets()
    mx.random.seed(1)
    data = mx.nd.random.normal(shape=(8, 3, 8, 8))
    label = mx.nd.array([0, 1, 2, 0, 1, 2, 0, 1])
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    losses, _, _ = threaded_forward_backward(synced, loss_fn, data, label, CONTEXTS)
    whole, _, _ = forward_backward(plain, loss_fn, data, label, [mx.cpu(0)])
    assert sum(v.asscalar() for v in losses) == pytest.approx(whole[0].asscalar(), rel=1e-5)
    stats = [name for name in plain.collect_params() if name.endswith(("running_mean", "running_var"))]
    assert len(stats) == 2 * 19  # 18 units' two BNs + the final BN of the head, mean and var each
    synced_params = list(synced.collect_params().values())
    for index, (name, param) in enumerate(plain.collect_params().items()):
        if name in stats:
            for copy in synced_params[index].list_data():  # both devices hold the whole batch's statistics
                np.testing.assert_allclose(copy.asnumpy(), param.data().asnumpy(), rtol=1e-4, atol=1e-6)
    # the gradients, summed over the devices, are those of the whole batch
    for a, b in zip(synced_params, plain.collect_params().values()):
        if b.grad_req != "null":
            total = sum(g.asnumpy() for g in a.list_grad())
            np.testing.assert_allclose(total, b.grad().asnumpy(), rtol=1e-3, atol=1e-5)


ARGS = [
    "train",
    "--model",
    "cifar_resnet20_v2",
    "--dataset",
    "synthetic",
    "--data-option",
    "num_samples=64",
    "--data-option",
    "image_shape=[3,8,8]",
    "--batch-size",
    "16",
    "--iterations",
    "6",
    "--log-interval",
    "2",
    "--num-workers",
    "0",
    "--no-progress",
    "--no-tensorboard",
]


@pytest.mark.slow
def test_the_log_of_two_synchronised_devices_equals_the_single_device_log(tmp_path):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    for out, devices in ((one, ["--cpus", "1"]), (two, ["--cpus", "2", "--sync-bn"])):
        rc, text = communicate(cli(*ARGS, *devices, "--out", out), 120, what="run did not finish")
        assert rc == 0, text
    a, b = read_log_rows(one), read_log_rows(two)
    assert len(a) == len(b) == 3
    for row_a, row_b in zip(a, b):
        for column in ("iteration", "lr"):
            assert row_a[column] == row_b[column]
        for column in ("train_loss", "test_loss"):
            if row_a[column] is not None:
                assert row_b[column] == pytest.approx(row_a[column], rel=1e-4), (column, row_a, row_b)


def test_a_failing_device_thread_raises_instead_of_hanging():
    never = threading.Event()

    def work(index):
        if index == 0:
            raise ValueError("device 0 failed")
        never.wait()  # a partner waiting forever, as at a SyncBatchNorm

    with pytest.raises(ValueError, match="device 0 failed"):
        in_threads(work, [0, 1])
    assert in_threads(lambda x: 2 * x, [1, 2]) == [2, 4]
