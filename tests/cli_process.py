"""Trainer subprocesses for the tests that signal, kill and resume real runs.

from cli_process import cli, communicate
rc, text = communicate(cli("train", "--resume", out), timeout=60)
"""

import os
import subprocess
import sys

import pytest


def cli(*args, **kwargs):
    """``python -m gluon_resnetv2.cli ARGS`` with one OpenMP thread, stdout and stderr together."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "gluon_resnetv2.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **kwargs,
    )


def communicate(proc, timeout=120, what="did not end"):
    """``(exit code, output)`` of ``proc``; killed and a test failure (``what`` in TIMEOUT s) if it runs longer."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"{what} in {timeout} s:\n{out.decode(errors='replace')}")
    return proc.returncode, out.decode(errors="replace")
