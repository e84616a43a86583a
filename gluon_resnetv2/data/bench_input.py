"""How fast the input pipeline delivers training batches (``scripts/bench_input.py``).

Measures images/s of ``make_loader(..., train=True)`` with augmentation on (pad 4, random crop, flip,
normalise; He et al. 2016, Sec. 4) up to and including the float32 NDArrays the training loop receives, for:

* Fashion-MNIST (the real files, when installed),
* synthetic CIFAR-shaped data (32x32x3),
* optionally ImageNet-style RecordIO: JPEGs of 500x375 written to a temporary directory, decoded and
  scale-augmented to 224x224 by the workers.

The loader must be far faster than the model's training throughput (:data:`MODEL_THROUGHPUT`), or it
becomes the bottleneck.
"""

import os
import tempfile
import time

import mxnet as mx
import numpy as np

from . import load_dataset, make_loader
from .fashion_mnist import DEFAULT_DIR

#: Training throughput (images/s, CPU here) the loader is compared with.
MODEL_THROUGHPUT = {"cifar_resnet20_v2": 260, "ResNet-110": 50}


def measure(dataset, batch_size, num_workers, batches, warmup=5):
    """Images/s over ``batches`` batches, timed from the ``warmup``-th batch on (thread start-up and
    first allocations excluded; later epoch starts included, as in training)."""
    loader = make_loader(dataset, batch_size=batch_size, train=True, augment=True, num_workers=num_workers)
    seen, images, start, epoch, data = 0, 0, None, 0, None
    while seen < warmup + batches:
        loader.set_epoch(epoch)
        for data, _ in loader:
            seen += 1
            if seen == warmup:
                start = time.perf_counter()
            elif seen > warmup:
                images += data.shape[0]
            if seen == warmup + batches:
                break
        epoch += 1
    data.wait_to_read()
    return images / (time.perf_counter() - start)


def overlap(dataset, batch_size, num_workers, steps=5, rounds=5):
    """Seconds per training step of gluoncv's cifar_resnet20_v2 (SGD, CPU) fed (a) one fixed batch and
    (b) the loader: the difference is what the input pipeline costs the training loop."""
    from gluoncv.model_zoo import get_model  # gluoncv's own net as the reference workload; ~0.13 s to import

    net = get_model("cifar_resnet20_v2", classes=dataset.num_classes)
    net.initialize(mx.init.MSRAPrelu())
    net.hybridize()
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()

    def step(data, label):
        with mx.autograd.record():
            loss = loss_fn(net(data), label)
        loss.backward()
        trainer.step(data.shape[0])
        return loss

    loader = make_loader(dataset, batch_size=batch_size, train=True, augment=True, num_workers=num_workers)
    loader.set_epoch(1)
    batches = loader.iterate()
    fixed = next(batches)
    step(*fixed).wait_to_read()  # shapes inferred, memory allocated
    # Alternate the two in rounds and keep medians: on a shared machine the load of other processes
    # varies more between seconds than the loader could cost.
    times = {"fixed": [], "loader": []}
    for _ in range(rounds):
        for mode in times:
            start = time.perf_counter()
            for _ in range(steps):
                step(*(fixed if mode == "fixed" else next(batches))).wait_to_read()
            times[mode].append((time.perf_counter() - start) / steps)
    batches.close()
    return float(np.median(times["fixed"])), float(np.median(times["loader"]))


def imagenet_like(directory, count=128, seed=0):
    """A train.rec/.idx of ``count`` 500x375 JPEGs with some texture (decoding cost like ImageNet's)."""
    rng = np.random.default_rng(seed)
    record = mx.recordio.MXIndexedRecordIO(
        os.path.join(directory, "train.idx"), os.path.join(directory, "train.rec"), "w"
    )
    ys, xs = np.mgrid[0:375, 0:500]
    for key in range(count):
        freq = rng.uniform(0.01, 0.1, size=3)
        image = np.stack([127 + 100 * np.sin(freq[c] * xs + freq[(c + 1) % 3] * ys) for c in range(3)], -1)
        image = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
        record.write_idx(key, mx.recordio.pack_img(mx.recordio.IRHeader(0, key % 10, key, 0), image, quality=90))
    record.close()


def run_input_bench(batch_size=128, num_workers=(2,), batches=200, imagenet=False, overlap_steps=0):
    """Measure and print the table (and, with ``overlap_steps``, the training-step comparison of
    :func:`overlap`); returns 0."""
    sets = []
    if os.path.isfile(os.path.join(DEFAULT_DIR, "train-images-idx3-ubyte.gz")):
        sets.append(("fashion-mnist 28x28x1", load_dataset("fashion-mnist"), batch_size, batches))
    else:
        print(f"(Fashion-MNIST not installed in {DEFAULT_DIR}: skipped)")
    sets.append(("synthetic 32x32x3", load_dataset("synthetic", num_samples=10000), batch_size, batches))
    tmp = None
    if imagenet:
        tmp = tempfile.TemporaryDirectory()
        imagenet_like(tmp.name)
        sets.append(("imagenet-like JPEG 500x375 -> 224", load_dataset("imagenet", tmp.name, num_classes=10), 32, 8))

    print(
        f"{'data set':36s} {'workers':>7s} {'batch':>5s} {'images/s':>10s} {'ms/batch':>9s}   "
        f"x cifar_resnet20_v2 (260/s)"
    )
    for name, dataset, set_batch, set_batches in sets:
        for workers in num_workers:
            rate = measure(dataset, set_batch, workers, set_batches, warmup=2 if set_batch == 32 else 5)
            print(
                f"{name:36s} {workers:7d} {set_batch:5d} {rate:10.0f} {1000 * set_batch / rate:9.2f}   "
                f"{rate / MODEL_THROUGHPUT['cifar_resnet20_v2']:8.0f}x"
            )
    if tmp is not None:
        tmp.cleanup()
    if overlap_steps:
        workers = num_workers[-1]
        alone, fed = overlap(load_dataset("synthetic", num_samples=10000), batch_size, workers, overlap_steps)
        print(
            f"cifar_resnet20_v2 training step, batch {batch_size}: {1000 * alone:.0f} ms with a fixed batch, "
            f"{1000 * fed:.0f} ms fed by the loader ({workers} workers): {100 * (fed / alone - 1):+.1f}% "
            f"({batch_size / alone:.0f} vs {batch_size / fed:.0f} images/s)"
        )
    return 0
