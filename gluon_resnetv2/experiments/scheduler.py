"""Running a table: each row's run brought to an end (:func:`run_experiment`), the rows one after the other or
``parallel`` at a time in child processes (:func:`run_table`)."""

import dataclasses
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .. import cpu, procs
from ..train import resume, train
from ..train.checkpoint import read_checkpoint_state
from ..train.devices import parse_gpus, preflight_gpus
from ..train.recipe import DTYPES
from ..train.runlog import write_status
from ..validate import check_choice, positive_int
from .report import write_report
from .scales import get_scale
from .state import _check_same_run, _read_status, _record_attempt, locked_out, run_dir_of, run_state
from .suites import get_experiments


def run_experiment(exp, run_dir, seed=0, data_dir=None, gpus=None, num_workers=None, progress=False, log=print):
    """Bring ``exp``'s run in ``run_dir`` to an end: skip it if it finished or diverged, resume it from its
    checkpoint if it was interrupted, else train it.  Returns its status dict.  An exception inside training
    is recorded (status 'error', retried next time) and re-raised only for bad settings (ValueError)."""

    state = run_state(run_dir)
    if num_workers is None:
        num_workers = get_scale(exp.scale).num_workers
    config = exp.config(run_dir, seed, data_dir, gpus, num_workers, progress)
    if state != "missing":
        _check_same_run(run_dir, config)
    if state in ("finished", "failed"):
        _record_attempt(run_dir, mode="skip", state=state)
        log(f"{exp.table}/{exp.key} seed {seed}: skipped, already {state} in {run_dir}")
        return _read_status(run_dir)
    if state == "running":
        log(f"{exp.table}/{exp.key} seed {seed}: skipped, being run by another process")
        return _read_status(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    try:
        if state == "resumable":
            iteration = read_checkpoint_state(run_dir).get("iteration")
            log(f"{exp.table}/{exp.key} seed {seed}: resuming at iteration {iteration}")
            _record_attempt(run_dir, mode="resume", iteration=iteration)
            # Only what was given now overrides the run's config.json (a GPU run resumed without --gpus
            # stays on its GPUs).
            overrides = {"progress": progress, "num_workers": num_workers}
            if gpus:
                overrides["gpus"] = list(gpus)
            if data_dir is not None:
                overrides["data_dir"] = data_dir
            status = resume(run_dir, **overrides)
        else:
            log(
                f"{exp.table}/{exp.key} seed {seed}: training {exp.model} on {exp.dataset}, {exp.iterations} iterations"
            )
            _record_attempt(run_dir, mode="train", iteration=0)
            status = train(config)
    except (ValueError, FileNotFoundError):
        raise
    except Exception as err:  # noqa: BLE001  (any failure is recorded, the table goes on; the next call retries)
        write_status(run_dir, "error", reason=f"{type(err).__name__}: {err}", pid=os.getpid())
        log(f"{exp.table}/{exp.key} seed {seed}: error: {type(err).__name__}: {err}")
        return {"status": "error", "reason": str(err)}
    return status


def _plan(experiments, seeds, out):
    """``[(experiment, seed, run_dir)]`` with rows that are the same run (same signature) sharing one
    directory, and ``{key: key of the row whose run it shares}``."""
    first, alias, jobs = {}, {}, []
    for exp in experiments:
        sig = exp.signature()
        if sig in first:
            alias[exp.key] = first[sig]
            continue
        first[sig] = exp.key
        for seed in range(exp.seeds(seeds)):
            jobs.append((exp, seed, run_dir_of(out, exp.key, seed)))
    return jobs, alias


def _split_devices(gpus, parallel):
    """``--gpus`` split into ``parallel`` contiguous groups of equal size (each job trains on its own devices:
    every row on as many GPUs, so that the rows split their batches alike and stay comparable)."""
    if not gpus:
        return [None] * parallel
    if len(gpus) < parallel:
        raise ValueError(f"--parallel {parallel} needs at least {parallel} GPUs, --gpus gives {len(gpus)}")
    size = len(gpus) // parallel
    return [list(gpus[i * size : (i + 1) * size]) for i in range(parallel)]


def _idle_gpus_warning(gpus, parallel):
    """The one line that says which GPUs equal groups leave unused, or None."""
    if not gpus or parallel < 2 or len(gpus) % parallel == 0:
        return None
    size = len(gpus) // parallel
    idle = gpus[size * parallel :]
    return (
        f"--gpus {','.join(map(str, gpus))} --parallel {parallel}: each row trains on {size} GPU(s), so GPU(s) "
        f"{','.join(map(str, idle))} stay idle; give a GPU count divisible by --parallel to use them all"
    )


def _gpu_child_threads(parallel):
    """OpenMP threads of each GPU row's process: its share of the physical cores when the count is the
    package's default (every core, which ``parallel`` processes would each take), else the user's setting."""
    in_use = cpu.in_use()
    if in_use["source"] != "physical cores":
        return None  # an explicit OMP_NUM_THREADS (or MXNET_OMP_MAX_THREADS) passes through unchanged
    return max(1, cpu.physical_cores() // parallel)


def run_table(
    table: str,
    out: str,
    scale: str = "quick",
    rows: str | Sequence[str] | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    seeds: int = 1,
    gpus: str | Sequence[int] | None = None,
    threads: int | None = None,
    parallel: int = 1,
    iterations: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    log: Callable[[str], Any] = print,
    image_size: int | None = None,
    dtype: str = "float32",
) -> str:
    """Run the rows of ``table`` (see the module docstring) and write ``<out>/report.md``; returns its path.

    ``seeds``: runs per row (seeds 0 .. seeds-1; the report gives the median, Table 4 style).
    ``parallel``: rows run at a time, each in its own process with its share of ``gpus`` (a list of GPU
    indices, split into equal groups: a remainder stays idle, with a warning) or of ``threads`` (CPU threads
    in all; default: every physical core, which GPU rows share as well).
    ``dtype``: every run's ``--dtype`` (``bfloat16`` needs AVX-512 BF16, see :mod:`.train.bf16`).
    """

    for name, value in dict(
        seeds=seeds, parallel=parallel, threads=threads, iterations=iterations, batch_size=batch_size
    ).items():
        positive_int.check(value, name)
    check_choice(dtype, DTYPES, "dtype")
    gpus = parse_gpus(gpus) if gpus is not None else None
    if gpus is not None and threads is not None:
        raise ValueError("give either --gpus or --threads, not both")
    experiments = [
        dataclasses.replace(e, dtype=dtype)
        for e in get_experiments(table, scale, rows, dataset, iterations, batch_size, image_size)
    ]
    if parallel > 1:
        _split_devices(gpus, parallel)  # too few GPUs for --parallel: refused before anything is created
        idle = _idle_gpus_warning(gpus, parallel)
        if idle:
            warnings.warn(idle, stacklevel=2)
    if gpus:
        # Once, before anything is created: a CPU build of MXNet (or GPUs it cannot use) stops the table
        # here instead of failing row by row.
        preflight_gpus(gpus)
    with locked_out(out):
        return _run_locked(experiments, out, seeds, gpus, threads, parallel, data_dir, progress, log, dataset, scale)


def _run_locked(experiments, out, seeds, gpus, threads, parallel, data_dir, progress, log, dataset, scale):
    """The body of :func:`run_table`, run while this process holds ``<out>/.lock``."""
    jobs, alias = _plan(experiments, seeds, out)
    meta = dict(
        table=experiments[0].table,
        scale=get_scale(scale).name,
        seeds=seeds,
        rows=[e.key for e in experiments],
        dataset=dataset,
    )
    with open(os.path.join(out, "reproduce.json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=2)

    def report():
        return write_report(out, experiments, seeds, alias)

    # MXNet fixes its OpenMP thread count when libmxnet loads: other --threads than this process's own need
    # a child process, even one row at a time.
    if parallel == 1 and threads in (None, cpu.in_use()["threads"]):  # (--threads excludes --gpus, above)
        for exp, seed, run_dir in jobs:
            run_experiment(exp, run_dir, seed, data_dir, gpus, progress=progress, log=log)
            report()
    else:
        _run_parallel(jobs, parallel, _split_devices(gpus, parallel), threads, data_dir, report, log)
    path = report()
    log(f"wrote {path}")
    return path


def _run_parallel(jobs, parallel, devices, threads, data_dir, report, log):
    """Run ``jobs`` ``parallel`` at a time (:func:`gluon_resnetv2.procs.run`), each in a child process
    (``python -m gluon_resnetv2.experiments --job``) with its slot's GPUs, or its share of the CPU threads
    (a GPU row too: its CPU side -- data loading, host operators -- gets its share of the physical cores)."""
    gpu_threads = _gpu_child_threads(parallel)
    threads = max(1, (threads or cpu.physical_cores()) // parallel)  # default: every physical core

    def start(job, slot):
        exp, seed, run_dir = job
        if run_state(run_dir) in ("finished", "failed"):
            run_experiment(exp, run_dir, seed, log=log)  # records the skip
            return None
        spec = json.dumps(
            dict(experiment=exp.to_dict(), run_dir=run_dir, seed=seed, data_dir=data_dir, gpus=devices[slot])
        )
        env = dict(os.environ)
        if devices[slot] is None:
            env.update(OMP_NUM_THREADS=str(threads), MXNET_CPU_WORKER_NTHREADS=str(threads))
        elif gpu_threads is not None:
            env.update(OMP_NUM_THREADS=str(gpu_threads))
        log(
            f"{exp.table}/{exp.key} seed {seed}: started on "
            f"{'GPUs ' + ','.join(map(str, devices[slot])) if devices[slot] else f'{threads} CPU threads'}"
        )
        return subprocess.Popen([sys.executable, "-m", "gluon_resnetv2.experiments", "--job", spec], env=env)

    def ended(job, code):
        exp, seed, _ = job
        if code:
            log(f"{exp.table}/{exp.key} seed {seed}: process ended with code {code}")
        report()

    procs.run(jobs, start, parallel, on_exit=ended, interval=0.5)
