#!/usr/bin/env python
"""Measure signal propagation per residual unit (paper Eqns. 4-8): ``python scripts/analyze.py --out A ...``.

A thin entry point for people who run files; the same as ``gluon-resnetv2 analyze`` (see
:mod:`gluon_resnetv2.commands.analyze` and :func:`gluon_resnetv2.analysis.analyze`).
"""

import sys

from gluon_resnetv2.cli import run_as_script


def main(argv=None):
    return run_as_script("analyze", argv, prog="analyze.py")


if __name__ == "__main__":
    sys.exit(main())
