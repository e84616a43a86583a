"""``--sync-bn``: every BatchNorm normalises over the batch of all devices of a worker (issue 21).

Each BatchNorm is ``mx.gluon.contrib.nn.SyncBatchNorm(num_devices=len(contexts))``: the mean and variance of
a training batch are those of the whole batch of the worker, not of each device's slice (the paper's 2 x 64
split on two GPUs normalised each half on its own, Sec. 3.1 / Appendix; :mod:`.build`).  Across workers
nothing is synchronised (MXNet's operator shares its statistics through host memory within one process).

SyncBatchNorm blocks until every device has reached the same layer (gluoncv: "implemented in a blocking
way").  In MXNet 1.9.1 the backward pass of one device, started from the Python thread that records the
batch, does not return before the other devices' backward passes have run, so the usual single-threaded
``autograd.backward([loss_0, loss_1])`` (:func:`~.steps.forward_backward`) deadlocks as soon as a layer
before a SyncBatchNorm needs a gradient (seen on CPU contexts: ``--cpus 2`` hangs in its first backward,
with the threaded engine at any ``MXNET_CPU_WORKER_NTHREADS`` and without bulk execution; the naive
engine hangs already in the forward pass).  As gluoncv's ``DataParallelModel`` / ``parallel_backward``
do, :func:`threaded_forward_backward` therefore runs each device's forward and backward in its own thread,
after :func:`warm_up` has built the hybridized graph from one thread and once every copy between the
devices has finished (both deadlocked otherwise, see the functions).
"""

import threading

import mxnet as mx
from mxnet import autograd

from .devices import split_batch
from .loss_scale import scale_losses


def sync_bn_kwargs(contexts, model_kwargs):
    """``model_kwargs`` with SyncBatchNorm over ``contexts`` as the norm layer (other norm kwargs kept)."""
    norm_kwargs = dict(model_kwargs.get("norm_kwargs") or {}, num_devices=len(contexts))
    return dict(model_kwargs, norm_layer=mx.gluon.contrib.nn.SyncBatchNorm, norm_kwargs=norm_kwargs)


def in_threads(function, items):
    """``[function(item) for item in items]``, each call in its own thread (one per device).  The first
    exception is raised as soon as it happens: the other threads may be waiting at a SyncBatchNorm for the
    failed one and would never return (they are daemon threads, left behind)."""
    results, errors = [None] * len(items), []
    done = threading.Semaphore(0)

    def run(index, item):
        try:
            results[index] = function(item)
        except Exception as err:  # noqa: BLE001 - handed back to the caller's thread
            errors.append(err)
        finally:
            done.release()

    threads = [threading.Thread(target=run, args=(i, item), daemon=True) for i, item in enumerate(items)]
    for thread in threads:
        thread.start()
    for _ in threads:
        done.acquire()
        if errors:
            raise errors[0]
    return results


def warm_up(net, image_shape, contexts, dtype="float32"):
    """One inference-mode forward pass per device from this thread: it builds the hybridized graph, which
    the device threads of :func:`threaded_forward_backward` would otherwise race to build at their first
    call (one of them fails, and the other then waits at its first SyncBatchNorm forever)."""
    for ctx in contexts:
        net(mx.nd.zeros((1,) + tuple(image_shape), ctx=ctx, dtype=dtype)).wait_to_read()


def threaded_forward_backward(net, loss_fn, data, label, contexts, dtype="float32", prepare=None, trainer=None):
    """:func:`~.steps.forward_backward` with each device's forward and backward pass in its own thread
    (SyncBatchNorm blocks until every device has reached it); the same results."""
    if len(contexts) > 1 and data.shape[0] < len(contexts):
        raise ValueError(f"--sync-bn needs at least one image per device, got a batch of {data.shape[0]}")
    datas, labels = split_batch(data, label, contexts, prepare)
    # Nothing may cross devices while a SyncBatchNorm waits: copies between the devices (this batch's, the
    # last update's, --ema's swaps) finish first; one queued behind a waiting SyncBatchNorm deadlocks.
    mx.nd.waitall()

    def step(pair):
        x, y = pair
        with autograd.record():
            out = net(x.astype(dtype, copy=False))
            if dtype != "float32":
                out = out.astype("float32")
            loss = loss_fn(out, y)
            scaled = scale_losses([loss], trainer)[0]
        scaled.backward()
        target = y.argmax(axis=1) if y.ndim == 2 else y
        return loss.sum(), (out.argmax(axis=1) != target).sum()

    results = in_threads(step, list(zip(datas, labels)))
    return [r[0] for r in results], [r[1] for r in results], data.shape[0]
