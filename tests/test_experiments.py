"""The paper's tables as experiment suites (gluon_resnetv2.paper_results, gluon_resnetv2.experiments).

End to end on a tiny table (2 rows of Table 1, a few iterations, synthetic data): the report, the skip
of finished rows, the resume of a killed row, the figure; plus the paper's numbers, the row selection,
the median over seeds and the errors people see.
"""

import dataclasses
import json
import math
import os
import subprocess
import sys
import time

import pytest

from gluon_resnetv2 import cpu
from gluon_resnetv2 import experiments as E
from gluon_resnetv2 import paper_results as P
from gluon_resnetv2.cli import main
from gluon_resnetv2.experiments import scheduler, state
from gluon_resnetv2.experiments.report import _fmt_loss
from gluon_resnetv2.nets.zoo import get_spec
from gluon_resnetv2.train.recipe import make_schedule
from gluon_resnetv2.units import ShortcutSpec, get_ordering

TINY = dict(scale="quick", dataset="synthetic", iterations=6, batch_size=16)
ROWS = "original,constant_scaling_0.5_0.5"


# ------------------------------------------------------------------------------------- the paper's numbers

# Every number of paper.md, written out independently of paper_results.py.
PAPER_MD = {
    "table1": {
        "original": 6.61,
        "constant_scaling_0_1": "fail",
        "constant_scaling_0.5_1": "fail",
        "constant_scaling_0.5_0.5": 12.35,
        "exclusive_gating_b0": "fail",
        "exclusive_gating_b-5": "fail",
        "exclusive_gating_b-6": 8.70,
        "exclusive_gating_b-7": 9.81,
        "shortcut_only_gating_b0": 12.86,
        "shortcut_only_gating_b-6": 6.91,
        "conv1x1": 12.22,
        "dropout": "fail",
    },
    "table2": {
        "original_110": 6.61,
        "bn_after_add_110": 8.17,
        "relu_before_add_110": 7.84,
        "relu_preact_110": 6.71,
        "full_preact_110": 6.37,
        "original_164": 5.93,
        "bn_after_add_164": 6.50,
        "relu_before_add_164": 6.14,
        "relu_preact_164": 5.91,
        "full_preact_164": 5.46,
    },
    "table3": {
        "resnet110_1layer_v1": 9.90,
        "resnet110_1layer_v2": 8.91,
        "resnet110_v1": 6.61,
        "resnet110_v2": 6.37,
        "resnet164_v1": 5.93,
        "resnet164_v2": 5.46,
        "resnet1001_v1": 7.61,
        "resnet1001_v2": 4.92,
        "resnet164_v1_cifar100": 25.16,
        "resnet164_v2_cifar100": 24.33,
        "resnet1001_v1_cifar100": 27.82,
        "resnet1001_v2_cifar100": 22.71,
    },
    "table4": {"resnet1001_v2": 4.92, "resnet1001_v2_batch64": 4.62, "resnet1001_v2_cifar100": 22.71},
    "table5": {
        "resnet152_v1": (21.3, 5.5),
        "resnet152_v2": (21.1, 5.5),
        "resnet200_v1": (21.8, 6.0),
        "resnet200_v2": (20.7, 5.3),
        "resnet200_v2_aspect": (20.1, 4.8),
    },
}


def test_paper_numbers_match_paper_md():
    for table, expected in PAPER_MD.items():
        rows = P.get_table(table)
        assert [r.key for r in rows] == list(expected), table
        for row in rows:
            value = expected[row.key]
            if table == "table5":
                assert (row.error, row.top5) == value
            else:
                assert row.error == value, (table, row.key)
                assert row.failed == (value == "fail")


def test_paper_rows_describe_buildable_networks():
    for table in P.TABLES:
        for row in P.get_table(table):
            spec = get_spec(row.model)
            kwargs = dict(row.model_kwargs)
            get_ordering(kwargs.get("activation", spec.activation))
            ShortcutSpec(
                kwargs.get("shortcut", "identity"),
                kwargs.get("shortcut_scale"),
                kwargs.get("residual_scale"),
                kwargs.get("gate_bias"),
                kwargs.get("shortcut_dropout"),
            )
    # Table 2's and Table 3's units are what their rows say.
    assert P.get_row("table2", "bn_after_add_164").model == "cifar_resnet164_v1"
    assert P.get_row("table2", "bn_after_add_164").model_kwargs == {"activation": "bn_after_add"}
    assert get_spec(P.get_row("table3", "resnet110_1layer_v2").model).branch == "single"
    assert P.get_row("table4", "resnet1001_v2_batch64").batch_size == 64


