#!/usr/bin/env python
"""The paper's recipe against the modern options, measured: ResNet-20 v2 on Fashion-MNIST, the same
iteration budget for each (issue 21, point 6).

- ``paper``: the paper's recipe (Sec. 3.1: momentum SGD, lr 0.1 /10 at 1/2 and 3/4 of the run);
- ``gluoncv``: ``--recipe gluoncv`` (gluoncv's CIFAR-10 ResNet v2 training: :mod:`gluon_resnetv2.train.modern`);
- ``smooth-warmup``: the paper's recipe + ``--label-smoothing 0.1 --warmup-epochs W``.

Each run is an ordinary ``gluon-resnetv2 train`` run in ``OUT/NAME`` (``OUT/NAME.log``): started, or
continued with ``--resume`` if it stopped, or skipped when finished, so the command can be run again after
an interruption.  ``--report`` writes ``docs/results/recipes.json`` (date, machine, commands, final
errors, curves), the fragment ``docs/results/recipes.md`` that docs/guides/training-options.md includes,
and the curves ``docs/results/recipes.png`` (``gluon-resnetv2 plot``)::

    OMP_NUM_THREADS=1 nohup python scripts/compare_recipes.py --out runs/recipes --parallel 2 > recipes.log &
    OMP_NUM_THREADS=1 nohup python scripts/compare_recipes.py --out runs/recipes --only paper,gluoncv --seeds 3 &
    python scripts/compare_recipes.py --out runs/recipes --report
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

from gluon_resnetv2 import procs
from gluon_resnetv2.bench.machine import conditions
from gluon_resnetv2.fileio import atomic_write_text
from gluon_resnetv2.train.runlog import read_log, read_status

ITERATIONS = 2000
WARMUP_EPOCHS = 0.25  # ~117 of 2000 iterations: a short linear warm-up, ~6 % of the run
COMMON = [
    "--model",
    "cifar_resnet20_v2",
    "--dataset",
    "fashion-mnist",
    "--iterations",
    str(ITERATIONS),
    "--eval-interval",
    "250",
    "--eval-subset",
    "2000",
    "--num-workers",
    "1",
]
RUNS = {
    "paper": ("paper recipe", []),
    "gluoncv": ("--recipe gluoncv", ["--recipe", "gluoncv"]),
    "smooth-warmup": (
        f"paper + label smoothing 0.1, warm-up {WARMUP_EPOCHS:g} epochs",
        ["--label-smoothing", "0.1", "--warmup-epochs", str(WARMUP_EPOCHS)],
    ),
}
RESULTS = "docs/results"


def run_name(name, seed):
    """The run directory's name: ``NAME`` for seed 0, ``NAME-seedS`` for another seed."""
    return name if seed == 0 else f"{name}-seed{seed}"


def train_command(out, name, seed=0):
    label, extra = RUNS[name]
    label = label if seed == 0 else f"{name} seed {seed}"
    run_dir = os.path.join(out, run_name(name, seed))
    return ["gluon-resnetv2", "train", *COMMON, "--seed", str(seed), *extra, "--label", label, "--out", run_dir]


def _argv(out, name, seed):
    """The command that starts, resumes or (None) skips the run ``name`` with ``seed``."""
    run_dir = os.path.join(out, run_name(name, seed))
    cli = [sys.executable, "-m", "gluon_resnetv2.cli"]
    status = read_status(run_dir) if os.path.isfile(os.path.join(run_dir, "status.json")) else {}
    if status.get("status") == "finished":
        return None
    if os.path.isfile(os.path.join(run_dir, "config.json")):
        return cli + ["train", "--resume", run_dir]
    return cli + train_command(out, name, seed)[1:]


