"""Training curves in the style of the paper's Figure 1 (and its cousins, Figs. 3 and 6).

He, Zhang, Ren, Sun, *Identity Mappings in Deep Residual Networks* (ECCV 2016), Figure 1 plots CIFAR-10
training curves: the x axis counts iterations, **dashed** lines are the training loss (left y axis) and
**solid** lines the test error in percent (right y axis), one colour per network (e.g. original vs
pre-activation ResNet-1001).  Figs. 3 and 6 draw groups of runs the same way (shortcut variants,
activation variants, ResNet-164 vs -1001); :func:`plot_group` draws such a group.

The input is what a training run writes in its directory:

``log.csv``
    columns ``iteration,epoch,lr,train_loss,train_error,test_loss,test_error,time``; a cell is empty where
    the value was not measured at that row; errors are fractions in [0, 1].  The file grows while the
    run goes, so its last line may be partial.
``config.json``
    includes ``"model"`` and possibly ``"activation"``, ``"shortcut"``, ``"label"``; used for the default
    legend label.

Everything here draws on a :class:`matplotlib.figure.Figure` with the Agg canvas: pyplot is never
imported, so no display is needed and no global figure is left behind.
"""

import os
import warnings
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .fileio import read_json
from .train.runlog import CONFIG_NAME, LOG_COLUMNS, LOG_NAME, read_log  # noqa: F401  (the one reader of log.csv)

#: Output formats, chosen by the extension of the output path.
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}

# Config keys describing the unit variant, in the order they appear in a default label.
_VARIANT_KEYS = (
    "activation",
    "shortcut",
    "shortcut_scale",
    "residual_scale",
    "gate_bias",
    "shortcut_dropout",
    "projection",
)


class NothingToPlot(ValueError):
    """No run has a logged value yet (an empty or header-only ``log.csv``): there is no figure to draw."""


X_LABEL = "iterations"
LOSS_LABEL = "training loss (dashed)"
ERROR_LABEL = "test error (%, solid)"


# --------------------------------------------------------------------------------------------- reading


def read_config(run_dir):
    """``<run_dir>/config.json`` as a dict, or ``{}`` when it is missing or unreadable."""
    run_dir = os.fspath(run_dir)
    if os.path.isfile(run_dir):
        run_dir = os.path.dirname(run_dir) or "."
    config = read_json(os.path.join(run_dir, CONFIG_NAME))
    return config if isinstance(config, dict) else {}


def run_label(run_dir):
    """Default legend label of a run.

    ``config["label"]`` when set; otherwise the model name followed by the unit variant given in the
    config (``activation``, ``shortcut`` and its parameters), e.g.
    ``"cifar_resnet110_v1 shortcut=exclusive_gating gate_bias=-6"``; otherwise the directory name.
    """
    config = read_config(run_dir)
    if config.get("label"):
        return str(config["label"])
    model = config.get("model")
    if not model:
        path = os.path.abspath(os.fspath(run_dir))
        if os.path.isfile(path):
            path = os.path.dirname(path)
        return os.path.basename(path.rstrip(os.sep)) or path
    nested = config.get("model_kwargs") if isinstance(config.get("model_kwargs"), dict) else {}
    parts = [str(model)]
    for key in _VARIANT_KEYS:
        value = config.get(key, nested.get(key))
        if value is not None and value != "":
            parts.append(f"{key}={value}")
    return " ".join(parts)


# --------------------------------------------------------------------------------------------- drawing


def output_format(out_path):
    """The format (``"png"``, ``"pdf"`` or ``"svg"``) for ``out_path``; ValueError for any other extension."""
    ext = os.path.splitext(os.fspath(out_path))[1].lower()
    if ext not in FORMATS:
        raise ValueError(
            f"unsupported output format {ext or '(no extension)'!r} for {os.fspath(out_path)}: "
            f"use one of {', '.join(FORMATS)}"
        )
    return FORMATS[ext]


def run_colors(count):
    """``count`` distinct colours: matplotlib's default cycle, or an evenly spaced colormap beyond it."""
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key().get("color", [])
    if count <= len(cycle):
        return list(cycle[:count])
    cmap = matplotlib.colormaps["turbo"]
    return [matplotlib.colors.to_hex(cmap(value)) for value in np.linspace(0.05, 0.95, count)]


def _series(log, column, scale=1.0):
    """``(iterations, values * scale)`` of the rows where both are finite numbers."""
    x, y = log["iteration"], log[column]
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep] * scale


def has_values(log):
    """Whether a :func:`read_log` table has any training loss or test error (a header-only log has none)."""
    return any(np.isfinite(log[column]).any() for column in ("train_loss", "test_error"))


def _log_name(run_dir):
    """The log.csv of ``run_dir`` as the user gave it (the path itself when it is the file)."""
    path = os.fspath(run_dir)
    return path if path.endswith(".csv") else os.path.join(path, LOG_NAME)


