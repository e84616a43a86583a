"""Gradient aggregation: the ``--kvstore`` choices, their checks, and a small cross-worker sum.

Within one process the gradients of the devices are summed by a ``device`` (on the GPUs), ``local`` (on
the CPU) or ``nccl`` store.  ``device`` is the default, as it is Gluon's ``Trainer`` default and what
gluoncv's training scripts use on one machine: it sums on the GPUs (peer to peer where the GPUs allow),
while ``local`` copies every GPU's gradients to the host and back.  Gluon's ``Trainer`` makes one store
call per parameter array (six per basic pre-activation unit: two BatchNorm gammas and betas, two
convolution weights), and each ``nccl`` call is an NCCL group launch with a stream synchronisation, so
with ``nccl`` :func:`group_allreduce` sends :data:`AGGREGATION_SIZE` arrays per call, as MXNet's Module
API does for NCCL (``mxnet/model.py``, ``_update_params_on_kvstore_nccl``: the same
``MXNET_UPDATE_AGGREGATION_SIZE`` variable and default).

Across processes, ``dist_sync`` / ``dist_device_sync`` use MXNet's parameter
server (started by ``gluon-resnetv2 launch``): every worker pushes its gradients, the servers sum them
over all workers, every worker pulls the sum and applies the same SGD update, so all workers hold the same
weights.  Because the store *sums*, the update divides by the *global* batch
(``rescale_grad = 1 / global_batch``; :meth:`mxnet.gluon.Trainer.step` is called with the global batch).

The optimizer runs on the workers (``update_on_kvstore=False``): the learning rate can then change every
iteration and the optimizer state can be checkpointed, which a server-side optimizer does not allow.

``horovod`` and ``byteps`` are refused: in MXNet 1.9.1 they silently fall back to a local store when their
packages are missing, which would train N unsynchronised copies.
"""

import os

import mxnet as mx
import numpy as np

KVSTORES = ("device", "local", "nccl", "dist_sync", "dist_device_sync")
REFUSED = {
    "horovod": "MXNet 1.9.1 silently falls back to a local store when Horovod is not set up",
    "byteps": "MXNet 1.9.1 silently falls back to a local store when BytePS is not set up",
    "dist_async": "asynchronous SGD is not the paper's recipe and keeps the optimizer on the servers, "
    "which cannot be checkpointed",
    "dist_device_async": "asynchronous SGD is not the paper's recipe",
}
DMLC_VARS = ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER", "DMLC_NUM_WORKER")

#: Gradient arrays per ``nccl`` pushpull call (MXNet Module's ``MXNET_UPDATE_AGGREGATION_SIZE``, default 16).
AGGREGATION_ENV = "MXNET_UPDATE_AGGREGATION_SIZE"
AGGREGATION_SIZE = 16
#: The stores whose calls are grouped by :func:`group_allreduce`.
GROUPED_STORES = ("nccl",)

#: Key of :class:`WorkerSum` in the store; far above the Trainer's parameter keys 0..n-1.
SUM_KEY = 999983
#: First key of :class:`RunningStatsSync` (one key per statistic).
STATS_KEY = 1000003


def is_distributed(name):
    return name.startswith("dist")


def check_kvstore_name(name):
    """ValueError naming ``--kvstore`` unless ``name`` is one of :data:`KVSTORES` (checked with the other
    settings, before a run writes anything; :func:`check_kvstore` then checks it against the devices)."""
    if name in REFUSED:
        raise ValueError(
            f"--kvstore {name} is not supported: {REFUSED[name]}. Use one of {', '.join(KVSTORES)} "
            "(dist_sync across machines via `gluon-resnetv2 launch`)."
        )
    if name not in KVSTORES:
        raise ValueError(f"unknown --kvstore {name!r}: choose one of {', '.join(KVSTORES)}")


def check_kvstore(name, contexts):
    """ValueError / RuntimeError with a clear message unless ``name`` can work with ``contexts`` here."""
    check_kvstore_name(name)
    if name == "nccl" and any(ctx.device_type != "gpu" for ctx in contexts):
        raise ValueError("--kvstore nccl sums gradients between GPUs; with CPU contexts use device or local")
    if not is_distributed(name) and os.environ.get("DMLC_ROLE") == "worker":
        raise ValueError(
            f"this process was started by `gluon-resnetv2 launch` as a worker but --kvstore is {name}: "
            "add --kvstore dist_sync (or dist_device_sync) to the worker command, otherwise every "
            "worker trains its own copy"
        )
    if is_distributed(name):
        missing = [var for var in DMLC_VARS if not os.environ.get(var)]
        if missing:
            raise RuntimeError(
                f"--kvstore {name} needs the parameter-server environment ({', '.join(missing)} "
                "unset): start the run with `gluon-resnetv2 launch -n WORKERS -s SERVERS -- "
                "gluon-resnetv2 train ...`"
            )
        if os.environ.get("DMLC_ROLE") != "worker":
            raise RuntimeError(
                f"--kvstore {name}: this process has DMLC_ROLE={os.environ.get('DMLC_ROLE')}, only workers train"
            )


