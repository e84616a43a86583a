"""The paper's Tables 1-4 as experiment suites: every row is a named experiment that can be run, resumed
and reported against the paper's number.

He, Zhang, Ren, Sun, *Identity Mappings in Deep Residual Networks* (ECCV 2016):

* Table 1 -- shortcut variants of Fig. 2 on ResNet-110 (original unit), CIFAR-10;
* Table 2 -- activation variants of Fig. 4 on ResNet-110 and ResNet-164, CIFAR-10;
* Table 3 -- original vs pre-activation units, ResNet-110 (1-layer skip), -110, -164, -1001, CIFAR-10/100;
* Table 4 -- ResNet-1001 with pre-activation, mini-batch 128 and 64, CIFAR-10/100 (median of ``--seeds``).

The paper's numbers come from :mod:`gluon_resnetv2.paper_results` (one source of truth).  Two scales:

``paper``
    The paper's recipe on the row's own data set: 64k iterations, mini-batch 128, lr 0.1 divided by 10 at
    32k and 48k, warm-up at 0.01 for the first 400 iterations, SGD momentum 0.9, weight decay 1e-4, the
    paper's networks; a row trained otherwise carries its own recipe (:class:`~.paper_results.RowRecipe`):
    Table 4's mini-batch 64 is the authors' README run, 200 epochs with Nesterov momentum and no warm-up.
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

SCALE_NAMES = ("quick", "depth", "paper")

#: The paper's run: 64k iterations with a 400-iteration warm-up (Sec. 4 / Appendix).
PAPER_ITERATIONS = 64000
PAPER_WARMUP = 400

#: Length of a quick run, in iterations of mini-batch 128.
QUICK_ITERATIONS = 400


@dataclasses.dataclass(frozen=True)
class DepthSetting:
    """The ``depth`` scale of one table: input resolution and run length, the same for every row.  Chosen
    once per table from a pilot of its ``original`` row alone (never per row); the README gives the reason."""

    image_size: int
    iterations: int
    warmup: int                       # iterations at lr 0.01 (see below)
    spread_row: str                   # the row trained with DEPTH_SPREAD_SEEDS seeds (seed-to-seed spread)


#: Depth scale: the paper's networks at their own depth on downsampled Fashion-MNIST.  The warm-up follows
#: the paper's rule, lr 0.01 "until the training error is below 80 %" (about 400 iterations on CIFAR-10,
#: Sec. 4.1), as measured in the table's pilot: the iteration where the original row's logged training
#: error first fell below 80 % at lr 0.01.
DEPTH_SETTINGS = {
    "table1": DepthSetting(16, 1200, 30, "original"),
    "table2": DepthSetting(16, 1200, 30, "original_110"),   # its original_110 row is Table 1's pilot run
    "table3": DepthSetting(8, 800, 20, "resnet110_v1"),
}

#: Seeds of each table's spread row at the depth scale (the other rows: ``--seeds``, default 1).
DEPTH_SPREAD_SEEDS = 3

#: Quick scale: the paper's network -> the deepest of the same kind that fits the time budget (all in the zoo).
QUICK_MODELS = {}
for _v in ("v1", "v2"):
    QUICK_MODELS.update({
        f"cifar_resnet110_{_v}": f"cifar_resnet20_{_v}",
        f"cifar_resnet110_1layer_{_v}": f"cifar_resnet20_1layer_{_v}",
        f"cifar_resnet164_{_v}": f"cifar_resnet29_bottleneck_{_v}",
        f"cifar_resnet1001_{_v}": f"cifar_resnet56_bottleneck_{_v}",
    })

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
    datasets: Optional[tuple] = None  # paper data sets whose rows the scale runs (None: all)


SCALES = {
    "paper": Scale("paper", "the paper's recipe: the row's data set and network, 64k iterations of mini-batch 128, "
                   "lr 0.1 /10 at 32k and 48k, warm-up 0.01 for 400 iterations", None, PAPER_ITERATIONS, None,
                   None, None, None, 50, True, 4),
    "quick": Scale("quick", f"Fashion-MNIST, {QUICK_ITERATIONS} iterations of mini-batch 128 (about 0.85 epoch), lr "
                   "0.1 /10 at 1/2 and 3/4 of the run, warm-up for 1/160 of it, networks shrunk to the deepest "
                   "that fits (ResNet-110 -> 20 layers, 164 -> 29 bottleneck, 1001 -> 56 bottleneck)",
                   "fashion-mnist", QUICK_ITERATIONS, 128, 100, 1000, 50, 10, False, 1),
    "depth": Scale("depth", "each row's own network at the paper's depth (ResNet-110, -164, -1001) on "
                   "Fashion-MNIST averaged down to a small resolution, mini-batch 128 (Table 4: 64), SGD 0.9, "
                   "wd 1e-4, lr 0.1 /10 at 1/2 and 3/4 of a per-table iteration budget, warm-up at 0.01 until "
                   "the training error falls below 80 % (measured once per table); CIFAR-10 rows only", "fashion-mnist", 0, None, None, 2000, None, 10,
                   False, 1, ("cifar10",)),
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
    dataset_options: dict = dataclasses.field(default_factory=dict, hash=False)
    optimizer: str = "sgd"
    lr_steps: Optional[tuple] = dataclasses.field(default=None, hash=False)  # iterations; None: 1/2, 3/4
    dtype: str = "float32"                # --dtype of the runs (bfloat16: AMP on AVX-512 BF16 CPUs)

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
                           iterations=self.iterations, warmup=self.warmup, optimizer=self.optimizer,
                           lr_steps=list(self.lr_steps) if self.lr_steps else None, seed=seed,
                           log_interval=self.log_interval, eval_interval=self.eval_interval,
                           eval_subset=self.eval_subset, checkpoint_interval=self.checkpoint_interval,
                           num_workers=num_workers, progress=progress, label=f"{self.table}/{self.key}",
                           dataset_options=dict(self.dataset_options), dtype=self.dtype)

    def to_dict(self):
        return dataclasses.asdict(self)

    def describe(self, seeds=1):
        """One line: network and variant, data and resolution, iterations x mini-batch, seeds."""
        kwargs = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.model_kwargs.items())
        size = self.dataset_options.get("image_size")
        runs = self.seeds(seeds)
        recipe = (f", lr /10 at {'/'.join(map(str, self.lr_steps))}, warm-up {self.warmup}, {self.optimizer}"
                  if self.lr_steps is not None else "")
        return (f"{self.model}{'[' + kwargs + ']' if kwargs else ''} on {self.dataset}"
                f"{f' {size}x{size}' if size else ''}, {self.iterations} it x {self.batch_size}{recipe}"
                f"{f', {runs} seeds' if runs > 1 else ''}")

    @classmethod
    def from_dict(cls, data):
        return cls(**data)

    def seeds(self, seeds=1):
        """Runs of this row when a table is run with ``seeds`` seeds: at the depth scale the table's spread
        row gets at least :data:`DEPTH_SPREAD_SEEDS`."""
        setting = DEPTH_SETTINGS.get(self.table) if self.scale == "depth" else None
        return max(seeds, DEPTH_SPREAD_SEEDS) if setting and setting.spread_row == self.key else seeds


def _warmup(iterations):
    # The paper warms up for 400 of 64k iterations; keep that fraction for other lengths.
    return max(1, round(iterations * PAPER_WARMUP / PAPER_ITERATIONS)) if iterations != PAPER_ITERATIONS \
        else PAPER_WARMUP


def experiment_for(row, scale="quick", dataset=None, iterations=None, batch_size=None, image_size=None):
    """The :class:`Experiment` of a :class:`~gluon_resnetv2.paper_results.PaperRow` at ``scale``.

    ``dataset``, ``iterations``, ``batch_size`` and ``image_size`` (the data set's ``image_size`` option:
    images averaged down to S x S) override the scale's choice (the row's paper number stays for
    reference).
    """
    scale = get_scale(scale)
    if row.table not in RUNNABLE_TABLES:
        raise ValueError(f"{row.table} ({row.dataset}) is listed for reference only; train its networks with "
                         f"`gluon-resnetv2 train --model {row.model} --dataset imagenet`")
    given_iterations = iterations
    model = row.model
    if scale.name == "quick":
        model = QUICK_MODELS[model]
    options = {}
    setting = DEPTH_SETTINGS.get(row.table) if scale.name == "depth" else None
    if scale.name == "depth":
        if setting is None:
            raise ValueError(f"scale depth covers {', '.join(DEPTH_SETTINGS)}; {row.table} has no depth setting "
                             "(use --scale quick or paper)")
        options["image_size"] = int(image_size) if image_size is not None else setting.image_size
    elif image_size is not None:
        options["image_size"] = int(image_size)
    default_iterations = setting.iterations if setting else scale.iterations
    iterations = int(iterations) if iterations is not None else default_iterations
    if iterations < 1:
        raise ValueError(f"iterations must be positive, got {iterations}")
    # The row's own mini-batch (Table 4: 64) is the point of that row, so it wins over the scale's.
    batch = batch_size or row.batch_size or scale.batch_size or 128
    interval = scale.checkpoint_interval
    eval_interval = scale.eval_interval
    warmup = _warmup(iterations)
    if setting:  # ten evaluations and eight checkpoints a run, whatever its length
        eval_interval, interval = max(1, iterations // 10), max(1, iterations // 8)
        warmup = min(setting.warmup, iterations)
    if interval and interval >= iterations:
        interval = max(1, iterations // 4)
    dataset = dataset or scale.dataset or row.dataset
    # The synthetic set has fewer test images (512) than the scales' subsets: it is evaluated whole.
    subset = None if dataset == "synthetic" else scale.eval_subset
    exp = Experiment(row.table, row.key, scale.name, model, dataset, dict(row.model_kwargs), iterations, batch,
                     warmup, min(eval_interval, iterations) if eval_interval else None, subset,
                     interval, min(scale.log_interval, iterations), options)
    if scale.name == "paper" and row.recipe.epochs is not None:
        exp = _with_row_recipe(exp, row.recipe, given_iterations)
    return exp


def _with_row_recipe(exp, recipe, iterations=None):
    """``exp`` trained with its row's own recipe (Table 4's batch 64: the authors' README run); a given
    ``iterations`` keeps the recipe's milestones as fractions of the run."""
    full = recipe.iterations(exp.batch_size)
    total = int(iterations) if iterations is not None else full
    steps = tuple(int(round(step * total / full)) for step in recipe.lr_steps(exp.batch_size))
    warmup = recipe.warmup if recipe.warmup is not None else _warmup(total)
    return dataclasses.replace(exp, iterations=total, warmup=warmup, optimizer=recipe.optimizer, lr_steps=steps,
                               log_interval=min(exp.log_interval, total))


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


