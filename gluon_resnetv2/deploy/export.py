"""Export a network to MXNet's symbolic format: ``path-symbol.json`` and ``path-0000.params``."""

import os
import tempfile
from collections.abc import Sequence

import mxnet as mx

from ..fileio import atomic_write_bytes


def export(
    net: mx.gluon.HybridBlock, path: str, input_shape: Sequence[int], epoch: int = 0, ctx: mx.Context | None = None
) -> tuple[str, str]:
    """Hybridize ``net`` (initialised), trace it on zeros of ``input_shape`` (N, C, H, W) and write
    ``path-symbol.json`` and ``path-%04d.params``.  Load with
    ``mx.gluon.SymbolBlock.imports(path + '-symbol.json', ['data'], path + '-0000.params')``.

    Returns the two file names.
    """
    if len(tuple(input_shape)) != 4:
        raise ValueError(f"input_shape={input_shape!r}: expected (batch, channels, height, width)")
    if any(p._data is None and p._deferred_init == () for p in net.collect_params().values()):
        raise ValueError("export: the network is not initialised; call net.initialize() or load parameters first")

    ctx = ctx or mx.cpu()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    net.hybridize()
    with mx.autograd.predict_mode():
        net(mx.nd.zeros(tuple(input_shape), ctx=ctx))
    names = f"{path}-symbol.json", f"{path}-{epoch:04d}.params"
    # MXNet's own writer reports an unwritable path with a C++ backtrace: write to a temporary directory and
    # move the files into place ourselves (each atomically; an OSError names the path).
    with tempfile.TemporaryDirectory(prefix="gluon-resnetv2-export-") as tmp:
        net.export(os.path.join(tmp, "net"), epoch=epoch)
        for name, written in zip(names, ("net-symbol.json", f"net-{epoch:04d}.params")):
            with open(os.path.join(tmp, written), "rb") as handle:
                atomic_write_bytes(name, handle.read())
    return names
