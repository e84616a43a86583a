"""A learnable random data set for tests and smoke runs, CIFAR-shaped by default.

Each class owns a template: a smooth, left-right symmetric pattern plus a class colour.  A sample is its
class template plus independent pixel noise.  Smooth (8-pixel blocks) and symmetric templates survive
the paper's 4-pixel crops and horizontal flips, so the set stays learnable with augmentation on, and a
small network separates the classes within a few hundred iterations.  Everything is a function of
``seed``: the templates are shared by the two splits, the noise and labels are not.
"""

import numpy as np

from ..validate import nonneg_float, positive_int
from .base import ArrayDataset, cached_stats, channel_stats

DEFAULT_SIZES = {"train": 2048, "test": 512}


def _generate(split, num_samples, num_classes, image_shape, seed, noise):
    channels, height, width = image_shape
    root = np.random.SeedSequence(seed)
    template_rng = np.random.default_rng(root.spawn(1)[0])
    coarse = template_rng.standard_normal((num_classes, 4, 4, channels))
    colour = template_rng.standard_normal((num_classes, 1, 1, channels))
    rows = np.arange(height) * 4 // height
    cols = np.arange(width) * 4 // width
    templates = coarse[:, rows][:, :, cols] + colour
    templates = 0.5 * (templates + templates[:, :, ::-1])  # symmetric: a flip keeps the class pattern
    sample_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1 if split == "train" else 2,)))
    labels = sample_rng.permutation(np.arange(num_samples) % num_classes)
    pixels = 128 + 40 * (templates[labels] + noise * sample_rng.standard_normal((num_samples, height, width, channels)))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8), labels


def load_synthetic(
    data_dir=None,
    split="train",
    num_samples=None,
    num_classes=10,
    image_shape=(3, 32, 32),
    seed=0,
    noise=1.0,
    augment=True,
):
    """A synthetic :class:`~.base.ArrayDataset`.

    Parameters
    ----------
    data_dir : ignored
        Accepted so that every data set loads with the same call.
    num_samples : int, optional
        Size of the split (default 2048 for train, 512 for test).
    num_classes : int
    image_shape : tuple
        ``(C, H, W)`` as the network sees it (default CIFAR's ``(3, 32, 32)``).
    seed : int
        Same seed, same data; the test split shares the training split's class templates.
    noise : float
        Pixel noise relative to the template contrast; larger is harder.
    augment : bool
        Default augmentation of training loaders (on, like CIFAR).
    """
    del data_dir
    if num_samples is None:
        num_samples = DEFAULT_SIZES[split]
    # The options come from --data-option KEY=VALUE too: checked here, each named (nan, 1.5, -5 alike).
    for name, value in (("num_samples", num_samples), ("num_classes", num_classes)):
        positive_int.check(value, f"synthetic: {name}")
    nonneg_float.check(noise, "synthetic: noise")
    if not isinstance(image_shape, (list, tuple)) or len(image_shape) != 3:
        raise ValueError(f"synthetic: image_shape={image_shape!r}: expected (C, H, W), e.g. [3,32,32]")
    for size in image_shape:
        positive_int.check(size, "synthetic: image_shape")
    image_shape = tuple(image_shape)
    images, labels = _generate(split, num_samples, num_classes, image_shape, seed, noise)
    # Both splits, whatever their sizes, are normalised with the statistics of the default-sized
    # training split of this seed, so that train and test are always normalised alike.
    key = ("synthetic", num_classes, image_shape, seed, noise)
    if split == "train" and num_samples == DEFAULT_SIZES["train"]:
        mean, std = cached_stats(key, lambda: channel_stats(images))
    else:
        mean, std = cached_stats(
            key,
            lambda: channel_stats(_generate("train", DEFAULT_SIZES["train"], num_classes, image_shape, seed, noise)[0]),
        )
    return ArrayDataset(images, labels, num_classes, mean, std, "synthetic", split, default_augment=augment)
