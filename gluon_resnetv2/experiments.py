"""The paper's Tables 1-4 as experiment suites: every row is a named experiment that can be run, resumed
and reported against the paper's number.

He, Zhang, Ren, Sun, *Identity Mappings in Deep Residual Networks* (ECCV 2016):

* Table 1 -- shortcut variants of Fig. 2 on ResNet-110 (original unit), CIFAR-10;
* Table 2 -- activation variants of Fig. 4 on ResNet-110 and ResNet-164, CIFAR-10;
* Table 3 -- original vs pre-activation units, ResNet-110 (1-layer skip), -110, -164, -1001, CIFAR-10/100;
* Table 4 -- ResNet-1001 with pre-activation, mini-batch 128 and 64, CIFAR-10/100 (median of ``--seeds``).

The paper's numbers come from :mod:`gluon_resnetv2.paper_results` (one source of truth).  Two scales:

``paper``
    The paper's recipe on the row's own data set: 64k iterations, mini-batch 128 (Table 4: 64 where the
    paper says so), lr 0.1 divided by 10 at 32k and 48k, warm-up at 0.01 for the first 400 iterations,
    SGD momentum 0.9, weight decay 1e-4, the paper's networks.
``quick``
    A shape-preserving miniature that a 2-core CPU finishes for a whole table in under an hour, on
    Fashion-MNIST (the project's embedded data set): :data:`QUICK_ITERATIONS` iterations of mini-batch
    128 (about 0.85 epoch), the same schedule shape (lr /10 at 1/2 and 3/4 of the run, warm-up for 1/160
    of it), and networks shrunk to the deepest that fits (:data:`QUICK_MODELS`): ResNet-110 -> ResNet-20,
    ResNet-110 (1-layer skip) -> 20 single-conv layers, ResNet-164 -> a 29-layer bottleneck net,
    ResNet-1001 -> a 56-layer bottleneck net.  **Its numbers are not comparable to the paper's**; they
    show whether the variants train at all and how they rank at this size.

Runs live in ``<out>/<row>/seed<k>/`` (a :func:`gluon_resnetv2.train.train` run directory).  Running a
table again skips rows that finished or diverged, resumes interrupted ones from their checkpoint
(:func:`gluon_resnetv2.train.resume`), and retries those that stopped on an error.  ``<out>/report.md``
and ``<out>/figures/*.png`` are rewritten after every run.
"""
import argparse
import dataclasses
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Optional

from . import paper_results as paper
from .paper_results import FAIL_THRESHOLD
from .train.checkpoint import atomic_write_text

#: Tables whose rows can be run (Table 5, ImageNet, is listed for reference only).
RUNNABLE_TABLES = ("table1", "table2", "table3", "table4")

SCALE_NAMES = ("quick", "paper")

#: The paper's run: 64k iterations with a 400-iteration warm-up (Sec. 4 / Appendix).
PAPER_ITERATIONS = 64000
PAPER_WARMUP = 400

#: Length of a quick run, in iterations of mini-batch 128.
QUICK_ITERATIONS = 400

#: Quick scale: the paper's network -> the deepest of the same kind that fits the time budget.
QUICK_MODELS = {}
for _v in ("v1", "v2"):
    QUICK_MODELS.update({
        f"cifar_resnet110_{_v}": f"cifar_resnet20_{_v}",
        f"cifar_resnet110_1layer_{_v}": f"cifar_resnet20_1layer_{_v}",
        f"cifar_resnet164_{_v}": f"cifar_resnet29_bottleneck_{_v}",
        f"cifar_resnet1001_{_v}": f"cifar_resnet56_bottleneck_{_v}",
    })

# Networks the quick scale needs beyond the zoo's names: (name, depth, branch).
_QUICK_SPECS = [(f"cifar_resnet20_1layer_{v}", 20, "single") for v in ("v1", "v2")]
_QUICK_SPECS += [(f"cifar_resnet{d}_bottleneck_{v}", d, "bottleneck") for d in (29, 56) for v in ("v1", "v2")]


