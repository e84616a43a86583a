"""What a throughput benchmark run produced, and its outputs: the rows, ``bench.csv``/``bench.json``, the
table and the headline ratios."""

import csv
import json
import os
from dataclasses import asdict, dataclass, field

from ..cpu import describe_peak

CSV_COLUMNS = (
    "network",
    "implementation",
    "mode",
    "batch_size",
    "train_images_per_s",
    "infer_images_per_s",
    "peak_rss_mb",
)


@dataclass
class BenchResult:
    """One CSV row: a network, implementation and mode.  Figures are None where they do not apply."""

    network: str
    implementation: str
    mode: str
    batch_size: int
    train_images_per_s: float | None = None
    infer_images_per_s: float | None = None
    peak_rss_mb: float | None = None
    #: images per CPU-second of the process (all threads): not in the CSV, in bench.json and the table
    train_images_per_cpu_s: float | None = None
    infer_images_per_cpu_s: float | None = None
    #: achieved GFLOP/s (graph multiply-adds x 2, x 3 for a training step; :mod:`gluon_resnetv2.flops`) and
    #: the fraction of the fp32 peak of the threads used (:func:`gluon_resnetv2.cpu.peak`): bench.json and
    #: the table
    forward_macs: int | None = None
    train_gflops: float | None = None
    infer_gflops: float | None = None
    train_peak_fraction: float | None = None
    infer_peak_fraction: float | None = None

    def row(self):
        """The CSV row (figures rounded; empty where not applicable)."""

        def fmt(value, digits):
            return "" if value is None else f"{value:.{digits}f}"

        return {
            "network": self.network,
            "implementation": self.implementation,
            "mode": self.mode,
            "batch_size": self.batch_size,
            "train_images_per_s": fmt(self.train_images_per_s, 2),
            "infer_images_per_s": fmt(self.infer_images_per_s, 2),
            "peak_rss_mb": fmt(self.peak_rss_mb, 1),
        }


@dataclass
class BenchReport:
    """Everything a run produced: rows, skipped configurations with reasons, and the conditions."""

    results: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (network, implementation, mode, reason)
    memory_method: str = "delta"  # 'delta' (VmHWM reset per configuration) | 'absolute'
    conditions: dict = field(default_factory=dict)  # machine, load, versions, knobs

    def find(self, network, implementation, mode):
        for r in self.results:
            if (r.network, r.implementation, r.mode) == (network, implementation, mode):
                return r
        return None


def write_csv(report, path):
    """Write ``report``'s rows to ``path`` with exactly :data:`CSV_COLUMNS`."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for result in report.results:
            writer.writerow(result.row())


def write_report(report, out_dir):
    """``out_dir/bench.csv`` (the rows) and ``out_dir/bench.json`` (rows, skipped configurations, ratios,
    memory method, machine/load/knobs); returns the CSV path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "bench.csv")
    write_csv(report, path)
    meta = {
        "results": [asdict(r) for r in report.results],
        "skipped": [dict(zip(("network", "implementation", "mode", "reason"), s)) for s in report.skipped],
        "ratios": [dict(zip(("network", "ratio", "value", "goal"), r)) for r in headline_ratios(report)],
        "ratios_per_cpu_s": [
            dict(zip(("network", "ratio", "value", "goal"), r)) for r in headline_ratios(report, per="cpu_s")
        ],
        "memory_method": report.memory_method,
        "conditions": report.conditions,
    }
    with open(os.path.join(out_dir, "bench.json"), "w") as f:
        json.dump(meta, f, indent=2, default=str)
    return path


_WIDTHS = (20, 15, 10, 6, 10, 10, 9, 11, 11, 8, 8, 7, 7)


def format_row(result):
    """One table line: the CSV columns, images per process CPU-second (train, inference), GFLOP/s and the
    percentage of the fp32 peak (train, inference)."""
    row = result.row()
    cells = (
        [row[c] for c in CSV_COLUMNS]
        + ["" if v is None else f"{v:.2f}" for v in (result.train_images_per_cpu_s, result.infer_images_per_cpu_s)]
        + ["" if v is None else f"{v:.1f}" for v in (result.train_gflops, result.infer_gflops)]
        + ["" if v is None else f"{100 * v:.1f}" for v in (result.train_peak_fraction, result.infer_peak_fraction)]
    )
    return " ".join(
        str(v or "-").rjust(w) if i > 2 else str(v).ljust(w) for i, (v, w) in enumerate(zip(cells, _WIDTHS))
    )


