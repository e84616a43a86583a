"""The training loop (He et al. 2016, Sec. 3.1 / Appendix): :func:`train` a network with the paper's
recipe (SGD, momentum 0.9, weight decay 1e-4, the learning rate of :class:`~.recipe.LRSchedule` set every
iteration), :func:`resume` a stopped run.  What a run writes, its determinism, distributed runs and
BatchNorm: docs/guides/training.md.
"""

import dataclasses
import json
import math
import os
import sys
import time
import warnings
from typing import Any

import mxnet as mx
from tqdm import tqdm

from .. import cpu
from ..fileio import read_json
from . import checkpoint as ckpt
from . import runlog
from .build import MODEL_NAME, RunSetup  # noqa: F401  (MODEL_NAME: imported from loop)
from .ema import EMA_CHECKPOINT_MEMBER
from .endings import RunEndings
from .recipe import RESUME_OVERRIDES, TrainConfig
from .schedule import LogInterval, checkpoints_at, evaluates_at, logs_at
from .signals import Interrupted, StopRequest

# The names of .steps stay importable from here (demo, scripts and tests import them from loop).
from .steps import (  # noqa: F401
    DeviceSums,
    derived_seed,
    evaluate,
    forward_backward,
    make_trainer,
    materialize,
    seed_everything,
    subset,
)
from .tensorboard_log import BoardLog


