"""Top-5 error (the paper's Table 5 metric) for data sets of 100 classes or more: log.csv, status.json,
TensorBoard and the reproduce report; a hand computation from the saved network's scores."""

import json
import os

import mxnet as mx
import numpy as np
import pytest
from data_fixtures import write_cifar

from gluon_resnetv2 import cli, get_model, paper_results
from gluon_resnetv2.data import load_dataset, make_loader
from gluon_resnetv2.experiments.report import REPORT_COLUMNS, parse_report, report_columns, write_report
from gluon_resnetv2.experiments.state import run_dir_of
from gluon_resnetv2.experiments.suites import Experiment, get_experiments
from gluon_resnetv2.train import train
from gluon_resnetv2.train.runlog import LOG_COLUMNS, TOP5_COLUMN, read_log_rows, read_status, write_status
from gluon_resnetv2.train.steps import top5_misses
from gluon_resnetv2.train.tensorboard_log import read_scalars


def _hand_top5_error(scores, labels):
    """The fraction of rows whose label is not among the five highest scores (numpy, by sorting)."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    return float(np.mean([label not in row for row, label in zip(top, labels)]))


def test_top5_misses_counts_labels_outside_the_five_highest_scores():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((40, 12)).astype(np.float32)
    labels = rng.integers(0, 12, 40)
    misses = top5_misses(mx.nd.array(scores), mx.nd.array(labels)).asscalar()
    assert misses == round(40 * _hand_top5_error(scores, labels))
    assert 0 < misses < 40


@pytest.mark.slow
def test_top5_error_is_logged_and_equals_a_hand_computation(tmp_path, capsys):
    data = write_cifar(str(tmp_path / "data"), name="cifar100", fmt="binary", n_per_file=96)
    out = str(tmp_path / "run")
    status = train(
        model="cifar_resnet20_v2",
        dataset="cifar100",
        data_dir=data["dir"],
        num_workers=0,
        progress=False,
        batch_size=32,
        iterations=2,
        lr=0.01,
        out=out,
    )
    rows = read_log_rows(out)
    assert list(rows[0]) == list(LOG_COLUMNS) + [TOP5_COLUMN]
    final = rows[-1]
    assert read_status(out)[TOP5_COLUMN] == status[TOP5_COLUMN]
    assert final[TOP5_COLUMN] == pytest.approx(status[TOP5_COLUMN], abs=1e-8)

    # The saved network's scores on the test set, ranked by numpy.
    test_set = load_dataset("cifar100", data_dir=data["dir"], split="test")
    net = get_model("cifar_resnet20_v2", classes=100)
    net.load_parameters(os.path.join(out, "model.params"))
    scores, labels = [], []
    for images, label in make_loader(test_set, 32, train=False, num_workers=0):
        scores.append(net(images).asnumpy())
        labels.append(label.asnumpy())
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    assert len(labels) == 96
    hand = _hand_top5_error(scores, labels)
    assert status[TOP5_COLUMN] == pytest.approx(hand, abs=1e-9)
    top1 = float(np.mean(scores.argmax(axis=1) != labels))
    assert status["test_error"] == pytest.approx(top1, abs=1e-9)
    assert hand < top1  # top-5 is a different, smaller number
    assert read_scalars(out)["test/top5_error"][-1] == (2, pytest.approx(hand, rel=1e-6))

    # predict --top-k 5 on an export of the run: the five highest scores of the same network
    prefix = str(tmp_path / "export" / "net")
    export = [
        "export",
        "--model",
        "cifar_resnet20_v2",
        "--classes",
        "100",
        "--params",
        os.path.join(out, "model.params"),
    ]
    assert cli.main(export + ["--out", prefix, "--dataset", "cifar100", "--data-dir", data["dir"]]) == 0
    np.save(tmp_path / "first.npy", data["test"][0][0])
    capsys.readouterr()
    assert cli.main(["predict", prefix, str(tmp_path / "first.npy"), "--top-k", "5", "--json"]) == 0
    top = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["top_k"]
    assert [entry["index"] for entry in top] == list(np.argsort(-scores[0], kind="stable")[:5])


def test_ten_classes_log_no_top5_column(tmp_path):
    out = str(tmp_path / "run")
    status = train(
        model="cifar_resnet20_v2",
        dataset="synthetic",
        dataset_options={"num_samples": 64, "image_shape": [3, 8, 8]},
        num_workers=0,
        progress=False,
        batch_size=32,
        iterations=1,
        out=out,
    )
    assert TOP5_COLUMN not in status
    assert TOP5_COLUMN not in read_status(out)
    with open(os.path.join(out, "log.csv"), encoding="utf-8") as handle:
        assert handle.readline().strip() == ",".join(LOG_COLUMNS)
    assert "test/top5_error" not in read_scalars(out)
    assert json.loads(open(os.path.join(out, "config.json"), encoding="utf-8").read())["tensorboard"] is True


def _finished_run(run_dir, top1, top5):
    os.makedirs(run_dir)
    write_status(run_dir, "finished", iteration=10, test_error=top1, test_top5_error=top5, elapsed=1.0)


def test_table5_report_compares_top1_and_top5(tmp_path):
    """Table 5 (ImageNet) reports top-1 / top-5 side by side, in report.md and report.json."""
    rows = paper_results.get_table("table5")[:2]
    experiments = [
        Experiment("table5", row.key, "paper", row.model, "imagenet", {}, iterations=10, warmup=0) for row in rows
    ]
    out = str(tmp_path)
    _finished_run(run_dir_of(out, rows[0].key, 0), 0.25, 0.0625)
    _finished_run(run_dir_of(out, rows[1].key, 0), 0.5, 0.125)
    table = parse_report(write_report(out, experiments))
    assert [list(r)[4:9] for r in table][0] == [
        "paper error %",
        "our error %",
        "difference",
        "paper top-5 %",
        "our top-5 %",
    ]
    assert [(r["our error %"], r["paper top-5 %"], r["our top-5 %"]) for r in table] == [
        ("25.00", f"{rows[0].top5:g}", "6.25"),
        ("50.00", f"{rows[1].top5:g}", "12.50"),
    ]
    with open(os.path.join(out, "report.json"), encoding="utf-8") as handle:
        records = json.load(handle)["rows"]
    assert [(r["paper_top5_error"], r["test_top5_error"]) for r in records] == [
        (rows[0].top5, 6.25),
        (rows[1].top5, 12.5),
    ]


def test_tables_without_top5_keep_their_columns():
    assert report_columns(get_experiments("table1", "quick")) == REPORT_COLUMNS
