#!/usr/bin/env python
"""Benchmark throughput and memory: ``python scripts/bench.py --models cifar_resnet56_v2 --out DIR``.

A thin entry point for people who run files; the same as ``gluon-resnetv2 bench`` (see
:mod:`gluon_resnetv2.commands.bench` and :func:`gluon_resnetv2.bench.run_benchmark`).  Set speed knobs in
the environment: ``OMP_NUM_THREADS=2 python scripts/bench.py ...``.
"""

import sys

from gluon_resnetv2.cli import run_as_script


def main(argv=None):
    return run_as_script("bench", argv, prog="bench.py")


if __name__ == "__main__":
    sys.exit(main())
