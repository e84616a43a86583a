"""Sharded, deterministic, prefetching mini-batch loader.

What a batch contains is a pure function of ``(seed, epoch, rank, batch number)``:

* the order of an epoch is one permutation drawn from ``(seed, epoch)`` and shared by all ranks; rank
  ``r`` of ``p`` then takes its own slice of it, so that the shards of an epoch are disjoint and the
  ranks' batches ``k`` together form one global batch sampled exactly as a single machine would;
* each batch is augmented by its own generator seeded with ``(seed, epoch, rank, batch number)``.

Hence resuming at an epoch (``set_epoch``), or in the middle of one (``start_batch``), reproduces the
interrupted run exactly, without augmenting the skipped batches, and the results do not depend on the
number of workers nor on thread scheduling.

Batches are prepared by ``num_workers`` background workers (default: one per physical core) and handed
over in order through a bounded window of ``prefetch`` batches.  The data set says which kind:

* threads for the in-memory sets (:class:`~.base.ArrayDataset`): their batch is one vectorised numpy
  gather that releases the GIL, nothing has to cross a process boundary, and a CIFAR batch of 128 takes a
  few milliseconds against the half second a training step takes on this CPU;
* processes for ImageNet (``worker_type = 'process'``, :mod:`.workers`): decoding, resizing and cropping
  run per image in Python loops that would serialise threads on the GIL.

``hand_over='uint8'`` (what the trainer asks for) stops the workers at the uint8 crops of a data set that
has ``make_raw_batch`` (ImageNet): colour jitter and normalisation then run on the training device through
:attr:`Loader.prepare` (:mod:`.device`), with 4x less to copy, and nothing is converted on the main
thread; ``pin_memory`` puts those batches in page-locked memory for a fast copy to a GPU.  The default,
``'float32'``, yields normalised float32 batches as before.  ``scripts/bench_input.py`` measures it all.
Breaking out of a loop (or dropping the iterator) cancels what is queued; :meth:`Loader.close` (or
garbage collection) ends worker processes.
"""

import collections
import math
from concurrent.futures import ThreadPoolExecutor

import mxnet as mx
import numpy as np

from .device import DeviceInput
from .workers import ProcessWorkers, default_workers

LAST_BATCH = ("discard", "keep", "rollover")
HAND_OVER = ("float32", "uint8")
WORKER_TYPES = ("thread", "process")
_SHUFFLE, _AUGMENT = 0, 1  # spawn-key tags: keep the two random streams independent


