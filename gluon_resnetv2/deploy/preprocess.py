"""The preprocessing stored next to an export, and its application to image files and arrays.

Training normalises every image as ``(pixel - mean) / std`` per channel, with ``mean``/``std`` in pixel
units (0..255) computed on the training split (:mod:`gluon_resnetv2.data`).  An export keeps these
numbers, the input shape and the class names in ``PREFIX-preprocess.json``, and prediction applies
*the training code's own* :func:`gluon_resnetv2.data.augment.normalize` to them, so a test image gives the
network exactly the tensor the test loader would have given it.

Inputs are brought to the stored ``(C, H, W)`` first:

* channels: RGB -> grey with the ITU-R 601-2 luma weights (PIL's ``convert('L')``), grey -> RGB by
  repetition, an alpha channel is dropped;
* size: bilinear resize (area averaging when shrinking) to ``(H, W)`` unless ``resize=False``.

Arrays (``.npy``) hold pixels in 0..255 (integers or floats; uint16 is 16-bit and scaled to 0..255, with a
warning), one image as ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` or several as ``(N, H, W)`` (grey images
of the export's size), ``(N, H, W, C)`` / ``(N, C, H, W)``; a layout that is ambiguous for the export, a
boolean array and values outside the pixel range are refused (:func:`pixel_values`).  Image files (PNG,
JPEG, anything PIL reads) hold one image each; 16-bit grey PNGs are scaled to 0..255 like uint16 arrays.
"""

import json
import os
import warnings
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..data.augment import normalize
from ..fileio import atomic_write_text, load_json

FORMAT = "gluon-resnetv2-preprocess"
FORMAT_VERSION = 1
ARRAY_SUFFIXES = (".npy",)
# ITU-R 601-2 luma, the weights PIL's convert('L') uses, so that an RGB array and the same RGB PNG agree.
LUMA = np.array([299.0, 587.0, 114.0], np.float32) / 1000.0


@dataclass
class Preprocess:
    """What a network expects of its input.

    input_shape : (C, H, W) of one image.
    mean, std : per-channel statistics in pixel units (0..255) of the training split.
    classes : class names in output order (None: indices are printed).
    dataset : the training data set's name, for information.
    """

    input_shape: Tuple[int, int, int]
    mean: List[float]
    std: List[float]
    classes: Optional[List[str]] = None
    dataset: Optional[str] = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.input_shape = tuple(int(v) for v in self.input_shape)
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape {self.input_shape}: expected (channels, height, width)")
        channels = self.input_shape[0]
        self.mean = [float(v) for v in np.asarray(self.mean, np.float64).reshape(-1)]
        self.std = [float(v) for v in np.asarray(self.std, np.float64).reshape(-1)]
        if len(self.mean) == 1 and channels > 1:
            self.mean *= channels
        if len(self.std) == 1 and channels > 1:
            self.std *= channels
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(f"mean {self.mean} / std {self.std}: need one value per input channel ({channels})")
        if min(self.std) <= 0:
            raise ValueError(f"std {self.std}: must be positive")
        if self.classes is not None:
            self.classes = [str(c) for c in self.classes]

    # -- construction ---------------------------------------------------------------------------------

    @classmethod
    def from_dataset(cls, dataset, input_shape=None):
        """The preprocessing of an :class:`~gluon_resnetv2.data.ArrayDataset` (its training statistics)."""
        shape = tuple(input_shape) if input_shape is not None else tuple(dataset.image_shape)
        return cls(
            shape,
            list(dataset.mean),
            list(dataset.std),
            classes=list(dataset.classes),
            dataset=getattr(dataset, "name", None),
        )

    def to_dict(self):
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "input_shape": list(self.input_shape),
            "layout": "NCHW",
            "pixel_range": [0, 255],
            "normalization": "(pixel - mean) / std per channel",
            "mean": self.mean,
            "std": self.std,
            "classes": self.classes,
            "dataset": self.dataset,
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, data, source="preprocess"):
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{source}: not a gluon-resnetv2 preprocessing file (format {FORMAT!r} expected)")
        if int(data.get("version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"{source}: format version {data['version']} is newer than this package "
                f"understands ({FORMAT_VERSION}); upgrade gluon-resnetv2"
            )
        try:
            return cls(
                data["input_shape"],
                data["mean"],
                data["std"],
                classes=data.get("classes"),
                dataset=data.get("dataset"),
                extra=data.get("extra") or {},
            )
        except KeyError as err:
            raise ValueError(f"{source}: missing field {err}") from None

    def save(self, path):
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path):
        return cls.from_dict(load_json(path, "preprocessing file written by gluon-resnetv2 export"), source=path)

    # -- application ----------------------------------------------------------------------------------

    def class_name(self, index):
        if self.classes is not None and 0 <= index < len(self.classes):
            return self.classes[index]
        return str(index)

    def conform(self, image, name="input", resize=True):
        """One image (HWC float32 pixels) -> the stored channels and size, still in pixel units."""
        channels, height, width = self.input_shape
        have = image.shape[2]
        if have == 4:  # RGBA / grey+alpha conventions: the alpha channel carries no content
            image, have = image[:, :, :3], 3
        elif have == 2:  # LA (grey + alpha)
            image, have = image[:, :, :1], 1
        if have != channels:
            if channels == 1 and have == 3:
                image = (image @ LUMA)[:, :, None]
            elif channels == 3 and have == 1:
                image = np.repeat(image, 3, axis=2)
            else:
                raise ValueError(f"{name}: {have} channels cannot be converted to the {channels} the network expects")
        if image.shape[:2] != (height, width):
            if not resize:
                raise ValueError(
                    f"{name}: image is {image.shape[0]}x{image.shape[1]}, the network expects "
                    f"{height}x{width} (resizing disabled)"
                )
            import cv2  # optional dependency, only for resizing

            shrink = image.shape[0] > height or image.shape[1] > width
            resized = cv2.resize(
                np.ascontiguousarray(image, np.float32),
                (width, height),
                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
            )
            image = resized.reshape(height, width, -1)
        return image

    def normalize(self, images):
        """NHWC pixels -> normalised float32 NCHW with the training pipeline's own function."""

        return normalize(np.asarray(images), self.mean, self.std)

    def prepare(self, images, names=None, resize=True):
        """A list of HWC pixel arrays -> one normalised ``(N, C, H, W)`` float32 batch."""
        names = names or [f"input {i}" for i in range(len(images))]
        conformed = [self.conform(np.asarray(img, np.float32), name, resize) for img, name in zip(images, names)]
        return self.normalize(np.stack(conformed)) if conformed else np.zeros((0,) + self.input_shape, np.float32)


