"""The paper's CIFAR augmentation and normalisation, batched and vectorised in numpy.

He et al. (2016, Identity Mappings in Deep Residual Networks, Sec. 4, following the CIFAR recipe of
Deep Residual Learning, Sec. 4.2): "4 pixels are padded on each side, and a 32x32 crop is randomly
sampled from the padded image or its horizontal flip", with per-channel normalisation of the input.

Padding is zero *in the normalised input*, i.e. the per-channel mean colour in pixel space.  That is
what the authors' Torch code does (fb.resnet.torch, on which their ResNet-1001 code builds, normalises
first and pads with zeros afterwards); padding black pixels instead would feed the network values that
after normalisation lie about two standard deviations below the mean.

A whole batch is cropped and flipped by one gather (no per-image Python loop and no padded copy):
out-of-image positions are clamped for the gather and zeroed afterwards through a mask.

ImageNet training also jitters colours (:func:`color_augment`), as fb.resnet.torch ``datasets/imagenet.lua``
does for the ResNet-200 the paper points to: brightness, contrast and saturation in random order, then PCA
lighting.  The arithmetic is that of ``mx.image.ColorJitterAug`` and ``mx.image.LightingAug`` (the tests
compare the two image by image), but the random factors come from the batch's generator: MXNet's
augmenters draw from Python's and NumPy's global generators (and shuffle a shared list), which would make
a batch depend on thread scheduling and break the loader's determinism.
"""

import numpy as np

#: Luma weights of the grey image the jitter blends with (mx.image's Contrast/SaturationJitterAug and
#: fb.resnet.torch ``transforms.lua`` use the same).
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def crop_flip_params(rng, n, pad=4, flip=True):
    """Draw one random crop offset and flip per sample.

    Returns ``(oy, ox, flips)``: offsets in ``[0, 2 * pad]`` into the padded image (``pad`` is the
    centred, unshifted crop) and a boolean per sample, True with probability 1/2 when ``flip``.
    """
    oy = rng.integers(0, 2 * pad + 1, size=n)
    ox = rng.integers(0, 2 * pad + 1, size=n)
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    return oy, ox, flips


def crop_flip(images, oy, ox, flips, pad=4):
    """Crop every image of ``images`` (uint8 NHWC) from its ``pad``-padded version at ``(oy, ox)`` and
    mirror those with ``flips``.

    Returns ``(crops, valid)``: crops of the original size whose padded positions hold clamped edge
    pixels, and the ``(N, H, W)`` boolean mask of the positions that come from inside the image.
    """
    n, height, width = images.shape[:3]
    rows = (oy - pad)[:, None] + np.arange(height)
    cols = (ox - pad)[:, None] + np.arange(width)
    # Flipping the crop = reading its columns right to left.
    cols = np.where(flips[:, None], cols[:, ::-1], cols)
    valid = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    np.clip(rows, 0, height - 1, out=rows)
    np.clip(cols, 0, width - 1, out=cols)
    flat = np.arange(n)[:, None, None] * (height * width) + rows[:, :, None] * width + cols[:, None, :]
    # Gathering whole pixels (all channels as one opaque item) is faster than a 4-D fancy index.
    channels = images.shape[3]
    pixels = np.ascontiguousarray(images).view(np.dtype((np.void, channels))).reshape(-1)
    crops = pixels.take(flat).view(np.uint8).reshape(n, height, width, channels)
    return crops, valid


def normalize(images, mean, std, valid=None):
    """uint8 NHWC -> float32 NCHW ``(x - mean) / std`` per channel, zero where ``valid`` is False."""
    mean = np.asarray(mean, np.float32)[:, None, None]
    scale = (1.0 / np.asarray(std, np.float32))[:, None, None]
    out = np.empty((images.shape[0], images.shape[3], images.shape[1], images.shape[2]), np.float32)
    # The transpose is a view: subtract writes NCHW directly while converting from uint8.
    np.subtract(images.transpose(0, 3, 1, 2), mean, out=out)
    np.multiply(out, scale, out=out)
    if valid is not None and not valid.all():
        np.multiply(out, valid[:, None], out=out)
    return out


def augment_normalize(images, mean, std, rng, pad=4, flip=True):
    """Pad ``pad`` pixels, random crop back to the original size, random horizontal flip, normalise.

    ``images`` is a uint8 NHWC batch; returns float32 NCHW.  All randomness comes from ``rng``.
    """
    oy, ox, flips = crop_flip_params(rng, len(images), pad, flip)
    crops, valid = crop_flip(images, oy, ox, flips, pad)
    return normalize(crops, mean, std, valid)


def color_params(rng, n, jitter, lighting):
    """Per image: the order of (brightness, contrast, saturation) as a permutation of 0, 1, 2, their factors
    ``1 + U(-jitter, jitter)`` and the three PCA lighting coefficients ``N(0, lighting)``."""
    orders = rng.permuted(np.tile(np.arange(3), (n, 1)), axis=1)
    factors = 1.0 + rng.uniform(-jitter, jitter, size=(n, 3))
    alphas = rng.normal(0.0, lighting, size=(n, 3)) if lighting else np.zeros((n, 3))
    return orders, factors.astype(np.float32), alphas


def color_augment(images, rng, jitter, lighting, eigval, eigvec):
    """Colour jitter and PCA lighting of a float32 NHWC batch of RGB pixel values, in place.

    Jitter (0 = off): brightness ``x * a``, contrast ``a x + (1 - a) mean(luma(x))``, saturation
    ``a x + (1 - a) luma(x)`` per pixel, each ``a = 1 + U(-jitter, jitter)``, in random order.  Lighting
    (0 = off): adds ``eigvec @ (alpha * eigval)`` to every pixel with ``alpha ~ N(0, lighting)``, the
    eigen-decomposition of the RGB covariance in pixel units.  No clipping, as in fb.resnet.torch.
    """
    orders, factors, shifts = color_draw(rng, len(images), jitter, lighting, eigval, eigvec)
    return apply_color(images, orders, factors, shifts, jitter, lighting)


def color_draw(rng, n, jitter, lighting, eigval, eigvec):
    """The random part of :func:`color_augment`: per image the jitter order and factors (as
    :func:`color_params`) and the float32 RGB shift of the PCA lighting."""
    orders, factors, alphas = color_params(rng, n, jitter, lighting)
    shifts = (np.asarray(eigvec, np.float64) @ (alphas * np.asarray(eigval, np.float64))[:, :, None])[:, :, 0]
    return orders, factors, shifts.astype(np.float32)


def apply_color(images, orders, factors, shifts, jitter, lighting):
    """The arithmetic of :func:`color_augment` with the draws of :func:`color_draw`, in place (numpy; the
    loader's device path, :mod:`.device`, does the same with NDArrays)."""
    for image, order, factor, shift in zip(images, orders, factors, shifts):
        if jitter:
            for op in order:
                a = factor[op]
                if op == 0:
                    image *= a
                elif op == 1:
                    grey = float((image @ LUMA).mean())
                    image *= a
                    image += (1.0 - a) * grey
                else:
                    grey = image @ LUMA
                    image *= a
                    image += (1.0 - a) * grey[:, :, None]
        if lighting:
            image += shift
    return images
