"""Kill a run after its first checkpoint, resume it, and get the log of an uninterrupted run."""

import os
import signal
import time

import pytest
from cli_process import cli, communicate

from gluon_resnetv2.train.checkpoint import read_checkpoint_state
from gluon_resnetv2.train.runlog import read_log_rows, read_status

# 96 images / batch 32 = 3 iterations per epoch, 4 epochs; log every 2 iterations so that the checkpoint at
# the end of epoch 1 falls inside a log interval; dropout shortcuts so that mx.random matters.
ARGS = [
    "train",
    "--model",
    "cifar_resnet20_v2",
    "--shortcut",
    "dropout",
    "--dataset",
    "synthetic",
    "--data-option",
    "num_samples=96",
    "--data-option",
    "image_shape=[3,8,8]",
    "--batch-size",
    "32",
    "--epochs",
    "4",
    "--log-interval",
    "2",
    "--num-workers",
    "0",
    "--seed",
    "7",
    "--cpus",
    "2",
    "--no-progress",
]


def _finish(proc, timeout=60):
    rc, text = communicate(proc, timeout, what="run did not finish")
    assert rc == 0, text


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_log(tmp_path):
    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    reference = cli(*ARGS, "--out", full)
    victim = cli(*ARGS, "--out", cut)
    try:
        deadline = time.time() + 60
        while not os.path.exists(os.path.join(cut, "checkpoint.zip")):
            assert victim.poll() is None, victim.communicate()[0].decode(errors="replace")
            assert time.time() < deadline, "no checkpoint after 60 s"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
    finally:
        victim.kill()
        victim.wait(timeout=30)
    state = read_checkpoint_state(cut)
    assert state["iteration"] < 12 and read_status(cut)["status"] == "running"
    _finish(cli("train", "--resume", cut, "--no-progress"))
    _finish(reference)

    a, b = read_log_rows(full), read_log_rows(cut)
    assert len(a) == len(b) == 8
    for row_a, row_b in zip(a, b):
        for column in ("iteration", "epoch", "lr", "train_error", "test_error"):
            assert row_a[column] == row_b[column], (column, row_a, row_b)
        for column in ("train_loss", "test_loss"):
            if row_a[column] is None:
                assert row_b[column] is None
            else:
                assert row_b[column] == pytest.approx(row_a[column], rel=1e-6, abs=1e-7), (column, row_a, row_b)
    assert read_status(cut)["status"] == read_status(full)["status"] == "finished"
    assert read_status(cut)["test_error"] == read_status(full)["test_error"]
