"""ImageNet (ILSVRC 2012) from MXNet RecordIO files, decoded on the fly by the loader's workers.

Expected files: ``train.rec``/``train.idx`` and ``val.rec``/``val.idx`` in ``data_dir``, as written by
MXNet's ``im2rec.py`` (``mx.recordio.pack_img`` records, label in the record header).  Records are read
with :class:`mxnet.recordio.MXIndexedRecordIO`, one reader per concurrent worker thread (a reader holds
a file position, so sharing one between threads would interleave seeks), and decoded with OpenCV, the library
behind ``mx.image.imdecode``, called directly because it releases the GIL and is safe to call from
several threads, which MXNet's imperative operators are not guaranteed to be.

Augmentation (paper Sec. 5, Table 5, following He et al. 2016 "Deep Residual Learning", Sec. 3.4):

* ``aspect_ratio=False`` (default): *scale augmentation*: the shorter side is resized to a random
  S in ``scale`` = [256, 480], then a random ``crop_size`` (224) crop and a random horizontal flip;
* ``aspect_ratio=True``: *scale and aspect ratio augmentation* (Szegedy et al. 2015, as in
  fb.resnet.torch, used for the paper's 20.1% ResNet-200): a random crop covering 8%-100% of the image
  area with aspect ratio in [3/4, 4/3], resized to ``crop_size``, and a random flip.

Colour augmentation in training, as fb.resnet.torch ``datasets/imagenet.lua`` (on by default, 0 turns
each off; see :func:`.augment.color_augment`): ``color_jitter`` = 0.4 (brightness, contrast and saturation
factors in [0.6, 1.4], in random order) and ``lighting`` = 0.1 (PCA lighting with the ImageNet
eigenvalues and eigenvectors, :data:`IMAGENET_PCA_EIGVAL`, :data:`IMAGENET_PCA_EIGVEC`).  Never at test time.

Testing is single-crop: the shorter side resized to ``resize``, then the centre ``crop_size`` crop.  By
default ``resize`` is 256 for the standard 224 crop, and equal to ``crop_size`` otherwise (the paper's
320x320 test crop is taken from the image resized to a shorter side of 320).

Normalisation uses the usual ImageNet per-channel mean and std (pixel units): computing them from 1.28 M
JPEGs at every start would cost more than it is worth; pass ``mean``/``std`` to override.
"""

import os
import queue

import mxnet as mx
import numpy as np

from . import augment as _augment

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
#: Eigen-decomposition of the ImageNet RGB covariance, in pixel units (fb.resnet.torch's [0, 1] values x 255;
#: mx.image.CreateAugmenter's pca_noise uses the same): eigenvalues, and eigenvectors as columns.
IMAGENET_PCA_EIGVAL = (55.46, 4.794, 1.148)
IMAGENET_PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))
#: fb.resnet.torch's ImageNet training defaults: ColorJitter(0.4, 0.4, 0.4) and Lighting(0.1).
COLOR_JITTER, LIGHTING = 0.4, 0.1
RECORDIO_MAGIC = 0xCED7230A
#: Columns after the class in a uint8 hand-over's label when colours are jittered: 3 jitter orders,
#: 3 factors, 3 lighting shifts (:meth:`RecordDataset.make_raw_batch`).
COLOR_COLUMNS = 9
FILES = {"train": "train", "test": "val", "val": "val"}


def _cv2():
    import cv2  # optional dependency (OpenCV ships with gluoncv's extras, not with mxnet)

    return cv2


