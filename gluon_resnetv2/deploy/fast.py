"""CPU inference fast paths: oneDNN (MKLDNN) graph fusion and INT8 post-training quantization.

Both return a *new* block and leave the network they are given untouched (its parameters are copied), so
a training network can be fused or quantized for evaluation and keep training.

* :func:`fuse` partitions the graph with MXNet's ``MKLDNN`` subgraph backend: Convolution + BatchNorm
  (+ ReLU) and Convolution + elementwise-add (the residual addition) become single oneDNN primitives,
  removing a memory round trip per fused operator.  In a pre-activation unit (BN-ReLU-conv-BN-ReLU-conv,
  +) the pattern conv -> BN -> ReLU inside the branch and conv -> add at its end are fusable; the unit's
  leading BN-ReLU is not (it follows the addition), so :func:`fuse` then turns each remaining
  BatchNorm -> ReLU pair into MXNet's ``_contrib_BatchNormWithReLU`` (one oneDNN batch-norm primitive with
  the ReLU applied in place), which mxnet 1.9.1 has as an operator but no partitioning pass applies.
  :func:`fusion_breakdown` lists what was fused and what stayed apart.
* :func:`quantize` runs MXNet's post-training quantization (``quantize_net_v2``): fp32 layer outputs are
  collected on calibration batches, thresholds chosen ('naive': min/max; 'entropy': KL-divergence
  minimisation), and convolutions/FC layers run in INT8 with oneDNN, fused as above.

Figures on Fashion-MNIST (speed and accuracy) are in ``docs/guides/deployment.md``.
"""

import json
import warnings
from collections.abc import Sequence
from typing import Any

import mxnet as mx
from mxnet.contrib.quantization import quantize_net_v2
from mxnet.runtime import Features

CALIB_MODES = ("naive", "entropy", "none")


def _param_ctx(net):
    for param in net.collect_params().values():
        try:
            return param.list_ctx()[0]
        except RuntimeError:  # deferred initialisation
            continue
    return mx.cpu()


def to_symbol_block(net, input_shape, ctx=None):
    """A copy of ``net`` as a ``SymbolBlock`` (same graph, input 'data', parameters copied to ``ctx``)."""
    ctx = ctx or mx.cpu()
    # Settle deferred shapes (inference mode: running statistics are not touched).
    with mx.autograd.predict_mode():
        net(mx.nd.zeros(tuple(input_shape), ctx=_param_ctx(net)))
    data = mx.sym.var("data")
    out = net(data)
    if isinstance(out, (list, tuple)):
        out = mx.sym.Group(list(out))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot decide type")  # the input is float32
        block = mx.gluon.SymbolBlock(out, data)
    source = {param.name: param for param in net.collect_params().values()}
    for name, param in block.collect_params().items():
        if name not in source:
            raise ValueError(f"to_symbol_block: graph parameter {name} not found in the network")
        # _load_init is how load_parameters fills a parameter: shape, dtype and context from the data.
        param._load_init(source[name].data(_param_ctx(net)).copyto(ctx), ctx)
    return block


