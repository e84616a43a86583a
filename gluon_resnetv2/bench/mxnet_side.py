"""The MXNet implementations of the throughput benchmark: this package's networks and gluoncv's.

``amp.init`` patches MXNet's operators for good, so a ``bf16`` configuration changes every MXNet
configuration measured after it in the same process (:func:`gluon_resnetv2.bench.runner.plan` puts them last).
"""

import importlib
import sys

import mxnet as mx
from mxnet import autograd, gluon
from mxnet.contrib import amp

from ..nets.zoo import get_model
from .timing import time_steps
from .workload import INFERENCE_ONLY_MODES, SGD, classes_of, input_shape


def import_gluoncv():
    """Import gluoncv even where PyTorch >= 2 is installed.

    gluoncv 0.10 checks the PyTorch version on import and raises RuntimeError ("Legacy torch==2.x
    detected") for torch >= 2.0, which would make gluoncv unusable next to the PyTorch reference.  Its
    MXNet half does not need torch, so torch is hidden while gluoncv's ``__init__`` runs.
    """
    if "gluoncv" in sys.modules:
        return sys.modules["gluoncv"]
    missing = object()
    saved = sys.modules.get("torch", missing)
    sys.modules["torch"] = None  # makes `import torch` raise ImportError, which gluoncv tolerates
    try:
        import gluoncv  # after hiding torch (above); gluoncv also costs ~0.13 s to import
    finally:
        if saved is missing:
            del sys.modules["torch"]
        else:
            sys.modules["torch"] = saved
    return gluoncv


def deploy_functions():
    """``(fuse, quantize, reason)`` from :mod:`gluon_resnetv2.deploy` (or its ``fast`` module where the
    package does not re-export them); a missing one is None and ``reason`` says why."""
    fuse = quantize = None
    reason = ""
    for module_name in ("gluon_resnetv2.deploy", "gluon_resnetv2.deploy.fast"):
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            reason = reason or f"gluon_resnetv2.deploy is not available ({err})"
            continue
        fuse = fuse or getattr(module, "fuse", None)
        quantize = quantize or getattr(module, "quantize", None)
    missing = [n for n, f in (("fuse", fuse), ("quantize", quantize)) if f is None]
    if missing and not reason:
        reason = f"gluon_resnetv2.deploy has no {', '.join(missing)}"
    return fuse, quantize, reason


def build_mxnet_net(network, implementation, model_kwargs=None, ctx=None):
    """An initialised (parameters allocated) MXNet network of ``implementation`` 'gluon_resnetv2' or 'gluoncv'."""
    ctx = ctx or mx.cpu()
    model_kwargs = dict(model_kwargs or {})
    if implementation == "gluon_resnetv2":
        net = get_model(network, **model_kwargs)
    elif implementation == "gluoncv":
        net = import_gluoncv().model_zoo.get_model(
            network,
            classes=model_kwargs.get("classes", 10)
            if network.startswith("cifar")
            else model_kwargs.get("classes", 1000),
        )
    else:
        raise ValueError(f"implementation={implementation!r} is not an MXNet one")
    net.initialize(ctx=ctx)
    net(mx.nd.zeros((1,) + input_shape(network), ctx=ctx))  # finish deferred initialisation
    return net


def _mxnet_batch(network, batch_size, classes, ctx):
    x = mx.nd.random.normal(shape=(batch_size,) + input_shape(network), ctx=ctx)
    y = mx.nd.random.randint(0, classes, shape=(batch_size,), ctx=ctx).astype("float32")
    return x, y


def measure_mxnet(
    network,
    implementation,
    mode,
    batch_size,
    iterations,
    warmup,
    repeats=1,
    model_kwargs=None,
    fuse=None,
    quantize=None,
    ctx=None,
):
    """(train images/s or None, inference images/s) of one MXNet configuration, each a :class:`Rate`."""
    ctx = ctx or mx.cpu()
    classes = classes_of(network, model_kwargs)
    if mode == "bf16":
        if not getattr(amp.amp, "_amp_initialized", False):
            amp.init(target_dtype="bfloat16")
    net = build_mxnet_net(network, implementation, model_kwargs, ctx)
    x, y = _mxnet_batch(network, batch_size, classes, ctx)
    steps = lambda step, n=iterations: time_steps(step, n, warmup, repeats, mx.nd.waitall)  # noqa: E731
    train = None
    if mode in ("hybrid",):
        net.hybridize()
    elif mode in ("static", "bf16"):
        net.hybridize(static_alloc=True, static_shape=True)
    if mode not in INFERENCE_ONLY_MODES:
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        trainer = gluon.Trainer(net.collect_params(), "sgd", dict(SGD))

        def train_step():
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(batch_size)

        train = steps(train_step) * batch_size
    if mode == "fused":
        net = fuse(net, (batch_size,) + input_shape(network))
    elif mode == "int8":
        calib = [mx.nd.random.normal(shape=x.shape, ctx=ctx) for _ in range(2)]
        net = quantize(net, calib, num_calib_batches=len(calib), calib_mode="naive")
    infer = steps(lambda: net(x)) * batch_size
    return train, infer
