"""Deployment: export + Predictor round trips, preprocessing, the predict CLI, ONNX, fusion, INT8.

Networks are tiny (CIFAR layout with one unit per stage, 8x8 or 12x12 inputs) so the file runs in well
under a minute on two cores; BatchNorm parameters and statistics are randomised so that a wrongly
exported BatchNorm cannot hide behind gamma = 1, beta = 0, mean = 0, var = 1.
"""

import json
import os
import shutil
import sys
import types
import zipfile

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon
from mxnet.runtime import Features
from PIL import Image

from gluon_resnetv2 import cli, get_model, memory
from gluon_resnetv2.data import ArrayDataset, make_loader
from gluon_resnetv2.deploy import (
    OnnxPredictor,
    OnnxUnavailable,
    Predictor,
    Preprocess,
    check_onnx,
    export_bundle,
    export_onnx,
    fixed_gamma_names,
    fuse,
    quantize,
    resolve_context,
    to_symbol_block,
)
from gluon_resnetv2.deploy.export import export
from gluon_resnetv2.deploy.fast import _rename_adds
from gluon_resnetv2.memory import SymbolicTrainer, recompute
from gluon_resnetv2.nets.cifar import cifar_resnet
from gluon_resnetv2.nets.gluoncv import gluoncv_layout_model

SHAPE = (1, 12, 12)  # grey images, small enough for speed
MEAN, STD = [73.0], [90.0]
CLASSES = [f"class{i}" for i in range(10)]


def randomize(net, seed=0):
    """Random BatchNorm gamma/beta/mean/var (and keep conv/dense init), so BN errors show."""
    rng = np.random.default_rng(seed)
    for name, param in net.collect_params().items():
        shape = param.shape
        if name.endswith(("gamma", "running_var")):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, shape)))
        elif name.endswith(("beta", "running_mean")):
            param.set_data(mx.nd.array(rng.normal(0, 0.2, shape)))
    return net


def tiny(depth=8, branch="basic", input_shape=(2,) + SHAPE, **kwargs):
    net = cifar_resnet(depth, branch, classes=10, **kwargs)
    net.initialize(mx.init.Xavier(magnitude=2))
    net(mx.nd.zeros(input_shape))
    return randomize(net)


def pixels(n, seed=0, shape=SHAPE):
    """n uint8 HWC images."""
    c, h, w = shape
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """(net, prefix) of an exported tiny network with its preprocessing."""
    net = tiny()
    prefix = str(tmp_path_factory.mktemp("export") / "tiny")
    export_bundle(net, prefix, Preprocess(SHAPE, MEAN, STD, classes=CLASSES, dataset="toy"))
    return net, prefix


# -- export + Predictor ----------------------------------------------------------------------------------


def test_export_writes_files_and_preprocessing(bundle):
    _, prefix = bundle
    for suffix in ("-symbol.json", "-0000.params", "-preprocess.json"):
        assert os.path.isfile(prefix + suffix)
    pre = Preprocess.load(prefix + "-preprocess.json")
    assert pre.input_shape == SHAPE and pre.mean == MEAN and pre.std == STD and pre.classes == CLASSES
    assert pre.dataset == "toy"


def test_predictor_round_trip_equals_network(bundle):
    net, prefix = bundle
    x = np.random.default_rng(1).standard_normal((5,) + SHAPE).astype(np.float32)
    predictor = Predictor(prefix, batch_size=2)  # 3 batches, the last one partial
    np.testing.assert_allclose(predictor.logits(x), net(mx.nd.array(x)).asnumpy(), rtol=1e-5, atol=1e-5)


def test_predictor_with_fusion(bundle):
    """Predictor(fuse=True): oneDNN-fused graph, static batch (the last partial batch is padded)."""
    net, prefix = bundle
    x = np.random.default_rng(8).standard_normal((3,) + SHAPE).astype(np.float32)
    predictor = Predictor(prefix, batch_size=2, fuse=True)
    assert predictor.fused
    np.testing.assert_allclose(predictor.logits(x), net(mx.nd.array(x)).asnumpy(), rtol=1e-4, atol=1e-4)


