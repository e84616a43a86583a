"""``gluon-resnetv2 train`` with one data set's defaults: the entry of ``scripts/train_cifar.py`` and
``scripts/train_imagenet.py``.

Every option of the command is accepted; only ``--dataset`` and ``--model`` default differently (CIFAR:
cifar10 and cifar_resnet110_v2, the recipe of Sec. 4; ImageNet: imagenet and resnet50_v2, Sec. 5).  With
``--resume DIR`` those defaults are dropped, so that the run continues with the settings in its config.json.
"""

import argparse

from ..cli import call
from .train import add_run_args, run

#: ``{name: (dataset, model, what)}`` of the ``scripts/train_<name>.py`` wrappers.
PRESETS = {"cifar": ("cifar10", "cifar_resnet110_v2", "CIFAR"), "imagenet": ("imagenet", "resnet50_v2", "ImageNet")}


def main(preset, argv=None):
    """Parse ``argv`` as ``train`` options with the defaults of ``PRESETS[preset]`` and run it; returns the
    exit status."""
    dataset, model, what = PRESETS[preset]
    parser = argparse.ArgumentParser(
        description=f"Train on {what} with the paper's recipe (wrapper of `gluon-resnetv2 train`)."
    )
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
