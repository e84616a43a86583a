#!/usr/bin/env python
"""Plot training curves like the paper's Figure 1: ``python scripts/plot_curves.py RUN_DIR ... -o fig.png``.

A thin entry point for people who run files; the same as ``gluon-resnetv2 plot`` (see
:mod:`gluon_resnetv2.commands.plot` and :func:`gluon_resnetv2.plot.plot_runs`).
"""

import sys

from gluon_resnetv2.cli import run_as_script


def main(argv=None):
    return run_as_script("plot", argv, prog="plot_curves.py")


if __name__ == "__main__":
    sys.exit(main())
