"""``launch`` over a real sshd and inside a real Slurm, and ``reproduce TABLE --slurm`` on a real one-node
cluster (daemons from :mod:`cluster_fixtures`, loopback only).

The plans (srun argv, Slurm's variables, what a second table call does) are tested without daemons; the
tests marked ``cluster`` start sshd or munged + slurmctld + slurmd.  Every subprocess has a timeout, and so
has every launch.
"""

import json
import os
import socket
import subprocess
import sys
import time
import uuid

import mxnet as mx
import numpy as np
import pytest
from cluster_fixtures import processes_with, start_slurm, start_sshd
from test_distributed import TRAIN

from gluon_resnetv2 import experiments as E
from gluon_resnetv2.cli import main
from gluon_resnetv2.experiments import slurm as slurm_tables
from gluon_resnetv2.train import slurm
from gluon_resnetv2.train.launcher import Host, free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [sys.executable, "-m", "gluon_resnetv2.cli"]


def _env(**extra):
    return dict(os.environ, OMP_NUM_THREADS="1", **extra)


def _same_weights(out):
    w0 = mx.nd.load(os.path.join(out, "workers", "rank0.params"))
    w1 = mx.nd.load(os.path.join(out, "workers", "rank1.params"))
    assert w0.keys() == w1.keys() and len(w0) > 40
    for name in w0:
        np.testing.assert_array_equal(w0[name].asnumpy(), w1[name].asnumpy(), err_msg=name)
    with open(os.path.join(out, "log.csv")) as handle:
        assert len(handle.read().splitlines()) == 3  # header + iterations 1 and 2


def _wait_gone(marker, seconds=15):
    deadline = time.time() + seconds
    while processes_with(marker) and time.time() < deadline:
        time.sleep(0.2)
    return processes_with(marker)


# ------------------------------------------------------------------------------------------ plans (no daemons)


def test_slurm_plan_places_roles_with_srun():
    nodes = [Host("n1", None, 2), Host("n2", None, 1)]
    command = ["py", "-m", "gluon_resnetv2.cli", "train", "--kvstore", "dist_sync"]
    specs = slurm.plan(command, 4, 2, nodes=nodes, port=1234, python="py", gpus_per_worker=2, env={})
    assert [(s.role, s.host, s.index) for s in specs] == [
        ("scheduler", "n1", 0),
        ("server", "n1", 0),
        ("server", "n2", 1),
        ("worker", "n1", 0),
        ("worker", "n1", 1),
        ("worker", "n2", 2),
        ("worker", "n1", 3),
    ]
    worker = specs[5]
    assert worker.via == "srun" and worker.argv[:3] == ["srun", "--nodes=1", "--ntasks=1"]
    assert "--nodelist=n2" in worker.argv and "--gres=gpu:2" in worker.argv and "--overlap" not in worker.argv
    assert worker.argv[worker.argv.index("--") + 1 :] == command + ["--gpus", "0,1"]  # Slurm's GPUs count from 0
    assert worker.env["DMLC_ROLE"] == "worker" and worker.env["GLUON_RESNETV2_WORKER_INDEX"] == "2"
    assert worker.env["DMLC_PS_ROOT_PORT"] == "1234" and worker.env["DMLC_NUM_WORKER"] == "4"
    assert "--gres=gpu:2" not in specs[0].argv and specs[0].argv[-2:] == ["-c", slurm.SERVER_PROGRAM]
    with pytest.raises(ValueError, match="names GPU 2, but each Slurm worker step gets 2"):
        slurm.plan(command + ["--gpus", "0,2"], 1, 1, nodes=nodes, port=1, gpus_per_worker=2, env={})


def test_slurm_allocation_variables():
    assert slurm.expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    with pytest.raises(ValueError, match="SLURM_TASKS_PER_NODE"):
        slurm.expand_tasks_per_node("two")
    with pytest.raises(ValueError, match="inside a Slurm allocation .*SLURM_JOB_ID is not set"):
        slurm.allocation({})


