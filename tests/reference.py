"""Hand-written NumPy references of the paper's formulas, independent of the Gluon code under test."""

import numpy as np

EPS = 1e-5  # Gluon BatchNorm's default epsilon


def conv2d(x, w, stride=1, bias=None):
    """NCHW convolution with 'same' padding k // 2 (cross-correlation, as every framework computes)."""
    k = w.shape[-1]
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    n, c, h, wd = x.shape
    oh, ow = (h + 2 * p - k) // stride + 1, (wd + 2 * p - k) // stride + 1
    out = np.zeros((n, w.shape[0], oh, ow), dtype=np.float64)
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    if bias is not None:
        out += bias[None, :, None, None]
    return out


def bn(x, gamma, beta, mean=None, var=None):
    """BatchNorm: with running statistics (inference) or, when they are None, batch statistics (training)."""
    if mean is None:
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    shape = (1, -1, 1, 1)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + EPS) * gamma.reshape(shape) + beta.reshape(shape)


def relu(x):
    return np.maximum(x, 0)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))
