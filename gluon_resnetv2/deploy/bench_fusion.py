"""Fused against plain inference (``scripts/bench_fusion.py``): :func:`~.fast.fuse` with and without the
BN-ReLU fusion, and the share of each operator in the time (MXNet profiler).

Timing: random-weight networks, 1x28x28 input; plain = ``hybridize(static_alloc=True, static_shape=True)``;
``rounds`` interleaved rounds (each runs every variant), median per batch of wall-clock and process CPU
time.  The profile is of batch 64 (set ``MXNET_EXEC_BULK_EXEC_INFERENCE=0`` so that operators are timed one
by one rather than in bulk segments).  Figures: docs/guides/deployment.md.
"""

import json
import os
import statistics
import tempfile
import time

import mxnet as mx

from ..cpu import in_use
from ..nets.zoo import get_model
from .fast import fuse


def variants(name, shape):
    """The three networks compared, on random weights: plain (hybridized), fused partition, fused + BN-ReLU."""
    net = get_model(name, classes=10)
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    return {"plain": net, "fused (partition)": fuse(net, shape, bn_relu=False), "fused + BN-ReLU": fuse(net, shape)}


def profile(blocks, x, steps=20):
    """``{variant: {operator: ms per batch}}`` from the profiler's aggregate statistics."""
    out = {}
    for label, block in blocks.items():
        for _ in range(3):
            block(x).wait_to_read()
        # the trace file MXNet writes at exit goes to the temp directory, not the working tree
        mx.profiler.set_config(
            profile_imperative=True,
            profile_symbolic=True,
            aggregate_stats=True,
            filename=os.path.join(tempfile.gettempdir(), "gluon_resnetv2_profile.json"),
        )
        mx.profiler.set_state("run")
        for _ in range(steps):
            block(x).wait_to_read()
        mx.nd.waitall()
        mx.profiler.set_state("stop")
        stats = json.loads(mx.profiler.dumps(reset=True, format="json"))
        ops = {}
        for domain, entries in stats.get("Time", {}).items():
            if "operator" in domain.lower():
                for op, entry in entries.items():
                    ops[op] = ops.get(op, 0.0) + entry["Total"] / steps
        out[label] = ops
    return out


def run_fusion_bench(models="cifar_resnet20_v2,cifar_resnet110_v2", rounds=9, with_profile=False):
    """Time every variant of each of the comma-separated ``models`` at batch 64 and 1 and print the medians
    (and, ``with_profile``, the operator shares at batch 64); returns 0."""
    print(f"threads: {in_use()}")
    for name in [m for m in models.split(",") if m]:
        for batch in (64, 1):
            shape = (batch, 1, 28, 28)
            blocks = variants(name, shape)
            x = mx.nd.random.normal(shape=shape)
            reps = 3 if batch > 1 else 20
            wall, cpu = {k: [] for k in blocks}, {k: [] for k in blocks}
            with mx.autograd.predict_mode():
                for block in blocks.values():
                    for _ in range(3):
                        block(x).wait_to_read()
                for _ in range(rounds):
                    for label, block in blocks.items():
                        w, c = time.perf_counter(), time.process_time()
                        for _ in range(reps):
                            block(x).wait_to_read()
                        wall[label].append((time.perf_counter() - w) / reps * 1e3)
                        cpu[label].append((time.process_time() - c) / reps * 1e3)
                if with_profile and batch > 1:
                    for label, ops in profile(blocks, x).items():
                        total = sum(v for k, v in ops.items() if k != "DeleteVariable")
                        print(
                            f"{name} batch {batch} {label}: "
                            + ", ".join(
                                f"{op} {100 * t / total:.1f} %"
                                for op, t in sorted(ops.items(), key=lambda kv: -kv[1])
                                if op != "DeleteVariable"
                            )
                        )
            for what, times in (("wall", wall), ("cpu", cpu)):
                med = {k: statistics.median(v) for k, v in times.items()}
                print(
                    f"{name} batch {batch} {what}: "
                    + ", ".join(f"{k} {m:.2f} ms ({med['plain'] / m:.2f}x)" for k, m in med.items()),
                    flush=True,
                )
    return 0
