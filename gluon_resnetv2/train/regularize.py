"""Label smoothing and mixup: what the batch and its targets become before the forward pass (issue 21).

Neither is in the paper (He et al. 2016 train on hard labels, Sec. 3.1); both are off by default.

- Label smoothing (Szegedy et al. 2016, Sec. 7; gluoncv ``train_imagenet.py --label-smoothing``): the target
  of an image of class ``y`` is ``(1 - eps) * onehot(y) + eps / K`` over the ``K`` classes, so the loss
  is ``(1 - eps) * CE(y) + eps * mean_k(-log p_k)``.
- Mixup (Zhang et al. 2018; gluoncv ``scripts/classification/cifar/train_mixup_cifar10.py``): with
  ``lam ~ Beta(alpha, alpha)`` the batch is ``lam * x + (1 - lam) * x[::-1]`` (each image with the one at
  the mirrored position of the batch, as gluoncv pairs them) and the target the same combination of the
  two (smoothed) one-hot targets.  gluoncv switches it off for the last 20 of 220 epochs
  (``if epoch >= epochs - 20: lam = 1``): ``--mixup-off-epochs``.

``lam`` is a pure function of ``(seed, iteration)`` (:func:`mixup_lambda`), like every other random draw of
a run (:func:`~.steps.derived_seed`): a resumed run draws the same ``lam`` at the same iteration without
any generator state in the checkpoint, and all workers of a distributed run use the same ``lam``.

The training error of a mixup batch is measured against the mixed target's larger component (its
argmax: the image weighted by ``max(lam, 1 - lam)``); the training loss is the cross-entropy against the
soft target.  Both are therefore not comparable with a run without mixup; the test error is.
"""

import mxnet as mx
import numpy as np

from .modern import mixup_stop_iteration
from .steps import derived_seed

#: Stream number of the mixup draws in :func:`~.steps.derived_seed` (0: epoch seeds, 1: after checkpoints).
MIXUP_STREAM = 2


def soft_targets(label, classes, smoothing=0.0):
    """``(n, classes)`` float32 targets of integer labels ``label`` (n,): one-hot, smoothed by ``smoothing``."""
    on = 1.0 - smoothing + smoothing / classes
    off = smoothing / classes
    return mx.nd.one_hot(label, classes, on_value=on, off_value=off, dtype="float32")


def mixup_lambda(seed, iteration, alpha):
    """The ``lam ~ Beta(alpha, alpha)`` of ``iteration``: a pure function of the seed and the iteration."""
    rng = np.random.default_rng(derived_seed(seed, MIXUP_STREAM, iteration))
    return float(rng.beta(alpha, alpha))


def mix(data, targets, lam):
    """``(lam * data + (1 - lam) * data[::-1], the same for targets)``: gluoncv's pairing."""
    if lam == 1.0:
        return data, targets
    flipped = mx.nd.flip(data, axis=0)
    return lam * data + (1 - lam) * flipped, lam * targets + (1 - lam) * mx.nd.flip(targets, axis=0)


class BatchTransform:
    """``(iteration, data, label) -> (data, targets)``: dense targets with smoothing and mixup, or the batch
    unchanged when both are off (the paper's runs: sparse labels, bit-identical)."""

    def __init__(self, classes, smoothing=0.0, alpha=0.0, seed=0, stop_iteration=None):
        self.classes = int(classes)
        self.smoothing = float(smoothing or 0.0)
        self.alpha = float(alpha or 0.0)
        self.seed = int(seed)
        self.stop_iteration = stop_iteration

    @property
    def active(self):
        return bool(self.smoothing or self.alpha)

    def lam(self, iteration):
        """The mixing weight of ``iteration`` (1: no mixing)."""
        if not self.alpha or (self.stop_iteration is not None and iteration >= self.stop_iteration):
            return 1.0
        return mixup_lambda(self.seed, iteration, self.alpha)

    def __call__(self, iteration, data, label):
        if not self.active:
            return data, label
        targets = soft_targets(label, self.classes, self.smoothing)
        return mix(data, targets, self.lam(iteration))

    def wrap(self, iteration, prepare=None):
        """A ``prepare(data, label)`` for :func:`~.devices.split_batch` that applies this transform to each
        device's slice after the loader's ``prepare`` (the float32 input and class labels): each image is
        mixed with the one mirrored in its device's slice, as gluoncv does.  ``prepare`` itself when off."""
        if not self.active:
            return prepare

        def transformed(data, label):
            if prepare is not None:
                data, label = prepare(data, label)
            return self(iteration, data, label)

        return transformed


def make_batch_transform(config, classes, total, iterations_per_epoch):
    """The :class:`BatchTransform` of a resolved config."""
    return BatchTransform(
        classes,
        config.label_smoothing,
        config.mixup,
        config.seed,
        mixup_stop_iteration(config, total, iterations_per_epoch),
    )
