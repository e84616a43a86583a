"""``gluon-resnetv2 predict PREFIX IMAGE... [--top-k 5] [--gpu N]``: classify images with an export.

Loads ``PREFIX-symbol.json`` / ``-0000.params`` / ``-preprocess.json`` with
:class:`gluon_resnetv2.deploy.Predictor` (no model code involved), preprocesses every input as training
did (grey/RGB conversion, resize to the stored shape, the training set's mean/std) and prints the top-k
classes with their probabilities::

    shoe.png
      1. Ankle boot           0.9712
      2. Sneaker              0.0211
"""

import json
import sys

from ..cli import error_message
from ..deploy import Predictor
from ..validate import nonneg_int, positive_int


def add_parser(subparsers):
    """Register ``predict`` on the ``gluon-resnetv2`` sub-command parsers."""
    parser = subparsers.add_parser(
        "predict",
        help="classify image files / .npy arrays with an exported network",
        description="Top-k classes of images (PNG, JPEG, ...) and .npy arrays (pixels 0..255; HW, HWC, CHW, "
        "or a batch: NHWC, NCHW, or (N, H, W) grey images only when H, W are the export's H, W) with an export "
        "written by `gluon-resnetv2 export`.",
    )
    parser.add_argument("prefix", metavar="PREFIX", help="export prefix (PREFIX-symbol.json ...)")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files and/or .npy arrays")
    parser.add_argument("--top-k", type=positive_int, default=5, help="classes to print per image (default 5)")
    parser.add_argument("--gpu", type=nonneg_int, default=None, metavar="N", help="run on GPU N (default: CPU)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass")
    parser.add_argument(
        "--no-resize",
        action="store_true",
        help="refuse images whose size differs from the export's instead of resizing them",
    )
    parser.add_argument("--fuse", action="store_true", help="oneDNN graph fusion on CPU (faster large batches)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per input instead")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Classify ``args.inputs`` and print the top-k of each; returns 0, or 2 if some inputs could not be read
    (each named on stderr)."""
    predictor = Predictor(args.prefix, device=args.gpu, batch_size=args.batch_size, fuse=args.fuse)
    failed = []

    def skip(path, err):  # a bad file is reported; the good ones are still classified
        failed.append(path)
        print(f"gluon-resnetv2 predict: error: {error_message(err)}", file=sys.stderr)

    results = predictor.top_k(args.inputs, k=args.top_k, resize=not args.no_resize, on_error=skip)
    for name, top in results:
        if args.json:
            print(json.dumps({"input": name, "top_k": [{"class": c, "index": i, "probability": p} for c, p, i in top]}))
            continue
        print(name)
        width = max(len(c) for c, _, _ in top)
        for rank, (label, prob, _) in enumerate(top, 1):
            print(f"  {rank}. {label:<{width}}  {prob:.4f}")
    return 2 if failed else 0
