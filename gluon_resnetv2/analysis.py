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
import csv
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ._compat import import_mxnet

mx = import_mxnet()
from mxnet import autograd, gluon  # noqa: E402

from .nets.zoo import get_model  # noqa: E402
from .units.shortcuts import SHORTCUTS, Identity, Scale  # noqa: E402

#: Options a ``--variant`` may set (see :func:`parse_variant`), with their types.
VARIANT_OPTIONS = {"shortcut_scale": float, "residual_scale": float, "gate_bias": float, "shortcut_dropout": float,
                   "activation": str, "projection": str}

#: The shortcut variants of Fig. 2 / Table 1, as ``--variant`` specs; ``--variant fig2`` expands to these.
FIG2_VARIANTS = (
    "identity",
    "constant_scaling:shortcut_scale=0.5,residual_scale=1",
    "constant_scaling:shortcut_scale=0.5,residual_scale=0.5",
    "constant_scaling:shortcut_scale=0,residual_scale=1",
    "exclusive_gating:gate_bias=0",
    "exclusive_gating:gate_bias=-6",
    "shortcut_only_gating:gate_bias=0",
    "shortcut_only_gating:gate_bias=-6",
    "conv1x1",
    "dropout:shortcut_dropout=0.5",
)
VARIANT_GROUPS = {"fig2": FIG2_VARIANTS}

#: Columns of ``propagation.csv``.
CSV_COLUMNS = ("variant", "model", "iterations", "unit", "stage", "shortcut_ops", "forward_norm", "grad_norm",
               "grad_ratio", "shortcut_path_ratio", "shortcut_path_ratio_net", "expected_shortcut_ratio")


# ------------------------------------------------------------------------------------------- variants

@dataclass(frozen=True)
class Variant:
    """A unit variant to measure: a label and the :func:`~gluon_resnetv2.get_model` keyword arguments."""

    label: str
    kwargs: dict = field(default_factory=dict, hash=False)


def _convert(key, value, text):
    try:
        return VARIANT_OPTIONS[key](value)
    except ValueError:
        raise ValueError(f"variant {text!r}: {key}={value!r} is not a number") from None


def parse_variant(text):
    """Parse ``NAME[:KEY=VALUE[,KEY=VALUE...]]`` into a :class:`Variant`.

    ``NAME`` is a Fig. 2 shortcut (identity, constant_scaling, exclusive_gating, shortcut_only_gating,
    conv1x1, dropout); the keys are ``shortcut_scale``, ``residual_scale``, ``gate_bias``,
    ``shortcut_dropout`` (Table 1's options; '-' may replace '_'), ``activation`` (a Fig. 4 ordering) and
    ``projection``.  Examples: ``identity``, ``constant_scaling:shortcut_scale=0.5,residual_scale=0.5``,
    ``exclusive_gating:gate_bias=-6``.  The label is the text with spaces removed.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty variant {text!r}: expected NAME[:KEY=VALUE,...], NAME one of {', '.join(SHORTCUTS)}")
    text = "".join(text.split())
    name, _, options = text.partition(":")
    if name not in SHORTCUTS:
        raise ValueError(f"variant {text!r}: unknown shortcut {name!r}; expected NAME[:KEY=VALUE,...] with NAME "
                         f"one of {', '.join(SHORTCUTS)} (or a group: {', '.join(VARIANT_GROUPS)})")
    kwargs = {"shortcut": name}
    if options:
        for item in options.split(","):
            key, eq, value = item.partition("=")
            key = key.replace("-", "_")
            if not eq or not value:
                raise ValueError(f"variant {text!r}: {item!r} is not KEY=VALUE")
            if key not in VARIANT_OPTIONS:
                raise ValueError(f"variant {text!r}: unknown option {key!r}; expected one of "
                                 f"{', '.join(VARIANT_OPTIONS)}")
            if key in kwargs:
                raise ValueError(f"variant {text!r}: {key} given twice")
            kwargs[key] = _convert(key, value, text)
    # Build the spec now so that an option given to the wrong shortcut fails before any computation.
    from .units.shortcuts import ShortcutSpec
    ShortcutSpec(name, kwargs.get("shortcut_scale"), kwargs.get("residual_scale"), kwargs.get("gate_bias"),
                 kwargs.get("shortcut_dropout"))
    return Variant(text, kwargs)


def parse_variants(texts):
    """Parse several specs (groups such as ``fig2`` expand in place); duplicates are an error."""
    variants = []
    for text in texts:
        group = VARIANT_GROUPS.get(str(text).strip().lower())
        variants.extend(parse_variant(t) for t in (group if group else (text,)))
    labels = [v.label for v in variants]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"variant(s) given twice: {', '.join(duplicates)}")
    return variants


def variant_from_kwargs(kwargs):
    """A :class:`Variant` for model keyword arguments (e.g. from ``--shortcut --shortcut-scale``)."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    name = kwargs.get("shortcut", "identity")
    opts = [f"{k}={kwargs[k]:g}" if isinstance(kwargs[k], float) else f"{k}={kwargs[k]}"
            for k in VARIANT_OPTIONS if k in kwargs]
    return Variant(name + (":" + ",".join(opts) if opts else ""), dict(kwargs, shortcut=name))


