"""Fused against plain inference, and each operator's share of the time (:mod:`gluon_resnetv2.deploy.bench_fusion`).

Argument parsing only; the measurement is :func:`gluon_resnetv2.deploy.bench_fusion.run_fusion_bench`.
"""

from ..deploy.bench_fusion import run_fusion_bench
from ..validate import name_list, positive_int


def add_arguments(parser):
    """Register the options on ``parser`` (``scripts/bench_fusion.py``)."""
    parser.add_argument("--models", type=name_list, default="cifar_resnet20_v2,cifar_resnet110_v2")
    parser.add_argument("--rounds", type=positive_int, default=9)
    parser.add_argument("--profile", action="store_true")
    parser.set_defaults(func=run)
    return parser


def run(args):
    return run_fusion_bench(",".join(args.models), args.rounds, args.profile)
