"""The paper's training recipes (He et al. 2016, Sec. 3.1 / Appendix for CIFAR, Sec. 5 for ImageNet), one
:class:`Recipe` per family of data sets; :mod:`.recipe` turns them into a run's settings."""

import dataclasses
from typing import Optional

from ..data.datasets import DATASETS


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Paper defaults for one family of datasets."""

    lr: float
    momentum: float
    wd: float
    batch_size: int
    iterations: Optional[int]  # run length in iterations (CIFAR: 64k) ...
    epochs: Optional[int]  # ... or in epochs (ImageNet: 90)
    lr_schedule: str
    lr_step_fractions: tuple  # step milestones as fractions of the run
    lr_factor: float
    warmup: int  # iterations at warmup_lr before the schedule starts
    warmup_lr: float


#: CIFAR recipe (paper, Sec. 3.1 and Appendix).
CIFAR_RECIPE = Recipe(
    lr=0.1,
    momentum=0.9,
    wd=1e-4,
    batch_size=128,
    iterations=64000,
    epochs=None,
    lr_schedule="step",
    lr_step_fractions=(0.5, 0.75),
    lr_factor=0.1,
    warmup=400,
    warmup_lr=0.01,
)

#: ImageNet recipe (paper, Sec. 5): lr 0.1, /10 at epochs 30 and 60, batch 256, 90 epochs.
IMAGENET_RECIPE = Recipe(
    lr=0.1,
    momentum=0.9,
    wd=1e-4,
    batch_size=256,
    iterations=None,
    epochs=90,
    lr_schedule="step",
    lr_step_fractions=(1 / 3, 2 / 3),
    lr_factor=0.1,
    warmup=0,
    warmup_lr=0.01,
)

#: Fashion-MNIST and the synthetic set (short runs, not in the paper): the CIFAR recipe without warm-up.
SMALL_RECIPE = dataclasses.replace(CIFAR_RECIPE, warmup=0)

RECIPES = {
    "cifar10": CIFAR_RECIPE,
    "cifar100": CIFAR_RECIPE,
    "fashion-mnist": SMALL_RECIPE,
    "synthetic": SMALL_RECIPE,
    "imagenet": IMAGENET_RECIPE,
}


def recipe_for(dataset):
    """The :class:`Recipe` of ``dataset``; ValueError naming the known datasets otherwise."""
    if dataset not in RECIPES:
        raise ValueError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    return RECIPES[dataset]
