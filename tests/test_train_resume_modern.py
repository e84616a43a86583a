"""Kill a run with every modern-recipe option on after its first checkpoint, resume it, and get the log,
the weight average and the model of an uninterrupted run (issue 21).

The run has two CPU contexts, so ``--sync-bn`` is on too (SyncBatchNorm over both).  The preset's ``nag`` is
replaced by ``sgd``: two identical ``--optimizer nag`` runs on CPU contexts already differ in the last bit
of their weights (seen on main before these options existed), which no resume can repair.
"""

import os
import signal
import time

import pytest
from cli_process import cli
from test_train_resume import ARGS, _finish

from gluon_resnetv2.train.checkpoint import read_checkpoint_state
from gluon_resnetv2.train.runlog import read_log_rows, read_status

MODERN = [
    "--recipe",
    "gluoncv",
    "--optimizer",
    "sgd",
    "--label-smoothing",
    "0.1",
    "--mixup",
    "0.4",
    "--mixup-off-epochs",
    "1",
    "--warmup-epochs",
    "1",
    "--no-wd-norm-bias",
    "--zero-init-last",
    "--ema",
    "0.9",
    "--precise-bn",
    "2",
    "--sync-bn",
    "--no-tensorboard",
]


@pytest.mark.slow
def test_resume_with_every_option_reproduces_the_uninterrupted_run(tmp_path):
    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    reference = cli(*ARGS, *MODERN, "--out", full)
    victim = cli(*ARGS, *MODERN, "--out", cut)
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
    assert read_checkpoint_state(cut)["iteration"] < 12
    _finish(cli("train", "--resume", cut, "--no-progress"))
    _finish(reference)

    a, b = read_log_rows(full), read_log_rows(cut)
    assert len(a) == len(b) == 8
    for row_a, row_b in zip(a, b):
        for column in ("iteration", "epoch", "lr", "train_error", "test_error", "ema_test_error"):
            assert row_a[column] == row_b[column], (column, row_a, row_b)
        for column in ("train_loss", "test_loss", "ema_test_loss"):
            if row_a[column] is None:
                assert row_b[column] is None
            else:
                assert row_b[column] == pytest.approx(row_a[column], rel=1e-6, abs=1e-7), (column, row_a, row_b)
    assert a[-1]["ema_test_loss"] is not None and a[0]["lr"] < 0.1  # the options were on
    status = read_status(cut)
    assert status["status"] == "finished" and status["ema_test_error"] == read_status(full)["ema_test_error"]
    for name in ("model.params", "model-ema.params"):
        with open(os.path.join(full, name), "rb") as one, open(os.path.join(cut, name), "rb") as two:
            assert one.read() == two.read(), name
