"""The model zoo: registry, the paper's networks (parameter counts, pre-activation rules), hybridize,
export, save/load, and gluoncv compatibility."""

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn
from mxnet.gluon.contrib.nn import SyncBatchNorm

import gluon_resnetv2 as g
from gluon_resnetv2.nets.gluoncv import GLUONCV_NAMES, gluoncv_layout_model
from gluon_resnetv2.units import ResidualUnit, walk_blocks

CIFAR_X = (2, 3, 32, 32)
IMAGENET_X = (1, 3, 64, 64)  # global pooling makes the nets size-agnostic; 64 keeps tests fast


def built(name, shape=CIFAR_X, **kwargs):
    net = g.get_model(name, **kwargs)
    net.initialize()
    net(mx.nd.zeros(shape))
    return net


def shaped(name, shape=CIFAR_X, **kwargs):
    """The network with every parameter's shape inferred and none allocated: what counting and structure
    tests need, without seconds of random initialisation of a deep ImageNet net."""
    net = g.get_model(name, **kwargs)
    net.infer_shape(mx.nd.zeros(shape))
    return net


# --- registry -----------------------------------------------------------------------------------


def test_registered_names():
    names = set(g.list_models())
    for v in ("v1", "v2"):
        for d in (20, 32, 44, 56, 110, 1202, 164, 1001):
            assert f"cifar_resnet{d}_{v}" in names
        assert f"cifar_resnet110_1layer_{v}" in names
        for d in (18, 34, 50, 101, 152, 200):
            assert f"resnet{d}_{v}" in names
    assert set(g.list_models("imagenet")) == {
        f"resnet{d}_{v}" for d in (18, 34, 50, 101, 152, 200) for v in ("v1", "v2")
    }


def test_unknown_name_lists_valid_names_and_suggests():
    with pytest.raises(ValueError) as err:
        g.get_model("cifar_resnet111_v2")
    message = str(err.value)
    assert "unknown model 'cifar_resnet111_v2'" in message and "Did you mean" in message
    assert "cifar_resnet110_v2" in message and "resnet200_v2" in message


def test_impossible_depth_and_unknown_options():
    with pytest.raises(ValueError, match=r"depth=21 is impossible .* 6n\+2"):
        g.cifar_resnet(21)
    with pytest.raises(ValueError, match=r"9n\+2"):
        g.cifar_resnet(100, branch="bottleneck")
    with pytest.raises(ValueError, match="expected one of 18, 34, 50, 101, 152, 200"):
        g.imagenet_resnet(42)
    with pytest.raises(ValueError, match="unknown option.*shortcut_bias"):
        g.get_model("cifar_resnet20_v2", shortcut_bias=1)
    with pytest.raises(ValueError, match="activation='post' is not a Fig. 4 variant"):
        g.get_model("cifar_resnet20_v1", activation="post")
    with pytest.raises(ValueError, match="not a Fig. 2 variant"):
        g.get_model("cifar_resnet20_v1", shortcut="highway")


def test_version_suffix_selects_the_ordering_and_can_be_overridden():
    assert g.get_model("cifar_resnet20_v1").config["activation"] == "original"
    assert g.get_model("cifar_resnet20_v2").config["activation"] == "full_preact"
    net = g.get_model("cifar_resnet110_v1", activation="bn_after_add")
    assert all(u.ordering.name == "bn_after_add" for u in net.residual_units())
    net = g.get_model("cifar_resnet110_v1", shortcut="exclusive_gating", gate_bias=-6)
    assert all(u.spec.name == "exclusive_gating" and u.spec.gate_bias == -6 for u in net.residual_units())
    assert len(net.residual_units()) == 54


# --- the paper's networks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,classes,count",
    [
        ("cifar_resnet110_v2", 10, 1_730_522),
        ("cifar_resnet164_v2", 10, 1_703_258),
        pytest.param("cifar_resnet1001_v2", 10, 10_327_706, marks=pytest.mark.slow),  # 3.7-4.1 s measured
        ("resnet18_v2", 1000, 11_687_720),
        ("resnet34_v2", 1000, 21_795_880),
        ("resnet50_v2", 1000, 25_549_352),
        pytest.param(
            "resnet101_v2", 1000, 44_541_480, marks=pytest.mark.slow
        ),  # large random inits: seconds of async work
        pytest.param(
            "resnet152_v2", 1000, 60_185_128, marks=pytest.mark.slow
        ),  # large random inits: seconds of async work
        pytest.param(
            "resnet200_v2", 1000, 64_666_152, marks=pytest.mark.slow
        ),  # large random inits: seconds of async work
    ],
)
def test_trainable_parameter_counts_equal_the_paper(name, classes, count):
    net = shaped(name, CIFAR_X if name.startswith("cifar") else IMAGENET_X, classes=classes)
    assert net.num_trainable_parameters() == count


