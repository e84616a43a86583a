"""How fast the input pipeline delivers training batches, and how it scales with workers
(``scripts/bench_input.py``; the result file is ``docs/results/bench_input.json`` + ``.md``).

Measured in one run, configurations interleaved round by round (the load of a shared machine drifts):

* ImageNet: ``--images`` JPEGs of 500x375 (textured, so decoding costs what ImageNet's does) packed into
  ``train.rec`` by MXNet's own ``tools/im2rec.py --pass-through``, read with the paper's training
  augmentation (He et al. 2016, Sec. 3.4: shorter side to S ~ U[256, 480], random 224 crop, flip; colour
  jitter 0.4 and lighting 0.1 as fb.resnet.torch) by

  - our loader with 1..W worker processes, handing over uint8 (what the trainer asks for; the colour
    jitter and normalisation then run on the device, :mod:`.device`), and handing over float32 (jittered
    and normalised in the workers: the same work as ImageRecordIter's),
  - our loader with 1..W worker threads (why the workers are processes),
  - ``mx.io.ImageRecordIter`` with ``preprocess_threads`` 1..W on the same file and the closest settings
    (random scale 256/375..480/375 of these images, crop, mirror, the same jitter and PCA noise), whose
    output is normalised float32 NCHW;
* CIFAR-shaped synthetic data (32x32x3; pad 4, crop, flip, normalise: Sec. 4) and Fashion-MNIST (when
  installed) with 1..W worker threads, float32 hand-over (the in-memory path of the paper's tables).

The goal (issue 18): images/s with W workers >= :data:`SCALING_GOAL` x W x the one-worker rate, for W up
to the physical cores.  ``--overlap STEPS`` also times cifar_resnet20_v2 training steps fed a fixed batch
vs the loader (printed only).
"""

import os
import subprocess
import sys
import tempfile
import time

import mxnet as mx
import numpy as np

from ..cpu import available_cpus
from . import load_dataset, make_loader
from .fashion_mnist import DEFAULT_DIR
from .imagenet import COLOR_JITTER, IMAGENET_MEAN, IMAGENET_STD, LIGHTING

#: Fraction of linear scaling the loaders must reach (issue 18).
SCALING_GOAL = 0.8
JPEG_SIZE = (500, 375)  # width, height: a typical ImageNet photo
SCALE = (256, 480)  # the paper's shorter-side range
CROP = 224


