"""How fast does the input pipeline deliver training batches? (:mod:`gluon_resnetv2.data.bench_input`)

Argument parsing only; the measurement is :func:`gluon_resnetv2.data.bench_input.run_input_bench`.
"""

from ..data.bench_input import run_input_bench
from ..validate import nonneg_int, positive_int


def add_arguments(parser):
    """Register the options on ``parser`` (``scripts/bench_input.py``)."""
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument(
        "--num-workers", type=nonneg_int, nargs="+", default=[2], help="worker counts to measure (default: 2)"
    )
    parser.add_argument("--batches", type=positive_int, default=200, help="timed batches per measurement")
    parser.add_argument("--imagenet", action="store_true", help="also measure RecordIO JPEG decoding")
    parser.add_argument(
        "--overlap",
        type=nonneg_int,
        default=0,
        metavar="STEPS",
        help="also time cifar_resnet20_v2 training on synthetic CIFAR data, fed a fixed batch vs "
        "the loader, in 5 alternating rounds of STEPS steps (default: 0, skipped)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args):
    return run_input_bench(args.batch_size, args.num_workers, args.batches, args.imagenet, args.overlap)