# -- reading inputs -------------------------------------------------------------------------------------

LAYOUTS = (
    "(H, W), (H, W, C) or (C, H, W) with C in 1..4, or a batch (N, H, W) of grey images of the export's "
    "H x W, (N, H, W, C) or (N, C, H, W)"
)


def _layout(shape, name, input_shape, batch, whole):
    """How a 3-D array (one image, or one item of a 4-D batch) is laid out: 'HWC', 'CHW' or 'NHW'.

    Each reading that fits is a candidate: HWC (last axis 1..4 channels), CHW (first axis 1..4) and, for a
    whole array, NHW (N grey images whose H, W are the export's).  Several are narrowed to those whose
    channel count is the export's; if that does not leave exactly one the array is refused as ambiguous.
    """
    channels, height, width = (None, None, None) if input_shape is None else input_shape
    candidates = {}
    if shape[2] in (1, 2, 3, 4):
        candidates["HWC"] = shape[2]
    if shape[0] in (1, 2, 3, 4):
        candidates["CHW"] = shape[0]
    if not batch and shape[0] > 1 and tuple(shape[1:]) == (height, width):
        candidates["NHW"] = 1
    if len(candidates) > 1:
        candidates = {k: c for k, c in candidates.items() if c == channels} or candidates
    if set(candidates) == {"CHW"} and not batch and channels is not None and shape[0] not in (1, channels):
        # (N, H, W) grey images of another size than the export's read the same as one N-channel image
        # (N = 2 or 4: grey/colour + alpha, which would be dropped): refuse rather than guess.
        raise ValueError(
            f"{name}: array of shape {tuple(whole)} is ambiguous (one {shape[0]}-channel image (C, H, W), or "
            f"{shape[0]} grey images (N, H, W) of {shape[1]}x{shape[2]}, not the export's {height}x{width}); "
            f"expected {LAYOUTS}; the export takes {channels}x{height}x{width}"
        )
    if len(candidates) == 1:
        return next(iter(candidates))
    what = "is not an image" if not candidates else f"is ambiguous (it could be {' or '.join(candidates)})"
    if batch:
        what = what.replace("HWC", "NHWC").replace("CHW", "NCHW")
    expect = f"; the export takes {channels}x{height}x{width}" if input_shape is not None else ""
    raise ValueError(f"{name}: array of shape {tuple(whole)} {what}; expected {LAYOUTS}{expect}")


def _as_hwc(image, layout):
    return image.transpose(1, 2, 0) if layout == "CHW" else image


