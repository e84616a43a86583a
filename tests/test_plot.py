"""Tests of gluon_resnetv2.plot (paper Figure 1), the ``plot`` command and scripts/plot_curves.py."""

import importlib.util
import json
import math
import os

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gluon_resnetv2 import cli
from gluon_resnetv2 import plot as P
from gluon_resnetv2.cli import main

COLUMNS = "iteration,epoch,lr,train_loss,train_error,test_loss,test_error,time"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fmt(value):
    return "" if value is None else repr(value)


def make_rows(scale=1.0, iterations=2000, log_every=100, test_every=500, iters_per_epoch=391):
    """Rows as a training run logs them: train stats every ``log_every``, test stats every ``test_every``."""
    rows = []
    for it in range(0, iterations + 1, log_every):
        lr = 0.01 if it < 400 else 0.1
        loss = round(scale * (2.3 * math.exp(-it / 800) + 0.1), 6)
        train_err = round(min(0.9, loss / 2.6), 6)
        tested = it % test_every == 0 and it > 0
        test_loss = round(loss * 1.1 + 0.05, 6) if tested else None
        test_err = round(min(0.9, train_err + 0.05), 6) if tested else None
        rows.append([it, round(it / iters_per_epoch, 4), lr, loss, train_err, test_loss, test_err, round(0.05 * it, 3)])
    return rows


def write_run(root, name, rows, config=None, partial=None, status="finished"):
    """A run directory like training writes it; ``partial`` is appended unterminated after the rows."""
    run = root / name
    run.mkdir()
    lines = [COLUMNS] + [",".join(fmt(v) for v in row) for row in rows]
    text = "\n".join(lines) + "\n" + (partial or "")
    (run / "log.csv").write_text(text)
    if config is not None:
        (run / "config.json").write_text(json.dumps(config))
    (run / "status.json").write_text(json.dumps({"status": status}))
    return run


def column(rows, index):
    return np.array([np.nan if row[index] is None else row[index] for row in rows], dtype=float)


@pytest.fixture
def runs(tmp_path):
    """Two runs, as in Figure 1: an original net (finished) and a pre-activation one still going."""
    rows_v1 = make_rows(scale=1.0)
    rows_v2 = make_rows(scale=0.8, iterations=1200)
    v1 = write_run(tmp_path, "r110_v1", rows_v1, {"model": "cifar_resnet110_v1"})
    v2 = write_run(
        tmp_path,
        "r110_v2",
        rows_v2,
        {"model": "cifar_resnet110_v2", "activation": "full_preact", "shortcut": "identity"},
        partial="1300,3.3248,0.1,0.31",
        status="running",
    )
    return {"v1": (v1, rows_v1), "v2": (v2, rows_v2)}


# ------------------------------------------------------------------------------------------ read_log


def test_read_log_values_empty_cells_and_partial_last_line(runs):
    run, rows = runs["v2"]
    log = P.read_log(run)
    assert set(P.LOG_COLUMNS) <= set(log)
    assert len(log["iteration"]) == len(rows)  # the partial "1300,..." line is dropped
    np.testing.assert_array_equal(log["iteration"], column(rows, 0))
    np.testing.assert_array_equal(log["train_loss"], column(rows, 3))
    np.testing.assert_array_equal(log["test_error"], column(rows, 6))  # NaN where not tested
    assert np.isnan(log["test_error"][0]) and np.isfinite(log["test_error"][5])
    assert log["iteration"].dtype == np.float64


def test_read_log_keeps_unterminated_complete_row_and_skips_repeats(tmp_path):
    rows = make_rows(iterations=300)
    # A resumed run repeats the header; the last row lacks only its newline (cut inside "time").
    run = write_run(tmp_path, "r", rows, partial=COLUMNS + "\n\n400,1.0,0.1,0.5,0.2,,,2")
    log = P.read_log(run)
    assert list(log["iteration"]) == [0, 100, 200, 300, 400]
    assert log["train_loss"][-1] == 0.5 and np.isnan(log["test_loss"][-1])
    # The log file itself is accepted in place of its directory.
    assert list(P.read_log(run / "log.csv")["iteration"]) == [0, 100, 200, 300, 400]


def test_read_log_of_a_run_just_starting(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "log.csv").write_text("")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "log.csv").write_text("iteration,epoch,lr,tr")
    for name in "ab":
        log = P.read_log(tmp_path / name)
        assert all(len(log[col]) == 0 for col in P.LOG_COLUMNS)