def read_index(idx_path, rec_path):
    """Keys of ``idx_path`` in file order, checked against ``rec_path``'s size and magic."""
    if not os.path.isfile(idx_path):
        raise FileNotFoundError(
            f"{idx_path}: file not found (expected the RecordIO index written with "
            f"{os.path.basename(rec_path)}, lines 'key<TAB>offset')"
        )
    if not os.path.isfile(rec_path):
        raise FileNotFoundError(f"{rec_path}: file not found (expected an MXNet RecordIO file of images)")
    keys, offsets = [], []
    with open(idx_path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split(b"\t")
            try:
                key, offset = int(fields[0]), int(fields[1])
            except (ValueError, IndexError):
                raise ValueError(
                    f"{idx_path}:{number}: expected 'key<TAB>offset', got {line[:60]!r}; is this a RecordIO .idx file?"
                ) from None
            keys.append(key)
            offsets.append(offset)
    if not keys:
        raise ValueError(f"{idx_path}: empty index, expected one 'key<TAB>offset' line per image")
    size = os.path.getsize(rec_path)
    with open(rec_path, "rb") as handle:
        head = handle.read(4)
    if len(head) < 4 or int.from_bytes(head, "little") != RECORDIO_MAGIC:
        raise ValueError(
            f"{rec_path}: does not start with the RecordIO magic 0x{RECORDIO_MAGIC:08x}; "
            f"expected an MXNet .rec file (im2rec.py)"
        )
    if max(offsets) + 8 > size:
        raise ValueError(
            f"{rec_path}: truncated: {os.path.basename(idx_path)} points at byte "
            f"{max(offsets)} but the file has {size} bytes"
        )
    return np.asarray(keys, np.int64)


class RecordDataset:
    """Images in an indexed RecordIO file, decoded and transformed per batch.

    Quacks like :class:`~.base.ArrayDataset` for the loader (``len``, ``num_classes``, ``image_shape``,
    ``mean``, ``std``, ``default_augment``, ``make_batch``) but keeps nothing but the index in memory.
    """

    def __init__(
        self,
        rec_path,
        idx_path,
        split,
        num_classes=1000,
        crop_size=224,
        resize=None,
        scale=(256, 480),
        aspect_ratio=False,
        area=(0.08, 1.0),
        ratio=(3 / 4, 4 / 3),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augment=True,
        color_jitter=COLOR_JITTER,
        lighting=LIGHTING,
        name="imagenet",
    ):
        self.rec_path, self.idx_path = rec_path, idx_path
        self.keys = read_index(idx_path, rec_path)
        self.split = split
        self.name = name
        self.num_classes = int(num_classes)
        self.crop_size = int(crop_size)
        self.resize = int(resize) if resize is not None else (256 if self.crop_size == 224 else self.crop_size)
        self.scale = (int(scale[0]), int(scale[1]))
        if self.scale[0] < self.crop_size:
            raise ValueError(f"scale {self.scale}: the smallest shorter side must be >= crop_size {self.crop_size}")
        if self.resize < self.crop_size:
            raise ValueError(f"resize {self.resize} must be >= crop_size {self.crop_size}")
        self.aspect_ratio = bool(aspect_ratio)
        self.color_jitter, self.lighting = float(color_jitter), float(lighting)
        if not 0 <= self.color_jitter < 1:
            raise ValueError(f"color_jitter={color_jitter!r}: expected a factor range in [0, 1) (0 turns it off)")
        if self.lighting < 0:
            raise ValueError(f"lighting={lighting!r}: expected a standard deviation >= 0 (0 turns it off)")
        self.area, self.ratio = tuple(area), tuple(ratio)
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.default_augment = bool(augment)
        self.classes = [str(i) for i in range(self.num_classes)]
        self._readers = queue.SimpleQueue()

    #: Decoding and cropping run per image in Python loops: the loader's workers are processes (threads
    #: would serialise on the GIL), and batches can be handed over as uint8 (:meth:`make_raw_batch`).
    worker_type = "process"

    @property
    def image_shape(self):
        return (3, self.crop_size, self.crop_size)

    def __len__(self):
        return len(self.keys)

    def __repr__(self):
        return f"RecordDataset({self.rec_path!r}, split={self.split!r}, n={len(self)}, image_shape={self.image_shape})"

    def read(self, index):
        """``(image HWC uint8 RGB, label int)`` of sample ``index``, neither augmented nor normalised."""

        key = int(self.keys[index])
        # Borrow a reader: one per concurrent worker, kept across epochs, because opening one parses
        # the whole .idx (about a second for ImageNet's 1.28 M lines).
        try:
            reader = self._readers.get_nowait()
        except queue.Empty:
            reader = mx.recordio.MXIndexedRecordIO(self.idx_path, self.rec_path, "r")
        try:
            header, payload = mx.recordio.unpack(reader.read_idx(key))
        except Exception as err:  # noqa: BLE001  (a damaged record fails in many ways: MXNetError, struct.error, ...)
            detail = (str(err).strip().splitlines() or [""])[-1]  # MXNet prepends a C++ traceback
            raise ValueError(
                f"{self.rec_path}: cannot read record {key} ({type(err).__name__}: {detail}); "
                f"truncated file, or not an image record written by im2rec.py / pack_img?"
            ) from None
        finally:
            self._readers.put(reader)
        cv2 = _cv2()
        image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(
                f"{self.rec_path}: record {key} is not a decodable image ({len(payload)} bytes of payload)"
            )
        label = np.asarray(header.label).reshape(-1)[0]
        if not 0 <= label < self.num_classes:
            raise ValueError(f"{self.rec_path}: record {key} has label {label}, outside [0, {self.num_classes})")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), int(label)

    def __getitem__(self, index):
        return self.read(index)

    def make_raw_batch(self, indices, augment, rng):
        """Decode and crop (random if ``augment``, else centre): ``(uint8 NHWC images, label)``, what the
        loader's workers hand over with ``hand_over='uint8'`` (4x less to copy than float32).

        ``label`` is float32 ``(n,)``, or ``(n, 1 + COLOR_COLUMNS)`` when training jitters colours: the
        class, then the colour draws of each image (jitter order, factors, lighting shift; see
        :data:`COLOR_COLUMNS`), which :class:`.device.DeviceInput` applies where the batch is normalised.
        """
        size = self.crop_size
        out = np.empty((len(indices), size, size, 3), np.uint8)
        labels = np.empty(len(indices), np.float32)
        for i, index in enumerate(indices):
            image, labels[i] = self.read(index)
            if augment:
                crop = (
                    random_sized_crop(image, size, rng, self.area, self.ratio)
                    if self.aspect_ratio
                    else scale_crop(image, size, rng, self.scale)
                )
                out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
            else:
                out[i] = center_crop(resize_shorter(image, self.resize), size)
        if not (augment and (self.color_jitter or self.lighting)):
            return out, labels
        # Drawn after the crops, as the float path always did: both paths give the same batch.
        orders, factors, shifts = _augment.color_draw(
            rng, len(out), self.color_jitter, self.lighting, IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC
        )
        return out, np.concatenate([labels[:, None], orders, factors, shifts], axis=1).astype(np.float32)

    def make_batch(self, indices, augment, rng):
        """Decode, crop (random if ``augment``, else centre), jitter colours (if ``augment``) and normalise
        in numpy: float32 NCHW + labels (the ``hand_over='float32'`` path, and the reference of the device
        path)."""
        out, labels = self.make_raw_batch(indices, augment, rng)
        if labels.ndim == 2:
            orders, factors, shifts = np.split(labels[:, 1:], [3, 6], axis=1)
            out = _augment.apply_color(
                out.astype(np.float32), orders.astype(np.int64), factors, shifts, self.color_jitter, self.lighting
            )
            labels = np.ascontiguousarray(labels[:, 0])
        return _augment.normalize(out, self.mean, self.std), labels


