"""The training loop: :func:`train` a network with the paper's recipe, :func:`resume` a stopped run.

One iteration (He et al. 2016, Sec. 3.1 / Appendix): the global mini-batch (paper: 128) is split over the
devices, each device computes the softmax cross-entropy of its slice, the gradients are summed over the
devices (and over workers by the kvstore) and one SGD step with momentum 0.9 (or Nesterov momentum,
``--optimizer nag``) and weight decay 1e-4 is taken with ``rescale_grad = 1 / global_batch``, i.e. the
average gradient of the global batch.  The learning rate is set every iteration from
:class:`~.recipe.LRSchedule`.

What a run writes in ``out`` (see :mod:`.runlog`, :mod:`.checkpoint`):
``config.json``, ``log.csv``, ``status.json``, ``checkpoint.zip`` (every epoch, every
``checkpoint_interval`` iterations and at the end) and ``model.params`` (the final weights).

Determinism: with ``seed`` fixed a CPU run is repeatable.  The initial weights come from
``mx.random.seed(seed)``; the data are a pure function of ``(seed, epoch, rank)`` (the loader);
``mx.random`` (dropout shortcuts) is re-seeded from ``(seed, rank, epoch)`` at the start of every epoch
and from ``(seed, rank, iteration)`` after every checkpoint, and the Python/NumPy RNG states are saved in
the checkpoint.  A resumed run therefore writes the same ``log.csv`` as an uninterrupted one.

Distributed runs (``--kvstore dist_sync``, started by ``gluon-resnetv2 launch``): each worker reads its
shard ``(rank, num_workers)`` of every epoch with ``batch_size / num_workers`` images per iteration.
Training loss/error and the test evaluation (the test set is sharded too) are summed over the workers, so
the numbers describe the global batch and every worker takes the same decisions.  Only rank 0 writes
``log.csv``, ``config.json``, ``status.json`` and the checkpoints; every worker writes its final weights
to ``out/workers/rank<r>.params`` so that they can be compared.  Resuming reads rank 0's checkpoint on
every worker (a shared directory is needed across machines).

BatchNorm: each device normalises its own slice of the batch (as in the paper's 2 x 64 CIFAR training) and
keeps its own running statistics; before every evaluation and checkpoint they are averaged over all
devices and workers (:class:`~.kvstore.RunningStatsSync`), so the evaluation does not depend on how the
test batches are split and a checkpoint restores them exactly.
"""
import dataclasses
import json
import math
import os
import random
import signal
import sys
import threading
import time
import warnings

import numpy as np

from .._compat import import_mxnet
from . import checkpoint as ckpt
from . import runlog
from .devices import check_batch_split, make_contexts, preflight_gpus, split_batch
from .bf16 import bf16_forward, check_bf16
from .kvstore import RunningStatsSync, WorkerSum, create_kvstore, init_trainer_store, is_distributed
from ..memory import configure_from_env
from .recipe import PAPER_FAIL_ERROR, TrainConfig, make_schedule, total_iterations

mx = import_mxnet()
from mxnet import autograd, gluon  # noqa: E402

MODEL_NAME = "model.params"
SYNTHETIC_NOTE = "synthetic data (random images, not a real data set: the error says nothing about real images)"


def seed_everything(seed):
    """Seed ``mx.random`` (all devices), NumPy and Python's ``random``."""
    mx.random.seed(int(seed))
    np.random.seed(int(seed) % 2 ** 32)
    random.seed(int(seed))


