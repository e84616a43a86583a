"""In-memory image datasets and the per-channel statistics that normalise them.

Every in-memory dataset of the package (Fashion-MNIST, CIFAR-10/100, synthetic) is an
:class:`ArrayDataset`: uint8 pixels in NHWC order, integer labels, and the per-channel mean and standard
deviation *of the training split* (the paper's "per-channel normalisation", Sec. 4 / the CIFAR recipe of
He et al. 2016).  The loader (:mod:`.loader`) turns batches of it into normalised float32 NCHW arrays.
"""

import os

import mxnet as mx
import numpy as np

from . import augment as _augment


class ArrayDataset:
    """A labelled image set held in memory.

    Parameters
    ----------
    images : numpy.ndarray
        ``(N, H, W, C)`` uint8 pixels.
    labels : array-like
        ``(N,)`` integer class indices in ``[0, num_classes)``.
    num_classes : int
    mean, std : array-like
        Per-channel statistics in pixel units (0..255), computed on the *training* split so that the
        training and test splits are normalised identically.
    name, split : str
        For messages and logs (``'cifar10'``, ``'train'``...).
    classes : list of str, optional
        Human-readable class names.
    default_augment : bool
        What ``make_loader(..., augment=None)`` does for a training loader.
    pad : int
        Zero padding of the random-crop augmentation (the paper's 4 pixels).

    Attributes
    ----------
    image_shape : tuple
        ``(C, H, W)``, the shape one sample has when the network sees it.
    """

    def __init__(self, images, labels, num_classes, mean, std, name, split, classes=None, default_augment=True, pad=4):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"{name} {split}: images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
        if labels.shape != (len(images),):
            raise ValueError(f"{name} {split}: {len(images)} images but labels of shape {labels.shape}")
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name} {split}: labels must lie in [0, {num_classes}), found [{labels.min()}, {labels.max()}]"
            )
        self.images = images
        self.labels = labels.astype(np.int32)
        self.num_classes = int(num_classes)
        self.mean = np.asarray(mean, np.float32).reshape(-1)
        self.std = np.asarray(std, np.float32).reshape(-1)
        if self.mean.shape != (images.shape[3],) or self.std.shape != (images.shape[3],):
            raise ValueError(f"{name} {split}: mean/std need one value per channel ({images.shape[3]})")
        self.name = name
        self.split = split
        self.classes = list(classes) if classes is not None else [str(i) for i in range(num_classes)]
        self.default_augment = bool(default_augment)
        self.pad = int(pad)

    @property
    def image_shape(self):
        _, height, width, channels = self.images.shape
        return (channels, height, width)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        """``(image HWC uint8, label int)``: the raw sample, neither augmented nor normalised."""
        return self.images[index], int(self.labels[index])

    def __repr__(self):
        return (
            f"{type(self).__name__}({self.name!r}, split={self.split!r}, n={len(self)}, "
            f"image_shape={self.image_shape}, num_classes={self.num_classes})"
        )

    def make_batch(self, indices, augment, rng):
        """Gather, augment and normalise the samples ``indices``.

        Returns ``(data, label)``: float32 ``(n, C, H, W)`` and float32 ``(n,)`` numpy arrays.  All
        randomness comes from ``rng``, so a batch is a pure function of its indices and generator.
        """
        images = self.images[indices]
        if augment:
            return (
                _augment.augment_normalize(images, self.mean, self.std, rng, pad=self.pad),
                self.labels[indices].astype(np.float32),
            )
        return _augment.normalize(images, self.mean, self.std), self.labels[indices].astype(np.float32)


def channel_stats(images):
    """Per-channel mean and standard deviation (pixel units) of uint8 NHWC ``images``.

    Exact, and cheap even for CIFAR's 150 M values: a 256-bin histogram per channel replaces the
    float64 copy that ``images.mean()``/``.std()`` would make.
    """
    images = np.asarray(images)
    channels = images.shape[-1]
    flat = images.reshape(-1, channels)
    levels = np.arange(256, dtype=np.float64)
    mean = np.empty(channels)
    std = np.empty(channels)
    for c in range(channels):
        hist = np.bincount(flat[:, c], minlength=256).astype(np.float64)
        total = hist.sum()
        mean[c] = (hist @ levels) / total
        std[c] = np.sqrt(max((hist @ (levels - mean[c]) ** 2) / total, 1e-12))
    return mean.astype(np.float32), std.astype(np.float32)


# Statistics of training sets already read, keyed by the files' identity (path, size, mtime), so that
# loading the test split after the train split does not read and decode the training files again.
_STATS_CACHE: dict[tuple, tuple] = {}


def file_key(paths):
    """A cache key that changes when any of ``paths`` is replaced or rewritten."""
    key = []
    for path in paths:
        st = os.stat(path)
        key.append((os.path.realpath(path), st.st_size, st.st_mtime_ns))
    return tuple(key)


def cached_stats(key, compute):
    """``compute()`` -> (mean, std), memoised under ``key``."""
    if key not in _STATS_CACHE:
        _STATS_CACHE[key] = compute()
    return _STATS_CACHE[key]


#: The paper's crop padding (4 pixels) is for 32x32 images; smaller images get the same fraction.
PAPER_PAD, PAPER_SIZE = 4, 32


def pad_for(size):
    """Crop padding for ``size`` x ``size`` images: the paper's 4 of 32 pixels, scaled (16 -> 2, 8 -> 1)."""
    return max(1, round(PAPER_PAD * int(size) / PAPER_SIZE))


def check_image_size(image_size, native):
    """``image_size`` as an int in ``[2, native]``; ValueError names the option and the valid range."""
    try:
        size = int(image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be an integer, got {image_size!r}") from None
    if not 2 <= size <= native or size != image_size:
        raise ValueError(f"image_size must be an integer from 2 to the images' own {native}, got {image_size!r}")
    return size


def downsample(images, size):
    """uint8 NHWC ``images`` averaged down to ``size`` x ``size`` (area averaging by MXNet's adaptive average
    pooling: exact 2x2 / 4x4 block means for 28 -> 14 / 7), rounded back to uint8."""

    if images.shape[1] == size and images.shape[2] == size:
        return images
    out = np.empty((len(images), size, size, images.shape[3]), np.uint8)
    for start in range(0, len(images), 8192):  # bounded float32 copies
        chunk = mx.nd.array(images[start : start + 8192].transpose(0, 3, 1, 2), dtype="float32")
        pooled = mx.nd.contrib.AdaptiveAvgPooling2D(chunk, output_size=size).asnumpy()
        out[start : start + 8192] = np.clip(np.rint(pooled), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    return out


def read_file(path, what):
    """Bytes of ``path``; a missing file is a :class:`FileNotFoundError` that says what was expected."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found (expected {what})") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, expected {what}") from None
