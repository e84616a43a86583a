"""``train`` with what a new user types: the default data set, nonsense values, unwritable outputs, a full
disk, the progress bar of a short run and the summary of a resumed one."""

import errno
import json
import os
import signal

import pytest
from data_fixtures import tiny_train_argv

from gluon_resnetv2 import cli, fileio
from gluon_resnetv2.commands.train import config_from_args
from gluon_resnetv2.train import TrainConfig
from gluon_resnetv2.train import checkpoint as ckpt
from gluon_resnetv2.train.recipe import DEFAULT_DATASET
from gluon_resnetv2.train.runlog import read_status

# 32 images / batch 8: 4 iterations per epoch; the test split has 32 images too.
BASE = tiny_train_argv()


def _error(capsys, argv, prog="train"):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gluon-resnetv2 {prog}: error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err


def _with(extra, replace=None):
    args = list(BASE)
    for option, value in (replace or {}).items():
        args[args.index(option) + 1] = value
    return args + extra


# -- point 9: Fashion-MNIST is the default; synthetic runs say what they are ------------------------------


def test_fashion_mnist_is_the_default_data_set_of_python_and_cli():
    assert DEFAULT_DATASET == "fashion-mnist" and TrainConfig().dataset == DEFAULT_DATASET
    args = cli.build_parser().parse_args(["train", "--model", "cifar_resnet20_v2", "--out", "x"])
    assert config_from_args(args).dataset == "fashion-mnist"


def test_a_synthetic_run_says_so_in_its_summary_and_status(capsys, tmp_path):
    out = str(tmp_path / "run")
    assert cli.main([a for a in BASE if a != "--no-progress"] + ["--out", out]) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.startswith("finished cifar_resnet20_v2 on synthetic data (random images, not a real data set")
    status = read_status(out)
    assert status["synthetic"] is True and status["dataset"] == "synthetic" and "not a real data set" in status["note"]


def test_the_bar_says_that_it_evaluates_with_the_count_reached(capsys, tmp_path):
    """Issue 20 point 13: during the final full-test-set evaluation the bar shows 4/4 and says so."""
    argv = [a for a in BASE if a != "--no-progress"] + ["--out", str(tmp_path / "run")]
    argv[argv.index("--iterations") + 1] = "4"
    assert cli.main(argv) == 0
    frames = capsys.readouterr().err.replace("\n", "\r").split("\r")
    evaluating = [f for f in frames if "evaluating on the full test set" in f]
    assert evaluating and "4/4" in evaluating[-1], frames


