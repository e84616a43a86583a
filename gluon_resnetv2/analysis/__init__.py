"""Signal propagation through residual units: the paper's Eqns. 4-8 measured on a real network.

He, Zhang, Ren, Sun, *Identity Mappings in Deep Residual Networks* (ECCV 2016), Sec. 3; what is measured
and how is in :mod:`.measure`.

- :mod:`.variants`: ``--variant`` specs (Fig. 2 / Table 1) parsed into :class:`Variant`;
- :mod:`.measure`: per-unit forward norms and vector-Jacobian products (:func:`measure_propagation`);
- :mod:`.training`: the measured batch and the optional SGD steps before measuring;
- :mod:`.results`: :class:`PropagationResult` and ``propagation.csv``;
- :mod:`.report`: the figure and the Markdown summary;
- :mod:`.driver`: :func:`propagation` (measure variants) and :func:`analyze` (and write the files).
"""

from .driver import analyze, propagation
from .measure import measure_propagation, shortcut_lambda, shortcut_ops, unit_forward
from .report import plot_propagation, summary_markdown
from .results import CSV_COLUMNS, PropagationResult, read_csv, results_from_csv, write_csv
from .training import load_batch, train_iterations
from .variants import (
    FIG2_VARIANTS,
    VARIANT_GROUPS,
    VARIANT_OPTIONS,
    Variant,
    merge_kwargs,
    parse_variant,
    parse_variants,
    variant_from_kwargs,
)

__all__ = [
    "analyze",
    "propagation",
    "measure_propagation",
    "shortcut_lambda",
    "shortcut_ops",
    "unit_forward",
    "plot_propagation",
    "summary_markdown",
    "CSV_COLUMNS",
    "PropagationResult",
    "read_csv",
    "results_from_csv",
    "write_csv",
    "load_batch",
    "train_iterations",
    "FIG2_VARIANTS",
    "VARIANT_GROUPS",
    "VARIANT_OPTIONS",
    "Variant",
    "merge_kwargs",
    "parse_variant",
    "parse_variants",
    "variant_from_kwargs",
]