def register_quick_models():
    """Register the quick scale's small networks in the zoo (idempotent).  Done on demand, not at import,
    so that importing this module does not change :func:`gluon_resnetv2.list_models`."""
    from .nets import zoo

    for name, depth, branch in _QUICK_SPECS:
        if name not in zoo.list_models():
            zoo.register(zoo.ModelSpec(name, "cifar", depth, branch, zoo.VERSIONS[name[-2:]],
                                       "quick scale of gluon_resnetv2.experiments"))


@dataclasses.dataclass(frozen=True)
class Scale:
    """How a table's rows are turned into training runs."""

    name: str
    description: str
    dataset: Optional[str]            # None: each row's own (cifar10 / cifar100)
    iterations: int
    batch_size: Optional[int]         # None: the row's (paper: 128, Table 4 may say 64)
    eval_interval: Optional[int]      # None: every epoch
    eval_subset: Optional[int]        # periodic evaluations on this many test images (the last on all)
    checkpoint_interval: Optional[int]
    log_interval: int
    comparable: bool                  # whether the numbers may be compared with the paper's
    num_workers: int = 1              # loader threads (augmentation): 1 on a 2-core CPU, more to feed GPUs


SCALES = {
    "paper": Scale("paper", "the paper's recipe: the row's data set and network, 64k iterations of mini-batch 128, "
                   "lr 0.1 /10 at 32k and 48k, warm-up 0.01 for 400 iterations", None, PAPER_ITERATIONS, None,
                   None, None, None, 50, True, 4),
    "quick": Scale("quick", f"Fashion-MNIST, {QUICK_ITERATIONS} iterations of mini-batch 128 (about 0.85 epoch), lr "
                   "0.1 /10 at 1/2 and 3/4 of the run, warm-up for 1/160 of it, networks shrunk to the deepest "
                   "that fits (ResNet-110 -> 20 layers, 164 -> 29 bottleneck, 1001 -> 56 bottleneck)",
                   "fashion-mnist", QUICK_ITERATIONS, 128, 100, 1000, 50, 10, False, 1),
}


def get_scale(scale):
    if isinstance(scale, Scale):
        return scale
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    return SCALES[scale]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One row of a paper table made into a training run (see :func:`get_experiments`)."""

    table: str
    key: str
    scale: str
    model: str
    dataset: str
    model_kwargs: dict = dataclasses.field(hash=False)
    iterations: int = PAPER_ITERATIONS
    batch_size: int = 128
    warmup: int = PAPER_WARMUP
    eval_interval: Optional[int] = None
    eval_subset: Optional[int] = None
    checkpoint_interval: Optional[int] = None
    log_interval: int = 50

    @property
    def paper(self):
        """The :class:`~gluon_resnetv2.paper_results.PaperRow` this experiment reproduces."""
        return paper.get_row(self.table, self.key)

    @property
    def label(self):
        """Legend label: the row key and the network actually run."""
        return f"{self.key} ({self.model})"

    def signature(self):
        """Everything that determines the result; two rows with one signature are one run."""
        data = dataclasses.asdict(self)
        for name in ("table", "key", "scale"):
            data.pop(name)
        return json.dumps(data, sort_keys=True)

    def config(self, out, seed=0, data_dir=None, gpus=None, num_workers=1, progress=False):
        """The :class:`~gluon_resnetv2.train.TrainConfig` of this experiment's run in ``out``."""
        from .train.recipe import TrainConfig

        return TrainConfig(model=self.model, dataset=self.dataset, out=out, model_kwargs=dict(self.model_kwargs),
                           data_dir=data_dir, gpus=list(gpus) if gpus else None, batch_size=self.batch_size,
                           iterations=self.iterations, warmup=self.warmup, seed=seed,
                           log_interval=self.log_interval, eval_interval=self.eval_interval,
                           eval_subset=self.eval_subset, checkpoint_interval=self.checkpoint_interval,
                           num_workers=num_workers, progress=progress, label=f"{self.table}/{self.key}")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**data)


def _warmup(iterations):
    # The paper warms up for 400 of 64k iterations; keep that fraction for other lengths.
    return max(1, round(iterations * PAPER_WARMUP / PAPER_ITERATIONS)) if iterations != PAPER_ITERATIONS \
        else PAPER_WARMUP