def _derived_seed(*parts):
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def subset(dataset, count, spread=False):
    """``count`` samples of an in-memory dataset (same normalisation statistics): the first ones, or with
    ``spread`` evenly spaced ones (every ``len // count``-th), which represent a test set without bias from
    its order."""
    from ..data.base import ArrayDataset

    if count is None or count >= len(dataset):
        return dataset
    if not isinstance(dataset, ArrayDataset):
        raise ValueError(f"a subset of {getattr(dataset, 'name', 'this dataset')} is not supported "
                         "(only in-memory datasets: fashion-mnist, cifar10, cifar100, synthetic)")
    if count < 1:
        raise ValueError(f"a subset needs at least one image, got {count}")
    index = np.arange(count) * (len(dataset) // count) if spread else slice(0, count)
    return ArrayDataset(dataset.images[index], dataset.labels[index], dataset.num_classes, dataset.mean,
                        dataset.std, dataset.name, dataset.split, classes=dataset.classes,
                        default_augment=dataset.default_augment, pad=dataset.pad)


def forward_backward(net, loss_fn, data, label, contexts, dtype="float32"):
    """Forward and backward of one batch split over ``contexts``.

    ``net`` may be the recomputing wrapper of :func:`gluon_resnetv2.memory.recompute` (its ``backward``
    waits for the recomputed segments' gradients).  Returns ``(loss_sum, errors, count)`` as
    NDArrays/ints (per-device sums, not yet synchronised).  The gradients left in the parameters are the
    *sums* over the batch's images (the Trainer divides).
    """
    datas, labels = split_batch(data, label, contexts)
    with autograd.record():
        outputs = [net(x.astype(dtype, copy=False)) for x in datas]
        if dtype != "float32":
            outputs = [out.astype("float32") for out in outputs]
        losses = [loss_fn(out, y) for out, y in zip(outputs, labels)]
    autograd.backward(losses)
    if hasattr(net, "backward"):
        mx.nd.waitall()  # recomputation writes the gradients in MXNet's custom-operator thread
    loss_sum = [loss.sum() for loss in losses]
    errors = [(out.argmax(axis=1) != y).sum() for out, y in zip(outputs, labels)]
    return loss_sum, errors, data.shape[0]


def make_trainer(params, config, kvstore=None):
    """The Gluon Trainer of a resolved config: MXNet's ``sgd`` or ``nag`` optimizer (``config.optimizer``)
    with its momentum and weight decay; float16 keeps fp32 master weights (``multi_precision``)."""
    optimizer_params = {"learning_rate": config.lr, "momentum": config.momentum, "wd": config.wd}
    if config.dtype == "float16":
        optimizer_params["multi_precision"] = True
    return gluon.Trainer(params, config.optimizer, optimizer_params, kvstore=kvstore, update_on_kvstore=False)


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


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run; ``exit_code`` is the shell's ``128 + signal`` (130 / 143).

    A KeyboardInterrupt, so that Ctrl-C in Python still stops a caller; ``checkpoint`` says whether the
    run wrote one at ``iteration`` (a second signal stops at once, keeping the previous checkpoint).
    """

    def __init__(self, signum, iteration=None, checkpoint=False):
        self.signum, self.iteration, self.checkpoint = signum, iteration, checkpoint
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {self.signal_name}"
                         + (f" at iteration {iteration}" if iteration is not None else ""))


class _StopRequest:
    """SIGINT/SIGTERM handlers that ask the loop to stop after the current iteration; a second signal stops
    at once.  Only the main thread can install handlers; elsewhere the defaults stay."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, immediate=False):
        self.signum = None
        self.immediate = immediate  # distributed runs: the workers cannot agree on a common last iteration
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.immediate or self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False


def _total(values):
    return float(sum(v.asscalar() for v in values))


def evaluate(net, loader, contexts, loss_fn=None, dtype="float32", worker_sum=None):
    """Mean softmax cross-entropy and error (fraction) of ``net`` over ``loader`` (inference mode).

    Batches smaller than the number of devices (a last, uneven test batch) use fewer devices.  With
    ``worker_sum`` the sums are added over the workers (each evaluates its shard).
    """
    loss_fn = loss_fn or gluon.loss.SoftmaxCrossEntropyLoss()
    loss_sum = errors = count = 0.0
    for data, label in loader.iterate(start_batch=0, epoch=0):
        datas, labels = split_batch(data, label, contexts)
        for x, y in zip(datas, labels):
            out = net(x.astype(dtype, copy=False))
            if dtype != "float32":
                out = out.astype("float32")
            loss_sum += loss_fn(out, y).sum().asscalar()
            errors += (out.argmax(axis=1) != y).sum().asscalar()
        count += data.shape[0]
    totals = np.array([loss_sum, errors, count])
    if worker_sum is not None:
        totals = worker_sum(totals)
    loss_sum, errors, count = totals
    return loss_sum / max(count, 1), errors / max(count, 1)


class _Interval:
    """Sums of the training loss and errors since the last logged row."""

    def __init__(self, loss=0.0, errors=0.0, count=0.0):
        self.loss, self.errors, self.count = loss, errors, count

    def add(self, loss, errors, count):
        self.loss += loss
        self.errors += errors
        self.count += count

    def means(self):
        if not self.count:
            return None, None
        return self.loss / self.count, self.errors / self.count

    def state(self):
        return [self.loss, self.errors, self.count]


class Run:
    """One training run: built from a config, or from a directory to resume."""

    def __init__(self, config, resume_state=None):
        if not isinstance(config, TrainConfig):
            raise TypeError("train() takes a TrainConfig (gluon_resnetv2.train.TrainConfig)")
        self.config = cfg = config.resolved()
        self.out = cfg.out
        from ..nets.zoo import get_spec

        get_spec(cfg.model)  # an unknown name fails now, before any data is read
        self.contexts = make_contexts(cfg.cpus, cfg.gpus)
        if cfg.dtype == "float16" and any(ctx.device_type == "cpu" for ctx in self.contexts):
            raise ValueError("--dtype float16 needs GPUs (--gpus): MXNet's CPU kernels have no float16 "
                             "convolution/GEMM; train in float32 on the CPU")
        if cfg.dtype == "bfloat16":
            check_bf16(self.contexts)
        # bfloat16 (AMP) casts inside the graph: the network's input and parameters stay float32
        self.input_dtype = "float16" if cfg.dtype == "float16" else "float32"
        if cfg.gpus is not None:
            preflight_gpus(cfg.gpus)
        self.kv, self.rank, self.num_workers = create_kvstore(cfg.kvstore, self.contexts)
        self.distributed = is_distributed(cfg.kvstore)
        self.is_chief = self.rank == 0
        self.per_worker_batch = check_batch_split(cfg.batch_size, len(self.contexts), self.num_workers)
        self._build_data()
        self._build_net()
        self.schedule = make_schedule(cfg, self.iterations_per_epoch)
        self.total = total_iterations(cfg, self.iterations_per_epoch)
        self.resume_state = resume_state

    # -- construction -------------------------------------------------------------------------------

    def _build_data(self):
        from ..data import load_dataset, make_loader

        cfg = self.config
        options = dict(cfg.dataset_options or {})
        train_set = subset(load_dataset(cfg.dataset, data_dir=cfg.data_dir, split="train", **options),
                           cfg.train_subset)
        test_set = load_dataset(cfg.dataset, data_dir=cfg.data_dir, split="test", **options)
        self.num_classes = train_set.num_classes
        self.image_shape = tuple(train_set.image_shape)
        shard = (self.rank, self.num_workers) if self.num_workers > 1 else None
        if len(train_set) // self.num_workers < self.per_worker_batch:
            raise ValueError(f"--batch-size {cfg.batch_size} is larger than the {len(train_set)} training images "
                             f"of {cfg.dataset}" + (f" per {self.num_workers} workers" if self.num_workers > 1 else ""))
        self.train_loader = make_loader(train_set, self.per_worker_batch, train=True, augment=cfg.augment,
                                        seed=cfg.seed, num_workers=cfg.num_workers, shard=shard,
                                        last_batch="discard")
        eval_batch = max(self.per_worker_batch, len(self.contexts))
        self.test_loader = make_loader(test_set, eval_batch, train=False, seed=cfg.seed,
                                       num_workers=cfg.num_workers, shard=shard, last_batch="keep")
        self.subset_loader = None
        if cfg.eval_subset is not None and cfg.eval_subset > len(test_set):
            raise ValueError(f"--eval-subset {cfg.eval_subset} is larger than the {len(test_set)} test images of "
                             f"{cfg.dataset}: give 1..{len(test_set)}")
        if cfg.eval_subset is not None and cfg.eval_subset < len(test_set):
            small = subset(test_set, cfg.eval_subset, spread=True)
            if self.num_workers > len(small):
                raise ValueError(f"--eval-subset {cfg.eval_subset} is smaller than the number of workers")
            self.subset_loader = make_loader(small, eval_batch, train=False, seed=cfg.seed,
                                             num_workers=cfg.num_workers, shard=shard, last_batch="keep")
        self.iterations_per_epoch = len(self.train_loader)

    def _build_net(self):
        from .. import get_model

        cfg = self.config
        seed_everything(cfg.seed)
        kwargs = dict(cfg.model_kwargs or {})
        kwargs.setdefault("classes", self.num_classes)
        self.net = net = get_model(cfg.model, **kwargs)
        net.initialize(ctx=self.contexts)
        if cfg.dtype == "float16":
            net.cast(cfg.dtype)
        net.hybridize(static_alloc=True)
        materialize(net, self.image_shape, self.contexts[0], self.input_dtype)
        # GLUON_RESNETV2_MIRROR=1: recompute segments of units in the backward pass (memory at depth).
        self.train_forward = configure_from_env(net)
        self.eval_forward = net
        if cfg.dtype == "bfloat16":
            if self.train_forward is not net:
                raise ValueError("--dtype bfloat16 and GLUON_RESNETV2_MIRROR=1 (recomputation) cannot be combined")
            self.train_forward = self.eval_forward = bf16_forward(net)  # shares net's parameters
        self.trainer = make_trainer(net.collect_params(), cfg, self.kv)
        self.loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        self.worker_sum = WorkerSum(self.kv, 3) if self.distributed else None
        self.sync_stats = RunningStatsSync(net, self.contexts, self.kv if self.distributed else None,
                                           self.num_workers)
        init_trainer_store(self.trainer, self.kv if self.distributed else None)  # after every kv.init

    # -- helpers ------------------------------------------------------------------------------------

    def _evaluate(self, loader):
        self.sync_stats()
        return evaluate(self.eval_forward, loader, self.contexts, self.loss_fn, self.input_dtype, self.worker_sum)

    def _checkpoint(self, iteration, epoch, batch, interval, elapsed, log):
        self.sync_stats()
        if self.is_chief:
            log.sync()
            ckpt.save_checkpoint(self.out, self.net, self.trainer, {
                "iteration": iteration, "epoch": epoch, "batch": batch, "log_rows": log.rows,
                "interval": interval.state(), "elapsed": elapsed, "total": self.total})
            runlog.write_status(self.out, "running", iteration=iteration, epoch=iteration / self.iterations_per_epoch,
                                total_iterations=self.total, pid=os.getpid())
        mx.random.seed(_derived_seed(self.config.seed, self.rank, 1, iteration))

    def _save_model(self):
        data = ckpt._file_bytes(self.net.save_parameters)
        if self.is_chief:
            ckpt.atomic_write_bytes(os.path.join(self.out, MODEL_NAME), data)
        if self.distributed:
            workers = os.path.join(self.out, "workers")
            os.makedirs(workers, exist_ok=True)
            ckpt.atomic_write_bytes(os.path.join(workers, f"rank{self.rank}.params"), data)

    def _data_fields(self):
        """What status.json says of the data: its name, and for the synthetic set that it is not real."""
        if self.config.dataset == "synthetic":
            return {"dataset": "synthetic", "synthetic": True, "note": SYNTHETIC_NOTE}
        return {"dataset": self.config.dataset, "synthetic": False}

    def _say(self, text):
        if self.is_chief and self.config.progress:
            print(text, file=sys.stderr, flush=True)

    # -- the loop -----------------------------------------------------------------------------------

    def run(self):
        """Train to the end under an exclusive lock on the run directory; SIGINT/SIGTERM stop after the current
        iteration with a checkpoint (:class:`Interrupted`)."""
        os.makedirs(self.out, exist_ok=True)
        lock = runlog.lock_run_dir(self.out) if self.is_chief else None
        try:
            with _StopRequest(immediate=self.distributed) as stop:
                return self._run(stop)
        finally:
            if lock is not None:
                lock.close()

    def _run(self, stop):
        cfg = self.config
        state = self.resume_state
        if state is not None:
            state = ckpt.load_checkpoint(self.out, self.net, self.trainer, self.contexts)
            iteration, epoch, batch = state["iteration"], state["epoch"], state["batch"]
            interval = _Interval(*state["interval"])
            elapsed0 = state["elapsed"]
            mx.random.seed(_derived_seed(cfg.seed, self.rank, 1, iteration))
            log_rows = state["log_rows"]
        else:
            iteration, epoch, batch, interval, elapsed0, log_rows = 0, 0, 0, _Interval(), 0.0, None
        self.start_iteration = iteration
        if iteration >= self.total:
            return self._finish_resumed_finished()
        if self.is_chief:
            runlog.write_config(self.out, cfg)
            log = runlog.RunLog(self.out, keep_rows=log_rows)
            runlog.write_status(self.out, "running", iteration=iteration, total_iterations=self.total,
                                pid=os.getpid(), **self._data_fields())
        else:
            log = _NullLog()
        start = time.time()
        images = 0
        train_time = 0.0
        last = {}
        bar = None
        try:
            while iteration < self.total:
                if batch == 0:
                    mx.random.seed(_derived_seed(cfg.seed, self.rank, 0, epoch))
                self.train_loader.set_epoch(epoch, batch)
                epochs_total = math.ceil(self.total / self.iterations_per_epoch)
                bar = _progress(self, epoch, epochs_total, batch,
                                min(self.iterations_per_epoch, batch + self.total - iteration))
                tick = time.time()
                for data, label in self.train_loader:
                    lr = self.schedule(iteration)
                    self.trainer.set_learning_rate(lr)
                    loss_parts, error_parts, count = forward_backward(self.train_forward, self.loss_fn, data, label,
                                                                      self.contexts, self.input_dtype)
                    self.trainer.step(cfg.batch_size)
                    sums = np.array([_total(loss_parts), _total(error_parts), count], dtype=np.float64)
                    if self.worker_sum is not None:
                        sums = self.worker_sum(sums)
                    interval.add(*sums)
                    iteration += 1
                    batch += 1
                    images += cfg.batch_size
                    now = time.time()
                    train_time += now - tick
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{sums[0] / max(sums[2], 1):.3f}", lr=f"{lr:.4g}",
                                        img_s=f"{images / max(train_time, 1e-9):.0f}", refresh=False)
                    if not math.isfinite(sums[0]):
                        return self._fail(log, iteration, epoch, lr, interval, elapsed0 + now - start, bar)
                    end_of_epoch = batch == self.iterations_per_epoch
                    final = iteration == self.total
                    row = {}
                    if iteration % cfg.log_interval == 0 or final:
                        train_loss, train_error = interval.means()
                        row.update(train_loss=train_loss, train_error=train_error)
                        interval = _Interval()
                    if final or (cfg.eval_interval and iteration % cfg.eval_interval == 0) or \
                            (cfg.eval_interval is None and end_of_epoch):
                        loader = self.test_loader if final or self.subset_loader is None else self.subset_loader
                        test_loss, test_error = self._evaluate(loader)
                        row.update(test_loss=test_loss, test_error=test_error)
                        last.update(test_loss=test_loss, test_error=test_error, test_iteration=iteration)
                    if row:
                        log.write(iteration=iteration, epoch=round(iteration / self.iterations_per_epoch, 6),
                                  lr=lr, time=round(elapsed0 + time.time() - start, 3), **row)
                        if row.get("train_loss") is not None:
                            last.update(train_loss=row["train_loss"], train_error=row["train_error"])
                    if end_of_epoch:
                        epoch, batch = epoch + 1, 0
                    saved = end_of_epoch or final or bool(cfg.checkpoint_interval and
                                                          iteration % cfg.checkpoint_interval == 0)
                    if saved:
                        self._checkpoint(iteration, epoch, batch, interval, elapsed0 + time.time() - start, log)
                    if stop.signum is not None and not final:
                        if not saved:
                            self._checkpoint(iteration, epoch, batch, interval, elapsed0 + time.time() - start, log)
                        raise Interrupted(stop.signum, iteration, checkpoint=True)
                    if final or end_of_epoch:
                        break
                    tick = time.time()
                if bar is not None:
                    bar.close()
        except KeyboardInterrupt as err:
            if bar is not None:
                bar.close()
            if self.is_chief:
                kept = "checkpoint written" if getattr(err, "checkpoint", False) else "last checkpoint kept"
                name = getattr(err, "signal_name", "SIGINT")
                runlog.write_status(self.out, "interrupted", iteration=iteration, signal=name,
                                    reason=f"interrupted by {name} at iteration {iteration} ({kept}); continue with "
                                           f"--resume {self.out}")
            log.close()
            raise
        except Exception as err:
            if self.is_chief:
                runlog.write_status(self.out, "error", iteration=iteration,
                                    reason=f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}")
            log.close()
            raise
        self._save_model()
        return self._finish(log, iteration, last, elapsed0 + time.time() - start, images, train_time)

    # -- endings ------------------------------------------------------------------------------------

    def _fail(self, log, iteration, epoch, lr, interval, elapsed, bar):
        if bar is not None:
            bar.close()
        train_loss, train_error = interval.means()
        reason = (f"training loss became {train_loss if train_loss is not None else 'nan'} at iteration "
                  f"{iteration} (lr {lr:g}): the run diverged")
        log.write(iteration=iteration, epoch=round(iteration / self.iterations_per_epoch, 6), lr=lr,
                  train_loss=train_loss, train_error=train_error, time=round(elapsed, 3))
        log.close()
        status = {"status": "failed", "reason": reason, "iteration": iteration}
        if self.is_chief:
            status = runlog.write_status(self.out, "failed", reason=reason, iteration=iteration,
                                         epoch=iteration / self.iterations_per_epoch)
        self._say(f"{self.config.model}: {reason}; logs kept in {self.out}")
        return status

    def _finish(self, log, iteration, last, elapsed, images, train_time):
        log.close()
        test_error = last.get("test_error")
        fields = dict(iteration=iteration, epoch=iteration / self.iterations_per_epoch, **self._data_fields(),
                      test_error=test_error, test_loss=last.get("test_loss"),
                      train_loss=last.get("train_loss"), train_error=last.get("train_error"),
                      paper_fail=bool(test_error is not None and test_error > PAPER_FAIL_ERROR),
                      elapsed=elapsed, images_per_second=images / train_time if train_time else None)
        status = dict(fields, status="finished")
        if self.is_chief:
            status = runlog.write_status(self.out, "finished", **fields)
        speed = f"{images / train_time:.0f} images/s" if train_time else "no training this session"
        data = SYNTHETIC_NOTE if self.config.dataset == "synthetic" else self.config.dataset
        resumed = f", {iteration - self.start_iteration} this session after resuming at {self.start_iteration}" \
            if self.start_iteration else ""
        self._say(f"finished {self.config.model} on {data}: {iteration} iterations{resumed} in "
                  f"{_duration(elapsed)} ({speed}), test error {100 * test_error:.2f}% (loss "
                  f"{last.get('test_loss'):.4f}){' -- paper fail (> 20%)' if fields['paper_fail'] else ''}; "
                  f"wrote {self.out}")
        return status

    def _finish_resumed_finished(self):
        """Resuming a run whose last checkpoint is its end: report it (every rank takes the same branch)."""
        try:
            status = runlog.read_status(self.out)
        except (OSError, ValueError):
            status = {}
        if status.get("status") == "finished":
            self._say(f"{self.out} already finished at iteration {status.get('iteration')}")
            return status
        # Training ended but the final status was lost (stopped right after the last checkpoint).
        test_loss, test_error = self._evaluate(self.test_loader)
        self._save_model()
        fields = dict(iteration=self.total, epoch=self.total / self.iterations_per_epoch, **self._data_fields(),
                      test_error=test_error,
                      test_loss=test_loss, paper_fail=bool(test_error > PAPER_FAIL_ERROR))
        if self.is_chief:
            return runlog.write_status(self.out, "finished", **fields)
        return dict(fields, status="finished")


