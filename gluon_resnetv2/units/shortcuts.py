"""Fig. 2: the shortcut path h(x) and how it merges with the residual branch F(x).

A shortcut variant is two small blocks chosen when the unit is built:

* the *path*, ``source -> h`` (identity, a projection where dimensions change, 0.5 scaling, a 1x1 conv
  on every unit, dropout), and
* the *merge*, ``(h, F, source) -> y`` (plain addition, scaled addition, or a sigmoid gate computed
  from the source).

======================== ============================= ============================ ===========
name                     shortcut                      residual                     Fig. 2
======================== ============================= ============================ ===========
identity                 x                             F(x)                         (a)
constant_scaling         shortcut_scale * x            residual_scale * F(x)        (b)
exclusive_gating         (1 - g(x)) * x                g(x) * F(x)                  (c)
shortcut_only_gating     (1 - g(x)) * x                F(x)                         (d)
conv1x1                  conv1x1(x) (every unit)       F(x)                         (e)
dropout                  dropout(x, shortcut_dropout)  F(x)                         (f)
======================== ============================= ============================ ===========

``g(x) = sigmoid(W_g x + b_g)`` with ``W_g`` a 1x1 convolution and ``b_g`` initialised to ``gate_bias``.
Where a unit changes dimensions, ``x`` above is first projected (option B: 1x1 conv, the default) or
subsampled and zero-padded (option A); with Eqn. 8 in mind every extra factor on this path is what the
paper shows to hamper propagation.
"""

from dataclasses import dataclass

import mxnet as mx
from mxnet.gluon import nn

from ..validate import finite_float, nonneg_float, probability
from .init import HE_INIT

# --- shortcut paths -----------------------------------------------------------------------------


class Identity(nn.HybridBlock):
    """h(x) = x (Fig. 2(a), Eqn. 3's identity mapping)."""

    def hybrid_forward(self, F, x):
        return x


class Projection(nn.HybridSequential):
    """Option B: a strided 1x1 convolution (followed by BN when ``norm`` is set).

    The BN mirrors the branch: the projection is normalised when the branch's output is (Fig. 4(a), (c),
    (d)), and left un-normalised for full pre-activation and BN-after-addition, whose branch ends on a
    bare convolution.
    """

    def __init__(
        self, channels, stride, in_channels=0, norm=False, norm_layer=nn.BatchNorm, norm_kwargs=None, **kwargs
    ):
        super().__init__(**kwargs)
        with self.name_scope():
            self.add(
                nn.Conv2D(
                    channels, 1, strides=stride, use_bias=False, in_channels=in_channels, weight_initializer=HE_INIT
                )
            )
            if norm:
                self.add(norm_layer(**(norm_kwargs or {})))


class ZeroPadProjection(nn.HybridBlock):
    """Option A of the original CIFAR ResNet: subsample by ``stride`` and append zero channels.

    Parameter-free, so the shortcut stays an identity on the channels it keeps.
    """

    def __init__(self, channels, stride, in_channels, **kwargs):
        super().__init__(**kwargs)
        if not in_channels or channels < in_channels:
            raise ValueError(f"zero_pad projection needs in_channels (got {in_channels}) <= channels ({channels})")
        self._stride = stride
        # Zero blocks are cut from the input itself so the graph needs no shape arithmetic.
        pad, self._zero_chunks = channels - in_channels, []
        while pad > 0:
            self._zero_chunks.append(min(pad, in_channels))
            pad -= self._zero_chunks[-1]

    def hybrid_forward(self, F, x):
        x = F.slice(
            x, begin=(None, None, None, None), end=(None, None, None, None), step=(1, 1, self._stride, self._stride)
        )
        zeros = [F.zeros_like(F.slice_axis(x, axis=1, begin=0, end=k)) for k in self._zero_chunks]
        return F.concat(x, *zeros, dim=1)


class Scale(nn.HybridBlock):
    """h(x) = lambda * x (Fig. 2(b))."""

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self._factor = float(factor)

    def hybrid_forward(self, F, x):
        return x * self._factor


class ShortcutDropout(nn.HybridBlock):
    """h(x) = dropout(x) on the shortcut's output (Fig. 2(f)); active in training mode only."""

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self._rate = float(rate)

    def hybrid_forward(self, F, x):
        return F.Dropout(x, p=self._rate)


# --- merges -------------------------------------------------------------------------------------


class Add(nn.HybridBlock):
    """y = h + F (Eqn. 1)."""

    def hybrid_forward(self, F, shortcut, residual, source):
        return shortcut + residual


class ScaledAdd(nn.HybridBlock):
    """y = h + residual_scale * F (Fig. 2(b), the "0.5/0.5" rows of Table 1)."""

    def __init__(self, residual_scale, **kwargs):
        super().__init__(**kwargs)
        self._scale = float(residual_scale)

    def hybrid_forward(self, F, shortcut, residual, source):
        return shortcut + residual * self._scale


