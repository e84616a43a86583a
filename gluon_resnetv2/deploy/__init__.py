"""Deployment: exports with their preprocessing, a model-free :class:`Predictor`, ONNX, CPU fast paths.

>>> from gluon_resnetv2.deploy import Preprocess, export_bundle, Predictor
>>> export_bundle(net, 'out/r110', Preprocess.from_dataset(test_set), onnx=True)
>>> Predictor('out/r110').top_k(['shoe.png'], k=5)

Fast CPU inference (figures in docs/guides/deployment.md):

>>> from gluon_resnetv2.deploy import fuse, quantize
>>> fast = fuse(net, (64, 1, 28, 28))                                   # oneDNN fusion, fp32
>>> int8 = quantize(net, test_loader, num_calib_batches=10, calib_mode='naive')   # INT8
"""

from .bundle import export_bundle, export_files, find_epoch, resolve_prefix
from .fast import CALIB_MODES, RESIDUAL_SUM_MODES, fuse, fuse_bn_relu, fusion_breakdown, quantize, to_symbol_block
from .onnx_export import (
    ONNX_REQUIREMENT,
    ONNXRUNTIME_REQUIREMENT,
    OnnxPredictor,
    OnnxUnavailable,
    check_onnx,
    export_onnx,
    fixed_gamma_names,
)
from .predictor import Predictor, resolve_context, softmax
from .preprocess import Preprocess, array_images, read_inputs

__all__ = [
    "Preprocess",
    "Predictor",
    "export_bundle",
    "export_files",
    "find_epoch",
    "resolve_prefix",
    "resolve_context",
    "softmax",
    "read_inputs",
    "array_images",
    "fuse",
    "fuse_bn_relu",
    "fusion_breakdown",
    "quantize",
    "to_symbol_block",
    "CALIB_MODES",
    "RESIDUAL_SUM_MODES",
    "export_onnx",
    "check_onnx",
    "fixed_gamma_names",
    "OnnxPredictor",
    "OnnxUnavailable",
    "ONNX_REQUIREMENT",
    "ONNXRUNTIME_REQUIREMENT",
]
