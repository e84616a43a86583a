#!/usr/bin/env python
"""How fast does the input pipeline deliver training batches?

Images/s of the training loaders (augmentation on) with 1..W workers: ImageNet-style JPEGs in a .rec made
by im2rec.py (ours with worker processes and threads, and ``mx.io.ImageRecordIter`` on the same file),
synthetic CIFAR-shaped data and Fashion-MNIST; writes docs/results/bench_input.json and .md.
``--overlap STEPS`` also times training steps fed a fixed batch against the loader.  A thin entry point:
:mod:`gluon_resnetv2.commands.bench_input` and
:func:`gluon_resnetv2.data.bench_input.run_input_bench`::

    python scripts/bench_input.py [--num-workers 1 2] [--rounds 3] [--out docs/results]
"""

import sys

from gluon_resnetv2.cli import run_as_script


def main(argv=None):
    return run_as_script("bench_input", argv, prog="bench_input.py")


if __name__ == "__main__":
    sys.exit(main())