def experiment_for(row, scale="quick", dataset=None, iterations=None, batch_size=None):
    """The :class:`Experiment` of a :class:`~gluon_resnetv2.paper_results.PaperRow` at ``scale``.

    ``dataset``, ``iterations`` and ``batch_size`` override the scale's choice (the row's paper number
    stays for reference).
    """
    scale = get_scale(scale)
    if row.table not in RUNNABLE_TABLES:
        raise ValueError(f"{row.table} ({row.dataset}) is listed for reference only; train its networks with "
                         f"`gluon-resnetv2 train --model {row.model} --dataset imagenet`")
    model = row.model
    if scale.name == "quick":
        register_quick_models()
        model = QUICK_MODELS[model]
    iterations = int(iterations) if iterations is not None else scale.iterations
    if iterations < 1:
        raise ValueError(f"iterations must be positive, got {iterations}")
    # The row's own mini-batch (Table 4: 64) is the point of that row, so it wins over the scale's.
    batch = batch_size or row.batch_size or scale.batch_size or 128
    interval = scale.checkpoint_interval
    if interval and interval >= iterations:
        interval = max(1, iterations // 4)
    return Experiment(row.table, row.key, scale.name, model, dataset or scale.dataset or row.dataset,
                      dict(row.model_kwargs), iterations, batch, _warmup(iterations),
                      min(scale.eval_interval, iterations) if scale.eval_interval else None, scale.eval_subset,
                      interval, min(scale.log_interval, iterations))


def select_rows(table, rows=None):
    """The :class:`~gluon_resnetv2.paper_results.PaperRow` list of ``table``, restricted to ``rows`` (keys,
    a list or a comma-separated string).  ValueError names unknown keys and the valid ones."""
    all_rows = paper.get_table(table)
    if rows is None or rows == "" or rows == []:
        return list(all_rows)
    keys = [k.strip() for k in rows.split(",")] if isinstance(rows, str) else [str(k).strip() for k in rows]
    keys = [k for k in keys if k]
    known = {row.key: row for row in all_rows}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(f"{all_rows[0].table} has no row(s) {', '.join(map(repr, unknown))}; its rows are "
                         f"{', '.join(known)}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"--rows names a row twice: {','.join(keys)}")
    return [known[k] for k in keys]


def get_experiments(table, scale="quick", rows=None, dataset=None, iterations=None, batch_size=None):
    """The experiments of ``table`` (all rows, or ``rows``) at ``scale``."""
    return [experiment_for(row, scale, dataset, iterations, batch_size) for row in select_rows(table, rows)]


def format_list(table, scale="quick", rows=None, dataset=None, iterations=None, batch_size=None):
    """``reproduce TABLE --list``: every row with the paper's number and the run the scale makes of it."""
    selected = select_rows(table, rows)
    name = selected[0].table
    lines = [paper.TITLES[name], ""]
    runnable = name in RUNNABLE_TABLES
    header = f"{'row':<28} {'network':<26} {'unit variant':<52} {'data':<9} {'paper %':>8}"
    if runnable:
        header += f"  run at scale {get_scale(scale).name}"
    lines.append(header)
    for row in selected:
        value = row.error_text + (f" / {row.top5:.1f}" if row.top5 is not None else "")
        line = f"{row.key:<28} {row.network:<26} {row.variant:<52} {row.dataset:<9} {value:>8}"
        if runnable:
            exp = experiment_for(row, scale, dataset, iterations, batch_size)
            kwargs = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in exp.model_kwargs.items())
            line += f"  {exp.model}{'[' + kwargs + ']' if kwargs else ''} on {exp.dataset}, {exp.iterations} it x {exp.batch_size}"
        lines.append(line)
    if not runnable:
        lines += ["", "(ImageNet rows are listed for reference; train them with `gluon-resnetv2 train`.)"]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- running

ATTEMPTS_NAME = "reproduce.json"


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def run_state(run_dir):
    """What is in ``run_dir``: 'missing', 'finished', 'failed' (diverged: the paper's fail), 'running'
    (another live process), 'resumable' (stopped with a checkpoint), 'restart' (stopped before its first
    checkpoint) or 'error' (stopped on an exception; retried)."""
    from .train.checkpoint import checkpoint_path

    status = _read_json(os.path.join(run_dir, "status.json"))
    if status is None:
        return "resumable" if os.path.isfile(checkpoint_path(run_dir)) else "missing"
    state = status.get("status")
    if state in ("finished", "failed"):
        return state
    if state == "running" and status.get("pid") not in (None, os.getpid()) and _pid_alive(status.get("pid")):
        return "running"
    return "resumable" if os.path.isfile(checkpoint_path(run_dir)) else ("error" if state == "error" else "restart")


def _record_attempt(run_dir, **fields):
    path = os.path.join(run_dir, ATTEMPTS_NAME)
    data = _read_json(path) or {"attempts": []}
    data["attempts"].append(dict(fields, pid=os.getpid(), time=time.time()))
    os.makedirs(run_dir, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2))


