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
    network on ``ctx`` (default cpu) whose outputs equal gluoncv's.
    """
    from gluoncv.model_zoo import get_model as gluoncv_get_model  # ~0.13 s at import; only this needs it

    ctx = ctx or mx.cpu()
    spec = get_spec(name)
    net = gluoncv_layout_model(name, **kwargs)
    reference = gluoncv_get_model(
        name, **{k: v for k, v in kwargs.items() if k in ("classes", "norm_layer", "norm_kwargs")}
    )
    try:
        reference.load_parameters(params_file, ctx=mx.cpu())
    except (AssertionError, mx.base.MXNetError, OSError) as err:
        raise ValueError(f"{params_file} is not a gluoncv {name} parameter file: {err}") from None
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
