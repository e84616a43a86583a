"""``gluon-resnetv2 launch --slurm``: the parameter-server job inside a Slurm allocation.

Inside ``salloc`` or ``sbatch`` the allocation is read from Slurm's variables (``SLURM_JOB_NODELIST``,
expanded by ``scontrol show hostnames``, and ``SLURM_TASKS_PER_NODE``, the slots of each node), and every
role becomes its own one-task job step, ``srun --overlap --nodes=1 --ntasks=1 --nodelist=NODE``: the
scheduler on the first node, the servers round-robin over the nodes, the workers filling each node's
tasks in turn.  A step per process lets :func:`gluon_resnetv2.train.launcher.launch` name the worker that
failed and stop the others (SIGTERM to ``srun`` is forwarded to its task); ``--overlap`` lets the
lightweight scheduler and servers share the CPUs of the workers' tasks.  Each step inherits the launcher's
environment plus its ``DMLC_*`` variables (srun's default ``--export=ALL``).  ``gpus_per_worker`` asks
``--gres=gpu:K`` for every worker step; Slurm then sets the step's ``CUDA_VISIBLE_DEVICES``, so the
worker's ``--gpus`` counts from 0 (added to a ``train`` command that has none).
"""

import os
import re
import socket
import subprocess
import sys

from .launcher import (
    SERVER_PROGRAM,
    WORKER_INDEX_ENV,
    Host,
    ProcessSpec,
    address,
    check_sizes,
    free_port,
    place_workers,
)

SRUN = ("srun", "--overlap", "--nodes=1", "--ntasks=1", "--quiet")


def expand_tasks_per_node(text):
    """``SLURM_TASKS_PER_NODE`` (``2(x3),1``) as a list, one count per node."""
    counts = []
    for part in text.split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if not match:
            raise ValueError(f"cannot read SLURM_TASKS_PER_NODE={text!r}; expected e.g. '2(x3),1'")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def expand_nodelist(nodelist):
    """The node names of a Slurm node list (``node[01-03],gpu7``), by ``scontrol show hostnames``."""
    try:
        result = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise RuntimeError("launch --slurm needs Slurm's scontrol on PATH (package slurm-client)") from None
    if result.returncode != 0:
        raise RuntimeError(f"scontrol show hostnames {nodelist} failed: {result.stderr.strip()}")
    return result.stdout.split()


def allocation(env=None):
    """The nodes of the current allocation as :class:`~.launcher.Host` s (``slots``: its tasks there)."""
    env = os.environ if env is None else env
    if not env.get("SLURM_JOB_ID"):
        raise ValueError("launch --slurm runs inside a Slurm allocation (salloc or sbatch); SLURM_JOB_ID is not set")
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise ValueError("launch --slurm: SLURM_JOB_NODELIST is not set in this allocation")
    nodes = expand_nodelist(nodelist)
    tasks = env.get("SLURM_TASKS_PER_NODE") or env.get("SLURM_JOB_CPUS_PER_NODE") or ",".join("1" for _ in nodes)
    counts = expand_tasks_per_node(tasks)
    if len(counts) != len(nodes):
        raise ValueError(f"SLURM_TASKS_PER_NODE={tasks!r} has {len(counts)} entries for {len(nodes)} nodes")
    return [Host(node, None, max(1, count)) for node, count in zip(nodes, counts)]


def _is_local(name):
    return address(name).startswith("127.") or name.split(".")[0] == socket.gethostname().split(".")[0]


def _with_gpus(command, gpus_per_worker):
    """``command`` with ``--gpus 0..K-1`` when it is a train command without ``--gpus``; refuses indices
    that the step does not have."""
    command = list(command)
    if "--gpus" in command:
        listed = command[command.index("--gpus") + 1] if command.index("--gpus") + 1 < len(command) else ""
        bad = [g for g in listed.split(",") if g.strip().isdigit() and int(g) >= gpus_per_worker]
        if bad:
            raise ValueError(
                f"the worker command's --gpus {listed} names GPU {bad[0]}, but each Slurm worker step "
                f"gets {gpus_per_worker} (--gpus-per-worker), numbered from 0"
            )
    elif "train" in command:
        command += ["--gpus", ",".join(str(i) for i in range(gpus_per_worker))]
    return command


def plan(
    command,
    num_workers,
    num_servers,
    nodes=None,
    port=None,
    python=None,
    interface=None,
    gpus_per_worker=None,
    env=None,
):
    """The job's :class:`~.launcher.ProcessSpec` s with ``srun`` argv (``via='srun'``; ``env`` is set on
    the local ``srun`` and travels to the task).  ``nodes``: :class:`~.launcher.Host` s, default the
    current allocation (:func:`allocation` of ``env``)."""
    check_sizes(command, num_workers, num_servers)
    nodes = nodes or allocation(env)
    python = python or sys.executable
    first = nodes[0].name
    if port is None:  # the launcher normally runs on the first node (sbatch's batch host)
        job_id = int((env or os.environ).get("SLURM_JOB_ID", "0") or 0)
        port = free_port() if _is_local(first) else 9091 + job_id % 1000
    base = {
        "DMLC_NUM_WORKER": str(num_workers),
        "DMLC_NUM_SERVER": str(num_servers),
        "DMLC_PS_ROOT_URI": address(first),
        "DMLC_PS_ROOT_PORT": str(port),
    }
    if interface:
        base["DMLC_INTERFACE"] = interface
    worker_argv = _with_gpus(command, gpus_per_worker) if gpus_per_worker else list(command)
    server_argv = [python, "-c", SERVER_PROGRAM]

    def step(role, node, argv, index=0):
        job = dict(base, DMLC_ROLE=role)
        if not interface:
            job["DMLC_NODE_HOST"] = address(node.name)
        srun = list(SRUN) + [f"--nodelist={node.name}", f"--job-name=gr2-{role}{index if role != 'scheduler' else ''}"]
        if role == "worker":
            job[WORKER_INDEX_ENV] = str(index)
            if gpus_per_worker:
                srun.append(f"--gres=gpu:{gpus_per_worker}")
        return ProcessSpec(role, node.name, srun + ["--"] + list(argv), job, "srun", index)

    specs = [step("scheduler", nodes[0], server_argv)]
    specs += [step("server", nodes[i % len(nodes)], server_argv, i) for i in range(num_servers)]
    specs += [step("worker", node, worker_argv, i) for i, node in enumerate(place_workers(nodes, num_workers))]
    return specs