class _NullLog:
    rows = 0

    def write(self, **values):
        pass

    def sync(self):
        pass

    def close(self):
        pass


def _progress(run, epoch, epochs_total, start_batch, total):
    """A tqdm bar for one epoch (images/s, loss, lr) counting to ``total``, the batches of this epoch the
    run will make; None when progress is off or not rank 0."""
    if not (run.config.progress and run.is_chief):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start_batch, desc=f"epoch {epoch + 1}/{epochs_total}",
                unit="it", leave=True, mininterval=1.0, file=sys.stderr, dynamic_ncols=True)


def _duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


# ------------------------------------------------------------------------------------------------- API


def train(config=None, **settings):
    """Train and return the final status dict (as written to ``<out>/status.json``).

    ``config`` is a :class:`~.recipe.TrainConfig` (or a dict of its fields); keyword ``settings`` create
    one or override its fields: ``train(model="cifar_resnet110_v2", dataset="cifar10", out="runs/r110")``.
    Unset recipe fields take the paper's defaults for the dataset (Fashion-MNIST unless ``dataset`` is
    given).  Starts afresh in ``out`` (an existing checkpoint there is an error: use :func:`resume`).
    SIGINT/SIGTERM raise :class:`Interrupted` after a checkpoint.  A diverged run returns ``{"status": "failed",
    "reason": ..., "iteration": ...}`` rather than raising.
    """
    if config is None:
        config = TrainConfig(**settings)
    else:
        if isinstance(config, dict):
            config = TrainConfig.from_dict(config)
        if not isinstance(config, TrainConfig):
            raise TypeError("train() takes a TrainConfig (gluon_resnetv2.train.TrainConfig), a dict or keywords")
        if settings:
            config = dataclasses.replace(config, **settings)
    resolved = config.resolved()
    if os.path.isfile(ckpt.checkpoint_path(resolved.out)):
        raise ValueError(f"{resolved.out} already holds a run (checkpoint.zip); continue it with --resume "
                         f"{resolved.out} or choose another --out")
    return Run(config).run()


