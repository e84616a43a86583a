"""Exports on disk and the :class:`Predictor` that runs them without the model code.

An export ``PREFIX`` is three files (four with ONNX)::

    PREFIX-symbol.json       the graph (MXNet symbol; input 'data', NCHW float32)
    PREFIX-0000.params       the parameters (running BatchNorm statistics included)
    PREFIX-preprocess.json   input shape, per-channel mean/std (pixel units), class names, data set
    PREFIX.onnx              optional, the same network in ONNX
"""

import glob
import os
import re
import warnings

import mxnet as mx
import numpy as np

from ..train.preflight import preflight_gpus
from .export import export
from .fast import fuse as fuse_net
from .onnx_export import export_onnx
from .preprocess import Preprocess, read_inputs


def export_files(prefix, epoch=0):
    """The file names of export ``prefix``."""
    return {
        "symbol": f"{prefix}-symbol.json",
        "params": f"{prefix}-{epoch:04d}.params",
        "preprocess": f"{prefix}-preprocess.json",
        "onnx": f"{prefix}.onnx",
    }


def find_epoch(prefix):
    """The epoch number of ``PREFIX-NNNN.params`` (0 if present, else the only/latest one)."""
    found = sorted(
        int(m.group(1))
        for path in glob.glob(glob.escape(prefix) + "-*.params")
        if (m := re.search(r"-(\d{4})\.params$", path))
    )
    if not found:
        return None
    return 0 if 0 in found else found[-1]


def bundle_files(prefix):
    """The files of an export ``prefix`` that exist (every ``PREFIX-NNNN.params`` included)."""
    named = [path for key, path in export_files(prefix).items() if key != "params"]
    params = glob.glob(glob.escape(prefix) + "-[0-9][0-9][0-9][0-9].params")
    return sorted(path for path in named + params if os.path.exists(path))


def export_bundle(net, prefix, preprocess, batch_size=1, onnx=False, ctx=None, force=False):
    """Write export ``prefix``: the hybridized graph, its parameters, ``preprocess`` (a
    :class:`~.preprocess.Preprocess`) and, with ``onnx=True``, ``PREFIX.onnx``.  Returns the file dict.

    An existing export at ``prefix`` is an error unless ``force``; then every file of it is replaced and
    those the new export does not write (a stale ``PREFIX.onnx``) are removed.  The ONNX file is written
    last, after the MXNet files, so that a missing/incompatible onnx package leaves a usable MXNet export
    and a clear error.
    """
    existing = bundle_files(prefix)
    if existing and not force:
        raise ValueError(
            f"{prefix} is already an export ({', '.join(existing)}); give --force (force=True) to "
            "replace it, or choose another --out"
        )
    input_shape = (int(batch_size),) + tuple(preprocess.input_shape)
    files = export_files(prefix)
    export(net, prefix, input_shape, ctx=ctx)
    preprocess.save(files["preprocess"])
    if not onnx:
        files.pop("onnx")
    for path in set(existing) - set(files.values()):
        os.remove(path)
    if onnx:
        export_onnx(files["symbol"], files["params"], input_shape, files["onnx"])
    return files


def resolve_context(device=None):
    """``None``/'cpu' -> cpu; an int or 'gpu:N' -> that GPU after the GPU preflight (clear error if not)."""
    if device is None or device == "cpu":
        return mx.cpu()
    if isinstance(device, mx.Context):
        if device.device_type == "cpu":
            return device
        index = device.device_id
    else:
        text = str(device)
        try:
            index = int(text.split(":", 1)[1] if text.startswith("gpu") else text)
        except (ValueError, IndexError):
            raise ValueError(f"device {device!r}: expected 'cpu', a GPU index or 'gpu:N'") from None
    if index < 0:
        raise ValueError(f"device {device!r}: a GPU index is >= 0")
    # The training preflight: a CPU-only build, a missing GPU, or one the build has no kernels for
    # (Hopper with the pip wheels) is refused here rather than with "no kernel image" at the first batch.
    preflight_gpus([index])
    return mx.gpu(index)