def runs_at(row, scale):
    """Whether ``scale`` runs ``row`` (the depth scale runs the CIFAR-10 rows only: Fashion-MNIST has 10
    classes, so the CIFAR-100 rows have no counterpart there)."""
    datasets = get_scale(scale).datasets
    return datasets is None or row.dataset in datasets


def get_experiments(table, scale="quick", rows=None, dataset=None, iterations=None, batch_size=None,
                    image_size=None):
    """The experiments of ``table`` (all rows, or ``rows``) at ``scale``; rows the scale does not run
    (:func:`runs_at`) are left out, and a ValueError is raised when none is left."""
    selected = [row for row in select_rows(table, rows) if runs_at(row, scale)]
    if not selected:
        raise ValueError(f"scale {get_scale(scale).name} runs none of the selected rows of {table} (it runs "
                         f"{', '.join(get_scale(scale).datasets)} rows only)")
    return [experiment_for(row, scale, dataset, iterations, batch_size, image_size) for row in selected]


def format_list(table, scale="quick", rows=None, dataset=None, iterations=None, batch_size=None, image_size=None):
    """``reproduce TABLE --list``: every row with the paper's number and the run the scale makes of it."""
    selected = select_rows(table, rows)
    name = selected[0].table
    lines = [paper.TITLES[name], ""]
    runnable = name in RUNNABLE_TABLES
    header = f"{'row':<28} {'network':<26} {'unit variant':<52} {'data':<9} {'paper %':>8}  {'recipe':<16}"
    if runnable:
        header += f"  run at scale {get_scale(scale).name}"
    lines.append(header)
    for row in selected:
        value = row.error_text + (f" / {row.top5:.1f}" if row.top5 is not None else "")
        line = f"{row.key:<28} {row.network:<26} {row.variant:<52} {row.dataset:<9} {value:>8}  {row.recipe.name:<16}"
        if runnable and not runs_at(row, scale):
            line += f"  not run at this scale ({row.dataset} row)"
        elif runnable:
            exp = experiment_for(row, scale, dataset, iterations, batch_size, image_size)
            line += f"  {exp.describe()}"
        lines.append(line)
    recipes = {row.recipe.name: row.recipe.source for row in selected}
    title = "Where each row's recipe comes from" + (
        " (applied at scale paper; other scales keep their own schedule):" if runnable else ":")
    lines += ["", title] + [f"  {name}: {source}" for name, source in recipes.items()]
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


