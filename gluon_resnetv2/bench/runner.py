"""A throughput benchmark run: the plan of configurations, the unmeasured warm-up, the measuring, FLOPs.

``rounds`` > 1 repeats the whole plan, interleaved, and keeps each row's best.  ``amp.init`` patches
MXNet's operators for good, so every ``bf16`` configuration runs after all the others.
"""

import gc
import os

import mxnet as mx

from ..cpu import in_use, peak
from ..flops import forward_macs, gflops
from ..nets.zoo import get_model, get_spec
from .machine import conditions, gemm_gflops
from .mxnet_side import deploy_functions, import_gluoncv, measure_mxnet
from .peak_memory import PeakMemory
from .pytorch_side import measure_pytorch, torch_available, torch_version
from .report import BenchReport, BenchResult, format_row
from .workload import IMPLEMENTATIONS, MODES, PYTORCH_MODES, classes_of, input_shape


def plan(networks, modes, implementations, model_kwargs=None):
    """The configurations to run, in run order, as ``(network, implementation, mode)``; and the skipped
    ones as ``(network, implementation, mode, reason)``.  bf16 goes last (``amp.init`` is global)."""
    model_kwargs = dict(model_kwargs or {})
    options = sorted(k for k in model_kwargs if k != "classes")
    runs, skipped = [], []
    for bf16_pass in (False, True):
        for network in networks:
            pytorch_rows = []
            for mode in modes:
                if (mode == "bf16") != bf16_pass:
                    continue
                for impl in implementations:
                    if impl != "gluon_resnetv2" and options:
                        skipped.append(
                            (network, impl, mode, f"model options {', '.join(options)} apply to gluon_resnetv2 only")
                        )
                    elif impl == "pytorch":
                        torch_mode = PYTORCH_MODES.get(mode)
                        if torch_mode is None:
                            skipped.append((network, impl, mode, "no PyTorch counterpart"))
                        elif torch_mode not in pytorch_rows:
                            pytorch_rows.append(torch_mode)
                            runs.append((network, impl, torch_mode))
                    else:
                        runs.append((network, impl, mode))
    return runs, skipped


def prewarm(networks, implementations, batch_size, threads=None):
    """Import the libraries of ``implementations`` and run one training and one inference step of each
    network at ``batch_size`` in each of them, unmeasured, so that library loading, code paging and
    oneDNN's primitive cache (kept for the process, keyed by shape) are not charged to whichever
    configuration happens to run first."""
    if "gluoncv" in implementations:
        import_gluoncv()
    for network in networks:
        for impl in implementations:
            if impl == "pytorch":
                if network.startswith("cifar"):
                    measure_pytorch(network, "eager", batch_size, 1, 0, threads=threads)
            else:
                measure_mxnet(network, impl, "hybrid", batch_size, 1, 0)
            gc.collect()
    mx.nd.waitall()