class Loader:
    """Iterate over ``dataset`` in mini-batches of NDArrays.

    Parameters
    ----------
    dataset : ArrayDataset or RecordDataset
        Anything with ``len``, ``make_batch(indices, augment, rng)`` and ``default_augment``.
    batch_size : int
        Per rank.
    train : bool
        Training loaders shuffle every epoch, augment (if ``augment`` allows) and by default discard the
        last incomplete batch.  Test loaders (``train=False``) keep the dataset order, never augment
        unless ``augment=True`` is explicit, and keep the last, smaller batch.
    augment : bool or None
        None: the dataset's ``default_augment`` for training loaders, off for test loaders.
    seed : int
    num_workers : int or None
        Background workers preparing batches (None: one per physical core, :func:`.workers.default_workers`);
        0 prepares them in the consuming thread.
    shard : (rank, num_parts) or None
        Training: every rank gets ``len(dataset) // num_parts`` samples of each epoch (disjoint, equal
        sizes; the few left over change every epoch with the shuffle).  Testing: the dataset is split into
        ``num_parts`` contiguous, disjoint parts covering every sample once (sizes differ by at most one),
        because an evaluation must see each test image exactly once.
    last_batch : {'discard', 'keep', 'rollover'} or None
        None: 'discard' for training, 'keep' for testing.  'rollover' carries the samples that do not
        fill a batch at the end of an epoch over to the start of the next one (the epochs then form one
        stream cut into batches, and ``len`` depends on the epoch).
    prefetch : int or None
        Batches prepared ahead (default ``2 * num_workers``); bounds the memory held.
    hand_over : {'float32', 'uint8'}
        'uint8': batches of a data set with ``make_raw_batch`` come as uint8 NHWC crops (labels possibly
        with colour draws) that :attr:`prepare` turns into the float32 input on the device; other data
        sets ignore it (``prepare`` is then None).  'float32': normalised float32 NCHW.
    pin_memory : bool
        Copy uint8 hand-overs into page-locked memory (``mx.cpu_pinned()``; needs a CUDA build of MXNet).
    worker_type : {'thread', 'process'} or None
        None: the data set's ``worker_type`` attribute, else threads.
    """

    def __init__(
        self,
        dataset,
        batch_size,
        train=True,
        augment=None,
        seed=0,
        num_workers=None,
        shard=None,
        last_batch=None,
        prefetch=None,
        hand_over="float32",
        pin_memory=False,
        worker_type=None,
    ):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.train = bool(train)
        self.shuffle = self.train
        self.augment = bool(dataset.default_augment if augment is None and self.train else augment)
        self.seed = int(seed)
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.num_workers = default_workers() if num_workers is None else int(num_workers)
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if hand_over not in HAND_OVER:
            raise ValueError(f"hand_over must be one of {HAND_OVER}, got {hand_over!r}")
        self.worker_type = worker_type or getattr(dataset, "worker_type", "thread")
        if self.worker_type not in WORKER_TYPES:
            raise ValueError(f"worker_type must be one of {WORKER_TYPES}, got {worker_type!r}")
        self.raw = hand_over == "uint8" and hasattr(dataset, "make_raw_batch")
        #: ``prepare(data, label)`` -> the network's float32 input and the class labels, on data's device
        #: (None: the batches are ready as they come).
        self.prepare = None
        if self.raw:
            self.prepare = DeviceInput(
                dataset.mean, dataset.std, getattr(dataset, "color_jitter", 0), getattr(dataset, "lighting", 0)
            )
        self.pin_memory = bool(pin_memory)
        self._processes = None
        self.prefetch = max(1, int(prefetch) if prefetch is not None else 2 * self.num_workers)
        rank, parts = shard if shard is not None else (0, 1)
        if not 0 <= rank < parts:
            raise ValueError(f"shard {shard}: need 0 <= rank < num_parts")
        self.rank, self.num_parts = int(rank), int(parts)
        self.last_batch = last_batch if last_batch is not None else ("discard" if self.train else "keep")
        if self.last_batch not in LAST_BATCH:
            raise ValueError(f"last_batch must be one of {LAST_BATCH}, got {last_batch!r}")
        total = len(dataset)
        if self.train:
            self.num_samples = total // self.num_parts
        else:
            self.num_samples = len(np.array_split(np.arange(total), self.num_parts)[self.rank])
        if self.num_samples == 0:
            raise ValueError(f"{total} samples cannot be split into {self.num_parts} non-empty shards")
        if self.last_batch == "discard" and self.num_samples < self.batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} exceeds the {self.num_samples} samples of "
                f"{'this shard' if self.num_parts > 1 else 'the dataset'}: with "
                f"last_batch='discard' an epoch would be empty; use a smaller batch or "
                f"last_batch='keep'"
            )
        self.epoch = 0
        self.start_batch = 0
        if self.worker_type == "process" and self.num_workers > 0:
            # Forked now, while the process is small and before a network or a GPU exists.
            self._processes = ProcessWorkers(self, self.num_workers)

    def close(self):
        """End the worker processes (if any); iterating afterwards prepares batches in the consumer."""
        if self._processes is not None:
            self._processes.close()
            self._processes = None
            self.num_workers = 0

    def __del__(self):
        processes = getattr(self, "_processes", None)
        if processes is not None:
            processes.close()

    def __getstate__(self):
        # A worker process gets the loader by fork; nothing pickles it with its pool.
        state = dict(self.__dict__)
        state["_processes"] = None
        return state

    # -- what an epoch contains ---------------------------------------------------------------------

    def set_epoch(self, epoch, start_batch=0):
        """Make the next iteration epoch ``epoch``, starting at its batch ``start_batch``."""
        if epoch < 0 or start_batch < 0:
            raise ValueError(f"epoch and start_batch must be >= 0, got {epoch}, {start_batch}")
        self.epoch = int(epoch)
        self.start_batch = int(start_batch)

    def shard_order(self, epoch):
        """This rank's sample indices for ``epoch``, in visiting order (before batching)."""
        total = len(self.dataset)
        if not self.shuffle:
            return np.array_split(np.arange(total), self.num_parts)[self.rank]
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(_SHUFFLE, epoch)))
        order = rng.permutation(total)
        return order[self.rank * self.num_samples : (self.rank + 1) * self.num_samples]

    def _batch_range(self, epoch):
        """Global batch numbers ``[first, stop)`` of ``epoch`` in rollover's stream of epochs."""
        per_epoch = self.num_samples
        return (epoch * per_epoch) // self.batch_size, ((epoch + 1) * per_epoch) // self.batch_size

    def num_batches(self, epoch=None):
        """Batches in ``epoch`` (default: the current one), ``start_batch`` not subtracted."""
        epoch = self.epoch if epoch is None else epoch
        if self.last_batch == "discard":
            return self.num_samples // self.batch_size
        if self.last_batch == "keep":
            return math.ceil(self.num_samples / self.batch_size)
        first, stop = self._batch_range(epoch)
        return stop - first

    def __len__(self):
        return self.num_batches()

    def batch_indices(self, epoch=None):
        """List of the index arrays of every batch of ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        size = self.batch_size
        if self.last_batch != "rollover":
            order = self.shard_order(epoch)
            return [order[k * size : (k + 1) * size] for k in range(self.num_batches(epoch))]
        first, stop = self._batch_range(epoch)
        if stop == first:
            return []
        # Batch k covers positions [k * size, (k + 1) * size) of the stream of all epochs' orders; the
        # first one may begin in earlier epochs (the rolled-over samples).
        start, end = first * size, stop * size
        per_epoch = self.num_samples
        pieces = [
            self.shard_order(e)[max(start - e * per_epoch, 0) : end - e * per_epoch]
            for e in range(start // per_epoch, (end - 1) // per_epoch + 1)
        ]
        stream = np.concatenate(pieces)
        return [stream[k * size : (k + 1) * size] for k in range(stop - first)]

    def batch_rng(self, epoch, batch):
        """The generator that augments batch ``batch`` of ``epoch`` on this rank."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(_AUGMENT, epoch, self.rank, batch)))

    def make_batch(self, epoch, batch, indices, raw=None):
        """numpy ``(data, label)`` of one batch (runs in a worker); ``raw``: the uint8 hand-over
        (default: as ``hand_over`` asked)."""
        rng = self.batch_rng(epoch, batch) if self.augment else None
        if self.raw if raw is None else raw:
            return self.dataset.make_raw_batch(indices, self.augment, rng)
        return self.dataset.make_batch(indices, self.augment, rng)

    # -- iteration ----------------------------------------------------------------------------------

    def iterate(self, start_batch=None, epoch=None):
        """Yield ``(data, label)`` NDArrays of ``epoch`` (default: the current one) from batch
        ``start_batch`` (default: the one ``set_epoch`` gave) on.

        Skipped batches cost nothing: their indices are sliced away before any augmentation.
        """
        # Resolved now, not at the first next(): a later set_epoch does not change this iterator.
        epoch = self.epoch if epoch is None else int(epoch)
        start_batch = self.start_batch if start_batch is None else int(start_batch)
        return self._generate(epoch, list(enumerate(self.batch_indices(epoch)))[start_batch:])

    def _generate(self, epoch, jobs):
        cpu = mx.cpu()
        pinned = mx.cpu_pinned(0) if self.pin_memory else None

        def to_nd(batch):
            data, label = batch
            if not isinstance(data, mx.nd.NDArray):  # threads: numpy; processes: NDArrays in shared memory
                data = mx.nd.array(data, ctx=cpu, dtype=data.dtype if self.raw else np.float32)
                label = mx.nd.array(label, ctx=cpu, dtype=np.float32)
            if pinned is not None and self.raw:
                data, label = data.as_in_context(pinned), label.as_in_context(pinned)
            return data, label

        if self.num_workers == 0:
            for number, indices in jobs:
                yield to_nd(self.make_batch(epoch, number, indices))
            return
        if self._processes is not None:
            pool, submit = None, self._processes.submit
        else:
            pool = ThreadPoolExecutor(self.num_workers, thread_name_prefix="gluon_resnetv2-loader")

            def submit(raw, epoch, number, indices):
                return pool.submit(self.make_batch, epoch, number, indices, raw)

        pending = collections.deque()
        todo = iter(jobs)
        try:
            for number, indices in todo:
                pending.append(submit(self.raw, epoch, number, indices))
                if len(pending) >= self.prefetch:
                    break
            while pending:
                batch = pending.popleft().result()
                job = next(todo, None)
                if job is not None:
                    pending.append(submit(self.raw, epoch, *job))
                yield to_nd(batch)
        finally:
            # Runs on exhaustion, on break (generator close) and on errors: nothing is left running.
            for future in pending:
                future.cancel()
            if pool is not None:
                pool.shutdown(wait=True)

    def __iter__(self):
        """Iterate over the current epoch; a pass run to its end advances to the next epoch (so a loop
        that never calls ``set_epoch`` still gets a new shuffle each time), ``set_epoch`` overrides."""
        epoch = self.epoch
        yield from self.iterate()
        if self.epoch == epoch:
            self.epoch, self.start_batch = epoch + 1, 0

    def __repr__(self):
        return (
            f"Loader({self.dataset!r}, batch_size={self.batch_size}, train={self.train}, "
            f"augment={self.augment}, shard=({self.rank}, {self.num_parts}), "
            f"last_batch={self.last_batch!r}, num_workers={self.num_workers} ({self.worker_type}s), "
            f"hand_over={'uint8' if self.raw else 'float32'!r})"
        )


def make_loader(dataset, batch_size=128, train=True, augment=None, seed=0, num_workers=None, shard=None, **options):
    """A :class:`Loader` over ``dataset``; see there for the parameters (``options``: ``last_batch``,
    ``prefetch``, ``hand_over``, ``pin_memory``, ``worker_type``)."""
    return Loader(
        dataset, batch_size, train=train, augment=augment, seed=seed, num_workers=num_workers, shard=shard, **options
    )
