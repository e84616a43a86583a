#!/usr/bin/env python
"""Peak memory and step time of training with and without recomputation: ``gluon-resnetv2 bench-memory``.

    python scripts/bench_memory.py --models cifar_resnet164_v2 cifar_resnet1001_v2 --batch 64 --iters 2

A thin entry point for people who run files (see :mod:`gluon_resnetv2.commands.bench_memory`).
"""

import sys

from gluon_resnetv2.cli import run_as_script


def main(argv=None):
    return run_as_script("bench_memory", argv, prog="bench_memory.py")


if __name__ == "__main__":
    sys.exit(main())
