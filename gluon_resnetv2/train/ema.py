"""``--ema DECAY``: an exponential moving average of the weights, evaluated and saved beside them (issue 21).

Not in the paper (He et al. 2016 evaluate the trained weights, Sec. 3.1).  After every SGD step each
parameter's average becomes ``e <- decay * e + (1 - decay) * w``, starting from the initial weights; like
timm's ``ModelEmaV2`` every entry of the network's state is averaged, the BatchNorm running statistics
included (device 0's copy: before an evaluation they are averaged over the devices as usual, and the
checkpoint holds that average).  The average lives in float32 on the first device.

Each evaluation also measures the averaged weights (``ema_test_loss``, ``ema_test_error`` in ``log.csv``
and ``status.json``); the end of the run writes them to ``model-ema.params`` (the layout of
``model.params``); the checkpoint holds the average (``ema.params``), so a resumed run continues it
bit for bit.
"""

import contextlib
import os
import tempfile

import mxnet as mx

#: The log.csv columns of the averaged weights' evaluations.
EMA_COLUMNS = ("ema_test_loss", "ema_test_error")
#: The file of the averaged weights at the end of a run, and its name in checkpoint.zip.
EMA_MODEL_NAME = "model-ema.params"
EMA_CHECKPOINT_MEMBER = "ema.params"


class WeightEMA:
    """The moving average of every parameter of ``net`` (weights and running statistics)."""

    def __init__(self, net, decay):
        self.decay = float(decay)
        self.params = sorted(net.collect_params().items())
        self.shadow = [param.list_data()[0].astype("float32", copy=True) for _, param in self.params]

    def update(self):
        """One step of the average, after an SGD step (asynchronous: nothing is read back)."""
        for average, (_, param) in zip(self.shadow, self.params):
            average *= self.decay
            average += (1.0 - self.decay) * param.list_data()[0].astype("float32", copy=False)

    @contextlib.contextmanager
    def applied(self, net=None):
        """The averaged values in the network's parameters (every device) for the ``with`` block; the
        trained values back afterwards."""
        saved = [[copy.copy() for copy in param.list_data()] for _, param in self.params]
        try:
            for average, (_, param) in zip(self.shadow, self.params):
                for copy in param.list_data():
                    average.astype(copy.dtype, copy=False).copyto(copy)
            yield
        finally:
            for copies, (_, param) in zip(saved, self.params):
                for old, copy in zip(copies, param.list_data()):
                    old.copyto(copy)

    def state_bytes(self):
        """The average as ``mx.nd.save`` bytes (names: the parameters' full names)."""
        with tempfile.TemporaryDirectory(prefix="gluon-resnetv2-ema-") as tmp:
            path = os.path.join(tmp, "ema")
            mx.nd.save(path, {name: average for (name, _), average in zip(self.params, self.shadow)})
            with open(path, "rb") as handle:
                return handle.read()

    def load_bytes(self, data):
        """Restore the average from :meth:`state_bytes`' output."""
        with tempfile.TemporaryDirectory(prefix="gluon-resnetv2-ema-") as tmp:
            path = os.path.join(tmp, "ema")
            with open(path, "wb") as handle:
                handle.write(data)
            loaded = mx.nd.load(path)
        missing = [name for name, _ in self.params if name not in loaded]
        if missing:
            raise ValueError(f"the checkpoint's weight average lacks {', '.join(missing[:3])}")
        for average, (name, _) in zip(self.shadow, self.params):
            loaded[name].copyto(average)
