"""The learning-rate schedule, and when a run logs, evaluates and checkpoints: pure functions of the
iteration and the config.

A training-loss row every ``log_interval`` iterations (the paper's Figure 1 dashed lines), a test
evaluation every ``eval_interval`` iterations or every epoch (solid lines), a checkpoint every epoch,
every ``checkpoint_interval`` iterations and at the end; the final iteration does all three.
"""

import math

from . import modern

#: ``--lr-schedule`` choices.
SCHEDULES = ("step", "cosine", "constant")


def logs_at(config, iteration, final):
    """Whether ``iteration`` writes a training-loss row."""
    return iteration % config.log_interval == 0 or final


def evaluates_at(config, iteration, final, end_of_epoch):
    """Whether ``iteration`` evaluates on the test set (the final one on all of it)."""
    return (
        final
        or bool(config.eval_interval and iteration % config.eval_interval == 0)
        or (config.eval_interval is None and end_of_epoch)
    )


def checkpoints_at(config, iteration, final, end_of_epoch):
    """Whether ``iteration`` writes a checkpoint."""
    return end_of_epoch or final or bool(config.checkpoint_interval and iteration % config.checkpoint_interval == 0)


class LogInterval:
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


class LRSchedule:
    """Learning rate as a pure function of the iteration (0-based index of the update being made).

    ``kind``:
      - ``"step"``: ``lr * factor ** (number of milestones <= iteration)`` (paper: 0.1, /10 at 32k and 48k);
      - ``"cosine"``: ``lr * (1 + cos(pi * t)) / 2`` with ``t`` going from 0 after the warm-up to 1 at the
        end of the run;
      - ``"constant"``: ``lr``.

    ``warmup`` iterations at ``warmup_lr`` come first (paper: 0.01 for 400 iterations, then back to 0.1).
    ``linear_warmup`` iterations instead ramp linearly from 0 to ``lr``: ``lr * iteration / linear_warmup``
    (``--warmup-epochs``; gluoncv's ``LRScheduler(warmup_mode='linear')``, Goyal et al. 2017's gradual
    warm-up); the cosine then starts at its end, step milestones stay where they are.
    ``milestones`` are iteration numbers.
    """

    def __init__(
        self, kind, lr, total_iterations, milestones=(), factor=0.1, warmup=0, warmup_lr=0.01, linear_warmup=0
    ):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown lr schedule {kind!r}: choose one of {', '.join(SCHEDULES)}")
        self.kind = kind
        self.lr = float(lr)
        self.total = int(total_iterations)
        self.milestones = tuple(int(m) for m in milestones)
        self.factor = float(factor)
        self.warmup = int(warmup)
        self.warmup_lr = float(warmup_lr)
        self.linear_warmup = int(linear_warmup)

    def __call__(self, iteration):
        if iteration < self.warmup:
            return self.warmup_lr
        if iteration < self.linear_warmup:
            return self.lr * iteration / self.linear_warmup
        if self.kind == "step":
            return self.lr * self.factor ** sum(1 for m in self.milestones if iteration >= m)
        if self.kind == "cosine":
            start = max(self.warmup, self.linear_warmup)
            span = max(1, self.total - start)
            progress = min(1.0, (iteration - start) / span)
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr

    def __repr__(self):
        return (
            f"LRSchedule({self.kind!r}, lr={self.lr}, total={self.total}, milestones={self.milestones}, "
            f"factor={self.factor}, warmup={self.warmup}, warmup_lr={self.warmup_lr}, "
            f"linear_warmup={self.linear_warmup})"
        )


def total_iterations(config, iterations_per_epoch):
    """Run length in iterations of a resolved config."""
    if config.iterations is not None:
        return int(config.iterations)
    return max(1, int(round(config.epochs * iterations_per_epoch)))


def make_schedule(config, iterations_per_epoch):
    """The :class:`LRSchedule` of a resolved config.

    Milestones: ``config.lr_steps`` in the run's unit (epochs when the run is given in epochs, iterations
    otherwise), or the ``--recipe`` preset's or the paper recipe's fractions of the run (paper: 32k and 48k
    of 64k iterations; gluoncv: epochs 100 and 150 of 200).
    """
    from .recipe import recipe_for  # recipe imports this module

    total = total_iterations(config, iterations_per_epoch)
    if config.lr_steps is not None:
        per_unit = iterations_per_epoch if config.iterations is None else 1
        milestones = [int(round(step * per_unit)) for step in config.lr_steps]
        if milestones and milestones[-1] >= total:
            unit, length = ("iterations", total) if config.iterations is not None else ("epochs", config.epochs)
            raise ValueError(
                f"--lr-steps {','.join(f'{s:g}' for s in config.lr_steps)} reach beyond the run: "
                f"milestones must be below its {length:g} {unit}"
            )
    else:
        fractions = modern.schedule_fractions(config) or recipe_for(config.dataset).lr_step_fractions
        milestones = [int(round(f * total)) for f in fractions]
    return LRSchedule(
        config.lr_schedule,
        config.lr,
        total,
        milestones,
        config.lr_factor,
        config.warmup,
        config.warmup_lr,
        modern.warmup_iterations(config, iterations_per_epoch),
    )
