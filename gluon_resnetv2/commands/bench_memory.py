"""Peak memory and step time of training deep ResNets with and without recomputation or backward mirroring.

``gluon-resnetv2 bench-memory --models cifar_resnet164_v2 cifar_resnet1001_v2 --batch 64 --iters 2``;
argument parsing only, the measuring is :func:`gluon_resnetv2.bench.depth_memory.run_depth_memory`
(every configuration in a fresh subprocess, its peak RSS from ``os.wait4``).
"""

import json

from ..bench.depth_memory import ENGINES, run_depth_memory
from ..validate import int_range, nonneg_int, positive_float, positive_int


def add_arguments(parser):
    """Register the ``bench-memory`` options on ``parser`` (shared by the CLI and ``scripts/bench_memory.py``)."""

    parser.add_argument("--models", nargs="+", default=["cifar_resnet164_v2", "cifar_resnet1001_v2"])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--segment", type=positive_int, default=None, help="units per recompute segment (default sqrt)")
    parser.add_argument("--mirror", nargs="+", type=int_range(0, 1), default=[0, 1], choices=[0, 1])
    parser.add_argument("--batch", type=positive_int, default=64)
    parser.add_argument("--iters", type=positive_int, default=2, help="timed training steps after warm-up")
    parser.add_argument("--warmup", type=nonneg_int, default=1)
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="OMP_NUM_THREADS of the children (default: inherited; leave it unset for the "
        "recompute engine, whose nested backward runs in a second MXNet thread and slows "
        "down badly when both thread pools spin on the same cores)",
    )
    parser.add_argument(
        "--mem-limit-gb",
        type=positive_float,
        default=None,
        help="address-space cap per child (a run that needs more fails instead of swapping)",
    )
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.set_defaults(func=run)
    return parser


def add_parser(subparsers):
    """Register ``bench-memory`` on the ``gluon-resnetv2`` sub-command parsers."""
    parser = subparsers.add_parser(
        "bench-memory",
        help="peak memory and step time of training with recomputation / mirroring",
        description="Peak RSS and step time of training deep networks with the engines gluon, recompute "
        "(gluon_resnetv2.memory.recompute) and symbolic (MXNet's executor), with "
        "MXNET_BACKWARD_DO_MIRROR 0 and 1; every configuration in its own subprocess.",
    )
    return add_arguments(parser)


def run(args):
    """Run the configurations the parsed ``args`` describe, print one line each; returns 0."""

    results = run_depth_memory(
        args.models,
        args.engines,
        args.mirror,
        batch=args.batch,
        iters=args.iters,
        warmup=args.warmup,
        segment=args.segment,
        threads=args.threads,
        mem_limit_gb=args.mem_limit_gb,
        log=lambda line: print(line, flush=True),
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0
