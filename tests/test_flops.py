"""Multiply-adds counted from the graph (gluon_resnetv2.flops) against a count by hand."""

import json

import pytest

from gluon_resnetv2 import cpu, get_model
from gluon_resnetv2.bench import format_table, run_benchmark, write_report
from gluon_resnetv2.flops import forward_macs, gflops


def hand_count(depth, channels=3, size=32, classes=10):
    """CIFAR ResNet of ``depth`` = 6n + 2 (paper Sec. 4): a 3x3 stem to 16 maps, three stages of n basic units
    (two 3x3 convolutions) at 16, 32, 64 maps, the first convolution of stages 2 and 3 with stride 2 and a
    1x1 projection shortcut there, global pooling, one dense layer."""
    n = (depth - 2) // 6
    macs = size * size * 16 * channels * 9  # stem
    width_in = 16
    for stage, width in enumerate((16, 32, 64)):
        if stage:
            size = (size + 1) // 2  # stride 2, padding 1
        macs += size * size * width * width_in * 9  # first conv of the stage's first unit
        macs += size * size * width * width * 9 * (2 * n - 1)  # every other conv of the stage
        if width != width_in:
            macs += size * size * width * width_in  # 1x1 projection shortcut
        width_in = width
    return macs + 64 * classes


def test_hand_count_of_resnet20_is_the_known_41_million():
    assert hand_count(20) == 40_813_184


@pytest.mark.parametrize(
    "name, depth",
    [("cifar_resnet20_v2", 20), ("cifar_resnet20_v1", 20), ("cifar_resnet110_v2", 110), ("cifar_resnet110_v1", 110)],
)
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


def test_bench_reports_gflops_and_fraction_of_peak(tmp_path):

    report = run_benchmark(
        ["cifar_resnet20_v2"],
        modes=("hybrid",),
        implementations=("gluon_resnetv2",),
        batch_size=2,
        iterations=1,
        warmup=0,
        log=lambda _: None,
    )
    r = report.results[0]
    peak = report.conditions["peak"]
    assert r.forward_macs == hand_count(20)
    assert r.train_gflops == pytest.approx(r.train_images_per_s * 6 * hand_count(20) / 1e9)
    assert r.infer_gflops == pytest.approx(r.infer_images_per_s * 2 * hand_count(20) / 1e9)
    assert peak["threads"] == report.conditions["omp_threads"]["threads"]
    if peak["gflops_used"]:
        assert r.infer_peak_fraction == pytest.approx(r.infer_gflops / peak["gflops_used"])
        assert peak["gflops_used"] == pytest.approx(
            min(peak["threads"], peak["cores"]) * peak["clock_ghz"] * peak["flop_per_cycle"]
        )
    assert "peak fp32:" in format_table(report)
    write_report(report, str(tmp_path))
    saved = json.load(open(tmp_path / "bench.json"))
    assert saved["results"][0]["train_gflops"] == pytest.approx(r.train_gflops)
    assert saved["conditions"]["peak"]["flop_per_cycle"] == peak["flop_per_cycle"]


@pytest.mark.parametrize(
    "flags, vendor, family, per_cycle",
    [
        ({"avx512f", "fma", "avx2"}, "GenuineIntel", "6", 64),
        ({"avx512f", "fma", "avx2"}, "AuthenticAMD", "25", 32),  # Zen 4: 2 x 256-bit pipes
        ({"avx512f", "fma", "avx2"}, "AuthenticAMD", "26", 64),  # Zen 5
        ({"avx2", "fma", "avx"}, "AuthenticAMD", "23", 32),
        ({"avx", "sse2"}, "GenuineIntel", "6", 16),
    ],
)
def test_vector_units_from_flags(flags, vendor, family, per_cycle):
    assert cpu.vector_units({"flags": flags, "vendor_id": vendor, "cpu family": family})[0] == per_cycle
    p = cpu.peak(
        threads=1, cores=4, info={"flags": flags, "vendor_id": vendor, "cpu family": family, "cpu MHz": "2500.0"}
    )
    if p["clock_source"].startswith("/proc"):  # no cpufreq here: the cpuinfo clock
        assert p["gflops"] == pytest.approx(4 * 2.5 * per_cycle) and p["gflops_used"] == pytest.approx(2.5 * per_cycle)
