"""Residual branches F(x): basic (two 3x3), bottleneck (1x1-3x3-1x1) and single 3x3 (Table 3's
"1-layer skip"), each with the BN/ReLU placement of a Fig. 4 ordering.

Between two convolutions there is always BN-ReLU; after the last convolution comes the ordering's
``tail`` (BN for Fig. 4(a, d), BN-ReLU for (c), nothing for (b, e)).  The ordering's pre-activation is
*not* part of the branch: it belongs to the unit, because the shortcut may read it too (Sec. 4.1).
"""

from dataclasses import dataclass

from mxnet.gluon import nn

from .init import HE_INIT
from .orderings import get_ordering


@dataclass(frozen=True)
class ConvSpec:
    channels: int
    kernel: int
    stride: int = 1
    bias: bool = False


def basic_convs(channels, stride, **_):
    """Fig. 1 / Fig. 4 basic unit: two 3x3 convolutions, the first one strided."""
    return [ConvSpec(channels, 3, stride), ConvSpec(channels, 3)]


#: Where a halving bottleneck puts its stride: on the first 1x1 or on the 3x3 convolution.
STRIDE_ON = ("first", "3x3")


def bottleneck_convs(channels, stride, stride_on="first", bias=False, **_):
    """Bottleneck unit (Sec. 4, ResNet-164/1001): 1x1 reducing to ``channels // 4``, 3x3, 1x1 restoring.

    Where the unit halves the map, ``stride_on='first'`` (default) strides the first 1x1 convolution, as
    the authors' released CIFAR code (KaimingHe/resnet-1k-layers ``resnet-pre-act.lua``, both unit shapes),
    MSRA's Caffe models and gluoncv's v1 bottleneck do; ``'3x3'`` strides the 3x3 convolution, as
    fb.resnet.torch (``models/preresnet.lua``, ``models/resnet.lua``) and gluoncv's v2 bottleneck do.
    ``bias`` adds biases to the two 1x1 convolutions (gluoncv's v1 bottleneck has them).
    """
    if channels % 4:
        raise ValueError(f"bottleneck channels={channels} must be divisible by 4 (the 1x1 reduces to channels/4)")
    if stride_on not in STRIDE_ON:
        raise ValueError(f"stride_on={stride_on!r}: expected one of {', '.join(map(repr, STRIDE_ON))}")
    first, middle = (stride, 1) if stride_on == "first" else (1, stride)
    width = channels // 4
    return [ConvSpec(width, 1, first, bias), ConvSpec(width, 3, middle), ConvSpec(channels, 1, 1, bias)]


def single_convs(channels, stride, **_):
    """Table 3's "ResNet-110 (1-layer skip)": a unit whose branch is one 3x3 convolution."""
    return [ConvSpec(channels, 3, stride)]


BRANCHES = {"basic": basic_convs, "bottleneck": bottleneck_convs, "single": single_convs}


def conv(spec, in_channels=0):
    """A convolution with He initialisation and 'same' padding."""
    return nn.Conv2D(
        spec.channels,
        spec.kernel,
        strides=spec.stride,
        padding=spec.kernel // 2,
        use_bias=spec.bias,
        in_channels=in_channels,
        weight_initializer=HE_INIT,
    )


class ResidualBranch(nn.HybridSequential):
    """F(x): the convolutions of ``branch`` with BN-ReLU between them and the ordering's tail after them.

    Parameters
    ----------
    branch : 'basic' | 'bottleneck' | 'single'
    channels : output channels of the unit (bottleneck: the restored width, 4x the 3x3's width)
    stride : stride of the unit (where it halves the feature map)
    in_channels : input channels (0 = infer)
    activation : Fig. 4 ordering name, decides the tail
    branch_kwargs : ``stride_on``/``bias`` of :func:`bottleneck_convs`
    """

    def __init__(
        self,
        branch,
        channels,
        stride,
        in_channels=0,
        activation="full_preact",
        norm_layer=nn.BatchNorm,
        norm_kwargs=None,
        branch_kwargs=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        try:
            make_convs = BRANCHES[branch]
        except KeyError:
            raise ValueError(f"branch={branch!r}: expected one of {', '.join(BRANCHES)}") from None
        ordering = get_ordering(activation)
        specs = make_convs(channels, stride, **(branch_kwargs or {}))
        norm_kwargs = norm_kwargs or {}
        with self.name_scope():
            for i, spec in enumerate(specs):
                self.add(conv(spec, in_channels if i == 0 else specs[i - 1].channels))
                ops = ordering.tail if i == len(specs) - 1 else ("bn", "relu")
                for op in ops:
                    self.add(norm_layer(**norm_kwargs) if op == "bn" else nn.Activation("relu"))
