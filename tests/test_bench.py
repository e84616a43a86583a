"""The benchmark library (:mod:`gluon_resnetv2.bench`) and the PyTorch reference network.

Fast: a tiny network, batch 8, one timed step.  The PyTorch tests skip where torch is not installed.
"""

import csv
from types import SimpleNamespace

import mxnet as mx
import numpy as np
import pytest

from gluon_resnetv2 import get_model
from gluon_resnetv2.bench import (
    CSV_COLUMNS,
    BenchReport,
    BenchResult,
    PeakMemory,
    format_ratios,
    format_table,
    headline_ratios,
    plan,
    run_benchmark,
    write_report,
)
from gluon_resnetv2.cli import main


def _read(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


@pytest.mark.slow  # 2.7-6 s measured
def test_two_modes_two_implementations_write_positive_figures(tmp_path):
    report = run_benchmark(
        ["cifar_resnet20_v2"],
        modes=["imperative", "hybrid"],
        implementations=["gluon_resnetv2", "gluoncv"],
        batch_size=8,
        iterations=1,
        warmup=1,
        log=lambda _: None,
    )
    path = write_report(report, str(tmp_path))
    columns, rows = _read(path)
    assert tuple(columns) == CSV_COLUMNS
    assert [(r["implementation"], r["mode"]) for r in rows] == [
        ("gluon_resnetv2", "imperative"),
        ("gluoncv", "imperative"),
        ("gluon_resnetv2", "hybrid"),
        ("gluoncv", "hybrid"),
    ]
    for row in rows:
        assert row["network"] == "cifar_resnet20_v2" and row["batch_size"] == "8"
        assert float(row["train_images_per_s"]) > 0 and float(row["infer_images_per_s"]) > 0
        assert float(row["peak_rss_mb"]) >= 0
    assert (tmp_path / "bench.json").exists()
    assert "cifar_resnet20_v2" in format_table(report)
    assert "train ours/gluoncv (hybrid)" in format_ratios(report)


def test_inference_only_modes_leave_training_empty(tmp_path):
    # A stand-in for gluon_resnetv2.deploy: the plumbing, not the fusion, is under test here.
    calls = []

    def fuse(net, shape):
        calls.append(("fuse", shape))
        net.hybridize(static_alloc=True, static_shape=True)
        return net

    def quantize(net, calib, num_calib_batches, calib_mode):
        calls.append(("quantize", len(calib), num_calib_batches, calib_mode))
        return net

    report = run_benchmark(
        ["cifar_resnet20_v2"],
        modes=["fused", "int8"],
        implementations=["gluon_resnetv2"],
        batch_size=8,
        iterations=1,
        warmup=0,
        deploy=SimpleNamespace(fuse=fuse, quantize=quantize),
        log=lambda _: None,
    )
    _, rows = _read(write_report(report, str(tmp_path)))
    assert [r["mode"] for r in rows] == ["fused", "int8"]
    assert all(r["train_images_per_s"] == "" and float(r["infer_images_per_s"]) > 0 for r in rows)
    assert calls == [("fuse", (8, 3, 32, 32)), ("quantize", 2, 2, "naive")]


def test_plan_orders_bf16_last_and_explains_skips():
    runs, skipped = plan(
        ["cifar_resnet20_v2", "cifar_resnet56_v2"], ["bf16", "hybrid", "fused"], ["gluon_resnetv2", "pytorch"]
    )
    assert [mode for _, _, mode in runs[-4:]] == ["bf16"] * 4
    assert ("cifar_resnet20_v2", "pytorch", "eager") in runs
    assert ("cifar_resnet20_v2", "pytorch", "fused", "no PyTorch counterpart") in skipped
    _, skipped = plan(["cifar_resnet20_v2"], ["hybrid"], ["gluoncv"], {"activation": "original"})
    assert skipped and "gluon_resnetv2 only" in skipped[0][3]


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown mode"):
        run_benchmark(["cifar_resnet20_v2"], modes=["turbo"])
    with pytest.raises(ValueError, match="unknown model"):
        run_benchmark(["cifar_resnet21_v2"])


def test_headline_ratios():
    rows = [
        BenchResult("n", "gluon_resnetv2", "hybrid", 8, 100.0, 400.0, 1.0),
        BenchResult("n", "gluoncv", "hybrid", 8, 80.0, 400.0, 1.0),
        BenchResult("n", "gluon_resnetv2", "fused", 8, None, 600.0, 1.0),
        BenchResult("n", "gluon_resnetv2", "int8", 8, None, 1200.0, 1.0),
        BenchResult("n", "pytorch", "eager", 8, 200.0, 300.0, 1.0),
    ]
    ratios = {label: value for _, label, value, _ in headline_ratios(BenchReport(results=rows))}
    assert ratios["train ours/gluoncv (hybrid)"] == pytest.approx(1.25)
    assert ratios["infer fused/hybrid"] == pytest.approx(1.5)
    assert ratios["infer int8/fp32 (hybrid)"] == pytest.approx(3.0)
    assert ratios["infer int8/fused fp32"] == pytest.approx(2.0)
    assert ratios["train ours(best fp32)/pytorch eager"] == pytest.approx(0.5)


def test_peak_memory_sees_an_allocation():
    with PeakMemory() as memory:
        block = np.ones(64 * 1024 * 1024 // 8)  # 64 MB, touched
        del block
    assert memory.method in ("delta", "absolute")
    assert memory.mb >= 60


def test_cli_writes_csv(tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "bench",
                "--models",
                "cifar_resnet20_v2",
                "--modes",
                "hybrid",
                "--implementations",
                "gluon_resnetv2",
                "--batch-size",
                "4",
                "--iterations",
                "1",
                "--warmup",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    columns, rows = _read(out / "bench.csv")
    assert tuple(columns) == CSV_COLUMNS and len(rows) == 1


# --- the PyTorch reference ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar_resnet20_v2", "cifar_resnet56_v2", "cifar_resnet110_v2"])
def test_pytorch_reference_has_our_parameter_count(name):
    pytest.importorskip("torch")
    from gluon_resnetv2.torch_reference import torch_model  # optional dependency (torch)

    net = get_model(name)
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    assert torch_model(name).num_trainable_parameters() == net.num_trainable_parameters()


def test_pytorch_reference_computes_our_function():
    """Same weights (copied, BN statistics randomised so they matter), eval mode: same outputs."""
    torch = pytest.importorskip("torch")
    from gluon_resnetv2.torch_reference import copy_from_gluon, torch_model  # optional dependency (torch)

    net = get_model("cifar_resnet20_v2")
    net.initialize()
    x = np.random.RandomState(0).randn(4, 3, 32, 32).astype("float32")
    net(mx.nd.array(x))
    for name, param in net.collect_params().items():
        if name.endswith(("gamma", "beta", "running_mean", "running_var")):
            param.set_data(mx.nd.random.uniform(0.5, 1.5, shape=param.shape))
    reference = copy_from_gluon(net, torch_model("cifar_resnet20_v2")).eval()
    ours = net(mx.nd.array(x)).asnumpy()
    with torch.no_grad():
        theirs = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4)


def test_pytorch_reference_refuses_other_networks():
    pytest.importorskip("torch")
    from gluon_resnetv2.torch_reference import torch_model  # optional dependency (torch)

    with pytest.raises(ValueError, match="no PyTorch reference"):
        torch_model("cifar_resnet20_v1")
