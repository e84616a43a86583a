"""``python -m gluon_resnetv2.demo --out demo`` (``make demo``): the paper's Figure 1, at 1001 layers, on a laptop.

By default (:data:`DEFAULT_PAIR`) trains the original ResNet-1001 (``cifar_resnet1001_v1``, Fig. 4(a) units)
and the pre-activation ResNet-1001 (``cifar_resnet1001_v2``, Fig. 4(e)) on Fashion-MNIST averaged down to
8x8, with the paper's recipe shape as at ``reproduce --scale depth`` (SGD 0.9, wd 1e-4, warm-up at lr 0.01,
then 0.1 divided by 10 at 1/2 and 3/4 of the run) for the pair's fixed number of iterations, the two
networks side by side in two processes; then draws their curves the way Figure 1 does (dashed: training
loss, solid: test error) in ``<out>/figure1.png`` and prints both final test errors and mean training losses.

``--pair`` trains another pair (:data:`PAIRS`): ``resnet20`` is the earlier default (ResNet-20, cosine lr
from 0.1, no warm-up or augmentation, as many epochs (0.5 to 2) as fit in ``--budget`` seconds).
docs/guides/training.md, "Figure 1 and make demo", gives the measurements behind the default.  Runs go to
``<out>/runs/<model>``; an earlier demo's runs there are replaced.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from . import cpu, procs
from .agreement import loss_figures
from .demo_plan import (  # noqa: F401  (importable from here)
    DEFAULT_PAIR,
    MAX_EPOCHS,
    MIN_EPOCHS,
    PAIRS,
    TRAIN_IMAGES,
    DemoPair,
    demo_config,
    epochs_for_budget,
    get_pair,
    measure_throughput,
)
from .train import train
from .train.recipe import SEED
from .train.runlog import read_log
from .validate import positive_float, positive_int


def _threads(parallel):
    # Physical cores, as everywhere in the package (gluon_resnetv2.cpu): hyper-threads add no vector units.
    cores = cpu.physical_cores()
    return max(1, cores // 2) if parallel else cores


def _ensure_threads():
    """OpenMP reads OMP_NUM_THREADS when MXNet loads, i.e. before this module runs: re-execute with it set."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    os.environ["OMP_NUM_THREADS"] = str(_threads(parallel=False))
    os.execv(sys.executable, [sys.executable, "-m", "gluon_resnetv2.demo"] + sys.argv[1:])


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m gluon_resnetv2.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="demo", help="output directory (default: demo)")
    parser.add_argument(
        "--pair",
        default=DEFAULT_PAIR,
        choices=sorted(PAIRS),
        help=f"which original/pre-activation pair to train (default {DEFAULT_PAIR})",
    )
    parser.add_argument(
        "--iterations",
        type=positive_int,
        default=None,
        help="training length per network for the pairs of fixed length (default: the pair's)",
    )
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST directory (default: its usual place)")
    parser.add_argument(
        "--epochs",
        type=positive_float,
        default=None,
        help="training length per network (default: what fits in --budget, 0.5 to 2 epochs)",
    )
    parser.add_argument(
        "--budget",
        type=positive_float,
        default=630.0,
        help="seconds of training for the demo when --epochs is not given (default 630)",
    )
    parser.add_argument("--sequential", action="store_true", help="train the networks one after the other")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--lr", type=positive_float, default=0.1)
    parser.add_argument("--log-interval", type=positive_int, default=20)
    parser.add_argument("--eval-interval", type=positive_int, default=100)
    parser.add_argument("--eval-subset", type=positive_int, default=2000)
    parser.add_argument(
        "--train-subset", type=positive_int, default=None, help="use the first N training images (quick check)"
    )
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=True)
    # internal: the work of one child process
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)
    return parser


