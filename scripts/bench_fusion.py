#!/usr/bin/env python
"""Fused against plain inference: `gluon_resnetv2.deploy.fuse` with and without the BN-ReLU fusion, and the
share of each operator in the time (MXNet profiler).

A thin entry point: :mod:`gluon_resnetv2.commands.bench_fusion` and
:func:`gluon_resnetv2.deploy.bench_fusion.run_fusion_bench` (what is timed and how)::

    python scripts/bench_fusion.py --models cifar_resnet20_v2,cifar_resnet110_v2 --rounds 9
    MXNET_EXEC_BULK_EXEC_INFERENCE=0 OMP_NUM_THREADS=1 python scripts/bench_fusion.py --profile --rounds 1

Figures: docs/guides/deployment.md.
"""

import sys

from gluon_resnetv2.cli import run_as_script


def main(argv=None):
    return run_as_script("bench_fusion", argv, prog="bench_fusion.py")


if __name__ == "__main__":
    sys.exit(main())
