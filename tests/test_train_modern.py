"""The modern recipe's options (issue 21): each does what it says, and the presets hold gluoncv's values."""

import math

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gluon_resnetv2.nets.zoo import get_model
from gluon_resnetv2.train.ema import WeightEMA
from gluon_resnetv2.train.modern import PRESETS
from gluon_resnetv2.train.precise_bn import recompute_bn_stats
from gluon_resnetv2.train.recipe import TrainConfig
from gluon_resnetv2.train.regularize import BatchTransform, make_batch_transform, mixup_lambda, soft_targets
from gluon_resnetv2.train.schedule import make_schedule, total_iterations
from gluon_resnetv2.train.steps import derived_seed, forward_backward
from gluon_resnetv2.train.tweaks import exclude_norm_bias_from_wd, last_layer_param, zero_init_last
from gluon_resnetv2.units.unit import ResidualUnit, walk_blocks


def _net(**kwargs):
    mx.random.seed(3)
    net = get_model("cifar_resnet20_v2", classes=3, **kwargs)
    net.initialize()
    net(mx.nd.zeros((1, 3, 8, 8)))
    return net


# -- label smoothing and mixup ------------------------------------------------------------------------


def test_label_smoothing_changes_the_loss_of_a_batch_by_the_expected_amount():
    logits = mx.nd.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0]])
    label = mx.nd.array([0, 1])
    eps = 0.1
    transform = BatchTransform(classes=3, smoothing=eps)
    _, targets = transform(0, mx.nd.zeros((2, 1)), label)
    smoothed = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False)(logits, targets).asnumpy()
    hard = gluon.loss.SoftmaxCrossEntropyLoss()(logits, label).asnumpy()
    log_p = logits.log_softmax(axis=1).asnumpy()
    # (1 - eps) * CE(y) + eps * mean_k(-log p_k): label smoothing with eps / K on every class
    np.testing.assert_allclose(smoothed, (1 - eps) * hard + eps * (-log_p).mean(axis=1), rtol=1e-5)
    assert np.all(np.abs(smoothed - hard) > 1e-3)
    np.testing.assert_allclose(targets.asnumpy()[0], [0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3], rtol=1e-6)


def test_mixup_batch_is_the_expected_convex_combination_for_a_fixed_seed():
    data = mx.nd.array(np.arange(4 * 2, dtype=np.float32).reshape(4, 2))
    label = mx.nd.array([0, 1, 2, 1])
    transform = BatchTransform(classes=3, alpha=0.4, seed=5, stop_iteration=10)
    lam = float(np.random.default_rng(derived_seed(5, 2, 7)).beta(0.4, 0.4))
    assert mixup_lambda(5, 7, 0.4) == lam and 0 < lam < 1
    mixed, targets = transform(7, data, label)
    x, onehot = data.asnumpy(), soft_targets(label, 3).asnumpy()
    np.testing.assert_allclose(mixed.asnumpy(), lam * x + (1 - lam) * x[::-1], rtol=1e-6)
    np.testing.assert_allclose(targets.asnumpy(), lam * onehot + (1 - lam) * onehot[::-1], rtol=1e-6)
    # switched off from stop_iteration on (gluoncv: the last 20 epochs): the batch as it is, one-hot targets
    clean, hard = transform(10, data, label)
    np.testing.assert_array_equal(clean.asnumpy(), x)
    np.testing.assert_array_equal(hard.asnumpy(), onehot)


def test_mixup_off_epochs_is_counted_from_the_end_of_the_run():
    cfg = TrainConfig(dataset="cifar10", epochs=10, mixup=1.0, mixup_off_epochs=2).resolved()
    transform = make_batch_transform(cfg, 10, total_iterations(cfg, 100), 100)
    assert transform.stop_iteration == 800
    assert transform.lam(799) != 1.0 and transform.lam(800) == 1.0


def test_off_by_default_keeps_the_sparse_labels():
    cfg = TrainConfig(dataset="cifar10").resolved()
    assert (cfg.label_smoothing, cfg.mixup, cfg.ema, cfg.precise_bn) == (0.0, 0.0, 0.0, 0)
    assert (cfg.no_wd_norm_bias, cfg.zero_init_last, cfg.sync_bn, cfg.recipe) == (False, False, False, None)
    transform = make_batch_transform(cfg, 10, 64000, 390)
    data, label = mx.nd.ones((2, 1)), mx.nd.array([1, 0])
    assert not transform.active and transform(0, data, label) == (data, label)
    assert transform.wrap(0, None) is None


# -- learning rate: linear warm-up and the gluoncv preset ---------------------------------------------


