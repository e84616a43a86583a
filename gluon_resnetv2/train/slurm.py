"""``gluon-resnetv2 launch --slurm``: the parameter-server job inside a Slurm allocation.

Inside ``salloc`` or ``sbatch`` the allocation is read from Slurm's variables (``SLURM_JOB_NODELIST``,
expanded by ``scontrol show hostnames``, ``SLURM_TASKS_PER_NODE``, the slots of each node, and
``SLURM_JOB_CPUS_PER_NODE``), and every role becomes its own one-task job step, ``srun --nodes=1
--ntasks=1 --nodelist=NODE``: the scheduler on the first node, the servers round-robin over the nodes, the
workers filling each node's tasks in turn.  A step per process lets
:func:`gluon_resnetv2.train.launcher.launch` name the worker that failed and stop the others (SIGTERM to
``srun`` is forwarded to its task).  Each step inherits the launcher's environment plus its ``DMLC_*``
variables (srun's default ``--export=ALL``).

GPUs: ``--overlap`` lets a step share *all* resources with every other step, GRES included (srun(1) of
Slurm 22.05: "allows steps to share all resources (CPUs, memory, and GRES)"), so two overlapping worker
steps asking ``--gres=gpu:1`` may be given the same GPU.  With ``gpus_per_worker`` K the worker steps
therefore do not overlap: each asks ``--gres=gpu:K`` (Slurm sets the step's ``CUDA_VISIBLE_DEVICES`` to
GPUs no other running step holds, so the worker's ``--gpus`` counts from 0, added to a ``train`` command that
has none), ``--exact`` with its share of the node's CPUs (without it a step takes every CPU of the node and
the next worker step waits for it) and ``--mem=0`` (the job's memory without holding it from the other
steps).  The lightweight scheduler and servers keep ``--overlap``, with ``--gres=none``.  Without
``gpus_per_worker`` every step overlaps, and several workers on one node with a ``--gpus`` command are
refused, since each step sees all of the job's GPUs.
"""

import os
import re
import socket
import subprocess
import sys

from .launcher import SERVER_PROGRAM, WORKER_INDEX_ENV, ProcessSpec, check_sizes, free_port
from .placement import Host, address, check_gpu_sharing, place_workers, with_gpus

SRUN = ("srun", "--nodes=1", "--ntasks=1", "--quiet")


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


def cpus_per_node(nodes, env=None):
    """``{node: CPUs}`` of the allocation from ``SLURM_JOB_CPUS_PER_NODE`` (``8(x2)``), or {} when unknown."""
    env = os.environ if env is None else env
    text = env.get("SLURM_JOB_CPUS_PER_NODE")
    if not text:
        return {}
    counts = expand_tasks_per_node(text)
    return dict(zip((n.name for n in nodes), counts)) if len(counts) == len(nodes) else {}


def _is_local(name):
    return address(name).startswith("127.") or name.split(".")[0] == socket.gethostname().split(".")[0]


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
    cpus=None,
):
    """The job's :class:`~.launcher.ProcessSpec` s with ``srun`` argv (``via='srun'``; ``env`` is set on
    the local ``srun`` and travels to the task).  ``nodes``: :class:`~.launcher.Host` s, default the
    current allocation (:func:`allocation` of ``env``); ``cpus``: ``{node: CPUs}``, default
    :func:`cpus_per_node` of ``env`` (each GPU worker step gets its share)."""
    check_sizes(command, num_workers, num_servers)
    env = os.environ if env is None else env
    nodes = nodes or allocation(env)
    cpu_counts = cpus if cpus is not None else cpus_per_node(nodes, env)
    python = python or sys.executable
    first = nodes[0].name
    if port is None:  # the launcher normally runs on the first node (sbatch's batch host)
        job_id = int(env.get("SLURM_JOB_ID", "0") or 0)
        port = free_port() if _is_local(first) else 9091 + job_id % 1000
    base = {
        "DMLC_NUM_WORKER": str(num_workers),
        "DMLC_NUM_SERVER": str(num_servers),
        "DMLC_PS_ROOT_URI": address(first),
        "DMLC_PS_ROOT_PORT": str(port),
    }
    if interface:
        base["DMLC_INTERFACE"] = interface
    worker_nodes = place_workers(nodes, num_workers)
    if gpus_per_worker:
        worker_argv = with_gpus(command, gpus_per_worker, where="each Slurm worker step")
    else:
        check_gpu_sharing(command, [node.name for node in worker_nodes])
        worker_argv = list(command)
    server_argv = [python, "-c", SERVER_PROGRAM]
    workers_on = {node.name: sum(1 for w in worker_nodes if w.name == node.name) for node in nodes}

    def step(role, node, argv, index=0):
        job = dict(base, DMLC_ROLE=role)
        if not interface:
            job["DMLC_NODE_HOST"] = address(node.name)
        srun = list(SRUN) + [f"--nodelist={node.name}", f"--job-name=gr2-{role}{index if role != 'scheduler' else ''}"]
        if role == "worker":
            job[WORKER_INDEX_ENV] = str(index)
        if role == "worker" and gpus_per_worker:
            # its own GPUs: no --overlap (which shares GRES); --exact and --mem=0 let the other workers start
            srun += ["--exact", "--mem=0", f"--gres=gpu:{gpus_per_worker}"]
            if cpu_counts.get(node.name):
                srun.append(f"--cpus-per-task={max(1, cpu_counts[node.name] // workers_on[node.name])}")
        else:
            srun.append("--overlap")
            if gpus_per_worker:
                srun.append("--gres=none")
        return ProcessSpec(role, node.name, srun + ["--"] + list(argv), job, "srun", index)

    specs = [step("scheduler", nodes[0], server_argv)]
    specs += [step("server", nodes[i % len(nodes)], server_argv, i) for i in range(num_servers)]
    specs += [step("worker", node, worker_argv, i) for i, node in enumerate(worker_nodes)]
    return specs
