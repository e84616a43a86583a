"""The manual says what the code does: the statements a new user acts on first (default data set, run
length, make bench, the inputs predict accepts, what export needs), read from the pages that hold them.
The measured figures are checked by tests/test_docs_facts.py."""

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
    guide = _read("docs", "guides", "training.md")
    assert f"`--dataset {DEFAULT_DATASET}` (the default data set of the command and of Python's `train()`" in guide
    assert TrainConfig().dataset == DEFAULT_DATASET
    assert "Without `--iterations` or `--epochs` it is as long as the paper's: **64k iterations**" in guide
    assert recipe_for(DEFAULT_DATASET).iterations == recipe_for("cifar10").iterations == 64000
    assert recipe_for("imagenet").epochs == 90 and "90 epochs on ImageNet" in guide
    assert f"`OUT/{MODEL_NAME}` (the final weights" in guide
    assert "as long as the paper's (64k iterations)" in _read("README.md")


def test_make_bench_is_described_as_the_makefile_runs_it():
    makefile = _read("Makefile")
    command = re.search(r"bench: install (\S+) scripts/bench.py (.*?) clean:", makefile).group(2)
    out = re.search(r"--out (\S+)", command).group(1)
    assert "--modes" not in command  # the default modes, as the guide says
    guide = _read("docs", "guides", "benchmark.md")
    assert f"`make bench`: `{out}/bench.csv`" in guide and f"into {out}/" in guide

    modes = build_parser().parse_args(["bench", "--out", "x"]).modes
    modes = modes.split(",") if isinstance(modes, str) else modes
    assert "bf16" not in modes and "(all of the above but bf16)" in guide


def test_make_docs_is_part_of_make_test():
    makefile = _read("Makefile")
    assert re.search(r"test: install [^\n]*? docs \$\(PY\) -m pytest", makefile)
    assert "sphinx-build -q -W --keep-going -n -b html docs docs/_build/html" in makefile
    assert "docs/_build/" in _read(".gitignore")


def test_deployment_guide_array_claims():
    """The shapes the deployment guide names as refused are refused, as accepted are read as it says."""
    text = _read("docs", "guides", "deployment.md")
    assert "say (4, 12, 12) for an RGB 12x12 export" in text and "(e.g. (12, 12, 5) or 5-D)" in text
    for shape in ((4, 12, 12), (12, 12, 5), (1, 2, 12, 12, 3)):
        with pytest.raises(ValueError, match="layouts accepted|expected"):
            array_images(np.ones(shape, np.uint8), "x.npy", (3, 12, 12))
    assert "(N, H, W) grey images whose H, W are the export's" in text
    assert len(array_images(np.ones((4, 12, 12), np.uint8), "x.npy", (1, 12, 12))) == 4


def test_npy_batch_rule_names_h_and_w_wherever_predict_inputs_are_described():
    """An (N, H, W) array is a batch only when H, W are the export's: the guide and predict's own help say so
    (issue 20), and the code agrees: (4, 12, 10) for a 1x12x12 export is not four images."""
    guide = _read("docs", "guides", "deployment.md")
    assert "whose H, W differ from the export's is refused as ambiguous unless N is 1 or the export's channel" in guide
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    description = " ".join(sub.choices["predict"].description.split())
    assert "(N, H, W)" in description and "the export's H, W" in description
    with pytest.raises(ValueError, match="export's"):
        array_images(np.ones((4, 12, 10), np.uint8), "x.npy", (1, 12, 12))
    assert len(array_images(np.ones((1, 12, 10), np.uint8), "x.npy", (1, 12, 12))) == 1


def test_export_dataset_needs_the_data_on_disk():
    guide = _read("docs", "guides", "deployment.md")
    assert "`--dataset cifar10` reads CIFAR-10 itself" in guide and "nothing is downloaded" in guide
    args = build_parser().parse_args(
        ["export", "--params", "p", "--out", "o", "--dataset", "cifar10", "--data-dir", "d"]
    )
    assert args.dataset == "cifar10" and args.data_dir == "d"