def test_get_table_and_row_errors():
    assert P.get_table(2) is P.TABLE2
    with pytest.raises(ValueError, match="unknown table"):
        P.get_table("table9")
    with pytest.raises(ValueError, match="has no row 'nope'"):
        P.get_row("table1", "nope")


# ------------------------------------------------------------------------------------- experiments


def test_paper_scale_is_the_paper_recipe():
    exp = E.experiment_for(P.get_row("table3", "resnet1001_v2_cifar100"), "paper")
    assert (exp.model, exp.dataset, exp.iterations, exp.batch_size, exp.warmup) == (
        "cifar_resnet1001_v2",
        "cifar100",
        64000,
        128,
        400,
    )
    assert E.experiment_for(P.get_row("table4", "resnet1001_v2_batch64"), "paper").batch_size == 64
    config = exp.config("/tmp/x").resolved()
    assert (config.lr, config.momentum, config.wd, config.warmup_lr) == (0.1, 0.9, 1e-4, 0.01)


def test_table4_batch64_is_the_authors_readme_run():
    """-batchSize 64 -nEpochs 200 on CIFAR-10's 50,000 images, lr /10 after 80 and 121 epochs (fb.resnet.torch
    train.lua: from 1-based epoch 81 and 122), Nesterov momentum, no warm-up; written out here by hand."""
    row = P.get_row("table4", "resnet1001_v2_batch64")
    assert row.recipe is P.AUTHORS_README_BATCH64 and "resnet-1k-layers" in row.recipe.source
    exp = E.experiment_for(row, "paper")
    per_epoch = 50000 // 64  # the trainer drops the last, incomplete batch of an epoch
    assert (exp.batch_size, exp.iterations, exp.warmup, exp.optimizer) == (64, 200 * per_epoch, 0, "nag")
    assert exp.iterations == 156200 and tuple(exp.lr_steps) == (80 * 781, 121 * 781)
    config = exp.config("/tmp/x").resolved()
    assert (config.optimizer, config.lr, config.momentum, config.wd, config.warmup) == ("nag", 0.1, 0.9, 1e-4, 0)
    schedule = make_schedule(config, per_epoch)
    assert schedule.milestones == (62480, 94501) and schedule.total == 156200
    assert schedule(0) == 0.1 and schedule(80 * 781 - 1) == 0.1 and schedule(80 * 781) == pytest.approx(0.01)
    assert schedule(121 * 781) == pytest.approx(0.001) and schedule(156199) == pytest.approx(0.001)
    # an explicit --iterations keeps the milestones where they are in the run (80/200 and 121/200 of it)
    short = E.experiment_for(row, "paper", iterations=2000)
    assert (short.iterations, tuple(short.lr_steps), short.optimizer) == (2000, (800, 1210), "nag")
    # the other rows, and every row at quick scale, keep the paper's recipe
    for other in ("resnet1001_v2", "resnet1001_v2_cifar100"):
        paper_exp = E.experiment_for(P.get_row("table4", other), "paper")
        assert (paper_exp.iterations, paper_exp.warmup, paper_exp.optimizer, paper_exp.lr_steps) == (
            64000,
            400,
            "sgd",
            None,
        )
    quick = E.experiment_for(row, "quick")
    assert (quick.optimizer, quick.lr_steps, quick.batch_size) == ("sgd", None, 64)
    # an Experiment round-trips through the JSON of a --parallel child
    assert E.Experiment.from_dict(json.loads(json.dumps(exp.to_dict()))).config("/tmp/x") == exp.config("/tmp/x")


