"""``<out>/report.md`` and ``<out>/report.json`` of a table: each row's numbers against the paper's (Tables
1-4), the agreement section and the Figure 3/6-style training curves of each group of rows."""

import json
import math
import os
import statistics

from .. import paper_results as paper
from ..agreement import json_number, loss_figures, table_agreement
from ..fileio import atomic_write_text, staged
from ..paper_results import FAIL_THRESHOLD
from ..train.runlog import TOP5_COLUMN, format_duration, read_log
from .figures import draw_figures, figure_plan, plot_groups  # noqa: F401  (plot_groups: imported from here)
from .scales import DEPTH_SETTINGS, get_scale
from .state import _read_status, run_dir_of, run_state
from .suites import overrides


def _final(run_dir, iterations=None):
    """``dict(state, error %, iterations, seconds, reason, loss_final, loss_mean)`` of one run directory
    (the training-loss figures of :func:`gluon_resnetv2.agreement.loss_figures`, for a run that ended)."""
    state = run_state(run_dir)
    status = _read_status(run_dir) or {}
    out = dict(
        state=state,
        error=None,
        iterations=None,
        seconds=None,
        reason=status.get("reason"),
        loss_final=None,
        loss_mean=None,
        top5=None,
    )
    log = None
    if os.path.isfile(os.path.join(run_dir, "log.csv")):
        try:
            log = read_log(run_dir)
        except ValueError:
            log = None
    if log is not None and len(log["iteration"]):
        out["iterations"] = int(log["iteration"][-1])
        times = [t for t in log["time"] if math.isfinite(t)]
        out["seconds"] = times[-1] if times else None
    if state == "finished":
        out["iterations"] = status.get("iteration", out["iterations"])
        out["seconds"] = status.get("elapsed", out["seconds"])
        if status.get("test_error") is not None:
            out["error"] = 100.0 * float(status["test_error"])
        if status.get(TOP5_COLUMN) is not None:
            out["top5"] = 100.0 * float(status[TOP5_COLUMN])
    elif state == "failed":
        out["iterations"] = status.get("iteration", out["iterations"])
    if state in ("finished", "failed") and log is not None:
        out["loss_final"], out["loss_mean"] = loss_figures(
            log, iterations or out["iterations"] or 1, diverged=state == "failed"
        )
    return out


def summarize(out, experiment, seeds, alias=None):
    """The report's numbers for one row: ``dict(ours, errors, fail, state, iterations, seconds, runs)``.

    ``ours`` is the median test error (%) of the finished seeds; a diverged seed counts as a fail (infinite
    error) in the median; ``fail`` is the paper's criterion, test error above 20 %.
    """
    key = (alias or {}).get(experiment.key, experiment.key)
    seeds = experiment.seeds(seeds)
    finals = [_final(run_dir_of(out, key, s), experiment.iterations) for s in range(seeds)]
    done = [f for f in finals if f["state"] in ("finished", "failed")]
    errors = [f["error"] if f["state"] == "finished" else math.inf for f in done]
    errors = [e for e in errors if e is not None]
    ours = statistics.median(errors) if errors else None
    states = sorted({f["state"] for f in finals})
    iterations = [f["iterations"] for f in finals if f["iterations"] is not None]
    seconds = [f["seconds"] for f in finals if f["seconds"] is not None]
    losses_final = [f["loss_final"] for f in done if f["loss_final"] is not None]
    losses_mean = [f["loss_mean"] for f in done if f["loss_mean"] is not None]
    top5 = [f["top5"] for f in finals if f["state"] == "finished" and f["top5"] is not None]
    return dict(
        ours=ours,
        errors=errors,
        fail=ours is not None and ours > FAIL_THRESHOLD,
        loss_final=statistics.median(losses_final) if losses_final else None,
        loss_mean=statistics.median(losses_mean) if losses_mean else None,
        top5=statistics.median(top5) if top5 else None,
        complete=len(done) == seeds,
        state=states[0] if len(states) == 1 else "/".join(states),
        iterations=max(iterations) if iterations else None,
        seconds=sum(seconds) if seconds else None,
        diverged=sum(f["state"] == "failed" for f in finals),
        shared=key if key != experiment.key else None,
        reasons=[f["reason"] for f in finals if f["reason"]],
    )


