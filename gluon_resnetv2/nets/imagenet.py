"""ImageNet networks (Table 5): 18 and 34 layers with basic units, 50 to 200 with bottleneck units,
a 7x7/2 stem with 64 filters and 3x3/2 max pooling, four stages."""

from .network import ResidualNetwork

# depth -> (branch, units per stage)
IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
STAGE_CHANNELS = {"basic": (64, 128, 256, 512), "bottleneck": (256, 512, 1024, 2048)}


def imagenet_resnet(depth, classes=1000, **kwargs):
    """The ImageNet residual network of ``depth`` layers (18, 34, 50, 101, 152, 200)."""
    if depth not in IMAGENET_DEPTHS:
        raise ValueError(
            f"depth={depth!r} is not an ImageNet ResNet; expected one of {', '.join(map(str, IMAGENET_DEPTHS))}"
        )
    branch, units = IMAGENET_DEPTHS[depth]
    return ResidualNetwork(
        units, STAGE_CHANNELS[branch], stem="imagenet", stem_channels=64, branch=branch, classes=classes, **kwargs
    )
