"""Signal propagation through residual units: the paper's Eqns. 4-8 measured on a real network.

He, Zhang, Ren, Sun, *Identity Mappings in Deep Residual Networks* (ECCV 2016), Sec. 3.  With identity
shortcuts and an identity after-addition activation, any deeper unit L is reached from any shallower unit l
by the sum of the residual functions in between (Eqn. 4) and the gradient splits into two terms (Eqn. 5)::

    x_L = x_l + sum_{i=l}^{L-1} F(x_i, W_i)                                   (Eqn. 4)
    dE/dx_l = dE/dx_L * (1 + d/dx_l sum_{i=l}^{L-1} F(x_i, W_i))              (Eqn. 5)

The ``1`` is the *shortcut-path term*: the gradient of the deeper unit reaches x_l unchanged, whatever the
weights.  A modified shortcut ``h(x_l) = lambda_l x_l`` multiplies that term by the product of the
lambdas (Eqn. 8)::

    dE/dx_l = dE/dx_L * (prod_{i=l}^{L-1} lambda_i + d/dx_l F_hat(x_l, ...))   (Eqn. 8)

which vanishes (lambda < 1) or explodes (lambda > 1) exponentially with depth; gating (lambda = 1 - g(x)),
1x1 convolutions and dropout on the shortcut are the paper's other cases of the same product.

What :func:`measure_propagation` records, for each residual unit l of a network (units in signal order,
``net.residual_units()``; x_l is the unit's *input*, and x_L the *output of the last unit*, i.e. the input
of the head's final BN-ReLU):

``forward_norm``
    ||x_l||, the Frobenius norm of the unit's input over the whole batch.
``grad_norm``, ``grad_ratio``
    ||dE/dx_l|| and ||dE/dx_l|| / ||dE/dx_L||: the *total* gradient of Eqn. 5/8, E being the mean
    softmax cross-entropy of the batch.
``shortcut_path_ratio``
    The first term of Eqn. 5/8 alone: the gradient is carried back *only along the shortcuts* (the
    residual branch's output F and the gate's input are wrapped in ``BlockGrad``, so nothing flows through
    a branch or through g(x); a gate's *value* 1 - g(x) still multiplies the shortcut, which is the
    lambda of Eqn. 8).  The paper's Eqn. 8 describes units whose shortcut needs no dimension change, so
    the term is measured *within a stage*: it starts from the total gradient at the output of the last
    unit of l's stage (where the stage's feature-map size ends) and is divided by that gradient's norm.
    The stage's first unit carries its projection (1x1 conv, or zero padding) and, in pre-activation
    nets, the BN-ReLU the projection reads, so its term is that of those operations, not 1.  For every
    other unit of an identity net it is exactly 1; for constant scaling lambda^(units to the stage end).
``shortcut_path_ratio_net``
    The same term carried all the way from x_L, *through* the projections of later stages.
``expected_shortcut_ratio``
    prod lambda_i of Eqn. 8 where it is a constant (identity: 1, constant scaling: lambda per unit, and
    nothing else in the way: no projection, no pre-activation on the shortcut, no activation after the
    addition); empty where the factor depends on the data (gates, dropout, 1x1 convs, ReLU after the
    addition of the original unit).

BN layers run in training mode (batch statistics, as during training).  Units are run one at a time:
a forward pass keeps each unit's input; the backward pass then recomputes one unit at a time under
``autograd.record`` with its input as a leaf (``attach_grad``) and chains the vector-Jacobian products,
so memory stays that of one unit's graph even for ResNet-1001.  Dropout masks are made identical in the
two passes by seeding the generator per unit.
"""

import math

import mxnet as mx
from mxnet import autograd, gluon

from ..units import ShortcutDropout, walk_blocks
from ..units import shortcuts as sc
from ..units.shortcuts import Identity, Scale


def unit_forward(unit, x, shortcut_path=False):
    """Run one :class:`~gluon_resnetv2.units.ResidualUnit` on ``x`` step by step.

    Returns ``(y, y_shortcut)``: ``y`` is exactly ``unit(x)``; ``y_shortcut`` (when ``shortcut_path``) has
    the same value but lets gradient through the shortcut only: the residual branch's output and the
    gate's input are cut with ``BlockGrad``, so that its Jacobian is the ``h'`` (times ``1 - g``) of Eqn. 8
    followed by the after-addition activation ``f``.  Both share the shortcut's output, so a dropout
    shortcut uses one mask.
    """
    preactivated = unit.preact(x)
    source = preactivated if unit.shortcut_source == "preact" else x
    h = unit.shortcut(source)
    residual = unit.branch(preactivated)
    y = unit.postact(unit.merge(h, residual, source))
    if not shortcut_path:
        return y, None
    blocked = unit.postact(unit.merge(h, mx.nd.BlockGrad(residual), mx.nd.BlockGrad(source)))
    return y, blocked


