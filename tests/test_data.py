"""Tests of gluon_resnetv2.data: file formats, augmentation, loaders."""

import gc
import os
import pickle
import random
import threading

import mxnet as mx
import numpy as np
import pytest
from data_fixtures import (
    idx_bytes,
    random_images,
    smooth_images,
    write_bytes,
    write_cifar,
    write_fashion_mnist,
    write_recordio,
)

from gluon_resnetv2.data import (
    DATASETS,
    ArrayDataset,
    augment_normalize,
    channel_stats,
    crop_flip,
    crop_flip_params,
    fashion_mnist,
    load_dataset,
    make_loader,
    normalize,
)
from gluon_resnetv2.data.augment import color_augment, color_params
from gluon_resnetv2.data.imagenet import IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC


def as_nchw_normalised(images, dataset):
    return (images.transpose(0, 3, 1, 2).astype(np.float32) - dataset.mean[:, None, None]) / dataset.std[:, None, None]


def indexed_dataset(n=40, shape=(8, 8, 3), augment=True):
    """A dataset whose label is the sample's index, so loaders reveal which samples they yield."""
    images, _ = random_images(n, *shape, seed=3)
    return ArrayDataset(images, np.arange(n), n, *channel_stats(images), "indexed", "train", default_augment=augment)


def collect(loader, **kwargs):
    return [(d.asnumpy(), lab.asnumpy()) for d, lab in loader.iterate(**kwargs)]


# -- Fashion-MNIST / IDX ----------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_round_trip(tmp_path, gz):
    written = write_fashion_mnist(tmp_path, n_train=30, n_test=12, gz=gz)
    train = load_dataset("fashion-mnist", data_dir=str(tmp_path), split="train")
    test = load_dataset("fashion_mnist", data_dir=str(tmp_path), split="test")
    for ds, split in ((train, "train"), (test, "test")):
        images, labels = written[split]
        assert ds.images.shape == (len(images), 28, 28, 1)
        np.testing.assert_array_equal(ds.images, images)
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.image_shape == (1, 28, 28) and ds.num_classes == 10 and len(ds.classes) == 10
    # Both splits are normalised with the *training* statistics.
    train_images = written["train"][0].astype(np.float64)
    np.testing.assert_allclose(train.mean, [train_images.mean()], rtol=1e-5)
    np.testing.assert_allclose(train.std, [train_images.std()], rtol=1e-5)
    np.testing.assert_array_equal(test.mean, train.mean)
    np.testing.assert_array_equal(test.std, train.std)


