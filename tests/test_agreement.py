"""Agreement with the paper (gluon_resnetv2.agreement): ranks with ties, Spearman's rho checked by hand,
the fail count, the training-loss figures, and report.json / the report's agreement section."""

import json
import math
import os

import pytest

from gluon_resnetv2 import agreement as A
from gluon_resnetv2 import experiments as E

INF = math.inf


def test_average_ranks_share_ties_and_rank_inf_last():
    assert A.average_ranks([3, 1, 4, 1, 5]) == [3, 1.5, 4, 1.5, 5]
    assert A.average_ranks([INF, 2.0, INF, 1.0]) == [3.5, 2, 3.5, 1]


def test_spearman_by_hand_with_tied_fail_rows():
    # Paper: 6.61, fail, fail, 12.35 -> ranks 1, 3.5, 3.5, 2; ours 10, 30, 25, 12 -> ranks 1, 4, 3, 2.
    # Deviations from the mean rank 2.5: (-1.5, 1, 1, -0.5) and (-1.5, 1.5, 0.5, -0.5):
    # rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9).
    assert A.spearman([6.61, INF, INF, 12.35], [10, 30, 25, 12]) == pytest.approx(math.sqrt(0.9), abs=1e-12)
    assert A.spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    assert A.spearman([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert A.spearman([1, 2], [5, 5]) is None  # one side has a single rank
    assert A.spearman([1], [2]) is None
    with pytest.raises(ValueError, match="one length"):
        A.spearman([1, 2], [1])


def test_fails_found_counts_paper_fails_among_our_worst():
    # k = 3 fails; our three worst are inf, 40 and 30: rows 1 and 2 are found, row 4 (8 %) is not.
    assert A.fails_found([False, True, True, False, True], [5, 30, INF, 40, 8]) == (2, 3)
    # A tie at the boundary counts for the paper; None and NaN are the worst (a diverged run).
    assert A.fails_found([True, False, False], [10, 10, 5]) == (1, 1)
    assert A.fails_found([True, False], [None, 50]) == (1, 1)
    assert A.fails_found([False, False], [1, 2]) == (None, 0)


def test_loss_figures_final_tenth_and_whole_run():
    log = {
        "iteration": [10.0 * i for i in range(1, 11)] + [100.0],
        "train_loss": [float(i) for i in range(1, 11)] + [math.nan],
    }  # last row: an evaluation row
    assert A.loss_figures(log, 100) == (10.0, 5.5)
    longer = {"iteration": [10.0 * i for i in range(1, 21)], "train_loss": [float(i) for i in range(1, 21)]}
    assert A.loss_figures(longer, 200) == (19.5, 10.5)  # the rows after iteration 180: 190 and 200
    assert A.loss_figures(log, 100, diverged=True) == (INF, INF)
    assert A.loss_figures({"iteration": [1.0], "train_loss": [math.nan]}, 10) == (None, None)


def test_table_agreement_spread_and_missing_rows():
    records = [
        dict(paper_error=6.61, paper_fail=False, test_error=10.0, train_loss_final=0.3),
        dict(paper_error=None, paper_fail=True, test_error=INF, train_loss_final=INF),
        dict(paper_error=12.35, paper_fail=False, test_error=12.0, train_loss_final=0.5),
        dict(paper_error=None, paper_fail=True, test_error=None, train_loss_final=None),
    ]  # not run yet
    result = A.table_agreement(records, spread_errors=[10.0, 11.0, 12.0])
    assert result["rows_compared"] == 3
    assert result["spearman_test_error"] == pytest.approx(1.0)
    assert result["spearman_train_loss"] == pytest.approx(1.0)
    assert (result["fails_found"], result["fails_total"]) == (1, 1)
    assert result["seed_spread_test_error"] == pytest.approx(1.0)
    assert A.table_agreement(records[:1])["seed_spread_test_error"] is None


def _fake_run(run_dir, status, test_error, losses, iterations):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "status.json"), "w") as handle:
        json.dump({"status": status, "test_error": test_error, "iteration": iterations, "elapsed": 7.5}, handle)
    with open(os.path.join(run_dir, "log.csv"), "w") as handle:
        handle.write("iteration,epoch,lr,train_loss,train_error,test_loss,test_error,time\n")
        step = iterations // len(losses)
        for i, loss in enumerate(losses, start=1):
            handle.write(f"{i * step},0.1,0.1,{loss},0.5,,,{i}\n")
        handle.write(f"{iterations},0.1,0.1,,,1.0,{test_error if test_error is not None else ''},9\n")


def test_report_json_and_agreement_section(tmp_path):
    rows = "original,constant_scaling_0_1,constant_scaling_0.5_0.5"
    experiments = E.get_experiments("table1", "depth", rows=rows, iterations=100)
    out = str(tmp_path)
    for seed, error in enumerate((0.10, 0.12, 0.11)):  # the spread row: three seeds at the depth scale
        _fake_run(E.run_dir_of(out, "original", seed), "finished", error, [2.0, 1.0, 0.5, 0.25, 0.2] * 2, 100)
    _fake_run(E.run_dir_of(out, "constant_scaling_0_1", 0), "failed", None, [2.3] * 10, 100)
    _fake_run(E.run_dir_of(out, "constant_scaling_0.5_0.5", 0), "finished", 0.30, [2.0] * 9 + [1.5], 100)
    text = open(E.write_report(out, experiments)).read()
    report = json.load(open(os.path.join(out, "report.json")))
    assert (report["table"], report["scale"]) == ("table1", "depth")
    by_row = {r["row"]: r for r in report["rows"]}
    assert list(by_row) == rows.split(",")
    original = by_row["original"]
    assert (original["paper_error"], original["paper_fail"], original["test_error"]) == (6.61, False, 11.0)
    assert original["train_loss_final"] == pytest.approx(0.2)  # iterations 100 > 90: the last logged loss
    assert original["train_loss_mean"] == pytest.approx(0.79)
    assert (original["iterations"], original["seconds"], original["seeds"]) == (100, 22.5, 3)
    plain = by_row["constant_scaling_0_1"]
    assert plain["paper_fail"] and plain["paper_error"] is None
    assert plain["test_error"] is None and plain["diverged"] and plain["train_loss_final"] is None
    assert by_row["constant_scaling_0.5_0.5"]["train_loss_final"] == pytest.approx(1.5)
    agreement = report["agreement"]
    # Paper 6.61, fail, 12.35 against ours 11, diverged, 30: the same order.
    assert agreement["spearman_test_error"] == pytest.approx(1.0)
    assert agreement["spearman_train_loss"] == pytest.approx(1.0)
    assert (agreement["fails_found"], agreement["fails_total"]) == (1, 1)
    assert agreement["seed_spread_test_error"] == pytest.approx(1.0)
    assert "## Agreement with the paper" in text and "| paper's fail rows among our worst rows" in text
    assert "1.00 points (sample standard deviation of 10.00, 12.00, 11.00 % over 3 seeds of row `original`)" in text
    parsed = {r["row"]: r for r in E.parse_report(os.path.join(out, "report.md"))}
    assert parsed["original"]["train loss (final)"] == "0.200"
    assert parsed["constant_scaling_0_1"]["train loss (final)"] == "diverged"