def _describe_block(block):
    """Short names of the operations on a shortcut path (for the CSV's ``shortcut_ops``)."""

    if isinstance(block, sc.Identity):
        return []
    if isinstance(block, sc.Scale):
        return [f"scale({block._factor:g})"]
    if isinstance(block, sc.ShortcutDropout):
        return [f"dropout({block._rate:g})"]
    if isinstance(block, sc.ZeroPadProjection):
        return ["zero_pad"]
    if isinstance(block, sc.Projection):
        return ["conv1x1" + ("-bn" if len(block) > 1 else "")]
    if isinstance(block, gluon.nn.HybridSequential):
        return [op for child in block for op in _describe_block(child)]
    return [type(block).__name__]


def shortcut_ops(unit):
    """What the shortcut path of ``unit`` does to x_l, e.g. ``identity``, ``preact>conv1x1``, ``scale(0.5)``."""
    ops = ["preact"] if unit.shortcut_source == "preact" and len(unit.preact) else []
    ops += _describe_block(unit.shortcut)
    merge = type(unit.merge).__name__
    if merge in ("ExclusiveGate", "ShortcutOnlyGate"):
        ops.append("gate(1-g)")
    if len(unit.postact):
        ops.append(
            "post(" + "-".join(type(b).__name__.lower().replace("activation", "relu") for b in unit.postact) + ")"
        )
    return ">".join(ops) if ops else "identity"


def shortcut_lambda(unit):
    """The constant lambda of Eqn. 8 for this unit's shortcut, or None when it depends on the data.

    Only a bare identity (1) or constant scaling (its factor) read from the raw input, merged by an
    addition and followed by no activation, give a constant.
    """
    if unit.shortcut_source == "preact" and len(unit.preact):
        return None
    if len(unit.postact) or type(unit.merge).__name__ not in ("Add", "ScaledAdd"):
        return None
    if isinstance(unit.shortcut, Identity):
        return 1.0
    if isinstance(unit.shortcut, Scale):
        return unit.shortcut._factor
    return None


def _norm(array):
    return float(mx.nd.norm(array.reshape((-1,))).asscalar())


def _exp(log):
    """exp() that saturates: a ratio beyond the double range is reported as inf (or 0)."""
    if log == -math.inf:
        return 0.0
    if math.isnan(log):
        return math.nan
    return math.exp(log) if log < 709 else math.inf


class _Scaled:
    """A gradient kept as ``exp(log) * vec`` with ``||vec|| = 1``.

    The vector-Jacobian products are linear in the incoming gradient, so each unit can work on a unit
    vector while the norm is carried as a Python float log.  Without this, the gradients of ResNet-1001's
    scaled or gated shortcuts leave float32's range (beyond 3e38, or below 1e-45) within a few hundred
    units and the measurement would read inf/NaN or 0 instead of the ratio.
    """

    def __init__(self, vec, log):
        self.vec, self.log = vec, log

    @classmethod
    def of(cls, grad, log_scale=0.0):
        norm = _norm(grad)
        if norm == 0.0 or log_scale == -math.inf:
            return cls(grad * 0, -math.inf)
        if not math.isfinite(norm):
            return cls(grad, math.nan)
        return cls(grad / norm, log_scale + math.log(norm))

    def then(self, grad):
        """The scaled result of a VJP applied to ``self.vec``."""
        return _Scaled.of(grad, self.log)


def _unit_seed(seed, index):
    # One generator state per unit, so that recomputing a unit draws the same dropout mask.
    return (int(seed) * 1000003 + 7919 * (index + 1)) % (2**31 - 1)


