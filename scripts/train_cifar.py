#!/usr/bin/env python
"""Train on CIFAR with the paper's recipe: ``python scripts/train_cifar.py --model cifar_resnet164_v2 --out runs/r164``.

A thin wrapper of ``gluon-resnetv2 train`` with CIFAR defaults (``--dataset cifar10``, model
``cifar_resnet110_v2``); every option of the command is accepted (``--dataset cifar100``, ``--gpus 0,1``...).
The recipe (SGD 0.9, wd 1e-4, batch 128, lr 0.1 /10 at 32k and 48k, 64k iterations, warm-up 0.01 for 400
iterations) comes from :mod:`gluon_resnetv2.train.recipe`.
"""
import argparse
import sys

import gluon_resnetv2  # noqa: F401  (numpy aliases before mxnet)
from gluon_resnetv2.cli import call
from gluon_resnetv2.commands.train import add_run_args, run


def main(argv=None, dataset="cifar10", model="cifar_resnet110_v2", what="CIFAR"):
    parser = argparse.ArgumentParser(description=f"Train on {what} with the paper's recipe "
                                                 "(wrapper of `gluon-resnetv2 train`).")
    add_run_args(parser, dataset_default=dataset, model_default=model)
    parser.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR")
    args = parser.parse_args(argv)
    if args.resume is not None:
        args.dataset = None if args.dataset == dataset else args.dataset
        args.model = None if args.model == model else args.model
    elif args.out is None:
        parser.error("--out DIR is required")
    args.func = run
    return call(args, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
