"""The :class:`Predictor` that runs an export (see :mod:`.bundle`) without the model code."""

import os
import warnings

import mxnet as mx
import numpy as np

from ..fileio import load_json
from ..train.preflight import preflight_gpus
from .bundle import PARTS, export_files, find_epoch, resolve_prefix
from .fast import fuse as fuse_net
from .preprocess import Preprocess, read_inputs


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
        The export prefix (``PREFIX-symbol.json`` ...), one of its files, or a directory holding one export.
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
        prefix = self.prefix = resolve_prefix(prefix)
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
                f"export {prefix!r} is incomplete: missing {', '.join(missing or [files['params']])}; an export "
                f"PREFIX is the files {PARTS}: create it with `gluon-resnetv2 export --out {prefix} ...`"
            )
        self.files = files
        if preprocess is None and os.path.isfile(files["preprocess"]):
            preprocess = Preprocess.load(files["preprocess"])
        self.preprocess = preprocess
        load_json(files["symbol"], "graph (MXNet symbol JSON) written by gluon-resnetv2 export")
        try:
            with warnings.catch_warnings():
                # SymbolBlock cannot infer the input's dtype from the graph and says so; it is float32.
                warnings.filterwarnings("ignore", message="Cannot decide type")
                self.net = mx.gluon.SymbolBlock.imports(files["symbol"], ["data"], files["params"], ctx=self.ctx)
        except (mx.base.MXNetError, AssertionError, ValueError, KeyError) as err:
            lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
            reason = lines[-1] if lines else type(err).__name__
            raise ValueError(
                f"export {prefix!r} cannot be loaded ({reason}); are {files['symbol']} and "
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
        if not names:
            return names, np.zeros((0, 0), np.float32)
        logits = self.logits(batch)
        finite = np.isfinite(logits).all(axis=1)
        if not finite.all():
            for name in (n for n, ok in zip(names, finite) if not ok):
                err = ValueError(
                    f"{name}: the network's output is not finite (NaN or inf); the export's parameters "
                    f"({self.files['params']}) may come from a diverged run, or the input is extreme"
                )
                if on_error is None:
                    raise err
                on_error(name, err)
            names, logits = [n for n, ok in zip(names, finite) if ok], logits[finite]
        return names, softmax(logits) if names else np.zeros((0, 0), np.float32)

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
