"""``gluon-resnetv2 reproduce TABLE``: run the rows of the paper's Tables 1-4 and report against the paper.

Argument parsing only; the work is :func:`gluon_resnetv2.experiments.run_table` (and
:func:`~gluon_resnetv2.experiments.format_list` for ``--list``).  Examples::

    gluon-resnetv2 reproduce table1 --list
    gluon-resnetv2 reproduce table2 --scale quick --out runs/table2-quick          # Fashion-MNIST, < 1 h on 2 cores
    gluon-resnetv2 reproduce table2 --scale paper --dataset cifar10 --data-dir D --gpus 0,1 --out runs/table2
    gluon-resnetv2 reproduce table4 --scale paper --data-dir D --gpus 0,1,2,3 --parallel 2 --seeds 5 --out runs/t4
    gluon-resnetv2 reproduce table2 --scale paper --data-dir D --gpus 0 --slurm --slurm-args "--time=12:00:00" \
        --out /shared/runs/table2                                                   # one sbatch job per row

Running the same command again skips finished rows and resumes interrupted ones.
"""

import os
import sys

from ..experiments import SCALE_NAMES, format_list, run_table
from ..experiments.slurm import submit_table
from ..paper_results import TABLES
from ..train.recipe import DATASETS, DTYPES
from ..validate import gpu_list, name_list, positive_int


def add_arguments(parser):
    """Register the ``reproduce`` options on ``parser`` (shared by the CLI and ``scripts/reproduce.py``)."""

    parser.add_argument("table", help=f"which table: {', '.join(TABLES)} (table5, ImageNet, only with --list)")
    parser.add_argument("--list", action="store_true", help="print the rows with the paper's numbers and exit")
    parser.add_argument(
        "--rows", type=name_list, default=None, metavar="KEY,KEY,...", help="run only these rows (see --list)"
    )
    parser.add_argument(
        "--scale",
        choices=SCALE_NAMES,
        default="quick",
        help="quick: Fashion-MNIST miniature with shrunk networks, a table in under an hour on "
        "2 CPU cores; depth: the paper's networks at their own depth on downsampled "
        "Fashion-MNIST, a table in under 100 minutes with --parallel 2 (neither comparable "
        "to the paper in absolute numbers); paper: the paper's recipe (64k iterations, "
        "batch 128) (default quick)",
    )
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default=None,
        help="data set of every row (default: fashion-mnist at quick scale, the row's own at paper scale)",
    )
    parser.add_argument("--data-dir", default=None, help="directory of the data set's files")
    parser.add_argument("--out", default=None, metavar="DIR", help="output directory (default runs/TABLE-SCALE)")
    parser.add_argument(
        "--seeds",
        type=positive_int,
        default=1,
        metavar="K",
        help="runs per row with seeds 0..K-1; the report gives the median (Table 4 style)",
    )
    parser.add_argument(
        "--parallel",
        type=positive_int,
        default=1,
        metavar="K",
        help="rows trained at a time, each in its own process on its share of --gpus / --threads",
    )
    parser.add_argument(
        "--gpus", type=gpu_list, default=None, metavar="0,1,...", help="GPU indices, split among --parallel jobs"
    )
    # Not --cpus: that option means CPU devices (contexts) in `train`; these are threads.
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="CPU threads in all, split among --parallel jobs (default: every physical core)",
    )
    parser.add_argument(
        "--slurm",
        action="store_true",
        help="submit every pending row as its own sbatch job (--out on a shared file system) and "
        "return; run again to resubmit failed or cancelled rows and rewrite the report",
    )
    parser.add_argument(
        "--slurm-args",
        default="",
        metavar='"ARGS"',
        help='sbatch options for every row\'s job, written with =: --slurm-args="--time=12:00:00 -p gpu"',
    )
    parser.add_argument("--iterations", type=positive_int, default=None, help="override the scale's run length")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="override the scale's mini-batch")
    parser.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        metavar="S",
        help="average the images down to S x S (default: the depth scale's per-table size, else the data set's own)",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="precision of every run (bfloat16: MXNet AMP on CPUs with AVX-512 BF16)",
    )
    parser.set_defaults(func=run)
    return parser


def add_parser(subparsers):
    """Register ``reproduce`` on the ``gluon-resnetv2`` sub-command parsers."""
    parser = subparsers.add_parser(
        "reproduce",
        help="run the paper's Tables 1-4 and report against its numbers",
        description="Every row of the paper's Tables 1-4 is a named experiment. Runs them one after the other "
        "(or --parallel K at a time), skips finished rows, resumes interrupted ones, and writes "
        "OUT/report.md with the paper's error, ours, the difference and 'fail' (> 20%), plus "
        "training-curve figures for the groups the paper compares.",
    )
    return add_arguments(parser)


def run(args):
    """List or run the table; returns 0."""

    if args.list:
        print(
            format_list(
                args.table, args.scale, args.rows, args.dataset, args.iterations, args.batch_size, args.image_size
            )
        )
        return 0
    out = args.out or os.path.join("runs", f"{str(args.table).lower()}-{args.scale}")
    if args.slurm:
        if args.parallel != 1:
            raise ValueError("--parallel does not go with --slurm: every row is its own Slurm job")
        if args.dtype != "float32":
            raise ValueError("--dtype does not go with --slurm (the Slurm jobs train in float32)")
        submit_table(
            args.table,
            out,
            scale=args.scale,
            rows=args.rows,
            dataset=args.dataset,
            data_dir=args.data_dir,
            seeds=args.seeds,
            gpus=args.gpus,
            threads=args.threads,
            iterations=args.iterations,
            batch_size=args.batch_size,
            image_size=args.image_size,
            slurm_args=args.slurm_args,
            log=lambda text: print(text, flush=True),
        )
        return 0
    run_table(
        args.table,
        out,
        scale=args.scale,
        rows=args.rows,
        dataset=args.dataset,
        data_dir=args.data_dir,
        seeds=args.seeds,
        gpus=args.gpus,
        threads=args.threads,
        parallel=args.parallel,
        iterations=args.iterations,
        batch_size=args.batch_size,
        image_size=args.image_size,
        progress=sys.stderr.isatty(),
        dtype=args.dtype,
        log=lambda text: print(text, flush=True),
    )
    return 0
