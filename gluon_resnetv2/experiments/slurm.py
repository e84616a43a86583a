"""``gluon-resnetv2 reproduce TABLE --slurm``: every pending row of a table as its own ``sbatch`` job.

Each row (and seed) is one batch job running ``python -m gluon_resnetv2.experiments --job JSON``
(:func:`gluon_resnetv2.experiments.run_experiment` on its run directory ``<out>/<row>/seed<k>``, so ``--out``
must be on a file system the nodes share).  The job scripts and Slurm's output files are in
``<out>/slurm/``; the job ids are in ``<out>/slurm_jobs.json`` (written atomically after every submission).

Calling it again decides each row from two facts: its run directory (finished or diverged: done, nothing is
submitted) and whether its last job is still alive.  Liveness comes from ``squeue -t all`` (pending,
running, completing, suspended ... : left alone); ``sacct`` is not used because clusters without
accounting storage (and the test cluster) have none, and a job that ``squeue`` no longer knows is over in
any case.  Any other row -- never submitted, failed, cancelled, timed out, preempted, or its job gone -- is
submitted again, and :func:`~gluon_resnetv2.experiments.run_experiment` resumes it from its last checkpoint
(a job killed by Slurm gets SIGTERM, then SIGKILL).  The report is rewritten from what has finished, with the
Slurm job of every row that has no number yet.
"""

import json
import os
import shlex
import subprocess
import sys
import time

from ..fileio import atomic_write_text
from ..train.devices import parse_gpus
from ..validate import positive_int
from .report import write_report
from .scales import get_scale
from .scheduler import _plan
from .state import _check_same_run, _read_json, locked_out, run_state
from .suites import get_experiments

JOBS_NAME = "slurm_jobs.json"
#: squeue states of a job that is not over (a row with such a job is left alone).
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "CONFIGURING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
        "RESV_DEL_HOLD",
        "SPECIAL_EXIT",
    }
)


def _slurm(argv, what):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise RuntimeError(f"--slurm needs Slurm's {argv[0]} on PATH (Debian package slurm-client) to {what}") from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{argv[0]} did not answer within 120 s; is slurmctld up? ({' '.join(argv)})") from None


def job_states(job_ids):
    """``{job id: squeue state}`` of the jobs Slurm still knows (finished jobs drop out after MinJobAge)."""
    job_ids = sorted({str(j) for j in job_ids if j})
    if not job_ids:
        return {}
    result = _slurm(["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", "%i|%T"], "ask for job states")
    if result.returncode != 0:
        if "Invalid job id" in result.stderr:  # every id is unknown by now
            return {}
        raise RuntimeError(f"squeue failed: {result.stderr.strip() or result.stdout.strip()}")
    states = {}
    for line in result.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job in job_ids:
            states[job] = state.strip()
    return states


def decide(run_state, job_state):
    """What a call does with one row: 'done' (its run finished or diverged), 'active' (its job is not over:
    left alone) or 'submit' (never submitted, or its job ended without finishing the run)."""
    if run_state in ("finished", "failed"):
        return "done"
    if job_state in ACTIVE_STATES:
        return "active"
    return "submit"


def job_script(spec, name, log_path, cwd, python=None):
    """The batch script of one row: ``--job`` in ``cwd``, threads = the CPUs Slurm gives the task."""
    python = python or sys.executable
    return "\n".join(
        [
            "#!/bin/sh",
            f"#SBATCH --job-name={name}",
            f"#SBATCH --output={log_path}",
            "#SBATCH --ntasks=1",
            'if [ -n "$SLURM_CPUS_PER_TASK" ]; then',
            "  export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK MXNET_CPU_WORKER_NTHREADS=$SLURM_CPUS_PER_TASK",
            "fi",
            f"cd {shlex.quote(cwd)} || exit 1",
            f"exec {shlex.quote(python)} -m gluon_resnetv2.experiments --job {shlex.quote(json.dumps(spec))}",
            "",
        ]
    )