def _block_from_graph(graph, source):
    """A SymbolBlock of the JSON ``graph`` (input 'data') with the parameters of SymbolBlock ``source``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot decide type")
        copy = mx.gluon.SymbolBlock(mx.sym.load_json(json.dumps(graph)), mx.sym.var("data"))
    params = {param.name: param for param in source.collect_params().values()}
    for name, param in copy.collect_params().items():
        ctx = params[name].list_ctx()[0]
        param._load_init(params[name].data(ctx), ctx)
    return copy


def fuse_bn_relu(graph):
    """Turn every BatchNorm whose output feeds only a ReLU into ``_contrib_BatchNormWithReLU`` and drop the
    ReLU, in the JSON ``graph`` (top level; partitioned subgraphs are left alone).  Returns the new graph
    and the number of pairs fused."""
    nodes = graph["nodes"]
    readers = {}
    for entry in [e for node in nodes for e in node["inputs"]] + graph["heads"]:
        readers[(entry[0], entry[1])] = readers.get((entry[0], entry[1]), 0) + 1
    merged = {}  # ReLU node -> the BatchNorm it is folded into
    for index, node in enumerate(nodes):
        is_relu = node["op"] == "relu" or (
            node["op"] == "Activation" and node.get("attrs", {}).get("act_type") == "relu"
        )
        if is_relu and len(node["inputs"]) == 1:
            source, output = node["inputs"][0][:2]
            if nodes[source]["op"] == "BatchNorm" and output == 0 and readers[(source, 0)] == 1:
                merged[index] = source
    if not merged:
        return graph, 0
    kept = [i for i in range(len(nodes)) if i not in merged]
    position = {old: new for new, old in enumerate(kept)}

    def moved(entry):
        return [position[merged.get(entry[0], entry[0])]] + list(entry[1:])

    new_nodes = []
    for i in kept:
        node = dict(nodes[i], inputs=[moved(e) for e in nodes[i]["inputs"]])
        if i in merged.values():
            node["op"] = "_contrib_BatchNormWithReLU"
        new_nodes.append(node)
    new = {key: value for key, value in graph.items() if key != "node_row_ptr"}  # recomputed on load
    new.update(
        nodes=new_nodes, arg_nodes=[position[i] for i in graph["arg_nodes"]], heads=[moved(h) for h in graph["heads"]]
    )
    return new, len(merged)


def fuse(
    net: mx.gluon.HybridBlock,
    input_shape: Sequence[int],
    backend: str = "MKLDNN",
    ctx: mx.Context | None = None,
    bn_relu: bool = True,
) -> mx.gluon.SymbolBlock:
    """oneDNN graph fusion of ``net`` for inputs of ``input_shape`` (N, C, H, W); returns a new HybridBlock.

    The graph is partitioned with ``backend``'s subgraph properties (conv + BN + ReLU, conv + sum, FC);
    with ``bn_relu`` (MKLDNN only) the BatchNorm -> ReLU pairs left over become
    ``_contrib_BatchNormWithReLU``.  The result runs with static_alloc/static_shape for ``input_shape``;
    other batch sizes still run but the first call at each new shape pays the set-up.  The original
    ``net`` is not modified.
    """

    if backend.upper().startswith("MKLDNN") and not Features().is_enabled("MKLDNN"):
        raise RuntimeError(
            "fuse: this MXNet build has no MKLDNN/oneDNN support (pip install mxnet, the default wheel includes it)"
        )
    ctx = ctx or mx.cpu()
    block = to_symbol_block(net, input_shape, ctx)
    if bn_relu and backend.upper() == "MKLDNN":
        graph = json.loads(block(mx.sym.var("data")).get_backend_symbol(backend).tojson())
        block = _block_from_graph(fuse_bn_relu(graph)[0], block)
        block.hybridize(static_alloc=True, static_shape=True)
        return block
    x = mx.nd.zeros(tuple(input_shape), ctx=ctx)
    block.optimize_for(x, backend=backend, static_alloc=True, static_shape=True)
    return block


def fusion_breakdown(block):
    """What a fused block computes: ``{'fused': {description: count}, 'apart': {operator: count}}``, the
    subgraph operators with the operators each absorbed (e.g. ``'_sg_mkldnn_conv(Convolution+BatchNorm+
    Activation)'``) and the operators left standing alone (variables excluded)."""
    symbol = block._cached_graph[1] if getattr(block, "_cached_graph", None) else block(mx.sym.var("data"))
    fused, apart = {}, {}
    for node in json.loads(symbol.tojson())["nodes"]:
        if node["op"] == "null":
            continue
        inner = [n["op"] for sub in node.get("subgraphs", []) for n in sub["nodes"] if n["op"] != "null"]
        if inner:
            key = f"{node['op']}({'+'.join(inner)})"
            fused[key] = fused.get(key, 0) + 1
        else:
            apart[node["op"]] = apart.get(node["op"], 0) + 1
    return {"fused": fused, "apart": apart}


