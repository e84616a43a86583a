"""Devices: parsing ``--cpus`` / ``--gpus``, splitting a batch over them, and the GPU preflight.

The paper trains CIFAR on 2 GPUs x 64 images and ImageNet on 8 GPUs; here the global mini-batch is split
over the contexts with :func:`mxnet.gluon.utils.split_and_load`.  ``--cpus N`` makes N CPU contexts
(``mx.cpu(0) ... mx.cpu(N-1)``), which exercises exactly the multi-device code path on a machine without
a GPU.

The GPU preflight (can this MXNet build run on the GPUs, and its runtime fusion) is :mod:`.preflight`.
"""

import warnings

import mxnet as mx
from mxnet import gluon

# The preflight lives in .preflight; its names stay importable from here.
from .preflight import (  # noqa: F401
    ARCHS_ENV,
    KNOWN_BUILD_ARCHS,
    GpuInfo,
    architecture_name,
    build_cuda_archs,
    check_gpu_support,
    parse_nvidia_smi,
    preflight_gpus,
    query_gpus,
    sm,
)

# --------------------------------------------------------------------------------------------- contexts


def parse_gpus(text):
    """``"0,1,2,3"`` (or a list) -> ``[0, 1, 2, 3]``; ValueError for anything that is not indices."""
    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [part.strip() for part in str(text).split(",") if part.strip() != ""]
    try:
        gpus = [int(item) for item in items]
    except ValueError:
        raise ValueError(f"--gpus takes comma-separated GPU indices such as 0,1,2,3; got {text!r}") from None
    if not gpus:
        raise ValueError("--gpus needs at least one GPU index, e.g. --gpus 0")
    if any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise ValueError(f"--gpus takes distinct non-negative indices; got {text!r}")
    return gpus


def make_contexts(cpus=None, gpus=None):
    """The MXNet contexts of ``--cpus N`` or ``--gpus LIST`` (default: one CPU context)."""
    if cpus is not None and gpus is not None:
        raise ValueError("give either --cpus or --gpus, not both")
    if gpus is not None:
        return [mx.gpu(i) for i in parse_gpus(gpus)]
    count = 1 if cpus is None else int(cpus)
    if count < 1:
        raise ValueError(f"--cpus must be at least 1, got {cpus}")
    return [mx.cpu(i) for i in range(count)]


def check_batch_split(batch_size, num_devices, num_workers=1):
    """Per-worker batch of a global ``batch_size``; ValueError unless it splits sensibly.

    The global batch must divide evenly over the workers (each worker's loader yields ``batch/workers``
    images and the kvstore sums the gradients of all of them) and give every device at least one image.
    """
    if batch_size % num_workers:
        raise ValueError(f"--batch-size {batch_size} does not divide evenly over {num_workers} workers")
    per_worker = batch_size // num_workers
    if per_worker < num_devices:
        raise ValueError(
            f"--batch-size {batch_size} gives {per_worker} images per worker, fewer than its "
            f"{num_devices} devices: every device needs at least one image"
        )
    if per_worker % num_devices:
        # split_batch slices as gluon.utils.split_data does: the first (size % devices) get one more.
        each, extra = divmod(per_worker, num_devices)
        sizes = "+".join(str(each + (i < extra)) for i in range(num_devices))
        warnings.warn(
            f"--batch-size {batch_size} does not split evenly over {num_devices} devices: each iteration "
            f"is split {sizes} images{' per worker' if num_workers > 1 else ''} (BatchNorm statistics "
            f"come from slices of different sizes)",
            stacklevel=2,
        )
    return per_worker


def split_batch(data, label, contexts, prepare=None):
    """Split a batch over ``contexts`` (uneven slices allowed); fewer images than devices use fewer devices.

    ``prepare`` (a loader's, :class:`gluon_resnetv2.data.device.DeviceInput`) then turns each device's
    slice of a uint8 hand-over into the network's float32 input there."""

    n = data.shape[0]
    ctxs = contexts[: max(1, min(len(contexts), n))]
    if len(ctxs) == 1:
        datas, labels = [data.as_in_context(ctxs[0])], [label.as_in_context(ctxs[0])]
    else:
        datas = gluon.utils.split_and_load(data, ctxs, even_split=False)
        labels = gluon.utils.split_and_load(label, ctxs, even_split=False)
    if prepare is None:
        return datas, labels
    prepared = [prepare(x, y) for x, y in zip(datas, labels)]
    return [x for x, _ in prepared], [y for _, y in prepared]
