"""One training step and the pieces a run is built of (He et al. 2016, Sec. 3.1 / Appendix).

One iteration: the global mini-batch (paper: 128) is split over the devices, each device computes the
softmax cross-entropy of its slice, the gradients are summed over the devices (and over workers by the
kvstore) and one SGD step with momentum 0.9 and weight decay 1e-4 is taken with
``rescale_grad = 1 / global_batch``, the average gradient of the global batch.
"""

import random

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..data.base import ArrayDataset
from .devices import split_batch
from .loss_scale import enable_loss_scaling, scale_losses


def seed_everything(seed):
    """Seed ``mx.random`` (all devices), NumPy and Python's ``random``."""
    mx.random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    random.seed(int(seed))


def derived_seed(*parts):
    """A seed that is a pure function of ``parts`` (e.g. seed, rank, epoch): what makes a resume repeatable."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def subset(dataset, count, spread=False):
    """``count`` samples of an in-memory dataset (same normalisation statistics): the first ones, or with
    ``spread`` evenly spaced ones (every ``len // count``-th), which represent a test set without bias from
    its order."""

    if count is None or count >= len(dataset):
        return dataset
    if not isinstance(dataset, ArrayDataset):
        raise ValueError(
            f"a subset of {getattr(dataset, 'name', 'this dataset')} is not supported "
            "(only in-memory datasets: fashion-mnist, cifar10, cifar100, synthetic)"
        )
    if count < 1:
        raise ValueError(f"a subset needs at least one image, got {count}")
    index = np.arange(count) * (len(dataset) // count) if spread else slice(0, count)
    return ArrayDataset(
        dataset.images[index],
        dataset.labels[index],
        dataset.num_classes,
        dataset.mean,
        dataset.std,
        dataset.name,
        dataset.split,
        classes=dataset.classes,
        default_augment=dataset.default_augment,
        pad=dataset.pad,
    )


def forward_backward(net, loss_fn, data, label, contexts, dtype="float32", prepare=None, trainer=None):
    """Forward and backward of one batch split over ``contexts``.

    ``net`` may be the recomputing wrapper of :func:`gluon_resnetv2.memory.recompute`.  Returns
    ``(loss_sum, errors, count)``: lists of per-device NDArrays (not read: no host synchronisation; add
    them to a :class:`DeviceSums`) and an int.  The gradients left in the parameters are the *sums* over
    the batch's images (the Trainer divides).  ``prepare``: the loader's (uint8 hand-over).  A ``trainer``
    with dynamic loss scaling (float16, :mod:`.loss_scale`) gets gradients of the scaled loss, which its
    ``step`` divides again; the returned losses are unscaled.
    """
    datas, labels = split_batch(data, label, contexts, prepare)
    with autograd.record():
        outputs = [net(x.astype(dtype, copy=False)) for x in datas]
        if dtype != "float32":
            outputs = [out.astype("float32") for out in outputs]
        losses = [loss_fn(out, y) for out, y in zip(outputs, labels)]
        scaled = scale_losses(losses, trainer)
    autograd.backward(scaled)
    if hasattr(net, "wait_for_gradients"):
        # Recomputation writes the parameter gradients from Python in MXNet's custom-operator thread: they
        # must have been issued before Trainer.step is.  This waits for each device's own backward only
        # (the one host synchronisation of a recomputing step), not for the whole engine queue.
        net.wait_for_gradients()
    loss_sum = [loss.sum() for loss in losses]
    # dense (smoothed / mixed) targets: the error counts against their largest component (.regularize)
    errors = [(out.argmax(axis=1) != (y.argmax(axis=1) if y.ndim == 2 else y)).sum() for out, y in zip(outputs, labels)]
    return loss_sum, errors, data.shape[0]


def make_trainer(params, config, kvstore=None):
    """The Gluon Trainer of a resolved config: MXNet's ``sgd`` or ``nag`` optimizer (``config.optimizer``)
    with its momentum and weight decay; float16 keeps fp32 master weights (``multi_precision``) and scales
    the loss dynamically (:mod:`.loss_scale`: an overflowing step is skipped, not applied)."""
    optimizer_params = {"learning_rate": config.lr, "momentum": config.momentum, "wd": config.wd}
    if config.dtype == "float16":
        optimizer_params["multi_precision"] = True
    trainer = gluon.Trainer(params, config.optimizer, optimizer_params, kvstore=kvstore, update_on_kvstore=False)
    if config.dtype == "float16":
        enable_loss_scaling(trainer)
    return trainer


def materialize(net, image_shape, ctx, dtype="float32"):
    """Finish the deferred initialisation of ``net`` for inputs of ``image_shape``, without a forward pass.

    A forward pass would do it too, but an inference-mode forward lets MXNet's oneDNN backend keep the
    convolution weights in its blocked layout, which a distributed kvstore cannot push (the weights are
    broadcast from rank 0 when training starts or resumes); it would also need BatchNorm care.
    """
    net.infer_shape(mx.nd.zeros((1,) + tuple(image_shape), ctx=ctx, dtype=dtype))
    for param in net.collect_params().values():
        if param._deferred_init:
            param._finish_deferred_init()


def _pairs(loss_parts, error_parts, ctx):
    """Each device's ``[loss sum, errors]`` as a float64 vector on ``ctx`` (asynchronous copies)."""
    for loss, errors in zip(loss_parts, error_parts):
        pair = mx.nd.concat(loss.reshape((1,)), errors.reshape((1,)).astype(loss.dtype), dim=0)
        yield pair.astype("float64").as_in_context(ctx)


class DeviceSums:
    """Running sums of the training loss and errors kept on one device, read only when a row is logged.

    Reading a value (``asscalar``) makes the host wait for every device: doing it after each step (2 reads
    per device) would stall the GPUs once per iteration.  The per-device sums are instead added, on
    ``ctx``, into a float64 vector, in the order (device, then iteration) and precision the host used to add
    them, so the logged numbers are those of per-step reads, bit for bit.  ``loss`` / ``errors`` start the
    sums (a resumed run's partial interval); ``count`` (images) is host-side.

    :meth:`add`, called once a step has been issued, waits for the *previous* step's forward pass (never the
    one just issued, so the devices always have queued work): without it Python would queue up to a whole
    log interval of steps, each holding its input batch in memory, and the measured step time would be
    the time to issue it, not to compute it.
    """

    def __init__(self, ctx, loss=0.0, errors=0.0, count=0):
        self.ctx = ctx
        self.value = mx.nd.array([loss, errors], ctx=ctx, dtype="float64")
        self.count = count
        self._previous = None

    def add(self, loss_parts, error_parts, count):
        step = None
        for pair in _pairs(loss_parts, error_parts, self.ctx):
            step = pair if step is None else step + pair
        self.value += step
        self.count += count
        if self._previous is not None:
            self._previous.wait_to_read()  # at most one step queued behind the one being computed
        self._previous = step

    def read(self):
        """``[loss sum, errors, images]`` (float64 NumPy): one host synchronisation."""
        loss, errors = self.value.asnumpy()
        return np.array([loss, errors, self.count], dtype=np.float64)

    def reset(self):
        self.value[:] = 0
        self.count = 0


def top5_misses(out, label):
    """How many rows of ``out`` (scores, one row per image) do not have ``label`` among their five highest
    scores: the top-5 error count of the paper's Table 5, as an NDArray on ``out``'s device."""
    top = mx.nd.topk(out, axis=1, k=min(5, out.shape[1]), ret_typ="indices")
    hits = (top == label.reshape((-1, 1)).astype(top.dtype)).sum()
    return out.shape[0] - hits


def evaluate(net, loader, contexts, loss_fn=None, dtype="float32", worker_sum=None, top5=False):
    """Mean softmax cross-entropy and error (fraction) of ``net`` over ``loader`` (inference mode); with
    ``top5``, ``(loss, error, top-5 error)``.

    Every device's forward pass of a batch is issued before any result is used, and the sums stay on the
    first device until the end: the values are read once per evaluation, the devices run side by side.
    Issuing a batch waits for the previous batch's results (the queue is at most two batches deep).
    Batches smaller than the number of devices (a last, uneven test batch) use fewer devices.  With
    ``worker_sum`` the sums are added over the workers (each evaluates its shard).
    """
    loss_fn = loss_fn or gluon.loss.SoftmaxCrossEntropyLoss()
    sums, top5_sum, count = None, None, 0.0
    for data, label in loader.iterate(start_batch=0, epoch=0):
        datas, labels = split_batch(data, label, contexts, getattr(loader, "prepare", None))
        outputs = [net(x.astype(dtype, copy=False)) for x in datas]
        if dtype != "float32":
            outputs = [out.astype("float32") for out in outputs]
        losses = [loss_fn(out, y).sum() for out, y in zip(outputs, labels)]
        errors = [(out.argmax(axis=1) != y).sum() for out, y in zip(outputs, labels)]
        previous = sums
        for pair in _pairs(losses, errors, contexts[0]):
            sums = pair if sums is None else sums + pair
        if previous is not None:
            previous.wait_to_read()
        if top5:  # the misses stay on the first device too, read at the end
            for misses in (top5_misses(out, y) for out, y in zip(outputs, labels)):
                misses = misses.astype("float64").as_in_context(contexts[0])
                top5_sum = misses if top5_sum is None else top5_sum + misses
        count += data.shape[0]
    loss_sum, errors = sums.asnumpy() if sums is not None else (0.0, 0.0)
    totals = np.array([loss_sum, errors, count])
    if top5:
        totals = np.append(totals, top5_sum.asscalar() if top5_sum is not None else 0.0)
    if worker_sum is not None:
        totals = worker_sum(totals)
    loss_sum, errors, count = totals[:3]
    if top5:
        return loss_sum / max(count, 1), errors / max(count, 1), totals[3] / max(count, 1)
    return loss_sum / max(count, 1), errors / max(count, 1)
