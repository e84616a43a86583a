#!/usr/bin/env python
"""What ``train --tensorboard`` (the default) costs: the writer's start-up and the time of one log row with
and without the event files, against the time of one training iteration of ResNet-20 v2 at batch 128 on
28x28 images (the Fashion-MNIST setting).  Writes ``docs/results/tensorboard_cost.json`` (date, machine,
command) and the fragment ``docs/results/tensorboard_cost.md`` that docs/guides/training-options.md includes::

    OMP_NUM_THREADS=1 python scripts/measure_tensorboard_cost.py [--rows 2000] [--steps 20]
"""

import argparse
import json
import os
import shlex
import sys
import tempfile
import time

import mxnet as mx
from mxnet import gluon

from gluon_resnetv2 import get_model
from gluon_resnetv2.bench.machine import conditions
from gluon_resnetv2.fileio import atomic_write_text
from gluon_resnetv2.train.runlog import RunLog
from gluon_resnetv2.train.steps import forward_backward

ROW = dict(
    epoch=1.5,
    lr=0.1,
    train_loss=0.5,
    train_error=0.2,
    test_loss=0.4,
    test_error=0.15,
    time=12.5,
    images_per_second=250.0,
)
LOG_INTERVAL = 50  # train's default --log-interval: one row per 50 iterations


def row_seconds(rows, tensorboard):
    """``(start-up s, s per row)`` of ``rows`` full log rows written to a fresh run directory."""
    from gluon_resnetv2.train.tensorboard_log import BoardLog

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        log = RunLog(out)
        if tensorboard:
            log = BoardLog(log, out)
        opened = time.perf_counter()
        for iteration in range(1, rows + 1):
            log.write(iteration=iteration, **ROW)
        log.close()  # the events are on disk: the writer thread's work is counted
        return opened - start, (time.perf_counter() - opened) / rows


def iteration_seconds(steps):
    """Median seconds of one SGD step of cifar_resnet20_v2 on a 128 x 1 x 28 x 28 batch."""
    net = get_model("cifar_resnet20_v2", classes=10)
    net.initialize(mx.init.MSRAPrelu())
    net.hybridize(static_alloc=True)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    data, label = mx.nd.random.uniform(shape=(128, 1, 28, 28)), mx.nd.array([i % 10 for i in range(128)])
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        forward_backward(net, loss, data, label, [mx.cpu()])
        trainer.step(128)
        mx.nd.waitall()
        times.append(time.perf_counter() - start)
    times = sorted(times[2:])
    return times[len(times) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="log rows to write (default 2000)")
    parser.add_argument("--steps", type=int, default=20, help="training steps to time (default 20)")
    parser.add_argument("--out", default="docs/results", help="directory of the result files")
    args = parser.parse_args(argv)
    csv_open, csv_row = row_seconds(args.rows, tensorboard=False)
    board_open, board_row = row_seconds(args.rows, tensorboard=True)
    step = iteration_seconds(args.steps)
    extra_row = board_row - csv_row
    result = dict(
        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        machine=conditions(),
        command=shlex.join(
            ["OMP_NUM_THREADS=1", "python", "scripts/measure_tensorboard_cost.py"] + list(argv or sys.argv[1:])
        ),
        rows=args.rows,
        csv_row_ms=1e3 * csv_row,
        tensorboard_row_ms=1e3 * board_row,
        extra_row_ms=1e3 * extra_row,
        csv_open_ms=1e3 * csv_open,
        tensorboard_open_ms=1e3 * board_open,
        iteration_ms=1e3 * step,
        log_interval=LOG_INTERVAL,
        overhead_percent=100 * extra_row / (LOG_INTERVAL * step),
    )
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "tensorboard_cost.json"), json.dumps(result, indent=2) + "\n")
    fragment = (
        f"Measured {result['date'][:10]} on {result['machine']['cpu']} ({result['machine']['cpus']} cores, one "
        f"OpenMP thread, load average {result['machine']['loadavg'][0]:.1f}) by "
        "`scripts/measure_tensorboard_cost.py`:\n\n"
        "| | log.csv only | log.csv + TensorBoard |\n| --- | ---: | ---: |\n"
        f"| opening the logs (once per session) | {result['csv_open_ms']:.2f} ms | "
        f"{result['tensorboard_open_ms']:.1f} ms |\n"
        f"| one log row ({args.rows} rows, flushed) | {result['csv_row_ms']:.3f} ms | "
        f"{result['tensorboard_row_ms']:.3f} ms |\n\n"
        f"One training iteration of ResNet-20 v2 at batch 128 on 28x28 images took {result['iteration_ms']:.0f} ms "
        f"here; with a row every {LOG_INTERVAL} iterations (the default `--log-interval`), the event files add "
        f"{result['overhead_percent']:.4f} % to the training time.\n"
    )
    atomic_write_text(os.path.join(args.out, "tensorboard_cost.md"), fragment)
    print(fragment)
    return 0


if __name__ == "__main__":
    sys.exit(main())
