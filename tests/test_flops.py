"""Multiply-adds counted from the graph (gluon_resnetv2.flops) against a count by hand."""
import pytest

from gluon_resnetv2 import get_model
from gluon_resnetv2.flops import forward_macs, gflops


def hand_count(depth, channels=3, size=32, classes=10):
    """CIFAR ResNet of ``depth`` = 6n + 2 (paper Sec. 4): a 3x3 stem to 16 maps, three stages of n basic units
    (two 3x3 convolutions) at 16, 32, 64 maps, the first convolution of stages 2 and 3 with stride 2 and a
    1x1 projection shortcut there, global pooling, one dense layer."""
    n = (depth - 2) // 6
    macs = size * size * 16 * channels * 9                      # stem
    width_in = 16
    for stage, width in enumerate((16, 32, 64)):
        if stage:
            size = (size + 1) // 2                               # stride 2, padding 1
        macs += size * size * width * width_in * 9               # first conv of the stage's first unit
        macs += size * size * width * width * 9 * (2 * n - 1)    # every other conv of the stage
        if width != width_in:
            macs += size * size * width * width_in               # 1x1 projection shortcut
        width_in = width
    return macs + 64 * classes


def test_hand_count_of_resnet20_is_the_known_41_million():
    assert hand_count(20) == 40_813_184


@pytest.mark.parametrize("name, depth", [("cifar_resnet20_v2", 20), ("cifar_resnet20_v1", 20),
                                         ("cifar_resnet110_v2", 110), ("cifar_resnet110_v1", 110)])
def test_graph_count_equals_the_hand_count(name, depth):
    counts = forward_macs(get_model(name, classes=10), (3, 32, 32))
    assert counts["total"] == hand_count(depth)
    assert counts["FullyConnected"] == 640
    assert counts["Convolution"] == hand_count(depth) - 640


def test_fashion_mnist_input_and_other_classes():
    counts = forward_macs(get_model("cifar_resnet20_v2", classes=7), (1, 28, 28))
    assert counts["total"] == hand_count(20, channels=1, size=28, classes=7)


def test_gflops_of_training_is_three_forward_passes():
    assert gflops(1000.0, 40_813_184, training=False) == pytest.approx(81.626368)
    assert gflops(1000.0, 40_813_184, training=True) == pytest.approx(3 * 81.626368)
    assert gflops(None, 1, training=True) is None