_SETTINGS = ("model", "dataset", "model_kwargs", "iterations", "batch_size", "warmup", "seed", "optimizer",
             "lr_steps", "dataset_options", "dtype")
_SETTING_DEFAULTS = {"optimizer": "sgd", "dtype": "float32"}  # a config.json written before the setting existed


def _check_same_run(run_dir, config):
    saved = _read_json(os.path.join(run_dir, "config.json"))
    if not saved:
        return
    saved = {k: saved.get(k, _SETTING_DEFAULTS.get(k)) for k in _SETTINGS}
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
        log(f"{exp.table}/{exp.key} seed {seed}: skipped, already {state} in {run_dir}")
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
        for seed in range(exp.seeds(seeds)):
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


def run_table(table, out, scale="quick", rows=None, dataset=None, data_dir=None, seeds=1, gpus=None, threads=None,
              parallel=1, iterations=None, batch_size=None, progress=False, log=print, image_size=None,
              dtype="float32"):
    """Run the rows of ``table`` (see the module docstring) and write ``<out>/report.md``; returns its path.

    ``seeds``: runs per row (seeds 0 .. seeds-1; the report gives the median, Table 4 style).
    ``parallel``: rows run at a time, each in its own process with its share of ``gpus`` (a list of GPU
    indices) or of ``threads`` (CPU threads in all; default: every core).
    ``dtype``: every run's ``--dtype`` (``bfloat16`` needs AVX-512 BF16, see :mod:`.train.bf16`).
    """
    from .train.devices import parse_gpus

    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    if parallel < 1:
        raise ValueError(f"--parallel must be at least 1, got {parallel}")
    gpus = parse_gpus(gpus) if gpus is not None else None
    if gpus is not None and threads is not None:
        raise ValueError("give either --gpus or --threads, not both")
    experiments = [dataclasses.replace(e, dtype=dtype)
                   for e in get_experiments(table, scale, rows, dataset, iterations, batch_size, image_size)]
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
        _run_parallel(jobs, parallel, _split_devices(gpus, parallel), threads, data_dir, report, log)
    path = report()
    log(f"wrote {path}")
    return path


