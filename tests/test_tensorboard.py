"""``train --tensorboard``: the event files hold log.csv's points, a resume leaves no stale or duplicate
point, and a real ``tensorboard`` server serves exactly those points."""

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from gluon_resnetv2.commands import train as train_command
from gluon_resnetv2.train import checkpoint as ckpt
from gluon_resnetv2.train import resume, train
from gluon_resnetv2.train.runlog import read_log_rows
from gluon_resnetv2.train.tensorboard_log import TAGS, TENSORBOARD_DIR, read_scalars

TINY = dict(
    model="cifar_resnet20_v2",
    dataset="synthetic",
    num_workers=0,
    progress=False,
    batch_size=32,
    dataset_options={"num_samples": 96, "image_shape": [3, 8, 8]},
    iterations=6,
    log_interval=1,
    eval_interval=2,
    checkpoint_interval=3,
)

#: log.csv's columns that TensorBoard shows (its own extra: images/s, checked for presence only).
COLUMN_TAGS = {column: tag for column, tag in TAGS.items() if column != "images_per_second"}


def _log_points(out):
    """``{tag: [(step, value)]}`` of log.csv, as the event files should hold them."""
    points = {}
    for row in read_log_rows(out):
        for column, tag in COLUMN_TAGS.items():
            if row.get(column) is not None:
                points.setdefault(tag, []).append((int(row["iteration"]), row[column]))
    return points


def _assert_same_points(events, expected):
    assert set(expected) <= set(events), sorted(events)
    for tag, points in expected.items():
        steps = [step for step, _ in events[tag]]
        assert steps == [step for step, _ in points], tag  # same iterations, none duplicated
        for (_, got), (_, want) in zip(events[tag], points):
            assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-7), (tag, got, want)


def _crashed_after_checkpoint(out, monkeypatch):
    """A run whose checkpoints stop at iteration 3: it logs iterations 4-6 and ends without a checkpoint
    after 3, like a run killed just before its final checkpoint."""
    save = ckpt.save_checkpoint

    def save_until_3(out_dir, net, trainer, state, **kwargs):
        if state["iteration"] <= 3:
            save(out_dir, net, trainer, state, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(ckpt, "save_checkpoint", save_until_3)
        train(out=out, **TINY)
    assert ckpt.read_checkpoint_state(out)["iteration"] == 3


@pytest.mark.slow
def test_events_hold_log_csv_points_and_a_resume_leaves_none_stale(tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    _crashed_after_checkpoint(out, monkeypatch)
    before = read_scalars(out)
    assert [step for step, _ in before["train/loss"]] == [1, 2, 3, 4, 5, 6]
    resume(out)
    events = read_scalars(out)
    _assert_same_points(events, _log_points(out))
    assert [step for step, _ in events["train/loss"]] == [1, 2, 3, 4, 5, 6]  # 4-6 once: the new session's
    assert [step for step, _ in events["speed/images_per_second"]] == [1, 2, 3, 4, 5, 6]
    assert all(value > 0 for _, value in events["speed/images_per_second"])
    assert len(os.listdir(os.path.join(out, TENSORBOARD_DIR))) == 2  # one file per session


def test_no_tensorboard_writes_no_event_files(tmp_path):
    args = train_command.add_parser(_subparsers()).parse_args(
        ["--model", "cifar_resnet20_v2", "--out", str(tmp_path / "off"), "--no-tensorboard"]
    )
    config = train_command.config_from_args(args)
    assert config.tensorboard is False
    train(config, **dict({k: v for k, v in TINY.items() if k != "model"}, iterations=1))
    assert os.path.isfile(tmp_path / "off" / "log.csv")
    assert not os.path.exists(tmp_path / "off" / TENSORBOARD_DIR)


def _subparsers():
    import argparse

    return argparse.ArgumentParser().add_subparsers()


class _Server:
    """``tensorboard --logdir LOGDIR`` on 127.0.0.1 at a free port (the OS picks it: --port 0)."""

    def __init__(self, logdir):
        command = [os.path.join(os.path.dirname(sys.executable), "tensorboard")]
        self.proc = subprocess.Popen(
            command + ["--logdir", logdir, "--host", "127.0.0.1", "--port", "0", "--reload_interval", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.url, seen = None, []
        deadline = time.time() + 60
        while self.url is None and time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                break
            seen.append(line)
            match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
            self.url = match.group(1) if match else None
        if self.url is None:
            self.stop()
            pytest.fail("tensorboard did not start within 60 s:\n" + "".join(seen))

    def get(self, path, **query):
        with urllib.request.urlopen(f"{self.url}{path}?{urllib.parse.urlencode(query)}", timeout=10) as reply:
            return json.loads(reply.read())

    def scalars(self, run, tag):
        """``[(step, value)]`` of ``tag`` in ``run``, once the server has loaded the run (up to 60 s)."""
        deadline = time.time() + 60
        while True:
            try:
                if tag in self.get("/data/plugin/scalars/tags").get(run, {}):
                    break
            except OSError:
                pass
            assert time.time() < deadline, f"tensorboard never served {run}/{tag}"
            time.sleep(0.5)
        return [(step, value) for _, step, value in self.get("/data/plugin/scalars/scalars", run=run, tag=tag)]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def tensorboard_server():
    servers = []

    def start(logdir):
        servers.append(_Server(logdir))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.mark.slow
def test_tensorboard_server_serves_the_log_csv_points_of_each_run(tmp_path, monkeypatch, tensorboard_server):
    """Two runs under one --logdir, as a reproduce output directory: a plain one and a resumed one."""
    plain, resumed = str(tmp_path / "plain"), str(tmp_path / "resumed")
    train(out=plain, **dict(TINY, seed=1))
    _crashed_after_checkpoint(resumed, monkeypatch)
    resume(resumed)
    server = tensorboard_server(str(tmp_path))
    for out in (plain, resumed):
        run = f"{os.path.basename(out)}/{TENSORBOARD_DIR}"
        served = {tag: server.scalars(run, tag) for tag in _log_points(out)}
        _assert_same_points(served, _log_points(out))
        assert [step for step, _ in served["train/loss"]] == [1, 2, 3, 4, 5, 6]
    assert server.get("/data/plugin/scalars/scalars", run="plain/tensorboard", tag="test/error") != server.get(
        "/data/plugin/scalars/scalars", run="resumed/tensorboard", tag="test/error"
    )


def test_ema_evaluation_has_its_own_curves(tmp_path):
    out = str(tmp_path / "ema")
    train(out=out, **dict(TINY, iterations=2, ema=0.9))
    events = read_scalars(out)
    _assert_same_points(events, _log_points(out))
    assert [step for step, _ in events["ema/test_error"]] == [2]
