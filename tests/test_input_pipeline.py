"""The ImageNet input pipeline: worker processes, the uint8 hand-over and its normalisation on the device."""

import multiprocessing

import mxnet as mx
import numpy as np
import pytest
from data_fixtures import smooth_images, write_recordio

from gluon_resnetv2.cpu import physical_cores
from gluon_resnetv2.data import load_dataset, make_loader
from gluon_resnetv2.train.steps import evaluate


def collect(loader, prepare=False, **kwargs):
    out = []
    for data, label in loader.iterate(**kwargs):
        if prepare:
            data, label = loader.prepare(data, label)
        out.append((data.asnumpy(), label.asnumpy()))
    return out


@pytest.fixture(scope="module")
def rec_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("imagenet")
    sizes = [(40, 48), (48, 40), (36, 36), (44, 60), (40, 40), (50, 38), (38, 52), (46, 46)]
    images = [smooth_images(1, h, w, seed=i)[0] for i, (h, w) in enumerate(sizes)]
    for stem in ("train", "val"):
        write_recordio(directory, stem, images, [i % 4 for i in range(8)])
    return str(directory)


def imagenet(rec_dir, split="train", **options):
    return load_dataset(
        "imagenet", data_dir=rec_dir, split=split, crop_size=32, scale=(36, 44), num_classes=4, **options
    )


@pytest.mark.parametrize(
    "split, options, exact",
    [
        ("val", {}, True),  # centre crops, no colour: only the normalisation moves, bit for bit
        ("train", {"color_jitter": 0, "lighting": 0}, True),  # random crops and flips, no colour
        ("train", {}, False),  # colour jitter + lighting on the device: float32 rounding
    ],
)
def test_uint8_hand_over_normalised_on_device_equals_the_float_path(rec_dir, split, options, exact):
    dataset = imagenet(rec_dir, split, **options)
    train = split == "train"
    floats = collect(make_loader(dataset, batch_size=4, train=train, seed=2, num_workers=0))
    loader = make_loader(dataset, batch_size=4, train=train, seed=2, num_workers=0, hand_over="uint8")
    raw = [(d, lab) for d, lab in loader.iterate()]
    assert raw[0][0].dtype == np.uint8 and raw[0][0].shape == (4, 32, 32, 3)
    assert raw[0][1].shape == ((4,) if exact else (4, 10))  # class + 9 colour draws when jittering
    uint8 = collect(loader, prepare=True)
    assert len(uint8) == len(floats) == 2
    for (got, got_label), (want, want_label) in zip(uint8, floats):
        assert got.dtype == np.float32 and got.shape == want.shape == (4, 3, 32, 32)
        np.testing.assert_array_equal(got_label, want_label)
        if exact:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)
    if not exact:
        plain = collect(make_loader(imagenet(rec_dir, color_jitter=0, lighting=0), 4, seed=2, num_workers=0))
        assert all(np.abs(a - b).max() > 0.1 for (a, _), (b, _) in zip(uint8, plain))  # colours did change


def test_in_memory_sets_ignore_the_uint8_hand_over():
    dataset = load_dataset("synthetic", num_samples=64)
    loader = make_loader(dataset, batch_size=16, hand_over="uint8", num_workers=1)
    assert loader.prepare is None and loader.worker_type == "thread"
    data, _ = next(iter(loader))
    assert data.dtype == np.float32 and data.shape == (16,) + dataset.image_shape


@pytest.mark.parametrize("hand_over", ["float32", "uint8"])
def test_worker_processes_give_the_batches_of_the_consumer_thread(rec_dir, hand_over):
    dataset = imagenet(rec_dir)
    assert dataset.worker_type == "process"
    reference = collect(make_loader(dataset, batch_size=2, seed=4, num_workers=0, hand_over=hand_over))
    loader = make_loader(dataset, batch_size=2, seed=4, num_workers=2, hand_over=hand_over)
    workers = loader._processes.pool._pool
    assert len(workers) == 2 and all(w.is_alive() for w in workers)
    # twice: the processes serve every epoch; and a thread pool over the same set agrees too
    threads = make_loader(dataset, batch_size=2, seed=4, num_workers=2, hand_over=hand_over, worker_type="thread")
    for batches in (collect(loader), collect(loader), collect(threads)):
        assert len(batches) == len(reference) == 4
        for (d, lab), (d0, l0) in zip(batches, reference):
            assert d.dtype == d0.dtype
            np.testing.assert_array_equal(d, d0)
            np.testing.assert_array_equal(lab, l0)
    # an early break, then a full pass: nothing stale comes out
    for i, _ in enumerate(loader.iterate()):
        if i == 1:
            break
    np.testing.assert_array_equal(collect(loader)[3][0], reference[3][0])
    loader.close()
    assert not any(w.is_alive() for w in workers) and loader.num_workers == 0
    assert len(collect(loader)) == 4  # after close: made in the consumer


