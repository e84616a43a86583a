"""``--dtype bfloat16``: mixed-precision training on CPUs with AVX-512 BF16, with MXNet's AMP lists.

MXNet's AMP (``mxnet.contrib.amp``, target ``bfloat16``) runs Convolution and FullyConnected in bfloat16
and keeps the parameters, the optimizer and the loss in float32; BatchNorm, ReLU and pooling follow their
input's type, additions take the widest.  bfloat16 has float32's exponent range, so no loss scaling is
needed (AMP's loss scaler is for float16).

``amp.init()`` would patch MXNet's operator namespaces for the rest of the process (every later network,
float32 runs included, would compute in bfloat16), so instead the network's traced graph is rewritten with
``amp.convert_symbol`` (the same lists, casts inserted in the graph) into a ``SymbolBlock`` that *shares*
the network's float32 ``Parameter`` objects: the trainer, the checkpoints, ``model.params`` and the
BatchNorm statistics are the network's own, and resuming is the float32 code path.
"""

import warnings

import mxnet as mx
from mxnet.contrib import amp

from ..cpu import has_avx512_bf16


def check_bf16(contexts):
    """ValueError unless every context is a CPU with AVX-512 BF16 (oneDNN's bfloat16 kernels need it)."""
    if any(ctx.device_type != "cpu" for ctx in contexts):
        raise ValueError(
            "--dtype bfloat16 trains on the CPU (oneDNN AVX-512 BF16 kernels); on GPUs use --dtype float16"
        )
    if not has_avx512_bf16():
        raise ValueError(
            "--dtype bfloat16 needs a CPU with AVX-512 BF16 (flag avx512_bf16 in /proc/cpuinfo), "
            "which this one lacks: MXNet would emulate bfloat16 slower than float32; train with "
            "--dtype float32"
        )


def bf16_forward(net):
    """A ``SymbolBlock`` computing ``net`` with AMP's bfloat16 casts, sharing ``net``'s parameters.

    ``net`` must be initialised with known shapes (see :func:`gluon_resnetv2.train.steps.materialize`);
    the block takes float32 input named ``data`` and returns float32 logits."""

    data = mx.sym.var("data")
    graph = amp.convert_symbol(net(data), target_dtype="bfloat16", data_names=["data"])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot decide type")  # the input is float32
        block = mx.gluon.SymbolBlock(graph, data, params=net.collect_params())
    block.hybridize(static_alloc=True)
    return block
