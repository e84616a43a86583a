"""Grouped gradient sums for ``nccl`` (MXNet Module's aggregation): fewer store calls, the same sums.

NCCL needs GPUs; the grouping itself is store-independent, so it is checked on two CPU contexts with the
``device`` store (``stores=("device",)``), counting the store's ``pushpull`` calls.
"""

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gluon_resnetv2.nets.cifar import cifar_resnet
from gluon_resnetv2.train.kvstore import aggregation_size, group_allreduce

CTXS = [mx.cpu(0), mx.cpu(1)]


def _trainer_after_backward(seed):
    mx.random.seed(seed)
    net = cifar_resnet(8, "basic", classes=10)
    net.initialize(mx.init.Xavier(), ctx=CTXS)
    trainer = gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": 0.1}, kvstore="device", update_on_kvstore=False
    )
    data = mx.nd.random.uniform(shape=(4, 1, 8, 8), ctx=mx.cpu())
    label = mx.nd.array([1, 2, 3, 4])
    with autograd.record():
        losses = [
            gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
            for x, y in zip(gluon.utils.split_and_load(data, CTXS), gluon.utils.split_and_load(label, CTXS))
        ]
    autograd.backward(losses)
    trainer._init_kvstore()
    calls = []
    pushpull = trainer._kvstore.pushpull

    def counting(key, *args, **kwargs):
        calls.append(key)
        return pushpull(key, *args, **kwargs)

    trainer._kvstore.pushpull = counting
    return net, trainer, calls


def test_grouped_sums_equal_per_array_sums_with_fewer_calls():
    net, trainer, calls = _trainer_after_backward(3)
    trainer.allreduce_grads()
    arrays = len([p for p in net.collect_params().values() if p.grad_req != "null"])
    assert len(calls) == arrays  # the Trainer's own: one call per parameter array
    expected = [p.list_grad()[1].asnumpy() for p in net.collect_params().values() if p.grad_req != "null"]

    net, trainer, calls = _trainer_after_backward(3)
    assert group_allreduce(trainer, size=16, stores=("device",))
    trainer.allreduce_grads()
    keys = [i for i, p in enumerate(trainer._params) if p.grad_req != "null"]  # running statistics have none
    assert calls == [keys[:16], keys[16:]] and len(keys) == arrays > 16
    summed = [p for p in net.collect_params().values() if p.grad_req != "null"]
    for p, before in zip(summed, expected, strict=True):
        np.testing.assert_allclose(p.list_grad()[0].asnumpy(), p.list_grad()[1].asnumpy(), err_msg=p.name)
        np.testing.assert_allclose(p.list_grad()[1].asnumpy(), before, rtol=1e-6, err_msg=p.name)


def test_only_nccl_is_grouped_by_default(monkeypatch):
    _, trainer, _ = _trainer_after_backward(0)
    assert not group_allreduce(trainer)  # device: summed on the GPUs, no per-call synchronisation to save
    monkeypatch.setenv("MXNET_UPDATE_AGGREGATION_SIZE", "8")
    assert aggregation_size() == 8
    monkeypatch.setenv("MXNET_UPDATE_AGGREGATION_SIZE", "many")
    with pytest.raises(ValueError, match="MXNET_UPDATE_AGGREGATION_SIZE='many'"):
        aggregation_size()
