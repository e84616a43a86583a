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

The package: :mod:`.scales` (quick, depth, paper), :mod:`.suites` (rows as :class:`Experiment` s),
:mod:`.state` (what a run directory holds), :mod:`.scheduler` (running a table, in parallel or not),
:mod:`.report` (report.md, report.json, figures), :mod:`.slurm` (``--slurm``: one sbatch job per row) and
:mod:`.job` (``python -m gluon_resnetv2.experiments --job JSON``, the child process of both).
"""

from .report import (
    REPORT_COLUMNS,
    REPORT_JSON,
    agreement_lines,
    parse_report,
    plot_groups,
    report_records,
    report_rows,
    spread_row,
    summaries,
    summarize,
    write_report,
)
from .scales import (
    DEPTH_SETTINGS,
    DEPTH_SPREAD_SEEDS,
    PAPER_ITERATIONS,
    PAPER_WARMUP,
    QUICK_ITERATIONS,
    QUICK_MODELS,
    RUNNABLE_TABLES,
    SCALE_NAMES,
    SCALES,
    DepthSetting,
    Scale,
    get_scale,
)
from .scheduler import run_experiment, run_table
from .state import ATTEMPTS_NAME, attempts, run_dir_of, run_state
from .suites import Experiment, experiment_for, format_list, get_experiments, runs_at, select_rows

__all__ = [
    "ATTEMPTS_NAME",
    "DEPTH_SETTINGS",
    "DEPTH_SPREAD_SEEDS",
    "PAPER_ITERATIONS",
    "PAPER_WARMUP",
    "QUICK_ITERATIONS",
    "QUICK_MODELS",
    "REPORT_COLUMNS",
    "REPORT_JSON",
    "RUNNABLE_TABLES",
    "SCALES",
    "SCALE_NAMES",
    "DepthSetting",
    "Experiment",
    "Scale",
    "agreement_lines",
    "attempts",
    "experiment_for",
    "format_list",
    "get_experiments",
    "get_scale",
    "parse_report",
    "plot_groups",
    "report_records",
    "report_rows",
    "run_dir_of",
    "run_experiment",
    "run_state",
    "run_table",
    "runs_at",
    "select_rows",
    "spread_row",
    "summaries",
    "summarize",
    "write_report",
]
