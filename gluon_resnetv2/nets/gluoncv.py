"""gluoncv compatibility: gluoncv's layout of the same networks and :func:`from_gluoncv`.

gluoncv's networks differ from the paper in a few places (see :class:`~.network.Layout`):

* v2 nets start with a parameter-free BatchNorm on the input;
* CIFAR v2 projection shortcuts (and every first unit) read the raw input, not the pre-activation;
  ImageNet v2 first units with an identity shortcut read the raw input too;
* ImageNet v2 first units apply BN-ReLU again after the stem's BN-ReLU-max pool;
* CIFAR v1 has no ReLU after conv1's BN;
* ImageNet v1 bottlenecks stride their first 1x1 convolution, which (like the last one) has a bias.

:func:`from_gluoncv` builds this package's network in gluoncv's layout and copies a gluoncv ``.params``
file into it, so a model trained with gluoncv gives the same outputs here.
"""

import errno
import os
import re
from typing import Any

import mxnet as mx

from .network import Layout, ResidualNetwork
from .zoo import get_spec

GLUONCV_LAYOUTS = {
    ("cifar", "v1"): Layout(stem_relu=False),
    ("cifar", "v2"): Layout(input_norm=True, shortcut_source="raw"),
    ("imagenet", "v1"): Layout(bottleneck_stride_on="first", bottleneck_bias=True),
    ("imagenet", "v2"): Layout(
        input_norm=True, shortcut_source="projection", bottleneck_stride_on="3x3", first_unit_preact=True
    ),
}
GLUONCV_NAMES = tuple(f"cifar_resnet{d}_{v}" for v in ("v1", "v2") for d in (20, 56, 110)) + tuple(
    f"resnet{d}_{v}" for v in ("v1", "v2") for d in (18, 34, 50, 101, 152)
)
_PROBE_SHAPE = {"cifar": (1, 3, 32, 32), "imagenet": (1, 3, 64, 64)}


def gluoncv_layout_model(name, **kwargs):
    """This package's network ``name`` in gluoncv's layout (options as in :func:`get_model`)."""
    if name not in GLUONCV_NAMES:
        raise ValueError(f"{name!r} has no gluoncv counterpart here; supported: {', '.join(GLUONCV_NAMES)}")
    spec = get_spec(name)
    version = re.search(r"_(v[12])$", name).group(1)
    for option in ("activation", "shortcut", "projection", "layout"):
        if kwargs.get(option) is not None:
            raise ValueError(f"from_gluoncv: {option}= cannot be changed, gluoncv's {name} has a fixed layout")
    return spec.build(layout=GLUONCV_LAYOUTS[(spec.family, version)], **kwargs)


def from_gluoncv(name: str, params_file: str | os.PathLike, ctx: Any = None, **kwargs: Any) -> ResidualNetwork:
    """Load a gluoncv model-zoo ``.params`` file for ``name`` into this package's network.

    ``kwargs`` (e.g. ``classes``) are those the gluoncv network was built with.  Returns an initialised
    network on ``ctx`` (default cpu) whose outputs equal gluoncv's.  A missing file, a file that is not MXNet
    parameters and the parameters of another gluoncv network (another depth, version or number of classes)
    each get one line naming the file and what it holds.
    """
    from gluoncv.model_zoo import get_model as gluoncv_get_model  # ~0.13 s at import; only this needs it

    ctx = ctx or mx.cpu()
    spec = get_spec(name)
    net = gluoncv_layout_model(name, **kwargs)
    built = {k: v for k, v in kwargs.items() if k in ("classes", "norm_layer", "norm_kwargs")}
    reference = gluoncv_get_model(name, **built)
    stored = _read_params(params_file, name)
    try:
        reference.load_parameters(params_file, ctx=mx.cpu())
    except (AssertionError, ValueError, mx.base.MXNetError, OSError) as err:
        raise ValueError(_mismatch(params_file, name, stored, reference, err, gluoncv_get_model)) from None
    net.initialize(ctx=mx.cpu())
    net(mx.nd.zeros(_PROBE_SHAPE[spec.family]))  # settle deferred shapes
    ours, theirs = list(net.collect_params().values()), list(reference.collect_params().values())
    # Both networks register their parameters in the same order (stem, units in order with
    # pre-activation/branch before the shortcut, head, classifier); shapes are checked one by one.
    if len(ours) != len(theirs):
        raise ValueError(f"layout mismatch for {name}: {len(ours)} parameters here, {len(theirs)} in gluoncv")
    for mine, other in zip(ours, theirs):
        if mine.shape != other.shape:
            raise ValueError(
                f"layout mismatch for {name}: {mine.name} {mine.shape} vs gluoncv {other.name} {other.shape}"
            )
        mine.set_data(other.data())
    if ctx != mx.cpu():
        net.collect_params().reset_ctx(ctx)
    return net


def _read_params(path, name):
    """The tensors of ``path`` (dmlc-core's own errors carry a C++ backtrace: say what is wrong instead)."""
    path = os.fspath(path)
    expected = f"expected gluoncv {name} parameters (a .params file of gluoncv's model zoo)"
    if not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, f"no such file ({expected})", path)
    try:
        stored = mx.nd.load(path)
    except mx.base.MXNetError:
        raise ValueError(f"{path}: not an MXNet parameter file; {expected}") from None
    if not isinstance(stored, dict):
        raise ValueError(f"{path}: a list of {len(stored)} arrays without names, not network parameters; {expected}")
    return {key.split(":", 1)[-1]: value for key, value in stored.items()}


def _holds(stored, candidate):
    """Whether the tensors ``stored`` have the names of gluoncv network ``candidate``'s parameters."""
    names = set(candidate._collect_params_with_prefix())
    return set(stored) == names or {v.name for v in candidate.collect_params().values()} == set(stored)


def _mismatch(path, name, stored, reference, err, gluoncv_get_model):
    """One line: which gluoncv network (depth, version, classes) ``path`` holds, compared with ``name``."""
    if _holds(stored, reference):
        structural = reference._collect_params_with_prefix()
        for key, param in structural.items():
            have = stored.get(key)
            if have is not None and param.shape and all(param.shape) and tuple(have.shape) != tuple(param.shape):
                if key.startswith("output."):
                    return (
                        f"{path}: gluoncv {name} parameters for {have.shape[0]} classes, not the "
                        f"{param.shape[0]} asked for (--classes {have.shape[0]})"
                    )
                return f"{path}: {key} has shape {tuple(have.shape)} where gluoncv {name} has {param.shape}"
    else:
        family = get_spec(name).family
        ordered = sorted(GLUONCV_NAMES, key=lambda n: get_spec(n).family != family)
        for other in ordered:
            if other != name and _holds(stored, gluoncv_get_model(other)):
                return f"{path} holds gluoncv {other} parameters, not {name}; load it as {other} (--model {other})"
        return f"{path}: parameters of another network ({len(stored)} tensors), not gluoncv {name}'s"
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return f"{path} is not a gluoncv {name} parameter file: {lines[-1] if lines else type(err).__name__}"