def run_benchmark(
    networks,
    modes=("hybrid", "static"),
    implementations=("gluon_resnetv2", "gluoncv"),
    batch_size=64,
    iterations=20,
    warmup=3,
    repeats=1,
    rounds=1,
    model_kwargs=None,
    deploy=None,
    log=print,
):
    """Measure every (network, implementation, mode) and return a :class:`BenchReport`.

    ``networks``: registered names (e.g. ``['cifar_resnet56_v2']``); ``modes`` from :data:`MODES`;
    ``implementations`` from :data:`IMPLEMENTATIONS`; ``model_kwargs``: options of
    :func:`gluon_resnetv2.get_model` (our networks only).  ``rounds`` > 1 runs the whole plan again that
    many times, every configuration rebuilt, and keeps each row's best throughput and largest peak: on a
    shared machine, load then falls on all configurations alike instead of on whichever ran while it
    lasted.  ``deploy``: an object with ``fuse`` and
    ``quantize`` to use instead of :mod:`gluon_resnetv2.deploy` (for tests).  ``log(str)`` reports progress.
    """
    unknown = [m for m in modes if m not in MODES] + [i for i in implementations if i not in IMPLEMENTATIONS]
    if unknown:
        raise ValueError(
            f"unknown mode/implementation {', '.join(unknown)}; modes: {', '.join(MODES)}; "
            f"implementations: {', '.join(IMPLEMENTATIONS)}"
        )
    if batch_size < 1 or iterations < 1 or warmup < 0 or rounds < 1:
        raise ValueError("batch_size, iterations and rounds must be >= 1, warmup >= 0")
    for network in networks:
        get_spec(network)  # ValueError with suggestions for a typo, before anything runs
    if deploy is not None:
        fuse, quantize, deploy_reason = deploy.fuse, deploy.quantize, ""
    else:
        fuse, quantize, deploy_reason = deploy_functions()
    report = BenchReport(conditions=conditions())
    runs, report.skipped = plan(networks, modes, implementations, model_kwargs)
    have_torch = torch_available()
    threads = in_use()["threads"]  # PyTorch gets MXNet's count
    prewarm(networks, [i for i in implementations if i != "pytorch" or have_torch], batch_size, threads)
    gemm = gemm_gflops()  # before any bf16 configuration: amp.init would make the GEMM bfloat16
    methods, best = set(), {}
    for round_index, (network, impl, mode) in ((i, r) for i in range(rounds) for r in runs):
        reason = None
        if impl == "pytorch" and not have_torch:
            reason = "PyTorch is not installed"
        elif impl == "pytorch" and not network.startswith("cifar"):
            reason = "the PyTorch reference covers CIFAR networks only"
        elif mode == "fused" and fuse is None or mode == "int8" and quantize is None:
            reason = deploy_reason or "deploy function missing"
        if reason:
            if round_index == 0:
                report.skipped.append((network, impl, mode, reason))
                log(f"skip {network} {impl} {mode}: {reason}")
            continue
        with PeakMemory() as memory:
            if impl == "pytorch":
                train, infer = measure_pytorch(
                    network, mode, batch_size, iterations, warmup, repeats, classes_of(network, model_kwargs), threads
                )
            else:
                train, infer = measure_mxnet(
                    network,
                    impl,
                    mode,
                    batch_size,
                    iterations,
                    warmup,
                    repeats,
                    model_kwargs
                    if impl == "gluon_resnetv2"
                    else {k: v for k, v in (model_kwargs or {}).items() if k == "classes"},
                    fuse,
                    quantize,
                )
            mx.nd.waitall()
        methods.add(memory.method)
        result = BenchResult(
            network,
            impl,
            mode,
            batch_size,
            _float(train),
            _float(infer),
            memory.mb,
            getattr(train, "per_cpu_s", None),
            getattr(infer, "per_cpu_s", None),
        )
        log(format_row(result) + (f"   (round {round_index + 1}/{rounds})" if rounds > 1 else ""))
        kept = best.setdefault((network, impl, mode), result)
        if kept is not result:
            kept.train_images_per_s = _best(kept.train_images_per_s, train)
            kept.infer_images_per_s = _best(kept.infer_images_per_s, infer)
            kept.peak_rss_mb = _best(kept.peak_rss_mb, memory.mb)
            kept.train_images_per_cpu_s = _best(kept.train_images_per_cpu_s, result.train_images_per_cpu_s)
            kept.infer_images_per_cpu_s = _best(kept.infer_images_per_cpu_s, result.infer_images_per_cpu_s)
    report.results = list(best.values())
    report.conditions["peak"] = dict(peak(threads), gemm_gflops=gemm[0], gemm_gflops_per_cpu_s=gemm[1])
    add_flops(report, model_kwargs)
    report.memory_method = "absolute" if "absolute" in methods else "delta"
    try:
        report.conditions["loadavg_after"] = os.getloadavg()
    except OSError:
        pass
    report.conditions.update(
        batch_size=batch_size,
        iterations=iterations,
        warmup=warmup,
        repeats=repeats,
        rounds=rounds,
        model_kwargs={k: str(v) for k, v in (model_kwargs or {}).items()},
        memory_method=report.memory_method,
        torch=torch_version() if have_torch else None,
    )
    return report


def add_flops(report, model_kwargs=None):
    """Fill every result's multiply-adds, GFLOP/s and fraction of ``report.conditions['peak']``.  The
    PyTorch twin is counted on our network (the same layers, see :mod:`gluon_resnetv2.torch_reference`)."""
    macs = {}
    ceiling = (report.conditions.get("peak") or {}).get("gflops_used")
    for r in report.results:
        impl = "gluon_resnetv2" if r.implementation == "pytorch" else r.implementation
        key = (r.network, impl)
        if key not in macs:
            kwargs = dict(model_kwargs or {}) if impl == "gluon_resnetv2" else {}
            kwargs.setdefault("classes", classes_of(r.network, model_kwargs))
            if impl == "gluon_resnetv2":
                net = get_model(r.network, **kwargs)
            else:
                net = import_gluoncv().model_zoo.get_model(r.network, classes=kwargs["classes"])
            macs[key] = forward_macs(net, input_shape(r.network))["total"]
        r.forward_macs = macs[key]
        r.train_gflops = gflops(r.train_images_per_s, r.forward_macs, training=True)
        r.infer_gflops = gflops(r.infer_images_per_s, r.forward_macs, training=False)
        if ceiling:
            r.train_peak_fraction = None if r.train_gflops is None else r.train_gflops / ceiling
            r.infer_peak_fraction = None if r.infer_gflops is None else r.infer_gflops / ceiling


def _float(rate):
    return None if rate is None else float(rate)


def _best(a, b):
    return b if a is None else a if b is None else max(a, b)