def run_demo(
    out="demo",
    data_dir=None,
    epochs=1.0,
    batch_size=128,
    lr=0.1,
    log_interval=20,
    eval_interval=100,
    eval_subset=2000,
    train_subset=None,
    seed=0,
    progress=True,
    pair=DEFAULT_PAIR,
    iterations=None,
):
    """Train both networks here, one after the other, draw ``<out>/figure1.png``; ``({model: status}, figure)``."""

    pair = get_pair(pair) if isinstance(pair, str) else pair
    results = {}
    for model, label in pair.models:
        _clear(out, model)
        config = demo_config(
            model,
            label,
            out,
            data_dir,
            epochs,
            batch_size,
            lr,
            log_interval,
            eval_interval,
            eval_subset,
            train_subset,
            seed,
            progress,
            pair,
            iterations,
        )
        start = time.time()
        _say(f"training {label} ({model}) on Fashion-MNIST for {_length(pair, epochs, iterations)}")
        status = train(config)
        status["wall_seconds"] = time.time() - start
        results[model] = status
    return results, _figure(out, pair)


def _length(pair, epochs, iterations):
    if pair.recipe == "demo":
        return f"{epochs:g} epochs"
    size = pair.image_size
    return f"{iterations or pair.iterations} iterations of mini-batch {pair.batch_size} at {size}x{size}"


def _clear(out, model):
    run_dir = os.path.join(out, "runs", model)
    if os.path.isdir(run_dir):
        shutil.rmtree(run_dir)


def _figure(out, pair):
    from .plot import plot_runs  # matplotlib: only plotting pays its start-up (~0.3 s)

    figure = os.path.join(out, "figure1.png")
    plot_runs(
        [os.path.join(out, "runs", model) for model, _ in pair.models],
        figure,
        labels=[label for _, label in pair.models],
        title=pair.title,
    )
    return figure


def _say(text):
    print(f"demo: {text}", file=sys.stderr, flush=True)


def _child(args, *extra):
    env = dict(os.environ, OMP_NUM_THREADS=str(_threads(parallel=True)))
    argv = [
        sys.executable,
        "-m",
        "gluon_resnetv2.demo",
        "--out",
        args.out,
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
        "--pair",
        args.pair,
    ]
    argv += (["--data-dir", args.data_dir] if args.data_dir else []) + list(extra)
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)


def _last_row(run_dir):
    try:
        with open(os.path.join(run_dir, "log.csv"), encoding="utf-8") as handle:
            lines = [line for line in handle.read().splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1].split(",") if len(lines) > 1 else None


def run_parallel(args):
    """Measure, then train both networks at the same time in two processes; ``({model: status}, figure)``."""
    pair = get_pair(args.pair)
    children = []
    try:
        if args.epochs is None and pair.iterations is None:
            children = [_child(args, "--measure") for _ in pair.models]
            speeds = []
            for proc in children:
                out, _ = proc.communicate(timeout=600)
                if proc.returncode != 0:
                    raise RuntimeError("demo: measuring the throughput failed (see above)")
                speeds.append(float(out.strip().splitlines()[-1]))
            speed = min(speeds)
            args.epochs = epochs_for_budget(args.budget, speed, args.batch_size, args.eval_interval, args.eval_subset)
            _say(
                f"{speed:.0f} training images/s per process ({len(pair.models)} processes, {_threads(True)} thread(s) "
                f"each): {args.epochs:g} epochs fit the {args.budget:g} s budget"
            )
        for model, _ in pair.models:
            _clear(args.out, model)
        length = (
            ["--epochs", str(args.epochs)]
            if pair.iterations is None
            else ["--iterations", str(args.iterations or pair.iterations)]
        )
        options = length + [
            "--lr",
            str(args.lr),
            "--log-interval",
            str(args.log_interval),
            "--eval-interval",
            str(args.eval_interval),
            "--eval-subset",
            str(args.eval_subset),
            "--no-progress",
        ]
        if args.train_subset:
            options += ["--train-subset", str(args.train_subset)]
        start = time.time()
        _say(
            f"training {' and '.join(label for _, label in pair.models)} on Fashion-MNIST for "
            f"{_length(pair, args.epochs, args.iterations)}, in parallel"
        )
        children = []
        last_report = [time.time()]

        def start_one(model, slot):
            children.append(_child(args, "--only", model, *options))
            return children[-1]

        def report_progress():
            if args.progress and time.time() - last_report[0] >= 30:
                last_report[0] = time.time()
                parts = []
                for model, _ in pair.models:
                    row = _last_row(os.path.join(args.out, "runs", model))
                    parts.append(
                        f"{model} iteration {row[0]} (epoch {float(row[1]):.2f}, loss {row[3] or '-'})"
                        if row
                        else f"{model} starting"
                    )
                _say(f"{time.time() - start:.0f} s: " + "; ".join(parts))

        procs.run(
            [model for model, _ in pair.models],
            start_one,
            len(pair.models),
            on_poll=report_progress,
            interval=1,
            grace=10,
        )
        results = {}
        for (model, _), proc in zip(pair.models, children):
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"demo: training {model} failed (exit status {proc.returncode})")
            results[model] = dict(json.loads(out.strip().splitlines()[-1]), wall_seconds=time.time() - start)
        return results, _figure(args.out, pair)
    finally:
        procs.stop(children, grace=10)


