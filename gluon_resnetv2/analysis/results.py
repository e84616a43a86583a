"""A measured variant (:class:`PropagationResult`) and its ``propagation.csv``, written and read back."""

import csv
from dataclasses import dataclass

import numpy as np

from .variants import Variant

#: Columns of ``propagation.csv``.
CSV_COLUMNS = (
    "variant",
    "model",
    "iterations",
    "unit",
    "stage",
    "shortcut_ops",
    "forward_norm",
    "grad_norm",
    "grad_ratio",
    "shortcut_path_ratio",
    "shortcut_path_ratio_net",
    "expected_shortcut_ratio",
)


@dataclass
class PropagationResult:
    """The measurement of one variant: its rows (see :data:`CSV_COLUMNS`) and context."""

    variant: Variant
    model: str
    iterations: int
    rows: list
    loss: float = float("nan")
    seconds: float = 0.0

    def summary(self):
        """The figures docs/guides/signal-propagation.md tabulates: first unit's total gradient ratio, the
        minimum and maximum ratio over units, and the shortcut-path term at unit 1 (the longest span within
        stage 1)."""
        ratios = [r["grad_ratio"] for r in self.rows[:-1]]
        return dict(
            variant=self.variant.label,
            model=self.model,
            iterations=self.iterations,
            units=len(self.rows) - 1,
            ratio_first=ratios[0],
            ratio_min=min(ratios),
            ratio_max=max(ratios),
            argmin=int(np.argmin(ratios)),
            shortcut_term_unit1=self.rows[1]["shortcut_path_ratio"] if len(self.rows) > 2 else float("nan"),
            shortcut_term_net_unit0=self.rows[0]["shortcut_path_ratio_net"],
            loss=self.loss,
            seconds=self.seconds,
        )


def write_csv(results, path):
    """``propagation.csv``: one row per (variant, unit), columns :data:`CSV_COLUMNS`."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, CSV_COLUMNS)
        writer.writeheader()
        for result in results:
            for row in result.rows:
                out = dict(row, variant=result.variant.label, model=result.model, iterations=result.iterations)
                for key, value in out.items():
                    if isinstance(value, float):
                        out[key] = f"{value:.8g}"
                    elif value is None:
                        out[key] = ""
                writer.writerow(out)
    return path


def read_csv(path):
    """``propagation.csv`` back as ``{variant: [row dicts]}`` with floats (None for empty cells)."""
    out = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            parsed = {}
            for key, value in row.items():
                if key in ("variant", "model", "shortcut_ops"):
                    parsed[key] = value
                elif key in ("unit", "stage", "iterations"):
                    parsed[key] = int(value)
                else:
                    parsed[key] = float(value) if value not in ("", None) else None
            out.setdefault(parsed["variant"], []).append(parsed)
    return out


def results_from_csv(path):
    """:class:`PropagationResult` objects rebuilt from a ``propagation.csv`` (e.g. to plot it again)."""
    out = []
    for label, rows in read_csv(path).items():
        first = rows[0]
        rows = [{k: v for k, v in r.items() if k not in ("variant", "model", "iterations")} for r in rows]
        out.append(PropagationResult(Variant(label, {}), first["model"], first["iterations"], rows))
    return out
