"""Atomic checkpoint files, RNG state round trips, log.csv truncation on resume and status.json."""

import json
import os
import random

import numpy as np
import pytest

from gluon_resnetv2 import fileio
from gluon_resnetv2.train import checkpoint as ckpt
from gluon_resnetv2.train import runlog


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "blob"
    fileio.atomic_write_bytes(str(path), b"one")
    fileio.atomic_write_bytes(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["blob"]


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "blob"
    fileio.atomic_write_bytes(str(path), b"old")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        fileio.atomic_write_bytes(str(path), b"new")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["blob"]


def test_rng_state_round_trip():
    np.random.seed(1)
    random.seed(1)
    state = json.loads(json.dumps(ckpt.rng_state()))
    expected = (np.random.rand(3), random.random())
    np.random.rand(5)
    random.random()
    ckpt.set_rng_state(state)
    assert np.array_equal(np.random.rand(3), expected[0]) and random.random() == expected[1]


def test_missing_checkpoint_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no checkpoint"):
        ckpt.read_checkpoint_state(str(tmp_path))


def test_runlog_columns_and_truncation(tmp_path):
    log = runlog.RunLog(str(tmp_path))
    log.write(iteration=10, epoch=0.5, lr=0.1, train_loss=2.0, train_error=0.9, time=1.0)
    log.write(
        iteration=20, epoch=1.0, lr=0.1, train_loss=1.5, train_error=0.5, test_loss=1.4, test_error=0.45, time=2.0
    )
    log.write(iteration=30, epoch=1.5, lr=0.1, train_loss=1.0, train_error=0.3, time=3.0)
    log.close()
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0] == "iteration,epoch,lr,train_loss,train_error,test_loss,test_error,time"
    assert lines[1] == "10,0.5,0.1,2,0.9,,,1"
    log = runlog.RunLog(str(tmp_path), keep_rows=2)  # resume from a checkpoint taken after row 2
    assert log.rows == 2
    log.close()
    rows = runlog.read_log_rows(str(tmp_path))
    assert [r["iteration"] for r in rows] == [10, 20] and rows[0]["test_error"] is None
    with pytest.raises(RuntimeError, match="expects 5"):
        runlog.RunLog(str(tmp_path), keep_rows=5)
    with pytest.raises(ValueError, match="unknown log columns"):
        runlog.RunLog(str(tmp_path)).write(accuracy=1)


def test_status_file(tmp_path):
    runlog.write_status(str(tmp_path), "failed", reason="loss nan", iteration=3, loss=float("nan"))
    status = runlog.read_status(str(tmp_path))
    assert status["status"] == "failed" and status["iteration"] == 3 and status["loss"] == "nan"
