"""The paper's training recipe, the settings of a run (:class:`TrainConfig`) and learning-rate schedules.

He, Zhang, Ren, Sun, *Identity Mappings in Deep Residual Networks* (ECCV 2016), Sec. 3.1 / Appendix:

- CIFAR: SGD with momentum 0.9 (``optimizer='nag'``: Nesterov momentum, as in the authors' Torch code)
  and weight decay 1e-4, mini-batch 128 (2 GPUs x 64), He (MSRA)
  initialisation, learning rate 0.1 divided by 10 at 32k and 48k iterations, training stopped at 64k
  iterations (about 164 epochs); a warm-up at 0.01 for the first 400 iterations (used in all CIFAR runs;
  the paper notes pre-activation units do not need it).
- ImageNet: learning rate 0.1 divided by 10 at epochs 30 and 60, mini-batch 256 (8 GPUs), 90 epochs.

The paper's step milestones are kept as *fractions of the run* (32k/64k = 1/2, 48k/64k = 3/4; 30/90 and
60/90), so that ``--epochs 2`` on Fashion-MNIST decays at the same relative points as the 64k-iteration
CIFAR run.  Explicit milestones (``--lr-steps``) are given in the unit of the run length: iterations with
``--iterations``, epochs with ``--epochs``.

Every schedule is a pure function of the iteration number (:meth:`LRSchedule.__call__`), which is what
makes a resumed run identical to an uninterrupted one.
"""

import dataclasses
import json
from typing import Optional

from ..data.datasets import DATASETS as _LOADERS
from ..paper_results import FAIL_THRESHOLD
from ..validate import (
    ListOf,
    Number,
    check_choice,
    finite_float,
    gpu_list,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
)
from . import modern
from .paper_recipe import (  # noqa: F401  (importable from here)
    CIFAR_RECIPE,
    IMAGENET_RECIPE,
    RECIPES,
    SMALL_RECIPE,
    Recipe,
    recipe_for,
)
from .schedule import SCHEDULES, LRSchedule, make_schedule, total_iterations  # noqa: F401 (importable from here)

#: ``--seed``: what numpy's and MXNet's seeding accept.
SEED = Number(int, 0, 2**32 - 1)

#: Datasets the trainer knows: the names of :data:`gluon_resnetv2.data.datasets.DATASETS`, their owner.
DATASETS = tuple(_LOADERS)

#: The data set of a run that names none (CLI and Python alike): the one installed by ``make dataset``.
DEFAULT_DATASET = "fashion-mnist"

#: ``--dtype`` choices (float16 trains with multi-precision SGD: fp32 master weights; bfloat16 with MXNet's
#: AMP on CPUs with AVX-512 BF16, see :mod:`.bf16`).
DTYPES = ("float32", "float16", "bfloat16")

#: ``--optimizer`` choices, MXNet optimizer names: ``sgd`` (momentum SGD, the paper's Caffe runs) and ``nag``
#: (Nesterov momentum, the authors' released Torch code: fb.resnet.torch ``train.lua``, ``nesterov = true``).
OPTIMIZERS = ("sgd", "nag")


#: The paper's "fail" in Table 1 as a fraction (errors are fractions here); the owner is
#: :data:`gluon_resnetv2.paper_results.FAIL_THRESHOLD`, in percent as the paper gives it.
PAPER_FAIL_ERROR = FAIL_THRESHOLD / 100


#: The groups of ``gluon-resnetv2 train --help`` (after the model options), in order: TrainConfig's ``group``.
OPTION_GROUPS = {
    "data": "data",
    "devices": "devices",
    "optimisation": "optimisation (defaults: the paper's recipe for the data set)",
    "modern": "modern recipe (each off by default; docs/guides/training-options.md)",
    "output": "output",
}


