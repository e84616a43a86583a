"""How far a reproduced table agrees with the paper's: per-row training-loss figures and per-table scores.

The paper's claims (He et al. 2016, Tables 1-3, Figs. 1 and 6) are about *ranking* (which unit is better)
and *ease of optimisation* (the training loss, early and at the end), not about absolute errors on
CIFAR-10, which a small-scale run cannot match.  So each table gets:

* per row: the final test error (whole test set), the final training loss (mean over the last 10 % of the
  iterations) and the mean training loss over the whole run;
* ``spearman_test_error`` / ``spearman_train_loss``: Spearman's rank correlation between the paper's test
  errors and our test errors / final training losses, the paper's "fail" rows ranked worst (tied with each
  other), a diverged run of ours ranked worst likewise; ties get their average rank;
* ``fails_found``: how many of the paper's k "fail" rows are among our k worst rows (by test error); a fail
  row counts as found when fewer than k rows are strictly worse than it, so ties at the boundary count for
  the paper (written in the report);
* ``seed_spread_test_error``: the sample standard deviation, in points, of the test error of the table's
  spread row over its seeds (the depth scale trains it with three), to tell a finding from noise.
"""

import math
import statistics

#: Fraction of the run whose training loss is the "final" training loss.
FINAL_FRACTION = 0.10


def average_ranks(values):
    """Ranks (1 = smallest) of ``values``, ties sharing their average rank; ``inf`` ranks last."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(xs, ys):
    """Spearman's rho of two equally long sequences (``inf`` allowed: ranked worst, tied), or None when it
    is undefined (fewer than two pairs, or one side has a single rank)."""
    if len(xs) != len(ys):
        raise ValueError(f"spearman needs sequences of one length, got {len(xs)} and {len(ys)}")
    if len(xs) < 2:
        return None
    rx, ry = average_ranks(list(xs)), average_ranks(list(ys))
    if len(set(rx)) < 2 or len(set(ry)) < 2:
        return None
    return statistics.correlation(rx, ry)  # Pearson's r of the ranks is Spearman's rho, ties included


def worst_value(value):
    """A measurement as a ranking value: missing, NaN (diverged) -> ``inf`` (worst)."""
    return math.inf if value is None or not math.isfinite(value) else float(value)


def fails_found(paper_fail, ours):
    """``(found, k)``: of the k rows the paper reports as "fail", how many are among our k worst by
    ``ours`` (larger is worse; a row counts when fewer than k rows are strictly worse).  ``(None, 0)``
    when the paper has no fail row."""
    k = sum(bool(f) for f in paper_fail)
    if k == 0:
        return None, 0
    values = [worst_value(v) for v in ours]
    found = sum(1 for fail, value in zip(paper_fail, values) if fail and sum(v > value for v in values) < k)
    return found, k


def loss_figures(log, iterations, diverged=False):
    """``(final, mean)`` training loss of one run from its ``log`` (:func:`gluon_resnetv2.plot.read_log`):
    the mean of the logged losses over the last :data:`FINAL_FRACTION` of ``iterations``, and over the whole
    run.  A run that diverged (or logged an infinite loss) gets ``inf`` for both (worst); a run without a
    logged loss ``(None, None)``."""
    logged = [(float(i), float(x)) for i, x in zip(log["iteration"], log["train_loss"]) if not math.isnan(x)]
    if diverged or any(math.isinf(x) for _, x in logged):
        return math.inf, math.inf
    if not logged:
        return None, None
    cut = iterations * (1 - FINAL_FRACTION)
    tail = [x for i, x in logged if i > cut] or [logged[-1][1]]
    return statistics.fmean(tail), statistics.fmean(x for _, x in logged)


def table_agreement(records, spread_errors=()):
    """The agreement scores of a table (see the module docstring) from its row ``records`` (dicts with
    ``paper_error`` (None for fail), ``paper_fail``, ``test_error``, ``train_loss_final``, all in %
    or loss units, None where not measured).  Only rows with a measured test error (or a divergence, given
    as ``inf``) take part; ``spread_errors`` are the spread row's per-seed test errors."""
    done = [r for r in records if r["test_error"] is not None]
    paper = [math.inf if r["paper_fail"] else r["paper_error"] for r in done]
    ours_error = [worst_value(r["test_error"]) for r in done]
    with_loss = [(p, r["train_loss_final"]) for p, r in zip(paper, done) if r["train_loss_final"] is not None]
    found, total = fails_found([r["paper_fail"] for r in done], ours_error)
    finite = [e for e in spread_errors if e is not None and math.isfinite(e)]
    return {
        "rows_compared": len(done),
        "spearman_test_error": spearman(paper, ours_error),
        "spearman_train_loss": spearman([p for p, _ in with_loss], [worst_value(x) for _, x in with_loss]),
        "fails_found": found,
        "fails_total": total,
        "seed_spread_test_error": statistics.stdev(finite) if len(finite) > 1 else None,
        "seed_test_errors": list(finite),
    }


def json_number(value):
    """``value`` for report.json: None stays None, non-finite becomes None (JSON has no infinity)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return round(float(value), 6)
