"""Export a network to MXNet's symbolic format: ``path-symbol.json`` and ``path-0000.params``."""

import errno
import os
from collections.abc import Sequence

import mxnet as mx

from ..fileio import staged


def _check(net, input_shape):
    if len(tuple(input_shape)) != 4:
        raise ValueError(f"input_shape={input_shape!r}: expected (batch, channels, height, width)")
    if any(p._data is None and p._deferred_init == () for p in net.collect_params().values()):
        raise ValueError("export: the network is not initialised; call net.initialize() or load parameters first")


def input_channels(net):
    """The number of input channels ``net``'s parameters were made for (its first convolution's), or None
    while that is still deferred."""
    for param in net.collect_params().values():
        if len(param.shape) == 4:  # the stem convolution, registered before every other 4-D weight
            return int(param.shape[1]) if param.shape[1] else None
    return None


def write_export(net, symbol_file, params_file, input_shape, epoch=0, ctx=None, names=None):
    """Trace ``net`` on zeros of ``input_shape`` and write its graph to ``symbol_file`` and its parameters to
    ``params_file`` (paths inside a :func:`~gluon_resnetv2.fileio.staged` directory; ``names`` are the
    files they become, for error messages)."""
    _check(net, input_shape)
    channels = input_channels(net)
    if channels is not None and channels != input_shape[1]:
        raise ValueError(
            f"the network was trained on {channels}-channel images; this export expects {input_shape[1]} "
            f"(input shape {tuple(input_shape)})"
        )
    names = names or (symbol_file, params_file)
    ctx = ctx or mx.cpu()
    net.hybridize()
    with mx.autograd.predict_mode():
        net(mx.nd.zeros(tuple(input_shape), ctx=ctx))
    scratch = os.path.join(os.path.dirname(params_file), "mxnet")
    os.makedirs(scratch, exist_ok=True)
    try:
        net.export(os.path.join(scratch, "net"), epoch=epoch)
    except mx.base.MXNetError as err:
        # dmlc-core's writer reports a full disk or an I/O error as a C++ backtrace ending in "Write
        # incomplete": name the export's file and the reason instead.
        written = [n for n in os.listdir(scratch) if os.path.getsize(os.path.join(scratch, n))]
        target = names[1] if any(n.endswith(".params") for n in written) else names[0]
        stat = os.statvfs(scratch)
        code = errno.ENOSPC if stat.f_bavail * stat.f_frsize < 1 << 20 else errno.EIO
        reason = os.strerror(code) if code == errno.ENOSPC else f"{os.strerror(code)} (MXNet: {_last_line(err)})"
        raise OSError(code, reason, target) from None
    os.rename(os.path.join(scratch, "net-symbol.json"), symbol_file)
    os.rename(os.path.join(scratch, f"net-{epoch:04d}.params"), params_file)
    os.rmdir(scratch)


def _last_line(err):
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def export(
    net: mx.gluon.HybridBlock, path: str, input_shape: Sequence[int], epoch: int = 0, ctx: mx.Context | None = None
) -> tuple[str, str]:
    """Hybridize ``net`` (initialised), trace it on zeros of ``input_shape`` (N, C, H, W) and write
    ``path-symbol.json`` and ``path-%04d.params``, both or neither (an interrupted or failing export leaves
    earlier files at ``path`` as they were).  Load with
    ``mx.gluon.SymbolBlock.imports(path + '-symbol.json', ['data'], path + '-0000.params')``.

    Returns the two file names.
    """
    _check(net, input_shape)
    names = f"{path}-symbol.json", f"{path}-{epoch:04d}.params"
    with staged(names) as stage:
        write_export(net, stage.path(names[0]), stage.path(names[1]), input_shape, epoch, ctx, names)
    return names
