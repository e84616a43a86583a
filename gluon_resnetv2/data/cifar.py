"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the official distributions, binary or Python pickle.

The data sets of the paper's Tables 1-4.  Both official formats are read, from whichever is present:

* binary: ``cifar-10-batches-bin/data_batch_{1..5}.bin`` and ``test_batch.bin``, records of one label
  byte and 3072 pixel bytes; ``cifar-100-binary/train.bin`` and ``test.bin``, records of a coarse and a
  fine label byte and 3072 pixel bytes (the fine label, 100 classes, is the one the paper uses);
* Python: ``cifar-10-batches-py/data_batch_{1..5}`` and ``test_batch``, pickled dicts with ``b'data'``
  (N, 3072) uint8 and ``b'labels'``; ``cifar-100-python/train`` and ``test`` with ``b'fine_labels'``.

Pixels are channel-planar in both (1024 red, then 1024 green, then 1024 blue values, each a row-major
32x32 plane); they are converted to NHWC here.  ``data_dir`` may name the extracted directory itself or
its parent.  Without ``data_dir``, gluon's download cache (``~/.mxnet/datasets/cifar10``,
``.../cifar100``) is tried, so that data fetched earlier by ``mxnet.gluon.data.vision.CIFAR10`` is found.
"""

import os
import pickle

import numpy as np

from .base import ArrayDataset, cached_stats, channel_stats, file_key, read_file

PIXELS = 32 * 32 * 3

SPECS = {
    "cifar10": dict(
        title="CIFAR-10",
        num_classes=10,
        label_bytes=1,
        binary_dir="cifar-10-batches-bin",
        python_dir="cifar-10-batches-py",
        binary={"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]},
        python={"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
        label_key=b"labels",
        binary_meta="batches.meta.txt",
        python_meta="batches.meta",
        meta_key=b"label_names",
        tarballs=["cifar-10-binary.tar.gz", "cifar-10-python.tar.gz"],
        gluon_cache="~/.mxnet/datasets/cifar10",
    ),
    "cifar100": dict(
        title="CIFAR-100",
        num_classes=100,
        label_bytes=2,
        binary_dir="cifar-100-binary",
        python_dir="cifar-100-python",
        binary={"train": ["train.bin"], "test": ["test.bin"]},
        python={"train": ["train"], "test": ["test"]},
        label_key=b"fine_labels",
        binary_meta="fine_label_names.txt",
        python_meta="meta",
        meta_key=b"fine_label_names",
        tarballs=["cifar-100-binary.tar.gz", "cifar-100-python.tar.gz"],
        gluon_cache="~/.mxnet/datasets/cifar100",
    ),
}


def find_cifar(name, data_dir):
    """``(directory, fmt)`` of the CIFAR data under ``data_dir``, ``fmt`` being 'binary' or 'python'.

    A directory qualifies as soon as it holds one file of a format, so that a missing or damaged
    sibling is then reported by name rather than as "nothing found".
    """
    spec = SPECS[name]
    candidates = [
        (os.path.join(data_dir, spec["binary_dir"]), "binary"),
        (os.path.join(data_dir, spec["python_dir"]), "python"),
        (data_dir, "binary"),
        (data_dir, "python"),
    ]
    for directory, fmt in candidates:
        files = spec[fmt]["train"] + spec[fmt]["test"]
        if any(os.path.isfile(os.path.join(directory, f)) for f in files):
            return directory, fmt
    tarballs = [t for t in spec["tarballs"] if os.path.isfile(os.path.join(data_dir, t))]
    hint = f"; found {tarballs[0]}: extract it first (tar xzf {tarballs[0]})" if tarballs else ""
    raise FileNotFoundError(
        f"{data_dir}: no {spec['title']} data found; expected {spec['binary_dir']}/ "
        f"({', '.join(spec['binary']['train'][:1])}, ...) or {spec['python_dir']}/ "
        f"({', '.join(spec['python']['train'][:1])}, ...), or one of those directories itself{hint}"
    )


def read_binary(path, spec):
    """``(images NHWC, labels)`` of one binary batch file."""
    record = spec["label_bytes"] + PIXELS
    labels_desc = "1 label byte" if spec["label_bytes"] == 1 else "a coarse and a fine label byte"
    what = f"the {spec['title']} binary version, records of {labels_desc} + 32x32x3 pixels"
    raw = read_file(path, what)
    if len(raw) == 0 or len(raw) % record:
        # The classic mix-up is CIFAR-10 vs CIFAR-100 (one label byte more or less per record): say so.
        other, other_record = ("CIFAR-100", PIXELS + 2) if spec["label_bytes"] == 1 else ("CIFAR-10", PIXELS + 1)
        hint = (
            f" (it would fit {other}: {len(raw) // other_record} records of {other_record} bytes)"
            if len(raw) and len(raw) % other_record == 0
            else ""
        )
        raise ValueError(
            f"{path}: expected a multiple of {record} bytes ({labels_desc} + 32x32x3 pixels), "
            f"got {len(raw)} bytes{hint}; is this the {spec['title']} binary version "
            f"(and complete)?"
        )
    rows = np.frombuffer(raw, np.uint8).reshape(-1, record)
    labels = rows[:, spec["label_bytes"] - 1]  # CIFAR-100: the fine label is the second byte
    _check_labels(path, labels, spec)
    return planar_to_nhwc(rows[:, spec["label_bytes"] :]), labels


def read_python(path, spec):
    """``(images NHWC, labels)`` of one pickled batch file."""
    what = f"a pickled {spec['title']} batch (the Python version): a dict with b'data' and {spec['label_key']!r}"
    raw = read_file(path, what)
    try:
        batch = pickle.loads(raw, encoding="bytes")
    except Exception as err:  # noqa: BLE001  (pickle raises many types on garbage: all mean "not this format")
        raise ValueError(
            f"{path}: cannot be unpickled ({type(err).__name__}: {err}); expected {what} "
            f"(truncated download, or the binary version?)"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or spec["label_key"] not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"{path}: holds {keys}, expected {what}")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[spec["label_key"]])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        raise ValueError(f"{path}: b'data' is {data.dtype} {data.shape}, expected uint8 (N, {PIXELS})")
    if labels.shape != (len(data),):
        raise ValueError(f"{path}: {len(data)} images but {labels.size} labels")
    _check_labels(path, labels, spec)
    return planar_to_nhwc(data), labels.astype(np.uint8)


def planar_to_nhwc(rows):
    """(N, 3072) channel-planar rows -> (N, 32, 32, 3) contiguous NHWC."""
    return np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _check_labels(path, labels, spec):
    if len(labels) and labels.max() >= spec["num_classes"]:
        raise ValueError(
            f"{path}: label {labels.max()} out of range for {spec['title']} "
            f"({spec['num_classes']} classes); is this the right data set?"
        )


def _class_names(directory, fmt, spec):
    """Class names from the meta file when present (they are cosmetic: never an error)."""
    try:
        if fmt == "binary":
            with open(os.path.join(directory, spec["binary_meta"]), encoding="utf-8") as handle:
                names = [line.strip() for line in handle if line.strip()]
        else:
            with open(os.path.join(directory, spec["python_meta"]), "rb") as handle:
                names = [n.decode() for n in pickle.load(handle, encoding="bytes")[spec["meta_key"]]]
    except Exception:  # noqa: BLE001 (a missing or odd meta file only costs the names)
        return None
    return names if len(names) == spec["num_classes"] else None


def read_split(name, directory, fmt, split):
    """Concatenated ``(images, labels)`` of ``split`` from ``directory`` in format ``fmt``."""
    spec = SPECS[name]
    reader = read_binary if fmt == "binary" else read_python
    parts = [reader(os.path.join(directory, f), spec) for f in spec[fmt][split]]
    return (
        np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0],
        np.concatenate([p[1] for p in parts]),
    )


def load_cifar(name, data_dir=None, split="train", augment=True):
    """CIFAR-10 (``name='cifar10'``) or CIFAR-100 (``'cifar100'``) as an :class:`~.base.ArrayDataset`.

    Augmentation (the paper's, Sec. 4) is on by default for training loaders.  Both splits are
    normalised with the per-channel mean/std of the training set.
    """
    spec = SPECS[name]
    if data_dir is None:
        data_dir = os.path.expanduser(spec["gluon_cache"])
        if not os.path.isdir(data_dir):
            raise FileNotFoundError(
                f"{spec['title']} needs a data directory: pass --data-dir (data_dir=...) pointing at the "
                f"extracted {spec['binary_dir']} or {spec['python_dir']} directory, or at its parent"
            )
    data_dir = os.path.expanduser(data_dir)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"{data_dir}: no such directory (expected the {spec['title']} data: "
            f"{spec['binary_dir']}/ or {spec['python_dir']}/)"
        )
    directory, fmt = find_cifar(name, data_dir)
    images, labels = read_split(name, directory, fmt, split)
    train_files = [os.path.join(directory, f) for f in spec[fmt]["train"]]
    for path in train_files:  # the test split needs them for its statistics
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path}: file not found (expected {spec['title']} training data, "
                f"{fmt} version; its per-channel statistics normalise both splits)"
            )
    key = (name,) + file_key(train_files)
    if split == "train":
        mean, std = cached_stats(key, lambda: channel_stats(images))
    else:
        mean, std = cached_stats(key, lambda: channel_stats(read_split(name, directory, fmt, "train")[0]))
    return ArrayDataset(
        images,
        labels,
        spec["num_classes"],
        mean,
        std,
        name,
        split,
        classes=_class_names(directory, fmt, spec),
        default_augment=augment,
    )