def test_table4_list_says_where_each_recipe_comes_from(capsys):
    assert main(["reproduce", "table4", "--list", "--scale", "paper"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("resnet1001_v2_batch64"))
    assert "authors' README" in line and "156200 it x 64" in line and "62480/94501" in line and "nag" in line
    assert "64000 it x 128" in next(line for line in out.splitlines() if line.startswith("resnet1001_v2 "))
    assert "Where each row's recipe comes from" in out
    assert "KaimingHe/resnet-1k-layers README: -batchSize 64 -nEpochs 200" in out
    assert "the paper, Sec. 4 and Appendix" in out


def test_report_names_the_rows_with_their_own_recipe(tmp_path):
    text = open(E.write_report(str(tmp_path), E.get_experiments("table4", "paper"))).read()
    assert (
        "Rows with their own recipe: resnet1001_v2_batch64: 156200 iterations of mini-batch 64, lr /10 at "
        "iterations 62480, 94501, warm-up 0, optimizer nag (KaimingHe/resnet-1k-layers README"
    ) in text


def test_runs_from_before_the_optimizer_setting_are_the_same_run(tmp_path):
    exp = E.experiment_for(P.get_row("table3", "resnet110_v2"), **TINY)
    run_dir = str(tmp_path / "r")
    os.makedirs(run_dir)
    old = exp.config(run_dir).to_dict()
    del old["optimizer"]  # a config.json written before --optimizer existed
    (tmp_path / "r" / "config.json").write_text(json.dumps(old))
    state._check_same_run(run_dir, exp.config(run_dir))
    nag = dataclasses.replace(exp, optimizer="nag")
    with pytest.raises(ValueError, match="optimizer: 'sgd' there, 'nag' now"):
        state._check_same_run(run_dir, nag.config(run_dir))


def test_quick_scale_shrinks_every_network():
    for table in E.RUNNABLE_TABLES:
        for exp in E.get_experiments(table, "quick"):
            spec, paper_spec = get_spec(exp.model), get_spec(exp.paper.model)
            assert spec.branch == paper_spec.branch and spec.activation == paper_spec.activation
            assert spec.depth < paper_spec.depth
            assert (exp.dataset, exp.iterations) == ("fashion-mnist", E.QUICK_ITERATIONS)
            assert exp.batch_size == (exp.paper.batch_size or 128)  # Table 4 keeps its mini-batch of 64
    assert (
        get_spec(E.experiment_for(P.get_row("table3", "resnet1001_v1"), "quick").model).depth
        > get_spec(E.experiment_for(P.get_row("table3", "resnet164_v1"), "quick").model).depth
    )


def test_rows_that_are_one_run_share_it():
    experiments = E.get_experiments("table3", **TINY)
    jobs, alias = scheduler._plan(experiments, seeds=2, out="o")
    assert alias == {
        "resnet164_v1_cifar100": "resnet164_v1",
        "resnet164_v2_cifar100": "resnet164_v2",
        "resnet1001_v1_cifar100": "resnet1001_v1",
        "resnet1001_v2_cifar100": "resnet1001_v2",
    }
    assert len(jobs) == 2 * 8
    assert jobs[1][2] == os.path.join("o", "resnet110_1layer_v1", "seed1")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: E.select_rows("table1", "original,nope"), "no row"),
        (lambda: E.select_rows("table1", "original,original"), "twice"),
        (lambda: E.get_experiments("table5"), "reference only"),
        (lambda: E.get_experiments("table1", scale="huge"), "unknown scale"),
        (lambda: E.run_table("table1", "/tmp/never", seeds=0), "seeds=0: expected an integer >= 1"),
        (lambda: E.run_table("table1", "/tmp/never", threads=0), "threads=0: expected an integer >= 1"),
        (lambda: E.run_table("table1", "/tmp/never", seeds=float("nan")), "seeds=nan"),
        (lambda: E.run_table("table1", "/tmp/never", rows=""), "rows: expected a comma-separated list of names"),
        (lambda: E.run_table("table1", "/tmp/never", rows=[]), r"rows=\[\]: expected at least one name"),
        (lambda: E.run_table("table1", "/tmp/never", parallel=2, gpus="0"), "--parallel 2 needs"),
    ],
)
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_list_command_prints_every_row_with_its_paper_number(capsys):
    assert main(["reproduce", "table1", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for row in P.TABLE1:
        line = next(line for line in lines if line.split()[:1] == [row.key])
        assert f" {row.error_text} " in line
        assert "cifar_resnet20_v1" in line and "fashion-mnist" in line
    assert main(["reproduce", "table2", "--rows", "nope", "--list"]) == 2
    assert "no row(s) 'nope'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- the report


def _fake_run(run_dir, status, test_error=None, iteration=6):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "status.json"), "w") as handle:
        json.dump({"status": status, "test_error": test_error, "iteration": iteration, "elapsed": 3.0}, handle)
    with open(os.path.join(run_dir, "log.csv"), "w") as handle:
        handle.write("iteration,epoch,lr,train_loss,train_error,test_loss,test_error,time\n")
        handle.write(f"{iteration},1,0.1,1.0,0.5,1.0,{test_error if test_error is not None else ''},3.0\n")


