"""Dynamic loss scaling for ``--dtype float16``: MXNet AMP's, without ``amp.init()``.

float16 gradients underflow below 6e-8 and overflow above 65504.  The loss is multiplied by a scale
``S`` before the backward pass (small gradients stay representable) and the update divides by it again
(``rescale_grad = 1 / (S * batch)``: with ``S`` a power of two the update is the unscaled one, bit for bit).
A step whose gradients hold an inf or NaN is *skipped* -- weights and momentum untouched -- and ``S`` is
halved; after ``growth_interval`` clean steps in a row ``S`` doubles (up to 2**24).  Without it a single
overflowing gradient would write inf into every weight through the momentum.

This is MXNet AMP's own machinery (:class:`mxnet.contrib.amp.loss_scaler.LossScaler`, checked by
:meth:`mxnet.gluon.Trainer.step`, the loss scaled as :func:`mxnet.contrib.amp.scale_loss` does).
``amp.init_trainer`` is not called because it requires ``amp.init()``, which patches MXNet's operator
namespaces for the whole process (see :mod:`.bf16`); the two attributes it sets are set here instead.

The overflow check reads one flag per step on the first device (a host synchronisation that float32 steps
do not have): the decision to update is taken in Python, before the update is issued.
"""

import mxnet as mx
from mxnet import autograd
from mxnet.contrib.amp.loss_scaler import LossScaler

#: MXNet AMP's defaults.
INITIAL_SCALE = 2.0**16
GROWTH_INTERVAL = 2000


class DynamicLossScaler(LossScaler):
    """AMP's loss scaler that also counts the skipped steps and can be saved and restored."""

    def __init__(self, initial_scale=INITIAL_SCALE, growth_interval=GROWTH_INTERVAL):
        super().__init__()
        self._loss_scale = self._next_loss_scale = float(initial_scale)
        self._scale_seq_len = int(growth_interval)
        self.skipped = 0
        self.last_overflow = False

    @property
    def loss_scale(self):
        # LossScaler scales the step after an overflow with the old scale once more (it moves the halved
        # scale into place only in the next check); the next step uses the new scale at once here.
        return self._next_loss_scale

    def has_overflow(self, params):
        """Whether the gradients (of the first device: summed over all by now) hold an inf or NaN; updates
        the scale.  LossScaler's check hands every gradient to one ``multi_all_finite``, which reads them all
        as the first one's dtype and fails on a float16 network's mix (BatchNorm keeps float32): grouped by
        dtype here."""
        with autograd.pause():
            grads = [p._grad[0] for p in params if p._grad is not None]
            finite = mx.nd.ones((1,), ctx=grads[0].context)
            for dtype in sorted({g.dtype for g in grads}, key=str):
                group = [g for g in grads if g.dtype == dtype]
                for start in range(0, len(group), 200):
                    chunk = group[start : start + 200]
                    mx.nd.multi_all_finite(*chunk, num_arrays=len(chunk), init_output=False, out=finite)
        overflow = not bool(finite.asscalar())
        self._loss_scale = self._next_loss_scale
        if overflow:
            self._next_loss_scale = self._loss_scale / 2.0
            self._unskipped = 0
        else:
            self._unskipped += 1
            if self._unskipped == self._scale_seq_len:
                self._unskipped = 0
                self._next_loss_scale = min(self._max_loss_scale, self._loss_scale * 2.0)
        self.last_overflow = overflow
        self.skipped += overflow
        return overflow

    def state(self):
        """JSON-ready state (what a resumed run needs to scale as an uninterrupted one)."""
        return {
            "scale": self._next_loss_scale,
            "unskipped": self._unskipped,
            "growth_interval": self._scale_seq_len,
            "skipped": self.skipped,
        }

    def set_state(self, state):
        self._loss_scale = self._next_loss_scale = float(state["scale"])
        self._unskipped = int(state["unskipped"])
        self._scale_seq_len = int(state["growth_interval"])
        self.skipped = int(state["skipped"])


def enable_loss_scaling(trainer, initial_scale=INITIAL_SCALE, growth_interval=GROWTH_INTERVAL):
    """Give ``trainer`` a :class:`DynamicLossScaler` (as ``amp.init_trainer`` does); returns it."""
    scaler = DynamicLossScaler(initial_scale, growth_interval)
    trainer._amp_loss_scaler = scaler
    trainer._amp_original_scale = trainer._scale
    return scaler


def loss_scaler(trainer):
    """The :class:`DynamicLossScaler` of ``trainer``, or None."""
    scaler = getattr(trainer, "_amp_loss_scaler", None) if trainer is not None else None
    return scaler if isinstance(scaler, DynamicLossScaler) else None


def scale_losses(losses, trainer):
    """``losses`` times the current scale, the trainer set to divide by it (``amp.scale_loss``); unchanged
    without a scaler."""
    scaler = loss_scaler(trainer)
    if scaler is None:
        return losses
    trainer._scale = trainer._amp_original_scale / scaler.loss_scale
    return [loss * scaler.loss_scale for loss in losses]