def test_worker_process_errors_reach_the_consumer(tmp_path):
    write_recordio(tmp_path, "train", smooth_images(4, 40, 40), [0, 1, 2, 3])
    with open(tmp_path / "train.rec", "r+b") as handle:  # damage the third record's JPEG
        data = handle.read()
        start = data.index(b"\xff\xd8", data.index(b"\xff\xd9") + 2)
        start = data.index(b"\xff\xd8", data.index(b"\xff\xd9", start) + 2)
        handle.seek(start)
        handle.write(b"\0" * 64)
    dataset = load_dataset("imagenet", data_dir=str(tmp_path), split="train", crop_size=32, scale=(36, 40))
    loader = make_loader(dataset, batch_size=1, train=False, num_workers=2)
    with pytest.raises(ValueError, match=r"train.rec: record 2 is not a decodable image"):
        collect(loader)
    loader.close()


def test_workers_default_to_the_physical_cores():
    loader = make_loader(load_dataset("synthetic", num_samples=64), batch_size=16)
    assert loader.num_workers == physical_cores() >= 1
    assert make_loader(load_dataset("synthetic", num_samples=64), batch_size=16, num_workers=0).num_workers == 0
    with pytest.raises(ValueError, match="hand_over must be one of"):
        make_loader(load_dataset("synthetic", num_samples=64), batch_size=16, hand_over="float16")


def test_evaluate_applies_the_loaders_prepare(rec_dir):
    """The evaluation of a uint8 loader equals that of the float32 loader (the training step applies
    the same hook: tests/test_train_resume.py)."""
    dataset = imagenet(rec_dir, "val")
    net = mx.gluon.nn.HybridSequential()
    net.add(mx.gluon.nn.Conv2D(4, 3, strides=4), mx.gluon.nn.GlobalAvgPool2D(), mx.gluon.nn.Flatten())
    net.initialize(mx.init.Xavier())
    results = [
        evaluate(net, make_loader(dataset, 4, train=False, num_workers=0, hand_over=h), [mx.cpu()])
        for h in ("float32", "uint8")
    ]
    assert results[0] == results[1] and np.isfinite(results[0]).all()


def test_no_worker_process_outlives_its_loader(rec_dir):
    before = set(multiprocessing.active_children())
    loader = make_loader(imagenet(rec_dir), batch_size=2, num_workers=2)
    assert len(set(multiprocessing.active_children()) - before) == 2
    del loader
    import gc

    gc.collect()
    assert not set(multiprocessing.active_children()) - before


def test_worker_processes_after_opencv_ran_threads_in_the_parent(tmp_path):
    """OpenCV's thread pool stays in the parent at a fork: the workers must not touch it (a child calling
    cv2.setNumThreads then deadlocked, seen as a loader that never delivered)."""
    import cv2

    cv2.setNumThreads(2)
    cv2.resize(np.zeros((1500, 2000, 3), np.uint8), (1000, 750), interpolation=cv2.INTER_AREA)  # pool started
    write_recordio(tmp_path, "train", smooth_images(4, 300, 400), [0, 1, 2, 3])
    dataset = load_dataset("imagenet", data_dir=str(tmp_path), split="train", num_classes=4)
    loader = make_loader(dataset, batch_size=2, num_workers=1, hand_over="uint8")
    assert cv2.getNumThreads() == 1  # set before the fork: one core per worker
    data, _ = next(iter(loader))
    assert data.shape == (2, 224, 224, 3)
    loader.close()
