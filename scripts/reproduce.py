#!/usr/bin/env python
"""Run the paper's Tables 1-4 and report against its numbers: ``python scripts/reproduce.py table1 --list``.

A thin entry point for people who run files; the same as ``gluon-resnetv2 reproduce`` (see
:mod:`gluon_resnetv2.commands.reproduce` and :func:`gluon_resnetv2.experiments.run_table`).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gluon_resnetv2.commands import reproduce as reproduce_command  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="reproduce.py", description=__doc__.splitlines()[0])
    reproduce_command.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"reproduce.py: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
