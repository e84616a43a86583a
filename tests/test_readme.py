"""README.md and docs/deploy.md say what the code does (the statements a new user acts on first)."""
import os
import re

import numpy as np
import pytest

from gluon_resnetv2.cli import build_parser
from gluon_resnetv2.deploy import array_images
from gluon_resnetv2.train.loop import MODEL_NAME
from gluon_resnetv2.train.recipe import DEFAULT_DATASET, TrainConfig, recipe_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*path):
    with open(os.path.join(ROOT, *path), encoding="utf-8") as handle:
        return " ".join(handle.read().split())  # line breaks do not matter


def test_default_data_set_and_run_length():
    readme = _read("README.md")
    assert f"`--dataset {DEFAULT_DATASET}` (the default data set of the command and of Python's `train()`" in readme
    assert TrainConfig().dataset == DEFAULT_DATASET
    assert "Without `--iterations` or `--epochs` it is as long as the paper's: **64k iterations**" in readme
    assert recipe_for(DEFAULT_DATASET).iterations == recipe_for("cifar10").iterations == 64000
    assert recipe_for("imagenet").epochs == 90 and "90 epochs on ImageNet" in readme
    assert f"`OUT/{MODEL_NAME}` (the final weights" in readme


def test_make_bench_is_described_as_the_makefile_runs_it():
    makefile = _read("Makefile")
    command = re.search(r"bench: install (\S+) scripts/bench.py (.*?) clean:", makefile).group(2)
    out = re.search(r"--out (\S+)", command).group(1)
    assert "--modes" not in command  # the default modes, as the README says
    readme = _read("README.md")
    assert f"`make bench`: `{out}/bench.csv`" in readme and f"into {out}/" in readme

    modes = build_parser().parse_args(["bench", "--out", "x"]).modes.split(",")
    assert "bf16" not in modes and "(all of the above but bf16)" in readme


def test_deploy_md_array_claims():
    """The shapes docs/deploy.md names as refused are refused, as accepted are read as it says."""
    text = _read("docs", "deploy.md")
    assert "say (4, 12, 12) for an RGB 12x12 export" in text and "(e.g. (12, 12, 5) or 5-D)" in text
    for shape in ((4, 12, 12), (12, 12, 5), (1, 2, 12, 12, 3)):
        with pytest.raises(ValueError, match="layouts accepted|expected"):
            array_images(np.ones(shape, np.uint8), "x.npy", (3, 12, 12))
    assert "(N, H, W) grey images whose H, W are the export's" in text
    assert len(array_images(np.ones((4, 12, 12), np.uint8), "x.npy", (1, 12, 12))) == 4