def test_linear_warmup_values_at_given_iterations():
    cfg = TrainConfig(dataset="cifar10", epochs=200, warmup_epochs=5).resolved()
    assert cfg.warmup == 0  # the linear warm-up replaces the paper's 400 iterations at 0.01
    sched = make_schedule(cfg, 390)
    assert sched(0) == 0.0
    assert sched(975) == pytest.approx(0.05)
    assert sched(1949) == pytest.approx(0.1 * 1949 / 1950)
    assert sched(1950) == 0.1 and sched(50000) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="--warmup .* or --warmup-epochs"):
        TrainConfig(dataset="cifar10", warmup=400, warmup_epochs=5).resolved()


def test_gluoncv_preset_values():
    cfg = TrainConfig(dataset="cifar10", recipe="gluoncv").resolved()
    # train_cifar10.py (optimizer 'nag') with the zoo's cifar_resnet*_v2.sh command line
    assert (cfg.lr, cfg.momentum, cfg.wd, cfg.batch_size) == (0.1, 0.9, 1e-4, 128)
    assert (cfg.epochs, cfg.iterations, cfg.optimizer, cfg.warmup, cfg.lr_factor) == (200, None, "nag", 0, 0.1)
    sched = make_schedule(cfg, 390)  # 50000 // 128 with last_batch='discard'
    assert sched.milestones == (39000, 58500)  # epochs 100 and 150
    assert sched(0) == 0.1 and sched(38999) == 0.1 and sched(39000) == pytest.approx(0.01)
    assert sched(58500) == pytest.approx(0.001)
    mixup = TrainConfig(dataset="cifar10", recipe="gluoncv-mixup").resolved()
    assert (mixup.epochs, mixup.mixup, mixup.mixup_off_epochs) == (220, 1.0, 20)
    assert make_schedule(mixup, 390).milestones == (39000, 58500)
    # explicit options win over the preset; a short run keeps the preset's fractions
    short = TrainConfig(dataset="cifar10", recipe="gluoncv", lr=0.2, epochs=2).resolved()
    assert short.lr == 0.2 and make_schedule(short, 10).milestones == (10, 15)
    assert PRESETS["gluoncv"].lr_step_fractions == (0.5, 0.75)


def test_bad_values_are_one_line_errors():
    for kwargs, match in (
        (dict(recipe="timm"), "unknown --recipe 'timm': choose one of gluoncv, gluoncv-mixup"),
        (dict(label_smoothing=1.0), "label_smoothing=1.0"),
        (dict(mixup=-1.0), "mixup=-1.0"),
        (dict(ema=1.5), "ema=1.5"),
        (dict(precise_bn=-2), "precise_bn=-2"),
        (dict(mixup_off_epochs=3), "give --mixup ALPHA too"),
        (dict(sync_bn=True), "--sync-bn .* give --cpus N or --gpus"),
    ):
        with pytest.raises(ValueError, match=match):
            TrainConfig(dataset="cifar10", **kwargs).resolved()


# -- parameters: no weight decay on norm/bias, zero-init of the last layer -----------------------------


def test_no_wd_norm_bias_leaves_bn_gammas_unchanged_by_the_decay_term():
    def step(no_wd):
        net = _net()
        if no_wd:
            exclude_norm_bias_from_wd(net)
        before = {name: p.data().copy() for name, p in net.collect_params().items()}
        trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1.0, "wd": 0.1, "momentum": 0.0})
        with autograd.record():
            loss = net(mx.nd.ones((2, 3, 8, 8))).sum() * 0  # zero gradients: only the decay term moves
        loss.backward()
        trainer.step(1)
        return {name: (before[name], p.data()) for name, p in net.collect_params().items()}

    for no_wd in (True, False):
        moved = step(no_wd)
        gammas = [name for name in moved if name.endswith("gamma")]
        assert gammas
        for name in gammas + [n for n in moved if n.endswith(("beta", "bias"))]:
            old, new = moved[name]
            if no_wd:
                np.testing.assert_array_equal(new.asnumpy(), old.asnumpy())
            elif name.endswith("gamma"):
                np.testing.assert_allclose(new.asnumpy(), 0.9 * old.asnumpy(), rtol=1e-6)
        conv = next(name for name in moved if name.endswith("conv0_weight"))
        np.testing.assert_allclose(moved[conv][1].asnumpy(), 0.9 * moved[conv][0].asnumpy(), rtol=1e-5)


