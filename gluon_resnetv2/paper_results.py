"""The paper's numbers: one table that the experiments, the reports and the tests all read.

He, Zhang, Ren, Sun, *Identity Mappings in Deep Residual Networks* (ECCV 2016, arXiv:1603.05027): Table 1
(Sec. 3.1, shortcut variants), Tables 2 and 3 (Sec. 4.1, activation variants; original vs pre-activation),
Table 4 (Sec. 5, CIFAR) and Table 5 (Sec. 5, ImageNet); the recipes from Sec. 4 and the Appendix, and
for rows trained otherwise from the authors' code: KaimingHe/resnet-1k-layers (its README) and
facebook/fb.resnet.torch (``train.lua``).  Errors are test errors in percent; ``FAIL`` marks the paper's
"fail" (Table 1's caption: test error above 20 %).  Every row also says what it was measured on: the zoo
network, the unit variant (keyword arguments of :func:`gluon_resnetv2.get_model`), the data set and, where
the paper changes it, the mini-batch size.

>>> from gluon_resnetv2.paper_results import get_row
>>> get_row("table1", "constant_scaling_0.5_0.5").error
12.35
"""

from dataclasses import dataclass, field
from typing import Optional

#: The paper's "fail" (Table 1): test error above this percentage.
FAIL_THRESHOLD = 20.0

FAIL = "fail"

#: Training images of CIFAR-10 and CIFAR-100: one epoch of the authors' Torch runs.
CIFAR_TRAIN_IMAGES = 50000


@dataclass(frozen=True)
class RowRecipe:
    """How the paper's number of a row was trained, and where that recipe is written down.

    ``epochs`` None is the paper's CIFAR recipe (64k iterations, lr /10 at 32k and 48k, 400 warm-up
    iterations, momentum SGD); otherwise the run is ``epochs`` epochs of :data:`CIFAR_TRAIN_IMAGES` images
    with lr /10 after each of ``lr_step_epochs`` epochs, ``warmup`` iterations at lr 0.01 first and the
    MXNet optimizer ``optimizer``.
    """

    name: str  # short, for `reproduce --list`
    source: str  # where the recipe comes from
    epochs: Optional[int] = None
    lr_step_epochs: tuple = ()
    optimizer: str = "sgd"
    warmup: Optional[int] = None  # None: the paper's 400 iterations

    def iterations_per_epoch(self, batch_size):
        """Updates per epoch at ``batch_size`` (the trainer drops the last, incomplete batch)."""
        return CIFAR_TRAIN_IMAGES // batch_size

    def iterations(self, batch_size):
        """Run length in iterations at ``batch_size``; None for the paper's own (64k)."""
        return None if self.epochs is None else self.epochs * self.iterations_per_epoch(batch_size)

    def lr_steps(self, batch_size):
        """Iterations where the lr is divided by 10; None for the paper's (1/2 and 3/4 of the run)."""
        if self.epochs is None:
            return None
        return tuple(e * self.iterations_per_epoch(batch_size) for e in self.lr_step_epochs)


#: The paper's CIFAR recipe (Sec. 4 / Appendix), the recipe of every row unless it says otherwise.
PAPER_RECIPE = RowRecipe(
    "paper",
    "the paper, Sec. 4 and Appendix: 64k iterations, lr /10 at 32k and 48k, "
    "warm-up 0.01 for 400 iterations, momentum SGD (MSRA's Caffe runs)",
)

#: Table 5's recipe (Sec. 5), for reference: ImageNet rows are not run by the experiments.
PAPER_IMAGENET_RECIPE = RowRecipe(
    "paper", "the paper, Sec. 5: lr 0.1 /10 at epochs 30 and 60, mini-batch 256, momentum SGD"
)

