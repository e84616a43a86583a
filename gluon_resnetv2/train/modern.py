"""The modern recipe's options (issue 21), each off by default, and the ``--recipe`` presets.

The paper's recipe (He et al. 2016, Sec. 3.1 / Appendix: :mod:`.recipe`) stays the default and bit-identical:
every option below is ``None`` in a :class:`~.recipe.TrainConfig` until :func:`resolve` fills it in from
the preset (``--recipe``) or with its "off" value.  What each option does: docs/guides/training-options.md.

``--recipe gluoncv`` is what gluoncv trained its published CIFAR-10 ResNet v2 models with (model zoo
accuracy 92.1 / 93.7 / 94.3 % for ResNet-20 / 56 / 110 v2: ``docs/model_zoo/csv_tables/Classifications/
CIFAR10.csv`` of dmlc/gluon-cv, commit 5677756).  The values, checked in the sources:

- ``scripts/classification/cifar/train_cifar10.py`` (dmlc/gluon-cv): ``optimizer = 'nag'``, ``--lr`` 0.1,
  ``--momentum`` 0.9, ``--wd`` 1e-4, ``--lr-decay`` 0.1 (a step schedule at ``--lr-decay-epoch``), no
  warm-up, no label smoothing, ``last_batch='discard'``, RandomCrop(32, pad=4) + flip (our CIFAR default);
- the training commands the model zoo links (dmlc/web-data ``gluoncv/logs/classification/cifar/
  cifar_resnet{20,56,110}_v2.sh`` and the logs beside them, whose first line echoes the options):
  ``--num-epochs 200 --batch-size 128 --num-gpus 1 --wd 0.0001 --lr 0.1 --lr-decay 0.1
  --lr-decay-epoch 100,150``.  (The script's own defaults, ``--batch-size 32`` per device,
  ``--num-epochs 3``, ``--lr-decay-epoch 40,60``, are not what the published runs used.)

So: batch 128, lr 0.1 divided by 10 at epochs 100 and 150 of 200, Nesterov momentum 0.9, weight decay
1e-4, no warm-up.  The milestones are kept as fractions of the run (1/2 and 3/4, the paper's fractions too),
so ``--recipe gluoncv --epochs 2`` is a scaled-down copy.  Not reproduced: gluoncv initialises with
``mx.init.Xavier()`` (uniform, magnitude 3) where the paper and this package use He initialisation, and
normalises with CIFAR-10's per-channel mean/std as :mod:`gluon_resnetv2.data.cifar` does.

``--recipe gluoncv-mixup`` is ``scripts/classification/cifar/train_mixup_cifar10.py`` with the zoo's
``cifar_resnet110_v2_mixup.sh`` command: the same optimiser, 220 epochs, lr /10 at epochs 100 and 150,
mixup with ``alpha = 1`` switched off for the last 20 epochs (``if epoch >= epochs - 20: lam = 1``).
"""

import dataclasses
from typing import Optional

from ..validate import finite_float