def attempts(run_dir):
    """The list of attempts :func:`run_experiment` made in ``run_dir`` (mode 'train', 'resume', 'skip')."""
    return (_read_json(os.path.join(run_dir, ATTEMPTS_NAME)) or {}).get("attempts", [])


_SETTINGS = ("model", "dataset", "model_kwargs", "iterations", "batch_size", "warmup", "seed")


def _check_same_run(run_dir, config):
    saved = _read_json(os.path.join(run_dir, "config.json"))
    if not saved:
        return
    new = config.to_dict()
    diff = [k for k in _SETTINGS if saved.get(k) != new.get(k)]
    if diff:
        details = "; ".join(f"{k}: {saved.get(k)!r} there, {new.get(k)!r} now" for k in diff)
        raise ValueError(f"{run_dir} holds a run with other settings ({details}); choose another --out")


def run_experiment(exp, run_dir, seed=0, data_dir=None, gpus=None, num_workers=None, progress=False, log=print):
    """Bring ``exp``'s run in ``run_dir`` to an end: skip it if it finished or diverged, resume it from its
    checkpoint if it was interrupted, else train it.  Returns its status dict.  An exception inside training
    is recorded (status 'error', retried next time) and re-raised only for bad settings (ValueError)."""
    from .train import resume, train
    from .train.runlog import write_status

    state = run_state(run_dir)
    if num_workers is None:
        num_workers = get_scale(exp.scale).num_workers
    config = exp.config(run_dir, seed, data_dir, gpus, num_workers, progress)
    if state != "missing":
        _check_same_run(run_dir, config)
    if state in ("finished", "failed"):
        _record_attempt(run_dir, mode="skip", state=state)
        return _read_json(os.path.join(run_dir, "status.json"))
    if state == "running":
        log(f"{exp.table}/{exp.key} seed {seed}: skipped, being run by another process")
        return _read_json(os.path.join(run_dir, "status.json"))
    os.makedirs(run_dir, exist_ok=True)
    try:
        if state == "resumable":
            from .train.checkpoint import read_checkpoint_state
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
            log(f"{exp.table}/{exp.key} seed {seed}: training {exp.model} on {exp.dataset}, {exp.iterations} iterations")
            _record_attempt(run_dir, mode="train", iteration=0)
            status = train(config)
    except (ValueError, FileNotFoundError):
        raise
    except Exception as err:  # recorded so that the table goes on; the next call retries the row
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
        for seed in range(seeds):
            jobs.append((exp, seed, run_dir_of(out, exp.key, seed)))
    return jobs, alias


def run_dir_of(out, key, seed):
    return os.path.join(out, key, f"seed{seed}")


def _split_devices(gpus, parallel):
    """``--gpus`` split into ``parallel`` contiguous groups (each job trains on its own devices)."""
    if not gpus:
        return [None] * parallel
    if len(gpus) < parallel:
        raise ValueError(f"--parallel {parallel} needs at least {parallel} GPUs, --gpus gives {len(gpus)}")
    size = len(gpus) // parallel
    return [list(gpus[i * size:(i + 1) * size]) for i in range(parallel)]