def _point_marker(x):
    """A line of one point draws nothing: such a series (a quick run's single log row) gets a marker."""
    return {"marker": "o", "markersize": 4} if len(x) == 1 else {}


def _dedupe(labels, run_dirs):
    """Make default labels unique by appending the directory name where two runs share one."""
    out = list(labels)
    for index, label in enumerate(labels):
        if labels.count(label) > 1:
            name = os.path.basename(os.path.abspath(os.fspath(run_dirs[index])).rstrip(os.sep))
            out[index] = f"{label} [{name}]"
    return out


def plot_runs(
    run_dirs: str | Sequence[str],
    out_path: str | None = None,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    ax: Any = None,
) -> Figure:
    """Draw the paper's Figure 1 for one or more runs and return the :class:`~matplotlib.figure.Figure`.

    x axis: iterations.  Each run gets one colour and two lines: its training loss **dashed** on the left
    y axis (``ax``) and its test error in **percent**, **solid**, on the right y axis (a twin of ``ax``).
    The legend, on the right axis, has one entry per run.  A run that is still going is drawn as far as
    its log goes (a run without any test yet has an empty test-error line).

    ``run_dirs``: run directories (or their log.csv paths), or a mapping ``{label: run_dir}`` (see
    :func:`plot_group`).  ``labels``: one legend label per run; by default :func:`run_label`.
    ``title``: optional axes title.  ``ax``: draw into these axes (their figure is returned) instead of a
    new figure.  ``out_path``: write the figure there, as PNG, PDF or SVG after the extension (any other
    extension raises ValueError before anything is read); None only returns the figure.

    The lines can be found again on the returned figure: ``fig.axes[0]`` is the loss axis and
    ``fig.axes[1]`` the error axis (when drawn into a new figure); each line's ``gid`` is
    ``"<index>:train_loss"`` or ``"<index>:test_error"``.
    """
    if isinstance(run_dirs, dict):
        if labels is not None:
            raise ValueError("pass labels either as the keys of run_dirs or as labels=, not both")
        labels = [str(label) for label in run_dirs]
        run_dirs = list(run_dirs.values())
    elif isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    run_dirs = list(run_dirs)
    if not run_dirs:
        raise ValueError("no run directories to plot")
    fmt = output_format(out_path) if out_path is not None else None
    if labels is not None:
        labels = [str(label) for label in labels]
        if len(labels) != len(run_dirs):
            raise ValueError(f"{len(labels)} labels for {len(run_dirs)} runs: give one label per run")
    logs = [read_log(run_dir) for run_dir in run_dirs]  # errors before any drawing
    empty = [_log_name(run_dir) for run_dir, log in zip(run_dirs, logs) if not has_values(log)]
    if len(empty) == len(run_dirs):
        raise NothingToPlot(
            f"nothing to plot: {', '.join(empty)} {'has' if len(empty) == 1 else 'have'} no logged training loss "
            "or test error yet (a run logs its first row after --log-interval iterations)"
        )
    for name in empty:
        warnings.warn(f"{name} has no logged values yet: its run is in the legend without lines", stacklevel=2)
    if labels is None:
        labels = _dedupe([run_label(run_dir) for run_dir in run_dirs], run_dirs)

    if ax is None:
        fig = Figure(figsize=(7.0, 4.5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    err_ax = ax.twinx()

    handles = []
    for index, (log, label, color) in enumerate(zip(logs, labels, run_colors(len(logs)))):
        x, loss = _series(log, "train_loss")
        ax.plot(
            x,
            loss,
            linestyle="--",
            linewidth=1.0,
            color=color,
            label=f"{label}, training loss",
            gid=f"{index}:train_loss",
            **_point_marker(x),
        )
        x, err = _series(log, "test_error", scale=100.0)
        (line,) = err_ax.plot(
            x,
            err,
            linestyle="-",
            linewidth=1.5,
            color=color,
            label=f"{label}, test error",
            gid=f"{index}:test_error",
            **_point_marker(x),
        )
        handles.append(line)

    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(LOSS_LABEL)
    err_ax.set_ylabel(ERROR_LABEL)
    ax.set_ylim(bottom=0)
    err_ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    err_ax.legend(handles, labels, loc="upper right", fontsize="small")

    if out_path is not None:
        out_path = os.fspath(out_path)
        parent = os.path.dirname(out_path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        fig.savefig(out_path, format=fmt, dpi=150, bbox_inches="tight")
    return fig


def plot_group(runs, out_path=None, title=None, ax=None):
    """A group of runs on one pair of axes, as in the paper's Figs. 3 and 6; ``runs`` is ``{label: run_dir}``.

    Same drawing as :func:`plot_runs` (which this calls), so the figure reads like Figure 1.
    """
    return plot_runs(dict(runs), out_path, title=title, ax=ax)