def merge_kwargs(base, variant):
    """``base`` model options (e.g. ``--activation``) with a variant's; a conflicting value is an error."""
    merged = dict(base)
    for key, value in variant.kwargs.items():
        if key in merged and merged[key] != value:
            raise ValueError(f"variant {variant.label!r} sets {key}={value!r} but the model options give "
                             f"{key}={merged[key]!r}")
        merged[key] = value
    return merged


# ------------------------------------------------------------------------------------------- units

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
    from .units import shortcuts as sc

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
    ops = (["preact"] if unit.shortcut_source == "preact" and len(unit.preact) else [])
    ops += _describe_block(unit.shortcut)
    merge = type(unit.merge).__name__
    if merge in ("ExclusiveGate", "ShortcutOnlyGate"):
        ops.append("gate(1-g)")
    if len(unit.postact):
        ops.append("post(" + "-".join(type(b).__name__.lower().replace("activation", "relu")
                                      for b in unit.postact) + ")")
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


# ------------------------------------------------------------------------------------------- measuring

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
    return (int(seed) * 1000003 + 7919 * (index + 1)) % (2 ** 31 - 1)


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
        raise RuntimeError(f"dE/dx_L has norm {math.exp(log_last) if log_last < 700 else 'inf'}: the loss gives no "
                           f"usable gradient (loss {float(loss.asscalar())})")

    rows = [None] * (len(units) + 1)
    rows[-1] = dict(unit=len(units), stage=stage_of[-1], shortcut_ops="output", forward_norm=_norm(x_last),
                    grad_norm=_exp(log_last), grad_ratio=1.0, shortcut_path_ratio=1.0, shortcut_path_ratio_net=1.0,
                    expected_shortcut_ratio=1.0)
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
        vjps = _unit_vjps(unit, inputs[index], _unit_seed(seed, index), [total.vec, stage.vec, net_path.vec],
                          following if check else None, index)
        total, stage, net_path = total.then(vjps[0]), stage.then(vjps[1]), net_path.then(vjps[2])
        lam = shortcut_lambda(unit)
        expected = None if (expected is None or lam is None) else expected * lam
        rows[index] = dict(unit=index, stage=stage_of[index], shortcut_ops=shortcut_ops(unit),
                           forward_norm=_norm(inputs[index]), grad_norm=_exp(total.log),
                           grad_ratio=_exp(total.log - log_last), shortcut_path_ratio=_exp(stage.log - stage_ref),
                           shortcut_path_ratio_net=_exp(net_path.log - log_last), expected_shortcut_ratio=expected)
        following = inputs[index]
        inputs[index] = None  # free memory as we go
    return rows


def _has_dropout(block):
    from .units import ShortcutDropout, walk_blocks

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
                    raise RuntimeError(f"unit {index}: recomputing the unit did not reproduce the forward pass "
                                       f"(relative difference {diff / max(ref, 1e-12):.3g})")
        x, y, y_short = graph
        last = fresh or k == len(head_grads) - 1
        out.append(autograd.grad(y if k == 0 else y_short, [x], head_grads=head, retain_graph=not last)[0])
    return out


# ------------------------------------------------------------------------------------------- data

def load_batch(dataset="fashion-mnist", data_dir=None, batch_size=16, seed=0, split="train"):
    """One batch ``(data, label)`` of real images, normalised, not augmented, drawn with ``seed``."""
    from .data import load_dataset, make_loader

    options = {"num_samples": max(batch_size, 64)} if str(dataset).lower() == "synthetic" else {}
    ds = load_dataset(dataset, data_dir, split, **options)
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 (BatchNorm needs a batch), got {batch_size}")
    if batch_size > len(ds):
        raise ValueError(f"batch_size {batch_size} exceeds the {len(ds)} images of {dataset} {split}")
    loader = make_loader(ds, batch_size, train=True, augment=False, seed=seed, num_workers=0)
    data, label = next(iter(loader.iterate()))
    return data, label, ds


