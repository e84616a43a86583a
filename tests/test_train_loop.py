"""The training loop: multi-device gradients, evaluation of uneven batches, logs, status, divergence."""

import json
import os

import mxnet as mx
import numpy as np
import pytest
from data_fixtures import tiny_run
from mxnet import gluon

from gluon_resnetv2 import cpu, get_model
from gluon_resnetv2.data import load_dataset, make_loader
from gluon_resnetv2.train import TrainConfig, resume, train
from gluon_resnetv2.train.devices import make_contexts
from gluon_resnetv2.train.loop import evaluate, forward_backward
from gluon_resnetv2.train.runlog import LOG_COLUMNS, read_log_rows, read_status

TINY = tiny_run()


def _dense_net(ctxs, seed=0):
    mx.random.seed(seed)
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(8, activation="relu"), gluon.nn.Dense(4))
    net.initialize(mx.init.Xavier(), ctx=ctxs)
    net(mx.nd.zeros((1, 6), ctx=ctxs[0]))
    return net


def test_two_cpu_contexts_make_the_same_update_as_one():
    """Global batch split over 2 contexts, gradients summed, divided by the global batch (rescale 1/B)."""
    rng = np.random.RandomState(0)
    data, label = mx.nd.array(rng.randn(10, 6)), mx.nd.array(rng.randint(0, 4, 10))
    weights = []
    for ctxs in ([mx.cpu(0)], make_contexts(cpus=2)):
        net = _dense_net(ctxs)
        trainer = gluon.Trainer(
            net.collect_params(),
            "sgd",
            {"learning_rate": 0.5, "momentum": 0.0, "wd": 0.0},
            kvstore="device",
            update_on_kvstore=False,
        )
        forward_backward(net, gluon.loss.SoftmaxCrossEntropyLoss(), data, label, ctxs)
        trainer.step(10)
        params = [p.list_data() for p in net.collect_params().values()]
        for copies in params:  # every context holds the same weights
            for copy in copies[1:]:
                assert np.allclose(copy.asnumpy(), copies[0].asnumpy())
        weights.append([copies[0].asnumpy() for copies in params])
    for single, split in zip(*weights):
        np.testing.assert_allclose(single, split, rtol=1e-5, atol=1e-6)


def test_resnet_gradient_over_two_contexts_is_the_sum_of_the_halves():
    """With BatchNorm each device normalises its own slice (paper: 2 GPUs x 64): the aggregated gradient
    equals the sum of the gradients of the two halves computed one after the other on one context."""

    rng = np.random.RandomState(1)
    data, label = mx.nd.array(rng.randn(6, 3, 8, 8)), mx.nd.array(rng.randint(0, 10, 6))
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    ctxs = make_contexts(cpus=2)
    mx.random.seed(0)
    net = get_model("cifar_resnet20_v2", classes=10)
    net.initialize(ctx=ctxs)
    net(mx.nd.zeros((1, 3, 8, 8), ctx=ctxs[0]))
    trainer = gluon.Trainer(
        net.collect_params(), "sgd", {"learning_rate": 0.1}, kvstore="device", update_on_kvstore=False
    )
    forward_backward(net, loss_fn, data, label, ctxs)
    trainer.allreduce_grads()
    name, param = next((n, p) for n, p in net.collect_params().items() if p.grad_req != "null")
    split_grad = param.list_grad()[0].asnumpy()
    assert np.allclose(split_grad, param.list_grad()[1].asnumpy())

    mx.random.seed(0)
    ref = get_model("cifar_resnet20_v2", classes=10)
    ref.initialize(ctx=mx.cpu(0))
    ref(mx.nd.zeros((1, 3, 8, 8)))
    ref_param = ref.collect_params()[name.replace(net.prefix, ref.prefix, 1)]
    total = 0
    for half in (slice(0, 3), slice(3, 6)):
        forward_backward(ref, loss_fn, data[half], label[half], [mx.cpu(0)])
        total = total + ref_param.grad().asnumpy()
    np.testing.assert_allclose(split_grad, total, rtol=1e-4, atol=1e-6)


def test_evaluate_handles_a_last_batch_smaller_than_the_devices():
    ctxs = make_contexts(cpus=4)
    net = _dense_net(ctxs)
    ds = load_dataset("synthetic", split="test", num_samples=9, num_classes=4, image_shape=(6, 1, 1))
    loader = make_loader(ds, 4, train=False, num_workers=0)  # batches of 4, 4, 1
    loss, error = evaluate(net, loader, ctxs)
    ref_loss, ref_error = evaluate(net, make_loader(ds, 9, train=False, num_workers=0), [ctxs[0]])
    assert loss == pytest.approx(ref_loss, rel=1e-5) and error == pytest.approx(ref_error)