#: The run behind Table 4's 4.62 %: the authors' README (KaimingHe/resnet-1k-layers) trains ResNet-1001 with
#: ``-batchSize 64 -nEpochs 200`` on fb.resnet.torch, whose ``train.lua`` divides the lr by 10 from (1-based)
#: epoch 81 and 122, i.e. after 80 and 121 epochs, uses Nesterov momentum and has no warm-up.
AUTHORS_README_BATCH64 = RowRecipe(
    "authors' README",
    "KaimingHe/resnet-1k-layers README: -batchSize 64 -nEpochs 200; fb.resnet.torch "
    "train.lua: lr /10 from epoch 81 and 122, Nesterov momentum, no warm-up",
    epochs=200,
    lr_step_epochs=(80, 121),
    optimizer="nag",
    warmup=0,
)


@dataclass(frozen=True)
class PaperRow:
    """One cell of the paper's tables.

    ``key`` names the row within its table (used by ``gluon-resnetv2 reproduce --rows``); ``error`` is the
    test error in percent, or :data:`FAIL`; ``top5`` only for ImageNet (Table 5); ``group`` is the set of
    rows the paper compares with each other (its figures draw such groups); ``recipe`` how the number was
    trained (:class:`RowRecipe`).
    """

    table: str
    key: str
    network: str  # the paper's name, e.g. "ResNet-110"
    variant: str  # the paper's description of the unit
    model: str  # zoo name
    dataset: str  # cifar10 | cifar100 | imagenet
    error: object  # float (percent) or FAIL
    group: str = ""
    model_kwargs: dict = field(default_factory=dict, hash=False)
    batch_size: Optional[int] = None  # None: the recipe's (CIFAR 128)
    top5: Optional[float] = None
    note: str = ""
    recipe: RowRecipe = PAPER_RECIPE

    @property
    def failed(self):
        """True where the paper reports "fail"."""
        return self.error == FAIL

    @property
    def error_text(self):
        return FAIL if self.failed else f"{self.error:.2f}"


def _t1(key, variant, error, group, note="", **kwargs):
    return PaperRow(
        "table1", key, "ResNet-110", variant, "cifar_resnet110_v1", "cifar10", error, group, kwargs, note=note
    )


#: Table 1: ResNet-110 on CIFAR-10 with the shortcut variants of Fig. 2, on the original unit (f = ReLU).
TABLE1 = (
    _t1("original", "original (identity shortcut)", 6.61, "baseline", shortcut="identity"),
    _t1(
        "constant_scaling_0_1",
        "constant scaling, 0 on shortcut, 1 on F (a plain net)",
        FAIL,
        "constant scaling",
        shortcut="constant_scaling",
        shortcut_scale=0.0,
        residual_scale=1.0,
    ),
    _t1(
        "constant_scaling_0.5_1",
        "constant scaling, 0.5 on shortcut, 1 on F",
        FAIL,
        "constant scaling",
        shortcut="constant_scaling",
        shortcut_scale=0.5,
        residual_scale=1.0,
    ),
    _t1(
        "constant_scaling_0.5_0.5",
        "constant scaling, 0.5 on shortcut, 0.5 on F",
        12.35,
        "constant scaling",
        shortcut="constant_scaling",
        shortcut_scale=0.5,
        residual_scale=0.5,
    ),
    _t1(
        "exclusive_gating_b0",
        "exclusive gating, b_g = 0",
        FAIL,
        "exclusive gating",
        "paper row: b_g = 0 to -5 fail",
        shortcut="exclusive_gating",
        gate_bias=0.0,
    ),
    _t1(
        "exclusive_gating_b-5",
        "exclusive gating, b_g = -5",
        FAIL,
        "exclusive gating",
        "paper row: b_g = 0 to -5 fail",
        shortcut="exclusive_gating",
        gate_bias=-5.0,
    ),
    _t1(
        "exclusive_gating_b-6",
        "exclusive gating, b_g = -6",
        8.70,
        "exclusive gating",
        shortcut="exclusive_gating",
        gate_bias=-6.0,
    ),
    _t1(
        "exclusive_gating_b-7",
        "exclusive gating, b_g = -7",
        9.81,
        "exclusive gating",
        shortcut="exclusive_gating",
        gate_bias=-7.0,
    ),
    _t1(
        "shortcut_only_gating_b0",
        "shortcut-only gating, b_g = 0",
        12.86,
        "shortcut-only gating",
        shortcut="shortcut_only_gating",
        gate_bias=0.0,
    ),
    _t1(
        "shortcut_only_gating_b-6",
        "shortcut-only gating, b_g = -6",
        6.91,
        "shortcut-only gating",
        shortcut="shortcut_only_gating",
        gate_bias=-6.0,
    ),
    _t1("conv1x1", "1x1 conv shortcut", 12.22, "1x1 conv and dropout", shortcut="conv1x1"),
    _t1(
        "dropout",
        "dropout shortcut (ratio 0.5)",
        FAIL,
        "1x1 conv and dropout",
        shortcut="dropout",
        shortcut_dropout=0.5,
    ),
)