def run_all(out, names, parallel, seeds=(0,)):
    """Start (or resume) the runs, ``parallel`` at a time (the package's subprocess pool, :mod:`gluon_resnetv2.procs`:
    the runs still going are stopped if this is interrupted), each logging to ``OUT/NAME.log``."""
    os.makedirs(out, exist_ok=True)
    jobs = [(n, s) for s in seeds for n in names]

    def start(job, slot):
        name, argv = run_name(*job), _argv(out, *job)
        if argv is None:
            print(f"{name}: finished already", flush=True)
            return None
        print(f"{name}: {shlex.join(argv)}", flush=True)
        with open(os.path.join(out, f"{name}.log"), "a", encoding="utf-8") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def ended(job, code):
        print(f"{run_name(*job)}: exit {code}", flush=True)

    codes = procs.run(jobs, start, parallel, on_exit=ended, interval=2)
    return 0 if all(code in (0, None) for code in codes) else 1


def _number(value):
    return None if value != value else float(value)  # NaN (an empty cell) -> None


def seed_errors(out, name, max_seed=10):
    """``[(seed, final test error)]`` of the finished runs of ``name`` (seed 0 and any ``NAME-seedS``)."""
    found = []
    for seed in range(max_seed):
        run_dir = os.path.join(out, run_name(name, seed))
        if os.path.isfile(os.path.join(run_dir, "status.json")) and read_status(run_dir).get("status") == "finished":
            found.append((seed, read_status(run_dir)["test_error"]))
    return found


def run_record(out, name):
    """One run's final numbers, its settings and its test-error / training-loss curves (seed 0), and the
    final test errors of every seed run."""
    run_dir = os.path.join(out, name)
    status = read_status(run_dir)
    if status.get("status") != "finished":
        raise SystemExit(f"{run_dir} has not finished (status {status.get('status')}): run the comparison first")
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    log = read_log(run_dir)
    tested = [i for i, e in enumerate(log["test_error"]) if e == e]
    trained = [i for i, e in enumerate(log["train_loss"]) if e == e]
    return dict(
        name=name,
        label=RUNS[name][0],
        command=shlex.join(train_command("runs/recipes", name)),
        config={k: config.get(k) for k in sorted(config) if k not in ("out", "data_dir", "progress")},
        test_error=status["test_error"],
        seeds=[
            dict(seed=seed, test_error=error, command=shlex.join(train_command("runs/recipes", name, seed)))
            for seed, error in seed_errors(out, name)
        ],
        test_loss=status["test_loss"],
        train_loss=status.get("train_loss"),
        train_error=status.get("train_error"),
        iterations=status["iteration"],
        seconds=status.get("elapsed"),
        images_per_second=status.get("images_per_second"),
        curves=dict(
            test_iteration=[int(log["iteration"][i]) for i in tested],
            test_error=[_number(log["test_error"][i]) for i in tested],
            train_iteration=[int(log["iteration"][i]) for i in trained],
            train_loss=[_number(log["train_loss"][i]) for i in trained],
        ),
    )


def report(out, names, results=RESULTS):
    records = [run_record(out, name) for name in names]
    os.makedirs(results, exist_ok=True)
    figure = os.path.join(results, "recipes.png")
    subprocess.run(
        [sys.executable, "-m", "gluon_resnetv2.cli", "plot", *(os.path.join(out, n) for n in names), "-o", figure]
        + ["--labels", ",".join(RUNS[n][0].replace(",", " +") for n in names)]  # plot splits labels at commas
        + ["--title", "ResNet-20 v2 on Fashion-MNIST: recipes"],
        check=True,
    )
    data = dict(
        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        machine=conditions(),
        command=f"OMP_NUM_THREADS=1 python scripts/compare_recipes.py --out {out} --parallel 2; "
        f"OMP_NUM_THREADS=1 python scripts/compare_recipes.py --out {out} --only paper,gluoncv --seeds 3; "
        f"OMP_NUM_THREADS=1 python scripts/compare_recipes.py --out {out} --only smooth-warmup --seeds 2; "
        f"python scripts/compare_recipes.py --out {out} --report",
        iterations=ITERATIONS,
        note="test_error: the final evaluation on all 10,000 test images (the curves' points use 2,000)",
        runs=records,
    )
    atomic_write_text(os.path.join(results, "recipes.json"), json.dumps(data, indent=2) + "\n")
    atomic_write_text(os.path.join(results, "recipes.md"), fragment(data))
    return figure