def create_kvstore(name, contexts):
    """``(store, rank, num_workers)``: a KVStore object for dist stores (this blocks until every worker and
    server has joined), else the name itself (the Trainer creates it), rank 0 and 1 worker."""
    check_kvstore(name, contexts)
    if not is_distributed(name):
        return name, 0, 1
    kv = mx.kv.create(name)
    return kv, kv.rank, kv.num_workers


def aggregation_size(env=None):
    """Arrays per grouped call: ``MXNET_UPDATE_AGGREGATION_SIZE`` (as MXNet's Module reads it) or 16."""
    text = (os.environ if env is None else env).get(AGGREGATION_ENV, str(AGGREGATION_SIZE))
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{AGGREGATION_ENV}={text!r}: expected a positive number of arrays per call, e.g. 16")
    return int(text)


def group_allreduce(trainer, size=None, stores=GROUPED_STORES):
    """Make ``trainer`` sum its dense gradients ``size`` arrays per ``pushpull`` call (default
    :func:`aggregation_size`) when its store is one of ``stores``; returns whether it did.

    Same sums as the Trainer's own per-array calls (the store sums each key over the devices either way);
    only the number of calls, each with its NCCL group launch and stream synchronisation, goes down: from
    one per parameter array to one per ``size``.
    """
    store = trainer._kvstore_params.get("kvstore")
    name = store if isinstance(store, str) else getattr(store, "type", "")
    if name not in stores or trainer._kvstore_params.get("update_on_kvstore"):
        return False
    size = aggregation_size() if size is None else int(size)
    per_array = trainer._allreduce_grads

    def allreduce():
        if not trainer._kvstore:
            return
        dense = [(i, p.list_grad()) for i, p in enumerate(trainer._params) if p.grad_req != "null"]
        if any(grads[0].stype != "default" for _, grads in dense):
            return per_array()  # sparse gradients: the Trainer's own push/pull
        for start in range(0, len(dense), size):
            chunk = dense[start : start + size]
            trainer._kvstore.pushpull([i for i, _ in chunk], [g for _, g in chunk], priority=-chunk[0][0])

    trainer._allreduce_grads = allreduce
    return True


def init_trainer_store(trainer, kv):
    """Put the Trainer's initial weights on the servers now, and wait until every worker has.

    MXNet 1.9.1's Trainer does this lazily at its first step, and rank 0 does not wait for its
    initial-weight pushes of CPU arrays before the barrier that follows: another worker's first gradient
    push could then reach a server first and be stored as the weights (seen as one worker ending with a
    different first layer, about one dist_sync start in eight).  ``waitall`` completes rank 0's pushes
    (server acknowledgements) before the barrier; called after the other ``kv.init`` s, whose pushes it
    completes too.
    """
    if kv is None or isinstance(kv, str):
        return
    trainer._init_kvstore()
    trainer._init_params()
    mx.nd.waitall()
    kv._barrier()


class WorkerSum:
    """Sum a small float vector over all workers through the store (identity without a dist store).

    Used for the training loss/error counts, so that rank 0 logs the global batch and every worker takes
    the same decision when the loss diverges.
    """

    def __init__(self, kv, size):
        self.kv = kv if (kv is not None and not isinstance(kv, str)) else None
        self.size = size
        if self.kv is not None:
            self.kv.init(SUM_KEY, mx.nd.zeros((size,)))
            self._out = mx.nd.zeros((size,))

    def __call__(self, values):
        """The sums of ``values`` (at most ``size`` numbers; shorter vectors are padded for the store)."""
        values = np.asarray(values, dtype=np.float64)
        if self.kv is None:
            return values
        padded = np.zeros(self.size)
        padded[: len(values)] = values
        self.kv.push(SUM_KEY, mx.nd.array(padded, dtype="float32"))
        self.kv.pull(SUM_KEY, out=self._out)
        return self._out.asnumpy().astype(np.float64)[: len(values)]


class RunningStatsSync:
    """Average the BatchNorm running statistics over all devices (and workers) in place.

    Each device normalises its own slice of the batch and keeps its own running mean and variance; called
    before every evaluation and checkpoint, this makes every copy equal to their average, so that the
    evaluation does not depend on which device sees which test image and a checkpoint (which stores one
    copy) restores the state exactly.  A no-op with one device and one worker.
    """

    SUFFIXES = ("running_mean", "running_var")

    def __init__(self, net, contexts, kv=None, num_workers=1):
        self.params = [p for name, p in sorted(net.collect_params().items()) if name.endswith(self.SUFFIXES)]
        self.kv = kv if (kv is not None and not isinstance(kv, str)) else None
        self.copies = len(contexts) * (num_workers if self.kv is not None else 1)
        self.keys = [STATS_KEY + i for i in range(len(self.params))]
        if self.kv is not None and self.params:
            self.kv.init(self.keys, [p.list_data()[0] for p in self.params])

    def __call__(self):
        if self.copies == 1 or not self.params:
            return
        if self.kv is not None:
            arrays = [p.list_data() for p in self.params]
            self.kv.push(self.keys, arrays)
            self.kv.pull(self.keys, out=arrays)
            for copies in arrays:
                for copy in copies:
                    copy /= self.copies
            return
        cpu = mx.cpu()
        for param in self.params:
            copies = param.list_data()
            mean = copies[0].copyto(cpu)
            for copy in copies[1:]:
                mean += copy.copyto(cpu)
            mean /= len(copies)
            for copy in copies:
                mean.copyto(copy)
