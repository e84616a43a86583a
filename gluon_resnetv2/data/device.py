"""The last steps of the ImageNet input, on the device that trains: colour augmentation and normalisation of
a uint8 batch.

With ``make_loader(..., hand_over='uint8')`` the workers stop at the decoded, cropped and flipped uint8
NHWC images (4x less to copy to a GPU than float32, and no float work on the host); the training loop
calls the loader's ``prepare`` (a :class:`DeviceInput`) on each device's slice after the copy.  The
arithmetic is that of the numpy path (:func:`.augment.apply_color`, :func:`.augment.normalize`): fb.resnet.torch's
colour jitter and PCA lighting (He et al. 2016, Sec. 3.4, the ResNet-200 recipe the paper points to), then the
per-channel ``(x - mean) / std`` -- the normalisation alone is bit-identical to numpy's (one float32
subtraction and one multiplication per value); the jitter's grey levels are sums whose order differs, so
jittered batches agree to float32 rounding (tests/test_input_pipeline.py).
"""

import mxnet as mx
import numpy as np

from . import augment as _augment


class DeviceInput:
    """``prepare(data, label) -> (float32 NCHW, class labels)`` on ``data``'s own device.

    ``data``: uint8 ``(n, H, W, C)``; ``label``: float32 ``(n,)``, or ``(n, 10)`` with the colour draws of
    :meth:`.imagenet.RecordDataset.make_raw_batch` after the class.
    """

    def __init__(self, mean, std, jitter=0.0, lighting=0.0):
        self.mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        # The numpy path multiplies by the float32 reciprocal: the same constant keeps the results equal.
        self.scale = (1.0 / np.asarray(std, np.float32)).reshape(1, -1, 1, 1)
        self.jitter, self.lighting = float(jitter), float(lighting)
        self._constants = {}

    def _on(self, ctx):
        if ctx not in self._constants:
            self._constants[ctx] = (
                mx.nd.array(self.mean, ctx=ctx, dtype=np.float32),
                mx.nd.array(self.scale, ctx=ctx, dtype=np.float32),
                mx.nd.array(_augment.LUMA.reshape(1, 1, 1, 3), ctx=ctx, dtype=np.float32),
            )
        return self._constants[ctx]

    def __call__(self, data, label):
        mean, scale, luma = self._on(data.context)
        x = data.astype(np.float32)
        if label.ndim == 2:
            x = self.color(x, label[:, 1:], luma)
            label = label[:, 0]
        x = mx.nd.transpose(x, axes=(0, 3, 1, 2))
        return mx.nd.broadcast_mul(mx.nd.broadcast_sub(x, mean), scale), label

    def color(self, x, draws, luma):
        """:func:`.augment.apply_color` on a float32 NHWC NDArray, the whole batch at once.

        Each image applies its three jitter operations in its own order: step ``k`` applies all three
        with factor 1 (an exact identity: ``x * 1`` and ``x * 1 + 0 * grey``) except the one the image
        drew for that step.
        """
        n = x.shape[0]
        orders, factors, shifts = draws[:, 0:3], draws[:, 3:6], draws[:, 6:9]
        if self.jitter:
            ones = mx.nd.ones((n,), ctx=x.context)
            for step in range(3):
                for op in range(3):
                    a = mx.nd.where(orders[:, step] == op, factors[:, op], ones).reshape((n, 1, 1, 1))
                    if op == 0:  # brightness
                        x = mx.nd.broadcast_mul(x, a)
                        continue
                    grey = mx.nd.sum(mx.nd.broadcast_mul(x, luma), axis=3, keepdims=True)
                    if op == 1:  # contrast: towards the image's mean grey
                        grey = mx.nd.mean(grey, axis=(1, 2), keepdims=True)
                    x = mx.nd.broadcast_add(mx.nd.broadcast_mul(x, a), mx.nd.broadcast_mul(1.0 - a, grey))
        if self.lighting:
            x = mx.nd.broadcast_add(x, shifts.reshape((n, 1, 1, 3)))
        return x