# -- points 12, 13: options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, replace, message",
    [
        (
            ["--data-option", "foo=1"],
            None,
            "unknown option(s) foo for data set synthetic (--data-option KEY=VALUE); "
            "it takes num_samples, num_classes, image_shape",
        ),
        (["--eval-subset", "33"], None, "--eval-subset 33 is larger than the 32 test images of synthetic: give 1..32"),
        (
            ["--lr-steps", "5"],
            {"--iterations": "4"},
            "--lr-steps 5 reach beyond the run: milestones must be below its 4 iterations",
        ),
        (["--lr-steps", "2,5"], {"--iterations": "4"}, "reach beyond the run"),
        (
            ["--lr-steps", "2", "--lr-schedule", "cosine"],
            {"--iterations": "4"},
            "--lr-steps are the milestones of --lr-schedule step; cosine has none",
        ),
    ],
)
def test_nonsense_values_are_refused_with_the_valid_range(capsys, tmp_path, extra, replace, message):
    err = _error(capsys, _with(extra + ["--out", str(tmp_path / "run")], replace))
    assert message in err
    assert not os.path.exists(tmp_path / "run" / "checkpoint.zip")


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--eval-subset", "0", "an integer >= 1"),
        ("--momentum", "2", "a finite number in [0, 1)"),
        ("--wd", "-1", "a finite number >= 0"),
        ("--lr", "0", "a finite number > 0"),
        ("--lr", "-0.1", "a finite number > 0"),
        ("--checkpoint-interval", "0", "an integer >= 1"),
    ],
)
def test_out_of_range_values_are_refused_by_the_parser(capsys, tmp_path, option, value, expected):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(_with([f"{option}={value}", "--out", str(tmp_path / "run")]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"gluon-resnetv2 train: error: argument {option}: expected {expected}, got {value!r}"
    assert not os.path.exists(tmp_path / "run")


def test_epoch_lr_steps_beyond_the_run(capsys, tmp_path):
    args = _with(["--lr-steps", "3", "--out", str(tmp_path / "r")])
    args[args.index("--iterations") : args.index("--iterations") + 2] = ["--epochs", "2"]
    assert "milestones must be below its 2 epochs" in _error(capsys, args)


def test_an_uneven_split_over_devices_says_how_it_is_split(capsys, tmp_path):
    assert cli.main(_with(["--cpus", "3", "--out", str(tmp_path / "run")])) == 0
    assert (
        "gluon-resnetv2 train: warning: --batch-size 8 does not split evenly over 3 devices: each iteration is "
        "split 3+3+2 images"
    ) in capsys.readouterr().err


def test_launch_errors_name_the_command_not_a_list(capsys):
    err = _error(capsys, ["launch", "-n", "1", "--", "no-such-program-xyz"], prog="launch")
    assert "'no-such-program-xyz' is not a program found on PATH" in err and "[" not in err.split(":")[0]


# -- point 10: unwritable or missing outputs, a full disk -------------------------------------------------


def test_an_output_directory_that_cannot_be_made_is_one_line(capsys, tmp_path):
    (tmp_path / "file").write_text("a file where a directory should be")
    out = tmp_path / "file" / "run"
    assert _error(capsys, _with(["--out", str(out)])).strip() == f"gluon-resnetv2 train: error: {out}: Not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_output_directory_is_one_line(capsys, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert "Permission denied" in _error(capsys, _with(["--out", str(out)]))
    finally:
        out.chmod(0o755)


def test_a_full_disk_keeps_the_last_good_checkpoint(capsys, tmp_path, monkeypatch):
    """The second checkpoint cannot be written (ENOSPC at fsync): one line naming it; the first one stays."""
    out = str(tmp_path / "run")
    real_fsync, writes = os.fsync, []

    def fsync(fd):
        if ".checkpoint.zip." in os.readlink(f"/proc/self/fd/{fd}"):
            writes.append(fd)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    err = _error(capsys, _with(["--checkpoint-interval", "1", "--out", out], {"--iterations": "3"}))
    assert err.strip() == f"gluon-resnetv2 train: error: {os.path.join(out, 'checkpoint.zip')}: No space left on device"
    assert ckpt.read_checkpoint_state(out)["iteration"] == 1
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]
    assert read_status(out)["status"] == "error"


@pytest.mark.parametrize(
    "command",
    [
        lambda out: ["plot", "RUN", "-o", os.path.join(out, "fig.png")],
        lambda out: ["analyze", "--model", "cifar_resnet20_v2", "--out", out],
        lambda out: ["reproduce", "table2", "--rows", "original_110", "--out", out],
    ],
)
def test_other_commands_report_unwritable_outputs_in_one_line(capsys, tmp_path, command):
    run = str(tmp_path / "run")
    assert cli.main(BASE + ["--out", run]) == 0
    capsys.readouterr()
    (tmp_path / "file").write_text("not a directory")
    argv = [run if a == "RUN" else a for a in command(str(tmp_path / "file" / "sub"))]
    err = _error(capsys, argv, prog=argv[0])
    assert str(tmp_path / "file") in err


# -- point 16: progress of a short run, the summary after a resume, file modes ----------------------------


def test_the_progress_bar_counts_to_the_run_not_the_epoch(capsys, tmp_path):
    argv = [a for a in _with(["--out", str(tmp_path / "r")], {"--iterations": "3"}) if a != "--no-progress"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "3/3" in err and "/4" not in err


def test_the_progress_bar_shows_the_logged_training_loss(tmp_path, monkeypatch):
    """The bar's loss is the mean of the last log interval read (the sums stay on the device between reads),
    never the 0.000 of an interval just reset."""
    from gluon_resnetv2.train import loop

    shown = []

    class Bar:
        def __init__(self, *args, **kwargs):
            pass

        def set_postfix(self, loss=None, **kwargs):
            shown.append(loss)

        def __getattr__(self, name):  # update, refresh, close, set_postfix_str: nothing to record
            return lambda *args, **kwargs: None

    monkeypatch.setattr(loop, "tqdm", Bar)
    out = tmp_path / "r"
    argv = _with(["--out", str(out), "--log-interval", "2"], {"--iterations": "5"})
    assert cli.main([a for a in argv if a != "--no-progress"]) == 0
    rows = [line.split(",") for line in (out / "log.csv").read_text().splitlines()]
    assert rows[0][3] == "train_loss"
    logged = {int(row[0]): f"{float(row[3]):.3f}" for row in rows[1:] if row[3]}
    # iteration 1: nothing read yet; 2 and 3: the loss logged at 2; 4: logged at 4; 5 (the last): logged at 5
    assert shown == ["-", logged[2], logged[2], logged[4], logged[5]] and "0.000" not in shown


def test_interrupt_in_process_and_the_summary_after_resume(capsys, tmp_path, monkeypatch):
    """A SIGINT while the checkpoint of iteration 2 is written: the run stops there (exit 130), that checkpoint
    being the state after the current iteration; the resumed run's summary says where it resumed."""
    out = str(tmp_path / "run")
    real_save = ckpt.save_checkpoint

    def save_and_signal(*args, **kwargs):
        path = real_save(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)
        return path

    monkeypatch.setattr(ckpt, "save_checkpoint", save_and_signal)
    argv = _with(["--checkpoint-interval", "2", "--out", out], {"--iterations": "6"})
    assert cli.main(argv) == 130
    assert "interrupted by SIGINT at iteration 2 (checkpoint written)" in capsys.readouterr().err
    monkeypatch.setattr(ckpt, "save_checkpoint", real_save)
    assert read_status(out)["status"] == "interrupted" and ckpt.read_checkpoint_state(out)["iteration"] == 2
    assert cli.main(["train", "--resume", out]) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert ": 6 iterations, 4 this session after resuming at 2 in " in summary


def test_run_files_follow_the_umask(tmp_path):
    mask = os.umask(0o027)
    try:
        fileio.atomic_write_text(str(tmp_path / "a.json"), json.dumps({}))
    finally:
        os.umask(mask)
    assert os.stat(tmp_path / "a.json").st_mode & 0o777 == 0o640


@pytest.mark.parametrize("store", ["horovod", "bogus"])
def test_kvstore_is_checked_before_anything_is_written(capsys, tmp_path, store):
    out = tmp_path / "run"
    err = _error(capsys, _with(["--kvstore", store, "--out", str(out)]))
    assert "--kvstore" in err and "device" in err
    assert not out.exists()
    with pytest.raises(ValueError, match="--kvstore"):
        TrainConfig(kvstore=store).resolved()
