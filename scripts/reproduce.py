#!/usr/bin/env python
"""Run the paper's Tables 1-4 and report against its numbers: ``python scripts/reproduce.py table1 --list``.

A thin entry point for people who run files; the same as ``gluon-resnetv2 reproduce`` (see
:mod:`gluon_resnetv2.commands.reproduce` and :func:`gluon_resnetv2.experiments.run_table`).
"""

import sys

from gluon_resnetv2.cli import run_as_script


def main(argv=None):
    return run_as_script("reproduce", argv, prog="reproduce.py")


if __name__ == "__main__":
    sys.exit(main())
