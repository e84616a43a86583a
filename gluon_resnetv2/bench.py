"""Training and inference throughput, and peak memory, of this package's networks and their counterparts.

One process, one run: for each network, each *mode* and each *implementation* the benchmark builds a fresh
network on synthetic data and measures

* training images/s: forward + backward + SGD step (momentum 0.9, weight decay 1e-4) per batch;
* inference images/s: forward in predict mode (BN uses its running statistics);
* peak RSS (MB) while the configuration ran (see *Memory* below).

Modes (MXNet implementations)::

    imperative  the Gluon block run op by op
    hybrid      net.hybridize()
    static      net.hybridize(static_alloc=True, static_shape=True)
    fused       gluon_resnetv2.deploy.fuse(net, input_shape): MKLDNN graph fusion        (inference only)
    int8        gluon_resnetv2.deploy.quantize(net, calib_batches, ...): INT8            (inference only)
    bf16        mxnet.contrib.amp.init(target_dtype='bfloat16'), then as 'static'

Implementations: ``gluon_resnetv2`` (this package, model options apply), ``gluoncv``
(``gluoncv.model_zoo.get_model``, the same name) and ``pytorch`` (:mod:`gluon_resnetv2.torch_reference`,
the same architecture, eager mode; rows ``eager`` for fp32 and ``bf16`` for ``torch.autocast`` bfloat16;
only when PyTorch is importable).  A mode that does not apply to an implementation (fused for PyTorch, a
missing ``deploy`` module, ...) is skipped and listed with its reason.

Timing: ``warmup`` steps (graph building, MKLDNN primitive creation), then ``repeats`` timed windows of
``iterations`` steps each; MXNet's asynchronous engine is drained (``mx.nd.waitall()``) before and after
each window, not inside it, so Python and the engine overlap as in a training loop that does not read
the loss every step.  The best window is reported (on a shared machine the best is the least disturbed);
``rounds`` > 1 repeats the whole plan, interleaved, and keeps each row's best.  Each figure also exists
per CPU-second of the process (``time.process_time``, all threads), which load from other processes
disturbs far less than wall-clock time, cleanly so with ``OMP_NUM_THREADS=1``.

Memory: Linux lets a process reset its own peak RSS (``echo 5 > /proc/self/clear_refs`` resets VmHWM).
Before each configuration the benchmark collects garbage, resets the peak and reads the current RSS; after
it, ``peak_rss_mb`` = VmHWM - that RSS, i.e. the memory the configuration added at its peak (weights,
gradients, optimizer state, activations, workspaces, graph).  Where the reset is not permitted the column
holds the process's absolute VmHWM after the configuration (monotone in run order) and
:attr:`BenchReport.memory_method` says ``absolute``.

``amp.init`` patches MXNet's operators for good, so every ``bf16`` configuration runs after all the others.
"""
import contextlib
import csv
import gc
import importlib
import importlib.util
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field

from . import _compat  # noqa: F401  (numpy aliases before mxnet)
from .cpu import describe_peak, has_avx512_bf16, in_use, peak
from .flops import forward_macs, gflops
import mxnet as mx
from mxnet import autograd, gluon

MODES = ("imperative", "hybrid", "static", "fused", "int8", "bf16")
INFERENCE_ONLY_MODES = ("fused", "int8")
IMPLEMENTATIONS = ("gluon_resnetv2", "gluoncv", "pytorch")
CSV_COLUMNS = ("network", "implementation", "mode", "batch_size", "train_images_per_s", "infer_images_per_s",
               "peak_rss_mb")
#: MXNet modes -> the PyTorch row that stands for them (eager fp32 for the fp32 modes, autocast for bf16).
PYTORCH_MODES = {"imperative": "eager", "hybrid": "eager", "static": "eager", "bf16": "bf16"}
#: Environment variables recorded with every run (they change speed; most must be set before mxnet loads).
KNOBS_PREFIXES = ("OMP_", "KMP_", "MXNET_", "MKL_", "DNNL_", "ONEDNN_", "GOMP_")
SGD = {"learning_rate": 0.01, "momentum": 0.9, "wd": 1e-4}


