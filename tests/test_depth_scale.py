"""The depth scale of ``reproduce`` (gluon_resnetv2.experiments): the paper's own networks on Fashion-MNIST
averaged down (the ``image_size`` data option), per-table settings, the spread row's seeds, the list."""

import numpy as np
import pytest

from gluon_resnetv2 import experiments as E
from gluon_resnetv2 import paper_results as P
from gluon_resnetv2.cli import main
from gluon_resnetv2.data import load_dataset
from gluon_resnetv2.data.base import check_image_size, downsample, pad_for
from gluon_resnetv2.experiments import scheduler


def test_depth_scale_keeps_every_network_at_its_paper_depth():
    for table, setting in E.DEPTH_SETTINGS.items():
        experiments = E.get_experiments(table, "depth")
        assert [e.key for e in experiments] == [r.key for r in P.get_table(table) if r.dataset == "cifar10"]
        for exp in experiments:
            assert exp.model == exp.paper.model and exp.model_kwargs == exp.paper.model_kwargs
            assert (exp.dataset, exp.dataset_options) == ("fashion-mnist", {"image_size": setting.image_size})
            assert (exp.iterations, exp.warmup) == (setting.iterations, setting.warmup)
            assert exp.batch_size == 128 and exp.eval_subset == 2000
            assert exp.eval_interval == setting.iterations // 10
            assert exp.seeds() == (E.DEPTH_SPREAD_SEEDS if exp.key == setting.spread_row else 1)
            config = exp.config("/tmp/never").resolved()
            assert (config.lr, config.momentum, config.wd, config.warmup_lr) == (0.1, 0.9, 1e-4, 0.01)
            assert config.dataset_options == {"image_size": setting.image_size}
    assert "resnet1001_v2" in [e.key for e in E.get_experiments("table3", "depth")]


def test_depth_scale_overrides_plan_and_errors():
    exp = E.experiment_for(P.get_row("table1", "dropout"), "depth", iterations=300, image_size=8)
    assert (exp.iterations, exp.dataset_options, exp.eval_interval) == (300, {"image_size": 8}, 30)
    jobs, _ = scheduler._plan(E.get_experiments("table1", "depth", rows="original,conv1x1"), 1, "o")
    assert [(e.key, seed) for e, seed, _ in jobs] == [("original", 0), ("original", 1), ("original", 2), ("conv1x1", 0)]
    with pytest.raises(ValueError, match="no depth setting"):
        E.get_experiments("table4", "depth")
    with pytest.raises(ValueError, match="runs none of the selected rows"):
        E.get_experiments("table3", "depth", rows="resnet164_v1_cifar100")


def test_depth_list_shows_network_resolution_iterations_and_paper(capsys):
    assert main(["reproduce", "table3", "--scale", "depth", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(line for line in lines if line.startswith("resnet1001_v1 "))
    assert " 7.61 " in line and "cifar_resnet1001_v1 on fashion-mnist 8x8, 800 it x 128" in line
    row = next(line for line in lines if line.startswith("resnet1001_v1_cifar100"))
    assert "not run at this scale (cifar100 row)" in row
    assert main(["reproduce", "table1", "--scale", "depth", "--image-size", "12", "--list"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("original "))
    assert "cifar_resnet110_v1[shortcut=identity] on fashion-mnist 12x12, 1200 it x 128, 3 seeds" in line


def test_bad_image_size_is_refused_before_any_run_even_by_list(capsys):
    # --list and --slurm never load the data, so the experiment itself checks the option.
    for size in ("1", "29"):
        assert main(["reproduce", "table1", "--scale", "depth", "--image-size", size, "--list"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].endswith(f"--image-size: image_size must be an integer from 2 to the images' own 28, got {size}")
    with pytest.raises(SystemExit):  # not a size at all: the parser refuses it
        main(["reproduce", "table1", "--scale", "depth", "--image-size", "0", "--list"])
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .endswith("argument --image-size: expected an integer >= 1, got '0'")
    )
    with pytest.raises(ValueError, match="data set cifar10 takes no image size"):
        E.experiment_for(P.get_row("table1", "original"), "quick", dataset="cifar10", image_size=8)
    exp = E.experiment_for(P.get_row("table1", "original"), "quick", dataset="Fashion_MNIST", image_size=14)
    assert exp.dataset_options == {"image_size": 14}


def test_downsample_averages_blocks_and_scales_the_padding():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28, 1), dtype=np.uint8)
    small = downsample(images, 14)
    expected = images[..., 0].reshape(5, 14, 2, 14, 2).astype(np.float64).mean(axis=(2, 4))
    assert small.dtype == np.uint8 and small.shape == (5, 14, 14, 1)
    assert np.abs(small[..., 0].astype(np.float64) - expected).max() <= 0.5
    assert downsample(images, 28) is images
    assert downsample(images, 7).shape == (5, 7, 7, 1)
    assert [pad_for(s) for s in (32, 28, 16, 8, 4)] == [4, 4, 2, 1, 1]
    for bad in (1, 29, 2.5, "x"):
        with pytest.raises(ValueError, match="image_size must be an integer"):
            check_image_size(bad, 28)


def test_fashion_mnist_image_size_option():
    train = load_dataset("fashion-mnist", split="train", image_size=8)
    test = load_dataset("fashion-mnist", split="test", image_size=8)
    full = load_dataset("fashion-mnist", split="test")
    assert train.image_shape == test.image_shape == (1, 8, 8) and train.pad == 1
    assert np.array_equal(test.mean, train.mean) and np.array_equal(test.std, train.std)
    assert not np.array_equal(test.std, full.std)  # statistics of the images the network sees
    assert np.array_equal(test.labels, full.labels)
    with pytest.raises(ValueError, match="image_size must be an integer from 2 to the images' own 28"):
        load_dataset("fashion-mnist", split="test", image_size=64)