def measure_propagation(net, data, label, seed=0, check=True):
    """Per-unit forward and gradient norms of ``net`` on one batch (see the module docstring).

    ``net`` is a :class:`~gluon_resnetv2.nets.network.ResidualNetwork` (initialised); ``data``/``label``
    NDArrays of one batch.  Returns a list of dicts, one per residual unit (``unit`` = 0 .. U-1, x_l its
    input) plus a last one for x_L (``unit`` = U, the last unit's output), with the keys of
    :data:`CSV_COLUMNS` except ``variant``, ``model`` and ``iterations``.  ``check`` verifies that the
    recomputed units reproduce the forward pass (it would catch nondeterminism).
    """
    units = net.residual_units()
    stage_of, stage_last = [], []
    for s, stage in enumerate(net.stages):
        stage_of += [s] * len(stage)
        stage_last += [i == len(stage) - 1 for i in range(len(stage))]

    # Forward pass, training-mode BN, nothing recorded: keep each unit's input.
    inputs = []
    with autograd.train_mode():
        x = net.stem(data)
        for index, unit in enumerate(units):
            inputs.append(x)
            mx.random.seed(_unit_seed(seed, index))
            x, _ = unit_forward(unit, x)
    x_last = x.copy()
    x_last.attach_grad()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    with autograd.record(train_mode=True):
        loss = loss_fn(net.output(net.head(x_last)), label).mean()
    loss.backward()
    total = _Scaled.of(x_last.grad)
    log_last = total.log
    if not math.isfinite(log_last):
        raise RuntimeError(
            f"dE/dx_L has norm {math.exp(log_last) if log_last < 700 else 'inf'}: the loss gives no "
            f"usable gradient (loss {float(loss.asscalar())})"
        )

    rows = [None] * (len(units) + 1)
    rows[-1] = dict(
        unit=len(units),
        stage=stage_of[-1],
        shortcut_ops="output",
        forward_norm=_norm(x_last),
        grad_norm=_exp(log_last),
        grad_ratio=1.0,
        shortcut_path_ratio=1.0,
        shortcut_path_ratio_net=1.0,
        expected_shortcut_ratio=1.0,
    )
    stage = net_path = total
    stage_ref = log_last
    expected = 1.0
    following = x_last
    for index in range(len(units) - 1, -1, -1):
        unit = units[index]
        if stage_last[index]:
            # Eqn. 8 is taken within a stage: restart the shortcut-only term from the total gradient at
            # the stage's output.
            stage, stage_ref, expected = total, total.log, 1.0
        vjps = _unit_vjps(
            unit,
            inputs[index],
            _unit_seed(seed, index),
            [total.vec, stage.vec, net_path.vec],
            following if check else None,
            index,
        )
        total, stage, net_path = total.then(vjps[0]), stage.then(vjps[1]), net_path.then(vjps[2])
        lam = shortcut_lambda(unit)
        expected = None if (expected is None or lam is None) else expected * lam
        rows[index] = dict(
            unit=index,
            stage=stage_of[index],
            shortcut_ops=shortcut_ops(unit),
            forward_norm=_norm(inputs[index]),
            grad_norm=_exp(total.log),
            grad_ratio=_exp(total.log - log_last),
            shortcut_path_ratio=_exp(stage.log - stage_ref),
            shortcut_path_ratio_net=_exp(net_path.log - log_last),
            expected_shortcut_ratio=expected,
        )
        following = inputs[index]
        inputs[index] = None  # free memory as we go
    return rows


def _has_dropout(block):
    return any(isinstance(b, (ShortcutDropout, gluon.nn.Dropout)) for b in walk_blocks(block))


def _unit_vjps(unit, x_in, seed, head_grads, expected_output=None, index=0, fresh=None):
    """``[J_total^T g_0, J_short^T g_1, J_short^T g_2]`` for one unit at input ``x_in``.

    The unit is recomputed under ``autograd.record`` with ``x_in`` as a leaf.  MXNet 1.9's Dropout loses
    its mask after the first backward pass through a retained graph (later passes act as the identity),
    so a unit with dropout is recorded afresh, with the same seed hence the same mask, for every product;
    other units record once and keep the graph (``fresh=True`` forces re-recording, for tests).
    """
    fresh = _has_dropout(unit) if fresh is None else fresh
    out, graph = [], None
    for k, head in enumerate(head_grads):
        if graph is None or fresh:
            x = x_in.copy()
            x.attach_grad()
            mx.random.seed(seed)
            with autograd.record(train_mode=True):
                y, y_short = unit_forward(unit, x, shortcut_path=True)
            graph = (x, y, y_short)
            if expected_output is not None and k == 0:
                ref = _norm(expected_output)
                diff = _norm(y - expected_output)
                if not diff <= 1e-4 * max(ref, 1e-12):
                    raise RuntimeError(
                        f"unit {index}: recomputing the unit did not reproduce the forward pass "
                        f"(relative difference {diff / max(ref, 1e-12):.3g})"
                    )
        x, y, y_short = graph
        last = fresh or k == len(head_grads) - 1
        out.append(autograd.grad(y if k == 0 else y_short, [x], head_grads=head, retain_graph=not last)[0])
    return out
