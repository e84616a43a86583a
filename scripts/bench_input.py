#!/usr/bin/env python
"""How fast does the input pipeline deliver training batches?

Images/s of the training loader (augmentation on) for Fashion-MNIST, synthetic CIFAR-shaped data and,
with ``--imagenet``, ImageNet-style RecordIO JPEGs; ``--overlap STEPS`` also times training steps fed a
fixed batch against the loader.  A thin entry point: :mod:`gluon_resnetv2.commands.bench_input` and
:func:`gluon_resnetv2.data.bench_input.run_input_bench`::

    python scripts/bench_input.py [--num-workers 2] [--batches 200] [--imagenet]
"""

import sys

from gluon_resnetv2.cli import run_as_script


def main(argv=None):
    return run_as_script("bench_input", argv, prog="bench_input.py")


if __name__ == "__main__":
    sys.exit(main())