REPORT_COLUMNS = (
    "row",
    "network (paper)",
    "unit variant",
    "run",
    "paper error %",
    "our error %",
    "difference",
    "train loss (final)",
    "train loss (mean)",
    "iterations",
    "wall time",
    "result",
)

#: The columns a table with top-5 errors (Table 5, ImageNet) adds after "difference": top-1 / top-5.
TOP5_REPORT_COLUMNS = ("paper top-5 %", "our top-5 %")


def has_top5(experiments):
    """Whether the paper gives top-5 errors for these rows (Table 5)."""
    return any(exp.paper.top5 is not None for exp in experiments)


def report_columns(experiments):
    """:data:`REPORT_COLUMNS`, with :data:`TOP5_REPORT_COLUMNS` for a table with top-5 errors."""
    if not has_top5(experiments):
        return REPORT_COLUMNS
    at = REPORT_COLUMNS.index("difference") + 1
    return REPORT_COLUMNS[:at] + TOP5_REPORT_COLUMNS + REPORT_COLUMNS[at:]


def _fmt(value):
    if value is None:
        return ""
    if value == math.inf:
        return "diverged"
    return f"{value:.2f}"


def _fmt_loss(value):
    if value is None:
        return ""
    if value == math.inf:
        return "diverged"
    # a loss that blew up but stayed finite (the dropout shortcut reaches ~1e16) would print 20 digits
    return f"{value:.3f}" if abs(value) < 1e4 else f"{value:.2e}"


def summaries(out, experiments, seeds=1, alias=None):
    """``{key: summarize(...)}`` of every experiment: read once, shared by report.md and report.json."""
    return {exp.key: summarize(out, exp, seeds, alias) for exp in experiments}


def report_rows(out, experiments, seeds=1, alias=None, notes=None, summary=None):
    """One dict per experiment with the :data:`REPORT_COLUMNS` (strings, as written in report.md); ``notes``
    (``{key: text}``, e.g. a row's Slurm job) is the result of a row that has no number yet."""

    rows = []
    for exp in experiments:
        row = exp.paper
        s = summary[exp.key] if summary else summarize(out, exp, seeds, alias)
        ours = s["ours"]
        if ours is None:
            ours_text = ""
        elif ours == math.inf:
            ours_text = "diverged"
        else:
            ours_text = _fmt(ours)
        if len(s["errors"]) > 1:
            ours_text += " (median of " + ", ".join(_fmt(e) for e in s["errors"]) + ")"
        diff = ""
        if ours is not None and math.isfinite(ours) and not row.failed:
            diff = f"{ours - row.error:+.2f}"
        if s["ours"] is None:
            result = (notes or {}).get(exp.key) or {
                "running": "running",
                "missing": "not run",
                "resumable": "interrupted",
                "restart": "interrupted",
                "error": "error",
            }.get(s["state"], s["state"])
        else:
            result = "fail" if s["fail"] else "ok"
            if s["diverged"]:
                diverged = s["diverged"]
                result += " (diverged)" if seeds == 1 else f" (diverged in {diverged} of {seeds})"
            if not s["complete"]:
                result += " (incomplete)"
        if s["shared"]:
            result += f"; same run as {s['shared']}"
        kwargs = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in exp.model_kwargs.items())
        rows.append(
            {
                "row": exp.key,
                "network (paper)": row.network,
                "unit variant": row.variant,
                "run": f"{exp.model}{' [' + kwargs + ']' if kwargs else ''} on {exp.dataset}",
                "paper error %": row.error_text,
                "our error %": ours_text,
                "difference": diff,
                "train loss (final)": _fmt_loss(s["loss_final"]),
                "train loss (mean)": _fmt_loss(s["loss_mean"]),
                "iterations": "" if s["iterations"] is None else str(s["iterations"]),
                "wall time": format_duration(s["seconds"]),
                "result": result,
            }
        )
        if has_top5(experiments):
            rows[-1].update(
                {
                    "paper top-5 %": "" if row.top5 is None else f"{row.top5:g}",
                    "our top-5 %": _fmt(s["top5"]),
                }
            )
    return rows


