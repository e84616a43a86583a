#!/usr/bin/env python
"""Train on ImageNet with the paper's recipe: ``python scripts/train_imagenet.py --model resnet200_v2 --gpus 0,1,2,3,4,5,6,7 --data-dir /data/imagenet --out runs/r200``.

A thin wrapper of ``gluon-resnetv2 train`` with ImageNet defaults (``--dataset imagenet``, model
``resnet50_v2``): lr 0.1 divided by 10 at epochs 30 and 60, batch 256, 90 epochs (paper, Sec. 5).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_cifar import main as _main  # noqa: E402


def main(argv=None):
    return _main(argv, dataset="imagenet", model="resnet50_v2", what="ImageNet")


if __name__ == "__main__":
    sys.exit(main())
