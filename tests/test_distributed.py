"""Distributed training with MXNet's parameter server on localhost (``gluon-resnetv2 launch``).

Every process is bounded: the launcher's own ``--timeout`` and the test's subprocess timeout, and the
launcher stops all of its processes before it returns.
"""

import os
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest

from gluon_resnetv2 import cpu
from gluon_resnetv2.data import make_loader
from gluon_resnetv2.train import TrainConfig
from gluon_resnetv2.train.launcher import Host, launch, plan, read_hosts
from gluon_resnetv2.train.loop import Run, forward_backward
from gluon_resnetv2.train.tensorboard_log import event_files, read_scalars

G = 16  # global batch: 8 images per worker
TRAIN = [
    "train",
    "--model",
    "cifar_resnet20_v2",
    "--dataset",
    "synthetic",
    "--data-option",
    "num_samples=64",
    "--data-option",
    "image_shape=[3,8,8]",
    "--batch-size",
    str(G),
    "--iterations",
    "2",
    "--log-interval",
    "1",
    "--num-workers",
    "0",
    "--seed",
    "5",
    "--kvstore",
    "dist_sync",
    "--no-progress",
]


def test_plan_local_roles_and_environment():
    specs = plan(["train"], num_workers=2, num_servers=3, port=1234, python="py")
    assert [s.role for s in specs] == ["scheduler", "server", "server", "server", "worker", "worker"]
    for spec in specs:
        assert spec.env["DMLC_ROLE"] == spec.role
        assert spec.env["DMLC_PS_ROOT_URI"] == "127.0.0.1" and spec.env["DMLC_PS_ROOT_PORT"] == "1234"
        assert spec.env["DMLC_NUM_SERVER"] == "3" and spec.env["DMLC_NUM_WORKER"] == "2"
    assert specs[0].argv[:2] == ["py", "-c"] and specs[-1].argv == ["train"]
    assert int(plan(["x"], 1, 1)[0].env["DMLC_PS_ROOT_PORT"]) > 0  # a free port


def test_plan_over_ssh(tmp_path):
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text("# cluster\nnode-a\nnode-b:2222 slots=2  # two workers here\n\n")
    hosts = read_hosts(str(hosts_file))
    assert hosts == [Host("node-a", None, 1), Host("node-b", 2222, 2)]
    specs = plan(
        ["gluon-resnetv2", "train", "--out", "a b"],
        4,
        1,
        hosts=hosts,
        cwd="/work",
        python="py",
        env={"PYTHONPATH": "/src", "HOME": "/root", "MXNET_ENGINE_TYPE": "NaiveEngine"},
    )
    # workers fill node-a's one slot, then node-b's two, then wrap around
    assert [(s.role, s.host.name, s.index) for s in specs] == [
        ("scheduler", "node-a", 0),
        ("server", "node-a", 0),
        ("worker", "node-a", 0),
        ("worker", "node-b", 1),
        ("worker", "node-b", 2),
        ("worker", "node-a", 3),
    ]
    argv = specs[3].argv
    assert argv[0] == "ssh" and argv[-2] == "node-b" and argv[argv.index("-p") + 1] == "2222"
    assert "BatchMode=yes" in argv and "ConnectTimeout=10" in argv
    assert "-p" not in specs[2].argv
    script = argv[-1]
    assert "DMLC_ROLE=worker" in script and "DMLC_PS_ROOT_URI=node-a" in script and "'a b'" in script
    assert "GLUON_RESNETV2_WORKER_INDEX=1" in script and "cd /work" in script
    # the environment that matters travels, the rest does not
    assert "PYTHONPATH=/src" in script and "MXNET_ENGINE_TYPE=NaiveEngine" in script and "HOME=" not in script
    assert specs[0].argv[-1].count("py -c") == 1  # scheduler and servers import mxnet, not the command
    ssh = plan(["x"], 1, 1, hosts=["127.0.0.1:22"], ssh_args=["-i", "key"], connect_timeout=2.5)[2].argv
    assert ssh[1:3] == ["-i", "key"] and "ConnectTimeout=3" in ssh
    assert "DMLC_NODE_HOST=127.0.0.1" in ssh[-1]
    with pytest.raises(ValueError, match="no hosts"):
        (tmp_path / "empty").write_text("# nothing\n")
        read_hosts(str(tmp_path / "empty"))
    for bad, message in (("node:x", "bad port"), ("node slots=0", "slots=N"), ("node cpus=2", "slots=N")):
        (tmp_path / "bad").write_text(f"ok\n{bad}\n")
        with pytest.raises(ValueError, match=f"bad:2: .*{message}"):
            read_hosts(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="command"):
        plan([], 1, 1)


