"""Export bundles on disk: their file names, what a user may give for one, and writing one all or nothing.

An export ``PREFIX`` is three files (four with ONNX)::

    PREFIX-symbol.json       the graph (MXNet symbol; input 'data', NCHW float32)
    PREFIX-0000.params       the parameters (running BatchNorm statistics included)
    PREFIX-preprocess.json   input shape, per-channel mean/std (pixel units), class names, data set
    PREFIX.onnx              optional, the same network in ONNX
"""

import glob
import os
import re

from ..fileio import staged
from .export import write_export
from .onnx_export import check_onnx, write_onnx

PARTS = "PREFIX-symbol.json, PREFIX-0000.params and PREFIX-preprocess.json (and PREFIX.onnx with --onnx)"
_SUFFIX = re.compile(r"(-symbol\.json|-preprocess\.json|-\d{4}\.params|\.onnx)$")


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


def resolve_prefix(path):
    """The export prefix ``path`` names: the prefix itself, one of the export's files
    (``PREFIX-symbol.json``, ``PREFIX-0000.params``, ``PREFIX-preprocess.json``, ``PREFIX.onnx``) or a
    directory holding exactly one export.  A training run directory or a directory of several exports is
    an error saying what to give instead."""
    path = os.fspath(path)
    if os.path.isdir(path):
        prefixes = sorted(
            p[: -len("-symbol.json")] for p in glob.glob(os.path.join(glob.escape(path), "*-symbol.json"))
        )
        if len(prefixes) == 1:
            return prefixes[0]
        if prefixes:
            raise ValueError(
                f"{path}: a directory with {len(prefixes)} exports "
                f"({', '.join(os.path.basename(p) for p in prefixes)}); give one prefix, e.g. {prefixes[0]}"
            )
        if any(os.path.isfile(os.path.join(path, n)) for n in ("config.json", "model.params", "checkpoint.zip")):
            raise FileNotFoundError(
                f"{path}: a training run directory, not an export; export it first with "
                f"`gluon-resnetv2 export --params {path} --out PREFIX`, then give PREFIX"
            )
        raise FileNotFoundError(
            f"{path}: a directory without an export; give an export prefix PREFIX (the files {PARTS})"
        )
    return _SUFFIX.sub("", path) if _SUFFIX.search(os.path.basename(path)) else path


def check_out_prefix(prefix):
    """``prefix`` as an output prefix: a directory or a trailing slash is refused (the files would be
    ``DIR/-symbol.json``), one of the export's file names is taken as its prefix."""
    prefix = os.fspath(prefix)
    if not os.path.basename(prefix) or os.path.isdir(prefix):
        raise ValueError(
            f"{prefix}: a directory; give an output prefix such as {os.path.join(prefix, 'r110')} (the files {PARTS})"
        )
    return _SUFFIX.sub("", prefix) if _SUFFIX.search(os.path.basename(prefix)) else prefix


def export_bundle(net, prefix, preprocess, batch_size=1, onnx=False, ctx=None, force=False):
    """Write export ``prefix``: the hybridized graph, its parameters, ``preprocess`` (a
    :class:`~.preprocess.Preprocess`) and, with ``onnx=True``, ``PREFIX.onnx``.  Returns the file dict.

    All or nothing: the files are built in a staging directory beside ``prefix`` and moved into place
    together at the end, so an export that fails (a full disk, no permission, an incompatible onnx) or is
    interrupted (Ctrl-C, SIGTERM) leaves what was at ``prefix`` exactly as it was, and no stray files.
    An existing export at ``prefix`` is an error unless ``force``; then every file of it is replaced and
    those the new export does not write (a stale ``PREFIX.onnx``) are removed.
    """
    prefix = check_out_prefix(prefix)
    existing = bundle_files(prefix)
    if existing and not force:
        raise ValueError(
            f"{prefix} is already an export ({', '.join(existing)}); give --force (force=True) to "
            "replace it, or choose another --out"
        )
    if onnx:
        check_onnx()  # before anything is written
    input_shape = (int(batch_size),) + tuple(preprocess.input_shape)
    files = export_files(prefix)
    if not onnx:
        files.pop("onnx")
    stale = set(existing) - set(files.values())
    with staged(list(files.values()), remove=sorted(stale), what=f"export {prefix}") as stage:
        symbol, params = stage.path(files["symbol"]), stage.path(files["params"])
        write_export(net, symbol, params, input_shape, ctx=ctx, names=(files["symbol"], files["params"]))
        stage.checkpoint()
        preprocess.save(stage.path(files["preprocess"]))
        if onnx:
            stage.checkpoint()
            write_onnx(symbol, params, input_shape, stage.path(files["onnx"]))
        stage.checkpoint()
    return files
