"""oneDNN fusion of the whole network (deploy.fuse): what is fused, BatchNorm+ReLU, same outputs."""

import json

import mxnet as mx
import numpy as np
import pytest

from gluon_resnetv2 import get_model
from gluon_resnetv2.deploy import fuse, fuse_bn_relu, fusion_breakdown

SHAPE = (8, 1, 28, 28)
CONV_BN_RELU = "_sg_mkldnn_conv(Convolution+BatchNorm+Activation)"


def _net(name):
    mx.random.seed(1)
    net = get_model(name, classes=10)
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    net(mx.nd.zeros((1,) + SHAPE[1:]))
    rng = np.random.default_rng(2)
    for pname, param in net.collect_params().items():  # BN statistics that are not the identity
        if pname.endswith(("running_mean", "beta")):
            param.set_data(mx.nd.array(rng.normal(0, 0.3, param.shape)))
        elif pname.endswith(("running_var", "gamma")):
            param.set_data(mx.nd.array(rng.uniform(0.5, 1.5, param.shape)))
    return net


@pytest.mark.parametrize("name", ["cifar_resnet20_v2", "cifar_resnet20_v1"])
def test_fused_network_computes_the_plain_one(name):
    net = _net(name)
    x = mx.nd.array(np.random.default_rng(3).standard_normal(SHAPE))
    with mx.autograd.predict_mode():
        expected = net(x).asnumpy()
    for bn_relu in (True, False):
        np.testing.assert_allclose(fuse(net, SHAPE, bn_relu=bn_relu)(x).asnumpy(), expected, rtol=1e-4, atol=1e-4)


def test_breakdown_of_a_preactivation_resnet20():
    """ResNet-20 v2: every convolution is a oneDNN subgraph: 10 absorb the BN-ReLU after them (9 branch
    convolutions and the stem, which the first unit's pre-activation follows), 9 the residual addition, the
    2 projection shortcuts nothing; the 9 BN-ReLU pairs after an addition (8 pre-activations and the
    head's) become BatchNormWithReLU."""
    net = _net("cifar_resnet20_v2")
    fused = fusion_breakdown(fuse(net, SHAPE))
    assert fused["fused"] == {
        CONV_BN_RELU: 10,
        "_sg_mkldnn_conv(Convolution+elemwise_add)": 9,
        "_sg_mkldnn_conv(Convolution)": 2,
        "_sg_mkldnn_fully_connected(FullyConnected)": 1,
    }
    assert fused["apart"] == {"_contrib_BatchNormWithReLU": 9, "Pooling": 1, "Flatten": 1}
    plain = fusion_breakdown(fuse(net, SHAPE, bn_relu=False))
    assert plain["apart"] == {"BatchNorm": 9, "Activation": 9, "Pooling": 1, "Flatten": 1}


def test_breakdown_of_an_original_resnet20_leaves_nothing_apart():
    fused = fusion_breakdown(fuse(_net("cifar_resnet20_v1"), SHAPE))
    assert fused["fused"]["_sg_mkldnn_conv(Convolution+BatchNorm+elemwise_add+Activation)"] == 9
    assert fused["apart"] == {"Pooling": 1, "Flatten": 1}


def test_fuse_bn_relu_keeps_a_batchnorm_read_twice():
    data = mx.sym.var("data")
    bn = mx.sym.BatchNorm(data, name="bn")
    graph = mx.sym.Group([mx.sym.relu(bn), bn * 2])
    new, count = fuse_bn_relu(json.loads(graph.tojson()))
    assert count == 0 and new == json.loads(graph.tojson())
    single = json.loads(mx.sym.relu(mx.sym.BatchNorm(data, name="bn")).tojson())
    new, count = fuse_bn_relu(single)
    assert count == 1 and [n["op"] for n in new["nodes"] if n["op"] != "null"] == ["_contrib_BatchNormWithReLU"]
    assert mx.sym.load_json(json.dumps(new)).list_arguments() == ["data", "bn_gamma", "bn_beta"]