def _option(default=None, help=None, group=None, flags=None, resume=False, factory=None, to_config=None, **cli):
    """A :class:`TrainConfig` field and its ``gluon-resnetv2 train`` option, declared once.

    ``help`` and ``group`` (a key of :data:`OPTION_GROUPS`; None: no option of its own); ``cli``: what
    ``add_argument`` takes (``type``, ``choices``, ``metavar``, ``action``; ``type`` may name a converter
    of :mod:`gluon_resnetv2.commands.train`; ``exclusive``: a mutually exclusive set); ``flags``: the
    option strings (default ``--the-name``) or ``[(flag, add_argument kwargs), ...]`` for several;
    ``to_config``: a converter applied when the config is built; ``resume``: ``--resume`` may change it
    (it does not alter the result).
    """
    metadata = {"help": help, "group": group, "flags": flags, "cli": cli, "resume": resume, "to_config": to_config}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a training run; written to ``<out>/config.json`` and enough to resume it.

    ``None`` means "the paper's default for the dataset" (see :func:`TrainConfig.resolved`).
    ``batch_size`` is the *global* mini-batch (paper: 128), split over devices and workers.  The fields are
    in the order ``train --help`` lists them; their metadata declare the options (:func:`_option`).
    """

    model: str = "cifar_resnet20_v2"  # --model and the variant options: commands/model_args.py
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    # The CLI default of --dataset is None (filled in by config_from_args), so --resume can tell it was given.
    dataset: str = _option(
        DEFAULT_DATASET,
        group="data",
        choices=DATASETS,
        help="data set (default {default}; synthetic: random images for smoke tests, its error means nothing)",
    )
    data_dir: Optional[str] = _option(
        group="data", resume=True, help="directory of the data set files (default: its usual place)"
    )
    num_workers: Optional[int] = _option(
        group="data", resume=True, type=nonneg_int, help="loader workers (default: one per physical core)"
    )
    # None = the dataset's training default (CIFAR: pad-crop-flip)
    augment: Optional[bool] = _option(
        group="data",
        flags=[
            (
                "--no-augment",
                dict(
                    action="store_const",
                    const=False,
                    help="no augmentation (default: the data set's; CIFAR: 4-pixel pad, crop, flip)",
                ),
            ),
            ("--augment", dict(action="store_const", const=True, help="force the pad-crop-flip augmentation on")),
        ],
    )
    # train on the first N training images (quick runs, tests)
    train_subset: Optional[int] = _option(
        group="data", type=positive_int, metavar="N", help="train on the first N images only"
    )
    # load_dataset(**options), e.g. synthetic size
    dataset_options: dict = _option(
        factory=dict,
        group="data",
        flags="--data-option",
        type="key_value",
        action="append",
        metavar="KEY=VALUE",
        to_config="pairs",
        help="extra load_dataset option (JSON value), e.g. image_shape=[3,16,16] for synthetic",
    )
    cpus: Optional[int] = _option(
        group="devices", resume=True, type=positive_int, metavar="N", help="train on N CPU contexts (default 1)"
    )
    gpus: Optional[list] = _option(
        group="devices",
        resume=True,
        type=gpu_list,
        metavar="LIST",
        to_config="gpus",
        help="comma-separated GPU indices, e.g. 0,1,2,3",
    )
    kvstore: str = _option(
        "device",
        group="devices",
        resume=True,
        help="device (default), local, nccl; dist_sync / dist_device_sync under `gluon-resnetv2 launch`",
    )
    dtype: str = _option(
        "float32",
        group="devices",
        choices=DTYPES,
        help="float16 trains with multi-precision SGD (fp32 master weights, GPUs); bfloat16 with "
        "MXNet's AMP on CPUs with AVX-512 BF16 (fp32 weights, bf16 convolutions)",
    )
    batch_size: Optional[int] = _option(
        group="optimisation", type=positive_int, help="global mini-batch (paper: 128 CIFAR, 256 ImageNet)"
    )
    epochs: Optional[float] = _option(
        group="optimisation", type=positive_float, exclusive="length", help="run length in epochs"
    )
    iterations: Optional[int] = _option(
        group="optimisation",
        type=positive_int,
        exclusive="length",
        help="run length in iterations (paper CIFAR: 64000)",
    )
    lr: Optional[float] = _option(group="optimisation", type=positive_float, help="base learning rate (paper: 0.1)")
    lr_schedule: Optional[str] = _option(
        group="optimisation",
        choices=SCHEDULES,
        help="step (paper: /10 at 1/2 and 3/4 of the run, i.e. 32k and 48k of 64k), cosine, constant",
    )
    lr_steps: Optional[list] = _option(
        group="optimisation",
        type=ListOf(positive_float, what="milestone"),
        metavar="LIST",
        help="step milestones in the run's unit (iterations with --iterations, epochs with --epochs)",
    )
    lr_factor: Optional[float] = _option(
        group="optimisation", type=finite_float(0, 1, low_open=True), help="step decay factor (paper: 0.1)"
    )
    warmup: Optional[int] = _option(
        group="optimisation",
        type=nonneg_int,
        metavar="ITERATIONS",
        help="iterations at --warmup-lr first (paper CIFAR: 400 at 0.01; 0 disables)",
    )
    warmup_lr: Optional[float] = _option(
        group="optimisation", type=positive_float, help="warm-up learning rate (paper: 0.01)"
    )
    momentum: Optional[float] = _option(
        group="optimisation", type=finite_float(0, 1, high_open=True), help="SGD momentum (paper: 0.9)"
    )
    wd: Optional[float] = _option(group="optimisation", type=nonneg_float, help="weight decay (paper: 1e-4)")
    # one of OPTIMIZERS; None (and a config.json without it): sgd, or the --recipe preset's
    optimizer: Optional[str] = _option(
        None,
        group="optimisation",
        choices=OPTIMIZERS,
        help="sgd: momentum SGD (default, the paper's runs); nag: Nesterov momentum (the authors' released Torch code)",
    )
    # The modern recipe (issue 21): None = the --recipe preset's value, else off (train/modern.py).
    recipe: Optional[str] = _option(
        group="modern",
        choices=modern.RECIPE_NAMES,
        metavar="NAME",
        help="preset for the options not given: gluoncv (train_cifar10.py: nag, lr 0.1 /10 at epochs 100, 150 "
        "of 200, wd 1e-4, batch 128, no warm-up) or gluoncv-mixup (220 epochs, mixup 1, off for the last 20)",
    )
    label_smoothing: Optional[float] = _option(
        group="modern", type=modern.FRACTION, metavar="EPS", help="targets (1-EPS) one-hot + EPS/classes (e.g. 0.1)"
    )
    mixup: Optional[float] = _option(
        group="modern", type=nonneg_float, metavar="ALPHA", help="mixup, lambda ~ Beta(ALPHA, ALPHA) (e.g. 1; 0: off)"
    )
    mixup_off_epochs: Optional[float] = _option(
        group="modern", type=nonneg_float, metavar="E", help="no mixup in the last E epochs (gluoncv: 20 of 220)"
    )
    warmup_epochs: Optional[float] = _option(
        group="modern", type=nonneg_float, metavar="E", help="linear warm-up from 0 to --lr over E epochs"
    )
    no_wd_norm_bias: Optional[bool] = _option(
        group="modern", action="store_true", help="no weight decay on BatchNorm gamma/beta and biases"
    )
    zero_init_last: Optional[bool] = _option(
        group="modern", action="store_true", help="each residual branch starts at zero: every unit an identity"
    )
    ema: Optional[float] = _option(
        group="modern", type=modern.FRACTION, metavar="DECAY", help="also evaluate and save an EMA of the weights"
    )
    sync_bn: Optional[bool] = _option(
        group="modern", action="store_true", help="SyncBatchNorm over the devices of a worker (--cpus/--gpus)"
    )
    precise_bn: Optional[int] = _option(
        group="modern", type=nonneg_int, metavar="N", help="BN statistics from N training batches before evaluating"
    )
    seed: int = _option(0, group="optimisation", type=SEED, help="random seed; makes a CPU run repeatable (default 0)")
    out: str = _option(
        "runs/train", group="output", help="run directory: log.csv, config.json, status.json, checkpoints"
    )
    log_interval: int = _option(
        50, group="output", type=positive_int, help="iterations per training-loss row (default 50)"
    )
    # iterations between evaluations; None = every epoch
    eval_interval: Optional[int] = _option(
        group="output", type=positive_int, help="iterations between test evaluations (default: every epoch)"
    )
    # periodic evaluations on N evenly spaced test images only
    eval_subset: Optional[int] = _option(
        group="output",
        type=positive_int,
        metavar="N",
        help="periodic evaluations on N evenly spaced test images (the final one uses all)",
    )
    # iterations between extra checkpoints; None = each epoch
    checkpoint_interval: Optional[int] = _option(
        group="output",
        type=positive_int,
        metavar="ITERATIONS",
        help="extra checkpoints every ITERATIONS (always: every epoch and at the end)",
    )
    label: Optional[str] = _option(group="output", help="legend label for plots")
    # TensorBoard event files in <out>/tensorboard (train/tensorboard_log.py); cheap enough to be on by default
    tensorboard: bool = _option(
        True,
        group="output",
        resume=True,
        flags=[
            (
                "--tensorboard",
                dict(action="store_const", const=True, help="write OUT/tensorboard/ event files (default)"),
            ),
            ("--no-tensorboard", dict(action="store_const", const=False, help="no TensorBoard event files")),
        ],
    )
    progress: bool = _option(
        True,
        group="output",
        resume=True,
        flags=[("--no-progress", dict(action="store_false", default=True, help="no progress bar nor summary line"))],
    )

    # ------------------------------------------------------------------------------------------------

    def resolved(self):
        """A copy with every ``None`` recipe field replaced by the dataset's paper default."""
        recipe = recipe_for(self.dataset)
        cfg = dataclasses.replace(
            self, model_kwargs=dict(self.model_kwargs or {}), dataset_options=dict(self.dataset_options or {})
        )
        modern.resolve(cfg)  # the --recipe preset first: it takes precedence over the paper's defaults
        cfg.optimizer = cfg.optimizer or "sgd"
        for name in ("lr", "momentum", "wd", "batch_size", "lr_schedule", "lr_factor", "warmup", "warmup_lr"):
            if getattr(cfg, name) is None:
                setattr(cfg, name, getattr(recipe, name))
        if cfg.epochs is None and cfg.iterations is None:
            cfg.epochs, cfg.iterations = recipe.epochs, recipe.iterations
        cfg.validate()
        return cfg

    def validate(self):
        """Raise ValueError with a readable message for a value out of its range (each field's range is its
        option's ``type``, :mod:`gluon_resnetv2.validate`) or inconsistent settings."""
        for field in dataclasses.fields(self):
            cli = field.metadata.get("cli") or {}
            value = getattr(self, field.name)
            if isinstance(cli.get("type"), (Number, ListOf)):
                cli["type"].check(value, field.name)
            if cli.get("choices") is not None:
                check_choice(value, cli["choices"], field.name)
        from ..nets.zoo import check_model_kwargs  # the network package loads MXNet: only when validating
        from .kvstore import check_kvstore_name

        check_model_kwargs(dict(self.model_kwargs or {}))
        check_kvstore_name(self.kvstore)
        if self.epochs is not None and self.iterations is not None:
            raise ValueError("give either --epochs or --iterations, not both")
        if self.cpus is not None and self.gpus is not None:
            raise ValueError("give either --cpus or --gpus, not both")
        if self.lr_steps is not None and self.lr_schedule is not None and self.lr_schedule != "step":
            raise ValueError(f"--lr-steps are the milestones of --lr-schedule step; {self.lr_schedule} has none")
        if self.lr_steps is not None and list(self.lr_steps) != sorted(self.lr_steps):
            raise ValueError(f"--lr-steps must be increasing, got {self.lr_steps}")
        modern.validate(self)

    # ------------------------------------------------------------------------------------------------

    def to_dict(self):
        """JSON-ready dict; the model variant keys are also written flat for readers such as the plots."""
        data = dataclasses.asdict(self)
        for key, value in (self.model_kwargs or {}).items():
            data.setdefault(key, value)
        return data

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict` (unknown keys, e.g. the flat variant copies, are ignored)."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})

    def save(self, path):
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, indent=2, sort_keys=True)
            handle.write("\n")

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))


#: The settings ``resume`` may change: they do not alter the result (threads, devices, paths, the bar).
RESUME_OVERRIDES = tuple(field.name for field in dataclasses.fields(TrainConfig) if field.metadata.get("resume"))
