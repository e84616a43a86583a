"""CIFAR networks (Sec. 4, Table 3): three stages on 32x32 inputs, a 3x3 stem with 16 filters.

* basic units: depth 6n+2 (20, 32, 44, 56, 110, 1202), widths 16/32/64;
* bottleneck units: depth 9n+2 (164 with n=18, 1001 with n=111), outputs 64/128/256 (widths 16/32/64);
* single-conv units ("ResNet-110 (1-layer skip)", Table 3): depth 3n+2, widths 16/32/64.
"""

from .network import ResidualNetwork

# branch -> (layers per unit, stage output channels)
CIFAR_BRANCHES = {
    "basic": (2, (16, 32, 64)),
    "bottleneck": (3, (64, 128, 256)),
    "single": (1, (16, 32, 64)),
}


def cifar_units_per_stage(depth, branch="basic"):
    """n, the units per stage, for a CIFAR net of ``depth`` layers; ValueError for an impossible depth."""
    if branch not in CIFAR_BRANCHES:
        raise ValueError(f"branch={branch!r}: expected one of {', '.join(CIFAR_BRANCHES)}")
    layers = CIFAR_BRANCHES[branch][0]
    per_depth = 3 * layers
    if not isinstance(depth, int) or depth < per_depth + 2 or (depth - 2) % per_depth:
        examples = ", ".join(str(per_depth * n + 2) for n in (1, 2, 3, 18))
        raise ValueError(
            f"depth={depth!r} is impossible for a CIFAR net of {branch} units: it must be "
            f"{per_depth}n+2 with n >= 1 (e.g. {examples})"
        )
    return (depth - 2) // per_depth


def cifar_resnet(depth, branch="basic", classes=10, **kwargs):
    """A CIFAR residual network of ``depth`` layers with ``branch`` units; other keyword arguments go to
    :class:`~gluon_resnetv2.nets.network.ResidualNetwork` (activation, shortcut, ...)."""
    n = cifar_units_per_stage(depth, branch)
    channels = CIFAR_BRANCHES[branch][1]
    return ResidualNetwork([n] * 3, channels, stem="cifar", stem_channels=16, branch=branch, classes=classes, **kwargs)
