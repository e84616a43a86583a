"""The data sets by name: ``load_dataset('cifar10', data_dir, split='train')``."""

import inspect

from .cifar import load_cifar
from .fashion_mnist import load_fashion_mnist
from .imagenet import RecordDataset, load_imagenet
from .synthetic import load_synthetic


def load_cifar10(data_dir=None, split="train", **options):
    """CIFAR-10, binary or Python version; see :func:`.cifar.load_cifar`."""
    return load_cifar("cifar10", data_dir, split, **options)


def load_cifar100(data_dir=None, split="train", **options):
    """CIFAR-100 (fine labels), binary or Python version; see :func:`.cifar.load_cifar`."""
    return load_cifar("cifar100", data_dir, split, **options)


# name -> loader(data_dir=None, split='train', **options)
DATASETS = {
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "imagenet": load_imagenet,
    "synthetic": load_synthetic,
}
_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "cifar_10": "cifar10",
    "cifar_100": "cifar100",
}
_SPLITS = {"train": "train", "test": "test", "val": "test"}


def load_dataset(name, data_dir=None, split="train", **options):
    """Load data set ``name`` (one of :data:`DATASETS`) from ``data_dir``.

    ``split`` is 'train' or 'test' ('val' is accepted for 'test').  ``options`` go to the data set's
    loader, e.g. ``augment=False`` (the default of training loaders), ``num_samples``/``seed`` for
    'synthetic', ``crop_size``/``aspect_ratio`` for 'imagenet'.  Missing or malformed files raise
    :class:`FileNotFoundError` or :class:`ValueError` with a message naming the file.
    """
    key = canonical_name(name)
    if split not in _SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    valid = dataset_options(key)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for data set {key} (--data-option KEY=VALUE); "
            f"it takes {', '.join(valid) or 'none'}"
        )
    return DATASETS[key](data_dir=data_dir, split=_SPLITS[split], **options)


def canonical_name(name):
    """The :data:`DATASETS` key of ``name`` (case and spelling variants accepted); ValueError otherwise."""
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    return key


def dataset_options(name):
    """The options (keyword arguments) the loader of data set ``name`` takes."""
    # The CIFAR and ImageNet loaders pass their options on: read the signature of what takes them.
    passing_on = {"cifar10": load_cifar, "cifar100": load_cifar, "imagenet": RecordDataset.__init__}
    target = passing_on.get(name, DATASETS[name])
    skip = {"self", "name", "data_dir", "split", "rec_path", "idx_path"}
    return [
        p.name
        for p in inspect.signature(target).parameters.values()
        if p.name not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
