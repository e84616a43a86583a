"""``--optimizer {sgd,nag}``: Nesterov momentum (the authors' Torch code) as MXNet's ``nag`` computes it,
recorded in config.json, resumed with its momentum state, refused when unknown."""

import json

import mxnet as mx
import numpy as np
import pytest
from data_fixtures import tiny_run
from mxnet import gluon

from gluon_resnetv2.cli import main
from gluon_resnetv2.train import TrainConfig, resume, steps, train
from gluon_resnetv2.train import checkpoint as ckpt
from gluon_resnetv2.train.runlog import read_log_rows

LR, MOMENTUM, WD = 0.1, 0.9, 1e-4
TINY = tiny_run(64, epochs=2, log_interval=1, lr_schedule="constant")


def _steps(trainer_of, grads):
    """Weights of a 3-parameter block after one trainer step per gradient in ``grads``."""
    block = gluon.nn.Dense(1, in_units=2, use_bias=False)
    block.initialize(mx.init.Constant(0.5))
    trainer = trainer_of(block.collect_params())
    weight = block.weight
    for grad in grads:
        with mx.autograd.record():
            loss = (block(mx.nd.ones((1, 2))) * 0).sum()
        loss.backward()
        weight.grad()[:] = grad
        trainer.step(1)
    return weight.data().asnumpy().astype(np.float64)


def _reference(grads, nesterov):
    """Momentum SGD as MXNet's sgd_mom_update, and Nesterov momentum as Torch's optim.sgd with
    ``nesterov = true`` (fb.resnet.torch): d = g + wd w, v = m v + d, w -= lr (d + m v)."""
    w, state = np.full((1, 2), 0.5), np.zeros((1, 2))
    for grad in grads:
        d = grad + WD * w
        if nesterov:
            state = MOMENTUM * state + d
            w = w - LR * (d + MOMENTUM * state)
        else:
            state = MOMENTUM * state - LR * d
            w = w + state
    return w


def test_nag_makes_mxnet_nesterov_update():
    grads = [np.array([[1.0, -2.0]]), np.array([[0.5, 0.25]]), np.array([[-1.0, 3.0]])]
    config = TrainConfig(dataset="cifar10", optimizer="nag").resolved()
    assert (config.lr, config.momentum, config.wd) == (LR, MOMENTUM, WD)
    ours = _steps(lambda params: steps.make_trainer(params, config), grads)
    mxnet_nag = _steps(
        lambda params: gluon.Trainer(params, mx.optimizer.NAG(learning_rate=LR, momentum=MOMENTUM, wd=WD)), grads
    )
    np.testing.assert_allclose(ours, mxnet_nag, rtol=1e-6)
    # MXNet's kernel updates the weight in place and then reads the new weight for the momentum's decay
    # term: a difference of order lr * wd * |dw| (1e-5 here) from Torch's formula, nothing more.
    np.testing.assert_allclose(ours, _reference(grads, nesterov=True), atol=2e-5)
    plain = _steps(lambda params: steps.make_trainer(params, TrainConfig(dataset="cifar10").resolved()), grads)
    np.testing.assert_allclose(plain, _reference(grads, nesterov=False), rtol=1e-5)
    assert np.abs(ours - plain).max() > 1e-3  # the update really changes


def test_nag_is_recorded_and_survives_a_resume(tmp_path, monkeypatch):
    full = train(TrainConfig(out=str(tmp_path / "full"), optimizer="nag", **TINY))
    assert full["status"] == "finished"
    assert json.loads((tmp_path / "full" / "config.json").read_text())["optimizer"] == "nag"

    # Interrupt a second run right after its first checkpoint (end of epoch 1), then resume it.
    save = ckpt.save_checkpoint

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_stop)
    cut = str(tmp_path / "cut")
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out=cut, optimizer="nag", **TINY))
    monkeypatch.setattr(ckpt, "save_checkpoint", save)
    assert len(read_log_rows(cut)) == 2
    assert resume(cut)["status"] == "finished"

    a, b = read_log_rows(str(tmp_path / "full")), read_log_rows(cut)
    assert [r["iteration"] for r in a] == [r["iteration"] for r in b] == [1, 2, 3, 4]
    for row_a, row_b in zip(a, b):
        assert row_b["train_loss"] == pytest.approx(row_a["train_loss"], rel=1e-6, abs=1e-7)
        assert row_b["test_error"] == row_a["test_error"]
    # the same run with plain momentum takes another path after its first update
    train(TrainConfig(out=str(tmp_path / "sgd"), **TINY))
    sgd = read_log_rows(str(tmp_path / "sgd"))
    assert sgd[0]["train_loss"] == pytest.approx(a[0]["train_loss"], rel=1e-6)
    assert sgd[1]["train_loss"] != pytest.approx(a[1]["train_loss"], rel=1e-6)


def test_cli_optimizer_option(capsys, tmp_path):
    base = [
        "train",
        "--model",
        "cifar_resnet20_v2",
        "--dataset",
        "synthetic",
        "--data-option",
        "num_samples=32",
        "--data-option",
        "image_shape=[3,8,8]",
        "--batch-size",
        "16",
        "--iterations",
        "1",
        "--num-workers",
        "0",
        "--no-progress",
    ]
    assert main(base + ["--out", str(tmp_path / "nag"), "--optimizer", "nag"]) == 0
    assert json.loads((tmp_path / "nag" / "config.json").read_text())["optimizer"] == "nag"
    with pytest.raises(SystemExit) as info:
        main(base + ["--out", str(tmp_path / "adam"), "--optimizer", "adam"])
    assert info.value.code == 2 and "invalid choice: 'adam'" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nag"), "--optimizer", "sgd"]) == 2
    assert "do not combine it with --optimizer" in capsys.readouterr().err
    with pytest.raises(ValueError, match="optimizer='adam': expected one of sgd, nag"):
        TrainConfig(optimizer="adam").resolved()


def test_config_without_optimizer_is_an_sgd_run(tmp_path):
    # config.json files written before --optimizer existed resume as the plain-momentum runs they were
    data = TrainConfig().to_dict()
    del data["optimizer"]
    assert TrainConfig.from_dict(data).resolved().optimizer == "sgd"
