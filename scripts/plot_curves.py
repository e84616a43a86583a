#!/usr/bin/env python
"""Plot training curves like the paper's Figure 1: ``python scripts/plot_curves.py RUN_DIR ... -o fig.png``.

A thin entry point for people who run files; the same as ``gluon-resnetv2 plot`` (see
:mod:`gluon_resnetv2.commands.plot` and :func:`gluon_resnetv2.plot.plot_runs`).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gluon_resnetv2.commands import plot as plot_command  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="plot_curves.py", description=__doc__.splitlines()[0])
    plot_command.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"plot_curves.py: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
