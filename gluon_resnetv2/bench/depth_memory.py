"""Peak memory and step time of training deep ResNets with and without recomputation or backward mirroring.

Every configuration runs in a fresh subprocess (mirroring is read when the graph is bound, and peak RSS is
a per-process high-water mark); the parent reads the child's peak resident set size from ``os.wait4``
(:func:`gluon_resnetv2.bench.peak_memory.run_child`) and the step times the child prints.  One
configuration =

* engine ``gluon``: hybridized HybridBlock (static_alloc), ``autograd.record()`` / ``backward()`` /
  ``gluon.Trainer.step`` -- the package's ordinary training path -- with ``MXNET_BACKWARD_DO_MIRROR``
  0 and 1;
* engine ``recompute``: the same step through :func:`gluon_resnetv2.memory.recompute` (segments of
  ``segment`` units, default sqrt(units));
* engine ``symbolic``: :class:`gluon_resnetv2.memory.SymbolicTrainer` (MXNet's graph executor) with
  ``MXNET_BACKWARD_DO_MIRROR`` 0 and 1.  Warm-up steps (graph building, MKLDNN primitive creation) are
  excluded from the timings, not from the peak memory.

:func:`run_depth_memory` runs the configurations (``gluon-resnetv2 bench-memory``,
``scripts/bench_memory.py``); the child is this module run as ``python -m``.
"""

import argparse
import json
import os
import sys
import time

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..memory import MIRROR_ENV, SymbolicTrainer, mirroring_enabled, recompute
from ..nets.zoo import get_model
from .peak_memory import run_child
from .workload import SGD

ENGINES = ("gluon", "recompute", "symbolic")
#: The directory holding the package: the child runs there, so that it imports this very package.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def train_steps(model, engine, batch, iters, warmup, segment=None):
    """In the child: build ``model``, run ``warmup`` then ``iters`` timed training steps with ``engine``;
    returns the JSON-able result (step times, warm-up time, last loss)."""
    mx.random.seed(0)
    shape = (batch, 3, 32, 32)
    net = get_model(model, classes=10)
    net.initialize(mx.init.Xavier(magnitude=2), ctx=mx.cpu())
    net(mx.nd.zeros((1, 3, 32, 32)))  # settle deferred shapes before any graph is bound
    rng = np.random.default_rng(0)
    data = mx.nd.array(rng.standard_normal(shape, dtype=np.float32))
    label = mx.nd.array(rng.integers(0, 10, batch), dtype="float32")
    opt = dict(SGD)
    if engine in ("gluon", "recompute"):
        if engine == "gluon":
            net.hybridize(static_alloc=True, static_shape=True)
            trained = net
        else:
            trained = recompute(net, segment_size=segment)
        trainer = gluon.Trainer(net.collect_params(), "sgd", opt)
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

        def step():
            with autograd.record():
                loss = loss_fn(trained(data), label)
            if engine == "recompute":
                trained.backward(loss)  # waits for the segments' backward (custom-function thread)
            else:
                loss.backward()
            trainer.step(batch)
            return float(loss.mean().asscalar())
    else:
        step = SymbolicTrainer(net, shape, "sgd", opt)
        step_fn = step

        def step():  # same interface as the gluon branch
            return step_fn(data, label)

    t0 = time.perf_counter()
    for _ in range(warmup):
        loss = step()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        loss = step()
        mx.nd.waitall()
        times.append(time.perf_counter() - t0)
    return {
        "model": model,
        "engine": engine,
        "mirror": mirroring_enabled(),
        "segment": segment if engine == "recompute" else None,
        "batch": batch,
        "warmup_s": warm,
        "step_s": times,
        "loss": loss,
    }


def measure_in_child(model, engine, mirror, batch=64, iters=2, warmup=1, segment=None, threads=None, mem_limit_gb=None):
    """One configuration in a subprocess; returns a result dict with the child's own peak RSS (MiB), or
    ``error``: the last line the child wrote to stderr.  ``threads``: the child's ``OMP_NUM_THREADS``
    (default inherited); ``mem_limit_gb``: its address-space cap."""
    env = dict(os.environ)
    env[MIRROR_ENV] = "1" if mirror else "0"
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [
        sys.executable,
        "-m",
        __name__,
        "--model",
        model,
        "--engine",
        engine,
        "--batch",
        str(batch),
        "--iters",
        str(iters),
        "--warmup",
        str(warmup),
    ]
    if segment:
        cmd += ["--segment", str(segment)]
    returncode, stdout, stderr, peak_kib, wall = run_child(cmd, env, mem_limit_gb, cwd=_PACKAGE_PARENT)
    result = {
        "model": model,
        "engine": engine,
        "mirror": mirror,
        "batch": batch,
        "wall_s": round(wall, 1),
        "returncode": returncode,
        "peak_rss_mib": round(peak_kib / 1024),
    }
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if returncode == 0 and lines:
        result.update(json.loads(lines[-1]))
    else:
        result["error"] = (stderr.strip().splitlines() or ["(no output)"])[-1][:300]
    return result


def run_depth_memory(
    models,
    engines=ENGINES,
    mirror=(0, 1),
    batch=64,
    iters=2,
    warmup=1,
    segment=None,
    threads=None,
    mem_limit_gb=None,
    log=print,
):
    """Every ``(model, engine, mirror)`` (mirror 0 only for ``recompute``), each in its own child; returns
    the result dicts of :func:`measure_in_child`.  ``log(str)`` gets the load average before and after
    and one line per configuration."""
    log(f"# load: {os.getloadavg()}")
    results = []
    for model in models:
        for engine in engines:
            for mirrored in mirror if engine != "recompute" else [0]:
                res = measure_in_child(
                    model, engine, bool(mirrored), batch, iters, warmup, segment, threads, mem_limit_gb
                )
                results.append(res)
                steps = res.get("step_s")
                timing = f"{min(steps):.2f} s/step (of {len(steps)})" if steps else f"FAILED: {res.get('error')}"
                log(
                    f"{model:22s} {engine:9s} mirror={int(mirrored)} batch={batch}: "
                    f"peak RSS {res['peak_rss_mib']} MiB, {timing}"
                )
    log(f"# load: {os.getloadavg()}")
    return results


def _child_main(argv=None):
    """The child's entry point: one configuration, its result as one JSON line on stdout."""
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("--model", required=True)
    parser.add_argument("--engine", default="gluon", choices=ENGINES)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--segment", type=int, default=None)
    args = parser.parse_args(argv)
    print(
        json.dumps(train_steps(args.model, args.engine, args.batch, args.iters, args.warmup, args.segment)), flush=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