# The ImageNet nets of the original ResNet paper's Table 1 (and [3, 24, 36, 3] for ResNet-200).
_IMAGENET_STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}


def _hand_count_preresnet(depth, classes=1000, first_unit_preact=False):
    """fb.resnet.torch's preresnet.lua counted by hand: conv1 7x7 + BN; units BN-ReLU-conv... with the first
    unit 'no_preact'; bias-free 1x1 projections (no BN) where dimensions change; final BN; classifier."""
    branch, units = _IMAGENET_STAGES[depth]
    outs = (64, 128, 256, 512) if branch == "basic" else (256, 512, 1024, 2048)
    count, c_in = 7 * 7 * 3 * 64 + 2 * 64, 64
    for stage, c in enumerate(outs):
        for j in range(units[stage]):
            if stage or j or first_unit_preact:
                count += 2 * c_in
            if branch == "basic":
                count += 9 * c_in * c + 2 * c + 9 * c * c
            else:
                w = c // 4
                count += c_in * w + 2 * w + 9 * w * w + 2 * w + w * c
            if c_in != c or (stage and not j):
                count += c_in * c
            c_in = c
    return count + 2 * c_in + c_in * classes + classes


@pytest.mark.parametrize("depth", sorted(_IMAGENET_STAGES))
def test_imagenet_v2_counts_equal_a_hand_count_of_preresnet_lua(depth):
    net = shaped(f"resnet{depth}_v2", IMAGENET_X)
    assert net.num_trainable_parameters() == _hand_count_preresnet(depth)


def test_gluoncv_layout_keeps_the_doubled_first_activation():
    for depth, count in ((50, 25_549_480), (152, 60_185_256)):
        net = gluoncv_layout_model(f"resnet{depth}_v2")
        net.infer_shape(mx.nd.zeros(IMAGENET_X))
        assert net.num_trainable_parameters() == count == _hand_count_preresnet(depth, first_unit_preact=True)
        assert _layers(net.residual_units()[0].preact) == ["BatchNorm", "Activation"]


def _convs(block):
    return [b for b in walk_blocks(block) if isinstance(b, nn.Conv2D)]


@pytest.mark.parametrize("name", ["cifar_resnet164_v1", "cifar_resnet164_v2", "cifar_resnet1001_v2"])
def test_cifar_bottleneck_halving_units_stride_the_first_1x1(name):
    net = g.get_model(name)
    halving = [u for u in net.residual_units() if any(c._kwargs["stride"] != (1, 1) for c in _convs(u.branch))]
    assert len(halving) == 2  # the entries of stages 2 and 3
    for unit in halving:
        assert [c._kwargs["stride"] for c in unit.branch if isinstance(c, nn.Conv2D)] == [(2, 2), (1, 1), (1, 1)]
        assert unit.branch[0]._kwargs["kernel"] == (1, 1)
    assert all(c._kwargs["stride"] == (1, 1) for c in _convs(net) if c._kwargs["kernel"] == (3, 3))


@pytest.mark.parametrize("activation", ["original", "bn_after_add", "relu_before_add", "relu_preact"])
def test_cifar_bottleneck_stride_is_the_same_for_every_ordering(activation):
    net = g.get_model("cifar_resnet164_v2", activation=activation)
    strided = [
        (c._kwargs["kernel"], c.weight.shape[1])
        for u in net.residual_units()
        for c in _convs(u.branch)
        if c._kwargs["stride"] == (2, 2)
    ]
    assert strided == [((1, 1), 64), ((1, 1), 128)]


def test_bottleneck_stride_on_3x3_is_a_layout_choice():
    net = g.get_model("cifar_resnet164_v2", layout=g.Layout(bottleneck_stride_on="3x3"))
    entry = net.stages[1][0]
    assert [c._kwargs["stride"] for c in _convs(entry.branch)] == [(1, 1), (2, 2), (1, 1)]
    assert net.num_trainable_parameters() == g.get_model("cifar_resnet164_v2").num_trainable_parameters()
    # ImageNet keeps fb.resnet.torch's stride on the 3x3
    entry = g.get_model("resnet50_v2").stages[1][0]
    assert [c._kwargs["stride"] for c in _convs(entry.branch)] == [(1, 1), (2, 2), (1, 1)]
    with pytest.raises(ValueError, match="stride_on='last': expected one of 'first', '3x3'"):
        g.get_model("cifar_resnet164_v2", layout=g.Layout(bottleneck_stride_on="last"))


