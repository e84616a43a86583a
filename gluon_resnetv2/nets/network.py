"""The residual network shared by the CIFAR and ImageNet families: stem, stages of residual units,
final activation, global average pooling and a fully connected classifier (Sec. 4, Fig. 1).
"""

from dataclasses import dataclass
from typing import Optional

import mxnet as mx
import numpy as np
from mxnet.gluon import nn

from ..units import HE_INIT, ResidualUnit, ShortcutSpec, get_ordering
from ..units.orderings import make_ops

STEMS = ("cifar", "imagenet")
#: Where a halving bottleneck unit strides, per stem: the first 1x1 on CIFAR (the authors' ResNet-164/1001,
#: KaimingHe/resnet-1k-layers ``resnet-pre-act.lua``), the 3x3 on ImageNet (fb.resnet.torch
#: ``models/preresnet.lua``, whose ResNet-200 the paper points to).
BOTTLENECK_STRIDE_ON = {"cifar": "first", "imagenet": "3x3"}


def _known(shape):
    """Whether a parameter's shape is settled (deferred initialisation leaves zeros in it)."""
    return shape is not None and all(d > 0 for d in shape)


@dataclass(frozen=True)
class Layout:
    """Details where implementations differ from the paper.  The default is the paper's; the gluoncv
    layouts (:mod:`gluon_resnetv2.nets.gluoncv`) exist to load gluoncv's weights exactly.

    input_norm : a parameter-free BatchNorm on the input (gluoncv's v2 networks).
    stem_relu : ReLU after conv1's BN in post-activation CIFAR nets (gluoncv's CIFAR v1 omits it).
    shortcut_source : 'paper' (first unit and projections read the pre-activation, Sec. 4.1),
        'projection' (only projections do: gluoncv ImageNet v2), 'raw' (none do: gluoncv CIFAR v2).
    bottleneck_stride_on : 'first' | '3x3' | None, see :func:`gluon_resnetv2.units.branches.bottleneck_convs`.
        None takes the stem's default, :data:`BOTTLENECK_STRIDE_ON`.
    bottleneck_bias : see :func:`gluon_resnetv2.units.branches.bottleneck_convs`.
    first_unit_preact : whether the first unit of an ImageNet pre-activation net activates its input again
        although the stem ends on BN-ReLU-max pool (gluoncv's v2 does; fb.resnet.torch ``preresnet.lua``
        gives that unit ``'no_preact'``, so by default it has none and both its paths read the max pool).
    """

    input_norm: bool = False
    stem_relu: bool = True
    shortcut_source: str = "paper"
    bottleneck_stride_on: Optional[str] = None
    bottleneck_bias: bool = False
    first_unit_preact: bool = False

    def source_for(self, first, downsample):
        """The shortcut source of a unit (see :class:`ResidualUnit`); None lets the unit decide."""
        if self.shortcut_source == "paper":
            return "preact" if first else None
        if self.shortcut_source == "projection":
            return "preact" if downsample else "input"
        if self.shortcut_source == "raw":
            return "input"
        raise ValueError(f"shortcut_source={self.shortcut_source!r}: expected 'paper', 'projection' or 'raw'")


PAPER_LAYOUT = Layout()