def softmax(logits):
    """Row-wise softmax in float64 (stable), returned as float32."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


class Predictor:
    """Load an export (symbol + parameters + preprocessing) and classify images in batches.

    Needs neither the model code nor its options: the graph comes from ``PREFIX-symbol.json``
    (``SymbolBlock.imports``).

    Parameters
    ----------
    prefix : str
        The export prefix (``PREFIX-symbol.json`` ...).
    device : None, 'cpu', int or 'gpu:N' or mx.Context
        Where to run; a GPU is checked to exist first.
    batch_size : int
        Images per forward pass (inputs are split into batches of this size).
    epoch : int or None
        Which ``PREFIX-NNNN.params``; None picks 0000 or the only one there is.
    preprocess : Preprocess or None
        Overrides ``PREFIX-preprocess.json`` (required if that file is missing and images are given).
    fuse : bool
        Apply the oneDNN (MKLDNN) graph fusion (:func:`gluon_resnetv2.deploy.fuse`); CPU only, refused on a GPU.
    """

    def __init__(
        self,
        prefix: str,
        device: str | int | mx.Context | None = None,
        batch_size: int = 64,
        epoch: int | None = None,
        preprocess: Preprocess | None = None,
        fuse: bool = False,
    ) -> None:
        self.prefix = prefix
        self.ctx = resolve_context(device)
        if fuse and self.ctx.device_type != "cpu":
            raise ValueError(
                f"fuse=True (--fuse) is oneDNN graph fusion for the CPU and does nothing on {self.ctx}: drop it "
                "(on a GPU MXNet fuses pointwise operators by itself, see MXNET_USE_FUSION)"
            )
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        epoch = find_epoch(prefix) if epoch is None else int(epoch)
        files = export_files(prefix, epoch or 0)
        missing = [files[k] for k in ("symbol", "params") if not os.path.isfile(files[k])]
        if missing or epoch is None:
            raise FileNotFoundError(
                f"export {prefix!r} is incomplete: missing {', '.join(missing)}; create it "
                f"with `gluon-resnetv2 export --out {prefix} ...`"
            )
        self.files = files
        if preprocess is None and os.path.isfile(files["preprocess"]):
            preprocess = Preprocess.load(files["preprocess"])
        self.preprocess = preprocess
        try:
            with warnings.catch_warnings():
                # SymbolBlock cannot infer the input's dtype from the graph and says so; it is float32.
                warnings.filterwarnings("ignore", message="Cannot decide type")
                self.net = mx.gluon.SymbolBlock.imports(files["symbol"], ["data"], files["params"], ctx=self.ctx)
        except (mx.base.MXNetError, AssertionError, ValueError, KeyError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(
                f"export {prefix!r} cannot be loaded ({first}); are {files['symbol']} and "
                f"{files['params']} from the same export?"
            ) from None
        self.net.hybridize(static_alloc=True, static_shape=True)
        self.fused = False
        if fuse and self.ctx.device_type == "cpu":
            shape = (self.batch_size,) + tuple(self.preprocess.input_shape) if self.preprocess else None
            if shape is None:
                raise ValueError("fuse=True needs the input shape: keep PREFIX-preprocess.json or pass preprocess")
            self.net = fuse_net(self.net, shape)
            self.fused = True

    @property
    def classes(self):
        return self.preprocess.classes if self.preprocess else None

    def _require_preprocess(self):
        if self.preprocess is None:
            raise FileNotFoundError(
                f"{self.files['preprocess']}: preprocessing file missing; re-export with "
                f"`gluon-resnetv2 export` or pass preprocess=Preprocess(...)"
            )
        return self.preprocess

    def load(self, inputs, resize=True, on_error=None):
        """Image files / ``.npy`` paths -> ``(names, normalised (N, C, H, W) float32 batch)``.

        An input that cannot be read or converted raises, or with ``on_error`` is left out after
        ``on_error(path, error)`` (the others are still classified).
        """
        pre = self._require_preprocess()
        names, batches = [], []
        for path in inputs:
            try:
                items = read_inputs([path], tuple(pre.input_shape))
                batch = pre.prepare([image for _, image in items], [name for name, _ in items], resize=resize)
            except (ValueError, OSError) as err:
                if on_error is None:
                    raise
                on_error(path, err)
                continue
            names += [name for name, _ in items]
            batches.append(batch)
        return names, (np.concatenate(batches) if batches else np.zeros((0,) + tuple(pre.input_shape), np.float32))

    def logits(self, batch):
        """Normalised ``(N, C, H, W)`` batch (numpy or NDArray) -> ``(N, classes)`` numpy logits."""
        batch = batch.asnumpy() if isinstance(batch, mx.nd.NDArray) else np.asarray(batch, np.float32)
        if batch.ndim != 4:
            raise ValueError(f"batch of shape {batch.shape}: expected (N, C, H, W)")
        if self.preprocess is not None and tuple(batch.shape[1:]) != tuple(self.preprocess.input_shape):
            raise ValueError(
                f"batch of shape {batch.shape}: the export expects (N, "
                f"{', '.join(map(str, self.preprocess.input_shape))})"
            )
        outputs = []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start : start + self.batch_size]
            count = len(chunk)
            if self.fused and count < self.batch_size:
                # The fused graph was partitioned for a static batch size: pad the last chunk.
                chunk = np.concatenate([chunk, np.zeros((self.batch_size - count,) + chunk.shape[1:], chunk.dtype)])
            out = self.net(mx.nd.array(chunk, ctx=self.ctx))
            outputs.append(out.asnumpy()[:count])
        return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)

    def predict(self, inputs, resize=True, on_error=None):
        """Paths -> ``(names, probabilities (N, classes))``; ``on_error`` as in :meth:`load`."""
        names, batch = self.load(inputs, resize=resize, on_error=on_error)
        return names, softmax(self.logits(batch)) if names else np.zeros((0, 0), np.float32)

    def top_k(self, inputs, k=5, resize=True, on_error=None):
        """Paths -> list of ``(name, [(class_name, probability, index), ...])``, best first; ``on_error`` as
        in :meth:`load`."""
        names, probs = self.predict(inputs, resize=resize, on_error=on_error)
        k = max(1, min(int(k), probs.shape[1]))
        results = []
        for name, row in zip(names, probs):
            order = np.argsort(-row, kind="stable")[:k]
            results.append((name, [(self.preprocess.class_name(int(i)), float(row[i]), int(i)) for i in order]))
        return results
