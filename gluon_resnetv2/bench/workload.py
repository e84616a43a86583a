"""What every configuration of the throughput benchmark runs: its modes, implementations, input and SGD.

Modes (MXNet implementations)::

    imperative  the Gluon block run op by op
    hybrid      net.hybridize()
    static      net.hybridize(static_alloc=True, static_shape=True)
    fused       gluon_resnetv2.deploy.fuse(net, input_shape): MKLDNN graph fusion        (inference only)
    int8        gluon_resnetv2.deploy.quantize(net, calib_batches, ...): INT8            (inference only)
    bf16        mxnet.contrib.amp.init(target_dtype='bfloat16'), then as 'static'

Implementations: ``gluon_resnetv2`` (this package, model options apply), ``gluoncv``
(``gluoncv.model_zoo.get_model``, the same name) and ``pytorch`` (:mod:`gluon_resnetv2.torch_reference`,
the same architecture, eager mode; rows ``eager`` for fp32 and ``bf16`` for ``torch.autocast`` bfloat16;
only when PyTorch is importable).  A mode that does not apply to an implementation (fused for PyTorch, a
missing ``deploy`` module, ...) is skipped and listed with its reason.
"""

MODES = ("imperative", "hybrid", "static", "fused", "int8", "bf16")
INFERENCE_ONLY_MODES = ("fused", "int8")
IMPLEMENTATIONS = ("gluon_resnetv2", "gluoncv", "pytorch")
#: MXNet modes -> the PyTorch row that stands for them (eager fp32 for the fp32 modes, autocast for bf16).
PYTORCH_MODES = {"imperative": "eager", "hybrid": "eager", "static": "eager", "bf16": "bf16"}
SGD = {"learning_rate": 0.01, "momentum": 0.9, "wd": 1e-4}


def input_shape(network):
    """(C, H, W) of ``network``: 32x32 for CIFAR names, 224x224 otherwise."""
    return (3, 32, 32) if network.startswith("cifar") else (3, 224, 224)


def classes_of(network, model_kwargs):
    """The classifier outputs: ``model_kwargs['classes']``, else 10 for CIFAR names and 1000 otherwise."""
    return (model_kwargs or {}).get("classes", 10 if network.startswith("cifar") else 1000)
