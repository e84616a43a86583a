"""``gluon-resnetv2 analyze``: signal propagation through the residual units (paper Eqns. 4-8).

Argument parsing only; the measurement is :func:`gluon_resnetv2.analysis.analyze`.  Writes
``<out>/propagation.csv`` (one row per variant and unit), ``<out>/propagation.png`` (log-scale
dE/dx_l / dE/dx_L against l, one line per variant) and ``<out>/summary.md``.

Variants (``--variant``, repeatable): ``NAME[:KEY=VALUE,...]`` with NAME a Fig. 2 shortcut and keys
shortcut_scale, residual_scale, gate_bias, shortcut_dropout, activation, projection, e.g.::

    gluon-resnetv2 analyze --model cifar_resnet110_v2 --out A \\
        --variant identity --variant constant_scaling:shortcut_scale=0.5,residual_scale=0.5 \\
        --variant exclusive_gating:gate_bias=-6

``--variant fig2`` stands for every shortcut variant of Fig. 2 / Table 1.  Without ``--variant`` the one
variant given by ``--shortcut`` and its options is measured.  ``--activation``/``--projection`` apply to
every variant.
"""

import os

from ..analysis import analyze, parse_variants, variant_from_kwargs
from ..train.recipe import DATASETS, SEED
from ..validate import nonneg_int, positive_int
from .model_args import add_model_args, model_kwargs

_SHORTCUT_OPTIONS = ("shortcut", "shortcut_scale", "residual_scale", "gate_bias", "shortcut_dropout")


def add_arguments(parser):
    """Register the ``analyze`` options on ``parser`` (shared by the CLI and ``scripts/analyze.py``)."""
    add_model_args(parser, default_model="cifar_resnet110_v2")
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        metavar="NAME[:KEY=VALUE,...]",
        help="a Fig. 2 shortcut variant to measure (repeatable), e.g. identity, "
        "constant_scaling:shortcut_scale=0.5,residual_scale=0.5, exclusive_gating:gate_bias=-6; "
        "'fig2' = all of Table 1's variants",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        default="fashion-mnist",
        help="data set of the measured batch (default fashion-mnist; 'synthetic' needs no files)",
    )
    parser.add_argument("--data-dir", default=None, help="directory of the data set's files")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="images in the measured batch (default 16)")
    parser.add_argument(
        "--iterations",
        type=nonneg_int,
        default=0,
        metavar="K",
        help="train K SGD iterations (paper recipe, batch 128) before measuring (default 0: at initialisation)",
    )
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the initialisation and of the batch")
    parser.set_defaults(func=run)
    return parser


def add_parser(subparsers):
    """Register ``analyze`` on the ``gluon-resnetv2`` sub-command parsers."""
    parser = subparsers.add_parser(
        "analyze",
        help="measure forward/backward signal propagation per residual unit (Eqns. 4-8)",
        description="Per residual unit l: ||x_l||, ||dE/dx_l||, the ratio to ||dE/dx_L|| and the shortcut-path "
        "term of Eqn. 5/8 (gradient carried by the shortcuts only), for one or more Fig. 2 variants.",
    )
    return add_arguments(parser)


def variants_from_args(args):
    """``(variants, base_kwargs)`` from the parsed options (see the module docstring)."""

    kwargs = model_kwargs(args)
    if args.variant:
        given = [name for name in _SHORTCUT_OPTIONS if name in kwargs]
        if given:
            raise ValueError(
                f"give the shortcut either with --variant or with --{given[0].replace('_', '-')}, not both"
            )
        return parse_variants(args.variant), kwargs
    base = {k: v for k, v in kwargs.items() if k not in _SHORTCUT_OPTIONS}
    return [variant_from_kwargs({k: v for k, v in kwargs.items() if k in _SHORTCUT_OPTIONS})], base


def run(args):
    """Measure and write the files; returns 0."""
    variants, base = variants_from_args(args)
    analyze(
        args.model,
        variants,
        args.out,
        dataset=args.dataset,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        iterations=args.iterations,
        seed=args.seed,
        base_kwargs=base,
    )
    for name in ("propagation.csv", "propagation.png", "summary.md"):
        print(f"wrote {os.path.join(args.out, name)}")
    return 0