def _run_parallel(jobs, parallel, devices, threads, data_dir, report, log):
    """Run ``jobs`` ``parallel`` at a time, each in a child process (``python -m gluon_resnetv2.experiments
    --job``) with its slot's GPUs, or its share of the CPU threads."""
    threads = max(1, (threads or os.cpu_count() or 1) // parallel)
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

def _final(run_dir, iterations=None):
    """``dict(state, error %, iterations, seconds, reason, loss_final, loss_mean)`` of one run directory
    (the training-loss figures of :func:`gluon_resnetv2.agreement.loss_figures`, for a run that ended)."""
    from .agreement import loss_figures
    from .plot import read_log

    state = run_state(run_dir)
    status = _read_json(os.path.join(run_dir, "status.json")) or {}
    out = dict(state=state, error=None, iterations=None, seconds=None, reason=status.get("reason"),
               loss_final=None, loss_mean=None)
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
    if state in ("finished", "failed") and log is not None:
        out["loss_final"], out["loss_mean"] = loss_figures(log, iterations or out["iterations"] or 1,
                                                           diverged=state == "failed")
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
    seeds = experiment.seeds(seeds)
    finals = [_final(run_dir_of(out, key, s), experiment.iterations) for s in range(seeds)]
    done = [f for f in finals if f["state"] in ("finished", "failed")]
    errors = [f["error"] if f["state"] == "finished" else math.inf for f in done]
    errors = [e for e in errors if e is not None]
    ours = statistics.median(errors) if errors else None
    states = sorted({f["state"] for f in finals})
    iterations = [f["iterations"] for f in finals if f["iterations"] is not None]
    seconds = [f["seconds"] for f in finals if f["seconds"] is not None]
    losses_final = [f["loss_final"] for f in done if f["loss_final"] is not None]
    losses_mean = [f["loss_mean"] for f in done if f["loss_mean"] is not None]
    return dict(ours=ours, errors=errors, fail=ours is not None and ours > FAIL_THRESHOLD,
                loss_final=statistics.median(losses_final) if losses_final else None,
                loss_mean=statistics.median(losses_mean) if losses_mean else None,
                complete=len(done) == seeds, state=states[0] if len(states) == 1 else "/".join(states),
                iterations=max(iterations) if iterations else None, seconds=sum(seconds) if seconds else None,
                diverged=sum(f["state"] == "failed" for f in finals), shared=key if key != experiment.key else None,
                reasons=[f["reason"] for f in finals if f["reason"]])


REPORT_COLUMNS = ("row", "network (paper)", "unit variant", "run", "paper error %", "our error %", "difference",
                  "train loss (final)", "train loss (mean)", "iterations", "wall time", "result")


def _fmt(value):
    if value is None:
        return ""
    if value == math.inf:
        return "diverged"
    return f"{value:.2f}"


def _fmt_loss(value):
    if value is None:
        return ""
    return "diverged" if value == math.inf else f"{value:.3f}"


def summaries(out, experiments, seeds=1, alias=None):
    """``{key: summarize(...)}`` of every experiment: read once, shared by report.md and report.json."""
    return {exp.key: summarize(out, exp, seeds, alias) for exp in experiments}


def report_rows(out, experiments, seeds=1, alias=None, notes=None, summary=None):
    """One dict per experiment with the :data:`REPORT_COLUMNS` (strings, as written in report.md); ``notes``
    (``{key: text}``, e.g. a row's Slurm job) is the result of a row that has no number yet."""

    rows = []
    for exp in experiments:
        row = exp.paper
        s = summary[exp.key] if summary else summarize(out, exp, seeds, alias)
        ours = s["ours"]
        if ours is None:
            ours_text = ""
        elif ours == math.inf:
            ours_text = "diverged"
        else:
            ours_text = _fmt(ours)
        if len(s["errors"]) > 1:
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
                     "train loss (final)": _fmt_loss(s["loss_final"]), "train loss (mean)": _fmt_loss(s["loss_mean"]),
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
        os.makedirs(os.path.dirname(path), exist_ok=True)
        plot_runs(runs, path, title=f"{paper.TITLES[experiments[0].table].split(':')[0]}: {group}")
        figures.append((group, path))
    return figures


REPORT_JSON = "report.json"


def spread_row(experiments):
    """The experiment whose seeds measure the seed-to-seed spread: the depth scale's spread row, else the
    table's first row."""
    setting = DEPTH_SETTINGS.get(experiments[0].table)
    keys = [e.key for e in experiments]
    return experiments[keys.index(setting.spread_row)] if setting and setting.spread_row in keys else experiments[0]


def report_records(out, experiments, seeds=1, alias=None, summary=None):
    """``(rows, agreement)`` of ``report.json``: one record per row (errors in %, None where not measured,
    a diverged run's test error and losses None with ``state`` 'failed') and
    :func:`gluon_resnetv2.agreement.table_agreement` over the rows that ended."""
    from .agreement import json_number, table_agreement

    summary = summary or summaries(out, experiments, seeds, alias)
    records, ranked = [], []
    for exp in experiments:
        row = exp.paper
        s = summary[exp.key]
        diverged = s["ours"] == math.inf
        records.append(dict(row=exp.key, paper_error=None if row.failed else row.error, paper_fail=row.failed,
                            test_error=json_number(s["ours"]), train_loss_final=json_number(s["loss_final"]),
                            train_loss_mean=json_number(s["loss_mean"]), iterations=s["iterations"],
                            seconds=json_number(s["seconds"]), state=s["state"], diverged=diverged,
                            seeds=len(s["errors"])))
        ranked.append(dict(paper_error=None if row.failed else row.error, paper_fail=row.failed,
                           test_error=s["ours"], train_loss_final=s["loss_final"]))
    spread = summary[spread_row(experiments).key]["errors"]
    agreement = table_agreement(ranked, spread)
    agreement = {k: (json_number(v) if isinstance(v, float) else v) for k, v in agreement.items()}
    return records, agreement


def agreement_lines(agreement, spread_experiment):
    """The report's "Agreement with the paper" section (markdown lines)."""
    def number(value, digits=2):
        return "n/a" if value is None else f"{value:.{digits}f}"

    found = ("n/a (no paper fail row among the rows compared)" if agreement["fails_found"] is None else
             f"{agreement['fails_found']} of {agreement['fails_total']}")
    errors = agreement["seed_test_errors"]
    spread = (f"{number(agreement['seed_spread_test_error'])} points (sample standard deviation of "
              f"{', '.join(f'{e:.2f}' for e in errors)} % over {len(errors)} seeds of row `{spread_experiment.key}`)"
              if agreement["seed_spread_test_error"] is not None else
              f"not measured (row `{spread_experiment.key}` has fewer than two finished seeds)")
    return ["## Agreement with the paper", "",
            f"Rows compared: {agreement['rows_compared']} (rows that ended; the paper's \"fail\" rows and our "
            "diverged runs rank worst, tied).", "",
            "| measure | value |", "| --- | ---: |",
            f"| Spearman rank correlation, paper error vs our test error | {number(agreement['spearman_test_error'])} |",
            f"| Spearman rank correlation, paper error vs our final training loss | "
            f"{number(agreement['spearman_train_loss'])} |",
            f"| paper's fail rows among our worst rows (as many as the paper has) | {found} |", "",
            f"Seed-to-seed spread of the test error: {spread}. Differences between rows smaller than about twice "
            "this are within noise."]


def write_report(out, experiments, seeds=1, alias=None, notes=None):
    """``<out>/report.md`` (the table of :func:`report_rows`, the agreement section and the group figures)
    and ``<out>/report.json`` (:func:`report_records`); returns the report.md path."""
    table = experiments[0].table
    scale = get_scale(experiments[0].scale)
    lines = [f"# {paper.TITLES[table]}", ""]
    first = experiments[0]
    size = first.dataset_options.get("image_size")
    runs = (f"Runs: {', '.join(sorted({e.dataset for e in experiments}))}{f' at {size}x{size}' if size else ''}, "
            f"{first.iterations} iterations of mini-batch "
            f"{first.batch_size}, warm-up {first.warmup} iterations, lr /10 at 1/2 and 3/4 of the run.")
    if not scale.comparable:
        lines += [f"**Scale `{scale.name}`: these numbers are NOT comparable to the paper's.** {scale.description}. "
                  "They show whether each variant trains and how the variants rank at this size; the paper's "
                  "column is given for orientation only.", ""]
    else:
        lines += [f"Scale `{scale.name}`: {scale.description}.", ""]
    lines += [runs, ""]
    own = [f"{e.key}: {e.iterations} iterations of mini-batch {e.batch_size}, lr /10 at iterations "
           f"{', '.join(map(str, e.lr_steps))}, warm-up {e.warmup}, optimizer {e.optimizer} ({e.paper.recipe.source})"
           for e in experiments if e.lr_steps is not None]
    if own:
        lines += ["Rows with their own recipe: " + "; ".join(own) + ".", ""]
    changed = sorted({f"{e.dataset} instead of {e.paper.dataset}" for e in experiments if e.dataset != e.paper.dataset})
    if changed and scale.comparable:
        lines += [f"Data set changed from the paper's: {'; '.join(changed)}.", ""]
    if seeds > 1:
        lines += [f"Our error is the median over {seeds} seeds (a diverged seed counts as an infinite error).", ""]
    lines += [f"\"fail\": test error above {FAIL_THRESHOLD:g} % (the paper's Table 1 criterion). Difference = ours - "
              "paper, in percentage points." + ("" if scale.comparable else
              " At this scale even a network that trains well may sit near the 20 % line after so few "
              "iterations: compare the rows with each other (and with the original unit) rather than with it."), ""]
    summary = summaries(out, experiments, seeds, alias)
    rows = report_rows(out, experiments, seeds, alias, notes, summary)
    lines.append("| " + " | ".join(REPORT_COLUMNS) + " |")
    lines.append("|" + "|".join(" --- " if i < 4 else " ---: " for i in range(len(REPORT_COLUMNS) - 1)) + "| --- |")
    for row in rows:
        lines.append("| " + " | ".join(row[c].replace("|", "/") for c in REPORT_COLUMNS) + " |")
    records, agreement = report_records(out, experiments, seeds, alias, summary)
    lines += [""] + agreement_lines(agreement, spread_row(experiments))
    atomic_write_text(os.path.join(out, REPORT_JSON), json.dumps(
        dict(table=table, scale=scale.name, rows=records, agreement=agreement), indent=2) + "\n")
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
    exp = Experiment.from_dict(spec["experiment"])
    status = run_experiment(exp, spec["run_dir"], spec["seed"], spec.get("data_dir"), spec.get("gpus"))
    return 0 if status and status.get("status") in ("finished", "failed") else 1


if __name__ == "__main__":
    sys.exit(_job_main())