_ACTIVATIONS = (  # Fig. 4 ordering, paper's name, ResNet-110 error, ResNet-164 error
    ("original", "original (Fig. 4(a))", 6.61, 5.93),
    ("bn_after_add", "BN after addition (Fig. 4(b))", 8.17, 6.50),
    ("relu_before_add", "ReLU before addition (Fig. 4(c))", 7.84, 6.14),
    ("relu_preact", "ReLU-only pre-activation (Fig. 4(d))", 6.71, 5.91),
    ("full_preact", "full pre-activation (Fig. 4(e))", 6.37, 5.46),
)

#: Table 2: the activation variants of Fig. 4 on ResNet-110 (basic) and ResNet-164 (bottleneck), CIFAR-10.
TABLE2 = tuple(
    PaperRow(
        "table2",
        f"{activation}_{depth}",
        f"ResNet-{depth}",
        name,
        f"cifar_resnet{depth}_{'v2' if activation in ('relu_preact', 'full_preact') else 'v1'}",
        "cifar10",
        error_110 if depth == 110 else error_164,
        f"ResNet-{depth}",
        {"activation": activation},
    )
    for depth in (110, 164)
    for activation, name, error_110, error_164 in _ACTIVATIONS
)


def _t3(key, network, model, dataset, error, group):
    version = model.rsplit("_", 1)[1]
    variant = "original" if version == "v1" else "pre-activation"
    return PaperRow("table3", key, network, variant, model, dataset, error, group)


#: Table 3: original vs (full) pre-activation units, CIFAR-10 and CIFAR-100.
TABLE3 = (
    _t3(
        "resnet110_1layer_v1",
        "ResNet-110 (1-layer skip)",
        "cifar_resnet110_1layer_v1",
        "cifar10",
        9.90,
        "ResNet-110 (1-layer skip)",
    ),
    _t3(
        "resnet110_1layer_v2",
        "ResNet-110 (1-layer skip)",
        "cifar_resnet110_1layer_v2",
        "cifar10",
        8.91,
        "ResNet-110 (1-layer skip)",
    ),
    _t3("resnet110_v1", "ResNet-110", "cifar_resnet110_v1", "cifar10", 6.61, "ResNet-110"),
    _t3("resnet110_v2", "ResNet-110", "cifar_resnet110_v2", "cifar10", 6.37, "ResNet-110"),
    _t3("resnet164_v1", "ResNet-164", "cifar_resnet164_v1", "cifar10", 5.93, "ResNet-164"),
    _t3("resnet164_v2", "ResNet-164", "cifar_resnet164_v2", "cifar10", 5.46, "ResNet-164"),
    _t3("resnet1001_v1", "ResNet-1001", "cifar_resnet1001_v1", "cifar10", 7.61, "ResNet-1001"),
    _t3("resnet1001_v2", "ResNet-1001", "cifar_resnet1001_v2", "cifar10", 4.92, "ResNet-1001"),
    _t3("resnet164_v1_cifar100", "ResNet-164", "cifar_resnet164_v1", "cifar100", 25.16, "ResNet-164, CIFAR-100"),
    _t3("resnet164_v2_cifar100", "ResNet-164", "cifar_resnet164_v2", "cifar100", 24.33, "ResNet-164, CIFAR-100"),
    _t3("resnet1001_v1_cifar100", "ResNet-1001", "cifar_resnet1001_v1", "cifar100", 27.82, "ResNet-1001, CIFAR-100"),
    _t3("resnet1001_v2_cifar100", "ResNet-1001", "cifar_resnet1001_v2", "cifar100", 22.71, "ResNet-1001, CIFAR-100"),
)

