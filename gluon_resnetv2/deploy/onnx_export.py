"""ONNX export through MXNet 1.9.1's exporter (``mx.onnx.export_model``), with two corrections.

1. **Version check.**  The exporter looks up ``onnx.mapping.NP_TYPE_TO_TENSOR_TYPE``; onnx 1.19 removed
   ``onnx.mapping``, and the exporter then fails with an unrelated-looking message.  With numpy < 1.25
   (this project's numpy 1.23.5) onnx 1.19 does not even import: its ``ml_dtypes`` dependency fails with
   an ``AttributeError``.  :func:`check_onnx` detects both before exporting and says what to install
   (``pip install 'gluon-resnetv2[onnx]'``, i.e. ``onnx>=1.14,<1.19``).

2. **BatchNorm with ``scale=False``.**  Gluon's ``BatchNorm(scale=False)`` is MXNet's ``fix_gamma=True``:
   the operator *ignores* gamma (treats it as 1), but the parameter still exists and may hold anything --
   gluoncv's v2 networks start with a parameter-free input BatchNorm whose stored gamma is not 1.  The
   exporter maps BatchNorm to ONNX ``BatchNormalization`` with the stored gamma, so the ONNX model scales
   where MXNet does not.  Since ``fix_gamma`` means gamma == 1 by definition, :func:`export_onnx` sets
   gamma to ones for every ``fix_gamma`` BatchNorm in the parameters it hands to the exporter; the
   ``.params`` file of the MXNet export is left as it is.

Also removed after export: initialisers listed among the graph inputs (the exporter lists every
parameter as an input, which keeps onnxruntime from constant-folding them and invites callers to
override weights).
"""

import contextlib
import io
import json
import os
import sys
from importlib.metadata import PackageNotFoundError, version

import mxnet as mx
import numpy as np

from ..fileio import staged

ONNX_REQUIREMENT = "onnx>=1.14,<1.19"
ONNXRUNTIME_REQUIREMENT = "onnxruntime>=1.16"
INSTALL_HINT = f"pip install 'gluon-resnetv2[onnx]'  (or: pip install '{ONNX_REQUIREMENT}' '{ONNXRUNTIME_REQUIREMENT}')"


class OnnxUnavailable(RuntimeError):
    """onnx is missing or a version mxnet 1.9.1's exporter cannot use."""


def check_onnx():
    """Import and return ``onnx`` if mxnet's exporter can use it; raise :class:`OnnxUnavailable` otherwise."""
    try:
        import onnx  # optional dependency
    except ImportError as err:
        if err.name == "onnx":  # the package itself is missing
            raise OnnxUnavailable(f"ONNX export needs the onnx package: {INSTALL_HINT}") from None
        raise _broken_install(err) from None  # one of its dependencies is
    except Exception as err:  # noqa: BLE001  (a broken install fails in many ways)
        # e.g. onnx 1.19 with numpy < 1.25: its ml_dtypes dependency fails with an AttributeError.
        raise _broken_install(err) from None
    version = getattr(onnx, "__version__", "?")
    try:
        from onnx import mapping  # noqa: F401  (what mxnet's opset translations use)
    except ImportError:
        raise OnnxUnavailable(
            f"onnx {version} is installed, but mxnet 1.9.1's ONNX exporter needs onnx.mapping, which onnx "
            f"1.19 removed; install a compatible version: pip install '{ONNX_REQUIREMENT}'"
        ) from None
    return onnx


def _installed_version():
    try:
        return version("onnx")
    except PackageNotFoundError:
        return None


def _broken_install(err):
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return OnnxUnavailable(
        f"onnx {_installed_version() or '(unknown version)'} is installed but cannot be imported "
        f"({type(err).__name__}: {first}); mxnet 1.9.1's ONNX exporter needs "
        f"'{ONNX_REQUIREMENT}': pip install '{ONNX_REQUIREMENT}'"
    )


def fixed_gamma_names(symbol_json):
    """Names of the gamma parameters of BatchNorm nodes with ``fix_gamma`` true (MXNet's default)."""
    graph = json.loads(symbol_json)
    nodes = graph["nodes"]
    names = []
    for node in nodes:
        if node["op"] != "BatchNorm":
            continue
        fix = str(node.get("attrs", {}).get("fix_gamma", "True")).lower() in ("true", "1")
        if fix:
            gamma_input = node["inputs"][1][0]
            names.append(nodes[gamma_input]["name"])
    return names


def _strip_prefix(params):
    return {k.split(":", 1)[1] if k.startswith(("arg:", "aux:")) else k: v for k, v in params.items()}


def export_onnx(symbol_file, params_file, input_shape, onnx_file, dynamic_batch=True, opset=None, verbose=False):
    """Convert an MXNet export to ONNX; returns ``onnx_file``.

    ``input_shape`` is ``(N, C, H, W)``; with ``dynamic_batch`` the ONNX input's first dimension is the
    symbolic ``batch`` so that any batch size runs.  The model is checked with ``onnx.checker``.  The file is
    written whole or not at all (an interrupted or failing export leaves an earlier ``onnx_file`` as it was).
    """
    check_onnx()
    with staged([onnx_file]) as stage:
        write_onnx(symbol_file, params_file, input_shape, stage.path(onnx_file), dynamic_batch, opset, verbose)
    return onnx_file


def write_onnx(symbol_file, params_file, input_shape, onnx_file, dynamic_batch=True, opset=None, verbose=False):
    """:func:`export_onnx` writing ``onnx_file`` directly (a path in a staging directory)."""
    onnx = check_onnx()
    for path in (symbol_file, params_file):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: export file not found")
    symbol = mx.sym.load(symbol_file)
    params = _strip_prefix(mx.nd.load(params_file))
    for name in fixed_gamma_names(symbol.tojson()):
        if name in params:
            params[name] = mx.nd.ones_like(params[name])
    shape = tuple(int(v) for v in input_shape)
    kwargs = {}
    if dynamic_batch:
        kwargs = {"dynamic": True, "dynamic_input_shapes": [("batch",) + shape[1:]]}
    if opset is not None:
        kwargs["opset_version"] = int(opset)
    os.makedirs(os.path.dirname(os.path.abspath(onnx_file)), exist_ok=True)
    # mxnet 1.9.1's translation of `scalar - x` (the gated shortcuts' 1 - g) prints each such node's name
    # with a bare print(); that is debugging output, not a message for the user.
    with contextlib.redirect_stdout(sys.stdout if verbose else io.StringIO()):
        mx.onnx.export_model(symbol, params, [shape], [np.float32], onnx_file, verbose=verbose, **kwargs)
    model = onnx.load(onnx_file)
    initializers = {init.name for init in model.graph.initializer}
    inputs = [inp for inp in model.graph.input if inp.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    onnx.checker.check_model(model)
    onnx.save(model, onnx_file)
    return onnx_file


class OnnxPredictor:
    """Run an exported ONNX file with onnxruntime (CPU): ``OnnxPredictor(path)(batch) -> logits``."""

    def __init__(self, onnx_file, providers=None):
        try:
            import onnxruntime as ort  # optional dependency
        except ImportError:
            raise OnnxUnavailable(f"running ONNX models needs onnxruntime: {INSTALL_HINT}") from None
        if not os.path.isfile(onnx_file):
            raise FileNotFoundError(f"{onnx_file}: ONNX file not found")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(onnx_file, options, providers=providers or ["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch):
        return self.session.run(None, {self.input_name: np.asarray(batch, np.float32)})[0]