def test_run_writes_log_config_status_and_checkpoint(tmp_path):
    out = str(tmp_path / "run")
    status = train(TrainConfig(out=out, epochs=2, log_interval=2, cpus=2, seed=1, **TINY))
    assert status["status"] == "finished"
    with open(os.path.join(out, "log.csv")) as handle:
        assert (
            handle.readline().strip()
            == ",".join(LOG_COLUMNS)
            == "iteration,epoch,lr,train_loss,train_error,test_loss,test_error,time"
        )
    rows = read_log_rows(out)
    # 96 images / 32 = 3 iterations per epoch; training rows every 2 and at the end, tests every epoch
    assert [r["iteration"] for r in rows] == [2, 3, 4, 6]
    assert [r["train_loss"] is not None for r in rows] == [True, False, True, True]
    assert [r["test_error"] is not None for r in rows] == [False, True, False, True]
    assert rows[1]["epoch"] == 1.0 and rows[-1]["lr"] == pytest.approx(0.001)
    assert all(0 <= r["train_error"] <= 1 for r in rows if r["train_error"] is not None)
    final = read_status(out)
    assert final["status"] == "finished" and final["iteration"] == 6
    assert final["test_error"] == pytest.approx(rows[-1]["test_error"])
    assert final["paper_fail"] == (final["test_error"] > 0.2)
    with open(os.path.join(out, "config.json")) as handle:
        config = json.load(handle)
    assert config["model"] == "cifar_resnet20_v2" and config["cpus"] == 2 and config["lr"] == 0.1
    assert config["momentum"] == 0.9 and config["wd"] == 1e-4
    assert config["omp_threads"] == int(os.environ["OMP_NUM_THREADS"]) == 1  # conftest: 1 thread per process
    assert {"checkpoint.zip", "model.params"} <= set(os.listdir(out))
    with pytest.raises(ValueError, match="--resume"):
        train(TrainConfig(out=out, epochs=2, **TINY))


def test_resume_on_other_threads_warns_that_it_will_not_be_bit_identical(tmp_path):
    out = str(tmp_path / "r")
    train(
        model="cifar_resnet20_v2",
        dataset="synthetic",
        dataset_options=dict(num_samples=64, image_shape=[3, 8, 8]),
        batch_size=16,
        iterations=4,
        checkpoint_interval=2,
        num_workers=0,
        out=out,
        progress=False,
    )
    path = os.path.join(out, "config.json")
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    assert data["omp_threads"] == cpu.in_use()["threads"]
    data["omp_threads"] += 1  # as if it had been trained on another thread count
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    with pytest.warns(UserWarning, match=rf"but it was trained on {data['omp_threads']}: .* not be bit-identical"):
        assert resume(out)["status"] == "finished"


def test_divergence_stops_cleanly(tmp_path):
    out = str(tmp_path / "diverge")
    status = train(TrainConfig(out=out, iterations=30, lr=1e12, log_interval=1, seed=0, **TINY))
    assert status["status"] == "failed"
    saved = read_status(out)
    assert saved["status"] == "failed" and "diverged" in saved["reason"]
    assert 1 <= saved["iteration"] < 30 and saved["iteration"] == status["iteration"]
    rows = read_log_rows(out)
    assert rows and rows[-1]["iteration"] == saved["iteration"]
    assert not np.isfinite(rows[-1]["train_loss"])


def test_recomputation_switch_trains_the_same_run(tmp_path, monkeypatch):
    """GLUON_RESNETV2_MIRROR=1 (memory at depth) recomputes segments in the backward pass: same log."""
    logs = []
    for mirror in (False, True):
        if mirror:
            monkeypatch.setenv("GLUON_RESNETV2_MIRROR", "1")
        out = str(tmp_path / f"mirror{int(mirror)}")
        status = train(TrainConfig(out=out, iterations=4, log_interval=1, seed=3, **TINY))
        assert status["status"] == "finished"
        logs.append(read_log_rows(out))
    plain, mirrored = logs
    assert len(plain) == len(mirrored) >= 4
    for a, b in zip(plain, mirrored):
        for column in ("train_loss", "test_loss"):
            if a[column] not in ("", None):
                np.testing.assert_allclose(float(b[column]), float(a[column]), rtol=1e-4)