@dataclass
class BenchResult:
    """One CSV row: a network, implementation and mode.  Figures are None where they do not apply."""

    network: str
    implementation: str
    mode: str
    batch_size: int
    train_images_per_s: float = None
    infer_images_per_s: float = None
    peak_rss_mb: float = None
    #: images per CPU-second of the process (all threads): not in the CSV, in bench.json and the table
    train_images_per_cpu_s: float = None
    infer_images_per_cpu_s: float = None
    #: achieved GFLOP/s (graph multiply-adds x 2, x 3 for a training step; :mod:`.flops`) and the fraction
    #: of the fp32 peak of the threads used (:func:`gluon_resnetv2.cpu.peak`): bench.json and the table
    forward_macs: int = None
    train_gflops: float = None
    infer_gflops: float = None
    train_peak_fraction: float = None
    infer_peak_fraction: float = None

    def row(self):
        """The CSV row (figures rounded; empty where not applicable)."""
        def fmt(value, digits):
            return "" if value is None else f"{value:.{digits}f}"
        return {"network": self.network, "implementation": self.implementation, "mode": self.mode,
                "batch_size": self.batch_size, "train_images_per_s": fmt(self.train_images_per_s, 2),
                "infer_images_per_s": fmt(self.infer_images_per_s, 2), "peak_rss_mb": fmt(self.peak_rss_mb, 1)}


@dataclass
class BenchReport:
    """Everything a run produced: rows, skipped configurations with reasons, and the conditions."""

    results: list = field(default_factory=list)
    skipped: list = field(default_factory=list)     # (network, implementation, mode, reason)
    memory_method: str = "delta"                    # 'delta' (VmHWM reset per configuration) | 'absolute'
    conditions: dict = field(default_factory=dict)  # machine, load, versions, knobs

    def find(self, network, implementation, mode):
        for r in self.results:
            if (r.network, r.implementation, r.mode) == (network, implementation, mode):
                return r
        return None


# --- memory ---------------------------------------------------------------------------------------

def _status_kb(field_name):
    """A ``/proc/self/status`` field in kB (VmRSS, VmHWM); None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss():
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def release_free_memory():
    """Give the C heap's free pages back to the OS (glibc ``malloc_trim(0)``); False where unavailable.

    Without it the memory a previous configuration freed stays resident in the heap (glibc raises its
    mmap threshold after large frees, so big buffers come from the heap), the next configuration reuses
    it, and its RSS growth reads as zero."""
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0) or True)
    except (OSError, AttributeError):
        return False


class PeakMemory:
    """``with PeakMemory() as m: ...`` then ``m.mb``: the peak RSS added inside the block (method 'delta'),
    or the process's absolute peak RSS where it cannot be reset (method 'absolute')."""

    def __enter__(self):
        gc.collect()
        release_free_memory()
        self.method = "delta" if reset_peak_rss() else "absolute"
        self.base_kb = _status_kb("VmRSS") if self.method == "delta" else 0
        return self

    def __exit__(self, *exc):
        peak = _status_kb("VmHWM")
        self.mb = None if peak is None or self.base_kb is None else (peak - self.base_kb) / 1024.0
        return False


# --- timing ---------------------------------------------------------------------------------------

class Rate(float):
    """Calls per wall-clock second (the float value), with ``per_cpu_s``: calls per CPU-second of the whole
    process (all threads, ``time.process_time``), which load from other processes disturbs far less."""

    def __new__(cls, per_s, per_cpu_s=None):
        rate = super().__new__(cls, per_s)
        rate.per_cpu_s = per_cpu_s
        return rate

    def __mul__(self, k):
        return Rate(float(self) * k, None if self.per_cpu_s is None else self.per_cpu_s * k)