REPORT_JSON = "report.json"


def spread_row(experiments):
    """The experiment whose seeds measure the seed-to-seed spread: the depth scale's spread row, else the
    table's first row."""
    setting = DEPTH_SETTINGS.get(experiments[0].table)
    keys = [e.key for e in experiments]
    return experiments[keys.index(setting.spread_row)] if setting and setting.spread_row in keys else experiments[0]


def report_records(out, experiments, seeds=1, alias=None, summary=None):
    """``(rows, agreement)`` of ``report.json``: one record per row (errors in %, None where not measured,
    a diverged run's test error and losses None with ``state`` 'failed') and
    :func:`gluon_resnetv2.agreement.table_agreement` over the rows that ended."""

    summary = summary or summaries(out, experiments, seeds, alias)
    top5 = has_top5(experiments)
    records, ranked = [], []
    for exp in experiments:
        row = exp.paper
        s = summary[exp.key]
        diverged = s["ours"] == math.inf
        records.append(
            dict(
                row=exp.key,
                paper_error=None if row.failed else row.error,
                paper_fail=row.failed,
                test_error=json_number(s["ours"]),
                train_loss_final=json_number(s["loss_final"]),
                train_loss_mean=json_number(s["loss_mean"]),
                iterations=s["iterations"],
                seconds=json_number(s["seconds"]),
                state=s["state"],
                diverged=diverged,
                seeds=len(s["errors"]),
                **({"paper_top5_error": row.top5, "test_top5_error": json_number(s["top5"])} if top5 else {}),
            )
        )
        ranked.append(
            dict(
                paper_error=None if row.failed else row.error,
                paper_fail=row.failed,
                test_error=s["ours"],
                train_loss_final=s["loss_final"],
            )
        )
    spread = summary[spread_row(experiments).key]["errors"]
    agreement = table_agreement(ranked, spread)
    agreement = {k: (json_number(v) if isinstance(v, float) else v) for k, v in agreement.items()}
    return records, agreement


def agreement_lines(agreement, spread_experiment):
    """The report's "Agreement with the paper" section (markdown lines)."""

    def number(value, digits=2):
        return "n/a" if value is None else f"{value:.{digits}f}"

    found = (
        "n/a (no paper fail row among the rows compared)"
        if agreement["fails_found"] is None
        else f"{agreement['fails_found']} of {agreement['fails_total']}"
    )
    errors = agreement["seed_test_errors"]
    spread = (
        f"{number(agreement['seed_spread_test_error'])} points (sample standard deviation of "
        f"{', '.join(f'{e:.2f}' for e in errors)} % over {len(errors)} seeds of row `{spread_experiment.key}`)"
        if agreement["seed_spread_test_error"] is not None
        else f"not measured (row `{spread_experiment.key}` has fewer than two finished seeds)"
    )
    return [
        "## Agreement with the paper",
        "",
        f'Rows compared: {agreement["rows_compared"]} (rows that ended; the paper\'s "fail" rows and our '
        "diverged runs rank worst, tied).",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| Spearman rank correlation, paper error vs our test error | {number(agreement['spearman_test_error'])} |",
        f"| Spearman rank correlation, paper error vs our final training loss | "
        f"{number(agreement['spearman_train_loss'])} |",
        f"| paper's fail rows among our worst rows (as many as the paper has) | {found} |",
        "",
        f"Seed-to-seed spread of the test error: {spread}. Differences between rows smaller than about twice "
        "this are within noise.",
    ]


