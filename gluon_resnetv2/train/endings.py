"""How a training run ends (:class:`RunEndings`, a part of :class:`~.loop.Run`): finished (the final status
and summary line), failed (the paper's divergence: a non-finite training loss), interrupted by a signal, or
stopped by an error; and a resumed run whose last checkpoint was already its end."""

import os

from ..fileio import read_json
from . import runlog
from .build import SYNTHETIC_NOTE
from .ema import EMA_COLUMNS
from .recipe import PAPER_FAIL_ERROR


class RunEndings:
    """The endings of :class:`~.loop.Run` (its status.json and summary line); uses the run's ``out``,
    ``config``, ``is_chief``, ``log_columns``, ``_say``, ``_evaluate`` and ``_save_model``."""

    def _record_interrupt(self, err, iteration):
        if self.is_chief:
            kept = "checkpoint written" if getattr(err, "checkpoint", False) else "last checkpoint kept"
            name = getattr(err, "signal_name", "SIGINT")
            runlog.write_status(
                self.out,
                "interrupted",
                iteration=iteration,
                signal=name,
                reason=f"interrupted by {name} at iteration {iteration} ({kept}); continue with --resume {self.out}",
            )

    def _record_error(self, err, iteration):
        if self.is_chief:
            text = str(err).strip()
            runlog.write_status(
                self.out,
                "error",
                iteration=iteration,
                reason=f"{type(err).__name__}: {text.splitlines()[-1] if text else ''}",
            )

    # -- endings ------------------------------------------------------------------------------------

    def _fail(self, log, iteration, epoch, lr, interval, elapsed, bar):
        if bar is not None:
            bar.close()
        train_loss, train_error = interval.means()
        reason = (
            f"training loss became {train_loss if train_loss is not None else 'nan'} at iteration "
            f"{iteration} (lr {lr:g}): the run diverged"
        )
        log.write(
            iteration=iteration,
            epoch=round(iteration / self.iterations_per_epoch, 6),
            lr=lr,
            train_loss=train_loss,
            train_error=train_error,
            time=round(elapsed, 3),
        )
        log.close()
        status = {"status": "failed", "reason": reason, "iteration": iteration}
        if self.is_chief:
            status = runlog.write_status(
                self.out, "failed", reason=reason, iteration=iteration, epoch=iteration / self.iterations_per_epoch
            )
        self._say(f"{self.config.model}: {reason}; logs kept in {self.out}")
        return status

    def _finish(self, log, iteration, last, elapsed, images, train_time):
        log.close()
        test_error = last.get("test_error")
        fields = dict(
            iteration=iteration,
            epoch=iteration / self.iterations_per_epoch,
            **self._data_fields(),
            test_error=test_error,
            test_loss=last.get("test_loss"),
            **self._top5_field(last),
            **{name: last.get(name) for name in EMA_COLUMNS if name in self.log_columns},
            train_loss=last.get("train_loss"),
            train_error=last.get("train_error"),
            paper_fail=bool(test_error is not None and test_error > PAPER_FAIL_ERROR),
            elapsed=elapsed,
            images_per_second=images / train_time if train_time else None,
        )
        status = dict(fields, status="finished")
        if self.is_chief:
            status = runlog.write_status(self.out, "finished", **fields)
        speed = f"{images / train_time:.0f} images/s" if train_time else "no training this session"
        data = SYNTHETIC_NOTE if self.config.dataset == "synthetic" else self.config.dataset
        resumed = (
            f", {iteration - self.start_iteration} this session after resuming at {self.start_iteration}"
            if self.start_iteration
            else ""
        )
        self._say(
            f"finished {self.config.model} on {data}: {iteration} iterations{resumed} in "
            f"{runlog.format_duration(elapsed)} ({speed}), test error {100 * test_error:.2f}% (loss "
            f"{last.get('test_loss'):.4f}){' -- paper fail (> 20%)' if fields['paper_fail'] else ''}; "
            f"wrote {self.out}"
        )
        return status

    def _finish_resumed_finished(self):
        """Resuming a run whose last checkpoint is its end: report it (every rank takes the same branch)."""
        status = read_json(os.path.join(self.out, runlog.STATUS_NAME)) or {}
        if status.get("status") == "finished":
            self._say(f"{self.out} already finished at iteration {status.get('iteration')}")
            return status
        # Training ended but the final status was lost (stopped right after the last checkpoint).
        test = self._evaluate(self.test_loader)
        self._save_model()
        fields = dict(
            iteration=self.total,
            epoch=self.total / self.iterations_per_epoch,
            **self._data_fields(),
            **test,
            paper_fail=bool(test["test_error"] > PAPER_FAIL_ERROR),
        )
        if self.is_chief:
            return runlog.write_status(self.out, "finished", **fields)
        return dict(fields, status="finished")

    def _top5_field(self, last):
        """status.json's ``test_top5_error`` (data sets of 100 classes or more: :data:`.runlog.TOP5_MIN_CLASSES`)."""
        return {runlog.TOP5_COLUMN: last.get(runlog.TOP5_COLUMN)} if runlog.TOP5_COLUMN in self.log_columns else {}
