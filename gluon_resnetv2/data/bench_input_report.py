"""The result files of ``scripts/bench_input.py``: ``bench_input.json`` (the figures and their conditions)
and ``bench_input.md`` (the fragment docs/guides/input-pipeline.md includes), both written by the run."""

import json
import os

from ..fileio import atomic_write_text

JSON, MARKDOWN = "bench_input.json", "bench_input.md"


def add_scaling(rows, goal=None):
    """Each row with ``scaling``: images/s over ``workers`` x the same loader's one-worker rate (None when
    that was not measured), and ``meets_goal`` (scaling >= ``goal``, default :data:`SCALING_GOAL`)."""
    from .bench_input import SCALING_GOAL

    goal = SCALING_GOAL if goal is None else goal
    single = {(r["data"], r["loader"]): r["images_per_s"] for r in rows if r["workers"] == 1}
    for row in rows:
        one = single.get((row["data"], row["loader"]))
        row["scaling"] = round(row["images_per_s"] / (row["workers"] * one), 3) if one and row["workers"] else None
        row["meets_goal"] = None if row["scaling"] is None else bool(row["scaling"] >= goal)
    return rows


def _load(pair):
    return " / ".join(f"{v:.2f}" for v in pair)


def markdown(result):
    """The Markdown fragment: conditions, one table per data set, ours vs ImageRecordIter."""
    machine = result["machine"]
    goal = result["settings"]["scaling_goal"]
    lines = [
        f"Measured {result['date']} on {machine.get('cpu')} ({machine.get('cpus')} CPUs, "
        f"{result['physical_cores']} physical cores; MXNet {machine.get('mxnet')}, Python {machine.get('python')}); "
        f"load average (1/5/15 min) {_load(result['load_average']['before'])} before, "
        f"{_load(result['load_average']['after'])} after.  Command: `{result['command']}`.  "
        f"Median of {result['settings']['rounds']} interleaved rounds; *scaling* = images/s / (workers x the "
        f"one-worker images/s), goal >= {goal}; *images/CPU-s*: per second of CPU time of the main and worker "
        "processes, which other processes' load does not change (equal for 1 and W workers: the workers do not "
        "get in each other's way).",
        "",
    ]
    if busy(result):
        lines += [
            f"**The machine was busy** (load {result['load_average']['before'][0]:.1f} on "
            f"{result['physical_cores']} cores): other processes took the cores the workers should have had, so "
            "the figures, the scaling above all, do not show what the loaders can do. Re-run on a quiet machine.",
            "",
        ]
    for data in dict.fromkeys(r["data"] for r in result["rows"]):
        rows = [r for r in result["rows"] if r["data"] == data]
        capped = False
        lines += [
            f"**{data}** (batch {rows[0]['batch_size']})",
            "",
            "| loader | workers | images/s | scaling | goal | images/CPU-s |",
            "|---|---:|---:|---:|---|---:|",
        ]
        for r in rows:
            scaling = "" if r["scaling"] is None else f"{r['scaling']:.2f}"
            verdict = "" if r["meets_goal"] is None or r["workers"] == 1 else ("met" if r["meets_goal"] else "missed")
            workers = r["workers"]
            if r.get("decode_threads", workers) != workers:
                workers, capped = f"{workers} ({r['decode_threads']} decoding)", True
            per_cpu = f"{r['images_per_cpu_s']:.0f}" if r.get("images_per_cpu_s") else ""
            lines.append(f"| {r['loader']} | {workers} | {r['images_per_s']:.0f} | {scaling} | {verdict} | {per_cpu} |")
        if capped:
            lines.append(
                "\n(decoding): the threads ImageRecordIter really ran; MXNet 1.9.1 caps `preprocess_threads` at "
                "max(CPUs / 2 - 1, 1)."
            )
        lines.append("")
    lines += _versus(result["rows"])
    return "\n".join(lines).rstrip() + "\n"


def _versus(rows):
    """Our worker processes against ImageRecordIter, per worker count: like for like (float32 out, colour
    and normalisation on the CPU) and as the trainer uses them (uint8 out)."""
    theirs = {r["workers"]: r["images_per_s"] for r in rows if r["loader"].startswith("mx.io")}
    lines = []
    for loader, what in (("ours, processes (float32)", "float32, like for like"), ("ours, processes (uint8)", "uint8")):
        ours = {r["workers"]: r["images_per_s"] for r in rows if r["loader"] == loader}
        common = sorted(set(ours) & set(theirs))
        if common:
            pairs = ", ".join(f"{w} worker{'s' * (w > 1)} {ours[w] / theirs[w]:.2f}x" for w in common)
            lines.append(f"- {what}: {pairs}")
    if not lines:
        return []
    return ["Our loader (worker processes) against `mx.io.ImageRecordIter` on the same file:", "", *lines, ""]


def busy(result):
    """True when the run started on a machine with more runnable work than half its physical cores."""
    return result["load_average"]["before"][0] > 0.5 * result["physical_cores"]


def write_results(result, out_dir):
    """Write ``bench_input.json`` and ``bench_input.md`` into ``out_dir`` (atomically); returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, JSON), os.path.join(out_dir, MARKDOWN)]
    atomic_write_text(paths[0], json.dumps(result, indent=1, sort_keys=False) + "\n")
    atomic_write_text(paths[1], markdown(result))
    return paths