@pytest.mark.slow
def test_launch_options_are_checked(capsys):
    with pytest.raises(SystemExit):
        main(["launch", "-n", "1", "--gpus-per-worker", "0", "--", "x"])
    assert "--gpus-per-worker: expected an integer >= 1, got '0'" in capsys.readouterr().err
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    result = subprocess.run(
        CLI + ["launch", "--slurm", "-n", "1", "--", "x"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "SLURM_JOB_ID is not set" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_table_decisions():
    assert slurm_tables.decide("finished", "RUNNING") == "done"  # the run is the truth
    assert slurm_tables.decide("failed", None) == "done"
    for job_state in ("PENDING", "RUNNING", "COMPLETING", "SUSPENDED"):
        assert slurm_tables.decide("resumable", job_state) == "active"
    for job_state in (None, "CANCELLED", "FAILED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "COMPLETED"):
        assert slurm_tables.decide("resumable", job_state) == "submit"
    script = slurm_tables.job_script({"seed": 0, "run_dir": "/o/r it"}, "gr2-x", "/o/slurm/x-%j.out", "/w", "py")
    assert "#SBATCH --output=/o/slurm/x-%j.out" in script and "cd /w" in script
    assert script.rstrip().endswith(
        """exec py -m gluon_resnetv2.experiments --job '{"seed": 0, "run_dir": "/o/r it"}'"""
    )


# ------------------------------------------------------------------------------------------ a real sshd


def _daemons_fixture(start, name):
    """A module-scoped fixture: the daemons ``start(directory)`` brings up, stopped after the module's tests."""

    @pytest.fixture(scope="module")
    def daemons(tmp_path_factory):
        running = start(tmp_path_factory.mktemp(name))
        yield running
        running.stop()

    return daemons


sshd = _daemons_fixture(start_sshd, "sshd")


@pytest.mark.slow
@pytest.mark.cluster
def test_ssh_launch_two_workers_dist_sync(sshd, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text(f"# two names for this machine, sshd's port\n127.0.0.1:{sshd.port}\nlocalhost:{sshd.port}\n")
    logins = open(sshd.log).read().count("Accepted publickey")
    out = str(tmp_path / "dist")
    command = CLI + [
        "launch",
        "-n",
        "2",
        "-s",
        "1",
        "--hosts",
        str(hosts),
        "--port",
        str(free_port()),
        f"--ssh-args={sshd.ssh_args_text}",
        "--timeout",
        "150",
        "--",
        "gluon-resnetv2",
        *TRAIN,
        "--out",
        out,
    ]
    result = subprocess.run(
        command, cwd=REPO, env=_env(), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 hosts over ssh" in result.stderr
    assert open(sshd.log).read().count("Accepted publickey") - logins == 4  # scheduler, server, 2 workers
    _same_weights(out)


@pytest.mark.slow
@pytest.mark.cluster
def test_ssh_unreachable_host_stops_the_job(sshd, tmp_path):
    silent = socket.socket()  # accepts connections, never says a word: ssh waits for its greeting
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1:{sshd.port}\nlocalhost:{port}\n")
    marker = f"gr2-{uuid.uuid4().hex}"
    command = CLI + [
        "launch",
        "-n",
        "2",
        "-s",
        "1",
        "--hosts",
        str(hosts),
        "--port",
        str(free_port()),
        f"--ssh-args={sshd.ssh_args_text}",
        "--connect-timeout",
        "3",
        "--timeout",
        "60",
        "--",
        sys.executable,
        "-c",
        "import time; time.sleep(120)",
    ]
    start = time.time()
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=_env(GLUON_RESNETV2_TEST_MARKER=marker),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        remote = []
        while not remote and proc.poll() is None and time.time() - start < 30:
            # the environment travels over ssh: python processes with the marker were started by sshd
            remote = [
                pid
                for pid, argv in processes_with(marker).items()
                if pid != proc.pid and argv and argv[0] == sys.executable
            ]
            time.sleep(0.1)
        _, stderr = proc.communicate(timeout=60)
    finally:
        silent.close()
        if proc.poll() is None:
            proc.kill()
    assert remote, "no process started on the reachable host"
    assert proc.returncode == 255, stderr
    assert f"cannot reach host localhost:{port} over ssh (exit status 255 for worker 1" in stderr
    assert time.time() - start < 30
    assert not _wait_gone(marker), "processes left behind"


# ------------------------------------------------------------------------------------------ a real Slurm

slurm_cluster = _daemons_fixture(start_slurm, "slurm")


@pytest.mark.slow
@pytest.mark.cluster
def test_slurm_launch_dist_sync_and_a_failing_worker(slurm_cluster, tmp_path):
    out = str(tmp_path / "dist")
    command = [
        "salloc",
        "-n",
        "2",
        "--time=5",
        *CLI,
        "launch",
        "--slurm",
        "-n",
        "2",
        "-s",
        "1",
        "--timeout",
        "150",
        "--",
        "gluon-resnetv2",
        *TRAIN,
        "--out",
        out,
    ]
    result = subprocess.run(
        command,
        cwd=REPO,
        env=_env(**slurm_cluster.env_extra),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=200,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "on 1 Slurm node(s) with srun" in result.stderr
    _same_weights(out)

    # worker 1 fails while worker 0 waits: the job ends with its status and rank, nothing is left
    marker = f"gr2-{uuid.uuid4().hex}"
    failing = (
        "import os, sys, time; time.sleep(120) if os.environ['GLUON_RESNETV2_WORKER_INDEX'] == '0' else sys.exit(3)"
    )
    command = [
        "salloc",
        "-n",
        "2",
        "--time=5",
        *CLI,
        "launch",
        "--slurm",
        "-n",
        "2",
        "-s",
        "1",
        "--timeout",
        "60",
        "--",
        sys.executable,
        "-c",
        failing,
    ]
    start = time.time()
    result = subprocess.run(
        command,
        cwd=REPO,
        env=_env(GLUON_RESNETV2_TEST_MARKER=marker, **slurm_cluster.env_extra),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "worker 1 (of 0-1) on localhost (srun) exited with status 3; stopping the job" in result.stderr
    assert time.time() - start < 45
    assert not _wait_gone(marker), "processes left behind"


# Long enough that the killed row is still training when scancel reaches it after its first checkpoint.
TABLE_ITERATIONS = 240
TABLE = [
    "reproduce",
    "table1",
    "--rows",
    "original,constant_scaling_0.5_0.5",
    "--dataset",
    "synthetic",
    "--iterations",
    str(TABLE_ITERATIONS),
    "--batch-size",
    "4",
    "--slurm",
    "--slurm-args=--time=10",
]


def _jobs_over(job_ids, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not set(slurm_tables.job_states(job_ids).values()) & slurm_tables.ACTIVE_STATES:
            return True
        time.sleep(0.3)
    return False


@pytest.mark.slow
@pytest.mark.cluster
def test_slurm_table_submit_skip_resubmit_resume(slurm_cluster, tmp_path, monkeypatch):
    for key, value in slurm_cluster.env_extra.items():
        monkeypatch.setenv(key, value)  # for job_states() here
    out = str(tmp_path / "t1")
    env = _env(**slurm_cluster.env_extra)

    def reproduce():
        result = subprocess.run(
            CLI + TABLE + ["--out", out],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout, {k: v["job"] for k, v in slurm_tables.read_jobs(out).items()}

    text, first = reproduce()
    assert set(first) == {"original/seed0", "constant_scaling_0.5_0.5/seed0"} and "2 submitted" in text
    text, again = reproduce()  # both queued or running: left alone
    assert again == first and "0 submitted" in text and "left alone" in text
    assert "Slurm job" in open(os.path.join(out, "report.md")).read()

    # Slurm kills one row after its first checkpoint (scancel: SIGTERM, as at a time limit)
    killed = os.path.join(out, "constant_scaling_0.5_0.5", "seed0")
    deadline = time.time() + 90
    while not os.path.isfile(os.path.join(killed, "checkpoint.zip")):
        assert time.time() < deadline, "no checkpoint within 90 s"
        time.sleep(0.05)
    subprocess.run(["scancel", first["constant_scaling_0.5_0.5/seed0"]], env=env, check=True, timeout=30)
    assert _jobs_over(first.values(), 120)
    assert E.run_state(os.path.join(out, "original", "seed0")) == "finished"
    assert E.run_state(killed) == "resumable"

    text, third = reproduce()  # the finished row is skipped, the cancelled one resubmitted
    assert third["original/seed0"] == first["original/seed0"]
    assert third["constant_scaling_0.5_0.5/seed0"] != first["constant_scaling_0.5_0.5/seed0"]
    assert "ended: CANCELLED" in text and "1 done" in text and "1 submitted" in text
    assert _jobs_over(third.values(), 120)

    text, fourth = reproduce()
    assert fourth == third and "2 done" in text and "0 submitted" in text
    modes = E.attempts(killed)
    assert [m["mode"] for m in modes] == ["train", "resume"] and 0 < modes[1]["iteration"] < 120
    iterations = [
        int(line.split(",")[0]) for line in open(os.path.join(killed, "log.csv")).read().split("\n")[1:] if line
    ]
    assert iterations == sorted(set(iterations)) and iterations[-1] == TABLE_ITERATIONS  # one continuous log
    rows = E.parse_report(os.path.join(out, "report.md"))
    assert [r["iterations"] for r in rows] == [str(TABLE_ITERATIONS)] * 2 and all(r["our error %"] for r in rows)
    history = json.load(open(os.path.join(out, "slurm_jobs.json")))["rows"]["constant_scaling_0.5_0.5/seed0"]
    assert history["history"] == [first["constant_scaling_0.5_0.5/seed0"], third["constant_scaling_0.5_0.5/seed0"]]
