"""The machine a benchmark ran on: CPU, load, versions, speed knobs, and a measured GEMM ceiling."""

import os
import platform
import time

import mxnet as mx

from ..cpu import cpu_info, has_avx512_bf16, in_use
from .timing import time_steps

#: Environment variables recorded with every run (they change speed; most must be set before mxnet loads).
KNOBS_PREFIXES = ("OMP_", "KMP_", "MXNET_", "MKL_", "DNNL_", "ONEDNN_", "GOMP_")


def _knobs():
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(KNOBS_PREFIXES)}


def _cpu_model():
    return cpu_info().get("model name") or platform.processor()


def conditions():
    """The machine and software a run measured: CPU, cores, load average, versions, speed knobs."""
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    info = {
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "loadavg": load,
        "python": platform.python_version(),
        "mxnet": mx.__version__,
        "knobs": _knobs(),
        "omp_threads": in_use(),
        "avx512_bf16": has_avx512_bf16(),
    }
    return info


def gemm_gflops(size=1024, iterations=5, repeats=3):
    """``(GFLOP/s, GFLOP per CPU-second)``, best window, of a float32 ``size`` x ``size`` matrix product run
    as a oneDNN FullyConnected (the library and threads of the convolutions): a measured ceiling next to
    the nominal peak, which a virtual machine's cpuinfo clock (boost not visible) can put too low."""
    a = mx.nd.random.normal(shape=(size, size))
    b = mx.nd.random.normal(shape=(size, size))
    rate = time_steps(
        lambda: mx.nd.FullyConnected(a, b, no_bias=True, num_hidden=size),
        iterations,
        warmup=2,
        repeats=repeats,
        sync=mx.nd.waitall,
    )
    flop = 2 * size**3 / 1e9
    return float(rate) * flop, rate.per_cpu_s * flop
