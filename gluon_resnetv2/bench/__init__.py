"""Training and inference throughput, and peak memory, of this package's networks and their counterparts.

One process, one run (:func:`run_benchmark`): for each network, each *mode* and each *implementation* the
benchmark builds a fresh network on synthetic data and measures

* training images/s: forward + backward + SGD step (momentum 0.9, weight decay 1e-4) per batch;
* inference images/s: forward in predict mode (BN uses its running statistics);
* peak RSS (MB) while the configuration ran.

The modules::

    workload      modes, implementations, input shape, classes, SGD settings
    timing        Rate, time_steps: best window, per second and per process CPU-second
    peak_memory   peak RSS of this process (/proc/self) around a block, and of a child (os.wait4)
    mxnet_side    our networks and gluoncv's (import_gluoncv hides torch from gluoncv), deploy functions
    pytorch_side  the PyTorch twin (optional dependency)
    machine       CPU, load, versions, speed knobs, measured GEMM ceiling
    runner        plan, prewarm, run_benchmark, add_flops
    report        BenchResult/BenchReport, bench.csv/bench.json, table, headline ratios
    depth_memory  peak memory and step time of training deep networks with recomputation / mirroring
                  (``gluon-resnetv2 bench-memory``; not imported here, it runs as ``python -m``)
"""

from .machine import KNOBS_PREFIXES, conditions, gemm_gflops
from .mxnet_side import build_mxnet_net, deploy_functions, import_gluoncv, measure_mxnet
from .peak_memory import PeakMemory, release_free_memory, reset_peak_rss
from .pytorch_side import measure_pytorch, torch_available
from .report import (
    CSV_COLUMNS,
    BenchReport,
    BenchResult,
    format_ratios,
    format_row,
    format_table,
    headline_ratios,
    write_csv,
    write_report,
)
from .runner import add_flops, plan, prewarm, run_benchmark
from .timing import Rate, time_steps
from .workload import IMPLEMENTATIONS, INFERENCE_ONLY_MODES, MODES, PYTORCH_MODES, SGD, input_shape

__all__ = [
    "KNOBS_PREFIXES",
    "conditions",
    "gemm_gflops",
    "build_mxnet_net",
    "deploy_functions",
    "import_gluoncv",
    "measure_mxnet",
    "PeakMemory",
    "release_free_memory",
    "reset_peak_rss",
    "measure_pytorch",
    "torch_available",
    "CSV_COLUMNS",
    "BenchReport",
    "BenchResult",
    "format_ratios",
    "format_row",
    "format_table",
    "headline_ratios",
    "write_csv",
    "write_report",
    "add_flops",
    "plan",
    "prewarm",
    "run_benchmark",
    "Rate",
    "time_steps",
    "IMPLEMENTATIONS",
    "INFERENCE_ONLY_MODES",
    "MODES",
    "PYTORCH_MODES",
    "SGD",
    "input_shape",
]
