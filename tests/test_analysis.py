"""Signal propagation (gluon_resnetv2.analysis): the two terms of the paper's Eqns. 5 and 8.

Pinned: the shortcut-path term is exactly 1 for identity shortcuts and 0.5^(L-l) for constant scaling 0.5
(within a stage, Eqn. 8), the identity net's lower bound (no unit gets less gradient than x_L), the
equality of the step-by-step unit with the real one, and the command's files.
"""

import csv
import os

import mxnet as mx
import numpy as np
import pytest

from gluon_resnetv2 import analysis as A
from gluon_resnetv2 import get_model
from gluon_resnetv2.analysis import measure
from gluon_resnetv2.cli import main


@pytest.fixture(scope="module")
def batch():
    data, label, _ = A.load_batch("synthetic", batch_size=8, seed=0)
    return data, label


def _net(name, **kwargs):
    mx.random.seed(0)
    net = get_model(name, **kwargs)
    net.initialize()
    return net


def _units_to_stage_end(net):
    """For each unit, how many units from it (inclusive) to the end of its stage."""
    out = []
    for stage in net.stages:
        out += [len(stage) - i for i in range(len(stage))]
    return out


# --------------------------------------------------------------------------------------- variant syntax


def test_parse_variant_syntax():
    v = A.parse_variant("constant_scaling:shortcut_scale=0.5,residual-scale=0.5")
    assert v.kwargs == {"shortcut": "constant_scaling", "shortcut_scale": 0.5, "residual_scale": 0.5}
    assert A.parse_variant(" identity ").kwargs == {"shortcut": "identity"}
    assert A.parse_variant("exclusive_gating:gate_bias=-6").kwargs["gate_bias"] == -6.0
    assert A.parse_variant("conv1x1:activation=original").kwargs["activation"] == "original"
    assert [v.label for v in A.parse_variants(["fig2"])] == list(A.FIG2_VARIANTS)


@pytest.mark.parametrize(
    "text, message",
    [
        ("bogus", "unknown shortcut 'bogus'"),
        ("identity:gate_bias=1", "gate_bias"),
        ("constant_scaling:scale=0.5", "unknown option 'scale'"),
        ("constant_scaling:shortcut_scale", "is not KEY=VALUE"),
        ("constant_scaling:shortcut_scale=half", "not a number"),
        ("constant_scaling:shortcut_scale=0.5,shortcut_scale=0.4", "given twice"),
        ("", "empty variant"),
    ],
)
def test_parse_variant_errors(text, message):
    with pytest.raises(ValueError, match=message):
        A.parse_variant(text)


def test_duplicate_variants_rejected():
    with pytest.raises(ValueError, match="given twice"):
        A.parse_variants(["identity", "fig2"])


def test_merge_kwargs_conflict():
    variant = A.parse_variant("identity:activation=original")
    assert A.merge_kwargs({"projection": "conv"}, variant)["activation"] == "original"
    with pytest.raises(ValueError, match="activation"):
        A.merge_kwargs({"activation": "full_preact"}, variant)


# --------------------------------------------------------------------------------------- the unit


@pytest.mark.parametrize("activation", ["original", "full_preact", "bn_after_add"])
@pytest.mark.parametrize("shortcut", ["identity", "exclusive_gating", "constant_scaling", "conv1x1"])
def test_unit_forward_equals_unit(activation, shortcut):
    net = _net("cifar_resnet20_v2", activation=activation, shortcut=shortcut)
    x = mx.nd.random.normal(shape=(4, 16, 8, 8))
    for unit in net.residual_units()[:4]:
        with mx.autograd.train_mode():
            ref = unit(x)
            mine, blocked = A.unit_forward(unit, x, shortcut_path=True)
        assert np.allclose(ref.asnumpy(), mine.asnumpy(), atol=1e-5)
        assert np.allclose(ref.asnumpy(), blocked.asnumpy(), atol=1e-5)  # BlockGrad changes no value
        x = ref