class _Gate(nn.HybridBlock):
    """g(x) = sigmoid(W_g x + b_g), W_g a (strided) 1x1 convolution, b_g initialised to ``gate_bias``."""

    def __init__(self, channels, stride, in_channels=0, gate_bias=-6.0, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.gate = nn.Conv2D(
                channels,
                1,
                strides=stride,
                use_bias=True,
                in_channels=in_channels,
                weight_initializer=HE_INIT,
                bias_initializer=mx.init.Constant(gate_bias),
            )

    def _g(self, F, source):
        return F.sigmoid(self.gate(source))


class ExclusiveGate(_Gate):
    """y = (1 - g(x)) * h + g(x) * F (Fig. 2(c), Highway-network style)."""

    def hybrid_forward(self, F, shortcut, residual, source):
        g = self._g(F, source)
        return (1 - g) * shortcut + g * residual


class ShortcutOnlyGate(_Gate):
    """y = (1 - g(x)) * h + F (Fig. 2(d))."""

    def hybrid_forward(self, F, shortcut, residual, source):
        return (1 - self._g(F, source)) * shortcut + residual


# --- the variants as data -----------------------------------------------------------------------

SHORTCUTS = ("identity", "constant_scaling", "exclusive_gating", "shortcut_only_gating", "conv1x1", "dropout")
PROJECTIONS = ("conv", "zero_pad")
#: The range of each shortcut option: the one owner of the checks of :class:`ShortcutSpec`, ``get_model``
#: and the command-line options (commands/model_args.py).
OPTION_RANGES = {
    "shortcut_scale": nonneg_float,
    "residual_scale": nonneg_float,
    "gate_bias": finite_float(),
    "shortcut_dropout": probability,
}
_OPTION_OWNERS = {
    "shortcut_scale": ("constant_scaling",),
    "residual_scale": ("constant_scaling",),
    "gate_bias": ("exclusive_gating", "shortcut_only_gating"),
    "shortcut_dropout": ("dropout",),
}


@dataclass(frozen=True)
class ShortcutSpec:
    """A Fig. 2 shortcut with its options.  Options left ``None`` take the paper's defaults:
    ``shortcut_scale`` 0.5, ``residual_scale`` 1.0, ``gate_bias`` -6 (the best b_g of Table 1 for both
    gatings), ``shortcut_dropout`` 0.5.  Giving an option to a shortcut that has no use for it is an error,
    so that a typo in an experiment cannot silently run the wrong variant."""

    name: str = "identity"
    shortcut_scale: float | None = None
    residual_scale: float | None = None
    gate_bias: float | None = None
    shortcut_dropout: float | None = None

    def __post_init__(self):
        if self.name not in SHORTCUTS:
            raise ValueError(f"shortcut={self.name!r} is not a Fig. 2 variant; expected one of {', '.join(SHORTCUTS)}")
        for option, owners in _OPTION_OWNERS.items():
            value = OPTION_RANGES[option].check(getattr(self, option), option)
            if value is not None and self.name not in owners:
                raise ValueError(
                    f"{option}={value!r} applies to shortcut={' or '.join(map(repr, owners))}, "
                    f"not shortcut={self.name!r}"
                )
        defaults = {"shortcut_scale": 0.5, "residual_scale": 1.0, "gate_bias": -6.0, "shortcut_dropout": 0.5}
        for option, owners in _OPTION_OWNERS.items():
            if self.name in owners and getattr(self, option) is None:
                object.__setattr__(self, option, defaults[option])


def build_shortcut(
    spec,
    channels,
    stride,
    downsample,
    in_channels,
    projection="conv",
    projection_norm=False,
    norm_layer=nn.BatchNorm,
    norm_kwargs=None,
):
    """Return ``(path, merge)`` blocks for the :class:`ShortcutSpec` ``spec`` of one unit."""
    if projection not in PROJECTIONS:
        raise ValueError(f"projection={projection!r}: expected one of {', '.join(PROJECTIONS)}")

    def project():
        if projection == "zero_pad":
            return ZeroPadProjection(channels, stride, in_channels, prefix="shortcut_")
        return Projection(channels, stride, in_channels, projection_norm, norm_layer, norm_kwargs, prefix="shortcut_")

    if spec.name == "conv1x1":
        # Fig. 2(e): a 1x1 convolution on every unit, not only where dimensions change.
        path = Projection(channels, stride, in_channels, projection_norm, norm_layer, norm_kwargs, prefix="shortcut_")
    else:
        base = project() if downsample else None
        extra = {
            "constant_scaling": lambda: Scale(spec.shortcut_scale, prefix="scale_"),
            "dropout": lambda: ShortcutDropout(spec.shortcut_dropout, prefix="dropout_"),
        }.get(spec.name)
        parts = [b for b in (base, extra() if extra else None) if b is not None]
        if not parts:
            path = Identity(prefix="shortcut_")
        elif len(parts) == 1:
            path = parts[0]
        else:
            path = nn.HybridSequential(prefix="shortcut_")
            path.add(*parts)

    if spec.name == "constant_scaling" and spec.residual_scale != 1.0:
        merge = ScaledAdd(spec.residual_scale, prefix="merge_")
    elif spec.name == "exclusive_gating":
        merge = ExclusiveGate(channels, stride, in_channels, spec.gate_bias, prefix="merge_")
    elif spec.name == "shortcut_only_gating":
        merge = ShortcutOnlyGate(channels, stride, in_channels, spec.gate_bias, prefix="merge_")
    else:
        merge = Add(prefix="merge_")
    return path, merge