def time_steps(step, iterations, warmup=2, repeats=1, sync=None):
    """Run ``step`` ``warmup`` times, then ``repeats`` windows of ``iterations`` calls; return the best
    window's calls per second as a :class:`Rate` (its ``per_cpu_s``: the best window's calls per process
    CPU-second).  ``sync()`` (e.g. ``mx.nd.waitall``) drains asynchronous work around each window."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    best = best_cpu = 0.0
    for _ in range(max(1, repeats)):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(iterations):
            step()
        sync()
        best = max(best, iterations / (time.perf_counter() - start))
        best_cpu = max(best_cpu, iterations / max(time.process_time() - start_cpu, 1e-9))
    return Rate(best, best_cpu)


# --- implementations ------------------------------------------------------------------------------

def import_gluoncv():
    """Import gluoncv even where PyTorch >= 2 is installed.

    gluoncv 0.10 checks the PyTorch version on import and raises RuntimeError ("Legacy torch==2.x
    detected") for torch >= 2.0, which would make gluoncv unusable next to the PyTorch reference.  Its
    MXNet half does not need torch, so torch is hidden while gluoncv's ``__init__`` runs.
    """
    if "gluoncv" in sys.modules:
        return sys.modules["gluoncv"]
    missing = object()
    saved = sys.modules.get("torch", missing)
    sys.modules["torch"] = None  # makes `import torch` raise ImportError, which gluoncv tolerates
    try:
        import gluoncv
    finally:
        if saved is missing:
            del sys.modules["torch"]
        else:
            sys.modules["torch"] = saved
    return gluoncv


def torch_available():
    """True when PyTorch can be imported (it is optional: ``pip install torch`` to add the reference)."""
    return importlib.util.find_spec("torch") is not None


def deploy_functions():
    """``(fuse, quantize, reason)`` from :mod:`gluon_resnetv2.deploy` (or its ``fast`` module where the
    package does not re-export them); a missing one is None and ``reason`` says why."""
    fuse = quantize = None
    reason = ""
    for module_name in ("gluon_resnetv2.deploy", "gluon_resnetv2.deploy.fast"):
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            reason = reason or f"gluon_resnetv2.deploy is not available ({err})"
            continue
        fuse = fuse or getattr(module, "fuse", None)
        quantize = quantize or getattr(module, "quantize", None)
    missing = [n for n, f in (("fuse", fuse), ("quantize", quantize)) if f is None]
    if missing and not reason:
        reason = f"gluon_resnetv2.deploy has no {', '.join(missing)}"
    return fuse, quantize, reason


def input_shape(network):
    """(C, H, W) of ``network``: 32x32 for CIFAR names, 224x224 otherwise."""
    return (3, 32, 32) if network.startswith("cifar") else (3, 224, 224)


def build_mxnet_net(network, implementation, model_kwargs=None, ctx=None):
    """An initialised (parameters allocated) MXNet network of ``implementation`` 'gluon_resnetv2' or 'gluoncv'."""
    ctx = ctx or mx.cpu()
    model_kwargs = dict(model_kwargs or {})
    if implementation == "gluon_resnetv2":
        from .nets.zoo import get_model

        net = get_model(network, **model_kwargs)
    elif implementation == "gluoncv":
        net = import_gluoncv().model_zoo.get_model(network, classes=model_kwargs.get("classes", 10)
                                                   if network.startswith("cifar") else
                                                   model_kwargs.get("classes", 1000))
    else:
        raise ValueError(f"implementation={implementation!r} is not an MXNet one")
    net.initialize(ctx=ctx)
    net(mx.nd.zeros((1,) + input_shape(network), ctx=ctx))  # finish deferred initialisation
    return net


def _classes(network, model_kwargs):
    return (model_kwargs or {}).get("classes", 10 if network.startswith("cifar") else 1000)


def _mxnet_batch(network, batch_size, classes, ctx):
    x = mx.nd.random.normal(shape=(batch_size,) + input_shape(network), ctx=ctx)
    y = mx.nd.random.randint(0, classes, shape=(batch_size,), ctx=ctx).astype("float32")
    return x, y


def measure_mxnet(network, implementation, mode, batch_size, iterations, warmup, repeats=1, model_kwargs=None,
                  fuse=None, quantize=None, ctx=None):
    """(train images/s or None, inference images/s) of one MXNet configuration, each a :class:`Rate`."""
    ctx = ctx or mx.cpu()
    classes = _classes(network, model_kwargs)
    if mode == "bf16":
        from mxnet.contrib import amp

        if not getattr(amp.amp, "_amp_initialized", False):
            amp.init(target_dtype="bfloat16")
    net = build_mxnet_net(network, implementation, model_kwargs, ctx)
    x, y = _mxnet_batch(network, batch_size, classes, ctx)
    steps = lambda step, n=iterations: time_steps(step, n, warmup, repeats, mx.nd.waitall)  # noqa: E731
    train = None
    if mode in ("hybrid",):
        net.hybridize()
    elif mode in ("static", "bf16"):
        net.hybridize(static_alloc=True, static_shape=True)
    if mode not in INFERENCE_ONLY_MODES:
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        trainer = gluon.Trainer(net.collect_params(), "sgd", dict(SGD))

        def train_step():
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(batch_size)

        train = steps(train_step) * batch_size
    if mode == "fused":
        net = fuse(net, (batch_size,) + input_shape(network))
    elif mode == "int8":
        calib = [mx.nd.random.normal(shape=x.shape, ctx=ctx) for _ in range(2)]
        net = quantize(net, calib, num_calib_batches=len(calib), calib_mode="naive")
    infer = steps(lambda: net(x)) * batch_size
    return train, infer


def measure_pytorch(network, mode, batch_size, iterations, warmup, repeats=1, classes=10, threads=None):
    """(train images/s, inference images/s) of the PyTorch twin in eager mode; ``mode`` 'eager' (fp32) or
    'bf16' (``torch.autocast('cpu', torch.bfloat16)``)."""
    import torch

    from .torch_reference import torch_model

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = torch_model(network, classes=classes)
    x = torch.randn((batch_size,) + input_shape(network))
    y = torch.randint(0, classes, (batch_size,))
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=SGD["learning_rate"], momentum=SGD["momentum"],
                          weight_decay=SGD["wd"])

    def precision():
        if mode == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step():
        opt.zero_grad(set_to_none=True)
        with precision():
            loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    net.train()
    train = time_steps(train_step, iterations, warmup, repeats) * batch_size
    net.eval()

    def infer_step():
        with torch.inference_mode(), precision():
            net(x)

    infer = time_steps(infer_step, iterations, warmup, repeats) * batch_size
    return train, infer


# --- the run --------------------------------------------------------------------------------------

def _knobs():
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(KNOBS_PREFIXES)}


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def conditions():
    """The machine and software a run measured: CPU, cores, load average, versions, speed knobs."""
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    info = {"time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": _cpu_model(),
            "cpus": os.cpu_count(), "loadavg": load, "python": platform.python_version(),
            "mxnet": mx.__version__, "knobs": _knobs(), "omp_threads": in_use(),
            "avx512_bf16": has_avx512_bf16()}
    return info


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
                        skipped.append((network, impl, mode, f"model options {', '.join(options)} apply to "
                                                             "gluon_resnetv2 only"))
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


def run_benchmark(networks, modes=("hybrid", "static"), implementations=("gluon_resnetv2", "gluoncv"),
                  batch_size=64, iterations=20, warmup=3, repeats=1, rounds=1, model_kwargs=None, deploy=None,
                  log=print):
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
        raise ValueError(f"unknown mode/implementation {', '.join(unknown)}; modes: {', '.join(MODES)}; "
                         f"implementations: {', '.join(IMPLEMENTATIONS)}")
    if batch_size < 1 or iterations < 1 or warmup < 0 or rounds < 1:
        raise ValueError("batch_size, iterations and rounds must be >= 1, warmup >= 0")
    from .nets.zoo import get_spec

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
                train, infer = measure_pytorch(network, mode, batch_size, iterations, warmup, repeats,
                                               _classes(network, model_kwargs), threads)
            else:
                train, infer = measure_mxnet(network, impl, mode, batch_size, iterations, warmup, repeats,
                                             model_kwargs if impl == "gluon_resnetv2" else
                                             {k: v for k, v in (model_kwargs or {}).items() if k == "classes"},
                                             fuse, quantize)
            mx.nd.waitall()
        methods.add(memory.method)
        result = BenchResult(network, impl, mode, batch_size, _float(train), _float(infer), memory.mb,
                             getattr(train, "per_cpu_s", None), getattr(infer, "per_cpu_s", None))
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
    report.conditions.update(batch_size=batch_size, iterations=iterations, warmup=warmup, repeats=repeats,
                             rounds=rounds,
                             model_kwargs={k: str(v) for k, v in (model_kwargs or {}).items()},
                             memory_method=report.memory_method, torch=_torch_version() if have_torch else None)
    return report


def add_flops(report, model_kwargs=None):
    """Fill every result's multiply-adds, GFLOP/s and fraction of ``report.conditions['peak']``.  The
    PyTorch twin is counted on our network (the same layers, see :mod:`.torch_reference`)."""
    macs = {}
    ceiling = (report.conditions.get("peak") or {}).get("gflops_used")
    for r in report.results:
        impl = "gluon_resnetv2" if r.implementation == "pytorch" else r.implementation
        key = (r.network, impl)
        if key not in macs:
            kwargs = dict(model_kwargs or {}) if impl == "gluon_resnetv2" else {}
            kwargs.setdefault("classes", _classes(r.network, model_kwargs))
            if impl == "gluon_resnetv2":
                from .nets.zoo import get_model

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


def gemm_gflops(size=1024, iterations=5, repeats=3):
    """``(GFLOP/s, GFLOP per CPU-second)``, best window, of a float32 ``size`` x ``size`` matrix product run
    as a oneDNN FullyConnected (the library and threads of the convolutions): a measured ceiling next to
    the nominal peak, which a virtual machine's cpuinfo clock (boost not visible) can put too low."""
    a = mx.nd.random.normal(shape=(size, size))
    b = mx.nd.random.normal(shape=(size, size))
    rate = time_steps(lambda: mx.nd.FullyConnected(a, b, no_bias=True, num_hidden=size), iterations, warmup=2,
                      repeats=repeats, sync=mx.nd.waitall)
    flop = 2 * size ** 3 / 1e9
    return float(rate) * flop, rate.per_cpu_s * flop


def _float(rate):
    return None if rate is None else float(rate)


def _best(a, b):
    return b if a is None else a if b is None else max(a, b)


def _torch_version():
    import torch

    return torch.__version__


# --- output ---------------------------------------------------------------------------------------

def write_csv(report, path):
    """Write ``report``'s rows to ``path`` with exactly :data:`CSV_COLUMNS`."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for result in report.results:
            writer.writerow(result.row())


def write_report(report, out_dir):
    """``out_dir/bench.csv`` (the rows) and ``out_dir/bench.json`` (rows, skipped configurations, ratios,
    memory method, machine/load/knobs); returns the CSV path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "bench.csv")
    write_csv(report, path)
    meta = {"results": [asdict(r) for r in report.results],
            "skipped": [dict(zip(("network", "implementation", "mode", "reason"), s)) for s in report.skipped],
            "ratios": [dict(zip(("network", "ratio", "value", "goal"), r)) for r in headline_ratios(report)],
            "ratios_per_cpu_s": [dict(zip(("network", "ratio", "value", "goal"), r))
                                 for r in headline_ratios(report, per="cpu_s")],
            "memory_method": report.memory_method, "conditions": report.conditions}
    with open(os.path.join(out_dir, "bench.json"), "w") as f:
        json.dump(meta, f, indent=2, default=str)
    return path


