"""Training with the paper's recipe (He et al. 2016, Sec. 3.1 / Appendix).

>>> from gluon_resnetv2.train import TrainConfig, train, resume
>>> status = train(TrainConfig(model="cifar_resnet20_v2", dataset="synthetic", iterations=100, out="runs/x"))
>>> status = resume("runs/x")   # continues an interrupted run from its last checkpoint

Without ``dataset`` a run trains on Fashion-MNIST (:data:`.recipe.DEFAULT_DATASET`), as the CLI does.
SIGINT/SIGTERM stop a run after the current iteration with a checkpoint and raise :class:`Interrupted`
(a KeyboardInterrupt; ``exit_code`` 130 / 143).

Modules: :mod:`.recipe` (paper defaults, TrainConfig, lr schedules), :mod:`.devices` (contexts, batch
splitting, GPU preflight), :mod:`.kvstore` (gradient aggregation), :mod:`.steps` (one SGD step,
evaluation, seeding), :mod:`.build` (assembling a run), :mod:`.schedule` (when to log, evaluate,
checkpoint), :mod:`.signals` (SIGINT/SIGTERM), :mod:`.loop` (the loop, train, resume),
:mod:`.checkpoint`, :mod:`.runlog` (log.csv, config.json, status.json), :mod:`.launcher` (distributed
parameter-server jobs).
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .devices import check_gpu_support, make_contexts, preflight_gpus
from .loop import resume, train
from .recipe import CIFAR_RECIPE, IMAGENET_RECIPE, PAPER_FAIL_ERROR, LRSchedule, TrainConfig, make_schedule, recipe_for
from .runlog import LOG_COLUMNS, read_log_rows, read_status
from .signals import Interrupted
from .steps import evaluate, forward_backward

__all__ = [
    "train",
    "resume",
    "Interrupted",
    "TrainConfig",
    "LRSchedule",
    "make_schedule",
    "recipe_for",
    "CIFAR_RECIPE",
    "IMAGENET_RECIPE",
    "PAPER_FAIL_ERROR",
    "make_contexts",
    "check_gpu_support",
    "preflight_gpus",
    "evaluate",
    "forward_backward",
    "save_checkpoint",
    "load_checkpoint",
    "LOG_COLUMNS",
    "read_log_rows",
    "read_status",
]
