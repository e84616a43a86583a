"""The PyTorch twin of this package's CIFAR pre-activation networks (``cifar_resnetN_v2``), for benchmarks.

Only imported where PyTorch is installed (it is not a dependency of the package).  The network is the
paper's full pre-activation ResNet (Fig. 4(e), Sec. 4.1) laid out exactly as
:class:`gluon_resnetv2.nets.network.ResidualNetwork` builds ``cifar_resnetN_v2`` with default options:

* conv1 is a bare 3x3 convolution with 16 filters (no BN/ReLU of its own);
* each unit is ``BN-ReLU -> [conv-BN-ReLU]* conv`` plus a shortcut; the first unit of the network and every
  unit that changes dimensions feed the *pre-activated* input to their shortcut, the others the raw input;
* where dimensions change the shortcut is a strided 1x1 convolution without BN (option B);
* after the last unit comes an extra BN-ReLU, then global average pooling and the classifier.

The convolutions of a branch come from the same :data:`gluon_resnetv2.units.branches.BRANCHES` table as
the MXNet network (basic, bottleneck strided where :data:`~gluon_resnetv2.nets.network.BOTTLENECK_STRIDE_ON`
says, single 3x3), so the two cannot drift apart.
:func:`copy_from_gluon` copies an MXNet network's weights into the PyTorch one; ``tests/test_bench.py``
checks that both then give the same outputs and have the same number of trainable parameters.
"""

import torch
from mxnet.gluon import nn as gnn
from torch import nn

from .nets.cifar import CIFAR_BRANCHES, cifar_units_per_stage
from .nets.network import BOTTLENECK_STRIDE_ON
from .nets.zoo import get_spec
from .units.branches import BRANCHES


def _he_conv(in_channels, spec):
    """A bias-free 'same' convolution with He initialisation N(0, sqrt(2 / (k * k * c_out))) as ``HE_INIT``."""
    conv = nn.Conv2d(
        in_channels, spec.channels, spec.kernel, stride=spec.stride, padding=spec.kernel // 2, bias=spec.bias
    )
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


class PreActUnit(nn.Module):
    """One full pre-activation unit: ``a = ReLU(BN(x))``, ``y = h(s) + F(a)`` with ``s`` = ``a`` or ``x``."""

    def __init__(self, branch, in_channels, channels, stride, downsample, shortcut_reads_preact, branch_kwargs=None):
        super().__init__()
        # Registration order = the MXNet unit's (preact, branch, shortcut): copy_from_gluon relies on it.
        self.preact = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=False))
        specs = BRANCHES[branch](channels, stride, **(branch_kwargs or {}))
        layers, width = [], in_channels
        for i, spec in enumerate(specs):
            layers.append(_he_conv(width, spec))
            width = spec.channels
            if i < len(specs) - 1:
                layers += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        self.branch = nn.Sequential(*layers)
        self.shortcut = nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False) if downsample else nn.Identity()
        if downsample:
            nn.init.kaiming_normal_(self.shortcut.weight, mode="fan_out", nonlinearity="relu")
        self.shortcut_reads_preact = shortcut_reads_preact

    def forward(self, x):
        a = self.preact(x)
        return self.shortcut(a if self.shortcut_reads_preact else x) + self.branch(a)


class PreActResNet(nn.Module):
    """CIFAR full pre-activation ResNet of ``depth`` layers with ``branch`` units (basic / bottleneck / single)."""

    def __init__(self, depth, branch="basic", classes=10, stem_channels=16):
        super().__init__()
        n = cifar_units_per_stage(depth, branch)
        channels = CIFAR_BRANCHES[branch][1]
        branch_kwargs = {"stride_on": BOTTLENECK_STRIDE_ON["cifar"], "bias": False} if branch == "bottleneck" else None
        self.stem = nn.Conv2d(3, stem_channels, 3, padding=1, bias=False)
        nn.init.kaiming_normal_(self.stem.weight, mode="fan_out", nonlinearity="relu")
        units, in_channels = [], stem_channels
        for i, width in enumerate(channels):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                downsample = stride != 1 or in_channels != width
                first = i == 0 and j == 0
                units.append(
                    PreActUnit(
                        branch,
                        in_channels,
                        width,
                        stride,
                        downsample,
                        shortcut_reads_preact=first or downsample,
                        branch_kwargs=branch_kwargs,
                    )
                )
                in_channels = width
        self.units = nn.Sequential(*units)
        self.head = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.output = nn.Linear(in_channels, classes)

    def forward(self, x):
        return self.output(self.head(self.units(self.stem(x))))

    def num_trainable_parameters(self):
        """Conv and linear weights and biases, BN weight and bias (running statistics are buffers)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def torch_model(name, classes=10):
    """The PyTorch twin of the registered CIFAR pre-activation network ``name`` (e.g. ``cifar_resnet56_v2``).

    Only default model options have a twin; any other network raises ValueError.
    """
    spec = get_spec(name)
    if spec.family != "cifar" or spec.activation != "full_preact":
        raise ValueError(
            f"{name!r} has no PyTorch reference: only CIFAR full pre-activation networks (cifar_resnetN_v2) do"
        )
    return PreActResNet(spec.depth, spec.branch, classes=classes)


def _gluon_layers(block):
    """The Conv2D / BatchNorm / Dense leaves of a Gluon block, in registration order."""

    if isinstance(block, (gnn.Conv2D, gnn.BatchNorm, gnn.Dense)):
        return [block]
    return [leaf for child in block._children.values() for leaf in _gluon_layers(child)]


def copy_from_gluon(gluon_net, torch_net):
    """Copy the weights (and BN running statistics) of an initialised MXNet ``cifar_resnetN_v2`` into its
    :class:`PreActResNet` twin, layer by layer in the order both register them; every pair is checked
    for kind and shape, so a network that is not the twin raises ValueError.  Returns ``torch_net``."""

    pairs = {gnn.Conv2D: nn.Conv2d, gnn.BatchNorm: nn.BatchNorm2d, gnn.Dense: nn.Linear}
    names = {
        "weight": "weight",
        "bias": "bias",
        "gamma": "weight",
        "beta": "bias",
        "running_mean": "running_mean",
        "running_var": "running_var",
    }
    ours = _gluon_layers(gluon_net)
    theirs = [m for m in torch_net.modules() if isinstance(m, tuple(pairs.values()))]
    if len(ours) != len(theirs):
        raise ValueError(f"layer count differs: MXNet {len(ours)}, PyTorch {len(theirs)}")
    with torch.no_grad():
        for i, (g, t) in enumerate(zip(ours, theirs)):
            if not isinstance(t, pairs[type(g)]):
                raise ValueError(f"layer {i}: MXNet {type(g).__name__} faces PyTorch {type(t).__name__}")
            for suffix, param in g._reg_params.items():
                target = getattr(t, names[suffix])
                value = torch.from_numpy(param.data().asnumpy())
                if tuple(target.shape) != tuple(value.shape):
                    raise ValueError(
                        f"layer {i} ({g.name}.{suffix}): shape {tuple(value.shape)} vs {tuple(target.shape)}"
                    )
                target.copy_(value)
    return torch_net