#: ``--label-smoothing`` and ``--ema``: a fraction in [0, 1).
FRACTION = finite_float(0, 1, high_open=True)


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named set of defaults for the recipe fields that the user did not give (``--recipe NAME``)."""

    source: str
    lr: float
    momentum: float
    wd: float
    batch_size: int
    epochs: float
    lr_schedule: str
    lr_step_fractions: tuple  # milestones as fractions of the run (gluoncv: epochs 100, 150 of 200)
    lr_factor: float
    warmup: int
    optimizer: str
    mixup: Optional[float] = None
    mixup_off_fraction: float = 0.0  # the last fraction of the run without mixup (gluoncv: 20 of 220 epochs)


_GLUONCV = Preset(
    source="dmlc/gluon-cv scripts/classification/cifar/train_cifar10.py + cifar_resnet*_v2.sh",
    lr=0.1,
    momentum=0.9,
    wd=1e-4,
    batch_size=128,
    epochs=200,
    lr_schedule="step",
    lr_step_fractions=(100 / 200, 150 / 200),
    lr_factor=0.1,
    warmup=0,
    optimizer="nag",
)

PRESETS = {
    "gluoncv": _GLUONCV,
    # train_mixup_cifar10.py: the same recipe 20 epochs longer, mixup alpha 1 off for the last 20
    "gluoncv-mixup": dataclasses.replace(
        _GLUONCV,
        source="dmlc/gluon-cv scripts/classification/cifar/train_mixup_cifar10.py + cifar_resnet110_v2_mixup.sh",
        epochs=220,
        lr_step_fractions=(100 / 220, 150 / 220),
        mixup=1.0,
        mixup_off_fraction=20 / 220,
    ),
}

#: ``--recipe`` choices.
RECIPE_NAMES = tuple(PRESETS)

#: The fields of the modern options and their "off" value (what a run without them gets).
OFF = {
    "label_smoothing": 0.0,
    "mixup": 0.0,
    "mixup_off_epochs": 0.0,
    "warmup_epochs": 0.0,
    "no_wd_norm_bias": False,
    "zero_init_last": False,
    "ema": 0.0,
    "sync_bn": False,
    "precise_bn": 0,
}

_PRESET_FIELDS = ("lr", "momentum", "wd", "batch_size", "lr_schedule", "lr_factor", "warmup", "optimizer")


def preset_for(name):
    """The :class:`Preset` called ``name``; ValueError naming the choices otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown --recipe {name!r}: choose one of {', '.join(RECIPE_NAMES)}")
    return PRESETS[name]


def resolve(cfg):
    """Fill in (in place) what ``cfg.recipe`` presets, before the dataset's paper defaults; then the modern
    options that are still None with their "off" values.  Explicit settings always win."""
    if cfg.recipe is not None:
        preset = preset_for(cfg.recipe)
        for name in _PRESET_FIELDS:
            if getattr(cfg, name) is None:
                setattr(cfg, name, getattr(preset, name))
        if cfg.epochs is None and cfg.iterations is None:
            cfg.epochs = preset.epochs
        if cfg.mixup is None and preset.mixup is not None:
            cfg.mixup = preset.mixup
            if cfg.mixup_off_epochs is None and cfg.epochs is not None:
                cfg.mixup_off_epochs = round(preset.mixup_off_fraction * cfg.epochs, 6)
    if cfg.warmup_epochs and cfg.warmup is None:
        cfg.warmup = 0  # the linear warm-up replaces the paper's constant one
    for name, off in OFF.items():
        if getattr(cfg, name) is None:
            setattr(cfg, name, off)


def validate(cfg):
    """ValueError with one line naming the options, for modern options that contradict each other or the
    run (each value's own range is its option's ``type``, checked by :meth:`~.recipe.TrainConfig.validate`)."""
    if cfg.mixup_off_epochs and not cfg.mixup:
        raise ValueError("--mixup-off-epochs switches mixup off for the last epochs: give --mixup ALPHA too")
    if cfg.warmup_epochs and cfg.warmup:
        raise ValueError(
            "give either --warmup (the paper's constant warm-up) or --warmup-epochs (linear from 0), not both"
        )
    if cfg.sync_bn and cfg.gpus is None and not (cfg.cpus and cfg.cpus > 1):
        raise ValueError("--sync-bn synchronises BatchNorm across the devices of one worker: give --cpus N or --gpus")


def schedule_fractions(cfg):
    """The preset's milestones (fractions of the run), or None when the run has no preset."""
    return preset_for(cfg.recipe).lr_step_fractions if cfg.recipe is not None else None


def warmup_iterations(cfg, iterations_per_epoch):
    """Iterations of the linear warm-up (``--warmup-epochs``)."""
    return int(round((cfg.warmup_epochs or 0) * iterations_per_epoch))


def mixup_stop_iteration(cfg, total, iterations_per_epoch):
    """The first iteration without mixup (gluoncv's ``epoch >= epochs - 20``: the last epochs train clean)."""
    return total - int(round((cfg.mixup_off_epochs or 0) * iterations_per_epoch))
