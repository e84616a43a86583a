"""Training speed of bfloat16 against float32 on the demo's recipe (:mod:`gluon_resnetv2.bench.bf16`).

Argument parsing only; the measurement is :func:`gluon_resnetv2.bench.bf16.run_bf16_bench`.
"""

from ..bench.bf16 import run_bf16_bench
from ..validate import name_list, positive_int


def add_arguments(parser):
    """Register the options on ``parser`` (``scripts/bench_bf16.py``)."""
    parser.add_argument("--models", type=name_list, default="cifar_resnet20_v1,cifar_resnet20_v2")
    parser.add_argument("--iterations", type=positive_int, default=30)
    parser.add_argument("--rounds", type=positive_int, default=2)
    parser.add_argument("--data-dir", default=None)
    parser.set_defaults(func=run)
    return parser


def run(args):
    return run_bf16_bench(",".join(args.models), args.iterations, args.rounds, args.data_dir)
