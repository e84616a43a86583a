#!/usr/bin/env python
"""Train on ImageNet with the paper's recipe, e.g. ``python scripts/train_imagenet.py --model resnet200_v2
--gpus 0,1,2,3,4,5,6,7 --data-dir /data/imagenet --out runs/r200``.

A thin wrapper of ``gluon-resnetv2 train`` with ImageNet defaults (``--dataset imagenet``, model
``resnet50_v2``): lr 0.1 divided by 10 at epochs 30 and 60, batch 256, 90 epochs (paper, Sec. 5); the
wrapper is :func:`gluon_resnetv2.commands.train_preset.main`.
"""

import sys

from gluon_resnetv2.commands import train_preset


def main(argv=None):
    return train_preset.main("imagenet", argv)


if __name__ == "__main__":
    sys.exit(main())
