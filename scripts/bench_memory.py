#!/usr/bin/env python
"""Peak memory and step time of training deep ResNets with and without backward mirroring.

Every configuration runs in a fresh subprocess (mirroring is read when the graph is bound, and peak RSS is
a per-process high-water mark); the parent reads the child's peak resident set size from ``os.wait4``
(``ru_maxrss``, the child alone) and the step times the child prints.  One configuration =

* ``--engine gluon``: hybridized HybridBlock (static_alloc), ``autograd.record()`` / ``backward()`` /
  ``gluon.Trainer.step`` -- the package's ordinary training path -- with ``MXNET_BACKWARD_DO_MIRROR``
  0 and 1;
* ``--engine recompute``: the same step through :func:`gluon_resnetv2.memory.recompute` (segments of
  ``--segment`` units, default sqrt(units));
* ``--engine symbolic``: :class:`gluon_resnetv2.memory.SymbolicTrainer` (MXNet's graph executor) with
  ``MXNET_BACKWARD_DO_MIRROR`` 0 and 1.  Warm-up steps (graph building, MKLDNN primitive
creation) are excluded from the timings, not from the peak memory.

    python scripts/bench_memory.py --models cifar_resnet164_v2 cifar_resnet1001_v2 --batch 64 --iters 2
    python scripts/bench_memory.py --models cifar_resnet164_v2 --engines gluon symbolic --json out.json

``--mem-limit-gb`` caps each child's address space so that a configuration that needs more memory than the
machine can spare fails (reported as such) instead of pushing shared machines into swap / the OOM killer.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time


def worker(args):
    """Run in the child: build, warm up, time ``args.iters`` training steps, print one JSON line."""
    import numpy as np

    import gluon_resnetv2  # noqa: F401  (numpy aliases)
    import mxnet as mx
    from mxnet import autograd, gluon

    from gluon_resnetv2 import get_model
    from gluon_resnetv2.memory import SymbolicTrainer, mirroring_enabled, recompute

    mx.random.seed(0)
    shape = (args.batch, 3, 32, 32)
    net = get_model(args.model, classes=10)
    net.initialize(mx.init.Xavier(magnitude=2), ctx=mx.cpu())
    net(mx.nd.zeros((1, 3, 32, 32)))  # settle deferred shapes before any graph is bound
    rng = np.random.default_rng(0)
    data = mx.nd.array(rng.standard_normal(shape, dtype=np.float32))
    label = mx.nd.array(rng.integers(0, 10, args.batch), dtype="float32")
    opt = {"learning_rate": 0.01, "momentum": 0.9, "wd": 1e-4}
    if args.engine in ("gluon", "recompute"):
        if args.engine == "gluon":
            net.hybridize(static_alloc=True, static_shape=True)
            model = net
        else:
            model = recompute(net, segment_size=args.segment)
        trainer = gluon.Trainer(net.collect_params(), "sgd", opt)
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

        def step():
            with autograd.record():
                loss = loss_fn(model(data), label)
            if args.engine == "recompute":
                model.backward(loss)  # waits for the segments' backward (custom-function thread)
            else:
                loss.backward()
            trainer.step(args.batch)
            return float(loss.mean().asscalar())
    else:
        step = SymbolicTrainer(net, shape, "sgd", opt)
        step_fn = step

        def step():  # noqa: F811  (same interface as the gluon branch)
            return step_fn(data, label)

    t0 = time.perf_counter()
    for _ in range(args.warmup):
        loss = step()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        loss = step()
        mx.nd.waitall()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"model": args.model, "engine": args.engine, "mirror": mirroring_enabled(),
                      "segment": args.segment if args.engine == "recompute" else None,
                      "batch": args.batch, "warmup_s": warm, "step_s": times, "loss": loss}), flush=True)


def run_child(model, engine, mirror, args):
    """One configuration in a subprocess; returns a result dict with the child's own peak RSS
    (``os.wait4`` gives the rusage of that child alone, unlike ``RUSAGE_CHILDREN``)."""
    env = dict(os.environ)
    env["MXNET_BACKWARD_DO_MIRROR"] = "1" if mirror else "0"
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--model", model, "--engine", engine,
           "--batch", str(args.batch), "--iters", str(args.iters), "--warmup", str(args.warmup)]
    if args.segment:
        cmd += ["--segment", str(args.segment)]

    def limit():
        if args.mem_limit_gb:
            cap = int(args.mem_limit_gb * 2 ** 30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    out_path = f"/tmp/bench_memory_{os.getpid()}.out"
    err_path = out_path + ".err"
    start = time.perf_counter()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, preexec_fn=limit)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    with open(out_path) as out, open(err_path) as err:
        stdout, stderr = out.read(), err.read()
    os.unlink(out_path)
    os.unlink(err_path)
    result = {"model": model, "engine": engine, "mirror": mirror, "batch": args.batch, "wall_s": round(wall, 1),
              "returncode": proc.returncode, "peak_rss_mib": round(usage.ru_maxrss / 1024)}  # Linux: KiB
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode == 0 and lines:
        result.update(json.loads(lines[-1]))
    else:
        result["error"] = (stderr.strip().splitlines() or ["(no output)"])[-1][:300]
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["cifar_resnet164_v2", "cifar_resnet1001_v2"])
    parser.add_argument("--engines", nargs="+", default=["gluon", "recompute", "symbolic"],
                        choices=["gluon", "recompute", "symbolic"])
    parser.add_argument("--segment", type=int, default=None, help="units per recompute segment (default sqrt)")
    parser.add_argument("--mirror", nargs="+", type=int, default=[0, 1], choices=[0, 1])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=2, help="timed training steps after warm-up")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None,
                        help="OMP_NUM_THREADS of the children (default: inherited; leave it unset for the "
                             "recompute engine, whose nested backward runs in a second MXNet thread and slows "
                             "down badly when both thread pools spin on the same cores)")
    parser.add_argument("--mem-limit-gb", type=float, default=None,
                        help="address-space cap per child (a run that needs more fails instead of swapping)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    # child mode
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="gluon", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    print(f"# load: {os.getloadavg()}", flush=True)
    results = []
    for model in args.models:
        for engine in args.engines:
            for mirror in (args.mirror if engine != "recompute" else [0]):
                res = run_child(model, engine, bool(mirror), args)
                results.append(res)
                steps = res.get("step_s")
                timing = f"{min(steps):.2f} s/step (of {len(steps)})" if steps else f"FAILED: {res.get('error')}"
                print(f"{model:22s} {engine:9s} mirror={int(mirror)} batch={args.batch}: "
                      f"peak RSS {res['peak_rss_mib']} MiB, {timing}", flush=True)
    print(f"# load: {os.getloadavg()}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