def _mean(values):
    return sum(values) / len(values)


def fragment(data):
    """The Markdown table and verdict of ``recipes.json`` (every number from the file)."""
    runs = data["runs"]
    paper = next(r for r in runs if r["name"] == "paper")
    lines = [
        f"ResNet-20 v2 on Fashion-MNIST, {data['iterations']} iterations of mini-batch 128 each (about "
        f"{data['iterations'] * 128 / 60000:.1f} epochs), one OpenMP thread per run; measured "
        f"{data['date'][:10]} on {data['machine']['cpu']} by `scripts/compare_recipes.py` "
        "(docs/results/recipes.json). Test error: the final evaluation on all 10,000 test images; the losses "
        "and the curves are those of seed 0.",
        "",
        "| run | options | test error % (seed 0) | other seeds | mean | vs paper (points, mean) | test loss "
        "| final train loss |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    paper_mean = _mean([s["test_error"] for s in paper["seeds"]])
    for r in runs:
        extra = " ".join(RUNS[r["name"]][1]) or "(the paper's recipe)"
        others = ", ".join(f"{100 * s['test_error']:.2f} (seed {s['seed']})" for s in r["seeds"] if s["seed"])
        mean = _mean([s["test_error"] for s in r["seeds"]])
        lines.append(
            f"| {r['name']} | `{extra}` | {100 * r['test_error']:.2f} | {others or '-'} | {100 * mean:.2f} | "
            f"{100 * (mean - paper_mean):+.2f} | {r['test_loss']:.4f} | {r['train_loss']:.4f} |"
        )
    return "\n".join(lines + ["", verdict(runs), ""])


def verdict(runs):
    """Plain sentences: each recipe against the paper's on the mean over its seeds, next to the seed-to-seed
    spread (largest minus smallest) of both, and whether the modern options help beyond that spread."""
    errors = {r["name"]: [100 * s["test_error"] for s in r["seeds"]] for r in runs}

    def spread(name):
        return max(errors[name]) - min(errors[name]) if len(errors[name]) > 1 else None

    def seeds_text(name):
        n, d = len(errors[name]), spread(name)
        return f"{n} seed{'s' if n > 1 else ''}" + (f", which differ by {d:.2f} points" if d is not None else "")

    paper = _mean(errors["paper"])
    sentences, helped = [], []
    for name in (r["name"] for r in runs if r["name"] != "paper"):
        gain = paper - _mean(errors[name])
        noise = max(d for d in (spread("paper"), spread(name), 0.0) if d is not None)
        clear = gain > noise and len(errors[name]) > 1 and len(errors["paper"]) > 1
        if clear:
            helped.append(name)
        sentences.append(
            f"`{name}`: {abs(gain):.2f} points {'below' if gain > 0 else 'above'} the paper's recipe on the mean "
            f"({seeds_text(name)}; the paper's recipe {seeds_text('paper')})"
            + ("" if clear else ", not more than the seed-to-seed spread or measured with one seed only")
            + "."
        )
    if helped:
        sentences.append(
            f"Beyond the seed-to-seed spread here: {', '.join(f'`{n}`' for n in helped)} (few seeds: a hint, "
            "not a proof); the other modern options do not measurably help at this size and budget."
        )
    else:
        sentences.append("At this size and budget the modern options do not measurably help.")
    return " ".join(sentences)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/recipes", help="directory of the runs (default runs/recipes)")
    parser.add_argument("--only", default=",".join(RUNS), help=f"comma-separated runs (default {','.join(RUNS)})")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 of each run (default 1)")
    parser.add_argument("--report", action="store_true", help="write docs/results/recipes.{json,md,png} instead")
    parser.add_argument("--results", default=RESULTS, help=f"directory of the result files (default {RESULTS})")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in RUNS]
    if unknown:
        parser.error(f"--only: unknown run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    if args.report:
        print(report(args.out, names, args.results))
        return 0
    return run_all(args.out, names, args.parallel, range(args.seeds))


if __name__ == "__main__":
    sys.exit(main())