RESIDUAL_SUM_MODES = ("safe", "unfused", "fused")
# Operators whose output has the sign of their (first) input: a ReLU output stays non-negative through them.
_SIGN_PRESERVING = ("Pooling", "Dropout", "Flatten", "_copy", "identity", "slice", "slice_axis", "Reshape")


def _nonnegative(nodes, index):
    """True if node ``index`` outputs a ReLU result (possibly pooled/sliced): quantized as uint8."""
    node = nodes[index]
    op = node["op"]
    if op == "relu" or (op == "Activation" and node.get("attrs", {}).get("act_type") == "relu"):
        return True
    if op in _SIGN_PRESERVING and node["inputs"]:
        return _nonnegative(nodes, node["inputs"][0][0])
    return False


def _rename_adds(block, mode="safe", op="broadcast_add"):
    """A copy of SymbolBlock ``block`` in which residual ``elemwise_add`` nodes become ``op`` (same values,
    same parameters), so that oneDNN's Convolution + sum fusion pattern, which matches ``elemwise_add``
    only, does not apply to them.  ``mode='safe'`` renames only the additions with a non-negative (ReLU)
    operand, the case mxnet 1.9.1's INT8 conv+sum computes wrongly; ``'unfused'`` renames all of them.
    Returns ``(block, number renamed)``."""
    graph = json.loads(block(mx.sym.var("data")).tojson())
    nodes = graph["nodes"]
    renamed = 0
    for node in nodes:
        if node["op"] != "elemwise_add":
            continue
        if mode == "unfused" or any(_nonnegative(nodes, i[0]) for i in node["inputs"]):
            node["op"] = op
            renamed += 1
    if not renamed:
        return block, 0
    return _block_from_graph(graph, block), renamed


class _Batches:
    """The first ``num_batches`` data arrays of an iterable of ``(data, label)`` pairs or of arrays."""

    def __init__(self, iterable, num_batches):
        self.arrays = []
        for item in iterable:
            data = item[0] if isinstance(item, (tuple, list)) else item
            if not isinstance(data, mx.nd.NDArray):
                data = mx.nd.array(data)
            self.arrays.append(data.as_in_context(mx.cpu()))
            if num_batches is not None and len(self.arrays) >= num_batches:
                break
        if not self.arrays:
            raise ValueError("quantize: the calibration data yielded no batches")

    def as_iter(self):
        """An ``mx.io.NDArrayIter`` over the collected samples, batches of the first batch's size."""
        data = mx.nd.concat(*self.arrays, dim=0) if len(self.arrays) > 1 else self.arrays[0]
        batch = self.arrays[0].shape[0]
        # 'discard' keeps every calibration batch full (the executor is bound for one shape).
        return mx.io.NDArrayIter(data=data, batch_size=batch, last_batch_handle="discard", data_name="data"), (
            data.shape[0] // batch
        ) * batch