def test_retained_graph_matches_fresh_recording():
    # MXNet's Dropout forgets its mask after one backward through a retained graph; other units reuse the
    # graph, which must give what a fresh recording gives.
    net = _net("cifar_resnet20_v1", shortcut="exclusive_gating", gate_bias=-2)
    unit = net.residual_units()[3]
    x = mx.nd.random.normal(shape=(4, 16, 8, 8))
    heads = [mx.nd.random.normal(shape=(4, 32, 4, 4)) for _ in range(3)]
    fresh = measure._unit_vjps(unit, x, 5, heads, fresh=True)
    kept = measure._unit_vjps(unit, x, 5, heads)
    for a, b in zip(fresh, kept):
        assert np.array_equal(a.asnumpy(), b.asnumpy())
    assert not np.allclose(fresh[0].asnumpy(), fresh[1].asnumpy())  # total != shortcut-only product


# --------------------------------------------------------------------------------------- Eqns. 5 and 8


def test_identity_shortcut_term_is_exactly_one(batch):
    net = _net("cifar_resnet20_v2")
    rows = A.measure_propagation(net, *batch)
    assert [r["unit"] for r in rows] == list(range(10))
    firsts = {0, 3, 6}  # first unit of each stage: pre-activated source and projection (stages 2, 3)
    for r in rows[:-1]:
        if r["unit"] in firsts:
            assert r["expected_shortcut_ratio"] is None
            assert r["shortcut_ops"].startswith("preact")
        else:
            assert r["shortcut_ops"] == "identity"
            assert r["expected_shortcut_ratio"] == 1.0
            assert r["shortcut_path_ratio"] == pytest.approx(1.0, abs=1e-6)
    # In the last stage the within-stage and whole-net terms coincide.
    for r in rows[7:]:
        assert r["shortcut_path_ratio_net"] == pytest.approx(1.0, abs=1e-6)
    # ... and the total gradient is not just the shortcut term: the residual functions add to it.
    assert rows[0]["grad_ratio"] > 2.0


def test_constant_scaling_shortcut_term_is_lambda_power(batch):
    net = _net("cifar_resnet20_v2", shortcut="constant_scaling", shortcut_scale=0.5, residual_scale=0.5)
    rows = A.measure_propagation(net, *batch)
    span = _units_to_stage_end(net)
    for r in rows[:-1]:
        if r["unit"] in (0, 3, 6):
            continue
        expected = 0.5 ** span[r["unit"]]  # Eqn. 8: prod lambda_i over the units up to the stage's end
        assert r["expected_shortcut_ratio"] == expected
        assert r["shortcut_path_ratio"] == pytest.approx(expected, rel=1e-5)


def test_identity_lower_bound_resnet56(batch):
    # Eqn. 5: dE/dx_l = dE/dx_L (1 + ...): at initialisation no unit receives less gradient than x_L.
    net = _net("cifar_resnet56_v2")
    rows = A.measure_propagation(net, *batch)
    ratios = [r["grad_ratio"] for r in rows]
    assert min(ratios) >= 1.0 - 1e-6
    assert ratios[0] > 10  # the many branch terms add up in the first unit


def test_original_unit_shortcut_term_is_data_dependent(batch):
    # Fig. 4(a): the ReLU after the addition sits on the shortcut path, so Eqn. 8's factor is no constant.
    net = _net("cifar_resnet20_v1")
    rows = A.measure_propagation(net, *batch)
    assert all(r["expected_shortcut_ratio"] is None for r in rows[:-1])
    assert all("post(relu)" in r["shortcut_ops"] for r in rows[:-1])
    assert rows[1]["shortcut_path_ratio"] < 1.0  # the ReLU masks cut part of the direct path


def test_dropout_shortcut_backward_uses_the_mask(batch):
    # Inverted dropout multiplies each kept element by 2: the direct term is not 1 any more.
    net = _net("cifar_resnet20_v2", shortcut="dropout")
    rows = A.measure_propagation(net, *batch)
    assert abs(rows[1]["shortcut_path_ratio"] - 1.0) > 0.05


# --------------------------------------------------------------------------------------- driver and CLI


def test_propagation_after_training_changes_the_net():
    variants = A.parse_variants(["identity"])
    init = A.propagation("cifar_resnet20_v2", ["identity"], "synthetic", batch_size=8)  # strings are parsed
    assert init[0].variant == variants[0]
    trained = A.propagation("cifar_resnet20_v2", variants, "synthetic", batch_size=8, iterations=2, train_batch_size=16)
    assert trained[0].iterations == 2
    assert trained[0].rows[0]["grad_norm"] != init[0].rows[0]["grad_norm"]
    assert trained[0].rows[1]["shortcut_path_ratio"] == pytest.approx(1.0, abs=1e-6)


