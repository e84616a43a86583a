"""What :func:`~.driver.propagation` measures on: one batch of real images, and optional SGD steps of the
paper's CIFAR recipe (He et al. 2016, Sec. 4 / Appendix) before the measurement."""

from mxnet import gluon

from ..data import load_dataset, make_loader
from ..train.loop import forward_backward, make_trainer
from ..train.recipe import CIFAR_RECIPE, LRSchedule, TrainConfig


def load_batch(dataset="fashion-mnist", data_dir=None, batch_size=16, seed=0, split="train"):
    """One batch ``(data, label)`` of real images, normalised, not augmented, drawn with ``seed``."""

    options = {"num_samples": max(batch_size, 64)} if str(dataset).lower() == "synthetic" else {}
    ds = load_dataset(dataset, data_dir, split, **options)
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 (BatchNorm needs a batch), got {batch_size}")
    if batch_size > len(ds):
        raise ValueError(f"batch_size {batch_size} exceeds the {len(ds)} images of {dataset} {split}")
    loader = make_loader(ds, batch_size, train=True, augment=False, seed=seed, num_workers=0)
    data, label = next(iter(loader.iterate()))
    return data, label, ds


def train_iterations(net, dataset, iterations, batch_size=128, seed=0, lr=None):
    """Train ``net`` for ``iterations`` SGD steps with the paper's CIFAR recipe (momentum 0.9, weight decay
    1e-4, lr 0.01 warm-up for the first 400 iterations then 0.1; Sec. 4 / Appendix).  Returns the losses.

    The step is the training loop's own (:func:`~gluon_resnetv2.train.loop.forward_backward` and
    :func:`~gluon_resnetv2.train.loop.make_trainer`) on the batch's one device.
    """

    recipe = CIFAR_RECIPE
    schedule = LRSchedule(
        "constant", lr if lr is not None else recipe.lr, iterations, warmup=recipe.warmup, warmup_lr=recipe.warmup_lr
    )
    trainer = make_trainer(
        net.collect_params(), TrainConfig(lr=schedule(0), momentum=recipe.momentum, wd=recipe.wd, optimizer="sgd")
    )
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    loader = make_loader(dataset, min(batch_size, len(dataset)), train=True, seed=seed + 1, num_workers=1)
    losses, step = [], 0
    while step < iterations:
        for data, label in loader:
            trainer.set_learning_rate(schedule(step))
            loss_sum, _, count = forward_backward(net, loss_fn, data, label, [data.context])
            trainer.step(count)
            losses.append(float(loss_sum[0].asscalar()) / count)
            step += 1
            if step >= iterations:
                break
    return losses
