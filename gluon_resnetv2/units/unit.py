"""ResidualUnit = pre-activation + residual branch + shortcut + merge + post-activation (Eqns. 1-2).

``y = merge(h(s), F(a), s)``, ``x_{l+1} = post(y)``, where ``a = preact(x)`` and the shortcut's source ``s``
is either the raw input ``x`` or the pre-activated ``a``.  The paper (Sec. 4.1, Fig. 5) has the
shortcut read the pre-activated signal in two places: the first unit of a network ("we adopt the first
activation right after conv1 and before splitting into two paths") and every unit whose shortcut is a
projection (the projection sees the same normalised input as the branch).  Elsewhere the shortcut is
the clean identity of Eqn. 4.
"""

from collections.abc import Callable
from typing import Any

from mxnet.gluon import nn

from .branches import ResidualBranch
from .orderings import get_ordering, make_ops
from .shortcuts import ShortcutSpec, build_shortcut

SHORTCUT_SOURCES = ("input", "preact")


def walk_blocks(block):
    """``block`` and every block below it, depth first (to find a unit's parts, e.g. its dropout)."""
    yield block
    for child in block._children.values():
        yield from walk_blocks(child)


def _raw_input(x, preactivated):
    return x


def _preactivated_input(x, preactivated):
    return preactivated


class ResidualUnit(nn.HybridBlock):
    """One residual unit of any (branch, activation, shortcut) combination of the paper.

    The signature starts like gluoncv's blocks: ``channels, stride, downsample, in_channels, norm_layer,
    norm_kwargs``.

    Parameters
    ----------
    channels : int
        Output channels (bottleneck: the restored width).
    stride : int
        1, or 2 where the unit halves the feature map.
    downsample : bool
        Whether dimensions change (a projection or zero-padding shortcut is needed).
    in_channels : int
        Input channels; 0 infers them (not allowed with ``projection='zero_pad'``).
    norm_layer, norm_kwargs :
        Every BatchNorm of the unit is ``norm_layer(**norm_kwargs)`` (SyncBatchNorm is a drop-in).
    branch : 'basic' | 'bottleneck' | 'single'
    activation : str
        Fig. 4 ordering: 'original', 'bn_after_add', 'relu_before_add', 'relu_preact', 'full_preact'.
    shortcut : str or ShortcutSpec
        Fig. 2 variant: 'identity', 'constant_scaling', 'exclusive_gating', 'shortcut_only_gating',
        'conv1x1', 'dropout'; its options are given as ``shortcut_scale``, ``residual_scale``,
        ``gate_bias``, ``shortcut_dropout``.
    shortcut_source : 'input' | 'preact' | None
        What the shortcut reads.  None applies the paper's rule for a unit that is not the first of its
        network: the pre-activation when ``downsample`` (or a conv1x1 shortcut), else the raw input.
    projection : 'conv' | 'zero_pad'
        Shortcut where dimensions change: option B (1x1 conv) or option A (zero padding).
    branch_kwargs : dict
        ``stride_on`` and ``bias`` for bottleneck branches.
    preactivate : bool
        False drops the ordering's pre-activation, for a unit whose input is already activated: the first
        unit after the ImageNet stem (fb.resnet.torch ``preresnet.lua``'s ``'no_preact'``).
    """

    def __init__(
        self,
        channels: int,
        stride: int = 1,
        downsample: bool = False,
        in_channels: int = 0,
        norm_layer: Callable[..., nn.HybridBlock] = nn.BatchNorm,
        norm_kwargs: dict[str, Any] | None = None,
        branch: str = "basic",
        activation: str = "full_preact",
        shortcut: str | ShortcutSpec = "identity",
        shortcut_scale: float | None = None,
        residual_scale: float | None = None,
        gate_bias: float | None = None,
        shortcut_dropout: float | None = None,
        shortcut_source: str | None = None,
        projection: str = "conv",
        branch_kwargs: dict[str, Any] | None = None,
        preactivate: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        ordering = get_ordering(activation)
        spec = (
            shortcut
            if isinstance(shortcut, ShortcutSpec)
            else ShortcutSpec(shortcut, shortcut_scale, residual_scale, gate_bias, shortcut_dropout)
        )
        if shortcut_source is None:
            shortcut_source = "preact" if (downsample or spec.name == "conv1x1") else "input"
        if shortcut_source not in SHORTCUT_SOURCES:
            raise ValueError(f"shortcut_source={shortcut_source!r}: expected one of {', '.join(SHORTCUT_SOURCES)}")
        if not downsample and stride != 1:
            raise ValueError(f"stride={stride} changes the feature map: pass downsample=True")
        self.ordering, self.spec = ordering, spec
        self.shortcut_source = shortcut_source
        self._source = _preactivated_input if shortcut_source == "preact" else _raw_input
        with self.name_scope():
            self.preact = make_ops(ordering.preact if preactivate else (), norm_layer, norm_kwargs, prefix="preact_")
            self.branch = ResidualBranch(
                branch,
                channels,
                stride,
                in_channels,
                ordering,
                norm_layer,
                norm_kwargs,
                branch_kwargs,
                prefix="branch_",
            )
            self.shortcut, self.merge = build_shortcut(
                spec,
                channels,
                stride,
                downsample,
                in_channels,
                projection,
                projection_norm="bn" in ordering.tail,
                norm_layer=norm_layer,
                norm_kwargs=norm_kwargs,
            )
            self.postact = make_ops(ordering.post, norm_layer, norm_kwargs, prefix="post_")

    def hybrid_forward(self, F, x):
        preactivated = self.preact(x)
        source = self._source(x, preactivated)
        return self.postact(self.merge(self.shortcut(source), self.branch(preactivated), source))
