"""``--dtype float16`` runs write float32 parameters (issue 18, point 1): the multi-precision SGD master
weights, which ``export``, ``predict`` and ``get_model`` load like any other run's, and which resume into
the float16 network bit for bit.

MXNet has no float16 convolution on the CPU ("FP16 gemm on cpu not implemented"), so the float16 network
is stepped with given gradients: multi-precision SGD's update runs on the CPU like on a GPU.
"""

import json
import os
import types

import mxnet as mx
import numpy as np
import pytest

from gluon_resnetv2 import get_model
from gluon_resnetv2.cli import main
from gluon_resnetv2.deploy import Predictor
from gluon_resnetv2.train import checkpoint as ckpt
from gluon_resnetv2.train.build import MODEL_NAME, RunSetup
from gluon_resnetv2.train.steps import make_trainer, materialize

MODEL, SHAPE = "cifar_resnet20_v2", (3, 8, 8)
RECIPE = types.SimpleNamespace(lr=0.5, momentum=0.9, wd=1e-4, optimizer="sgd", dtype="float16")


def _float16_run(contexts, steps=2, seed=0):
    """A float16 network and its trainer after ``steps`` updates with random gradients."""
    mx.random.seed(seed)
    net = get_model(MODEL, classes=10)
    net.initialize(ctx=contexts)
    net.cast("float16")
    net.hybridize(static_alloc=True)
    materialize(net, SHAPE, contexts[0], "float16")
    trainer = make_trainer(net.collect_params(), RECIPE, kvstore="device")
    rng = np.random.RandomState(seed)
    for _ in range(steps):
        for param in net.collect_params().values():
            if param.grad_req == "null":
                continue
            grad = rng.randn(*param.shape).astype(param.dtype)
            for data, g in zip(param.list_data(), param.list_grad()):
                g[:] = grad
                data._fresh_grad = True  # as a backward pass would mark it
        trainer.step(1)
    return net, trainer


def _masters(net, trainer):
    states = trainer._updaters[0].states
    # multi-precision SGD's state of a float16 weight: (momentum, float32 master weight)
    return {p.name: states[i][1].asnumpy() for i, p in enumerate(trainer._params) if np.dtype(p.dtype) == np.float16}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished float16 "run": model.params written by the run's own code, its config.json."""
    out = str(tmp_path_factory.mktemp("fp16"))
    net, trainer = _float16_run([mx.cpu(0), mx.cpu(1)])
    RunSetup._save_model(
        types.SimpleNamespace(net=net, trainer=trainer, out=out, is_chief=True, distributed=False, ema=None)
    )
    with open(os.path.join(out, "config.json"), "w", encoding="utf-8") as handle:
        json.dump({"model": MODEL, "dataset": "cifar10", "classes": 10, "dtype": "float16"}, handle)
    return out, _masters(net, trainer), net


def test_model_params_are_the_float32_master_weights(run_dir):
    out, masters, net16 = run_dir
    loaded = mx.nd.load(os.path.join(out, MODEL_NAME))
    assert {v.dtype for v in loaded.values()} == {np.float32}  # before: float16 weights
    plain = get_model(MODEL, classes=10)
    plain.load_parameters(os.path.join(out, MODEL_NAME))  # a float32 network loads it
    params = plain.collect_params()
    differ = 0
    for name, master in masters.items():
        value = params[name.replace(net16.prefix, plain.prefix, 1)].data().asnumpy()
        np.testing.assert_array_equal(value, master)
        differ += not np.array_equal(value, value.astype(np.float16).astype(np.float32))
    assert len(masters) == 23 and differ > 10  # the masters carry more than the float16 weights


def test_float16_run_exports_and_predicts(run_dir, tmp_path, capsys):
    out, masters, _ = run_dir
    prefix = str(tmp_path / "export" / "r20")
    argv = ["export", "--params", out, "--out", prefix, "--mean", "120,115,100", "--std", "60,60,60"]
    argv += ["--dataset", "synthetic", "--input-shape", "1,3,8,8", "--classes", "10"]
    assert main(argv) == 0, capsys.readouterr().err
    plain = get_model(MODEL, classes=10)
    plain.load_parameters(os.path.join(out, MODEL_NAME))
    x = np.random.RandomState(1).randn(2, *SHAPE).astype(np.float32)
    predictor = Predictor(prefix, device="cpu", batch_size=2)
    np.testing.assert_allclose(predictor.logits(x), plain(mx.nd.array(x)).asnumpy(), rtol=1e-5, atol=1e-5)


def test_float16_checkpoint_exports_and_resumes_bit_for_bit(tmp_path):
    out = str(tmp_path)
    net, trainer = _float16_run([mx.cpu(2), mx.cpu(3)], seed=3)
    ckpt.save_checkpoint(out, net, trainer, {"iteration": 2})
    plain = get_model(MODEL, classes=10)
    plain.load_parameters(_extract(out, tmp_path))  # the checkpoint's net.params: float32 too
    # resume into a float16 network on one device: the same float16 weights, the same masters and momenta
    again, trainer2 = _float16_run([mx.cpu(4)], steps=0, seed=9)
    ckpt.load_checkpoint(out, again, trainer2, [mx.cpu(4)])
    for a, b in zip(net.collect_params().values(), again.collect_params().values()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a.list_data()[0].asnumpy(), b.data().asnumpy())
    saved, loaded = trainer._updaters[0].states, trainer2._updaters[0].states
    assert saved.keys() == loaded.keys()
    for index, state in saved.items():
        for x, y in zip(
            state if isinstance(state, tuple) else (state,),
            loaded[index] if isinstance(loaded[index], tuple) else (loaded[index],),
        ):
            np.testing.assert_array_equal(x.asnumpy(), y.asnumpy())
            assert y.context == mx.cpu(4)


def _extract(out, tmp_path):
    import zipfile

    with zipfile.ZipFile(ckpt.checkpoint_path(out)) as archive:
        return archive.extract("net.params", str(tmp_path / "x"))


def test_float16_overflow_is_skipped_over_mixed_dtypes():
    """A float16 network's gradients are float16 (convolutions) and float32 (BatchNorm): the overflow check
    of MXNet's LossScaler fails on the mix; the run's scaler checks both and skips the step."""
    net, trainer = _float16_run([mx.cpu(0)], steps=1)
    before = [p.data().asnumpy() for p in net.collect_params().values()]
    for param in net.collect_params().values():
        if param.grad_req != "null":
            param.grad()[:] = 0
            param.data()._fresh_grad = True
    conv = next(p for p in net.collect_params().values() if np.dtype(p.dtype) == np.float16)
    conv.grad().reshape((-1,))[0] = np.inf  # float16 overflow
    trainer.step(1)
    scaler = trainer._amp_loss_scaler
    assert scaler.last_overflow and scaler.loss_scale == 2.0**15
    for a, p in zip(before, net.collect_params().values()):
        np.testing.assert_array_equal(a, p.data().asnumpy())


def test_a_float16_file_from_before_exports_with_a_cast(tmp_path, capsys):
    """model.params written in float16 (by runs before this fix) is cast on loading by export."""
    net, _ = _float16_run([mx.cpu(0)], steps=0)
    path = str(tmp_path / "old.params")
    net.save_parameters(path)
    assert np.float16 in {v.dtype for v in mx.nd.load(path).values()}
    argv = ["export", "--model", MODEL, "--classes", "10", "--params", path, "--out", str(tmp_path / "e")]
    argv += ["--mean", "0", "--std", "1", "--input-shape", "1,3,8,8"]
    assert main(argv) == 0, capsys.readouterr().err
