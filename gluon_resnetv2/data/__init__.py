"""Data sets, the paper's augmentation and sharded loaders.

Data flows one way: a data set (:func:`load_dataset`: Fashion-MNIST IDX, CIFAR-10/100 binary or pickle,
ImageNet RecordIO, synthetic) -> :func:`make_loader` (shuffling, sharding, batched augmentation and
normalisation in background threads) -> ``(data, label)`` float32 NDArrays, NCHW, on ``mx.cpu()``::

    train_set = load_dataset('cifar10', data_dir, split='train')
    loader = make_loader(train_set, batch_size=128, train=True, seed=0)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for data, label in loader:
            ...
"""

from .augment import augment_normalize, crop_flip, crop_flip_params, normalize
from .base import ArrayDataset, channel_stats
from .datasets import DATASETS, load_dataset
from .imagenet import RecordDataset
from .loader import Loader, make_loader

__all__ = [
    "DATASETS",
    "load_dataset",
    "make_loader",
    "Loader",
    "ArrayDataset",
    "RecordDataset",
    "channel_stats",
    "augment_normalize",
    "crop_flip",
    "crop_flip_params",
    "normalize",
]