def write_report(out, experiments, seeds=1, alias=None, notes=None):
    """``<out>/report.md`` (the table of :func:`report_rows`, the agreement section and the group figures)
    and ``<out>/report.json`` (:func:`report_records`); returns the report.md path."""
    table = experiments[0].table
    scale = get_scale(experiments[0].scale)
    lines = [f"# {paper.TITLES[table]}", ""]
    first = experiments[0]
    size = first.dataset_options.get("image_size")
    runs = (
        f"Runs: {', '.join(sorted({e.dataset for e in experiments}))}{f' at {size}x{size}' if size else ''}, "
        f"{first.iterations} iterations of mini-batch "
        f"{first.batch_size}, warm-up {first.warmup} iterations, lr /10 at 1/2 and 3/4 of the run."
    )
    # Options that override the scale (--dataset synthetic --iterations 4) are what ran: say so instead of
    # the scale's own description, and such runs are not the paper's.
    changed = overrides(experiments)
    description = (
        f"{scale.description}"
        if not changed
        else f"Its networks and schedule shape, with {'; '.join(changed)} (given on the command line)"
    )
    if not scale.comparable or changed:
        lines += [
            f"**Scale `{scale.name}`: these numbers are NOT comparable to the paper's.** {description}. "
            "They show whether each variant trains and how the variants rank at this size; the paper's "
            "column is given for orientation only.",
            "",
        ]
    else:
        lines += [f"Scale `{scale.name}`: {description}.", ""]
    lines += [runs, ""]
    own = [
        f"{e.key}: {e.iterations} iterations of mini-batch {e.batch_size}, lr /10 at iterations "
        f"{', '.join(map(str, e.lr_steps))}, warm-up {e.warmup}, optimizer {e.optimizer} ({e.paper.recipe.source})"
        for e in experiments
        if e.lr_steps is not None
    ]
    if own:
        lines += ["Rows with their own recipe: " + "; ".join(own) + ".", ""]
    changed = sorted({f"{e.dataset} instead of {e.paper.dataset}" for e in experiments if e.dataset != e.paper.dataset})
    if changed and scale.comparable:
        lines += [f"Data set changed from the paper's: {'; '.join(changed)}.", ""]
    if seeds > 1:
        lines += [f"Our error is the median over {seeds} seeds (a diverged seed counts as an infinite error).", ""]
    lines += [
        f'"fail": test error above {FAIL_THRESHOLD:g} % (the paper\'s Table 1 criterion). Difference = ours - '
        "paper, in percentage points."
        + (
            ""
            if scale.comparable
            else " At this scale even a network that trains well may sit near the 20 % line after so few "
            "iterations: compare the rows with each other (and with the original unit) rather than with it."
        ),
        "",
    ]
    summary = summaries(out, experiments, seeds, alias)
    rows = report_rows(out, experiments, seeds, alias, notes, summary)
    columns = report_columns(experiments)
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join(" --- " if i < 4 else " ---: " for i in range(len(columns) - 1)) + "| --- |")
    for row in rows:
        lines.append("| " + " | ".join(row[c].replace("|", "/") for c in columns) + " |")
    records, agreement = report_records(out, experiments, seeds, alias, summary)
    lines += [""] + agreement_lines(agreement, spread_row(experiments))
    figures = figure_plan(out, experiments, alias)
    if figures:
        lines += [
            "",
            "## Training curves",
            "",
            "Dashed: training loss (left axis); solid: test error % (right axis); against iterations.",
            "",
        ]
        for group, path, _, _ in figures:
            lines += [f"### {group}", "", f"![{group}]({os.path.relpath(path, out)})", ""]
    path, json_path = os.path.join(out, "report.md"), os.path.join(out, REPORT_JSON)
    # report.md, report.json and the figures belong together: staged and moved into place at the end, so an
    # interrupted or failing report leaves the previous one (and its figures) as it was.
    with staged([path, json_path] + [figure for _, figure, _, _ in figures], what=f"report {path}") as stage:
        document = dict(table=table, scale=scale.name, rows=records, agreement=agreement)
        atomic_write_text(stage.path(json_path), json.dumps(document, indent=2) + "\n")
        draw_figures(figures, stage.path)
        atomic_write_text(stage.path(path), "\n".join(lines).rstrip() + "\n")
    return path


def parse_report(path):
    """The table of a ``report.md`` back as a list of dicts keyed by :data:`REPORT_COLUMNS`."""
    with open(path, encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle]
    start = next(i for i, line in enumerate(lines) if line.startswith("| row |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip().strip("|").split("|")))))
    return rows
