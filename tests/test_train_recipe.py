"""The paper's recipe (Sec. 3.1 / Appendix) and the learning-rate schedules, at their boundaries."""

import math

import pytest

from gluon_resnetv2.train.recipe import (
    CIFAR_RECIPE,
    IMAGENET_RECIPE,
    LRSchedule,
    TrainConfig,
    make_schedule,
    recipe_for,
    total_iterations,
)


def test_cifar_recipe_is_the_papers():
    r = CIFAR_RECIPE
    assert (r.lr, r.momentum, r.wd, r.batch_size, r.iterations) == (0.1, 0.9, 1e-4, 128, 64000)
    assert (r.warmup, r.warmup_lr, r.lr_factor) == (400, 0.01, 0.1)
    assert recipe_for("cifar100") is CIFAR_RECIPE
    assert (IMAGENET_RECIPE.batch_size, IMAGENET_RECIPE.epochs) == (256, 90)


def test_paper_step_schedule_boundaries():
    cfg = TrainConfig(dataset="cifar10").resolved()
    sched = make_schedule(cfg, iterations_per_epoch=390)
    assert total_iterations(cfg, 390) == 64000
    assert sched.milestones == (32000, 48000)
    # warm-up: 0.01 for the first 400 iterations, then back to 0.1
    assert sched(0) == 0.01 and sched(399) == 0.01
    assert sched(400) == 0.1 and sched(31999) == 0.1
    assert sched(32000) == pytest.approx(0.01) and sched(47999) == pytest.approx(0.01)
    assert sched(48000) == pytest.approx(0.001) and sched(63999) == pytest.approx(0.001)


def test_warmup_can_be_disabled_and_fractions_scale_with_epochs():
    cfg = TrainConfig(dataset="cifar10", epochs=4, warmup=0).resolved()
    sched = make_schedule(cfg, iterations_per_epoch=100)
    assert sched.milestones == (200, 300)
    assert sched(0) == 0.1 and sched(199) == 0.1 and sched(200) == pytest.approx(0.01)


def test_explicit_steps_in_the_runs_unit():
    by_epoch = TrainConfig(dataset="imagenet", epochs=90, lr_steps=[30, 60]).resolved()
    assert make_schedule(by_epoch, 1000).milestones == (30000, 60000)
    by_iter = TrainConfig(dataset="cifar10", iterations=1000, lr_steps=[500, 750]).resolved()
    assert make_schedule(by_iter, 7).milestones == (500, 750)


def test_cosine_schedule():
    sched = LRSchedule("cosine", 0.1, total_iterations=1000)
    assert sched(0) == pytest.approx(0.1)
    assert sched(500) == pytest.approx(0.05)
    assert sched(1000) == pytest.approx(0.0, abs=1e-12)
    warm = LRSchedule("cosine", 0.1, total_iterations=1100, warmup=100, warmup_lr=0.01)
    assert warm(99) == 0.01 and warm(100) == pytest.approx(0.1)
    assert warm(600) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_constant_schedule_and_unknown():
    assert LRSchedule("constant", 0.3, 10)(9) == 0.3
    with pytest.raises(ValueError, match="unknown lr schedule"):
        LRSchedule("linear", 0.1, 10)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dataset="mnist"), "unknown dataset"),
        (dict(epochs=1, iterations=10), "either --epochs or --iterations"),
        (dict(cpus=2, gpus=[0]), "either --cpus or --gpus"),
        (dict(batch_size=0), "batch_size=0: expected an integer >= 1"),
        (dict(lr_schedule="poly"), "lr_schedule='poly': expected one of step, cosine, constant"),
        (dict(dtype="int8"), "dtype='int8': expected one of float32"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs).resolved()


def test_config_round_trip(tmp_path):
    cfg = TrainConfig(
        model="cifar_resnet110_v1", dataset="cifar10", model_kwargs={"shortcut": "exclusive_gating", "gate_bias": -6.0}
    )
    cfg.save(tmp_path / "config.json")
    back = TrainConfig.load(tmp_path / "config.json")
    assert back == cfg
    assert cfg.to_dict()["shortcut"] == "exclusive_gating"  # flat copy for the plots' labels