def pixel_values(array, name):
    """An array's values as float32 pixels 0..255, converted exactly or refused with one line naming ``name``.

    uint8 and other integer arrays with values in 0..255 are pixels as they are; uint16 is 16-bit pixels,
    scaled by 255/65535 (with a warning saying so); floats must lie in 0..255 (all within [0, 1] gives a
    warning: arrays are read as 0..255).  Booleans, complex numbers, negative values, integers above 255
    other than uint16, NaN and inf are refused.
    """
    dtype = array.dtype
    expect = "expected pixels 0..255 (uint8, or numbers in 0..255) or 16-bit pixels (uint16)"
    if dtype.kind == "b":
        raise ValueError(f"{name}: boolean array; {expect}; a mask as an image is (mask * 255).astype('uint8')")
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise ValueError(f"{name}: array of dtype {dtype}; {expect}")
    values = array.astype(np.float32)
    if not np.isfinite(values).all():
        raise ValueError(f"{name}: array contains NaN or infinite values; {expect}")
    low, high = float(values.min()), float(values.max())
    if dtype == np.uint16:
        warnings.warn(f"{name}: 16-bit pixels (uint16, 0..65535) scaled to 0..255", stacklevel=3)
        return values * np.float32(255.0 / 65535.0)
    if low < 0 or high > 255:
        hint = (
            "; it looks normalised already: give the raw pixels"
            if np.issubdtype(dtype, np.floating) and low < 0
            else ""
        )
        raise ValueError(f"{name}: {dtype} values in [{low:g}, {high:g}]; {expect}{hint}")
    if np.issubdtype(dtype, np.floating) and 0 < high <= 1.0:
        warnings.warn(
            f"{name}: float pixel values all within [0, 1]; arrays are read as 0..255 pixels "
            f"(multiply by 255 if they are 0..1 images)",
            stacklevel=3,
        )
    return values


def array_images(array, name, channels):
    """A loaded array -> list of (name, HWC float32 image).

    ``channels`` is the export's input shape ``(C, H, W)`` (or just ``C``, which cannot tell a stack of
    grey images from one image).  The layout is decided once for the whole array (see :func:`_layout`);
    float pixels all within [0, 1] give a warning, for a batch as for one image.
    """
    input_shape = tuple(channels) if isinstance(channels, (tuple, list)) else None
    array = np.asarray(array)
    if array.size == 0:
        raise ValueError(f"{name}: empty array of shape {array.shape}; expected {LAYOUTS}")
    values = pixel_values(array, name)
    if array.ndim not in (2, 3, 4):
        raise ValueError(f"{name}: array of shape {array.shape} is not an image; expected {LAYOUTS}")
    if values.ndim == 2:
        return [(name, values[:, :, None])]
    if values.ndim == 3:
        layout = _layout(values.shape, name, input_shape, False, values.shape)
        if layout == "NHW":
            return [(f"{name}[{i}]", image[:, :, None]) for i, image in enumerate(values)]
        return [(name, _as_hwc(values, layout))]
    layout = _layout(values.shape[1:], name, input_shape, True, values.shape)
    return [(f"{name}[{i}]", _as_hwc(image, layout)) for i, image in enumerate(values)]


def read_inputs(paths, channels):
    """Read image files and ``.npy`` arrays -> list of (name, HWC float32 pixels).

    ``channels``: the export's input shape ``(C, H, W)`` (or its channel count).

    Raises FileNotFoundError for missing files and ValueError for unreadable or malformed ones, each
    naming the file.
    """
    items = []
    for path in paths:
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file")
        if os.path.isdir(path):
            raise ValueError(f"{path}: is a directory, expected an image file or a .npy array")
        if os.path.getsize(path) == 0:
            raise ValueError(f"{path}: empty file; expected an image file or a .npy array (numpy.save)")
        if path.lower().endswith(ARRAY_SUFFIXES):
            try:
                array = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as err:
                raise ValueError(f"{path}: cannot read as a numpy .npy array ({err})") from None
            items.extend(array_images(array, path, channels))
            continue

        try:
            with Image.open(path) as img:
                img.load()
                if img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PNG"):
                    # 16-bit grey: PIL's convert('L') clips at 255 instead of scaling.
                    pixels = pixel_values(np.asarray(img).astype(np.uint16), path)
                elif img.mode in ("I", "F"):
                    pixels = pixel_values(np.asarray(img), path)
                else:
                    # Decode to the channel count the network wants with PIL's own conversions.
                    mode = "L" if (channels[0] if isinstance(channels, (tuple, list)) else channels) == 1 else "RGB"
                    pixels = np.asarray(img.convert(mode), np.float32)
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(
                f"{path}: cannot read as an image ({err.__class__.__name__}: {err}); expected "
                f"PNG, JPEG or another format PIL reads, or a .npy array"
            ) from None
        items.append((path, pixels if pixels.ndim == 3 else pixels[:, :, None]))
    return items
