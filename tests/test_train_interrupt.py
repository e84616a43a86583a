"""SIGINT / SIGTERM mid-epoch: a checkpoint after the current iteration, status ``interrupted``, exit 130 / 143,
and ``--resume`` writes the log of an uninterrupted run; one trainer per run directory (an OS lock)."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
from cli_process import cli, communicate

from gluon_resnetv2.train.checkpoint import read_checkpoint_state
from gluon_resnetv2.train.runlog import lock_run_dir, read_status

# One epoch of 60 iterations (1920 images / batch 32): the only scheduled checkpoint is the final one, so
# whatever checkpoint exists after the signal was written because of it.
ARGS = [
    "train",
    "--model",
    "cifar_resnet20_v2",
    "--dataset",
    "synthetic",
    "--data-option",
    "num_samples=1920",
    "--data-option",
    "image_shape=[3,12,12]",
    "--batch-size",
    "32",
    "--iterations",
    "60",
    "--log-interval",
    "3",
    "--num-workers",
    "0",
    "--seed",
    "5",
    "--cpus",
    "1",
    "--no-progress",
]


def _wait_for_rows(proc, out, rows, timeout=90):
    """Wait until ``out/log.csv`` shows ``rows`` data rows (training is under way)."""
    path = os.path.join(out, "log.csv")
    deadline = time.time() + timeout
    while True:
        assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
        assert time.time() < deadline, f"no progress in {timeout} s"
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                if len(handle.read().splitlines()) > rows:
                    return
        time.sleep(0.01)


def _rows_without_time(out):
    with open(os.path.join(out, "log.csv"), encoding="utf-8", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(handle)]


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_checkpoints_and_resume_gives_the_uninterrupted_log(tmp_path, signum, code):
    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    victim = cli(*ARGS, "--out", cut)
    try:
        _wait_for_rows(victim, cut, 1)
        victim.send_signal(signum)
        rc, text = communicate(victim)
    finally:
        victim.kill()
        victim.wait()
    assert rc == code, text
    name = signal.Signals(signum).name
    assert f"interrupted by {name}" in text and "checkpoint written" in text and f"--resume {cut}" in text
    status = read_status(cut)
    state = read_checkpoint_state(cut)
    assert status["status"] == "interrupted" and status["signal"] == name
    assert 3 <= state["iteration"] == status["iteration"] < 60, (state, status)
    assert not [f for f in os.listdir(cut) if f.endswith(".tmp")]  # atomic: no half-written files left

    rc, text = communicate(cli("train", "--resume", cut, "--no-progress"))
    assert rc == 0, text
    rc, text = communicate(cli(*ARGS, "--out", full))
    assert rc == 0, text
    reference = _rows_without_time(full)
    assert len(reference) == 20 and _rows_without_time(cut) == reference
    assert read_status(cut)["status"] == "finished"
    assert read_status(cut)["test_error"] == read_status(full)["test_error"]


@pytest.mark.slow
def test_a_second_trainer_is_refused_with_the_holders_pid(tmp_path):
    out = str(tmp_path / "run")
    first = cli(*[a if a != "60" else "100000" for a in ARGS], "--out", out)
    try:
        _wait_for_rows(first, out, 1)
        rc, text = communicate(cli("train", "--resume", out, "--no-progress"))
        assert rc == 2, text
        assert f"{out} is in use by another trainer (pid {first.pid})" in text and "Traceback" not in text
        assert read_status(out)["status"] == "running" and read_status(out)["pid"] == first.pid
    finally:
        first.kill()  # SIGKILL: no handler runs; the kernel drops the lock
        first.wait()

    lock_run_dir(out).close()  # no stale lock after a killed trainer


@pytest.mark.slow
def test_lock_is_exclusive_between_processes(tmp_path):
    handle = lock_run_dir(str(tmp_path))
    try:
        code = (
            "import sys; from gluon_resnetv2.train.runlog import lock_run_dir\n"
            "try:\n    lock_run_dir(sys.argv[1])\nexcept RuntimeError as err:\n    print(err); sys.exit(3)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert proc.returncode == 3 and f"(pid {os.getpid()})" in proc.stdout
    finally:
        handle.close()
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