def _report(results, figure, pair=None):
    pair = get_pair(DEFAULT_PAIR) if pair is None else pair
    print(f"\nFigure 1 (training loss dashed, test error solid): {figure}")
    print(f"{'network':<34} {'test error':>10} {'wall time':>10} {'images/s':>9}")
    worst = 0.0
    for model, label in pair.models:
        status = results[model]
        if status.get("status") != "finished":
            print(f"{label:<34} {'failed':>10}  {status.get('reason')}")
            worst = 1.0
            continue
        error = status["test_error"]
        worst = max(worst, error)
        speed = status.get("images_per_second") or 0
        print(f"{label:<34} {100 * error:>9.2f}% {status['wall_seconds']:>9.0f}s {speed:>9.0f}")
    if pair.target_error is not None and worst > pair.target_error:
        print(f"note: a test error is above the demo's {100 * pair.target_error:.0f}% target", file=sys.stderr)
    gap = loss_gap(figure and os.path.dirname(figure), pair)
    if gap is not None:
        print(
            f"mean training loss over the run: original {gap[0]:.3f}, pre-activation {gap[1]:.3f} "
            f"(difference {gap[0] - gap[1]:+.3f})"
        )


def loss_gap(out, pair):
    """``(original, pre-activation)`` mean training loss over the whole run of the pair's two runs in
    ``<out>/runs`` (:func:`gluon_resnetv2.agreement.loss_figures`), or None when a log is missing."""
    means = []
    for model, _ in pair.models:
        try:
            log = read_log(os.path.join(out, "runs", model))
        except (OSError, ValueError):
            return None
        means.append(loss_figures(log, int(log["iteration"][-1]) if len(log["iteration"]) else 1)[1])
    return None if None in means else tuple(means)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.measure:  # child: print the throughput
        print(measure_throughput(args.data_dir, args.batch_size))
        return 0
    if args.only:  # child: train one network, print its status as JSON
        label = dict(get_pair(args.pair).models)[args.only]
        config = demo_config(
            args.only,
            label,
            args.out,
            args.data_dir,
            args.epochs,
            args.batch_size,
            args.lr,
            args.log_interval,
            args.eval_interval,
            args.eval_subset,
            args.train_subset,
            args.seed,
            progress=False,
            pair=args.pair,
            iterations=args.iterations,
        )

        print(json.dumps(train(config)))
        return 0
    pair = get_pair(args.pair)
    if args.sequential or _threads(parallel=True) * len(pair.models) > cpu.physical_cores():
        _ensure_threads()
        if args.epochs is None and pair.iterations is None:
            speed = measure_throughput(args.data_dir, args.batch_size)
            args.epochs = epochs_for_budget(
                args.budget / len(pair.models), speed, args.batch_size, args.eval_interval, args.eval_subset
            )
            _say(
                f"{speed:.0f} training images/s ({os.environ.get('OMP_NUM_THREADS')} threads): {args.epochs:g} "
                f"epochs per network fit the {args.budget:g} s budget"
            )
        results, figure = run_demo(
            args.out,
            args.data_dir,
            args.epochs,
            args.batch_size,
            args.lr,
            args.log_interval,
            args.eval_interval,
            args.eval_subset,
            args.train_subset,
            args.seed,
            args.progress,
            pair,
            args.iterations,
        )
    else:
        results, figure = run_parallel(args)
    _report(results, figure, pair)
    return 0


if __name__ == "__main__":
    sys.exit(main())
