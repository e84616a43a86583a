"""``gluon-resnetv2 bench --models cifar_resnet56_v2 --out DIR``: training/inference throughput and memory.

Argument parsing only; the measuring is :func:`gluon_resnetv2.bench.run_benchmark`.  Writes
``DIR/bench.csv`` (columns ``network,implementation,mode,batch_size,train_images_per_s,infer_images_per_s,
peak_rss_mb``) and ``DIR/bench.json`` (plus skipped configurations, ratios, machine, load and the speed
knobs in the environment), prints the table and, last, the headline ratios.

Speed knobs are environment variables read when MXNet loads, so they are set on the command line:
``OMP_NUM_THREADS=2 KMP_AFFINITY=granularity=fine,compact,1,0 gluon-resnetv2 bench ...``.
"""

from ..bench import IMPLEMENTATIONS, MODES, format_ratios, format_table, run_benchmark, write_report
from ..validate import ListOf, name_list, nonneg_int, positive_int
from .model_args import add_model_args, model_kwargs


def add_arguments(parser):
    """Register the ``bench`` options on ``parser`` (shared by the CLI and ``scripts/bench.py``)."""

    parser.add_argument(
        "--models",
        type=name_list,
        default=None,
        metavar="NAME[,NAME...]",
        help="comma-separated network names, e.g. cifar_resnet56_v2,cifar_resnet110_v2",
    )
    parser.add_argument(
        "--modes",
        type=ListOf(str, MODES, "mode"),
        default="imperative,hybrid,static,fused,int8",
        metavar="MODE[,MODE...]",
        help=f"some of {', '.join(MODES)} (default: all but bf16)",
    )
    parser.add_argument(
        "--implementations",
        type=ListOf(str, IMPLEMENTATIONS, "implementation"),
        default="gluon_resnetv2,gluoncv,pytorch",
        metavar="IMPL[,IMPL...]",
        help=f"some of {', '.join(IMPLEMENTATIONS)} (pytorch only where torch is installed)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--iterations", type=positive_int, default=20, help="timed steps per window")
    parser.add_argument("--warmup", type=nonneg_int, default=3, help="untimed steps before timing")
    parser.add_argument(
        "--repeats", type=positive_int, default=1, help="timed windows per configuration; the best counts"
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        help="run every configuration this many times, interleaved; best figures count",
    )
    parser.add_argument("--classes", type=positive_int, default=None, help="classifier outputs (default 10 / 1000)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory for bench.csv/bench.json")
    add_model_args(parser, model_required=False)
    parser.set_defaults(func=run)
    return parser


def add_parser(subparsers):
    """Register ``bench`` on the ``gluon-resnetv2`` sub-command parsers."""
    parser = subparsers.add_parser(
        "bench",
        help="training/inference images/s and peak memory vs gluoncv and PyTorch",
        description="Training (forward+backward+SGD) and inference images/s and peak memory of networks in "
        "several modes (imperative, hybrid, static, fused, int8, bf16) and implementations "
        "(gluon_resnetv2, gluoncv, pytorch), in one process; writes OUT/bench.csv.",
    )
    return add_arguments(parser)


def run(args):
    """Run the benchmark the parsed ``args`` describe, print the table and ratios; returns 0."""

    networks = list(args.models or []) + ([args.model] if args.model else [])
    if not networks:
        raise ValueError("give at least one network with --models NAME[,NAME...]")
    report = run_benchmark(
        networks,
        args.modes,
        args.implementations,
        batch_size=args.batch_size,
        iterations=args.iterations,
        warmup=args.warmup,
        repeats=args.repeats,
        rounds=args.rounds,
        model_kwargs=model_kwargs(args),
    )
    path = write_report(report, args.out)
    print()
    print(format_table(report))
    print(f"\nwrote {path}\n\nheadline ratios:")
    print(format_ratios(report) or "  (none: the modes/implementations needed for a ratio were not run)")
    return 0