class Run(RunEndings, RunSetup):
    """One training run: built from a config, or from a directory to resume (construction: :mod:`.build`)."""

    # -- the loop -----------------------------------------------------------------------------------

    def run(self):
        """Train to the end under an exclusive lock on the run directory; SIGINT/SIGTERM stop after the current
        iteration with a checkpoint (:class:`Interrupted`)."""
        os.makedirs(self.out, exist_ok=True)
        lock = runlog.lock_run_dir(self.out) if self.is_chief else None
        try:
            with StopRequest(immediate=self.distributed) as stop:
                return self._run(stop)
        finally:
            if lock is not None:
                lock.close()

    def _run(self, stop):
        pos, log_rows = self._restore()
        self.start_iteration = pos.iteration
        if pos.iteration >= self.total:
            return self._finish_resumed_finished()
        log = self._open_log(pos.iteration, log_rows)
        pos.start = time.time()
        try:
            failed = self._train(pos, log, stop)
        except KeyboardInterrupt as err:
            if pos.bar is not None:
                pos.bar.close()
            self._record_interrupt(err, pos.iteration)
            log.close()
            raise
        except Exception as err:
            self._record_error(err, pos.iteration)
            log.close()
            raise
        if failed is not None:
            return failed
        self._save_model()
        return self._finish(log, pos.iteration, pos.last, pos.elapsed(), pos.images, pos.train_time)

    def _restore(self):
        """``(position, log rows to keep)``: from the checkpoint when resuming, else the start."""
        if self.resume_state is None:
            return _Position(DeviceSums(self.contexts[0])), None
        state = ckpt.load_checkpoint(self.out, self.net, self.trainer, self.contexts)
        if self.ema is not None:
            self.ema.load_bytes(ckpt.read_checkpoint_member(self.out, EMA_CHECKPOINT_MEMBER))
        interval = LogInterval(*state["interval"])
        # The checkpoint holds the sums over all workers: rank 0 carries them on, the others start at zero.
        sums = DeviceSums(self.contexts[0], *(interval.state() if self.is_chief else ()))
        pos = _Position(sums, state["iteration"], state["epoch"], state["batch"], interval, state["elapsed"])
        mx.random.seed(derived_seed(self.config.seed, self.rank, 1, pos.iteration))
        return pos, state["log_rows"]

    def _open_log(self, iteration, log_rows):
        if not self.is_chief:
            return _NullLog()
        runlog.write_config(self.out, self.config)
        log = runlog.RunLog(self.out, keep_rows=log_rows, columns=self.log_columns)
        if self.config.tensorboard:
            log = BoardLog(log, self.out, resume_step=None if log_rows is None else iteration)
        runlog.write_status(
            self.out,
            "running",
            iteration=iteration,
            total_iterations=self.total,
            pid=os.getpid(),
            **self._data_fields(),
        )
        return log

    def _train(self, pos, log, stop):
        """The epochs from ``pos`` to the end; the status of a diverged run, else None."""
        while pos.iteration < self.total:
            if pos.batch == 0:
                mx.random.seed(derived_seed(self.config.seed, self.rank, 0, pos.epoch))
            self.train_loader.set_epoch(pos.epoch, pos.batch)
            epochs_total = math.ceil(self.total / self.iterations_per_epoch)
            pos.bar = _progress(
                self,
                pos.epoch,
                epochs_total,
                pos.batch,
                min(self.iterations_per_epoch, pos.batch + self.total - pos.iteration),
            )
            failed = self._train_epoch(pos, log, stop)
            if failed is not None:
                return failed
            if pos.bar is not None:
                pos.bar.close()
        return None

    def _train_epoch(self, pos, log, stop):
        """The rest of the current epoch (or of the run); the status of a diverged run, else None."""
        tick = time.time()
        for data, label in self.train_loader:
            lr = self._step(pos, data, label)
            now = time.time()
            pos.train_time += now - tick
            end_of_epoch = pos.batch == self.iterations_per_epoch
            final = pos.iteration == self.total
            # The loss sums are read (a host synchronisation) only where a row or a checkpoint needs them;
            # a diverged loss is caught there (at most --log-interval iterations late).
            read = (
                logs_at(self.config, pos.iteration, final)
                or checkpoints_at(self.config, pos.iteration, final, end_of_epoch)
                or stop.signum is not None
            )
            if read:
                self._read_sums(pos)
                pos.bar_loss = pos.interval.loss / max(pos.interval.count, 1)
            if pos.bar is not None:
                pos.bar.update(1)
                pos.bar.set_postfix(
                    # the mean loss of the last interval read: the sums between reads stay on the device
                    loss="-" if pos.bar_loss is None else f"{pos.bar_loss:.3f}",
                    lr=f"{lr:.4g}",
                    img_s=f"{pos.images / max(pos.train_time, 1e-9):.0f}",
                    refresh=False,
                )
            if read and not math.isfinite(pos.interval.loss):
                return self._fail(
                    log, pos.iteration, pos.epoch, lr, pos.interval, pos.elapsed0 + now - pos.start, pos.bar
                )
            self._record(pos, log, lr, final, end_of_epoch)
            if end_of_epoch:
                pos.epoch, pos.batch = pos.epoch + 1, 0
            self._checkpoint_or_stop(pos, log, stop, final, end_of_epoch)
            if final or end_of_epoch:
                break
            tick = time.time()
        return None

    def _step(self, pos, data, label):
        """One SGD step on one global batch, its loss and errors added on the device (not read); the lr."""
        cfg = self.config
        lr = self.schedule(pos.iteration)
        self.trainer.set_learning_rate(lr)
        loss_parts, error_parts, count = self.forward_backward(
            self.train_forward,
            self.train_loss_fn,
            data,
            label,
            self.contexts,
            self.input_dtype,
            self.batch_transform.wrap(pos.iteration, self.train_loader.prepare),  # smoothing, mixup (off: as is)
            trainer=self.trainer,
        )
        self.trainer.step(cfg.batch_size)
        if self.ema is not None:
            self.ema.update()
        pos.sums.add(loss_parts, error_parts, count)
        pos.iteration += 1
        pos.batch += 1
        pos.images += cfg.batch_size
        return lr

    def _read_sums(self, pos):
        """``pos.interval`` := the sums of the current log interval, over the workers (every rank reads at
        the same iterations: the schedule's, or a signal's in a single-process run)."""
        sums = pos.sums.read()
        if self.worker_sum is not None:
            sums = self.worker_sum(sums)
        pos.interval = LogInterval(*(float(v) for v in sums))

    def _record(self, pos, log, lr, final, end_of_epoch):
        """The log.csv row of this iteration, if it logs or evaluates (:mod:`.schedule`)."""
        cfg = self.config
        row = {}
        if logs_at(cfg, pos.iteration, final):
            train_loss, train_error = pos.interval.means()
            row.update(train_loss=train_loss, train_error=train_error)
            pos.interval = LogInterval()
            pos.sums.reset()
        if evaluates_at(cfg, pos.iteration, final, end_of_epoch):
            loader = self.test_loader if final or self.subset_loader is None else self.subset_loader
            if pos.bar is not None:  # the bar stands still while it evaluates: show that, and the count so far
                pos.bar.set_postfix_str(f"evaluating on the {'full ' if loader is self.test_loader else ''}test set")
                pos.bar.refresh()
            test = self._evaluate(loader)
            row.update(test)
            pos.last.update(test, test_iteration=pos.iteration)
        if row:
            log.write(
                iteration=pos.iteration,
                epoch=round(pos.iteration / self.iterations_per_epoch, 6),
                lr=lr,
                time=round(pos.elapsed(), 3),
                images_per_second=pos.images / pos.train_time if pos.train_time else None,
                **row,
            )
            if row.get("train_loss") is not None:
                pos.last.update(train_loss=row["train_loss"], train_error=row["train_error"])

    def _checkpoint_or_stop(self, pos, log, stop, final, end_of_epoch):
        """A scheduled checkpoint; after a signal, one anyway and :class:`Interrupted`."""
        saved = checkpoints_at(self.config, pos.iteration, final, end_of_epoch)
        if saved:
            self._checkpoint(pos.iteration, pos.epoch, pos.batch, pos.interval, pos.elapsed(), log)
        if stop.signum is not None and not final:
            if not saved:
                self._checkpoint(pos.iteration, pos.epoch, pos.batch, pos.interval, pos.elapsed(), log)
            raise Interrupted(stop.signum, pos.iteration, checkpoint=True)


