"""Each unit variant computes exactly the formula of its figure (Figs. 2 and 4), checked against a
hand-written NumPy reference, and hybridizes/exports to the same numbers."""

import itertools

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn
from reference import bn, conv2d, relu, sigmoid

from gluon_resnetv2 import export
from gluon_resnetv2.units import ACTIVATIONS, SHORTCUTS, ResidualUnit, ShortcutSpec, walk_blocks

# Where the projection carries a BN: when the branch's output is normalised (units/shortcuts.py).
PROJECTION_BN = {"original", "relu_before_add", "relu_preact"}
TAILS = {"original": "bn", "bn_after_add": "", "relu_before_add": "bn_relu", "relu_preact": "bn", "full_preact": ""}


def _np(param):
    return param.data().asnumpy().astype(np.float64)


def _bn_params(block):
    return _np(block.gamma), _np(block.beta), _np(block.running_mean), _np(block.running_var)


def _randomise(unit, seed=1):
    rng = np.random.RandomState(seed)
    for name, p in unit.collect_params().items():
        if name.endswith(("gamma", "running_var")):
            value = rng.uniform(0.5, 1.5, p.shape)
        elif name.endswith(("beta", "running_mean")):
            value = rng.uniform(-0.5, 0.5, p.shape)
        elif "merge" in name and name.endswith("bias"):
            continue  # keep the gate's initial b_g
        else:
            value = rng.normal(0, 0.3, p.shape)
        p.set_data(mx.nd.array(value))


def build(
    branch="basic",
    activation="full_preact",
    shortcut="identity",
    downsample=False,
    source=None,
    in_channels=4,
    channels=4,
    projection="conv",
    **opts,
):
    stride = 2 if downsample else 1
    unit = ResidualUnit(
        channels,
        stride,
        downsample or in_channels != channels,
        in_channels,
        branch=branch,
        activation=activation,
        shortcut=shortcut,
        shortcut_source=source,
        projection=projection,
        **opts,
    )
    unit.initialize()
    x = mx.nd.array(np.random.RandomState(0).normal(0, 1, (2, in_channels, 6, 6)))
    unit(x)
    _randomise(unit)
    return unit, x


def reference(unit, x, branch, activation, shortcut, stride, downsample, training=False, **opts):
    """y of Fig. 4's ``activation`` with Fig. 2's ``shortcut``, from the unit's weights."""
    x = x.asnumpy().astype(np.float64)
    stride_on = opts.pop("stride_on", "first")
    spec = ShortcutSpec(shortcut, **opts)
    norm = (lambda t, p: bn(t, p[0], p[1])) if training else (lambda t, p: bn(t, *p))
    convs = [b for b in unit.branch if isinstance(b, nn.Conv2D)]
    branch_bns = [_bn_params(b) for b in unit.branch if isinstance(b, nn.BatchNorm)]
    pre_bns = [_bn_params(b) for b in unit.preact if isinstance(b, nn.BatchNorm)]
    post_bns = [_bn_params(b) for b in unit.postact if isinstance(b, nn.BatchNorm)]

    # pre-activation (Fig. 4(d): ReLU, (e): BN-ReLU)
    a = {"relu_preact": lambda: relu(x), "full_preact": lambda: relu(norm(x, pre_bns[0]))}.get(activation, lambda: x)()
    # residual branch: conv, then BN-ReLU between convs, the ordering's tail after the last one
    bottleneck = [stride, 1, 1] if stride_on == "first" else [1, stride, 1]
    strides = {"basic": [stride, 1], "single": [stride], "bottleneck": bottleneck}[branch]
    f, bns = a, list(branch_bns)
    for i, (c, s) in enumerate(zip(convs, strides)):
        f = conv2d(f, _np(c.weight), s, _np(c.bias) if c.bias is not None else None)
        last = i == len(convs) - 1
        tail = TAILS[activation] if last else "bn_relu"
        if tail.startswith("bn"):
            f = norm(f, bns.pop(0))
        if tail.endswith("relu"):
            f = relu(f)
    assert not bns
    source = a if unit.shortcut_source == "preact" else x
    # shortcut path (Fig. 2)
    h = source
    if downsample or shortcut == "conv1x1":
        proj_conv = next(b for b in walk_blocks(unit.shortcut) if isinstance(b, nn.Conv2D))
        h = conv2d(source, _np(proj_conv.weight), stride)
        if activation in PROJECTION_BN:
            h = norm(h, _bn_params(next(b for b in walk_blocks(unit.shortcut) if isinstance(b, nn.BatchNorm))))
    if shortcut in ("exclusive_gating", "shortcut_only_gating"):
        g = sigmoid(conv2d(source, _np(unit.merge.gate.weight), stride, _np(unit.merge.gate.bias)))
    y = {
        "identity": lambda: h + f,
        "constant_scaling": lambda: spec.shortcut_scale * h + spec.residual_scale * f,
        "exclusive_gating": lambda: (1 - g) * h + g * f,
        "shortcut_only_gating": lambda: (1 - g) * h + f,
        "conv1x1": lambda: h + f,
        "dropout": lambda: h + f,
    }[shortcut]()
    # post-activation (Fig. 4(a): ReLU, (b): BN-ReLU)
    if activation == "original":
        y = relu(y)
    elif activation == "bn_after_add":
        y = relu(norm(y, post_bns[0]))
    return y