def submit(script_path, slurm_args=()):
    """``sbatch --parsable [slurm_args] SCRIPT``; returns the job id."""
    result = _slurm(["sbatch", "--parsable", *slurm_args, script_path], "submit jobs")
    if result.returncode != 0:
        raise RuntimeError(f"sbatch refused {script_path}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip().split(";")[0]


def read_jobs(out):
    """``{'<row>/seed<k>': {'job': id, 'history': [ids]}}`` of ``<out>/slurm_jobs.json``."""
    return (_read_json(os.path.join(out, JOBS_NAME)) or {}).get("rows", {})


def submit_table(
    table,
    out,
    scale="quick",
    rows=None,
    dataset=None,
    data_dir=None,
    seeds=1,
    gpus=None,
    threads=None,
    iterations=None,
    batch_size=None,
    slurm_args="",
    log=print,
    image_size=None,
):
    """Submit the pending rows of ``table`` (module docstring); returns ``{row/seed: action}`` with action
    'done', 'active' or 'submitted', after rewriting ``<out>/report.md``.

    ``gpus``: GPUs per row job (an index list such as "0,1": only its length counts, since Slurm's
    ``--gres=gpu:N`` numbers each job's GPUs from 0).  ``threads``: ``--cpus-per-task`` (and the threads).
    ``slurm_args``: sbatch options for every job (a string or a list), e.g. ``"--time=4:00:00 -p gpu"``.
    """

    positive_int.check(seeds, "seeds")
    positive_int.check(threads, "threads")
    args = shlex.split(slurm_args) if isinstance(slurm_args, str) else list(slurm_args or ())
    num_gpus = len(parse_gpus(gpus)) if gpus is not None else 0
    if num_gpus:
        args.append(f"--gres=gpu:{num_gpus}")
    if threads:
        args.append(f"--cpus-per-task={int(threads)}")
    out = os.path.abspath(out)
    experiments = get_experiments(table, scale, rows, dataset, iterations, batch_size, image_size)
    with locked_out(out):  # a second reproduce (local or --slurm) on this --out refuses at the start
        jobs, alias = _plan(experiments, seeds, out)
        os.makedirs(os.path.join(out, "slurm"), exist_ok=True)
        meta = dict(
            table=experiments[0].table,
            scale=get_scale(scale).name,
            seeds=seeds,
            rows=[e.key for e in experiments],
            dataset=dataset,
            slurm=True,
        )
        atomic_write_text(os.path.join(out, "reproduce.json"), json.dumps(meta, indent=2))

        records = read_jobs(out)
        states = job_states(r.get("job") for r in records.values())
        actions, notes = {}, {}
        for exp, seed, run_dir in jobs:
            name = f"{exp.key}/seed{seed}"
            record = records.get(name, {})
            job_state = states.get(str(record.get("job")))
            state = run_state(run_dir)
            if state != "missing":  # a clear error now rather than in every job's output
                _check_same_run(run_dir, exp.config(run_dir, seed, data_dir))
            action = decide(state, job_state)
            if action == "submit":
                ended = (
                    f" (job {record['job']} ended{': ' + job_state if job_state else ''}, run {state})"
                    if record.get("job")
                    else ""
                )
                spec = dict(
                    experiment=exp.to_dict(),
                    run_dir=run_dir,
                    seed=seed,
                    data_dir=data_dir,
                    gpus=list(range(num_gpus)) or None,
                )
                base = os.path.join(out, "slurm", f"{exp.key}-seed{seed}")
                atomic_write_text(
                    base + ".sh", job_script(spec, f"gr2-{exp.table}-{exp.key}-s{seed}", base + "-%j.out", os.getcwd())
                )
                job = submit(base + ".sh", args)
                records[name] = dict(job=job, history=record.get("history", []) + [job], submitted=time.time())
                atomic_write_text(os.path.join(out, JOBS_NAME), json.dumps({"rows": records}, indent=2))
                log(f"{exp.table}/{name}: submitted as Slurm job {job}{ended}")
                action, job_state = "submitted", "PENDING"
            elif action == "active":
                log(f"{exp.table}/{name}: Slurm job {record['job']} is {job_state}; left alone")
            actions[name] = action
            if action != "done":
                notes.setdefault(exp.key, []).append(f"Slurm job {records[name]['job']} {job_state}")
        path = write_report(out, experiments, seeds, alias, {k: ", ".join(v) for k, v in notes.items()})
        counts = {a: sum(1 for v in actions.values() if v == a) for a in ("done", "active", "submitted")}
        log(
            f"{experiments[0].table}: {counts['done']} done, {counts['active']} queued or running, "
            f"{counts['submitted']} submitted; wrote {path}"
        )
        return actions