_WIDTHS = (20, 15, 10, 6, 10, 10, 9, 11, 11, 8, 8, 7, 7)


def format_row(result):
    """One table line: the CSV columns, images per process CPU-second (train, inference), GFLOP/s and the
    percentage of the fp32 peak (train, inference)."""
    row = result.row()
    cells = [row[c] for c in CSV_COLUMNS] + [
        "" if v is None else f"{v:.2f}" for v in (result.train_images_per_cpu_s, result.infer_images_per_cpu_s)] + [
        "" if v is None else f"{v:.1f}" for v in (result.train_gflops, result.infer_gflops)] + [
        "" if v is None else f"{100 * v:.1f}" for v in (result.train_peak_fraction, result.infer_peak_fraction)]
    return " ".join(str(v or "-").rjust(w) if i > 2 else str(v).ljust(w)
                    for i, (v, w) in enumerate(zip(cells, _WIDTHS)))


def format_table(report):
    """The rows as a fixed-width table, with the skipped configurations and the conditions under it."""
    head = ("network", "implementation", "mode", "batch", "train/s", "infer/s", "peak MB", "train/cpu-s",
            "infer/cpu-s", "trGF/s", "infGF/s", "tr%pk", "inf%pk")
    lines = [" ".join(h.rjust(w) if i > 2 else h.ljust(w) for i, (h, w) in enumerate(zip(head, _WIDTHS)))]
    lines += [format_row(r) for r in report.results]
    for network, impl, mode, reason in report.skipped:
        lines.append(f"  skipped {network} {impl} {mode}: {reason}")
    c = report.conditions
    lines.append(f"  {c.get('cpus')} CPUs ({c.get('cpu')}), load {_load(c.get('loadavg'))} before, "
                 f"{_load(c.get('loadavg_after'))} after; peak memory: "
                 + ("RSS added per configuration (VmHWM reset)" if report.memory_method == "delta"
                    else "process VmHWM after each configuration (reset not permitted)"))
    if c.get("peak"):
        gemm = c["peak"].get("gemm_gflops")
        lines.append(f"  {describe_peak(c['peak'])}; %pk = GFLOP/s / the threads' fp32 peak "
                     "(bf16 rows: their own peak is 2x, int8 4x)"
                     + ("" if gemm is None else f"; measured fp32 GEMM (oneDNN, 1024^3): {gemm:.0f} GFLOP/s, "
                                                f"{c['peak']['gemm_gflops_per_cpu_s']:.0f} per CPU-second"))
    return "\n".join(lines)


