"""Worker processes for the loader: whole batches made in forked processes, handed back in shared memory.

The mechanism is gluon's ``DataLoader(num_workers=...)``: a ``fork`` pool whose workers keep the data set
(and each its own RecordIO reader: MXNet reopens the file in a new process), and NDArrays in ``cpu_shared``
memory pickled as file descriptors by the reducer ``mxnet.gluon.data.dataloader`` registers, so a batch
crosses the process boundary without a copy.  Not gluon's DataLoader itself: it fixes its batch sampler at
construction and collates per-sample items, while a batch here is a function of ``(seed, epoch, rank,
batch number)`` made whole by the data set's vectorised ``make_batch`` (:mod:`.loader`).
"""

import copy
import ctypes
import io
import multiprocessing
import pickle
import signal
from multiprocessing.reduction import ForkingPickler

import mxnet as mx
import numpy as np
from mxnet.gluon.data import dataloader as _gluon_dataloader  # noqa: F401  (registers the NDArray reducer)

from ..cpu import physical_cores

_SHARED = mx.Context("cpu_shared", 0)
#: Seconds a batch may take before the consumer gives up (a worker killed by the OOM killer loses its task).
TIMEOUT = 600

_loader = None  # the Loader, in each worker process
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def default_workers():
    """What the machine has: one worker per physical core this process may run on."""
    return physical_cores()


def _initialize(loader):
    global _loader
    _loader = loader
    # The parent's handlers (checkpoint on SIGTERM, stop on SIGINT) are the parent's business, and a worker
    # must not outlive a parent that was killed (a pool only ends its workers when closed).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux
        pass


def _single_threaded_opencv():
    """OpenCV without its own thread pool, set in the parent *before* forking: one core per worker (its
    threads would oversubscribe them), and a child must never touch a pool whose threads stayed in the
    parent -- ``cv2.setNumThreads`` called in such a child deadlocks."""
    try:
        import cv2
    except ImportError:
        return
    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)


def _work(raw, epoch, number, indices):
    data, label = _loader.make_batch(epoch, number, indices, raw=raw)
    batch = tuple(mx.nd.array(a, ctx=_SHARED, dtype=a.dtype) for a in (data, label))
    buffer = io.BytesIO()
    ForkingPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(batch)
    return buffer.getvalue()


class ProcessWorkers:
    """``num_workers`` processes forked now (before the caller builds a network or touches a GPU)."""

    def __init__(self, loader, num_workers):
        # SIGINT ignored while forking, as gluon does: Ctrl-C goes to the main process only.
        _single_threaded_opencv()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            # A copy: the pool (alive through its threads) must not keep the loader, whose __del__ ends it.
            self.pool = multiprocessing.get_context("fork").Pool(num_workers, _initialize, (copy.copy(loader),))
        finally:
            signal.signal(signal.SIGINT, previous)

    def submit(self, raw, epoch, number, indices):
        return _Pending(self.pool.apply_async(_work, (raw, epoch, number, np.asarray(indices))))

    def close(self):
        self.pool.terminate()
        self.pool.join()


class _Pending:
    def __init__(self, result):
        self._result = result

    def result(self):
        try:
            return pickle.loads(self._result.get(TIMEOUT))
        except multiprocessing.TimeoutError:
            raise RuntimeError(
                f"a loader worker process gave no batch in {TIMEOUT} s (killed, e.g. out of memory?); "
                f"retry with fewer --num-workers"
            ) from None

    def cancel(self):
        # A batch already made holds shared memory until it is received: receive it and let it go.
        if self._result.ready():
            try:
                self.result()
            except Exception:  # noqa: BLE001  (its error no longer matters)
                pass