def quantize(
    net: mx.gluon.HybridBlock,
    calib_data: Any,
    num_calib_batches: int = 10,
    calib_mode: str = "naive",
    input_shape: Sequence[int] | None = None,
    quantized_dtype: str = "auto",
    exclude_layers_match: Sequence[str] | None = None,
    exclude_operators: Sequence[str] | None = None,
    quantize_granularity: str = "tensor-wise",
    residual_sum: str = "safe",
    ctx: mx.Context | None = None,
    logger: Any = None,
) -> mx.gluon.SymbolBlock:
    """INT8 post-training quantization of ``net`` (CPU, oneDNN); returns a new HybridBlock (SymbolBlock).

    Parameters
    ----------
    net : HybridBlock
        Initialised fp32 network taking normalised NCHW input.
    calib_data : iterable
        Yields ``(data, label)`` pairs or data arrays (NDArray or numpy), e.g. a test or training loader
        of :func:`gluon_resnetv2.data.make_loader`.  Only data are used.
    num_calib_batches : int or None
        How many batches of ``calib_data`` to calibrate on (None: all).
    calib_mode : 'naive' | 'entropy' | 'none'
        'naive' takes the min/max of each layer output over the calibration batches; 'entropy' picks the
        threshold minimising the KL divergence of the quantized distribution; 'none' computes ranges at
        run time (no calibration, slower).
    input_shape : tuple, optional
        Needed only with ``calib_mode='none'`` (no data to take it from).
    quantized_dtype : 'auto' | 'int8' | 'uint8'
    exclude_layers_match : list of str
        Substrings of layer names kept in fp32 (e.g. ``['stem', 'dense']``).
    quantize_granularity : 'tensor-wise' | 'channel-wise'
    residual_sum : 'safe' | 'unfused' | 'fused'
        How residual additions meet oneDNN's INT8 Convolution + sum fusion.  In mxnet 1.9.1 that fusion
        computes wrong results when the summed operand is a ReLU output (quantized as uint8): the first
        unit of every pre-activation net (its shortcut reads the pre-activated input) and every unit of
        the post-activation (original) nets.  On the trained Fashion-MNIST ResNet-20 v2 it moved the
        logits by ~10 and cut test accuracy from 90.4 % to 69.5 %.  MXNet's own switch
        ``MXNET_DISABLE_MKLDNN_FUSE_CONV_SUM=1`` is read once, when libmxnet loads, and would disable all
        conv+sum fusion (fp32 too), so instead the affected additions are renamed ``broadcast_add`` (same
        values, no fusion pattern) in the copy that is quantized.  'safe' (default) renames only those;
        'unfused' renames every residual addition (slower, for comparison); 'fused' keeps MXNet's
        behaviour (wrong, for comparison).
    """

    if calib_mode not in CALIB_MODES:
        raise ValueError(f"calib_mode={calib_mode!r}: expected one of {', '.join(CALIB_MODES)}")
    ctx = ctx or mx.cpu()
    if ctx.device_type != "cpu":
        raise ValueError("quantize: INT8 inference is implemented for the CPU (oneDNN) only")
    if calib_mode == "none":
        if input_shape is None:
            raise ValueError("quantize(calib_mode='none') needs input_shape")
        shape, data_iter, count = tuple(input_shape), None, None
    else:
        batches = _Batches(calib_data, num_calib_batches)
        data_iter, count = batches.as_iter()
        shape = tuple(batches.arrays[0].shape)
    exclude_operators = list(exclude_operators or [])
    if calib_mode == "none" and "BatchNorm" not in exclude_operators:
        # oneDNN's quantized BatchNorm needs calibrated ranges; without calibration keep BN in fp32.
        exclude_operators.append("BatchNorm")
    block = to_symbol_block(net, shape, ctx)
    kwargs = {}
    if data_iter is None:
        kwargs["data_shapes"] = [mx.io.DataDesc("data", shape)]
    if residual_sum not in RESIDUAL_SUM_MODES:
        raise ValueError(f"residual_sum={residual_sum!r}: expected one of {', '.join(RESIDUAL_SUM_MODES)}")
    if residual_sum != "fused":
        block, _ = _rename_adds(block, residual_sum)
    qnet = quantize_net_v2(
        block,
        quantized_dtype=quantized_dtype,
        quantize_mode="full",
        quantize_granularity=quantize_granularity,
        exclude_layers_match=list(exclude_layers_match or []),
        exclude_operators=exclude_operators,
        calib_data=data_iter,
        calib_mode=calib_mode,
        num_calib_examples=count,
        ctx=ctx,
        logger=logger,
        **kwargs,
    )
    qnet.hybridize(static_alloc=True, static_shape=True)
    return qnet