def _load(load):
    return "?" if not load else "/".join(f"{v:.2f}" for v in load)


def _ratio(a, b):
    return None if not a or not b else a / b


def headline_ratios(report, per="s"):
    """The headline figures as ``(network, label, value, goal)`` (goal None where there is none):
    ours/gluoncv training (hybrid, static), fused/hybrid and int8/fp32 inference, bf16/fp32, ours/PyTorch.
    ``per='cpu_s'`` computes them from images per process CPU-second instead of per second."""
    out = []
    for network in dict.fromkeys(r.network for r in report.results):
        def get(impl, mode, what):
            r = report.find(network, impl, mode)
            return None if r is None else getattr(r, what.replace("_per_s", f"_per_{per}"))

        ours = "gluon_resnetv2"
        candidates = [
            ("train ours/gluoncv (hybrid)", get(ours, "hybrid", "train_images_per_s"),
             get("gluoncv", "hybrid", "train_images_per_s"), 1.0),
            ("train ours/gluoncv (static)", get(ours, "static", "train_images_per_s"),
             get("gluoncv", "static", "train_images_per_s"), 1.0),
            ("infer ours/gluoncv (static)", get(ours, "static", "infer_images_per_s"),
             get("gluoncv", "static", "infer_images_per_s"), None),
            ("infer fused/hybrid", get(ours, "fused", "infer_images_per_s"),
             get(ours, "hybrid", "infer_images_per_s"), 1.3),
            ("infer int8/fp32 (hybrid)", get(ours, "int8", "infer_images_per_s"),
             get(ours, "hybrid", "infer_images_per_s"), 2.0),
            ("infer int8/fused fp32", get(ours, "int8", "infer_images_per_s"),
             get(ours, "fused", "infer_images_per_s"), None),
            ("train bf16/fp32 (static)", get(ours, "bf16", "train_images_per_s"),
             get(ours, "static", "train_images_per_s"), None),
            ("infer bf16/fp32 (static)", get(ours, "bf16", "infer_images_per_s"),
             get(ours, "static", "infer_images_per_s"), None),
        ]
        # fp32 against fp32: bf16 and int8 have their own rows
        best_train = max([v for v in (get(ours, m, "train_images_per_s") for m in ("hybrid", "static"))
                          if v] or [None], key=lambda v: v or 0)
        best_infer = max([v for v in (get(ours, m, "infer_images_per_s") for m in ("hybrid", "static", "fused"))
                          if v] or [None], key=lambda v: v or 0)
        candidates += [
            ("train ours(best fp32)/pytorch eager", best_train, get("pytorch", "eager", "train_images_per_s"), None),
            ("train ours(static)/pytorch eager", get(ours, "static", "train_images_per_s"),
             get("pytorch", "eager", "train_images_per_s"), None),
            ("infer ours(best fp32)/pytorch eager", best_infer, get("pytorch", "eager", "infer_images_per_s"), None),
            ("train ours bf16/pytorch bf16", get(ours, "bf16", "train_images_per_s"),
             get("pytorch", "bf16", "train_images_per_s"), None),
            ("train pytorch bf16/eager", get("pytorch", "bf16", "train_images_per_s"),
             get("pytorch", "eager", "train_images_per_s"), None),
        ]
        for label, a, b, goal in candidates:
            value = _ratio(a, b)
            if value is not None:
                out.append((network, label, value, goal))
    return out


def format_ratios(report):
    """The headline ratios, one a line: from images/s, from images per CPU-second, and the goal."""
    per_cpu = {(n, label): v for n, label, v, _ in headline_ratios(report, per="cpu_s")}
    lines = [f"{'network':20s} {'ratio':34s} {'per s':>7s} {'per cpu-s':>9s}"]
    for network, label, value, goal in headline_ratios(report):
        cpu = per_cpu.get((network, label))
        verdict = "" if goal is None else (f"  (goal >= {goal:g}: {'met' if value >= goal else 'NOT met'})")
        lines.append(f"{network:20s} {label:34s} {value:6.2f}x {'' if cpu is None else f'{cpu:8.2f}x'}{verdict}")
    return "\n".join(lines)