def resize_shorter(image, shorter):
    """Resize so that the shorter side is ``shorter``, keeping the aspect ratio."""
    height, width = image.shape[:2]
    if min(height, width) == shorter:
        return image
    factor = shorter / min(height, width)
    size = (max(shorter, round(width * factor)), max(shorter, round(height * factor)))
    return _resize(image, size)


def _resize(image, size):
    cv2 = _cv2()
    # Area averaging when shrinking avoids aliasing; bilinear when enlarging.
    shrinking = size[0] * size[1] < image.shape[0] * image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def center_crop(image, size):
    height, width = image.shape[:2]
    top, left = (height - size) // 2, (width - size) // 2
    return image[top : top + size, left : left + size]


def scale_crop(image, size, rng, scale=(256, 480)):
    """He et al. 2016 scale augmentation: shorter side to S ~ U[scale], random ``size`` crop."""
    image = resize_shorter(image, int(rng.integers(scale[0], scale[1] + 1)))
    height, width = image.shape[:2]
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return image[top : top + size, left : left + size]


def random_sized_crop(image, size, rng, area=(0.08, 1.0), ratio=(3 / 4, 4 / 3), attempts=10):
    """Scale + aspect ratio augmentation (Szegedy et al. 2015; fb.resnet.torch's RandomSizedCrop)."""
    height, width = image.shape[:2]
    for _ in range(attempts):
        target = rng.uniform(*area) * height * width
        aspect = rng.uniform(*ratio)
        crop_w = int(round(np.sqrt(target * aspect)))
        crop_h = int(round(np.sqrt(target / aspect)))
        if rng.random() < 0.5:  # fb.resnet.torch swaps the sides half of the time
            crop_w, crop_h = crop_h, crop_w
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
            return _resize(image[top : top + crop_h, left : left + crop_w], (size, size))
    # No admissible crop in ten tries (extreme aspect ratios): fall back to the test transform.
    return center_crop(resize_shorter(image, size), size)


def load_imagenet(data_dir=None, split="train", **options):
    """ImageNet from ``data_dir/{train,val}.{rec,idx}`` as a :class:`RecordDataset`.

    ``split='test'`` (or ``'val'``) reads ``val.rec``.  ``options`` go to :class:`RecordDataset`
    (``crop_size``, ``resize``, ``scale``, ``aspect_ratio``, ``num_classes``, ``mean``, ``std``,
    ``augment``, ``color_jitter``, ``lighting``).
    """
    if data_dir is None:
        raise FileNotFoundError(
            "ImageNet needs a data directory: pass --data-dir (data_dir=...) pointing at "
            "a directory with train.rec/train.idx and val.rec/val.idx (MXNet im2rec.py)"
        )
    data_dir = os.path.expanduser(data_dir)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"{data_dir}: no such directory (expected train.rec/train.idx and val.rec/val.idx)")
    stem = FILES[split]
    return RecordDataset(os.path.join(data_dir, stem + ".rec"), os.path.join(data_dir, stem + ".idx"), split, **options)
