"""The Figure 3/6-style training curves of a report: one figure per group of rows the paper compares."""

import os
import re

from .. import paper_results as paper
from ..train.runlog import read_log
from .state import run_dir_of


def _slug(text):
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _has_values(run_dir):
    """Whether ``run_dir`` has logged a training loss or test error yet (a header-only log.csv has not)."""
    from ..plot import has_values  # matplotlib: loaded only where there are curves to draw

    try:
        return has_values(read_log(run_dir))
    except (OSError, ValueError):  # no log yet, or one being written
        return False


def figure_plan(out, experiments, alias=None):
    """``[(group, path, runs, title)]``: the figures :func:`plot_groups` draws, where, from which runs (a dict
    label -> run directory) and with which title.  Table 1 adds its baseline, the original unit, to every
    group; rows without a log yet are left out, and so is a group without any."""
    groups = {}
    for exp in experiments:
        groups.setdefault(exp.paper.group, []).append(exp)
    baseline = groups.pop("baseline", [])
    plan = []
    for group, members in groups.items():
        runs = {}
        for exp in baseline + members:
            if exp.key in (alias or {}):
                continue  # the same run is drawn under the row it belongs to
            run_dir = run_dir_of(out, (alias or {}).get(exp.key, exp.key), 0)
            if _has_values(run_dir):
                runs[exp.label] = run_dir
        if runs:
            path = os.path.join(out, "figures", f"{experiments[0].table}_{_slug(group)}.png")
            title = f"{paper.TITLES[experiments[0].table].split(':')[0]}: {group}"
            plan.append((group, path, runs, title))
    return plan


def draw_figures(plan, where=None):
    """Draw each figure of ``plan`` (:func:`figure_plan`) to ``where(path)`` (default: ``path`` itself)."""
    from ..plot import plot_runs  # matplotlib: only plotting pays its start-up (~0.3 s)

    for _, path, runs, title in plan:
        target = where(path) if where else path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        plot_runs(runs, target, title=title)


def plot_groups(out, experiments, alias=None):
    """Figure 3/6-style plots (training loss dashed, test error solid, against iterations), one per group of
    rows the paper compares (Table 1 adds its baseline, the original unit, to every group).  Returns
    ``[(group, path)]``; rows without a log yet are left out."""
    plan = figure_plan(out, experiments, alias)
    draw_figures(plan)
    return [(group, path) for group, path, _, _ in plan]
