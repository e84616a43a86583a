"""Tiny data sets written in the exact official file formats, for tests of any module.

Each ``write_*`` helper writes into a directory and returns what it wrote, as the loaders should read it
back: ``{split: (images uint8 NHWC, labels int)}``.

    from data_fixtures import write_fashion_mnist
    expected = write_fashion_mnist(tmp_path, n_train=64, n_test=32)
    train_set = load_dataset('fashion-mnist', data_dir=str(tmp_path))
"""

import gzip
import os
import pickle

import mxnet as mx
import numpy as np


def tiny_run(num_samples=96, **settings):
    """``TrainConfig`` settings of a run small enough for a unit test: ResNet-20 v2 on ``num_samples``
    synthetic 8x8 RGB images, batch 32, no loader workers, no progress bar; ``settings`` add or override."""
    base = dict(
        model="cifar_resnet20_v2",
        dataset="synthetic",
        num_workers=0,
        progress=False,
        batch_size=32,
        dataset_options={"num_samples": num_samples, "image_shape": [3, 8, 8]},
    )
    return {**base, **settings}


def tiny_train_argv(iterations=1):
    """``gluon-resnetv2 train`` arguments of a run small enough for a CLI test: ResNet-20 v2 on 32 synthetic
    8x8 RGB images, batch 8 (4 iterations per epoch), no loader workers, no progress bar; add ``--out``."""
    return [
        "train",
        "--model",
        "cifar_resnet20_v2",
        "--dataset",
        "synthetic",
        "--data-option",
        "num_samples=32",
        "--data-option",
        "image_shape=[3,8,8]",
        "--batch-size",
        "8",
        "--iterations",
        str(iterations),
        "--num-workers",
        "0",
        "--no-progress",
    ]


def random_images(n, height, width, channels, seed=0, num_classes=10):
    """Random uint8 NHWC images and labels (every class present when n >= num_classes)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, height, width, channels), dtype=np.uint8)
    labels = rng.permutation(np.arange(n) % num_classes)
    return images, labels


def idx_bytes(array):
    """An IDX file (uint8 data) holding ``array``: magic 0x0000 08 <ndim>, big-endian dims, data."""
    array = np.ascontiguousarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.tobytes()


def write_bytes(path, data):
    """Write ``data``, gzip-compressed when ``path`` ends with .gz."""
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=1)
    with open(path, "wb") as handle:
        handle.write(data)


def write_fashion_mnist(directory, n_train=64, n_test=32, gz=True, seed=0):
    """The four Fashion-MNIST IDX files (28x28 images, 10 classes) with random content."""
    os.makedirs(directory, exist_ok=True)
    ext = ".gz" if gz else ""
    written = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images, labels = random_images(n, 28, 28, 1, seed=seed + (split == "test"))
        write_bytes(os.path.join(directory, f"{prefix}-images-idx3-ubyte{ext}"), idx_bytes(images[..., 0]))
        write_bytes(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{ext}"), idx_bytes(labels))
        written[split] = (images, labels)
    return written


def _cifar_layout(name, fmt):
    if name == "cifar10":
        subdir = {"binary": "cifar-10-batches-bin", "python": "cifar-10-batches-py"}[fmt]
        files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        return subdir, files, 10
    subdir = {"binary": "cifar-100-binary", "python": "cifar-100-python"}[fmt]
    return subdir, {"train": ["train"], "test": ["test"]}, 100


def _planar(images):
    """NHWC -> CIFAR's channel-planar rows (N, 3072): all red, then all green, then all blue."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1)


def write_cifar(directory, name="cifar10", fmt="binary", n_per_file=8, seed=0):
    """CIFAR-10/100 files of the official ``fmt`` ('binary' or 'python') in their official subdirectory
    of ``directory`` (``cifar-10-batches-bin`` ...); ``n_per_file`` images per batch file.

    Returns ``{split: (images NHWC, labels)}``, plus ``'dir'``: the batches directory.  CIFAR-100 records
    also carry a coarse label (fine // 5), which the loader must ignore.
    """
    subdir, files, num_classes = _cifar_layout(name, fmt)
    out_dir = os.path.join(directory, subdir)
    os.makedirs(out_dir, exist_ok=True)
    written = {"dir": out_dir}
    for split, stems in files.items():
        parts = []
        for i, stem in enumerate(stems):
            images, labels = random_images(
                n_per_file, 32, 32, 3, seed=seed * 100 + i + 10 * (split == "test"), num_classes=num_classes
            )
            if fmt == "binary":
                label_cols = [labels[:, None]] if name == "cifar10" else [labels[:, None] // 5, labels[:, None]]
                rows = np.concatenate(label_cols + [_planar(images)], axis=1).astype(np.uint8)
                write_bytes(os.path.join(out_dir, stem + ".bin"), rows.tobytes())
            else:
                key = b"labels" if name == "cifar10" else b"fine_labels"
                batch = {
                    b"batch_label": b"fixture",
                    key: [int(x) for x in labels],
                    b"data": _planar(images),
                    b"filenames": [b"img%d.png" % j for j in range(n_per_file)],
                }
                if name == "cifar100":
                    batch[b"coarse_labels"] = [int(x) // 5 for x in labels]
                with open(os.path.join(out_dir, stem), "wb") as handle:
                    pickle.dump(batch, handle, protocol=2)
            parts.append((images, labels))
        written[split] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return written


def write_recordio(directory, stem, images, labels, quality=100):
    """``stem.rec``/``stem.idx`` holding JPEGs of RGB ``images`` (list of HWC uint8) written with
    ``mx.recordio.pack_img``, as im2rec.py does (keys 0..n-1, label in the header)."""

    os.makedirs(directory, exist_ok=True)
    record = mx.recordio.MXIndexedRecordIO(
        os.path.join(directory, stem + ".idx"), os.path.join(directory, stem + ".rec"), "w"
    )
    for key, (image, label) in enumerate(zip(images, labels)):
        header = mx.recordio.IRHeader(0, float(label), key, 0)
        # pack_img encodes with OpenCV, which takes BGR.
        record.write_idx(
            key, mx.recordio.pack_img(header, np.ascontiguousarray(image[..., ::-1]), quality=quality, img_fmt=".jpg")
        )
    record.close()


def smooth_images(n, height, width, seed=0):
    """RGB images without fine detail (JPEG keeps them within a few levels), random sizes allowed."""
    rng = np.random.default_rng(seed)
    ys, xs = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(40, 200, size=(3, 3))
        image = np.stack([a[k] + 40 * np.sin(3 * xs + b[k] / 50) + 30 * ys * (c[k] / 100) for k in range(3)], -1)
        out.append(np.clip(image, 0, 255).astype(np.uint8))
    return out