def test_report_median_of_seeds_and_fail(tmp_path):
    experiments = E.get_experiments("table1", rows=ROWS, **TINY)
    out = str(tmp_path)
    for seed, error in enumerate((0.10, 0.30, 0.12)):
        _fake_run(E.run_dir_of(out, "original", seed), "finished", error)
    _fake_run(E.run_dir_of(out, "constant_scaling_0.5_0.5", 0), "finished", 0.25)
    _fake_run(E.run_dir_of(out, "constant_scaling_0.5_0.5", 1), "failed")  # diverged: an infinite error
    _fake_run(E.run_dir_of(out, "constant_scaling_0.5_0.5", 2), "failed")
    rows = E.parse_report(E.write_report(out, experiments, seeds=3))
    assert [r["row"] for r in rows] == ["original", "constant_scaling_0.5_0.5"]
    original, scaled = rows
    assert original["our error %"].startswith("12.00 (median of 10.00, 30.00, 12.00)")
    assert original["difference"] == "+5.39" and original["result"] == "ok"
    assert scaled["our error %"].startswith("diverged")
    assert scaled["difference"] == "" and scaled["result"] == "fail (diverged in 2 of 3)"
    assert original["paper error %"] == "6.61" and scaled["paper error %"] == "12.35"


def test_run_state_sees_a_live_run_elsewhere(tmp_path):
    run_dir = str(tmp_path / "r")
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "status.json"), "w") as handle:
        json.dump({"status": "running", "pid": os.getppid()}, handle)
    assert E.run_state(run_dir) == "running"
    with open(os.path.join(run_dir, "status.json"), "w") as handle:
        json.dump({"status": "running", "pid": 2**22 + 12345}, handle)  # no such process: it was killed
    assert E.run_state(run_dir) == "restart"


