"""README.md and docs/guides/deployment.md say what the code does (the statements a new user acts on first), and the
README's measured figures are those of the files committed in docs/."""

import json
import os
import re

import numpy as np
import pytest

from gluon_resnetv2.analysis.results import results_from_csv
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
    """The shapes docs/guides/deployment.md names as refused are refused, as accepted are read as it says."""
    text = _read("docs", "guides", "deployment.md")
    assert "say (4, 12, 12) for an RGB 12x12 export" in text and "(e.g. (12, 12, 5) or 5-D)" in text
    for shape in ((4, 12, 12), (12, 12, 5), (1, 2, 12, 12, 3)):
        with pytest.raises(ValueError, match="layouts accepted|expected"):
            array_images(np.ones(shape, np.uint8), "x.npy", (3, 12, 12))
    assert "(N, H, W) grey images whose H, W are the export's" in text
    assert len(array_images(np.ones((4, 12, 12), np.uint8), "x.npy", (1, 12, 12))) == 4


def _raw(*path):
    with open(os.path.join(ROOT, *path), encoding="utf-8") as handle:
        return handle.read()


def test_propagation_tables_quote_the_committed_csv_files():
    """The README's Eqn. 5/8 tables are the summaries of docs/propagation/*/propagation.csv, cell for cell."""
    readme = _raw("README.md")
    section = readme[readme.index("### Results at initialisation") : readme.index("### What the numbers say")]
    pre_activation, original = section.split("On the original unit (Fig. 4(a)")
    for text, kind in ((pre_activation, "v2"), (original, "v1")):
        quoted = {
            m.group(1): m.group(2).split(" | ")
            for m in re.finditer(r"^\| .* \(`([^`]+)`\) \| (.*) \|$", text, re.M)
            if m.group(1) != "--variant"
        }
        expected = {}
        for depth in ("110", "1001"):
            for result in results_from_csv(
                os.path.join(ROOT, "docs", "propagation", f"resnet{depth}_{kind}", "propagation.csv")
            ):
                summary = result.summary()
                expected.setdefault(summary["variant"], []).extend(
                    f"{summary[key]:.3g}" for key in ("ratio_first", "ratio_min", "shortcut_term_unit1")
                )
        assert len(quoted) == 10 and quoted == expected, kind


@pytest.mark.parametrize("table", ["1", "2", "3"])
def test_depth_scale_agreement_quoted_as_report_json_has_it(table):
    with open(os.path.join(ROOT, "docs", "reproduce", f"table{table}-depth", "report.json"), encoding="utf-8") as f:
        agreement = json.load(f)["agreement"]
    readme = _read("README.md")
    start = readme.index(f"**Measured: Table {table} at depth scale**")
    paragraph = re.split(r"\*\*(?:Measured: |Figure 1 at)", readme[start + 2 :])[0]
    assert f"Spearman {agreement['spearman_test_error']:.2f}" in paragraph
    assert f"{agreement['spearman_train_loss']:.2f}" in paragraph
    if agreement["fails_total"]:
        assert f"{agreement['fails_found']} of the paper's {agreement['fails_total']} fail rows" in paragraph