class _Position:
    """Where the loop is, and what this session measured (for the status and the summary line)."""

    def __init__(self, sums, iteration=0, epoch=0, batch=0, interval=None, elapsed0=0.0):
        self.iteration, self.epoch, self.batch = iteration, epoch, batch
        self.sums = sums  # the loss/error sums of the current log interval, on the first device (DeviceSums)
        self.interval = interval if interval is not None else LogInterval()  # their value when last read
        self.elapsed0 = elapsed0  # training seconds of the sessions before this one
        self.start = time.time()
        self.images = 0
        self.train_time = 0.0
        self.last = {}
        self.bar = None
        self.bar_loss = None  # what the bar shows as the training loss

    def elapsed(self):
        return self.elapsed0 + time.time() - self.start


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

    return tqdm(
        total=total,
        initial=start_batch,
        desc=f"epoch {epoch + 1}/{epochs_total}",
        unit="it",
        leave=True,
        mininterval=1.0,
        file=sys.stderr,
        dynamic_ncols=True,
    )


# ------------------------------------------------------------------------------------------------- API


def train(config: TrainConfig | None = None, **settings: Any) -> dict:
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
        raise ValueError(
            f"{resolved.out} already holds a run (checkpoint.zip); continue it with --resume "
            f"{resolved.out} or choose another --out"
        )
    return Run(config).run()


def resume(out_dir: str, **overrides: Any) -> dict:
    """Continue the run in ``out_dir`` from its checkpoint; the log is truncated to the checkpoint.  A run
    that stopped before its first checkpoint starts over from its ``config.json`` (with a warning).

    ``overrides`` may change settings that do not alter the result, e.g. ``progress`` or ``num_workers``, and
    the devices (``cpus``, ``gpus``: checkpoints are device-neutral, any number and numbering of devices).

    Bit-identical to an uninterrupted run on CPU contexts with the same thread count, instruction set and
    device count.  Not on GPUs with MXNet's defaults (cuDNN autotuning, atomics, TF32): the run continues
    correctly but drifts at rounding level; ``MXNET_CUDNN_AUTOTUNE_DEFAULT=0 MXNET_ENFORCE_DETERMINISM=1
    NVIDIA_TF32_OVERRIDE=0`` remove those sources (untested on a GPU).  docs/guides/resume-determinism.md.
    """
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(f"cannot resume {out_dir}: no such directory")
    config_path = os.path.join(out_dir, runlog.CONFIG_NAME)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"cannot resume {out_dir}: {config_path} is missing (not a training run directory)")
    if not _has_run_fields(config_path):
        raise ValueError(
            f"cannot resume {out_dir}: {config_path} does not describe a training run (no model or dataset)"
        )
    try:  # a config.json edited into nonsense: name the file, not only the value
        config = TrainConfig.load(config_path)
        config.resolved()
    except (ValueError, TypeError) as err:
        raise ValueError(f"cannot resume {out_dir}: {config_path}: {err}") from None
    bad = set(overrides) - set(RESUME_OVERRIDES)
    if bad:
        raise ValueError(f"resume cannot change {', '.join(sorted(bad))}: the run continues with its config.json")
    config = dataclasses.replace(config, out=out_dir, **overrides)
    if not os.path.isfile(ckpt.checkpoint_path(out_dir)):
        # Stopped before its first checkpoint: nothing to lose by starting over with the same settings.
        warnings.warn(
            f"{out_dir} has no checkpoint yet (the run stopped before writing one); starting it over "
            f"from {config_path}",
            stacklevel=2,
        )
        return Run(config).run()
    state = ckpt.read_checkpoint_state(out_dir)
    _warn_if_threads_changed(config, config_path)
    return Run(config, resume_state=state).run()


def _warn_if_threads_changed(config, config_path):
    # MKL-DNN splits its loops, and so rounds, by the OpenMP thread count (docs/guides/training.md, "Determinism").
    recorded = (read_json(config_path) or {}).get("omp_threads")
    threads = cpu.in_use()["threads"]
    if not config.gpus and recorded and recorded != threads:
        warnings.warn(
            f"resuming {config.out} on {threads} OpenMP thread(s), but it was trained on {recorded}: the "
            "float rounding depends on the thread count, so the rest of the run will not be bit-identical "
            f"to an uninterrupted one (set OMP_NUM_THREADS={recorded} to keep it exact)",
            stacklevel=3,
        )


def _has_run_fields(config_path):
    with open(config_path, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except ValueError as err:
            raise ValueError(f"{config_path} is not valid JSON ({err}); a run's config.json is a JSON object") from None
    return isinstance(data, dict) and bool(data.get("model")) and bool(data.get("dataset"))
