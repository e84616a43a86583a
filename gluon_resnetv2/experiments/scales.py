"""How a paper table's rows become training runs: the scales ``quick``, ``depth`` and ``paper`` (see
:mod:`gluon_resnetv2.experiments`) and the networks the quick scale shrinks the paper's to."""

import dataclasses
from typing import Optional

#: Tables whose rows can be run (Table 5, ImageNet, is listed for reference only).
RUNNABLE_TABLES = ("table1", "table2", "table3", "table4")

SCALE_NAMES = ("quick", "depth", "paper")

#: The paper's run: 64k iterations with a 400-iteration warm-up (Sec. 4 / Appendix).
PAPER_ITERATIONS = 64000
PAPER_WARMUP = 400

#: Length of a quick run, in iterations of mini-batch 128.
QUICK_ITERATIONS = 400


@dataclasses.dataclass(frozen=True)
class DepthSetting:
    """The ``depth`` scale of one table: input resolution and run length, the same for every row.  Chosen
    once per table from a pilot of its ``original`` row alone (never per row); docs/guides/reproducing.md gives
    the reason."""

    image_size: int
    iterations: int
    warmup: int  # iterations at lr 0.01 (see below)
    spread_row: str  # the row trained with DEPTH_SPREAD_SEEDS seeds (seed-to-seed spread)


#: Depth scale: the paper's networks at their own depth on downsampled Fashion-MNIST.  The warm-up follows
#: the paper's rule, lr 0.01 "until the training error is below 80 %" (about 400 iterations on CIFAR-10,
#: Sec. 4.1), as measured in the table's pilot: the iteration where the original row's logged training
#: error first fell below 80 % at lr 0.01.
DEPTH_SETTINGS = {
    "table1": DepthSetting(16, 1200, 30, "original"),
    "table2": DepthSetting(16, 1200, 30, "original_110"),  # its original_110 row is Table 1's pilot run
    "table3": DepthSetting(8, 800, 20, "resnet110_v1"),
}

#: Seeds of each table's spread row at the depth scale (the other rows: ``--seeds``, default 1).
DEPTH_SPREAD_SEEDS = 3

#: Quick scale: the paper's network -> the deepest of the same kind that fits the time budget (all in the zoo).
QUICK_MODELS = {}
for _v in ("v1", "v2"):
    QUICK_MODELS.update(
        {
            f"cifar_resnet110_{_v}": f"cifar_resnet20_{_v}",
            f"cifar_resnet110_1layer_{_v}": f"cifar_resnet20_1layer_{_v}",
            f"cifar_resnet164_{_v}": f"cifar_resnet29_bottleneck_{_v}",
            f"cifar_resnet1001_{_v}": f"cifar_resnet56_bottleneck_{_v}",
        }
    )


@dataclasses.dataclass(frozen=True)
class Scale:
    """How a table's rows are turned into training runs."""

    name: str
    description: str
    dataset: Optional[str]  # None: each row's own (cifar10 / cifar100)
    iterations: int
    batch_size: Optional[int]  # None: the row's (paper: 128, Table 4 may say 64)
    eval_interval: Optional[int]  # None: every epoch
    eval_subset: Optional[int]  # periodic evaluations on this many test images (the last on all)
    checkpoint_interval: Optional[int]
    log_interval: int
    comparable: bool  # whether the numbers may be compared with the paper's
    num_workers: int = 1  # loader threads (augmentation): 1 on a 2-core CPU, more to feed GPUs
    datasets: Optional[tuple] = None  # paper data sets whose rows the scale runs (None: all)


SCALES = {
    "paper": Scale(
        "paper",
        "the paper's recipe: the row's data set and network, 64k iterations of mini-batch 128, "
        "lr 0.1 /10 at 32k and 48k, warm-up 0.01 for 400 iterations",
        None,
        PAPER_ITERATIONS,
        None,
        None,
        None,
        None,
        50,
        True,
        4,
    ),
    "quick": Scale(
        "quick",
        f"Fashion-MNIST, {QUICK_ITERATIONS} iterations of mini-batch 128 (about 0.85 epoch), lr "
        "0.1 /10 at 1/2 and 3/4 of the run, warm-up for 1/160 of it, networks shrunk to the deepest "
        "that fits (ResNet-110 -> 20 layers, 164 -> 29 bottleneck, 1001 -> 56 bottleneck)",
        "fashion-mnist",
        QUICK_ITERATIONS,
        128,
        100,
        1000,
        50,
        10,
        False,
        1,
    ),
    "depth": Scale(
        "depth",
        "each row's own network at the paper's depth (ResNet-110, -164, -1001) on "
        "Fashion-MNIST averaged down to a small resolution, mini-batch 128 (Table 4: 64), SGD 0.9, "
        "wd 1e-4, lr 0.1 /10 at 1/2 and 3/4 of a per-table iteration budget, warm-up at 0.01 until "
        "the training error falls below 80 % (measured once per table); CIFAR-10 rows only",
        "fashion-mnist",
        0,
        None,
        None,
        2000,
        None,
        10,
        False,
        1,
        ("cifar10",),
    ),
}


def get_scale(scale):
    if isinstance(scale, Scale):
        return scale
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    return SCALES[scale]