def train_iterations(net, dataset, iterations, batch_size=128, seed=0, lr=None):
    """Train ``net`` for ``iterations`` SGD steps with the paper's CIFAR recipe (momentum 0.9, weight decay
    1e-4, lr 0.01 warm-up for the first 400 iterations then 0.1; Sec. 4 / Appendix).  Returns the losses."""
    from .data import make_loader
    from .train.recipe import CIFAR_RECIPE, LRSchedule

    recipe = CIFAR_RECIPE
    schedule = LRSchedule("constant", lr if lr is not None else recipe.lr, iterations, warmup=recipe.warmup,
                          warmup_lr=recipe.warmup_lr)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": schedule(0), "momentum": recipe.momentum,
                                                          "wd": recipe.wd})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    loader = make_loader(dataset, min(batch_size, len(dataset)), train=True, seed=seed + 1, num_workers=1)
    losses, step = [], 0
    while step < iterations:
        for data, label in loader:
            trainer.set_learning_rate(schedule(step))
            with autograd.record():
                loss = loss_fn(net(data), label)
            loss.backward()
            trainer.step(data.shape[0])
            losses.append(float(loss.mean().asscalar()))
            step += 1
            if step >= iterations:
                break
    return losses


# ------------------------------------------------------------------------------------------- driver

@dataclass
class PropagationResult:
    """The measurement of one variant: its rows (see :data:`CSV_COLUMNS`) and context."""

    variant: Variant
    model: str
    iterations: int
    rows: list
    loss: float = float("nan")
    seconds: float = 0.0

    def summary(self):
        """The figures the README's signal-propagation section quotes: first unit's total gradient ratio, the minimum and maximum
        ratio over units, and the shortcut-path term at unit 1 (the longest span within stage 1)."""
        ratios = [r["grad_ratio"] for r in self.rows[:-1]]
        return dict(variant=self.variant.label, model=self.model, iterations=self.iterations,
                    units=len(self.rows) - 1, ratio_first=ratios[0], ratio_min=min(ratios), ratio_max=max(ratios),
                    argmin=int(np.argmin(ratios)), shortcut_term_unit1=self.rows[1]["shortcut_path_ratio"]
                    if len(self.rows) > 2 else float("nan"),
                    shortcut_term_net_unit0=self.rows[0]["shortcut_path_ratio_net"], loss=self.loss,
                    seconds=self.seconds)


def propagation(model, variants=("identity",), dataset="fashion-mnist", data_dir=None, batch_size=16,
                iterations=0, seed=0, base_kwargs=None, train_batch_size=128, log=None):
    """Measure every variant on the same batch, at initialisation or after ``iterations`` SGD steps.

    ``variants``: :class:`Variant` objects or ``--variant`` strings (see :func:`parse_variant`);
    ``base_kwargs``: model options common to all (e.g. ``activation='original'``).  Each variant's network
    is built and initialised from the same seed (MSRA init, Sec. 4).  Returns a list of
    :class:`PropagationResult`.
    """
    if not variants:
        raise ValueError("no variants to measure")
    if isinstance(variants, str):
        variants = [variants]
    variants = [v for item in variants for v in ([item] if isinstance(item, Variant) else parse_variants([item]))]
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    data, label, ds = load_batch(dataset, data_dir, batch_size, seed)
    kwargs_list = [merge_kwargs(base_kwargs or {}, v) for v in variants]
    if ds.num_classes:
        for kwargs in kwargs_list:
            kwargs.setdefault("classes", ds.num_classes)
    train_set = None
    if iterations:
        from .data import load_dataset
        options = {"num_samples": 512} if str(dataset).lower() == "synthetic" else {}
        train_set = load_dataset(dataset, data_dir, "train", **options)
    results = []
    for variant, kwargs in zip(variants, kwargs_list):
        start = time.time()
        mx.random.seed(seed)
        np.random.seed(seed)
        net = get_model(model, **kwargs)
        net.initialize()
        if iterations:
            train_iterations(net, train_set, iterations, train_batch_size, seed)
        rows = measure_propagation(net, data, label, seed=seed)
        with autograd.train_mode():
            loss = float(gluon.loss.SoftmaxCrossEntropyLoss()(net(data), label).mean().asscalar())
        result = PropagationResult(variant, model, iterations, rows, loss, time.time() - start)
        results.append(result)
        if log:
            s = result.summary()
            log(f"{variant.label}: first unit {s['ratio_first']:.3g} x the last's gradient, min {s['ratio_min']:.3g} "
                f"(unit {s['argmin']}), shortcut-path term at unit 1 {s['shortcut_term_unit1']:.3g} "
                f"[{result.seconds:.0f} s]")
    return results