def run_table(table, out, scale="quick", rows=None, dataset=None, data_dir=None, seeds=1, gpus=None, cpus=None,
              parallel=1, iterations=None, batch_size=None, progress=False, log=print):
    """Run the rows of ``table`` (see the module docstring) and write ``<out>/report.md``; returns its path.

    ``seeds``: runs per row (seeds 0 .. seeds-1; the report gives the median, Table 4 style).
    ``parallel``: rows run at a time, each in its own process with its share of ``gpus`` (a list of GPU
    indices) or of ``cpus`` (CPU threads in all; default: every core).
    """
    from .train.devices import parse_gpus

    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    if parallel < 1:
        raise ValueError(f"--parallel must be at least 1, got {parallel}")
    gpus = parse_gpus(gpus) if gpus is not None else None
    if gpus is not None and cpus is not None:
        raise ValueError("give either --gpus or --cpus, not both")
    experiments = get_experiments(table, scale, rows, dataset, iterations, batch_size)
    os.makedirs(out, exist_ok=True)
    jobs, alias = _plan(experiments, seeds, out)
    meta = dict(table=experiments[0].table, scale=get_scale(scale).name, seeds=seeds,
                rows=[e.key for e in experiments], dataset=dataset)
    with open(os.path.join(out, "reproduce.json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=2)

    def report():
        return write_report(out, experiments, seeds, alias)

    if parallel == 1:
        for exp, seed, run_dir in jobs:
            run_experiment(exp, run_dir, seed, data_dir, gpus, progress=progress, log=log)
            report()
    else:
        _run_parallel(jobs, parallel, _split_devices(gpus, parallel), cpus, data_dir, report, log)
    path = report()
    log(f"wrote {path}")
    return path


def _run_parallel(jobs, parallel, devices, cpus, data_dir, report, log):
    """Run ``jobs`` ``parallel`` at a time, each in a child process (``python -m gluon_resnetv2.experiments
    --job``) with its slot's GPUs, or its share of the CPU threads."""
    threads = max(1, (cpus or os.cpu_count() or 1) // parallel)
    pending = list(jobs)
    running = {}  # slot -> (Popen, job)
    try:
        while pending or running:
            for slot in range(parallel):
                if slot not in running and pending:
                    exp, seed, run_dir = job = pending.pop(0)
                    if run_state(run_dir) in ("finished", "failed"):
                        run_experiment(exp, run_dir, seed, log=log)  # records the skip
                        continue
                    spec = json.dumps(dict(experiment=exp.to_dict(), run_dir=run_dir, seed=seed,
                                           data_dir=data_dir, gpus=devices[slot]))
                    env = dict(os.environ)
                    if devices[slot] is None:
                        env.update(OMP_NUM_THREADS=str(threads), MXNET_CPU_WORKER_NTHREADS=str(threads))
                    log(f"{exp.table}/{exp.key} seed {seed}: started on "
                        f"{'GPUs ' + ','.join(map(str, devices[slot])) if devices[slot] else f'{threads} CPU threads'}")
                    proc = subprocess.Popen([sys.executable, "-m", "gluon_resnetv2.experiments", "--job", spec],
                                            env=env)
                    running[slot] = (proc, job)
            time.sleep(0.5)
            for slot, (proc, job) in list(running.items()):
                if proc.poll() is not None:
                    del running[slot]
                    exp, seed, run_dir = job
                    if proc.returncode:
                        log(f"{exp.table}/{exp.key} seed {seed}: process ended with code {proc.returncode}")
                    report()
    finally:
        for proc, _ in running.values():  # our own children only
            if proc.poll() is None:
                proc.terminate()
                proc.wait()


# ------------------------------------------------------------------------------------------- the report

def _final(run_dir):
    """``dict(state, error %, iterations, seconds, reason)`` of one run directory."""
    from .plot import read_log

    state = run_state(run_dir)
    status = _read_json(os.path.join(run_dir, "status.json")) or {}
    out = dict(state=state, error=None, iterations=None, seconds=None, reason=status.get("reason"))
    log = None
    if os.path.isfile(os.path.join(run_dir, "log.csv")):
        try:
            log = read_log(run_dir)
        except ValueError:
            log = None
    if log is not None and len(log["iteration"]):
        out["iterations"] = int(log["iteration"][-1])
        times = [t for t in log["time"] if math.isfinite(t)]
        out["seconds"] = times[-1] if times else None
    if state == "finished":
        out["iterations"] = status.get("iteration", out["iterations"])
        out["seconds"] = status.get("elapsed", out["seconds"])
        if status.get("test_error") is not None:
            out["error"] = 100.0 * float(status["test_error"])
    elif state == "failed":
        out["iterations"] = status.get("iteration", out["iterations"])
    return out


def _duration(seconds):
    if seconds is None:
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def summarize(out, experiment, seeds, alias=None):
    """The report's numbers for one row: ``dict(ours, errors, fail, state, iterations, seconds, runs)``.

    ``ours`` is the median test error (%) of the finished seeds; a diverged seed counts as a fail (infinite
    error) in the median; ``fail`` is the paper's criterion, test error above 20 %.
    """
    key = (alias or {}).get(experiment.key, experiment.key)
    finals = [_final(run_dir_of(out, key, s)) for s in range(seeds)]
    done = [f for f in finals if f["state"] in ("finished", "failed")]
    errors = [f["error"] if f["state"] == "finished" else math.inf for f in done]
    errors = [e for e in errors if e is not None]
    ours = statistics.median(errors) if errors else None
    states = sorted({f["state"] for f in finals})
    iterations = [f["iterations"] for f in finals if f["iterations"] is not None]
    seconds = [f["seconds"] for f in finals if f["seconds"] is not None]
    return dict(ours=ours, errors=errors, fail=ours is not None and ours > FAIL_THRESHOLD,
                complete=len(done) == seeds, state=states[0] if len(states) == 1 else "/".join(states),
                iterations=max(iterations) if iterations else None, seconds=sum(seconds) if seconds else None,
                diverged=sum(f["state"] == "failed" for f in finals), shared=key if key != experiment.key else None,
                reasons=[f["reason"] for f in finals if f["reason"]])


REPORT_COLUMNS = ("row", "network (paper)", "unit variant", "run", "paper error %", "our error %", "difference",
                  "iterations", "wall time", "result")


def _fmt(value):
    if value is None:
        return ""
    if value == math.inf:
        return "diverged"
    return f"{value:.2f}"


def report_rows(out, experiments, seeds=1, alias=None, notes=None):
    """One dict per experiment with the :data:`REPORT_COLUMNS` (strings, as written in report.md); ``notes``
    (``{key: text}``, e.g. a row's Slurm job) is the result of a row that has no number yet."""
    rows = []
    for exp in experiments:
        row = exp.paper
        s = summarize(out, exp, seeds, alias)
        ours = s["ours"]
        if ours is None:
            ours_text = ""
        elif ours == math.inf:
            ours_text = "diverged"
        else:
            ours_text = _fmt(ours)
        if seeds > 1 and s["errors"]:
            ours_text += " (median of " + ", ".join(_fmt(e) for e in s["errors"]) + ")"
        diff = ""
        if ours is not None and math.isfinite(ours) and not row.failed:
            diff = f"{ours - row.error:+.2f}"
        if s["ours"] is None:
            result = (notes or {}).get(exp.key) or {
                "running": "running", "missing": "not run", "resumable": "interrupted", "restart": "interrupted",
                "error": "error"}.get(s["state"], s["state"])
        else:
            result = "fail" if s["fail"] else "ok"
            if s["diverged"]:
                diverged = s["diverged"]
                result += " (diverged)" if seeds == 1 else f" (diverged in {diverged} of {seeds})"
            if not s["complete"]:
                result += " (incomplete)"
        if s["shared"]:
            result += f"; same run as {s['shared']}"
        kwargs = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in exp.model_kwargs.items())
        rows.append({"row": exp.key, "network (paper)": row.network, "unit variant": row.variant,
                     "run": f"{exp.model}{' [' + kwargs + ']' if kwargs else ''} on {exp.dataset}",
                     "paper error %": row.error_text, "our error %": ours_text, "difference": diff,
                     "iterations": "" if s["iterations"] is None else str(s["iterations"]),
                     "wall time": _duration(s["seconds"]), "result": result})
    return rows


def _slug(text):
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def plot_groups(out, experiments, alias=None):
    """Figure 3/6-style plots (training loss dashed, test error solid, against iterations), one per group of
    rows the paper compares (Table 1 adds its baseline, the original unit, to every group).  Returns
    ``[(group, path)]``; rows without a log yet are left out."""
    from .plot import plot_runs

    groups = {}
    for exp in experiments:
        groups.setdefault(exp.paper.group, []).append(exp)
    baseline = groups.pop("baseline", [])
    figures = []
    os.makedirs(os.path.join(out, "figures"), exist_ok=True)
    for group, members in groups.items():
        runs = {}
        for exp in baseline + members:
            if exp.key in (alias or {}):
                continue  # the same run is drawn under the row it belongs to
            run_dir = run_dir_of(out, (alias or {}).get(exp.key, exp.key), 0)
            if os.path.isfile(os.path.join(run_dir, "log.csv")) and os.path.getsize(os.path.join(run_dir, "log.csv")) > 80:
                runs[exp.label] = run_dir
        if not runs:
            continue
        path = os.path.join(out, "figures", f"{experiments[0].table}_{_slug(group)}.png")
        plot_runs(runs, path, title=f"{paper.TITLES[experiments[0].table].split(':')[0]}: {group}")
        figures.append((group, path))
    return figures


def write_report(out, experiments, seeds=1, alias=None, notes=None):
    """``<out>/report.md``: the table of :func:`report_rows` and the group figures; returns its path."""
    table = experiments[0].table
    scale = get_scale(experiments[0].scale)
    lines = [f"# {paper.TITLES[table]}", ""]
    first = experiments[0]
    runs = (f"Runs: {', '.join(sorted({e.dataset for e in experiments}))}, {first.iterations} iterations of mini-batch "
            f"{first.batch_size}, warm-up {first.warmup} iterations, lr /10 at 1/2 and 3/4 of the run.")
    if not scale.comparable:
        lines += [f"**Scale `{scale.name}`: these numbers are NOT comparable to the paper's.** {scale.description}. "
                  "They show whether each variant trains and how the variants rank at this size; the paper's "
                  "column is given for orientation only.", ""]
    else:
        lines += [f"Scale `{scale.name}`: {scale.description}.", ""]
    lines += [runs, ""]
    changed = sorted({f"{e.dataset} instead of {e.paper.dataset}" for e in experiments if e.dataset != e.paper.dataset})
    if changed and scale.comparable:
        lines += [f"Data set changed from the paper's: {'; '.join(changed)}.", ""]
    if seeds > 1:
        lines += [f"Our error is the median over {seeds} seeds (a diverged seed counts as an infinite error).", ""]
    lines += [f"\"fail\": test error above {FAIL_THRESHOLD:g} % (the paper's Table 1 criterion). Difference = ours - "
              "paper, in percentage points." + ("" if scale.comparable else
              " At this scale even a network that trains well may sit near the 20 % line after so few "
              "iterations: compare the rows with each other (and with the original unit) rather than with it."), ""]
    rows = report_rows(out, experiments, seeds, alias, notes)
    lines.append("| " + " | ".join(REPORT_COLUMNS) + " |")
    lines.append("|" + "|".join(" --- " if i < 4 else " ---: " for i in range(len(REPORT_COLUMNS) - 1)) + "| --- |")
    for row in rows:
        lines.append("| " + " | ".join(row[c].replace("|", "/") for c in REPORT_COLUMNS) + " |")
    figures = plot_groups(out, experiments, alias)
    if figures:
        lines += ["", "## Training curves", "",
                  "Dashed: training loss (left axis); solid: test error % (right axis); against iterations.", ""]
        for group, path in figures:
            lines += [f"### {group}", "", f"![{group}]({os.path.relpath(path, out)})", ""]
    path = os.path.join(out, "report.md")
    atomic_write_text(path, "\n".join(lines).rstrip() + "\n")
    return path


def parse_report(path):
    """The table of a ``report.md`` back as a list of dicts keyed by :data:`REPORT_COLUMNS`."""
    with open(path, encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle]
    start = next(i for i, line in enumerate(lines) if line.startswith("| row |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip().strip("|").split("|")))))
    return rows


def _job_main(argv=None):
    """Child process of :func:`_run_parallel`: ``python -m gluon_resnetv2.experiments --job JSON``."""
    parser = argparse.ArgumentParser(prog="python -m gluon_resnetv2.experiments")
    parser.add_argument("--job", required=True, help="JSON: experiment, run_dir, seed, data_dir, gpus")
    spec = json.loads(parser.parse_args(argv).job)
    register_quick_models()
    exp = Experiment.from_dict(spec["experiment"])
    status = run_experiment(exp, spec["run_dir"], spec["seed"], spec.get("data_dir"), spec.get("gpus"))
    return 0 if status and status.get("status") in ("finished", "failed") else 1


if __name__ == "__main__":
    sys.exit(_job_main())