def test_preprocessing_matches_training_loader(bundle, tmp_path):
    """A PNG and a .npy of the same pixels give the test loader's tensor, hence the same logits."""

    net, prefix = bundle
    images = pixels(3)
    dataset = ArrayDataset(images, [0, 1, 2], 10, MEAN, STD, "toy", "test")
    loader_batch = next(iter(make_loader(dataset, 3, train=False, num_workers=0)))[0].asnumpy()
    paths = []
    for i, img in enumerate(images):
        png = tmp_path / f"img{i}.png"
        Image.fromarray(img[:, :, 0]).save(png)
        paths.append(str(png))
    np.save(tmp_path / "img.npy", images[:, :, :, 0][0])
    predictor = Predictor(prefix)
    _, batch = predictor.load(paths + [str(tmp_path / "img.npy")])
    np.testing.assert_array_equal(batch[:3], loader_batch)
    np.testing.assert_array_equal(batch[3], loader_batch[0])
    names, probs = predictor.predict(paths)
    expected = net(mx.nd.array(loader_batch)).asnumpy()
    np.testing.assert_allclose(
        np.log(probs) - np.log(probs).mean(1, keepdims=True), expected - expected.mean(1, keepdims=True), atol=1e-4
    )


def test_rgb_and_resize_are_converted(bundle, tmp_path):
    """An RGB image of another size is converted to grey and resized to the stored shape."""

    _, prefix = bundle
    grey = pixels(1)[0, :, :, 0]
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.save(tmp_path / "chw.npy", rgb.transpose(2, 0, 1))
    Image.fromarray(np.kron(grey, np.ones((2, 2), np.uint8))).save(tmp_path / "big.png")  # 24x24
    predictor = Predictor(prefix)
    _, batch = predictor.load([str(tmp_path / n) for n in ("rgb.png", "chw.npy", "big.png")])
    reference = (grey.astype(np.float32) - MEAN[0]) / STD[0]
    for i in range(3):
        np.testing.assert_allclose(batch[i, 0], reference, atol=0.02)
    with pytest.raises(ValueError, match="resizing disabled"):
        predictor.load([str(tmp_path / "big.png")], resize=False)