@pytest.mark.parametrize("name", [f"resnet{d}_v2" for d in (18, 34, 50, 101, 152, 200)])
def test_imagenet_v2_first_unit_has_no_preactivation(name):
    net = g.get_model(name)
    first, *others = net.residual_units()
    assert _layers(first.preact) == []
    assert type(first.branch[0]).__name__ == "Conv2D"
    assert all(_layers(u.preact) == ["BatchNorm", "Activation"] for u in others)
    # relu_preact (Fig. 4(d)) follows the same rule: the stem's output is already ReLU'd
    assert _layers(g.get_model(name, activation="relu_preact").residual_units()[0].preact) == []


@pytest.mark.slow
def test_imagenet_v2_first_unit_reads_the_max_pool_output_numerically():
    net = built("resnet50_v2", IMAGENET_X)
    for p in net.collect_params(".*running_mean").values():
        p.set_data(mx.nd.random.uniform(-1, 1, p.shape))
    x = mx.nd.random.normal(shape=IMAGENET_X)
    pooled = net.stem(x)
    first = net.residual_units()[0]
    expected = first.shortcut(pooled) + first.branch(pooled)
    np.testing.assert_allclose(first(pooled).asnumpy(), expected.asnumpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "name,units,branch",
    [
        ("cifar_resnet20_v2", 9, "basic"),
        ("cifar_resnet164_v2", 54, "bottleneck"),
        ("cifar_resnet110_1layer_v2", 108, "single"),
        ("resnet200_v2", 66, "bottleneck"),
    ],
)
def test_depths(name, units, branch):
    net = g.get_model(name)
    assert len(net.residual_units()) == units
    assert net.config["branch"] == branch


def _layers(seq):
    return [type(b).__name__ for b in seq]


def test_preactivation_cifar_rules():
    net = built("cifar_resnet56_v2")
    units = net.residual_units()
    # conv1 has no BN/ReLU of its own
    assert _layers(net.stem) == ["Conv2D"]
    # the first unit activates right after conv1, before splitting: both paths read BN-ReLU(conv1)
    assert _layers(units[0].preact) == ["BatchNorm", "Activation"]
    assert units[0].shortcut_source == "preact"
    # units that change dimensions project the pre-activated input; others keep the clean identity
    for unit in units[1:]:
        downsampling = unit.branch[0]._kwargs["stride"] != (1, 1)
        assert unit.shortcut_source == ("preact" if downsampling else "input")
    assert sum(u.shortcut_source == "preact" for u in units) == 3
    # the last unit is followed by an extra BN-ReLU before global pooling
    assert _layers(net.head) == ["HybridSequential", "GlobalAvgPool2D", "Flatten"]
    assert _layers(net.head[0]) == ["BatchNorm", "Activation"]


def test_first_unit_and_projection_read_the_preactivation_numerically():
    net = built("cifar_resnet20_v2")
    x = mx.nd.random.normal(shape=CIFAR_X)
    for p in net.collect_params(".*running_mean").values():
        p.set_data(mx.nd.random.uniform(-1, 1, p.shape))
    stem = net.stem(x)
    first = net.residual_units()[0]
    a = first.preact(stem)
    np.testing.assert_allclose(first(stem).asnumpy(), (a + first.branch(a)).asnumpy(), rtol=1e-5, atol=1e-5)
    # a stage-2 entry unit: y = proj(preact(x)) + F(preact(x))
    stage2 = net.stages[1][0]
    h = net.stages[0](first(stem))
    a = stage2.preact(h)
    expected = stage2.shortcut(a) + stage2.branch(a)
    np.testing.assert_allclose(stage2(h).asnumpy(), expected.asnumpy(), rtol=1e-5, atol=1e-5)


def test_original_cifar_rules():
    net = built("cifar_resnet56_v1")
    assert _layers(net.stem) == ["Conv2D", "BatchNorm", "Activation"]
    assert _layers(net.head) == ["GlobalAvgPool2D", "Flatten"]
    unit = net.residual_units()[0]
    assert _layers(unit.preact) == [] and _layers(unit.postact) == ["Activation"]
    # option B projections of the original unit are conv + BN
    assert _layers(net.stages[1][0].shortcut) == ["Conv2D", "BatchNorm"]


