"""Arithmetic of a network, counted from its graph: forward multiply-adds of convolutions and dense layers.

The network is traced to a symbol, shapes are inferred for one image, and every ``Convolution`` node
contributes ``output elements x (input channels / groups) x kernel height x kernel width`` multiply-adds,
every ``FullyConnected`` node ``output elements x input features``.  BatchNorm, ReLU, additions and pooling
are left out: a few multiply-adds per activation element, under 1 % of a ResNet's arithmetic (though not of
its memory traffic).  FLOPs are 2 per multiply-add; a training step (forward, gradient of the input,
gradient of the weights) is counted as 3 forward passes, the usual convention (the first convolution's
input gradient, which is not needed, is included).
"""

import json
import math

import mxnet as mx

COUNTED_OPS = ("Convolution", "FullyConnected")
FLOPS_PER_MAC = 2
TRAIN_PASSES = 3


def forward_macs(net, input_shape):
    """``{'Convolution': n, 'FullyConnected': m, 'total': n + m}``: multiply-adds of one forward pass of
    ``net`` on one image of ``input_shape`` (C, H, W), from the traced graph's inferred shapes."""
    symbol = net(mx.sym.var("data"))
    if isinstance(symbol, (list, tuple)):
        symbol = mx.sym.Group(list(symbol))
    internals = symbol.get_internals()
    arg_shapes, out_shapes, _ = internals.infer_shape_partial(data=(1,) + tuple(input_shape))
    shapes = dict(zip(internals.list_outputs(), out_shapes))
    shapes.update(zip(internals.list_arguments(), arg_shapes))
    nodes = json.loads(symbol.tojson())["nodes"]
    counts = dict.fromkeys(COUNTED_OPS, 0)
    for node in nodes:
        if node["op"] not in COUNTED_OPS:
            continue
        out = shapes[f"{node['name']}_output"]
        weight = shapes[nodes[node["inputs"][1][0]]["name"]]
        # Convolution weight: (out channels, in channels / groups, kh, kw); dense weight: (units, features)
        counts[node["op"]] += math.prod(out) * math.prod(weight[1:])
    counts["total"] = sum(counts[op] for op in COUNTED_OPS)
    return counts


def gflops(images_per_s, macs, training):
    """Achieved GFLOP/s of ``images_per_s`` for a network of ``macs`` forward multiply-adds per image."""
    if images_per_s is None:
        return None
    return images_per_s * macs * FLOPS_PER_MAC * (TRAIN_PASSES if training else 1) / 1e9
