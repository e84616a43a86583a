"""The figure and the Markdown table of a measurement: Eqns. 5 and 8 of He et al. 2016, per unit."""

import numpy as np


def _positive(values):
    values = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    values[~(values > 0)] = np.nan  # zeros and NaN cannot be drawn on a log axis
    return values


def plot_propagation(results, out_path, title=None):
    """Log-scale plot of dE/dx_l / dE/dx_L against l, one line per variant (left), and of the shortcut-path
    term of Eqn. 8 (within stage; right).  Zero values (e.g. a dropout shortcut) leave gaps."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: only plotting pays its start-up (~0.3 s)
    from matplotlib.figure import Figure

    from ..plot import run_colors  # imports matplotlib

    rows = (len(results) + 1) // 2
    figure = Figure(figsize=(12, 4.8 + 0.22 * rows))
    FigureCanvasAgg(figure)
    total_ax, short_ax = figure.subplots(1, 2)
    colors = run_colors(len(results))
    for result, color in zip(results, colors):
        units = [r["unit"] for r in result.rows]
        total_ax.plot(units, _positive([r["grad_ratio"] for r in result.rows]), color=color, label=result.variant.label)
        short_ax.plot(
            units, _positive([r["shortcut_path_ratio"] for r in result.rows]), color=color, label=result.variant.label
        )
    boundaries = [r["unit"] for r in results[0].rows[1:-1] if r["stage"] != results[0].rows[r["unit"] - 1]["stage"]]
    for ax, name in (
        (total_ax, "total: ||dE/dx_l|| / ||dE/dx_L||  (Eqn. 5/8)"),
        (short_ax, "shortcut-path term only, within stage (Eqn. 8 prod lambda)"),
    ):
        ax.set_yscale("log")
        ax.set_xlabel("residual unit l (x_l = its input; last point = x_L)")
        ax.set_title(name, fontsize=10)
        for b in boundaries:
            ax.axvline(b - 0.5, color="0.8", linewidth=0.8, zorder=0)
        ax.grid(True, which="major", alpha=0.3)
    total_ax.set_ylabel("gradient-norm ratio")
    handles, labels = total_ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    it = results[0].iterations
    figure.suptitle(
        title
        or f"{results[0].model}: gradient reaching unit l, "
        f"{'at initialisation' if not it else f'after {it} iterations'}",
        fontsize=11,
    )
    figure.tight_layout(rect=(0, 0.03 + 0.038 * rows, 1, 1))
    figure.savefig(out_path, dpi=110)
    return out_path


def summary_markdown(results):
    """A Markdown table of :meth:`PropagationResult.summary` for every variant."""
    lines = [
        "| variant | units | first unit: dE/dx_l / dE/dx_L | min ratio (unit) | max ratio "
        "| shortcut term, unit 1 (stage) | shortcut term, unit 0 (net) | loss | s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        s = result.summary()
        lines.append(
            f"| {s['variant']} | {s['units']} | {s['ratio_first']:.3g} | {s['ratio_min']:.3g} ({s['argmin']}) "
            f"| {s['ratio_max']:.3g} | {s['shortcut_term_unit1']:.3g} | {s['shortcut_term_net_unit0']:.3g} "
            f"| {s['loss']:.3g} | {s['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"