def test_imagenet_stem_and_bottleneck():
    net = built("resnet50_v2", IMAGENET_X, classes=1000)
    assert _layers(net.stem) == ["Conv2D", "BatchNorm", "Activation", "MaxPool2D"]
    first = net.residual_units()[0]
    assert _layers(first.preact) == []  # fb.resnet.torch's 'no_preact': the stem ends on BN-ReLU-max pool
    convs = [b for b in first.branch if isinstance(b, nn.Conv2D)]
    assert [c._kwargs["kernel"] for c in convs] == [(1, 1), (3, 3), (1, 1)]
    assert [c._channels for c in convs] == [64, 64, 256]
    second_stage_convs = [b for b in net.stages[1][0].branch if isinstance(b, nn.Conv2D)]
    assert [c._kwargs["stride"] for c in second_stage_convs] == [(1, 1), (2, 2), (1, 1)]
    assert net(mx.nd.zeros((2, 3, 224, 224))).shape == (2, 1000)


def test_zero_padding_option_a_network_has_no_projection_parameters():
    b = built("cifar_resnet20_v2")
    a = built("cifar_resnet20_v2", projection="zero_pad")
    assert b.num_trainable_parameters() - a.num_trainable_parameters() == 16 * 32 + 32 * 64


def test_norm_layer_and_kwargs_reach_every_batchnorm():
    net = g.get_model("cifar_resnet20_v2", norm_layer=SyncBatchNorm, norm_kwargs={"num_devices": 2, "momentum": 0.8})
    norms = [b for b in walk_blocks(net) if isinstance(b, nn.BatchNorm)]
    assert len(norms) == 1 + 9 * 2  # one pre-activation BN and one inner BN per unit, plus the final BN
    assert all(isinstance(b, SyncBatchNorm) and b._kwargs["momentum"] == 0.8 for b in norms)
    assert all(b._kwargs["ndev"] == 2 for b in norms)


def test_he_initialisation():
    net = built("cifar_resnet110_v2")
    w = net.stages[2][5].branch[0].weight.data().asnumpy()  # 3x3, 64 -> 64
    assert abs(w.std() - np.sqrt(2.0 / (3 * 3 * 64))) < 0.1 * np.sqrt(2.0 / (3 * 3 * 64))


# --- hybridize, export, save/load ---------------------------------------------------------------

# The deepest nets take 3-17 s each to trace on 2 cores: marked slow so `make test-fast` can skip them.
# measured over ~3 s each (resnet101: 4-5 s with the machine shared)
SLOW_NETS = [n for n in g.list_models() if any(f"resnet{d}_" in n for d in (101, 152, 200, 1001, 1202))]
FAST_NETS = [n for n in g.list_models() if n not in SLOW_NETS]


def _check_hybridize_and_export(name, tmp_path, **kwargs):
    shape = CIFAR_X if name.startswith("cifar") else IMAGENET_X
    net = built(name, shape, **kwargs)
    x = mx.nd.random.normal(shape=shape)
    expected = net(x).asnumpy()
    net.hybridize(static_alloc=True, static_shape=True)
    np.testing.assert_allclose(net(x).asnumpy(), expected, rtol=1e-4, atol=1e-4)
    symbol_file, params_file = g.export(net, str(tmp_path / name), shape)
    loaded = mx.gluon.SymbolBlock.imports(symbol_file, ["data"], params_file)
    np.testing.assert_allclose(loaded(x).asnumpy(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", FAST_NETS)
def test_networks_hybridize_and_export(name, tmp_path):
    _check_hybridize_and_export(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_NETS)
def test_every_network_hybridizes_and_exports(name, tmp_path):
    _check_hybridize_and_export(name, tmp_path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"activation": "bn_after_add"},
        {"activation": "relu_before_add"},
        {"activation": "relu_preact"},
        {"shortcut": "constant_scaling", "residual_scale": 0.5},
        {"shortcut": "exclusive_gating", "gate_bias": -6},
        {"shortcut": "shortcut_only_gating"},
        {"shortcut": "conv1x1"},
        {"shortcut": "dropout"},
        {"projection": "zero_pad"},
    ],
)
def test_network_variants_hybridize_and_export(kwargs, tmp_path):
    _check_hybridize_and_export("cifar_resnet20_v1", tmp_path, **kwargs)


def test_export_needs_an_initialised_network_and_a_4d_shape(tmp_path):
    with pytest.raises(ValueError, match="not initialised"):
        g.export(g.get_model("cifar_resnet20_v2"), str(tmp_path / "x"), CIFAR_X)
    with pytest.raises(ValueError, match="expected \\(batch, channels, height, width\\)"):
        g.export(built("cifar_resnet20_v2"), str(tmp_path / "x"), (3, 32, 32))


