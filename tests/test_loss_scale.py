"""Dynamic loss scaling (issue 18, point 7): an overflowing gradient skips the step -- weights and momentum
untouched on every device -- and halves the scale, which doubles again after N clean steps; clean steps
are the unscaled ones bit for bit.  The skip logic does not depend on the dtype, so float32 on two CPU
contexts tests it (MXNet has no float16 convolution on the CPU)."""

import types

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from gluon_resnetv2.train import checkpoint as ckpt
from gluon_resnetv2.train.devices import make_contexts
from gluon_resnetv2.train.loss_scale import DynamicLossScaler, enable_loss_scaling, loss_scaler
from gluon_resnetv2.train.steps import forward_backward, make_trainer

LOSS = gluon.loss.SoftmaxCrossEntropyLoss()


def _setup(scaled, ctxs):
    mx.random.seed(0)
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(8, activation="relu"), gluon.nn.Dense(4))
    net.initialize(mx.init.Xavier(), ctx=ctxs)
    net(mx.nd.zeros((1, 6), ctx=ctxs[0]))
    trainer = gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-4}, update_on_kvstore=False
    )
    if scaled:
        enable_loss_scaling(trainer, initial_scale=2.0**10, growth_interval=3)
    return net, trainer


def _batch(seed):
    rng = np.random.RandomState(seed)
    return mx.nd.array(rng.randn(8, 6)), mx.nd.array(rng.randint(0, 4, 8))


def _step(net, trainer, ctxs, seed, poison=False):
    data, label = _batch(seed)
    forward_backward(net, LOSS, data, label, ctxs, trainer=trainer)
    if poison:  # one overflowing gradient entry, on one device
        net.collect_params()[net[0].weight.name].list_grad()[1][0, 0] = np.inf
    trainer.step(8)


def _snapshot(net, trainer):
    weights = [d.asnumpy() for p in net.collect_params().values() for d in p.list_data()]
    momenta = [s.asnumpy() for u in trainer._updaters for s in u.states.values() if s is not None]
    return weights, momenta


def test_overflow_skips_the_step_and_halves_the_scale_then_it_grows_back():
    ctxs = make_contexts(cpus=2)
    net, trainer = _setup(True, ctxs)
    scaler = loss_scaler(trainer)
    _step(net, trainer, ctxs, 0)
    _step(net, trainer, ctxs, 1)
    assert scaler.loss_scale == 2.0**10 and not scaler.last_overflow
    before = _snapshot(net, trainer)
    assert len(before[1]) == 2 * 4 and any(np.abs(m).sum() > 0 for m in before[1])
    _step(net, trainer, ctxs, 2, poison=True)
    after = _snapshot(net, trainer)
    for a, b in zip(before[0] + before[1], after[0] + after[1]):
        np.testing.assert_array_equal(a, b)  # weights and momentum untouched, on both devices
    assert scaler.last_overflow and scaler.skipped == 1
    assert scaler.loss_scale == 2.0**9  # the very next step uses the halved scale
    for seed in (3, 4):
        _step(net, trainer, ctxs, seed)
        assert scaler.loss_scale == 2.0**9
    _step(net, trainer, ctxs, 5)  # the third clean step in a row
    assert scaler.loss_scale == 2.0**10 and scaler.skipped == 1
    assert all(np.isfinite(w).all() for w in _snapshot(net, trainer)[0])


def test_without_scaling_one_overflow_poisons_the_weights():
    ctxs = make_contexts(cpus=2)
    net, trainer = _setup(False, ctxs)
    _step(net, trainer, ctxs, 0, poison=True)
    assert not np.isfinite(net[0].weight.data().asnumpy()).all()


def test_scaled_clean_steps_are_the_unscaled_steps_bit_for_bit():
    ctxs = make_contexts(cpus=2)
    runs = []
    for scaled in (False, True):
        net, trainer = _setup(scaled, ctxs)
        for seed in range(4):
            _step(net, trainer, ctxs, seed)
        runs.append(_snapshot(net, trainer))
    for a, b in zip(runs[0][0] + runs[0][1], runs[1][0] + runs[1][1]):
        np.testing.assert_array_equal(a, b)


def test_float16_trainer_scales_and_the_checkpoint_keeps_the_scale(tmp_path):
    config = types.SimpleNamespace(lr=0.1, momentum=0.9, wd=1e-4, optimizer="sgd", dtype="float16")
    ctxs = make_contexts(cpus=2)
    net, _ = _setup(False, ctxs)
    trainer = make_trainer(net.collect_params(), config, kvstore="device")
    scaler = loss_scaler(trainer)
    assert isinstance(scaler, DynamicLossScaler) and scaler.loss_scale == 2.0**16  # MXNet AMP's start
    assert (
        loss_scaler(make_trainer(net.collect_params(), types.SimpleNamespace(**{**vars(config), "dtype": "float32"})))
        is None
    )
    scaler.set_state({"scale": 2.0**7, "unskipped": 2, "growth_interval": 5, "skipped": 3})
    ckpt.save_checkpoint(str(tmp_path), net, trainer, {"iteration": 1})
    other = make_trainer(net.collect_params(), config, kvstore="device")
    state = ckpt.load_checkpoint(str(tmp_path), net, other, ctxs)
    assert state["loss_scale"] == loss_scaler(other).state() == scaler.state()
    assert loss_scaler(other).loss_scale == 2.0**7


@pytest.mark.parametrize("value", [np.nan, -np.inf])
def test_nan_and_negative_inf_also_skip(value):
    ctxs = [mx.cpu(0)]
    net, trainer = _setup(True, ctxs)
    weights = _snapshot(net, trainer)[0]
    data, label = _batch(0)
    forward_backward(net, LOSS, data, label, ctxs, trainer=trainer)
    net[1].bias.grad()[2] = value
    trainer.step(8)
    assert loss_scaler(trainer).last_overflow
    for a, b in zip(weights, _snapshot(net, trainer)[0]):
        np.testing.assert_array_equal(a, b)
