"""Calls per second of a step function, wall-clock and per CPU-second of the process.

Timing: ``warmup`` steps (graph building, MKLDNN primitive creation), then ``repeats`` timed windows of
``iterations`` steps each; MXNet's asynchronous engine is drained (``mx.nd.waitall()``) before and after
each window, not inside it, so Python and the engine overlap as in a training loop that does not read
the loss every step.  The best window is reported (on a shared machine the best is the least disturbed).
Each figure also exists per CPU-second of the process (``time.process_time``, all threads), which load
from other processes disturbs far less than wall-clock time, cleanly so with ``OMP_NUM_THREADS=1``.
"""

import time


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
