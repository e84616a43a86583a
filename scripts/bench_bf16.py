#!/usr/bin/env python
"""Training speed of ``--dtype bfloat16`` against float32 on the demo's recipe, measured back to back.

For each network both precisions are built as real training runs (:class:`gluon_resnetv2.train.loop.Run`
of :func:`gluon_resnetv2.demo.demo_config` with ``dtype`` set: the Fashion-MNIST loader, forward, backward,
SGD step); then ``--rounds`` rounds run ``--iterations`` steps of each, interleaved, after 5 warm-up
steps, and the best round counts (images/s and images per process CPU-second)::

    python scripts/bench_bf16.py --models cifar_resnet20_v1,cifar_resnet20_v2 --iterations 30 --rounds 2
    OMP_NUM_THREADS=1 python scripts/bench_bf16.py --iterations 20

Figures: README (Training) and docs/bench.md.
"""
import argparse
import dataclasses
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gluon_resnetv2._compat import import_mxnet  # noqa: E402  (thread count before mxnet loads)
from gluon_resnetv2.cpu import in_use  # noqa: E402

WARMUP = 5


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="cifar_resnet20_v1,cifar_resnet20_v2")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    mx = import_mxnet()
    from gluon_resnetv2.demo import demo_config
    from gluon_resnetv2.train.loop import Run, forward_backward

    models = [m for m in args.models.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {(m, d): Run(dataclasses.replace(demo_config(m, m, os.path.join(tmp, d), data_dir=args.data_dir,
                                                            progress=False), dtype=d))
                for m in models for d in ("float32", "bfloat16")}
        best = {}
        for r in range(args.rounds):
            for key, run in runs.items():
                batches = run.train_loader.iterate(epoch=r)
                for step in range(WARMUP + args.iterations):
                    if step == WARMUP:
                        mx.nd.waitall()
                        wall, cpu = time.perf_counter(), time.process_time()
                    data, label = next(batches)
                    forward_backward(run.train_forward, run.loss_fn, data, label, run.contexts, run.input_dtype)
                    run.trainer.step(run.config.batch_size)
                mx.nd.waitall()
                images = args.iterations * run.config.batch_size
                rates = (images / (time.perf_counter() - wall), images / (time.process_time() - cpu))
                print(f"round {r + 1} {key[0]} {key[1]}: {rates[0]:.1f} images/s, {rates[1]:.1f} per CPU-second",
                      flush=True)
                best[key] = tuple(max(a, b) for a, b in zip(best.get(key, (0, 0)), rates))
    print(f"threads: {in_use()}")
    for m in models:
        fp32, bf16 = best[m, "float32"], best[m, "bfloat16"]
        print(f"{m}: float32 {fp32[0]:.1f}, bfloat16 {bf16[0]:.1f} images/s: {bf16[0] / fp32[0]:.2f}x "
              f"({bf16[1] / fp32[1]:.2f}x per CPU-second)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