def imagenet_files(directory, count=512, seed=0, num_classes=10):
    """``count`` textured 500x375 JPEGs (quality 90) in ``directory/jpeg``, listed in ``train.lst`` and packed
    by MXNet's ``im2rec.py --pass-through`` into ``directory/train.rec``/``.idx`` (the bytes of the files)."""
    import cv2

    rng = np.random.default_rng(seed)
    width, height = JPEG_SIZE
    ys, xs = np.mgrid[0:height, 0:width]
    root = os.path.join(directory, "jpeg")
    os.makedirs(root, exist_ok=True)
    lines = []
    for key in range(count):
        freq = rng.uniform(0.01, 0.1, size=3)
        image = np.stack([127 + 100 * np.sin(freq[c] * xs + freq[(c + 1) % 3] * ys) for c in range(3)], -1)
        image = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
        name = f"{key:06d}.jpg"
        cv2.imwrite(os.path.join(root, name), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        lines.append(f"{key}\t{key % num_classes}\t{name}\n")
    prefix = os.path.join(directory, "train")
    with open(prefix + ".lst", "w") as handle:
        handle.writelines(lines)
    im2rec = os.path.join(os.path.dirname(mx.__file__), "tools", "im2rec.py")
    done = subprocess.run(
        [sys.executable, im2rec, "--pass-through", "--num-thread", "1", prefix, root], capture_output=True, text=True
    )
    if done.returncode != 0 or not os.path.isfile(prefix + ".rec"):
        raise RuntimeError(f"{im2rec} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return prefix + ".rec", prefix + ".idx"


def _cpu_seconds(pids):
    """CPU time (user + system) of this process, all its threads, and of the processes ``pids``."""
    total = time.process_time()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:  # not Linux, or gone
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def _rate(batches, warmup, timed, pids=()):
    """``(images/s, images per CPU-second)`` over ``timed`` batches after ``warmup``; ``batches`` yields arrays
    to wait for; the CPU time is this process's and that of the worker processes ``pids``.

    Images per CPU-second do not depend on how many cores other processes leave free: equal values for 1 and
    W workers mean that the workers do not get in each other's way, whatever the wall-clock scaling."""
    seen, images, start = 0, 0, None
    for data in batches:
        seen += 1
        if seen == warmup:
            data.wait_to_read()
            start, cpu = time.perf_counter(), _cpu_seconds(pids)
        elif seen > warmup:
            images += data.shape[0]
        if seen == warmup + timed:
            data.wait_to_read()
            wall, cpu = time.perf_counter() - start, _cpu_seconds(pids) - cpu
            return images / wall, images / max(cpu, 1e-9)
    raise ValueError(f"only {seen} batches for {warmup} + {timed}")


def measure(dataset, batch_size, num_workers, batches, warmup=5, **options):
    """``(images/s, images per CPU-second)`` of a training loader (augmentation on) over ``batches`` batches
    from the ``warmup``-th on (worker start-up excluded, later epoch starts included, as in training)."""
    loader = make_loader(dataset, batch_size=batch_size, train=True, augment=True, num_workers=num_workers, **options)
    pids = [p.pid for p in loader._processes.pool._pool] if loader._processes is not None else []

    def stream():
        epoch = 0
        while True:
            loader.set_epoch(epoch)
            for data, _ in loader:
                yield data
            epoch += 1

    try:
        return _rate(stream(), warmup, batches, pids)
    finally:
        loader.close()


def record_iter_threads(threads, cpus=None):
    """The decoding threads ``mx.io.ImageRecordIter(preprocess_threads=threads)`` really runs: MXNet 1.9.1's
    ``ImageRecordIOParser2::Init`` caps them at ``max(omp_get_num_procs() / 2 - 1, 1)`` (1 on 2 to 5 CPUs)."""
    cpus = len(available_cpus()) if cpus is None else cpus
    return min(threads, max(cpus // 2 - 1, 1))


def record_iter(rec, idx, batch_size, threads):
    """``mx.io.ImageRecordIter`` with the settings closest to our training augmentation for 500x375 images."""
    short = min(JPEG_SIZE)
    return mx.io.ImageRecordIter(
        path_imgrec=rec,
        path_imgidx=idx,
        data_shape=(3, CROP, CROP),
        batch_size=batch_size,
        shuffle=True,
        rand_crop=True,
        rand_mirror=True,
        min_random_scale=SCALE[0] / short,
        max_random_scale=SCALE[1] / short,
        brightness=COLOR_JITTER,
        contrast=COLOR_JITTER,
        saturation=COLOR_JITTER,
        pca_noise=LIGHTING,
        mean_r=IMAGENET_MEAN[0],
        mean_g=IMAGENET_MEAN[1],
        mean_b=IMAGENET_MEAN[2],
        std_r=IMAGENET_STD[0],
        std_g=IMAGENET_STD[1],
        std_b=IMAGENET_STD[2],
        preprocess_threads=threads,
        seed=0,
    )


def measure_record_iter(rec, idx, batch_size, threads, batches, warmup=2):
    """``(images/s, images per CPU-second)`` of :func:`record_iter` (float32 NCHW batches), as :func:`measure`."""
    it = record_iter(rec, idx, batch_size, threads)

    def stream():
        while True:
            for batch in it:
                yield batch.data[0]
            it.reset()

    return _rate(stream(), warmup, batches)  # its prefetch threads end with the iterator, on return


#: Our ImageNet loaders: (name, make_loader options).
OURS: tuple[tuple[str, dict[str, str]], ...] = (
    ("ours, processes (uint8)", {"hand_over": "uint8"}),
    ("ours, processes (float32)", {}),
    ("ours, threads (uint8)", {"hand_over": "uint8", "worker_type": "thread"}),
)


def configurations(num_workers, batch_size, imagenet_batch, rec=None, fashion=True):
    """``[(data, loader, workers, batch, what)]``: what :func:`run_input_bench` measures (:func:`run_one`)."""
    out = []
    if rec is not None:
        dataset = load_dataset("imagenet", os.path.dirname(rec[0]), num_classes=10, crop_size=CROP, scale=SCALE)
        for name, options in OURS:
            out += [("imagenet", name, w, imagenet_batch, (dataset, options)) for w in num_workers]
        out += [("imagenet", "mx.io.ImageRecordIter (float32)", w, imagenet_batch, rec) for w in num_workers]
    sets = [("cifar-shaped synthetic 32x32x3", load_dataset("synthetic", num_samples=10000))]
    if fashion and os.path.isfile(os.path.join(DEFAULT_DIR, "train-images-idx3-ubyte.gz")):
        sets.insert(0, ("fashion-mnist 28x28x1", load_dataset("fashion-mnist")))
    for name, dataset in sets:
        out += [(name, "ours, threads (float32)", w, batch_size, (dataset, {})) for w in num_workers]
    return out


def run_one(config, batches, imagenet_batches):
    data, loader, workers, batch, what = config
    if loader.startswith("mx.io"):
        return measure_record_iter(what[0], what[1], batch, workers, imagenet_batches)
    dataset, options = what
    if data == "imagenet":
        return measure(dataset, batch, workers, imagenet_batches, warmup=2, **options)
    return measure(dataset, batch, workers, batches, **options)


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


def run_input_bench(
    num_workers=None,
    batch_size=128,
    imagenet_batch=64,
    batches=100,
    imagenet_batches=12,
    images=512,
    rounds=3,
    imagenet=True,
    out=None,
    command=None,
    overlap_steps=0,
    log=print,
):
    """Measure every :func:`configurations` entry ``rounds`` times (interleaved), print the table, write the
    result files to ``out`` (:func:`.bench_input_report.write_results`) and return the result dict."""
    from ..bench.machine import conditions
    from . import bench_input_report as report
    from .workers import default_workers

    cores = default_workers()
    num_workers = list(num_workers or range(1, cores + 1))
    load_before = os.getloadavg()
    started = conditions()
    with tempfile.TemporaryDirectory() as tmp:
        rec = imagenet_files(tmp, images) if imagenet else None
        configs = configurations(num_workers, batch_size, imagenet_batch, rec)
        rates = [[] for _ in configs]
        for r in range(rounds):
            for i, config in enumerate(configs):
                rates[i].append(run_one(config, batches, imagenet_batches))
                data, loader, workers = config[:3]
                rate, per_cpu = rates[i][-1]
                log(
                    f"round {r + 1}/{rounds}: {data}, {loader}, {workers} workers: {rate:.0f} images/s, "
                    f"{per_cpu:.0f} per CPU-s"
                )
    rows = [
        {
            "data": data,
            "loader": loader,
            "workers": workers,
            "batch_size": batch,
            "images_per_s": float(np.median([v for v, _ in values])),
            "images_per_s_rounds": [round(v, 1) for v, _ in values],
            "images_per_cpu_s": float(np.median([c for _, c in values])),
            **({"decode_threads": record_iter_threads(workers)} if loader.startswith("mx.io") else {}),
        }
        for (data, loader, workers, batch, _), values in zip(configs, rates)
    ]
    result = {
        "date": started["time_utc"],
        "command": command or "python scripts/bench_input.py",
        "machine": started,
        "physical_cores": cores,
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "settings": {
            "jpeg": f"{JPEG_SIZE[0]}x{JPEG_SIZE[1]}, quality 90, {images} images, im2rec.py --pass-through",
            "imagenet_augmentation": f"shorter side U{list(SCALE)}, {CROP} crop, flip, jitter {COLOR_JITTER}, "
            f"lighting {LIGHTING}",
            "rounds": rounds,
            "timed_batches": {"imagenet": imagenet_batches, "in_memory": batches},
            "scaling_goal": SCALING_GOAL,
        },
        "rows": report.add_scaling(rows),
    }
    log(report.markdown(result))
    if out:
        for path in report.write_results(result, out):
            log(f"wrote {path}")
    if overlap_steps:
        workers = num_workers[-1]
        alone, fed = overlap(load_dataset("synthetic", num_samples=10000), batch_size, workers, overlap_steps)
        log(
            f"cifar_resnet20_v2 training step, batch {batch_size}: {1000 * alone:.0f} ms with a fixed batch, "
            f"{1000 * fed:.0f} ms fed by the loader ({workers} workers): {100 * (fed / alone - 1):+.1f}%"
        )
    return result
