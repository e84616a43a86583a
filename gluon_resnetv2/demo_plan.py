"""What ``make demo`` trains (:data:`PAIRS`: the pairs of networks and their recipes) and for how long
(:func:`epochs_for_budget` from a measured speed); :mod:`gluon_resnetv2.demo` runs them and draws Figure 1."""

import dataclasses
import os
import tempfile
import time
from typing import Optional

import mxnet as mx

from .train import TrainConfig
from .train.loop import Run, forward_backward

MIN_EPOCHS, MAX_EPOCHS = 0.5, 2.0
TRAIN_IMAGES = 60000


@dataclasses.dataclass(frozen=True)
class DemoPair:
    """An original / pre-activation pair the demo can train side by side (``--pair NAME``).

    ``iterations`` None: the run length is as many epochs (0.5 to 2) as fit the ``--budget``, measured on
    the machine (the ResNet-20 pair); otherwise a fixed number of iterations chosen once from a measurement
    on the 2-core reference machine (docs/guides/training.md).  ``image_size`` averages Fashion-MNIST down (the depth
    scale of ``reproduce``); ``recipe`` is 'demo' (lr 0.1, cosine decay, no warm-up, no augmentation) or
    'depth' (the paper's shape as at ``reproduce --scale depth``: warm-up at 0.01, lr 0.1 /10 at 1/2 and
    3/4, augmentation on)."""

    name: str
    models: tuple  # ((zoo name, label), (zoo name, label)): original first
    title: str
    recipe: str = "demo"
    image_size: Optional[int] = None
    batch_size: int = 128
    iterations: Optional[int] = None
    warmup: int = 0
    target_error: Optional[float] = None  # the note printed when a test error is above it


PAIRS = {
    pair.name: pair
    for pair in (
        DemoPair(
            "resnet20",
            (("cifar_resnet20_v1", "original ResNet-20 (v1)"), ("cifar_resnet20_v2", "pre-activation ResNet-20 (v2)")),
            "ResNet-20 on Fashion-MNIST (cf. Figure 1)",
            target_error=0.12,
        ),
        DemoPair(
            "resnet164-16",
            (
                ("cifar_resnet164_v1", "original ResNet-164 (v1)"),
                ("cifar_resnet164_v2", "pre-activation ResNet-164 (v2)"),
            ),
            "ResNet-164 on Fashion-MNIST 16x16 (cf. Figure 1)",
            "depth",
            16,
            128,
            500,
            30,
        ),
        DemoPair(
            "resnet1001-8",
            (
                ("cifar_resnet1001_v1", "original ResNet-1001 (v1)"),
                ("cifar_resnet1001_v2", "pre-activation ResNet-1001 (v2)"),
            ),
            "ResNet-1001 on Fashion-MNIST 8x8 (cf. Figure 1)",
            "depth",
            8,
            64,
            500,
            20,
        ),
    )
}

#: What ``make demo`` trains: the deepest pair that showed the paper's contrast within the demo's budget
#: (docs/guides/training.md, "Figure 1 and make demo", gives the measurements behind the choice).
DEFAULT_PAIR = "resnet1001-8"


def get_pair(name):
    if name not in PAIRS:
        raise ValueError(f"--pair {name!r}: choose one of {', '.join(PAIRS)}")
    return PAIRS[name]


def measure_throughput(data_dir=None, batch_size=128, iterations=24, warmup=4):
    """Training images/s of ``cifar_resnet20_v2`` on Fashion-MNIST in this process (weights thrown away)."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(
            TrainConfig(
                model=PAIRS["resnet20"].models[1][0],
                dataset="fashion-mnist",
                data_dir=data_dir,
                out=tmp,
                batch_size=batch_size,
                epochs=1,
                augment=False,
                num_workers=1,
                progress=False,
            )
        )
        batches = run.train_loader.iterate(epoch=0)
        for step in range(warmup + iterations):
            if step == warmup:
                mx.nd.waitall()
                start = time.time()
            data, label = next(batches)
            loss, _, _ = forward_backward(run.net, run.loss_fn, data, label, run.contexts)
            run.trainer.step(batch_size)
            loss[0].asscalar()
        mx.nd.waitall()
        batches.close()
        return iterations * batch_size / (time.time() - start)


def epochs_for_budget(
    budget,
    images_per_second,
    batch_size=128,
    eval_interval=100,
    eval_subset=2000,
    test_images=10000,
    overhead=10.0,
    eval_speedup=4.0,
):
    """Epochs whose training and evaluations take about ``budget`` seconds at ``images_per_second``.

    Evaluation (inference) is taken as ``eval_speedup`` times faster than training; ``overhead`` covers
    start-up and checkpoints.  Clamped to [0.5, 2] epochs.
    """
    per_iteration = batch_size / images_per_second + eval_subset / eval_interval / (eval_speedup * images_per_second)
    fixed = overhead + test_images / (eval_speedup * images_per_second)
    iterations = max(0.0, budget - fixed) / per_iteration
    epochs = iterations * batch_size / TRAIN_IMAGES
    return round(min(MAX_EPOCHS, max(MIN_EPOCHS, epochs)), 2)


def demo_config(
    model,
    label,
    out,
    data_dir=None,
    epochs=1.0,
    batch_size=128,
    lr=0.1,
    log_interval=20,
    eval_interval=100,
    eval_subset=2000,
    train_subset=None,
    seed=0,
    progress=True,
    pair=DEFAULT_PAIR,
    iterations=None,
):
    """The :class:`~gluon_resnetv2.train.TrainConfig` of one demo network of ``pair``."""

    pair = get_pair(pair) if isinstance(pair, str) else pair
    common = dict(
        model=model,
        dataset="fashion-mnist",
        data_dir=data_dir,
        out=os.path.join(out, "runs", model),
        lr=lr,
        log_interval=log_interval,
        eval_interval=eval_interval,
        eval_subset=eval_subset,
        train_subset=train_subset,
        seed=seed,
        num_workers=1,
        progress=progress,
        label=label,
    )
    if pair.recipe == "demo":
        return TrainConfig(
            batch_size=batch_size, epochs=epochs, lr_schedule="cosine", warmup=0, augment=False, **common
        )
    return TrainConfig(
        batch_size=pair.batch_size,
        iterations=iterations or pair.iterations,
        lr_schedule="step",
        warmup=pair.warmup,
        warmup_lr=0.01,
        dataset_options={"image_size": pair.image_size},
        **common,
    )