def write_csv(results, path):
    """``propagation.csv``: one row per (variant, unit), columns :data:`CSV_COLUMNS`."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, CSV_COLUMNS)
        writer.writeheader()
        for result in results:
            for row in result.rows:
                out = dict(row, variant=result.variant.label, model=result.model, iterations=result.iterations)
                for key, value in out.items():
                    if isinstance(value, float):
                        out[key] = f"{value:.8g}"
                    elif value is None:
                        out[key] = ""
                writer.writerow(out)
    return path


def read_csv(path):
    """``propagation.csv`` back as ``{variant: [row dicts]}`` with floats (None for empty cells)."""
    out = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            parsed = {}
            for key, value in row.items():
                if key in ("variant", "model", "shortcut_ops"):
                    parsed[key] = value
                elif key in ("unit", "stage", "iterations"):
                    parsed[key] = int(value)
                else:
                    parsed[key] = float(value) if value not in ("", None) else None
            out.setdefault(parsed["variant"], []).append(parsed)
    return out


def results_from_csv(path):
    """:class:`PropagationResult` objects rebuilt from a ``propagation.csv`` (e.g. to plot it again)."""
    out = []
    for label, rows in read_csv(path).items():
        first = rows[0]
        rows = [{k: v for k, v in r.items() if k not in ("variant", "model", "iterations")} for r in rows]
        out.append(PropagationResult(Variant(label, {}), first["model"], first["iterations"], rows))
    return out


def _positive(values):
    values = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    values[~(values > 0)] = np.nan  # zeros and NaN cannot be drawn on a log axis
    return values


def plot_propagation(results, out_path, title=None):
    """Log-scale plot of dE/dx_l / dE/dx_L against l, one line per variant (left), and of the shortcut-path
    term of Eqn. 8 (within stage; right).  Zero values (e.g. a dropout shortcut) leave gaps."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plot import run_colors

    rows = (len(results) + 1) // 2
    figure = Figure(figsize=(12, 4.8 + 0.22 * rows))
    FigureCanvasAgg(figure)
    total_ax, short_ax = figure.subplots(1, 2)
    colors = run_colors(len(results))
    for result, color in zip(results, colors):
        units = [r["unit"] for r in result.rows]
        total_ax.plot(units, _positive([r["grad_ratio"] for r in result.rows]), color=color, label=result.variant.label)
        short_ax.plot(units, _positive([r["shortcut_path_ratio"] for r in result.rows]), color=color,
                      label=result.variant.label)
    boundaries = [r["unit"] for r in results[0].rows[1:-1] if r["stage"] != results[0].rows[r["unit"] - 1]["stage"]]
    for ax, name in ((total_ax, "total: ||dE/dx_l|| / ||dE/dx_L||  (Eqn. 5/8)"),
                     (short_ax, "shortcut-path term only, within stage (Eqn. 8 prod lambda)")):
        ax.set_yscale("log")
        ax.set_xlabel("residual unit l (x_l = its input; last point = x_L)")
        ax.set_title(name, fontsize=10)
        for b in boundaries:
            ax.axvline(b - 0.5, color="0.8", linewidth=0.8, zorder=0)
        ax.grid(True, which="major", alpha=0.3)
    total_ax.set_ylabel("gradient-norm ratio")
    handles, labels = total_ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    it = results[0].iterations
    figure.suptitle(title or f"{results[0].model}: gradient reaching unit l, "
                    f"{'at initialisation' if not it else f'after {it} iterations'}", fontsize=11)
    figure.tight_layout(rect=(0, 0.03 + 0.038 * rows, 1, 1))
    figure.savefig(out_path, dpi=110)
    return out_path


def summary_markdown(results):
    """A Markdown table of :meth:`PropagationResult.summary` for every variant."""
    lines = ["| variant | units | first unit: dE/dx_l / dE/dx_L | min ratio (unit) | max ratio | shortcut term, unit 1 (stage) "
             "| shortcut term, unit 0 (net) | loss | s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for result in results:
        s = result.summary()
        lines.append(f"| {s['variant']} | {s['units']} | {s['ratio_first']:.3g} | {s['ratio_min']:.3g} ({s['argmin']}) "
                     f"| {s['ratio_max']:.3g} | {s['shortcut_term_unit1']:.3g} | {s['shortcut_term_net_unit0']:.3g} "
                     f"| {s['loss']:.3g} | {s['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def analyze(model, variants, out, dataset="fashion-mnist", data_dir=None, batch_size=16, iterations=0, seed=0,
            base_kwargs=None, log=print):
    """Measure ``variants`` of ``model`` and write ``<out>/propagation.csv``, ``<out>/propagation.png`` and
    ``<out>/summary.md``.  Returns the list of :class:`PropagationResult`."""
    os.makedirs(out, exist_ok=True)
    results = propagation(model, variants, dataset, data_dir, batch_size, iterations, seed, base_kwargs, log=log)
    write_csv(results, os.path.join(out, "propagation.csv"))
    plot_propagation(results, os.path.join(out, "propagation.png"))
    header = (f"# Signal propagation: {model}, {dataset}, batch {batch_size}, seed {seed}, "
              f"{'at initialisation' if not iterations else f'after {iterations} iterations'}\n\n")
    with open(os.path.join(out, "summary.md"), "w", encoding="utf-8") as handle:
        handle.write(header + summary_markdown(results))
    return results