#: Table 4: ResNet-1001 (pre-activation) against the state of the art; the paper's own rows.
TABLE4 = (
    PaperRow(
        "table4",
        "resnet1001_v2",
        "ResNet-1001",
        "pre-activation, mini-batch 128",
        "cifar_resnet1001_v2",
        "cifar10",
        4.92,
        "CIFAR-10",
    ),
    PaperRow(
        "table4",
        "resnet1001_v2_batch64",
        "ResNet-1001",
        "pre-activation, mini-batch 64",
        "cifar_resnet1001_v2",
        "cifar10",
        4.62,
        "CIFAR-10",
        batch_size=64,
        recipe=AUTHORS_README_BATCH64,
    ),
    PaperRow(
        "table4",
        "resnet1001_v2_cifar100",
        "ResNet-1001",
        "pre-activation, mini-batch 128",
        "cifar_resnet1001_v2",
        "cifar100",
        22.71,
        "CIFAR-100",
    ),
)

#: Table 5: ImageNet, single crop 320, top-1 / top-5 error.
TABLE5 = (
    PaperRow(
        "table5",
        "resnet152_v1",
        "ResNet-152",
        "original",
        "resnet152_v1",
        "imagenet",
        21.3,
        "ResNet-152",
        top5=5.5,
        recipe=PAPER_IMAGENET_RECIPE,
    ),
    PaperRow(
        "table5",
        "resnet152_v2",
        "ResNet-152",
        "pre-activation",
        "resnet152_v2",
        "imagenet",
        21.1,
        "ResNet-152",
        top5=5.5,
        recipe=PAPER_IMAGENET_RECIPE,
    ),
    PaperRow(
        "table5",
        "resnet200_v1",
        "ResNet-200",
        "original",
        "resnet200_v1",
        "imagenet",
        21.8,
        "ResNet-200",
        top5=6.0,
        recipe=PAPER_IMAGENET_RECIPE,
    ),
    PaperRow(
        "table5",
        "resnet200_v2",
        "ResNet-200",
        "pre-activation",
        "resnet200_v2",
        "imagenet",
        20.7,
        "ResNet-200",
        top5=5.3,
        recipe=PAPER_IMAGENET_RECIPE,
    ),
    PaperRow(
        "table5",
        "resnet200_v2_aspect",
        "ResNet-200",
        "pre-activation, scale + aspect ratio augmentation",
        "resnet200_v2",
        "imagenet",
        20.1,
        "ResNet-200",
        top5=4.8,
        recipe=PAPER_IMAGENET_RECIPE,
    ),
)

TABLES = {"table1": TABLE1, "table2": TABLE2, "table3": TABLE3, "table4": TABLE4, "table5": TABLE5}

TITLES = {
    "table1": "Table 1: shortcut variants of Fig. 2 (ResNet-110, original unit, CIFAR-10)",
    "table2": "Table 2: activation variants of Fig. 4 (ResNet-110 / ResNet-164, CIFAR-10)",
    "table3": "Table 3: original vs pre-activation units (CIFAR-10 and CIFAR-100)",
    "table4": "Table 4: ResNet-1001 with pre-activation (CIFAR-10 and CIFAR-100)",
    "table5": "Table 5: ImageNet, single crop 320, top-1 / top-5 error",
}


def get_table(table):
    """The rows of ``table`` ('table1' ... 'table5', or 1 ... 5); ValueError names the valid tables."""
    name = f"table{table}" if isinstance(table, int) or str(table).isdigit() else str(table).lower()
    if name not in TABLES:
        raise ValueError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    return TABLES[name]


def get_row(table, key):
    """The :class:`PaperRow` ``key`` of ``table``; ValueError lists the table's keys."""
    rows = get_table(table)
    for row in rows:
        if row.key == key:
            return row
    raise ValueError(f"{rows[0].table} has no row {key!r}; its rows are {', '.join(r.key for r in rows)}")