# ------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_tiny_table_end_to_end_and_skip(tmp_path):
    out = str(tmp_path / "t1")
    path = E.run_table("table1", out, rows=ROWS, log=lambda _: None, **TINY)
    rows = E.parse_report(path)
    assert [r["row"] for r in rows] == ["original", "constant_scaling_0.5_0.5"]
    for report_row in rows:
        paper_row = P.get_row("table1", report_row["row"])
        with open(os.path.join(out, report_row["row"], "seed0", "status.json")) as handle:
            status = json.load(handle)
        assert status["status"] == "finished"
        ours = 100 * status["test_error"]
        assert report_row["paper error %"] == paper_row.error_text
        assert float(report_row["our error %"]) == pytest.approx(ours, abs=0.006)
        assert float(report_row["difference"]) == pytest.approx(ours - paper_row.error, abs=0.011)
        assert report_row["iterations"] == "6"
        assert report_row["result"] == ("fail" if ours > 20 else "ok")
        assert "cifar_resnet20_v1" in report_row["run"] and "synthetic" in report_row["run"]
    figure = os.path.join(out, "figures", "table1_constant_scaling.png")
    with open(figure, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    text = open(path).read()
    assert "NOT comparable" in text and "figures/table1_constant_scaling.png" in text
    report = json.load(open(os.path.join(out, "report.json")))
    for report_row, record in zip(rows, report["rows"]):
        assert record["row"] == report_row["row"] and record["iterations"] == 6
        assert record["test_error"] == pytest.approx(float(report_row["our error %"]), abs=0.006)
        assert record["train_loss_final"] == pytest.approx(float(report_row["train loss (final)"]), abs=6e-4)
    assert report["agreement"]["rows_compared"] == 2

    # Again: both rows are skipped, nothing is retrained.
    log_mtime = os.path.getmtime(os.path.join(out, "original", "seed0", "log.csv"))
    E.run_table("table1", out, rows=ROWS, log=lambda _: None, **TINY)
    assert [a["mode"] for a in E.attempts(os.path.join(out, "original", "seed0"))] == ["train", "skip"]
    assert os.path.getmtime(os.path.join(out, "original", "seed0", "log.csv")) == log_mtime
    # Other settings in the same directory are refused rather than mixed.
    with pytest.raises(ValueError, match="other settings"):
        E.run_table(
            "table1",
            out,
            rows="original",
            scale="quick",
            dataset="synthetic",
            iterations=7,
            batch_size=16,
            log=lambda _: None,
        )


@pytest.mark.slow
def test_killed_row_is_resumed(tmp_path):
    out = str(tmp_path / "k")
    run_dir = os.path.join(out, "original", "seed0")
    argv = [
        sys.executable,
        "-m",
        "gluon_resnetv2.cli",
        "reproduce",
        "table1",
        "--rows",
        "original",
        "--dataset",
        "synthetic",
        "--iterations",
        "400",
        "--batch-size",
        "4",
        "--out",
        out,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not os.path.isfile(os.path.join(run_dir, "checkpoint.zip")):
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
    finally:
        proc.kill()  # SIGKILL: status.json still says 'running', as after a crash
        proc.wait()
    assert json.load(open(os.path.join(run_dir, "status.json")))["status"] == "running"
    assert E.run_state(run_dir) == "resumable"

    E.run_table(
        "table1",
        out,
        rows="original",
        scale="quick",
        dataset="synthetic",
        iterations=400,
        batch_size=4,
        log=lambda _: None,
    )
    modes = E.attempts(run_dir)
    assert [a["mode"] for a in modes] == ["train", "resume"]
    assert 0 < modes[1]["iteration"] < 400
    status = json.load(open(os.path.join(run_dir, "status.json")))
    assert status["status"] == "finished" and status["iteration"] == 400
    iterations = [
        int(line.split(",")[0]) for line in open(os.path.join(run_dir, "log.csv")).read().split("\n")[1:] if line
    ]
    assert iterations == sorted(set(iterations)) and iterations[-1] == 400  # one continuous log
    assert E.parse_report(os.path.join(out, "report.md"))[0]["iterations"] == "400"


@pytest.mark.slow
def test_parallel_rows_in_child_processes(tmp_path):
    out = str(tmp_path / "p")
    E.run_table("table1", out, rows=ROWS, parallel=2, threads=2, log=lambda _: None, **TINY)
    for key in ROWS.split(","):
        status = json.load(open(os.path.join(out, key, "seed0", "status.json")))
        assert status["status"] == "finished" and status["iteration"] == 6
        assert math.isfinite(status["test_error"])
    assert len(E.parse_report(os.path.join(out, "report.md"))) == 2


@pytest.mark.slow  # about 5 s: a child process per row
def test_threads_are_honoured_one_row_at_a_time(tmp_path):
    # MXNet fixes its thread count when it loads, so a row on other threads than this process's runs in a
    # child process with --parallel 1 too, and its config.json records the count it trained on.
    threads = cpu.in_use()["threads"] + 1
    out = str(tmp_path / "t")
    E.run_table("table1", out, rows="original", threads=threads, log=lambda _: None, **TINY)
    with open(os.path.join(out, "original", "seed0", "config.json"), encoding="utf-8") as handle:
        assert json.load(handle)["omp_threads"] == threads
    assert json.load(open(os.path.join(out, "original", "seed0", "status.json")))["status"] == "finished"


def test_report_loss_column_is_readable_for_exploded_losses():
    assert _fmt_loss(0.6150844) == "0.615"
    assert _fmt_loss(7145219016666667.0) == "7.15e+15"
    assert _fmt_loss(math.inf) == "diverged"
    assert _fmt_loss(None) == ""


def test_the_report_describes_the_runs_that_were_made_not_the_scale(tmp_path):
    """Issue 20 point 13: --dataset synthetic --iterations 4 is not "Fashion-MNIST, 400 iterations"."""
    experiments = E.get_experiments("table1", "quick", rows="original", dataset="synthetic", iterations=4)
    text = open(E.write_report(str(tmp_path), experiments)).read()
    opening = text.split("\n\n")[1]
    assert "Fashion-MNIST, 400 iterations" not in text
    assert opening.startswith("**Scale `quick`: these numbers are NOT comparable to the paper's.** Its networks")
    assert "data set synthetic instead of the scale's fashion-mnist" in opening
    assert "iterations 4 instead of the scale's 400" in opening
    paper = E.get_experiments("table1", "paper", rows="original", iterations=4)
    opening = open(E.write_report(str(tmp_path), paper)).read().split("\n\n")[1]
    assert "NOT comparable" in opening and "iterations 4 instead of the scale's 64000" in opening
    plain = open(E.write_report(str(tmp_path), E.get_experiments("table1", "quick", rows="original"))).read()
    assert "Fashion-MNIST, 400 iterations of mini-batch 128" in plain.split("\n\n")[1]