def resume(out_dir, **overrides):
    """Continue the run in ``out_dir`` from its checkpoint; the log is truncated to the checkpoint.  A run
    that stopped before its first checkpoint starts over from its ``config.json`` (with a warning).

    ``overrides`` may change settings that do not alter the result, e.g. ``progress`` or ``num_workers``.
    """
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"cannot resume {out_dir}: no such directory")
    config_path = os.path.join(out_dir, runlog.CONFIG_NAME)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"cannot resume {out_dir}: {config_path} is missing (not a training run directory)")
    if not _has_run_fields(config_path):
        raise ValueError(f"cannot resume {out_dir}: {config_path} does not describe a training run (no model or "
                         "dataset)")
    config = TrainConfig.load(config_path)
    allowed = {"progress", "num_workers", "cpus", "gpus", "kvstore", "data_dir"}
    bad = set(overrides) - allowed
    if bad:
        raise ValueError(f"resume cannot change {', '.join(sorted(bad))}: the run continues with its config.json")
    config = dataclasses.replace(config, out=out_dir, **overrides)
    if not os.path.isfile(ckpt.checkpoint_path(out_dir)):
        # Stopped before its first checkpoint: nothing to lose by starting over with the same settings.
        warnings.warn(f"{out_dir} has no checkpoint yet (the run stopped before writing one); starting it over "
                      f"from {config_path}", stacklevel=2)
        return Run(config).run()
    state = ckpt.read_checkpoint_state(out_dir)
    return Run(config, resume_state=state).run()


def _has_run_fields(config_path):
    with open(config_path, encoding="utf-8") as handle:
        data = json.load(handle)
    return isinstance(data, dict) and bool(data.get("model")) and bool(data.get("dataset"))

