"""One small subprocess pool: start commands at most ``parallel`` at a time, poll them, and stop every process
still running when the caller returns, fails or is interrupted.  Used by the parallel table runner
(:mod:`gluon_resnetv2.experiments.scheduler`), the demo's two trainings (:mod:`gluon_resnetv2.demo`) and
the distributed launcher's clean-up (:mod:`gluon_resnetv2.train.launcher`)."""

import os
import signal
import subprocess
import time


def run(jobs, start, parallel=1, on_exit=None, on_poll=None, interval=0.5, grace=None):
    """Run ``jobs`` at most ``parallel`` at a time; returns the exit code of each job (None: not started).

    ``start(job, slot)`` starts one job (e.g. ``subprocess.Popen(argv, env=env)``) and returns its Popen, or
    None when there is nothing to run (the slot then takes the next job at once).  Every ``interval``
    seconds ``on_poll()`` is called and ``on_exit(job, code)`` for each process that ended.  Whatever is
    still running when this returns or raises (an error in a callback, KeyboardInterrupt) is stopped
    (:func:`stop` with ``grace``).
    """
    pending = list(enumerate(jobs))
    codes = [None] * len(pending)
    running = {}  # slot -> (Popen, index, job)
    try:
        while pending or running:
            for slot in range(parallel):
                while slot not in running and pending:
                    index, job = pending.pop(0)
                    proc = start(job, slot)
                    if proc is not None:
                        running[slot] = (proc, index, job)
            time.sleep(interval)
            if on_poll is not None:
                on_poll()
            for slot, (proc, index, job) in list(running.items()):
                if proc.poll() is not None:
                    del running[slot]
                    codes[index] = proc.returncode
                    if on_exit is not None:
                        on_exit(job, proc.returncode)
    finally:
        stop([proc for proc, _, _ in running.values()], grace)
    return codes


def stop(procs, grace=None, group=False):
    """Stop the running ones of ``procs`` (our own children only): SIGTERM to each, then, after ``grace``
    seconds in all, SIGKILL to what is left (``grace`` None: wait for each however long it takes).
    ``group``: signal each process's process group (processes started with ``start_new_session=True``)."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        _signal(proc, signal.SIGTERM, group)
    if grace is None:
        for proc in running:
            proc.wait()
        return
    deadline = time.time() + grace
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
    for proc in running:
        if proc.poll() is None:
            _signal(proc, signal.SIGKILL, group)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _signal(proc, sig, group):
    if group:
        try:
            os.killpg(proc.pid, sig)
            return
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
