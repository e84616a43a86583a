#!/usr/bin/env python
"""Training speed of ``--dtype bfloat16`` against float32 on the demo's recipe, measured back to back.

A thin entry point: :mod:`gluon_resnetv2.commands.bench_bf16` and :func:`gluon_resnetv2.bench.bf16.run_bf16_bench`
(what is timed and how)::

    python scripts/bench_bf16.py --models cifar_resnet20_v1,cifar_resnet20_v2 --iterations 30 --rounds 2
    OMP_NUM_THREADS=1 python scripts/bench_bf16.py --iterations 20

Figures: docs/results/bench-bf16.json, shown in docs/guides/benchmark.md.
"""

import sys

from gluon_resnetv2.cli import run_as_script


def main(argv=None):
    return run_as_script("bench_bf16", argv, prog="bench_bf16.py")


if __name__ == "__main__":
    sys.exit(main())