@pytest.mark.parametrize("activation,shortcut", list(itertools.product(ACTIVATIONS, SHORTCUTS)))
def test_every_activation_and_shortcut_matches_the_formula(activation, shortcut):
    for downsample in (False, True):
        unit, x = build("basic", activation, shortcut, downsample=downsample, channels=8 if downsample else 4)
        expected = reference(unit, x, "basic", activation, shortcut, 2 if downsample else 1, downsample)
        np.testing.assert_allclose(unit(x).asnumpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("branch,stride_on", [("bottleneck", "first"), ("bottleneck", "3x3"), ("single", None)])
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_other_branches_match_the_formula(branch, stride_on, activation):
    opts = {"branch_kwargs": {"stride_on": stride_on}} if stride_on else {}
    for downsample in (False, True):
        unit, x = build(
            branch, activation, downsample=downsample, channels=16 if downsample else 4, in_channels=4, **opts
        )
        expected = reference(
            unit,
            x,
            branch,
            activation,
            "identity",
            2 if downsample else 1,
            downsample,
            **({"stride_on": stride_on} if stride_on else {}),
        )
        np.testing.assert_allclose(unit(x).asnumpy(), expected, rtol=1e-4, atol=1e-4)


def test_bottleneck_strides_the_first_1x1_by_default():
    unit = ResidualUnit(16, 2, True, 4, branch="bottleneck")
    convs = [b for b in unit.branch if isinstance(b, nn.Conv2D)]
    assert [(c._kwargs["kernel"], c._kwargs["stride"]) for c in convs] == [
        ((1, 1), (2, 2)),
        ((3, 3), (1, 1)),
        ((1, 1), (1, 1)),
    ]


@pytest.mark.parametrize("activation", ["relu_preact", "full_preact"])
def test_unit_without_preactivation_feeds_its_input_to_both_paths(activation):
    unit, x = build("bottleneck", activation, downsample=True, channels=16, in_channels=4, preactivate=False)
    assert len(unit.preact) == 0
    np.testing.assert_allclose(unit(x).asnumpy(), (unit.shortcut(x) + unit.branch(x)).asnumpy(), rtol=1e-5, atol=1e-5)
    with_preact, _ = build("bottleneck", activation, downsample=True, channels=16, in_channels=4)
    trainable = [
        sum(p.data().size for p in u.collect_params().values() if p.grad_req != "null") for u in (with_preact, unit)
    ]
    assert trainable[0] - trainable[1] == (2 * 4 if activation == "full_preact" else 0)  # the BN's gamma, beta


@pytest.mark.parametrize("scales", [(0.5, 1.0), (0.5, 0.5), (0.0, 1.0)])
def test_constant_scaling_rows_of_table1(scales):
    shortcut_scale, residual_scale = scales
    unit, x = build(
        activation="original", shortcut="constant_scaling", shortcut_scale=shortcut_scale, residual_scale=residual_scale
    )
    expected = reference(
        unit,
        x,
        "basic",
        "original",
        "constant_scaling",
        1,
        False,
        shortcut_scale=shortcut_scale,
        residual_scale=residual_scale,
    )
    np.testing.assert_allclose(unit(x).asnumpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shortcut", ["exclusive_gating", "shortcut_only_gating"])
@pytest.mark.parametrize("gate_bias", [0.0, -6.0])
def test_gate_bias_is_initialised_to_b_g(shortcut, gate_bias):
    unit, x = build(activation="original", shortcut=shortcut, gate_bias=gate_bias)
    np.testing.assert_array_equal(unit.merge.gate.bias.data().asnumpy(), np.full(4, gate_bias, np.float32))
    expected = reference(unit, x, "basic", "original", shortcut, 1, False, gate_bias=gate_bias)
    np.testing.assert_allclose(unit(x).asnumpy(), expected, rtol=1e-4, atol=1e-4)


def test_default_gate_bias_and_scales():
    assert ShortcutSpec("exclusive_gating").gate_bias == -6.0
    spec = ShortcutSpec("constant_scaling")
    assert (spec.shortcut_scale, spec.residual_scale) == (0.5, 1.0)
    assert ShortcutSpec("dropout").shortcut_dropout == 0.5


def test_dropout_acts_on_the_shortcut_only_in_training():
    # Full pre-activation has no post-activation, so y - F(x) is the shortcut alone.
    unit, x = build(activation="full_preact", shortcut="dropout", shortcut_dropout=0.5)
    with mx.autograd.record(train_mode=True):
        y = unit(x).asnumpy()
    no_drop = reference(unit, x, "basic", "full_preact", "dropout", 1, False, training=True, shortcut_dropout=0.5)
    residual_only = no_drop - x.asnumpy()
    kept = (y - residual_only) / x.asnumpy()
    # every element of the shortcut is either dropped (0) or kept and rescaled by 1 / (1 - p) = 2
    assert np.all(np.isclose(kept, 0, atol=1e-3) | np.isclose(kept, 2, atol=1e-3))
    assert 0.3 < np.mean(np.isclose(kept, 2, atol=1e-3)) < 0.7
    # in inference the shortcut is the identity
    expected = reference(unit, x, "basic", "full_preact", "dropout", 1, False, shortcut_dropout=0.5)
    np.testing.assert_allclose(unit(x).asnumpy(), expected, rtol=1e-4, atol=1e-4)


def test_zero_padding_projection_option_a():
    unit, x = build(activation="full_preact", downsample=True, channels=8, in_channels=4, projection="zero_pad")
    a = relu(bn(x.asnumpy().astype(np.float64), *_bn_params(unit.preact[0])))
    convs = [b for b in unit.branch if isinstance(b, nn.Conv2D)]
    bn1 = _bn_params(next(b for b in unit.branch if isinstance(b, nn.BatchNorm)))
    f = conv2d(relu(bn(conv2d(a, _np(convs[0].weight), 2), *bn1)), _np(convs[1].weight))
    h = np.concatenate([a[:, :, ::2, ::2], np.zeros((2, 4, 3, 3))], axis=1)
    np.testing.assert_allclose(unit(x).asnumpy(), h + f, rtol=1e-4, atol=1e-4)
    assert not [p for p in unit.shortcut.collect_params()]


def test_shortcut_source_rule():
    assert ResidualUnit(4, 1, False, 4).shortcut_source == "input"
    assert ResidualUnit(8, 2, True, 4).shortcut_source == "preact"
    assert ResidualUnit(4, 1, False, 4, shortcut="conv1x1").shortcut_source == "preact"
    assert ResidualUnit(4, 1, False, 4, shortcut_source="preact").shortcut_source == "preact"


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"activation": "preact"}, "activation='preact' is not a Fig. 4 variant; expected one of original"),
        ({"shortcut": "gate"}, "shortcut='gate' is not a Fig. 2 variant"),
        ({"shortcut": "identity", "gate_bias": -6}, "gate_bias=-6 applies to shortcut='exclusive_gating'"),
        ({"shortcut": "dropout", "shortcut_dropout": 1.5}, "shortcut_dropout=1.5: expected a finite number in [0, 1)"),
        ({"branch": "triple"}, "branch='triple': expected one of basic, bottleneck, single"),
        ({"shortcut_source": "both"}, "shortcut_source='both'"),
        ({"projection": "pad"}, "projection='pad'"),
    ],
)
def test_bad_variants_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError) as err:
        ResidualUnit(4, 1, False, 4, **kwargs)
    assert message in str(err.value)


VARIANTS = (
    [(a, "identity") for a in ACTIVATIONS]
    + [("original", s) for s in SHORTCUTS]
    + [("full_preact", s) for s in SHORTCUTS]
)


@pytest.mark.parametrize("activation,shortcut", VARIANTS)
def test_units_hybridize_and_export(activation, shortcut, tmp_path):
    unit, x = build("basic", activation, shortcut, downsample=True, channels=8)
    expected = unit(x).asnumpy()
    unit.hybridize(static_alloc=True, static_shape=True)
    np.testing.assert_allclose(unit(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    symbol_file, params_file = export(unit, str(tmp_path / "unit"), x.shape)
    loaded = mx.gluon.SymbolBlock.imports(symbol_file, ["data"], params_file)
    np.testing.assert_allclose(loaded(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