def test_analyze_command_writes_csv_and_plot(tmp_path, capsys):
    out = tmp_path / "A"
    code = main(
        [
            "analyze",
            "--model",
            "cifar_resnet20_v2",
            "--dataset",
            "synthetic",
            "--batch-size",
            "4",
            "--variant",
            "identity",
            "--variant",
            "constant_scaling:shortcut_scale=0.5,residual_scale=0.5",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    with open(out / "propagation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == A.CSV_COLUMNS
    assert [r["variant"] for r in rows].count("identity") == 10
    parsed = A.read_csv(out / "propagation.csv")
    assert list(parsed) == ["identity", "constant_scaling:shortcut_scale=0.5,residual_scale=0.5"]
    scaled = parsed["constant_scaling:shortcut_scale=0.5,residual_scale=0.5"]
    assert scaled[7]["shortcut_path_ratio"] == pytest.approx(0.25, rel=1e-6)
    again = A.results_from_csv(out / "propagation.csv")  # what plots are redrawn from
    assert [r.variant.label for r in again] == list(parsed) and again[0].rows[3]["grad_ratio"] > 1
    with open(out / "propagation.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(out / "propagation.png") > 10000
    assert "| identity | 9 |" in (out / "summary.md").read_text()


def test_analyze_command_single_variant_from_model_options(tmp_path):
    out = tmp_path / "B"
    assert (
        main(
            [
                "analyze",
                "--model",
                "cifar_resnet20_v2",
                "--dataset",
                "synthetic",
                "--batch-size",
                "4",
                "--shortcut",
                "constant_scaling",
                "--shortcut-scale",
                "0.5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert list(A.read_csv(out / "propagation.csv")) == ["constant_scaling:shortcut_scale=0.5"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--variant", "bogus"], "unknown shortcut"),
        (["--variant", "identity", "--shortcut", "identity"], "not both"),
        (["--batch-size", "1"], "at least 2"),
    ],
)
def test_analyze_command_errors(tmp_path, capsys, argv, message):
    code = main(
        ["analyze", "--model", "cifar_resnet20_v2", "--dataset", "synthetic", "--out", str(tmp_path / "C")] + argv
    )
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "keyword, value",
    [("batch_size", 0), ("batch_size", float("nan")), ("iterations", -1), ("seed", float("inf")), ("dataset", "x")],
)
def test_analyze_checks_its_keywords_before_anything_is_written(tmp_path, keyword, value):
    out = tmp_path / "prop"
    kwargs = dict(dataset="synthetic", batch_size=4)
    kwargs[keyword] = value
    with pytest.raises(ValueError, match=keyword):
        A.analyze("cifar_resnet20_v2", ["identity"], str(out), log=lambda _: None, **kwargs)
    assert not out.exists()


def test_analyze_keeps_the_earlier_files_when_it_fails(tmp_path, monkeypatch):
    import gluon_resnetv2.analysis.driver as driver

    out = tmp_path / "prop"
    A.analyze("cifar_resnet20_v2", ["identity"], str(out), dataset="synthetic", batch_size=4, log=lambda _: None)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["propagation.csv", "propagation.png", "summary.md"]

    def broken(results, path, title=None):
        raise OSError(28, "No space left on device", path)

    monkeypatch.setattr(driver, "plot_propagation", broken)
    with pytest.raises(OSError, match="propagation.png"):
        A.analyze(
            "cifar_resnet20_v2", ["identity"], str(out), dataset="synthetic", batch_size=4, seed=1, log=lambda _: None
        )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # byte-identical, no stray files


def test_analyze_refuses_an_unwritable_out_before_measuring(tmp_path, monkeypatch):
    import gluon_resnetv2.analysis.driver as driver

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(driver, "propagation", lambda *a, **k: pytest.fail("measured before checking --out"))
    with pytest.raises(OSError):
        A.analyze("cifar_resnet20_v2", ["identity"], str(blocker / "prop"), dataset="synthetic", batch_size=4)
