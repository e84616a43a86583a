"""When a run logs, evaluates and checkpoints: pure functions of the iteration and the config.

A training-loss row every ``log_interval`` iterations (the paper's Figure 1 dashed lines), a test
evaluation every ``eval_interval`` iterations or every epoch (solid lines), a checkpoint every epoch,
every ``checkpoint_interval`` iterations and at the end; the final iteration does all three.
"""


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