@pytest.mark.parametrize("activation", ["full_preact", "original", "relu_preact", "bn_after_add"])
def test_zero_init_last_makes_each_unit_the_identity_at_step_0(activation):
    net = _net(activation=activation)
    zero_init_last(net)
    units = [b for b in walk_blocks(net) if isinstance(b, ResidualUnit)]
    identities = [u for u in units if not u.shortcut._children and u.shortcut_source == "input"]
    assert len(identities) >= 6
    mx.random.seed(0)
    for unit in identities:
        channels = unit.branch[0].weight.shape[1]
        x = mx.nd.random.uniform(0, 1, shape=(4, channels, 8, 8))  # >= 0: a ReLU's output, as units see it
        with autograd.train_mode():
            branch = unit.branch(unit.preact(x))
            out = unit(x)
        assert np.all(branch.asnumpy() == 0)
        if activation != "bn_after_add":  # there the BN after the addition normalises x_l + 0
            np.testing.assert_allclose(out.asnumpy(), x.asnumpy(), rtol=1e-6, atol=1e-6)
    # the zeroed parameter still learns: its gradient is not zero
    unit = identities[0]
    param = last_layer_param(unit)
    x = mx.nd.random.uniform(0, 1, shape=(4, unit.branch[0].weight.shape[1], 8, 8))
    with autograd.record():
        loss = (unit(x) * mx.nd.random.normal(shape=x.shape)).sum()
    loss.backward()
    assert np.abs(param.grad().asnumpy()).sum() > 0


def test_zero_init_last_refuses_a_branch_that_ends_on_a_relu():
    with pytest.raises(ValueError, match="relu_before_add"):
        zero_init_last(_net(activation="relu_before_add"))


def test_without_zero_init_units_are_not_the_identity():
    net = _net()
    unit = next(b for b in walk_blocks(net) if isinstance(b, ResidualUnit) and not b.shortcut._children)
    x = mx.nd.ones((2, 16, 8, 8))
    assert not math.isclose(float(unit(x).asnumpy().sum()), float(x.asnumpy().sum()), rel_tol=1e-4)


# -- EMA of the weights and precise BatchNorm ------------------------------------------------------------


def test_ema_equals_the_hand_computed_average_after_3_steps():
    net = _net()
    decay = 0.9
    ema = WeightEMA(net, decay)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    name = next(n for n in net.collect_params() if n.endswith("conv0_weight"))
    param = net.collect_params()[name]
    seen = [param.data().asnumpy().astype(np.float64)]
    mx.random.seed(4)
    for _ in range(3):
        forward_backward(net, loss_fn, mx.nd.random.normal(shape=(4, 3, 8, 8)), mx.nd.array([0, 1, 2, 0]), [mx.cpu()])
        trainer.step(4)
        ema.update()
        seen.append(param.data().asnumpy().astype(np.float64))
    w0, w1, w2, w3 = seen
    expected = decay**3 * w0 + decay**2 * (1 - decay) * w1 + decay * (1 - decay) * w2 + (1 - decay) * w3
    average = dict(zip([n for n, _ in ema.params], ema.shadow))[name].asnumpy()
    np.testing.assert_allclose(average, expected, rtol=1e-5, atol=1e-7)
    assert not np.allclose(average, w3, rtol=1e-3)
    # applied() puts the average in for the block and the trained weights back afterwards
    with ema.applied():
        np.testing.assert_array_equal(param.data().asnumpy(), average)
    np.testing.assert_array_equal(param.data().asnumpy(), w3.astype(np.float32))
    restored = WeightEMA(net, decay)
    restored.load_bytes(ema.state_bytes())
    for a, b in zip(restored.shadow, ema.shadow):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())


@pytest.mark.parametrize("devices", [1, 2])
def test_precise_bn_statistics_are_the_exact_means_over_the_batches(devices):
    contexts = [mx.cpu(i) for i in range(devices)]
    mx.random.seed(6)
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(4, 3, in_channels=3), gluon.nn.BatchNorm(in_channels=4), gluon.nn.Activation("relu"))
    net.add(gluon.nn.Conv2D(5, 3, in_channels=4), gluon.nn.BatchNorm(in_channels=5))
    net.initialize(ctx=contexts)
    net.hybridize(static_alloc=True)
    batches = [(mx.nd.random.normal(2, 3, shape=(8, 3, 6, 6)), mx.nd.zeros(8)) for _ in range(3)]
    used = recompute_bn_stats(net, iter(batches), contexts)
    assert used == 3
    first, second = net[1], net[4]
    for index, ctx in enumerate(contexts):
        means, variances = {1: [], 4: []}, {1: [], 4: []}
        for data, _ in batches:
            part = np.array_split(data.asnumpy(), devices)[index]
            x = mx.nd.array(part, ctx=ctx)
            inputs = {1: net[0](x)}
            with autograd.train_mode():  # BN normalises with the batch statistics, as in the recompute
                inputs[4] = net[3](net[2](net[1](inputs[1])))
            for layer, value in inputs.items():
                value = value.asnumpy().astype(np.float64)
                means[layer].append(value.mean(axis=(0, 2, 3)))
                variances[layer].append(value.var(axis=(0, 2, 3)))
        for layer, norm in ((1, first), (4, second)):
            np.testing.assert_allclose(
                norm.running_mean.data(ctx).asnumpy(), np.mean(means[layer], 0), rtol=1e-4, atol=1e-5
            )
            np.testing.assert_allclose(norm.running_var.data(ctx).asnumpy(), np.mean(variances[layer], 0), rtol=1e-4)
