"""Training speed of ``dtype='bfloat16'`` against float32 on the demo's recipe, measured back to back
(``scripts/bench_bf16.py``).

For each network both precisions are built as real training runs (:class:`~.train.loop.Run` of
:func:`gluon_resnetv2.demo.demo_config` with ``dtype`` set: the Fashion-MNIST loader, forward, backward, SGD
step); then ``rounds`` rounds run ``iterations`` steps of each, interleaved, after :data:`WARMUP` warm-up
steps, and the best round counts (images/s and images per process CPU-second).  Figures:
docs/results/bench-bf16.json, shown in docs/guides/benchmark.md.
"""

import dataclasses
import os
import tempfile
import time

import mxnet as mx

from ..cpu import in_use
from ..demo import demo_config
from ..train.loop import Run, forward_backward

#: Steps of each run before the timed ones (graph building, first allocations).
WARMUP = 5


def run_bf16_bench(models="cifar_resnet20_v1,cifar_resnet20_v2", iterations=30, rounds=2, data_dir=None):
    """Time both precisions of each of the comma-separated ``models`` and print every round and the best
    ratios; returns 0."""
    models = [m for m in models.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            (m, d): Run(
                dataclasses.replace(demo_config(m, m, os.path.join(tmp, d), data_dir=data_dir, progress=False), dtype=d)
            )
            for m in models
            for d in ("float32", "bfloat16")
        }
        best = {}
        for r in range(rounds):
            for key, run in runs.items():
                batches = run.train_loader.iterate(epoch=r)
                for step in range(WARMUP + iterations):
                    if step == WARMUP:
                        mx.nd.waitall()
                        wall, cpu = time.perf_counter(), time.process_time()
                    data, label = next(batches)
                    forward_backward(run.train_forward, run.loss_fn, data, label, run.contexts, run.input_dtype)
                    run.trainer.step(run.config.batch_size)
                mx.nd.waitall()
                images = iterations * run.config.batch_size
                rates = (images / (time.perf_counter() - wall), images / (time.process_time() - cpu))
                print(
                    f"round {r + 1} {key[0]} {key[1]}: {rates[0]:.1f} images/s, {rates[1]:.1f} per CPU-second",
                    flush=True,
                )
                best[key] = tuple(max(a, b) for a, b in zip(best.get(key, (0, 0)), rates))
    print(f"threads: {in_use()}")
    for m in models:
        fp32, bf16 = best[m, "float32"], best[m, "bfloat16"]
        print(
            f"{m}: float32 {fp32[0]:.1f}, bfloat16 {bf16[0]:.1f} images/s: {bf16[0] / fp32[0]:.2f}x "
            f"({bf16[1] / fp32[1]:.2f}x per CPU-second)"
        )
    return 0
