#!/usr/bin/env python
"""Train on CIFAR with the paper's recipe: ``python scripts/train_cifar.py --model cifar_resnet164_v2 --out runs/r164``.

A thin wrapper of ``gluon-resnetv2 train`` with CIFAR defaults (``--dataset cifar10``, model
``cifar_resnet110_v2``); every option of the command is accepted (``--dataset cifar100``, ``--gpus 0,1``...).
The recipe (SGD 0.9, wd 1e-4, batch 128, lr 0.1 /10 at 32k and 48k, 64k iterations, warm-up 0.01 for 400
iterations) comes from :mod:`gluon_resnetv2.train.recipe`; the wrapper is
:func:`gluon_resnetv2.commands.train_preset.main`.
"""

import sys

from gluon_resnetv2.commands import train_preset


def main(argv=None):
    return train_preset.main("cifar", argv)


if __name__ == "__main__":
    sys.exit(main())
