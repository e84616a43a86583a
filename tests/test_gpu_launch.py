"""Several workers on one host get their own GPUs: the plans of ``launch`` (localhost, ssh, Slurm), the
environment its local workers really get, the GPUs a real Slurm (fake GPU devices as GRES) gives its worker
steps, and the refusal of workers that would share ``--gpus``."""

import os
import subprocess
import sys

import pytest
from cluster_fixtures import start_slurm

from gluon_resnetv2.cli import main
from gluon_resnetv2.train import slurm
from gluon_resnetv2.train.launcher import Host, launch, plan

TRAIN = ["py", "-m", "gluon_resnetv2.cli", "train", "--kvstore", "dist_sync"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def gpu_slurm(tmp_path_factory):
    """A one-node Slurm whose node has two (fake) GPUs as GRES."""
    running = start_slurm(tmp_path_factory.mktemp("gpu-slurm"), gpus=2)
    yield running
    running.stop()


def _workers(specs):
    return [s for s in specs if s.role == "worker"]


def test_local_workers_sharing_gpus_are_refused():
    with pytest.raises(ValueError, match=r"2 workers on localhost would all train on --gpus 0: give launch --gpus-per"):
        plan(TRAIN + ["--gpus", "0"], 2, 1, port=1, env={})
    with pytest.raises(ValueError, match="would all train on --gpus 0,1"):
        plan(TRAIN + ["--gpus=0,1"], 3, 1, port=1, env={})
    assert len(plan(TRAIN + ["--gpus", "0"], 1, 1, port=1, env={})) == 3  # one worker: nothing shared
    assert len(plan(TRAIN + ["--cpus", "2"], 2, 1, port=1, env={})) == 4  # CPU workers


def test_local_workers_get_their_own_gpus():
    specs = plan(TRAIN, 2, 1, port=1, env={}, gpus_per_worker=2)
    workers = _workers(specs)
    assert [w.env["CUDA_VISIBLE_DEVICES"] for w in workers] == ["0,1", "2,3"]
    assert all(w.argv == TRAIN + ["--gpus", "0,1"] for w in workers)  # counted from 0 within its own GPUs
    assert all("CUDA_VISIBLE_DEVICES" not in s.env for s in specs if s.role != "worker")
    # the launcher's own CUDA_VISIBLE_DEVICES is split, not ignored
    specs = plan(TRAIN + ["--gpus", "0"], 2, 1, port=1, env={"CUDA_VISIBLE_DEVICES": "4,6"}, gpus_per_worker=1)
    assert [w.env["CUDA_VISIBLE_DEVICES"] for w in _workers(specs)] == ["4", "6"]
    with pytest.raises(ValueError, match=r"worker 2 on localhost needs the GPUs 2-2 of CUDA_VISIBLE_DEVICES=4,6"):
        plan(TRAIN, 3, 1, port=1, env={"CUDA_VISIBLE_DEVICES": "4,6"}, gpus_per_worker=1)
    with pytest.raises(ValueError, match="names GPU 1, but each worker gets 1"):
        plan(TRAIN + ["--gpus", "0,1"], 2, 1, port=1, env={}, gpus_per_worker=1)


def test_ssh_workers_get_their_own_gpus_per_host():
    hosts = [Host("127.0.0.1", 2222, 2), Host("localhost", None, 1)]
    with pytest.raises(ValueError, match="2 workers on 127.0.0.1:2222 would all train on --gpus 0"):
        plan(TRAIN + ["--gpus", "0"], 3, 1, hosts=hosts, env={})
    one_each = [Host("127.0.0.1", None, 1), Host("localhost", None, 1)]
    assert len(_workers(plan(TRAIN + ["--gpus", "0"], 2, 1, hosts=one_each, env={}))) == 2
    specs = plan(TRAIN, 3, 1, hosts=hosts, env={"CUDA_VISIBLE_DEVICES": "7"}, gpus_per_worker=2)
    workers = _workers(specs)
    assert [(w.host.name, w.env["CUDA_VISIBLE_DEVICES"]) for w in workers] == [
        ("127.0.0.1", "0,1"),
        ("127.0.0.1", "2,3"),
        ("localhost", "0,1"),  # each host counts its own GPUs; the launcher's variable is not the remote's
    ]
    script = workers[1].argv[-1]
    assert "CUDA_VISIBLE_DEVICES=2,3 " in script and "--gpus 0,1" in script


def test_local_workers_really_see_their_own_devices(tmp_path):
    """The environment of the launched processes: each worker writes the CUDA_VISIBLE_DEVICES it got."""
    write = "import os; open(os.path.join(os.environ['OUT'], os.environ['GLUON_RESNETV2_WORKER_INDEX']), 'w')"
    write += ".write(os.environ['CUDA_VISIBLE_DEVICES'] + ' ' + ' '.join(__import__('sys').argv[1:]))"
    env = dict(os.environ, OUT=str(tmp_path), CUDA_VISIBLE_DEVICES="1,3,5,7")
    command = [sys.executable, "-c", write, "train"]
    assert launch(command, 2, 1, env=env, gpus_per_worker=2, server_grace=0, timeout=60, verbose=False) == 0
    assert (tmp_path / "0").read_text() == "1,3 train --gpus 0,1"
    assert (tmp_path / "1").read_text() == "5,7 train --gpus 0,1"


def test_slurm_gpu_workers_do_not_overlap():
    """srun --overlap shares GRES with every other step (srun(1)): GPU worker steps must not overlap."""
    nodes = [Host("n1", None, 2), Host("n2", None, 1)]
    specs = slurm.plan(TRAIN, 3, 1, nodes=nodes, port=1, python="py", gpus_per_worker=1, env={}, cpus={"n1": 8})
    scheduler, server, w0, w1, w2 = specs
    for worker in (w0, w1, w2):
        assert "--overlap" not in worker.argv and "--gres=gpu:1" in worker.argv
        assert "--exact" in worker.argv and "--mem=0" in worker.argv
        assert worker.argv[worker.argv.index("--") + 1 :] == TRAIN + ["--gpus", "0"]
    assert "--cpus-per-task=4" in w0.argv and "--cpus-per-task=4" in w1.argv  # n1's 8 CPUs over its 2 workers
    assert not any(a.startswith("--cpus-per-task") for a in w2.argv)  # n2's CPUs unknown: Slurm's default
    for role in (scheduler, server):
        assert "--overlap" in role.argv and "--gres=none" in role.argv
    with pytest.raises(ValueError, match="2 workers on n1 would all train on --gpus 0"):
        slurm.plan(TRAIN + ["--gpus", "0"], 2, 1, nodes=nodes, port=1, env={})
    plain = slurm.plan(TRAIN, 2, 1, nodes=nodes, port=1, env={})  # no GPUs: every step overlaps, as before
    assert all("--overlap" in s.argv and not any(a.startswith("--gres") for a in s.argv) for s in plain)
    assert slurm.cpus_per_node(nodes, {"SLURM_JOB_CPUS_PER_NODE": "8,4"}) == {"n1": 8, "n2": 4}


def test_launch_cli_refuses_shared_gpus(capsys):
    assert main(["launch", "-n", "2", "--", "gluon-resnetv2", "train", "--gpus", "0", "--kvstore", "dist_sync"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 workers on localhost would all train on --gpus 0" in err[0]
    with pytest.raises(SystemExit):
        main(["launch", "-n", "1", "--gpus-per-worker", "0", "--", "x"])
    assert "--gpus-per-worker: expected an integer >= 1, got '0'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.cluster
def test_slurm_worker_steps_get_different_gpus(gpu_slurm, tmp_path):
    """Two concurrent worker steps with --gres=gpu:1 on one node: with --overlap Slurm 22.05 gave both GPU 0;
    the non-overlapping steps get GPU 0 and GPU 1."""
    write = (
        "import os, time; open(os.path.join(os.environ['OUT'], os.environ['GLUON_RESNETV2_WORKER_INDEX']), 'w')"
        ".write(os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')); time.sleep(3)"
    )
    command = ["salloc", "-n", "2", "--gres=gpu:2", "--time=5", sys.executable, "-m", "gluon_resnetv2.cli"]
    command += ["launch", "--slurm", "-n", "2", "-s", "1", "--gpus-per-worker", "1", "--timeout", "90"]
    command += ["--", sys.executable, "-c", write]
    env = dict(os.environ, OMP_NUM_THREADS="1", OUT=str(tmp_path), **gpu_slurm.env_extra)
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=150
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted((tmp_path / name).read_text() for name in ("0", "1")) == ["0", "1"]