def test_predict_cli_prints_top_k(bundle, tmp_path, capsys):
    _, prefix = bundle
    img = pixels(1)[0]
    Image.fromarray(img[:, :, 0]).save(tmp_path / "a.png")
    np.save(tmp_path / "b.npy", img)
    assert cli.main(["predict", prefix, str(tmp_path / "a.png"), str(tmp_path / "b.npy"), "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].endswith("a.png") and lines[4].endswith("b.npy") and len(lines) == 8
    first = [line.split() for line in lines[1:4]]
    assert [row[0] for row in first] == ["1.", "2.", "3."]
    assert all(row[1] in CLASSES for row in first)
    probs = [float(row[2]) for row in first]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    assert lines[1:4] == lines[5:8]  # same pixels, same answer


# -- errors -----------------------------------------------------------------------------------------------


def test_missing_export_files(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="incomplete"):
        Predictor(str(tmp_path / "nothing"))
    assert cli.main(["predict", str(tmp_path / "nothing"), "x.png"]) == 2
    assert "gluon-resnetv2 export" in capsys.readouterr().err


def test_missing_preprocessing_is_reported(bundle, tmp_path):
    _, prefix = bundle
    copy = str(tmp_path / "copy")
    for suffix in ("-symbol.json", "-0000.params"):
        shutil.copy(prefix + suffix, copy + suffix)
    predictor = Predictor(copy)  # tensors still work
    assert predictor.logits(np.zeros((1,) + SHAPE, np.float32)).shape == (1, 10)
    with pytest.raises(FileNotFoundError, match="preprocess"):
        predictor.load([str(tmp_path / "x.png")])


@pytest.mark.parametrize(
    "content, name, message",
    [
        (b"this is not a png", "bad.png", "cannot read as an image"),
        (None, "missing.png", "no such file"),
        (np.zeros(7), "flat.npy", "not an image"),
        (np.zeros((12, 12, 5)), "five.npy", "not an image"),
        (np.zeros((2, 2, 3, 12, 12)), "five_d.npy", "not an image"),
        (b"garbage", "bad.npy", "cannot read as a numpy"),
        (np.array(["a", "b"]), "text.npy", "dtype"),
    ],
)
def test_bad_inputs(bundle, tmp_path, capsys, content, name, message):
    _, prefix = bundle
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.save(path, content)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        Predictor(prefix).load([str(path)])
    assert cli.main(["predict", prefix, str(path)]) == 2
    err = capsys.readouterr().err
    assert name in err and message in err


def test_wrong_tensor_shape(bundle):
    _, prefix = bundle
    with pytest.raises(ValueError, match="expects"):
        Predictor(prefix).logits(np.zeros((1, 3, 12, 12), np.float32))


def test_gpu_request_is_checked():
    if Features().is_enabled("CUDA") and mx.context.num_gpus() > 0:
        assert resolve_context(0) == mx.gpu(0)
        with pytest.raises(RuntimeError, match="visible"):
            resolve_context(mx.context.num_gpus())
    else:
        with pytest.raises(RuntimeError, match="CPU-only|visible"):
            resolve_context(0)
    assert resolve_context(None) == mx.cpu()


def test_export_cli(tmp_path, capsys):
    net = tiny()
    net.save_parameters(str(tmp_path / "net.params"))
    out = str(tmp_path / "cli")
    code = cli.main(
        [
            "export",
            "--model",
            "cifar_resnet20_v2",
            "--params",
            str(tmp_path / "net.params"),
            "--out",
            out,
            "--input-shape",
            "1,1,12,12",
            "--mean",
            "73",
            "--std",
            "90",
        ]
    )
    # cifar_resnet20_v2 has 3 units per stage, the tiny net 1: the mismatch is reported, not a traceback.
    assert code == 2 and "holds a network of another depth: 3 residual units" in capsys.readouterr().err
    net20 = cifar_resnet(20, classes=10)
    net20.initialize()
    net20(mx.nd.zeros((1,) + SHAPE))
    net20.save_parameters(str(tmp_path / "net20.params"))
    assert (
        cli.main(
            [
                "export",
                "--model",
                "cifar_resnet20_v2",
                "--params",
                str(tmp_path / "net20.params"),
                "--out",
                out,
                "--input-shape",
                "1,1,12,12",
                "--mean",
                "73",
                "--std",
                "90",
            ]
        )
        == 0
    )
    pre = Preprocess.load(out + "-preprocess.json")
    assert pre.input_shape == SHAPE and pre.mean == MEAN and pre.classes is None
    assert (
        cli.main(
            [
                "export",
                "--model",
                "cifar_resnet20_v2",
                "--params",
                str(tmp_path / "net20.params"),
                "--out",
                out,
                "--input-shape",
                "1,1,12,12",
            ]
        )
        == 2
    )
    assert "--dataset" in capsys.readouterr().err


# -- ONNX -------------------------------------------------------------------------------------------------

VARIANTS = [dict(activation=a) for a in ("original", "bn_after_add", "relu_before_add", "relu_preact", "full_preact")]
VARIANTS += [
    dict(activation="original", shortcut="constant_scaling", shortcut_scale=0.5, residual_scale=0.5),
    dict(activation="original", shortcut="exclusive_gating", gate_bias=-2.0),
    dict(activation="original", shortcut="shortcut_only_gating", gate_bias=-2.0),
    dict(activation="full_preact", shortcut="conv1x1"),
    dict(activation="original", shortcut="dropout", shortcut_dropout=0.5),
    dict(activation="full_preact", projection="zero_pad"),
    dict(activation="full_preact", branch="bottleneck", depth=11),
    dict(activation="original", branch="single", depth=5),
]


def _onnx_round_trip(net, tmp_path, shape):
    prefix = str(tmp_path / "net")
    symbol, params = export(net, prefix, (1,) + shape)
    onnx_file = export_onnx(symbol, params, (1,) + shape, prefix + ".onnx")
    x = np.random.default_rng(2).standard_normal((3,) + shape).astype(np.float32)  # dynamic batch
    return OnnxPredictor(onnx_file)(x), net(mx.nd.array(x)).asnumpy()


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values()))
def test_onnx_matches_mxnet_for_every_unit_variant(variant, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    variant = dict(variant)
    depth, branch = variant.pop("depth", 8), variant.pop("branch", "basic")
    shape = (3, 8, 8)
    net = tiny(depth, branch, input_shape=(1,) + shape, **variant)
    ours, theirs = _onnx_round_trip(net, tmp_path, shape)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_onnx_scale_false_batchnorm(tmp_path):
    """gluoncv's parameter-free input BN (scale=False, i.e. fix_gamma) with a stored gamma != 1."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")

    shape = (3, 8, 8)
    net = gluoncv_layout_model("cifar_resnet20_v2", classes=10)
    net.initialize(mx.init.Xavier(magnitude=2))
    net(mx.nd.zeros((1,) + shape))
    randomize(net)
    input_bn = net.stem[0]
    assert input_bn._kwargs["fix_gamma"]
    input_bn.gamma.set_data(mx.nd.full(input_bn.gamma.shape, 3.0))  # ignored by MXNet (fix_gamma)
    ours, theirs = _onnx_round_trip(net, tmp_path, shape)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    assert input_bn.gamma.name in fixed_gamma_names(net(mx.sym.var("data")).tojson())


def test_incompatible_onnx_is_reported(monkeypatch):
    fake = types.ModuleType("onnx")
    fake.__version__ = "1.19.0"
    monkeypatch.setitem(sys.modules, "onnx", fake)
    monkeypatch.delitem(sys.modules, "onnx.mapping", raising=False)
    with pytest.raises(OnnxUnavailable, match=r"1\.19.*onnx>=1\.14,<1\.19"):
        check_onnx()
    monkeypatch.setitem(sys.modules, "onnx", None)  # not installed
    with pytest.raises(OnnxUnavailable, match="gluon-resnetv2\\[onnx\\]"):
        check_onnx()


# -- CPU fast paths ---------------------------------------------------------------------------------------


def test_fuse_gives_same_outputs():
    net = tiny(input_shape=(4,) + SHAPE)
    net.hybridize()
    x = mx.nd.array(np.random.default_rng(3).standard_normal((4,) + SHAPE))
    expected = net(x).asnumpy()
    fused = fuse(net, x.shape)
    np.testing.assert_allclose(fused(x).asnumpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(net(x).asnumpy(), expected)  # the original is untouched


@pytest.mark.parametrize("activation, renamed", [("full_preact", 1), ("original", 4)])
def test_quantize_runs_and_keeps_top1(activation, renamed):
    """INT8 (naive calibration) on a few batches: logits close to fp32 relative to their spread, top-1
    mostly kept (a random network's margins are small, so agreement is not expected to be perfect).

    The residual additions with a ReLU operand (first unit of a v2 net; every identity-shortcut unit of a
    v1 net) are the ones taken out of mxnet 1.9.1's faulty INT8 conv+sum fusion.  (A random network does
    not show the fault clearly; the trained-network figures are in docs/guides/deployment.md.)"""

    net = tiny(14, activation=activation, input_shape=(8,) + SHAPE)  # 2 units per stage
    assert _rename_adds(to_symbol_block(net, (8,) + SHAPE))[1] == renamed
    rng = np.random.default_rng(4)
    batches = [(mx.nd.array(rng.standard_normal((8,) + SHAPE)), mx.nd.zeros(8)) for _ in range(4)]
    qnet = quantize(net, batches, num_calib_batches=3, calib_mode="naive")
    x = batches[3][0]
    ref, out = net(x).asnumpy(), qnet(x).asnumpy()
    assert np.abs(out - ref).max() < 0.5 * np.abs(ref).max()
    assert np.corrcoef(out.ravel(), ref.ravel())[0, 1] > 0.98
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.75


# -- memory: recomputation ------------------------------------------------------------------------------


def _grads(net):
    # Keys without the auto-generated network prefix (residualnetwork0_, residualnetwork1_ ...).
    return {
        name.split("_", 1)[1]: p.grad().asnumpy().copy()
        for name, p in net.collect_params().items()
        if p.grad_req != "null"
    }


def test_recompute_gives_the_same_loss_gradients_and_statistics():

    shape = (4, 3, 8, 8)
    x = mx.nd.array(np.random.default_rng(5).standard_normal(shape))
    y = mx.nd.array([1, 2, 3, 4])
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    results = []
    for wrap in (False, True):
        mx.random.seed(0)
        net = tiny(14, input_shape=shape)  # 2 units per stage: segments of 2 cross stage boundaries
        model = recompute(net, segment_size=2) if wrap else net
        trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
        with autograd.record():
            loss = loss_fn(model(x), y)
        if wrap:
            model.backward(loss)
        else:
            loss.backward()
        grads = _grads(net)
        trainer.step(shape[0])  # no stale-gradient complaint
        stats = {n.split("_", 1)[1]: p.data().asnumpy() for n, p in net.collect_params().items() if "running" in n}
        results.append((loss.asnumpy(), grads, stats, model(x).asnumpy()))
    (l0, g0, s0, o0), (l1, g1, s1, o1) = results
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    assert g0.keys() == g1.keys()
    for name in g0:
        np.testing.assert_allclose(g1[name], g0[name], rtol=1e-4, atol=1e-5, err_msg=name)  # float32 summation order
    for name in s0:  # running averages updated once, not twice
        np.testing.assert_allclose(s1[name], s0[name], rtol=1e-5, atol=1e-5, err_msg=name)  # float32 summation order
    np.testing.assert_allclose(o1, o0, rtol=1e-4, atol=1e-5)  # evaluation path after the step


def test_recompute_refuses_dropout_shortcuts_and_env_switch(monkeypatch):
    with pytest.raises(ValueError, match="dropout"):
        memory.recompute(tiny(shortcut="dropout", shortcut_dropout=0.5, input_shape=(1, 3, 8, 8)))
    net = tiny(input_shape=(1, 3, 8, 8))
    monkeypatch.delenv(memory.PACKAGE_ENV, raising=False)
    assert memory.configure_from_env(net) is net
    monkeypatch.setenv(memory.PACKAGE_ENV, "1")
    assert memory.configure_from_env(net) is not net
    monkeypatch.setenv(memory.MIRROR_ENV, "0")
    monkeypatch.setenv(memory.MEMORY_OPT_ENV, "0")  # restored afterwards, like the line above
    memory.enable_mirroring()
    assert os.environ[memory.MIRROR_ENV] == "1" and memory.mirroring_enabled()
    memory.enable_mirroring(False)
    assert not memory.mirroring_enabled()


def test_export_from_training_run(tmp_path, capsys):
    """--params inside a run directory: model, options and data set come from its config.json; a
    checkpoint.zip works as well as model.params."""
    run = tmp_path / "run"
    run.mkdir()
    net = get_model("cifar_resnet20_v2", classes=10, shortcut="conv1x1")
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    randomize(net)
    net.save_parameters(str(run / "model.params"))
    with zipfile.ZipFile(run / "checkpoint.zip", "w") as archive:
        archive.write(run / "model.params", "net.params")
    (run / "config.json").write_text(
        json.dumps({"model": "cifar_resnet20_v2", "dataset": "synthetic", "model_kwargs": {"shortcut": "conv1x1"}})
    )
    for params in ("model.params", "checkpoint.zip"):
        out = str(tmp_path / params.split(".")[0])
        assert cli.main(["export", "--params", str(run / params), "--out", out]) == 0, capsys.readouterr().err
        pre = Preprocess.load(out + "-preprocess.json")
        assert pre.dataset == "synthetic" and pre.input_shape == (3, 32, 32) and len(pre.classes) == 10
        x = np.random.default_rng(6).standard_normal((2, 3, 32, 32)).astype(np.float32)
        np.testing.assert_allclose(Predictor(out).logits(x), net(mx.nd.array(x)).asnumpy(), rtol=1e-5, atol=1e-5)


def test_symbolic_trainer_matches_gluon_step():
    """SymbolicTrainer (MXNet's executor, where MXNET_BACKWARD_DO_MIRROR applies) takes the same SGD step
    as gluon.Trainer and writes it into the Gluon network's own arrays."""
    shape = (4, 3, 8, 8)
    x = mx.nd.array(np.random.default_rng(7).standard_normal(shape))
    y = mx.nd.array([0, 1, 2, 3])
    after = []
    start = None  # the first network's initial weights, given to the second
    for engine in ("gluon", "symbolic"):
        net = tiny(input_shape=shape)
        if start is not None:
            for (_, mine), (_, first) in zip(net.collect_params().items(), start.items()):
                mine.set_data(first)
        else:
            start = {n: p.data().copy() for n, p in net.collect_params().items()}
        if engine == "gluon":
            trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})
            with autograd.record():
                loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
            loss.backward()
            trainer.step(shape[0])
            value = float(loss.mean().asscalar())
        else:
            value = SymbolicTrainer(net, shape, "sgd", {"learning_rate": 0.1})(x, y)
        after.append((value, [p.data().asnumpy() for p in net.collect_params().values()]))
    (l0, p0), (l1, p1) = after
    assert abs(l0 - l1) < 1e-4
    for a, b in zip(p0, p1):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
