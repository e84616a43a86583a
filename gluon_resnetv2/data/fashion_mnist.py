"""Fashion-MNIST (Xiao et al. 2017) from its IDX files: the project's embedded default data set.

Debian ships it as ``dataset-fashion-mnist`` in ``/usr/share/datasets/fashion-mnist``; any directory with
the four official files, gzipped or not, works as well.  The IDX format is parsed here with numpy
(4-byte big-endian magic: two zero bytes, a type code, the number of dimensions; then one big-endian
uint32 per dimension; then the data) and every field is validated, so that a wrong or damaged file is
reported as such instead of surfacing as a reshape error.
"""

import gzip
import os
import zlib

import numpy as np

from .base import ArrayDataset, cached_stats, channel_stats, check_image_size, downsample, file_key, pad_for, read_file

IMAGE_SIDE = 28  # the images' own side; image_size may only average them down

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
INSTALL_HINT = (
    "install with `sudo apt-get update && sudo apt-get install dataset-fashion-mnist`, "
    "or pass --data-dir (data_dir=...) pointing at a directory with the four IDX files"
)
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IMAGE_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABEL_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path, magic, what="an IDX file"):
    """Read one IDX file (``.gz`` or raw) and return its array.

    ``magic`` is the expected magic number (2051 for 3-D uint8 images, 2049 for 1-D uint8 labels); the
    header, the dimensions and the file length are all checked against each other.
    """
    raw = read_file(path, what)
    if path.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(
                f"{path}: not a valid gzip file ({err}); expected {what}, gzip-compressed (truncated download?)"
            ) from None
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for an IDX header; expected {what}")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(
            f"{path}: magic number {found} (0x{found:08x}), expected {magic} (0x{magic:08x}); expected {what}"
        )
    # The magic matched, so the type code (byte 2) is 0x08, unsigned bytes, and byte 3 the number of dims.
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: {len(raw)} bytes, too short for the {ndim} dimensions its header announces; expected {what}"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        shape = "x".join(str(d) for d in dims)
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: {problem}: its header announces {shape} values, i.e. {expected} bytes, "
            f"but the {'decompressed ' if path.endswith('.gz') else ''}file has {len(raw)} "
            f"bytes; expected {what}"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _find(data_dir, stem):
    """The raw file if present (no decompression to pay), else the ``.gz``."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"{os.path.join(data_dir, stem)}[.gz]: file not found (expected the Fashion-MNIST "
        f"IDX file {stem}.gz or {stem}); {INSTALL_HINT}"
    )


def _paths(data_dir, split):
    return tuple(_find(data_dir, stem) for stem in FILES[split])


def read_split(data_dir, split):
    """``(images uint8 (N, 28, 28, 1), labels uint8 (N,))`` of one split, fully validated."""
    image_path, label_path = _paths(data_dir, split)
    images = read_idx(image_path, IMAGE_MAGIC, "Fashion-MNIST images (IDX, magic 2051, N x 28 x 28 bytes)")
    labels = read_idx(label_path, LABEL_MAGIC, "Fashion-MNIST labels (IDX, magic 2049, N bytes)")
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE) or images.dtype != np.uint8:
        raise ValueError(
            f"{image_path}: images of shape {images.shape} and type {images.dtype}, expected "
            f"uint8 N x {IMAGE_SIDE} x {IMAGE_SIDE}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{label_path}: labels of shape {labels.shape}, expected uint8 N")
    if len(images) != len(labels):
        raise ValueError(
            f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} "
            f"labels; the two files must come from the same split"
        )
    if len(labels) and labels.max() >= len(CLASSES):
        raise ValueError(f"{label_path}: label {labels.max()} out of range, Fashion-MNIST has {len(CLASSES)} classes")
    return images[..., None], labels


def load_fashion_mnist(data_dir=None, split="train", augment=True, image_size=None):
    """Fashion-MNIST as an :class:`~.base.ArrayDataset` (28x28 grey images, 10 classes).

    ``data_dir`` defaults to Debian's ``/usr/share/datasets/fashion-mnist``.

    Augmentation defaults to **on** (``augment=True`` sets the dataset's ``default_augment``): the
    paper's CIFAR recipe (Sec. 4: pad 4, random crop, horizontal flip) transfers unchanged to 28x28
    Fashion-MNIST, whose garments are left-right symmetric enough for the flip to be label-preserving;
    without it the ResNets of the demo overfit within a few epochs and the test curves of Figure 1
    flatten early.  Pass ``augment=False`` here, or to ``make_loader``, for a plain run.

    ``image_size=S`` averages the images down to S x S (:func:`~.base.downsample`), with the crop padding
    scaled to the paper's 4 of 32 pixels (:func:`~.base.pad_for`) and both splits normalised with the
    statistics of the downsampled training set: what lets a 2-core CPU train the paper's deepest
    networks (``reproduce --scale depth``).
    """
    size = None if image_size is None else check_image_size(image_size, IMAGE_SIDE)
    explicit = data_dir is not None
    data_dir = os.path.expanduser(data_dir) if explicit else DEFAULT_DIR
    if not os.path.isdir(data_dir):
        if explicit:
            raise FileNotFoundError(
                f"{data_dir}: no such directory (expected the Fashion-MNIST IDX files); {INSTALL_HINT}"
            )
        raise FileNotFoundError(f"Fashion-MNIST not found in {DEFAULT_DIR}: {INSTALL_HINT}")
    images, labels = read_split(data_dir, split)
    if size is not None:
        images = downsample(images, size)
    # Both splits are normalised with the training set's statistics (at the size the network sees).
    key = ("fashion-mnist", size) + file_key(_paths(data_dir, "train"))
    if split == "train":
        stats = cached_stats(key, lambda: channel_stats(images))
    else:
        stats = cached_stats(key, lambda: channel_stats(_train_images(data_dir, size)))
    return ArrayDataset(
        images,
        labels,
        len(CLASSES),
        stats[0],
        stats[1],
        "fashion-mnist",
        split,
        classes=CLASSES,
        default_augment=augment,
        **({} if size is None else {"pad": pad_for(size)}),
    )


def _train_images(data_dir, size):
    images = read_split(data_dir, "train")[0]
    return images if size is None else downsample(images, size)
