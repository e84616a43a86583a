"""Peak resident memory: of this process around a block (``/proc/self``), and of a child process.

This process: Linux lets a process reset its own peak RSS (``echo 5 > /proc/self/clear_refs`` resets VmHWM).
Before each configuration the benchmark collects garbage, resets the peak and reads the current RSS; after
it, ``peak_rss_mb`` = VmHWM - that RSS, i.e. the memory the configuration added at its peak (weights,
gradients, optimizer state, activations, workspaces, graph).  Where the reset is not permitted the column
holds the process's absolute VmHWM after the configuration (monotone in run order) and
:attr:`~gluon_resnetv2.bench.report.BenchReport.memory_method` says ``absolute``.

A child: :func:`run_child` reads its peak RSS from ``os.wait4`` (``ru_maxrss``, that child alone, unlike
``RUSAGE_CHILDREN``).
"""

import ctypes
import gc
import os
import resource
import subprocess
import time


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


def run_child(cmd, env=None, mem_limit_gb=None, cwd=None):
    """Run ``cmd`` (in ``cwd``) to its end; returns ``(returncode, stdout, stderr, peak RSS in KiB, wall
    seconds)``.

    ``mem_limit_gb`` caps the child's address space, so that a child needing more fails instead of
    pushing a shared machine into swap or the OOM killer."""

    def limit():
        if mem_limit_gb:
            cap = int(mem_limit_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    out_path = f"/tmp/bench_memory_{os.getpid()}.out"
    err_path = out_path + ".err"
    start = time.perf_counter()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err, preexec_fn=limit)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: Popen must not wait again
    wall = time.perf_counter() - start
    with open(out_path) as out, open(err_path) as err:
        stdout, stderr = out.read(), err.read()
    os.unlink(out_path)
    os.unlink(err_path)
    return proc.returncode, stdout, stderr, usage.ru_maxrss, wall  # ru_maxrss: KiB on Linux