def format_table(report):
    """The rows as a fixed-width table, with the skipped configurations and the conditions under it."""
    head = (
        "network",
        "implementation",
        "mode",
        "batch",
        "train/s",
        "infer/s",
        "peak MB",
        "train/cpu-s",
        "infer/cpu-s",
        "trGF/s",
        "infGF/s",
        "tr%pk",
        "inf%pk",
    )
    lines = [" ".join(h.rjust(w) if i > 2 else h.ljust(w) for i, (h, w) in enumerate(zip(head, _WIDTHS)))]
    lines += [format_row(r) for r in report.results]
    for network, impl, mode, reason in report.skipped:
        lines.append(f"  skipped {network} {impl} {mode}: {reason}")
    c = report.conditions
    lines.append(
        f"  {c.get('cpus')} CPUs ({c.get('cpu')}), load {_load(c.get('loadavg'))} before, "
        f"{_load(c.get('loadavg_after'))} after; peak memory: "
        + (
            "RSS added per configuration (VmHWM reset)"
            if report.memory_method == "delta"
            else "process VmHWM after each configuration (reset not permitted)"
        )
    )
    if c.get("peak"):
        gemm = c["peak"].get("gemm_gflops")
        lines.append(
            f"  {describe_peak(c['peak'])}; %pk = GFLOP/s / the threads' fp32 peak "
            "(bf16 rows: their own peak is 2x, int8 4x)"
            + (
                ""
                if gemm is None
                else f"; measured fp32 GEMM (oneDNN, 1024^3): {gemm:.0f} GFLOP/s, "
                f"{c['peak']['gemm_gflops_per_cpu_s']:.0f} per CPU-second"
            )
        )
    return "\n".join(lines)


def _load(load):
    return "?" if not load else "/".join(f"{v:.2f}" for v in load)


def _ratio(a, b):
    return None if not a or not b else a / b


def headline_ratios(report, per="s"):
    """The headline figures as ``(network, label, value, goal)`` (goal None where there is none):
    ours/gluoncv training (hybrid, static), fused/hybrid and int8/fp32 inference, bf16/fp32, ours/PyTorch.
    ``per='cpu_s'`` computes them from images per process CPU-second instead of per second."""
    out = []
    for network in dict.fromkeys(r.network for r in report.results):

        def get(impl, mode, what, network=network):
            r = report.find(network, impl, mode)
            return None if r is None else getattr(r, what.replace("_per_s", f"_per_{per}"))

        ours = "gluon_resnetv2"
        candidates = [
            (
                "train ours/gluoncv (hybrid)",
                get(ours, "hybrid", "train_images_per_s"),
                get("gluoncv", "hybrid", "train_images_per_s"),
                1.0,
            ),
            (
                "train ours/gluoncv (static)",
                get(ours, "static", "train_images_per_s"),
                get("gluoncv", "static", "train_images_per_s"),
                1.0,
            ),
            (
                "infer ours/gluoncv (static)",
                get(ours, "static", "infer_images_per_s"),
                get("gluoncv", "static", "infer_images_per_s"),
                None,
            ),
            (
                "infer fused/hybrid",
                get(ours, "fused", "infer_images_per_s"),
                get(ours, "hybrid", "infer_images_per_s"),
                1.3,
            ),
            (
                "infer int8/fp32 (hybrid)",
                get(ours, "int8", "infer_images_per_s"),
                get(ours, "hybrid", "infer_images_per_s"),
                2.0,
            ),
            (
                "infer int8/fused fp32",
                get(ours, "int8", "infer_images_per_s"),
                get(ours, "fused", "infer_images_per_s"),
                None,
            ),
            (
                "train bf16/fp32 (static)",
                get(ours, "bf16", "train_images_per_s"),
                get(ours, "static", "train_images_per_s"),
                None,
            ),
            (
                "infer bf16/fp32 (static)",
                get(ours, "bf16", "infer_images_per_s"),
                get(ours, "static", "infer_images_per_s"),
                None,
            ),
        ]
        # fp32 against fp32: bf16 and int8 have their own rows
        best_train = max(
            [v for v in (get(ours, m, "train_images_per_s") for m in ("hybrid", "static")) if v] or [None],
            key=lambda v: v or 0,
        )
        best_infer = max(
            [v for v in (get(ours, m, "infer_images_per_s") for m in ("hybrid", "static", "fused")) if v] or [None],
            key=lambda v: v or 0,
        )
        candidates += [
            ("train ours(best fp32)/pytorch eager", best_train, get("pytorch", "eager", "train_images_per_s"), None),
            (
                "train ours(static)/pytorch eager",
                get(ours, "static", "train_images_per_s"),
                get("pytorch", "eager", "train_images_per_s"),
                None,
            ),
            ("infer ours(best fp32)/pytorch eager", best_infer, get("pytorch", "eager", "infer_images_per_s"), None),
            (
                "train ours bf16/pytorch bf16",
                get(ours, "bf16", "train_images_per_s"),
                get("pytorch", "bf16", "train_images_per_s"),
                None,
            ),
            (
                "train pytorch bf16/eager",
                get("pytorch", "bf16", "train_images_per_s"),
                get("pytorch", "eager", "train_images_per_s"),
                None,
            ),
        ]
        for label, a, b, goal in candidates:
            value = _ratio(a, b)
            if value is not None:
                out.append((network, label, value, goal))
    return out


def format_ratios(report):
    """The headline ratios, one a line: from images/s, from images per CPU-second, and the goal."""
    per_cpu = {(n, label): v for n, label, v, _ in headline_ratios(report, per="cpu_s")}
    lines = [f"{'network':20s} {'ratio':34s} {'per s':>7s} {'per cpu-s':>9s}"]
    for network, label, value, goal in headline_ratios(report):
        cpu = per_cpu.get((network, label))
        verdict = "" if goal is None else (f"  (goal >= {goal:g}: {'met' if value >= goal else 'NOT met'})")
        lines.append(f"{network:20s} {label:34s} {value:6.2f}x {'' if cpu is None else f'{cpu:8.2f}x'}{verdict}")
    return "\n".join(lines)
