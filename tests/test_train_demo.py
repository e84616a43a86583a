"""The demo (``make demo``): its time budget arithmetic, and (slow) a miniature end-to-end run."""

import json
import os

import pytest

from gluon_resnetv2 import demo
from gluon_resnetv2.demo import (
    DEFAULT_PAIR,
    MAX_EPOCHS,
    MIN_EPOCHS,
    PAIRS,
    demo_config,
    epochs_for_budget,
    get_pair,
    loss_gap,
    main,
)

FMNIST = "/usr/share/datasets/fashion-mnist"


def test_epochs_fit_the_budget():
    # 630 s at 150 images/s per process: about 1.45 epochs; faster machines get more, capped at 2
    assert epochs_for_budget(630, 150) == pytest.approx(1.45, abs=0.05)
    assert epochs_for_budget(630, 10_000) == MAX_EPOCHS
    assert epochs_for_budget(630, 10) == MIN_EPOCHS
    epochs = [epochs_for_budget(630, s) for s in (50, 100, 150, 200)]
    assert epochs == sorted(epochs)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.isfile(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")),
    reason="Fashion-MNIST not installed (make dataset)",
)
def test_demo_end_to_end(tmp_path, capsys):
    assert (
        main(
            [
                "--out",
                str(tmp_path),
                "--pair",
                "resnet20",
                "--epochs",
                "1",
                "--train-subset",
                "512",
                "--log-interval",
                "1",
                "--eval-interval",
                "2",
                "--eval-subset",
                "64",
            ]
        )
        == 0
    )
    assert os.path.getsize(tmp_path / "figure1.png") > 10_000
    out = capsys.readouterr().out
    assert "figure1.png" in out and "original ResNet-20 (v1)" in out and "pre-activation ResNet-20 (v2)" in out
    for model in ("cifar_resnet20_v1", "cifar_resnet20_v2"):
        with open(tmp_path / "runs" / model / "status.json") as handle:
            assert json.load(handle)["status"] == "finished"


def test_demo_pairs_configure_the_depth_recipe(tmp_path):
    assert DEFAULT_PAIR in PAIRS
    deep = get_pair("resnet1001-8")
    (original, _), (preact, _) = deep.models
    assert (original, preact) == ("cifar_resnet1001_v1", "cifar_resnet1001_v2")
    config = demo_config(original, "o", str(tmp_path), pair=deep).resolved()
    assert (config.dataset_options, config.batch_size, config.iterations) == ({"image_size": 8}, 64, deep.iterations)
    assert (config.lr_schedule, config.lr, config.warmup, config.warmup_lr) == ("step", 0.1, deep.warmup, 0.01)
    assert demo_config(original, "o", str(tmp_path), pair=deep, iterations=7).iterations == 7
    small = demo_config("cifar_resnet20_v1", "o", str(tmp_path), epochs=1.5, pair="resnet20")
    assert (small.lr_schedule, small.epochs, small.augment, small.dataset_options) == ("cosine", 1.5, False, {})
    with pytest.raises(ValueError, match="--pair 'nope': choose one of"):
        get_pair("nope")


def test_loss_gap_reads_both_runs(tmp_path):
    pair = get_pair("resnet164-16")
    for (model, _), losses in zip(pair.models, ([2.3, 2.3], [1.0, 0.5])):
        run = tmp_path / "runs" / model
        run.mkdir(parents=True)
        (run / "log.csv").write_text(
            "iteration,epoch,lr,train_loss,train_error,test_loss,test_error,time\n"
            + "".join(f"{10 * (i + 1)},0.1,0.1,{x},0.5,,,1\n" for i, x in enumerate(losses))
        )
    assert loss_gap(str(tmp_path), pair) == (pytest.approx(2.3), pytest.approx(0.75))
    assert loss_gap(str(tmp_path / "elsewhere"), pair) is None


def test_threads_are_shared_by_physical_core(monkeypatch):
    # Hyper-threads share a core's vector units: a 4-core, 8-thread machine gives each of the two networks
    # 2 threads, not 4.
    monkeypatch.setattr(demo.cpu, "physical_cores", lambda: 4)
    monkeypatch.setattr(demo.os, "cpu_count", lambda: 8)
    assert (demo._threads(parallel=True), demo._threads(parallel=False)) == (2, 4)
    monkeypatch.setattr(demo.cpu, "physical_cores", lambda: 1)
    assert demo._threads(parallel=True) == 1