def test_save_and_load_parameters_round_trip(tmp_path):
    net = built("cifar_resnet20_v2", shortcut="exclusive_gating")
    x = mx.nd.random.normal(shape=CIFAR_X)
    net.save_parameters(str(tmp_path / "net.params"))
    fresh = g.get_model("cifar_resnet20_v2", shortcut="exclusive_gating")
    fresh.load_parameters(str(tmp_path / "net.params"))
    np.testing.assert_array_equal(fresh(x).asnumpy(), net(x).asnumpy())


def test_mismatched_parameter_file_lists_missing_and_unexpected_names(tmp_path):
    built("cifar_resnet20_v2", shortcut="exclusive_gating").save_parameters(str(tmp_path / "gated.params"))
    plain = g.get_model("cifar_resnet20_v2")
    with pytest.raises(ValueError) as err:
        plain.load_parameters(str(tmp_path / "gated.params"))
    message = str(err.value)
    assert "unexpected (18)" in message and "features.1.0.merge.gate.weight" in message
    built("cifar_resnet20_v1").save_parameters(str(tmp_path / "v1.params"))
    with pytest.raises(ValueError) as err:
        g.get_model("cifar_resnet20_v2").load_parameters(str(tmp_path / "v1.params"))
    assert "missing" in str(err.value) and "features.1.0.preact.0.gamma" in str(err.value)
    built("cifar_resnet20_v2", classes=100).save_parameters(str(tmp_path / "c100.params"))
    mismatch = r"shape mismatch \(2\).*output.weight: file \(100, 64\) vs network \(10, 64\)"
    with pytest.raises(ValueError, match=mismatch):
        built("cifar_resnet20_v2").load_parameters(str(tmp_path / "c100.params"))


# --- gluoncv ------------------------------------------------------------------------------------


def _random_gluoncv(name, shape, path):
    from gluoncv.model_zoo import get_model as gluoncv_model  # raises on import beside some torch versions

    ref = gluoncv_model(name)
    ref.initialize(mx.init.Xavier())
    ref(mx.nd.zeros(shape))
    rng = np.random.RandomState(0)
    for pname, p in ref.collect_params().items():
        if pname.endswith(("running_var", "gamma")):
            p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))
        elif pname.endswith(("running_mean", "beta")):
            p.set_data(mx.nd.array(rng.uniform(-0.5, 0.5, p.shape)))
    ref.save_parameters(path)
    return ref


@pytest.mark.parametrize(
    "name",
    [f"cifar_resnet{d}_{v}" for d in (20, 56, 110) for v in ("v1", "v2")]
    + [f"resnet{d}_{v}" for d in (18, 50) for v in ("v1", "v2")],
)
def test_from_gluoncv_gives_gluoncv_outputs(name, tmp_path):
    shape = CIFAR_X if name.startswith("cifar") else IMAGENET_X
    path = str(tmp_path / f"{name}.params")
    ref = _random_gluoncv(name, shape, path)
    net = g.from_gluoncv(name, path)
    x = mx.nd.random.normal(shape=shape)
    np.testing.assert_allclose(net(x).asnumpy(), ref(x).asnumpy(), rtol=1e-4, atol=1e-4)
    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), ref(x).asnumpy(), rtol=1e-4, atol=1e-4)


def test_from_gluoncv_errors(tmp_path):
    assert "cifar_resnet164_v2" not in GLUONCV_NAMES
    with pytest.raises(ValueError, match="no gluoncv counterpart"):
        g.from_gluoncv("cifar_resnet164_v2", "x.params")
    path = str(tmp_path / "v1.params")
    _random_gluoncv("cifar_resnet20_v1", CIFAR_X, path)
    with pytest.raises(ValueError, match="holds gluoncv cifar_resnet20_v1 parameters, not cifar_resnet20_v2"):
        g.from_gluoncv("cifar_resnet20_v2", path)
    with pytest.raises(ValueError, match="fixed layout"):
        g.from_gluoncv("cifar_resnet20_v2", path, shortcut="conv1x1")


def test_units_are_public_and_compose_into_a_user_network():
    net = nn.HybridSequential()
    net.add(
        nn.Conv2D(16, 3, padding=1),
        ResidualUnit(16, 1, False, 16, branch="bottleneck", activation="relu_preact", shortcut="dropout"),
        ResidualUnit(32, 2, True, 16, activation="full_preact", shortcut="shortcut_only_gating"),
    )
    net.initialize()
    assert net(mx.nd.zeros((1, 3, 8, 8))).shape == (1, 32, 4, 4)