def test_idx_errors(tmp_path):
    write_fashion_mnist(tmp_path, n_train=10, n_test=10, gz=False)
    path = str(tmp_path / "train-images-idx3-ubyte")
    good = open(path, "rb").read()

    write_bytes(path, good[:-100])  # truncated
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: truncated.*10x28x28.*7856 bytes.*7756"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path))

    write_bytes(path, idx_bytes(np.zeros(10, np.uint8)))  # a labels file where images belong
    with pytest.raises(ValueError, match=r"magic number 2049.*expected 2051"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path))

    write_bytes(path, idx_bytes(np.zeros((9, 28, 28), np.uint8)))  # counts differ
    with pytest.raises(ValueError, match=r"9 images but .*10 labels"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path))

    write_bytes(path, idx_bytes(np.zeros((10, 32, 32), np.uint8)))  # wrong image size
    with pytest.raises(ValueError, match=r"expected uint8 N x 28 x 28"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path))

    os.remove(path)
    write_bytes(path + ".gz", good)
    with open(path + ".gz", "r+b") as handle:  # a gzip cut in the middle
        handle.truncate(os.path.getsize(path + ".gz") // 2)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: not a valid gzip file"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path))

    os.remove(path + ".gz")
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\[\.gz\]: file not found"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path))


def test_fashion_mnist_missing_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEFAULT_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("fashion-mnist")
    message = str(err.value)
    assert "sudo apt-get update && sudo apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path / "other"))


@pytest.mark.skipif(
    not os.path.isfile(os.path.join(fashion_mnist.DEFAULT_DIR, "train-images-idx3-ubyte.gz")),
    reason="dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist():
    train = load_dataset("fashion-mnist", split="train")
    test = load_dataset("fashion-mnist", split="test")
    assert len(train) == 60000 and len(test) == 10000
    assert train.image_shape == test.image_shape == (1, 28, 28)
    assert train.num_classes == 10
    np.testing.assert_array_equal(np.bincount(train.labels), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test.labels), [1000] * 10)
    assert 60 < train.mean[0] < 85 and 80 < train.std[0] < 100  # known: 72.9 and 90.0
    data, label = next(iter(make_loader(test, batch_size=100, train=False, num_workers=0)))
    assert data.shape == (100, 1, 28, 28) and label.asnumpy().max() < 10


# -- CIFAR --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("fmt", ["binary", "python"])
def test_cifar_round_trip(tmp_path, name, fmt):
    written = write_cifar(tmp_path, name, fmt, n_per_file=6)
    # Parent directory and the batches directory itself are both accepted.
    for data_dir in (str(tmp_path), written["dir"]):
        for split in ("train", "test"):
            ds = load_dataset(name, data_dir=data_dir, split=split)
            images, labels = written[split]
            assert ds.images.shape == images.shape == (len(ds), 32, 32, 3)
            np.testing.assert_array_equal(ds.images, images)  # planar -> NHWC conversion
            np.testing.assert_array_equal(ds.labels, labels)  # CIFAR-100: fine, not coarse
            assert ds.num_classes == (10 if name == "cifar10" else 100)
            assert ds.image_shape == (3, 32, 32)
    assert len(load_dataset(name, data_dir=str(tmp_path), split="train")) == (30 if name == "cifar10" else 6)
    mean, std = channel_stats(written["train"][0])
    np.testing.assert_allclose(ds.mean, written["train"][0].reshape(-1, 3).mean(0), rtol=1e-5)
    np.testing.assert_array_equal(ds.mean, mean)
    np.testing.assert_array_equal(ds.std, std)


def test_cifar_pixel_layout(tmp_path):
    """One hand-made record: the red plane comes first, rows are row-major."""
    out = tmp_path / "cifar-10-batches-bin"
    out.mkdir()
    planes = np.zeros((3, 32, 32), np.uint8)
    planes[0, 0, 1] = 11  # red, row 0, column 1
    planes[1, 2, 0] = 22  # green, row 2, column 0
    planes[2, 31, 31] = 33  # blue, last pixel
    record = bytes([7]) + planes.tobytes()
    for i in range(1, 6):
        write_bytes(out / f"data_batch_{i}.bin", record)
    write_bytes(out / "test_batch.bin", record)
    image = load_dataset("cifar10", data_dir=str(tmp_path), split="test").images[0]
    assert image[0, 1, 0] == 11 and image[2, 0, 1] == 22 and image[31, 31, 2] == 33
    assert int(image.sum()) == 66


def test_cifar_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no gluon download cache to fall back on
    with pytest.raises(FileNotFoundError, match=r"CIFAR-100 needs a data directory: pass --data-dir"):
        load_dataset("cifar100")
    with pytest.raises(FileNotFoundError, match=r"no CIFAR-10 data found.*cifar-10-batches-bin"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    write_bytes(tmp_path / "cifar-10-binary.tar.gz", b"x")
    with pytest.raises(FileNotFoundError, match=r"extract it first \(tar xzf cifar-10-binary.tar.gz\)"):
        load_dataset("cifar10", data_dir=str(tmp_path))

    written = write_cifar(tmp_path, "cifar10", "binary", n_per_file=2)
    batch3 = os.path.join(written["dir"], "data_batch_3.bin")
    write_bytes(batch3, b"\0" * 1000)
    with pytest.raises(
        ValueError,
        match=r"data_batch_3.bin: expected a multiple of 3073 bytes \(1 label byte "
        r"\+ 32x32x3 pixels\), got 1000 bytes; is this the CIFAR-10 binary",
    ):
        load_dataset("cifar10", data_dir=str(tmp_path))
    write_bytes(batch3, b"\0" * 3074 * 2)  # CIFAR-100 records
    with pytest.raises(ValueError, match=r"it would fit CIFAR-100"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    os.remove(batch3)
    with pytest.raises(FileNotFoundError, match=r"data_batch_3.bin: file not found"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    # The test split also needs the training files: their statistics normalise it.
    with pytest.raises(FileNotFoundError, match=r"data_batch_3.bin: file not found"):
        load_dataset("cifar10", data_dir=str(tmp_path), split="test")

    written = write_cifar(tmp_path, "cifar100", "python", n_per_file=2)
    write_bytes(os.path.join(written["dir"], "train"), b"\x80\x02}q\x00(X")  # truncated pickle
    with pytest.raises(ValueError, match=r"cifar-100-python/train: cannot be unpickled"):
        load_dataset("cifar100", data_dir=str(tmp_path))
    write_bytes(os.path.join(written["dir"], "train"), pickle.dumps({b"data": 1}))
    with pytest.raises(ValueError, match=r"expected a pickled CIFAR-100 batch"):
        load_dataset("cifar100", data_dir=str(tmp_path))


def test_unknown_names():
    assert set(DATASETS) == {"fashion-mnist", "cifar10", "cifar100", "imagenet", "synthetic"}
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("synthetic", split="dev")


# -- ImageNet RecordIO ------------------------------------------------------------------------------


def test_imagenet_recordio(tmp_path):
    sizes = [(40, 48), (48, 40), (36, 36), (44, 60), (40, 40)]
    images = [smooth_images(1, h, w, seed=i)[0] for i, (h, w) in enumerate(sizes)]
    labels = [3, 0, 4, 1, 2]
    write_recordio(tmp_path, "train", images, labels)
    write_recordio(tmp_path, "val", images, labels)

    # Test transform with resize == crop == image size: the decoded pixels themselves.
    val = load_dataset("imagenet", data_dir=str(tmp_path), split="val", crop_size=40, resize=40, num_classes=5)
    assert len(val) == 5 and val.image_shape == (3, 40, 40)
    decoded, label = val[4]
    assert decoded.shape == (40, 40, 3) and label == 2
    assert np.abs(decoded.astype(int) - images[4]).max() <= 6  # JPEG at quality 100, RGB order kept
    batches = collect(make_loader(val, batch_size=2, train=False, num_workers=2))
    assert [len(lab) for _, lab in batches] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([lab for _, lab in batches]), labels)
    np.testing.assert_allclose(batches[2][0][0], as_nchw_normalised(decoded[None], val)[0], atol=1e-5)

    # Training: random crops of the requested size, deterministic per (seed, epoch).
    for aspect_ratio in (False, True):
        train = load_dataset(
            "imagenet",
            data_dir=str(tmp_path),
            split="train",
            crop_size=32,
            scale=(36, 50),
            aspect_ratio=aspect_ratio,
            num_classes=5,
        )
        loader = make_loader(train, batch_size=2, train=True, seed=1)
        first, again = collect(loader), collect(loader)
        assert len(first) == 2 and first[0][0].shape == (2, 3, 32, 32)
        assert all(np.isfinite(d).all() for d, _ in first)
        for (d1, l1), (d2, l2) in zip(first, again):
            np.testing.assert_array_equal(d1, d2)
            np.testing.assert_array_equal(l1, l2)


def test_colour_augmentation_is_mxnets_color_jitter_and_lighting(monkeypatch):
    """color_augment = mx.image.ColorJitterAug(0.4, 0.4, 0.4) then mx.image.LightingAug(0.1, ImageNet PCA),
    image by image, when MXNet's augmenters are handed the same random draws."""
    images = np.random.default_rng(0).uniform(0, 255, size=(6, 5, 7, 3)).astype(np.float32)
    ours = color_augment(images.copy(), np.random.default_rng(1), 0.4, 0.1, IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC)
    orders, factors, alphas = color_params(np.random.default_rng(1), len(images), 0.4, 0.1)
    assert ((factors >= 0.6) & (factors <= 1.4)).all() and sorted(orders[0]) == [0, 1, 2]
    jitter = mx.image.ColorJitterAug(0.4, 0.4, 0.4)
    lighting = mx.image.LightingAug(0.1, np.array(IMAGENET_PCA_EIGVAL), np.array(IMAGENET_PCA_EIGVEC))
    by_kind = list(jitter.ts)  # brightness, contrast, saturation
    for i, image in enumerate(images):
        draws = iter(factors[i][orders[i]] - 1.0)  # each augmenter draws a = 1 + uniform(-0.4, 0.4)
        order = [by_kind[k] for k in orders[i]]
        monkeypatch.setattr(random, "shuffle", lambda ts, order=order: ts.__setitem__(slice(None), order))
        monkeypatch.setattr(random, "uniform", lambda low, high, draws=draws: float(next(draws)))
        monkeypatch.setattr(np.random, "normal", lambda loc, scale, size, i=i: alphas[i])
        expected = lighting(jitter(mx.nd.array(image))).asnumpy()
        np.testing.assert_allclose(ours[i], expected, rtol=1e-5, atol=2e-3)
    assert np.abs(ours - images).max() > 10  # it did something


def test_imagenet_colour_augmentation_in_training_only(tmp_path):
    images = smooth_images(4, 40, 40)
    write_recordio(tmp_path, "train", images, [0, 1, 2, 3])
    options = dict(data_dir=str(tmp_path), split="train", crop_size=32, scale=(36, 40), num_classes=4)
    colour = load_dataset("imagenet", **options)  # the default: jitter 0.4, lighting 0.1
    plain = load_dataset("imagenet", color_jitter=0, lighting=0, **options)
    assert (colour.color_jitter, colour.lighting, plain.color_jitter, plain.lighting) == (0.4, 0.1, 0.0, 0.0)

    # Training batches: the same crops (colour draws come after them), with colours jittered.
    indices = [0, 1, 2, 3]
    x_colour, _ = colour.make_batch(indices, True, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    x_plain, _ = plain.make_batch(indices, True, rng)
    pixels = x_plain.transpose(0, 2, 3, 1) * plain.std + plain.mean
    expected = color_augment(pixels.astype(np.float32), rng, 0.4, 0.1, IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC)
    np.testing.assert_allclose(x_colour, ((expected - plain.mean) / plain.std).transpose(0, 3, 1, 2), atol=1e-3)
    assert np.abs(x_colour - x_plain).max() > 0.1

    # Loaders: training jitters, deterministically and whatever the threads; evaluation never does.
    train = [collect(make_loader(colour, batch_size=2, train=True, seed=3, num_workers=w)) for w in (0, 2)]
    for (d0, l0), (d2, l2) in zip(*train):
        np.testing.assert_array_equal(d0, d2)
        np.testing.assert_array_equal(l0, l2)
    plain_train = collect(make_loader(plain, batch_size=2, train=True, seed=3))
    assert all(np.abs(a - b).max() > 0.1 for (a, _), (b, _) in zip(train[0], plain_train))
    for loader_kwargs in (dict(train=False), dict(train=False, augment=False)):
        evaluated = [collect(make_loader(ds, batch_size=2, **loader_kwargs)) for ds in (colour, plain)]
        for (a, _), (b, _) in zip(*evaluated):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="color_jitter=1.5: expected a factor range in"):
        load_dataset("imagenet", color_jitter=1.5, **options)
    with pytest.raises(ValueError, match="lighting=-1: expected a standard deviation"):
        load_dataset("imagenet", lighting=-1, **options)


def test_imagenet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train.idx: file not found"):
        load_dataset("imagenet", data_dir=str(tmp_path))
    write_recordio(tmp_path, "train", smooth_images(3, 30, 30), [0, 1, 2])
    rec = tmp_path / "train.rec"
    data = rec.read_bytes()
    rec.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"train.rec: truncated: train.idx points at byte"):
        load_dataset("imagenet", data_dir=str(tmp_path))
    rec.write_bytes(data[:-40])  # the last record cut short: found when it is read
    last = load_dataset("imagenet", data_dir=str(tmp_path), num_classes=3)
    assert last[0][1] == 0
    with pytest.raises(ValueError, match=r"train.rec: cannot read record 2 .*truncated"):
        last[2]
    rec.write_bytes(b"not a record file" + data)
    with pytest.raises(ValueError, match=r"train.rec: does not start with the RecordIO magic"):
        load_dataset("imagenet", data_dir=str(tmp_path))
    rec.write_bytes(data)
    (tmp_path / "train.idx").write_text("garbage\n")
    with pytest.raises(ValueError, match=r"train.idx:1: expected 'key<TAB>offset'"):
        load_dataset("imagenet", data_dir=str(tmp_path))


# -- synthetic ----------------------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_learnable():
    a = load_dataset("synthetic", split="train", num_samples=200, seed=5)
    b = load_dataset("synthetic", split="train", num_samples=200, seed=5)
    c = load_dataset("synthetic", split="train", num_samples=200, seed=6)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (200, 32, 32, 3) and a.image_shape == (3, 32, 32)
    np.testing.assert_array_equal(np.bincount(a.labels), [20] * 10)
    small = load_dataset("synthetic", num_samples=30, num_classes=3, image_shape=(1, 8, 12))
    assert small.images.shape == (30, 8, 12, 1) and small.num_classes == 3
    # Learnable: nearest class mean (of the training split) classifies the test split.
    test = load_dataset("synthetic", split="test", num_samples=100, seed=5)
    np.testing.assert_array_equal(test.mean, a.mean)
    centres = np.stack([a.images[a.labels == k].reshape(-1, 3072).mean(0) for k in range(10)])
    flat = test.images.reshape(len(test), -1).astype(np.float64)
    predicted = np.argmin(((flat[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert (predicted == test.labels).mean() > 0.9


# -- augmentation -------------------------------------------------------------------------------------


def test_crop_flip_matches_reference():
    images, _ = random_images(64, 6, 7, 2, seed=1)
    rng = np.random.default_rng(0)
    oy, ox, flips = crop_flip_params(rng, len(images), pad=4)
    crops, valid = crop_flip(images, oy, ox, flips, pad=4)
    padded = np.pad(images.astype(int) + 1, ((0, 0), (4, 4), (4, 4), (0, 0)))  # 0 marks padding
    for i in range(len(images)):
        ref = padded[i, oy[i] : oy[i] + 6, ox[i] : ox[i] + 7]
        if flips[i]:
            ref = ref[:, ::-1]
        np.testing.assert_array_equal(valid[i], ref[..., 0] > 0)
        np.testing.assert_array_equal(np.where(valid[i][..., None], crops[i].astype(int) + 1, 0), ref)
    assert oy.min() >= 0 and oy.max() <= 8 and ox.min() >= 0 and ox.max() <= 8


def test_augmentation_statistics_and_normalisation():
    images, _ = random_images(4000, 4, 4, 3, seed=2)
    mean, std = channel_stats(images)
    rng = np.random.default_rng(7)
    oy, ox, flips = crop_flip_params(rng, len(images))
    assert 0.45 < flips.mean() < 0.55  # flip half of the time
    assert set(np.unique(oy)) == set(range(9)) == set(np.unique(ox))  # every shift of [-4, 4]
    # Without augmentation: exactly (x - mean) / std in NCHW; over the set, mean 0 and std 1.
    out = normalize(images, mean, std)
    np.testing.assert_allclose(
        out, (images.transpose(0, 3, 1, 2) - mean[:, None, None]) / std[:, None, None], rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-4)
    # With it: a crop of the normalised image zero-padded by 4 (zero = the mean colour), maybe mirrored.
    aug = augment_normalize(images[:50], mean, std, np.random.default_rng(0))
    assert aug.shape == (50, 3, 4, 4) and aug.dtype == np.float32
    oy, ox, flips = crop_flip_params(np.random.default_rng(0), 50)  # the draws augment_normalize made
    padded = np.pad(out[:50], ((0, 0), (0, 0), (4, 4), (4, 4)))
    for i in range(50):
        ref = padded[i, :, oy[i] : oy[i] + 4, ox[i] : ox[i] + 4]
        np.testing.assert_allclose(aug[i], ref[:, :, ::-1] if flips[i] else ref, atol=1e-6)


# -- loaders ------------------------------------------------------------------------------------------


def test_loader_contract_and_epoch_determinism():
    ds = indexed_dataset(40)
    loader = make_loader(ds, batch_size=8, train=True, seed=3, num_workers=2)
    assert len(loader) == 5
    loader.set_epoch(2)
    first = collect(loader)
    data, label = next(iter(loader.iterate()))
    assert isinstance(data, mx.nd.NDArray) and isinstance(label, mx.nd.NDArray)
    assert data.dtype == np.float32 and label.dtype == np.float32 and data.context == mx.cpu()
    assert data.shape == (8, 3, 8, 8) and label.shape == (8,)
    # Same (seed, epoch): identical, whatever the number of workers; another loader agrees.
    again = make_loader(ds, batch_size=8, train=True, seed=3, num_workers=0)
    again.set_epoch(2)
    for (d1, l1), (d2, l2) in zip(first, collect(again)):
        np.testing.assert_array_equal(d1, d2)
        np.testing.assert_array_equal(l1, l2)
    # Another epoch: another order and other crops; each epoch is a permutation.
    loader.set_epoch(3)
    other = collect(loader)
    assert not np.array_equal(np.concatenate([lab for _, lab in first]), np.concatenate([lab for _, lab in other]))
    assert sorted(np.concatenate([lab for _, lab in other]).astype(int)) == list(range(40))
    # Each sample is augmented differently in another epoch.
    by_index = {int(lab): d for data, labels in first for d, lab in zip(data, labels)}
    changed = sum(not np.array_equal(by_index[int(lab)], d) for data, labels in other for d, lab in zip(data, labels))
    assert changed >= 36
    # Another seed: another order.
    reseeded = make_loader(ds, batch_size=8, train=True, seed=4)
    reseeded.set_epoch(2)
    assert not np.array_equal(first[0][1], collect(reseeded)[0][1])


def test_start_batch_equals_skipping():
    ds = indexed_dataset(40)
    loader = make_loader(ds, batch_size=8, train=True, seed=0, num_workers=2)
    loader.set_epoch(1)
    full = collect(loader)
    loader.set_epoch(1, start_batch=3)
    resumed = collect(loader)
    assert len(resumed) == 2
    for (d1, l1), (d2, l2) in zip(full[3:], resumed):
        np.testing.assert_array_equal(d1, d2)
        np.testing.assert_array_equal(l1, l2)
    via_iterate = collect(loader, start_batch=4)
    np.testing.assert_array_equal(via_iterate[0][0], full[4][0])
    # A complete `for` pass advances the epoch; set_epoch overrides.
    loader.set_epoch(5)
    list(loader)
    assert (loader.epoch, loader.start_batch) == (6, 0)


def test_last_batch_modes():
    ds = indexed_dataset(30)
    discard = make_loader(ds, batch_size=8, train=True)
    assert len(discard) == 3 and [len(lab) for _, lab in collect(discard)] == [8, 8, 8]
    keep = make_loader(ds, batch_size=8, train=True, last_batch="keep")
    assert len(keep) == 4 and [len(lab) for _, lab in collect(keep)] == [8, 8, 8, 6]
    rollover = make_loader(ds, batch_size=8, train=True, last_batch="rollover", num_workers=0)
    seen, sizes = [], []
    for epoch in range(4):  # 120 samples = 15 batches over 4 epochs: 3, 4, 4, 4
        rollover.set_epoch(epoch)
        batches = collect(rollover)
        assert len(rollover) == len(batches)
        sizes.append(len(batches))
        seen.extend(int(x) for _, lab in batches for x in lab)
    assert sizes == [3, 4, 4, 4] and len(seen) == 120
    for epoch in range(4):  # the stream is each epoch's permutation in turn
        assert sorted(seen[30 * epoch : 30 * (epoch + 1)]) == list(range(30))
    with pytest.raises(ValueError, match="exceeds the 30 samples"):
        make_loader(ds, batch_size=32, train=True)


def test_test_loader_order_and_sizes():
    ds = indexed_dataset(30)
    loader = make_loader(ds, batch_size=8, train=False, num_workers=2)
    batches = collect(loader)
    assert [len(lab) for _, lab in batches] == [8, 8, 8, 6]
    np.testing.assert_array_equal(np.concatenate([lab for _, lab in batches]), np.arange(30))
    data = np.concatenate([d for d, _ in batches])
    np.testing.assert_allclose(data, as_nchw_normalised(ds.images, ds), rtol=1e-5, atol=1e-5)  # not augmented


def test_sharding():
    ds = indexed_dataset(43)
    shards = []
    for rank in range(4):
        loader = make_loader(ds, batch_size=5, train=True, shard=(rank, 4), seed=9)
        loader.set_epoch(1)
        assert loader.num_samples == 10 and len(loader) == 2
        shards.append(loader.shard_order(1))
        assert [len(lab) for _, lab in collect(loader)] == [5, 5]
    everything = np.concatenate(shards)
    assert len(set(everything.tolist())) == 40  # disjoint and equal-sized
    # Test shards cover every sample exactly once.
    covered = [
        int(x)
        for rank in range(4)
        for _, lab in collect(make_loader(ds, batch_size=4, train=False, shard=(rank, 4)))
        for x in lab
    ]
    assert sorted(covered) == list(range(43))


def test_early_break_leaves_no_threads():
    ds = indexed_dataset(200)
    loader = make_loader(ds, batch_size=4, train=True, num_workers=2, prefetch=3)
    for i, _ in enumerate(loader):
        if i == 2:
            break
    gc.collect()
    assert not [t for t in threading.enumerate() if t.name.startswith("gluon_resnetv2-loader")]
    assert loader.epoch == 0  # an interrupted pass does not advance the epoch


def test_worker_errors_reach_the_consumer():
    class Broken:
        default_augment = False

        def __len__(self):
            return 10

        def make_batch(self, indices, augment, rng):
            raise ValueError("bad record 3")

    with pytest.raises(ValueError, match="bad record 3"):
        list(make_loader(Broken(), batch_size=2, train=False, num_workers=2))