@pytest.mark.slow  # 3.2 s measured
def test_launch_stops_everything_on_timeout_and_on_failure(tmp_path):
    pid_file = tmp_path / "pid"
    sleeper = [
        sys.executable,
        "-c",
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)",
    ]
    start = time.time()
    assert launch(sleeper, 1, 1, timeout=3, verbose=False) == 124
    assert time.time() - start < 30
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    failing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    assert launch(failing, 2, 1, timeout=60, verbose=False) == 3


def _reference_weights(tmp_path):
    """Single-process emulation: each worker's shard is forwarded on its own (its own BatchNorm batch), the
    gradients are summed and SGD divides by the global batch, as the kvstore does across workers."""

    cfg = TrainConfig(
        model="cifar_resnet20_v2",
        dataset="synthetic",
        out=str(tmp_path / "ref"),
        batch_size=G,
        iterations=2,
        num_workers=0,
        seed=5,
        progress=False,
        dataset_options={"num_samples": 64, "image_shape": [3, 8, 8]},
    )
    run = Run(cfg)
    train_set = run.train_loader.dataset
    loaders = [
        make_loader(train_set, G // 2, train=True, seed=cfg.seed, num_workers=0, shard=(rank, 2)) for rank in range(2)
    ]
    batches = [list(loader.iterate(epoch=0)) for loader in loaders]
    params = run.net.collect_params()
    for p in params.values():
        if p.grad_req != "null":
            p.grad_req = "add"
    for iteration in range(2):
        params.zero_grad()
        run.trainer.set_learning_rate(run.schedule(iteration))
        for rank in range(2):
            data, label = batches[rank][iteration]
            forward_backward(run.net, run.loss_fn, data, label, run.contexts)
        run.trainer.step(G)
    # the structural names that save_parameters writes
    return {
        name: p.data().asnumpy() for name, p in run.net._collect_params_with_prefix().items() if p.grad_req != "null"
    }


@pytest.mark.slow
def test_two_workers_dist_sync(tmp_path):
    out = str(tmp_path / "dist")
    command = [
        sys.executable,
        "-m",
        "gluon_resnetv2.cli",
        "launch",
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
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr

    # only rank 0 writes the run; every worker leaves its final weights
    expected = {"log.csv", "config.json", "status.json", "checkpoint.zip", "model.params", "workers", "tensorboard"}
    assert expected <= set(os.listdir(out))
    with open(os.path.join(out, "log.csv")) as handle:
        rows = handle.read().splitlines()
    assert len(rows) == 3  # header + iterations 1 and 2
    assert len(event_files(out)) == 1  # rank 0's TensorBoard events only
    assert [step for step, _ in read_scalars(out)["train/loss"]] == [1, 2]
    w0 = mx.nd.load(os.path.join(out, "workers", "rank0.params"))
    w1 = mx.nd.load(os.path.join(out, "workers", "rank1.params"))
    assert w0.keys() == w1.keys()
    for name in w0:
        np.testing.assert_array_equal(w0[name].asnumpy(), w1[name].asnumpy(), err_msg=name)

    # each update is the average gradient of the global batch (the store sums: rescale_grad = 1/16)
    reference = _reference_weights(tmp_path)
    checked = 0
    for name, value in reference.items():
        np.testing.assert_allclose(w0[name].asnumpy(), value, rtol=1e-4, atol=1e-6, err_msg=name)
        checked += 1
    assert checked > 40


@pytest.mark.slow
def test_local_workers_share_the_default_cores(tmp_path, monkeypatch):
    """With the package's own thread default (every physical core), local workers split the cores instead of
    each taking all of them; a user's OMP_NUM_THREADS is passed through unchanged."""

    record = [
        sys.executable,
        "-c",
        f"import os; open(os.path.join({str(tmp_path)!r}, str(os.getpid())), 'w')"
        ".write(os.environ['DMLC_ROLE'] + ' ' + os.environ.get('OMP_NUM_THREADS', '-'))",
    ]

    def roles():
        seen = sorted(p.read_text() for p in tmp_path.iterdir())
        for p in tmp_path.iterdir():
            p.unlink()
        return [s for s in seen if s.startswith("worker")]

    monkeypatch.setattr(cpu, "in_use", lambda: {"threads": 4, "source": "physical cores"})
    assert launch(record, 2, 1, timeout=60, verbose=False) == 0
    assert roles() == ["worker 2", "worker 2"]
    monkeypatch.setattr(cpu, "in_use", lambda: {"threads": 3, "source": "OMP_NUM_THREADS"})
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert launch(record, 2, 1, timeout=60, verbose=False) == 0
    assert roles() == ["worker 3", "worker 3"]