class ResidualNetwork(nn.HybridBlock):
    """A residual network of any unit variant.

    ``features`` holds, in order: the stem (``features[0]``), one HybridSequential per stage, and the head
    (final activation of pre-activation nets, global average pooling, flatten: ``features[-1]``);
    ``output`` is the classifier.  :meth:`residual_units` lists the units in order.

    Rules of Sec. 4.1 for pre-activation orderings (Fig. 4(d, e)):
    * CIFAR conv1 has no BN/ReLU of its own: the first unit's pre-activation follows it directly and
      both of that unit's paths read the activated signal.
    * The last unit is followed by an extra activation (the ordering's pre-activation, BN-ReLU for
      full pre-activation) before global pooling.
    * A projection shortcut reads the pre-activated input.

    The ImageNet stem is conv 7x7/2 - BN - ReLU - max pool 3x3/2 for every ordering (the max pool needs an
    activated input).  It is the stem of fb.resnet.torch ``models/preresnet.lua``, whose ResNet-200 the
    paper points to, and as there the first unit after it has no pre-activation of its own (``'no_preact'``):
    its branch and its projection read the max-pool output.  The tests pin the parameter counts of that
    layout for resnet18-200_v2.
    """

    def __init__(
        self,
        stage_units,
        stage_channels,
        stem="cifar",
        stem_channels=16,
        branch="basic",
        classes=10,
        activation="full_preact",
        shortcut="identity",
        shortcut_scale=None,
        residual_scale=None,
        gate_bias=None,
        shortcut_dropout=None,
        projection="conv",
        norm_layer=nn.BatchNorm,
        norm_kwargs=None,
        layout=PAPER_LAYOUT,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if stem not in STEMS:
            raise ValueError(f"stem={stem!r}: expected one of {', '.join(STEMS)}")
        if len(stage_units) != len(stage_channels):
            raise ValueError("stage_units and stage_channels must have one entry per stage")
        if not isinstance(classes, int) or classes < 1:
            raise ValueError(f"classes={classes!r}: expected a positive integer")
        ordering = get_ordering(activation)
        spec = ShortcutSpec(shortcut, shortcut_scale, residual_scale, gate_bias, shortcut_dropout)
        norm_kwargs = dict(norm_kwargs or {})
        self.config = dict(
            stage_units=tuple(stage_units),
            stage_channels=tuple(stage_channels),
            stem=stem,
            branch=branch,
            classes=classes,
            activation=ordering.name,
            shortcut=spec,
            projection=projection,
            layout=layout,
        )
        stride_on = layout.bottleneck_stride_on or BOTTLENECK_STRIDE_ON[stem]
        branch_kwargs = {"stride_on": stride_on, "bias": layout.bottleneck_bias} if branch == "bottleneck" else None
        # The ImageNet stem already ends on BN-ReLU (and max pool): the first unit need not activate again.
        first_preact = stem == "cifar" or layout.first_unit_preact
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            self.features.add(self._stem(stem, stem_channels, ordering, layout, norm_layer, norm_kwargs))
            in_channels = stem_channels
            for i, (units, channels) in enumerate(zip(stage_units, stage_channels)):
                stage = nn.HybridSequential(prefix=f"stage{i + 1}_")
                with stage.name_scope():
                    for j in range(units):
                        stride = 2 if (i > 0 and j == 0) else 1
                        downsample = stride != 1 or in_channels != channels
                        stage.add(
                            ResidualUnit(
                                channels,
                                stride,
                                downsample,
                                in_channels,
                                norm_layer,
                                norm_kwargs,
                                branch=branch,
                                activation=ordering,
                                shortcut=spec,
                                projection=projection,
                                shortcut_source=layout.source_for(i == 0 and j == 0, downsample),
                                branch_kwargs=branch_kwargs,
                                preactivate=first_preact or i > 0 or j > 0,
                                prefix=f"unit{j + 1}_",
                            )
                        )
                        in_channels = channels
                self.features.add(stage)
            head = nn.HybridSequential(prefix="head_")
            with head.name_scope():
                if ordering.is_preactivation:
                    head.add(make_ops(ordering.preact, norm_layer, norm_kwargs, prefix="final_"))
                head.add(nn.GlobalAvgPool2D(), nn.Flatten())
            self.features.add(head)
            self.output = nn.Dense(classes, in_units=in_channels)

    @staticmethod
    def _stem(stem, channels, ordering, layout, norm_layer, norm_kwargs):
        seq = nn.HybridSequential(prefix="stem_")
        with seq.name_scope():
            if layout.input_norm:
                seq.add(norm_layer(scale=False, center=False, **norm_kwargs))
            if stem == "imagenet":
                seq.add(
                    nn.Conv2D(channels, 7, strides=2, padding=3, use_bias=False, weight_initializer=HE_INIT),
                    norm_layer(**norm_kwargs),
                    nn.Activation("relu"),
                    nn.MaxPool2D(3, 2, 1),
                )
                return seq
            seq.add(nn.Conv2D(channels, 3, strides=1, padding=1, use_bias=False, weight_initializer=HE_INIT))
            if not ordering.is_preactivation:
                seq.add(norm_layer(**norm_kwargs))
                if layout.stem_relu:
                    seq.add(nn.Activation("relu"))
        return seq

    @property
    def stem(self):
        return self.features[0]

    @property
    def stages(self):
        return [self.features[i] for i in range(1, len(self.features) - 1)]

    @property
    def head(self):
        return self.features[-1]

    def residual_units(self):
        """All residual units, in the order the signal passes them."""
        return [unit for stage in self.stages for unit in stage]

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))

    def num_trainable_parameters(self):
        """Conv and dense weights and biases, BN gamma and beta (running statistics not counted)."""

        return int(sum(np.prod(p.shape) for p in self.collect_params().values() if p.grad_req != "null"))

    def load_parameters(self, filename, ctx=None, allow_missing=False, ignore_extra=False, **kwargs):
        """Like Gluon's, but a file for another network raises ValueError listing every missing and
        unexpected parameter name (and shape mismatch) instead of an assertion about the first one."""
        loaded = mx.nd.load(filename)
        if not isinstance(loaded, dict):
            raise ValueError(f"{filename}: expected a parameter file written by save_parameters")
        loaded = {k[4:] if k.startswith(("arg:", "aux:")) else k: v for k, v in loaded.items()}
        own = self._collect_params_with_prefix()
        missing = [] if allow_missing else sorted(set(own) - set(loaded))
        unexpected = [] if ignore_extra else sorted(set(loaded) - set(own))
        wrong_shape = [
            f"{k}: file {tuple(loaded[k].shape)} vs network {own[k].shape}"
            for k in own
            if k in loaded and _known(own[k].shape) and tuple(own[k].shape) != tuple(loaded[k].shape)
        ]
        if missing or unexpected or wrong_shape:
            lines = [f"{filename} does not match this network ({self.name}):"]
            for title, names in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong_shape)):
                if names:
                    lines.append(f"  {title} ({len(names)}): {', '.join(names)}")
            lines.append(
                "  Build the network with the same name and options as the one that saved the file "
                "(a gluoncv file loads with gluon_resnetv2.from_gluoncv)."
            )
            raise ValueError("\n".join(lines))
        return super().load_parameters(
            filename, ctx=ctx, allow_missing=allow_missing, ignore_extra=ignore_extra, **kwargs
        )