def test_read_log_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="run directory not found: .*nowhere"):
        P.read_log(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no log\.csv in run directory .*empty"):
        P.read_log(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "log.csv").write_text("iter,loss\n1,2\n")
    with pytest.raises(ValueError, match=r"bad.log\.csv: wrong columns.*missing iteration"):
        P.read_log(tmp_path / "bad")
    run = write_run(tmp_path, "broken", make_rows(iterations=300))
    lines = (run / "log.csv").read_text().splitlines()
    lines[2] = "100,0.25,0.01,oops,0.5,,,5"
    (run / "log.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"broken.log\.csv, line 3: malformed row"):
        P.read_log(run)


# ------------------------------------------------------------------------------------------ figure


def lines_by_gid(fig):
    return {line.get_gid(): line for ax in fig.axes for line in ax.get_lines()}


def test_figure1_axes_lines_data_colours_legend(runs, tmp_path):
    out = tmp_path / "fig1.png"
    fig = P.plot_runs([runs["v1"][0], runs["v2"][0]], out, title="ResNet-110 on CIFAR-10")
    assert isinstance(fig.canvas, FigureCanvasAgg)
    loss_ax, err_ax = fig.axes  # two y axes sharing x
    assert loss_ax.get_shared_x_axes().joined(loss_ax, err_ax)
    assert loss_ax.get_xlabel() == "iterations"
    assert "training loss" in loss_ax.get_ylabel()
    assert "test error" in err_ax.get_ylabel() and "%" in err_ax.get_ylabel()
    assert err_ax.yaxis.get_label_position() == "right"
    assert loss_ax.get_title() == "ResNet-110 on CIFAR-10"
    assert len(loss_ax.get_lines()) == 2 and len(err_ax.get_lines()) == 2

    lines = lines_by_gid(fig)
    colours = []
    for index, key in enumerate(["v1", "v2"]):
        _, rows = runs[key]
        loss, err = lines[f"{index}:train_loss"], lines[f"{index}:test_error"]
        assert loss in loss_ax.get_lines() and err in err_ax.get_lines()
        assert loss.get_linestyle() == "--" and err.get_linestyle() == "-"
        np.testing.assert_array_equal(loss.get_xdata(), column(rows, 0))
        np.testing.assert_array_equal(loss.get_ydata(), column(rows, 3))
        tested = [row for row in rows if row[6] is not None]
        np.testing.assert_array_equal(err.get_xdata(), column(tested, 0))
        np.testing.assert_allclose(err.get_ydata(), 100 * column(tested, 6))  # fraction -> %
        assert loss.get_color() == err.get_color()
        colours.append(loss.get_color())
    assert colours[0] != colours[1]
    assert max(lines["0:test_error"].get_ydata()) > 1  # displayed in percent

    legend = err_ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "cifar_resnet110_v1",
        "cifar_resnet110_v2 activation=full_preact shortcut=identity",
    ]
    handles = getattr(legend, "legend_handles", None) or legend.legendHandles  # matplotlib < 3.7
    assert [h.get_color() for h in handles] == colours
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_labels(tmp_path):
    rows = make_rows(iterations=500)
    a = write_run(tmp_path, "labelled", rows, {"model": "m", "label": "Proposed ResNet-1001"})
    b = write_run(tmp_path, "no_config", rows)
    c = write_run(
        tmp_path,
        "gated",
        rows,
        {"model": "cifar_resnet110_v1", "shortcut": "exclusive_gating", "gate_bias": -6, "activation": None},
    )
    assert P.run_label(a) == "Proposed ResNet-1001"
    assert P.run_label(b) == "no_config"
    assert P.run_label(c) == "cifar_resnet110_v1 shortcut=exclusive_gating gate_bias=-6"
    d = write_run(tmp_path, "twin", rows, {"model": "m", "label": "Proposed ResNet-1001"})
    fig = P.plot_runs([a, d])
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == [
        "Proposed ResNet-1001 [labelled]",
        "Proposed ResNet-1001 [twin]",
    ]


@pytest.mark.parametrize(
    "ext, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml"), (".SVG", b"<?xml")]
)
def test_output_format_follows_extension(runs, tmp_path, ext, magic):
    out = tmp_path / "sub" / f"figure{ext}"
    P.plot_runs([runs["v2"][0]], out)
    assert out.read_bytes()[: len(magic)] == magic


