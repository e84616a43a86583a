#!/usr/bin/env python
"""Measure signal propagation per residual unit (paper Eqns. 4-8): ``python scripts/analyze.py --out A ...``.

A thin entry point for people who run files; the same as ``gluon-resnetv2 analyze`` (see
:mod:`gluon_resnetv2.commands.analyze` and :func:`gluon_resnetv2.analysis.analyze`).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gluon_resnetv2.commands import analyze as analyze_command  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="analyze.py", description=__doc__.splitlines()[0])
    analyze_command.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"analyze.py: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
