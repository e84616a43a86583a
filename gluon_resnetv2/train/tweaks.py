"""Parameter-level options of the modern recipe (issue 21), each off by default: no weight decay on the
normalisation parameters and biases, and zero-initialised residual branches (SyncBatchNorm: :mod:`.syncbn`).

- ``--no-wd-norm-bias``: ``wd_mult = 0`` for every BatchNorm ``gamma`` / ``beta`` and every bias, as
  gluoncv's ``train_imagenet.py --no-wd`` does (``net.collect_params('.*beta|.*gamma|.*bias')``); the paper
  decays every weight (Sec. 3.1: weight decay 1e-4).
- ``--zero-init-last``: each residual branch F starts at zero, so that every unit is the identity at step 0
  (``x_{l+1} = x_l``, the paper's Eqn. 4 with F = 0; Goyal et al. 2017, Sec. 5.1).  Which parameter is
  zeroed follows timm's ``zero_init_last`` (its ``resnet.py`` blocks zero the last BN's weight, its
  pre-activation ``resnetv2.py`` blocks the last conv's weight): the gamma of the BatchNorm after the
  branch's last convolution where the ordering puts one there (Fig. 4 (a) original, (d) ReLU-only
  pre-activation), otherwise the last convolution's weight (Fig. 4 (b) BN after addition, (e) full
  pre-activation, the paper's unit).  Refused for Fig. 4 (c) (ReLU before addition): its branch ends on a
  ReLU, whose zero output passes no gradient back, so a zeroed branch would never train.
  gluoncv's ``last_gamma`` is not used for pre-activation units: in its ``BasicBlockV2`` it zeroes the
  gamma of the BN *before* the last conv, whose ReLU then outputs exact zeros; ReLU's gradient at 0 is 0
  in MXNet, so neither that gamma nor the conv after it ever receives a gradient and the branch stays
  dead.  A zeroed last conv still receives its gradient (its input is not zero).
"""

from mxnet.gluon import nn

from ..units.unit import ResidualUnit, walk_blocks

#: Parameter name endings without weight decay under ``--no-wd-norm-bias``.
NO_WD_SUFFIXES = ("gamma", "beta", "bias")


def exclude_norm_bias_from_wd(net):
    """Set ``wd_mult = 0`` on every BN gamma/beta and bias of ``net``; returns the names changed."""
    names = []
    for name, param in net.collect_params().items():
        if name.endswith(NO_WD_SUFFIXES):
            param.wd_mult = 0.0
            names.append(name)
    return names


def _is_norm(block):
    return isinstance(block, nn.BatchNorm) or type(block).__name__.endswith("BatchNorm")


def last_layer_param(unit):
    """The parameter that :func:`zero_init_last` zeroes in ``unit``'s branch: the gamma of a BN after its
    last convolution, else the last convolution's weight."""
    layers = list(unit.branch._children.values())
    last_conv = max(i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2D))
    after = [layer for layer in layers[last_conv + 1 :] if _is_norm(layer)]
    return after[0].gamma if after else layers[last_conv].weight


def zero_init_last(net):
    """Zero the last layer of every residual branch of ``net`` (see the module doc); returns the params."""
    units = [block for block in walk_blocks(net) if isinstance(block, ResidualUnit)]
    if any(unit.ordering.tail[-1:] == ("relu",) for unit in units):
        raise ValueError(
            "--zero-init-last cannot be used with --activation relu_before_add: its branches end on a ReLU, "
            "which passes no gradient at zero, so they would never train"
        )
    params = [last_layer_param(unit) for unit in units]
    for param in params:
        for array in param.list_data():
            array[:] = 0
    return params