def test_bad_extension_and_label_count(runs, tmp_path):
    for name in ["fig.jpg", "fig"]:
        with pytest.raises(ValueError, match=r"unsupported output format.*\.png, \.pdf, \.svg"):
            P.plot_runs([runs["v1"][0]], tmp_path / name)
        assert not (tmp_path / name).exists()
    with pytest.raises(ValueError, match="2 labels for 1 runs"):
        P.plot_runs([runs["v1"][0]], labels=["a", "b"])
    with pytest.raises(FileNotFoundError, match="run directory not found"):
        P.plot_runs([runs["v1"][0], tmp_path / "missing"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_group_into_given_axes(runs, tmp_path):
    fig = Figure()
    ax = fig.add_subplot(1, 2, 2)
    group = {"original": runs["v1"][0], "full pre-activation": runs["v2"][0]}
    out = tmp_path / "fig6.svg"
    assert P.plot_group(group, out, title="Fig. 6", ax=ax) is fig
    assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == list(group)
    assert ax.get_title() == "Fig. 6" and out.exists()


def test_run_still_going_without_any_test_yet(tmp_path):
    rows = make_rows(iterations=300)  # tests start at 500
    run = write_run(tmp_path, "young", rows, {"model": "cifar_resnet20_v2"}, partial="400,1.02", status="running")
    fig = P.plot_runs([run])
    lines = lines_by_gid(fig)
    assert len(lines["0:train_loss"].get_xdata()) == 4
    assert len(lines["0:test_error"].get_xdata()) == 0


# ------------------------------------------------------------------------------------------ commands


def test_cli_plot(runs, tmp_path, capsys):
    out = tmp_path / "cli.pdf"
    assert (
        main(
            [
                "plot",
                str(runs["v1"][0]),
                str(runs["v2"][0]),
                "-o",
                str(out),
                "--labels",
                "original,proposed",
                "--title",
                "ResNet-110",
            ]
        )
        == 0
    )
    assert out.read_bytes()[:4] == b"%PDF"
    assert str(out) in capsys.readouterr().out

    assert main(["plot", str(tmp_path / "nope"), "-o", str(tmp_path / "f.png")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert main(["plot", str(runs["v1"][0]), "-o", str(tmp_path / "f.gif")]) == 2
    assert ".png, .pdf, .svg" in capsys.readouterr().err
    assert main(["plot", str(runs["v1"][0]), "-o", str(tmp_path / "f.png"), "--labels", "a,b"]) == 2
    assert "2 labels for 1 runs" in capsys.readouterr().err


def test_cli_labels_reach_the_legend(runs, monkeypatch, tmp_path):
    seen = {}
    original = P.plot_runs

    def spy(*args, **kwargs):
        seen["fig"] = original(*args, **kwargs)
        return seen["fig"]

    monkeypatch.setattr(P, "plot_runs", spy)
    assert (
        cli.main(
            [
                "plot",
                str(runs["v1"][0]),
                str(runs["v2"][0]),
                "-o",
                str(tmp_path / "f.svg"),
                "--labels",
                "original, proposed",
            ]
        )
        == 0
    )
    assert [t.get_text() for t in seen["fig"].axes[1].get_legend().get_texts()] == ["original", "proposed"]


def test_script_entry_point(runs, tmp_path):
    spec = importlib.util.spec_from_file_location("plot_curves", os.path.join(ROOT, "scripts", "plot_curves.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "script.png"
    assert script.main([str(runs["v1"][0]), "-o", str(out)]) == 0
    assert out.exists()
    assert script.main([str(runs["v1"][0]), "-o", str(tmp_path / "x.bmp")]) == 2


# -- issue 20 point 7: one logged row is drawn; nothing logged is said ---------------------------------------


def test_a_single_logged_row_is_drawn_as_points(tmp_path):
    """A quick run (train --iterations 10) logs one row: a line of one point would draw nothing."""
    run = write_run(tmp_path, "quick", [[10, 0.03, 0.1, 2.1, 0.8, 2.2, 0.75, 1.5]], {"model": "cifar_resnet20_v2"})
    lines = lines_by_gid(P.plot_runs([run], tmp_path / "q.png"))
    for gid, value in (("0:train_loss", 2.1), ("0:test_error", 75.0)):
        assert list(lines[gid].get_xdata()) == [10] and list(lines[gid].get_ydata()) == [value]
        assert lines[gid].get_marker() == "o"
    many = lines_by_gid(P.plot_runs([write_run(tmp_path, "long", make_rows())]))
    assert many["0:train_loss"].get_marker() in ("None", None, "")


def test_a_header_only_log_is_nothing_to_plot(tmp_path, capsys):
    empty = write_run(tmp_path, "empty", [], {"model": "cifar_resnet20_v2"})
    out = tmp_path / "f.png"
    assert main(["plot", str(empty), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"gluon-resnetv2 plot: error: nothing to plot: {empty}/log.csv has no logged training loss or test "
        "error yet (a run logs its first row after --log-interval iterations)"
    ]
    assert not out.exists()
    full = write_run(tmp_path, "full", make_rows())
    assert main(["plot", str(empty), str(full), "-o", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"gluon-resnetv2 plot: warning: {empty}/log.csv has no logged values yet: "
        "its run is in the legend without lines"
    ]
