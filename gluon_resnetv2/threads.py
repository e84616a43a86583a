"""How many OpenMP threads MXNet runs, chosen before mxnet loads: one per *physical* core by default.

MXNet 1.9.1 fixes its thread count when libmxnet loads (``src/engine/openmp.cc``): ``MXNET_OMP_MAX_THREADS``
if set, else ``OMP_NUM_THREADS`` if set, else ``omp_get_num_procs() / 2`` on x86, which assumes two hardware
threads per core and so leaves half of a machine with one thread per core idle.  Its C API
``MXSetNumOMPThreads`` changes only the calling thread (no effect on the engine's workers), so the count
has to be in the environment before the first ``import mxnet``; :func:`configure` (run by
:mod:`gluon_resnetv2._compat`) puts the number of physical cores this process may run on there, unless the
user chose already.  Hyper-threads are not counted: two threads sharing a core's vector units do not make
convolutions faster and add a barrier partner that is often descheduled.
"""
import os
import sys
import warnings

#: The variables with which a user chooses the count; either wins over the default.
USER_VARIABLES = ("MXNET_OMP_MAX_THREADS", "OMP_NUM_THREADS")
SYSFS_CPU = "/sys/devices/system/cpu"

_state = {"threads": None, "source": None, "warned": False}


def parse_cpu_list(text):
    """The CPU ids of a kernel CPU list such as ``'0-3,8,10-11'``."""
    cpus = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def read_siblings(cpus, root=SYSFS_CPU):
    """``{cpu: frozenset of the hardware threads of its core}`` from ``topology/thread_siblings_list``; a CPU
    whose file cannot be read counts as a core of its own."""
    siblings = {}
    for cpu in cpus:
        try:
            with open(os.path.join(root, f"cpu{cpu}", "topology", "thread_siblings_list")) as f:
                siblings[cpu] = frozenset(parse_cpu_list(f.read()))
        except (OSError, ValueError):
            siblings[cpu] = frozenset({cpu})
    return siblings


def available_cpus():
    """The CPUs this process may run on (its affinity mask; ``os.cpu_count()`` ids where there is none)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def physical_cores(affinity=None, siblings=None):
    """Number of physical cores with at least one CPU in ``affinity`` (default: this process's mask);
    ``siblings`` maps each CPU to its core's hardware threads (default: read from sysfs)."""
    affinity = available_cpus() if affinity is None else set(affinity)
    siblings = read_siblings(affinity) if siblings is None else siblings
    return max(1, len({frozenset(siblings.get(cpu, {cpu})) for cpu in affinity}))


def _positive_int(value):
    try:
        number = int(str(value).split(",")[0])  # OMP_NUM_THREADS may be a per-level list '4,2'
    except ValueError:
        return None
    return number if number > 0 else None


def choose(environ=None, affinity=None, siblings=None):
    """``(threads, source)``: the count MXNet will use given ``environ`` (default ``os.environ``).

    A user's ``MXNET_OMP_MAX_THREADS`` (MXNet reads it first) or ``OMP_NUM_THREADS`` wins; otherwise the
    physical cores of ``affinity``/``siblings`` (see :func:`physical_cores`), source ``'physical cores'``."""
    environ = os.environ if environ is None else environ
    for name in USER_VARIABLES:
        if name in environ:
            number = _positive_int(environ[name])
            if number is not None:
                return number, name
    return physical_cores(affinity, siblings), "physical cores"


def mxnet_default(affinity=None):
    """What MXNet 1.9.1 chooses by itself on x86 with nothing set: half the CPUs of the affinity mask
    (``omp_get_num_procs() >> 1``)."""
    cpus = len(available_cpus() if affinity is None else set(affinity))
    return max(1, cpus // 2)


def configure(environ=None, mxnet_loaded=None, affinity=None, siblings=None):
    """Before mxnet loads: set ``OMP_NUM_THREADS`` to the physical cores unless the user chose; returns the
    count MXNet uses.  If mxnet was imported before this package, warn once (MXNet kept its own default).
    ``affinity``/``siblings`` fake the topology (tests), as in :func:`physical_cores`."""
    environ = os.environ if environ is None else environ
    loaded = "mxnet" in sys.modules if mxnet_loaded is None else mxnet_loaded
    threads, source = choose(environ, affinity, siblings)
    if source == "physical cores":
        if loaded:
            used = mxnet_default(affinity)
            if used != threads and not _state["warned"]:
                _state["warned"] = True
                warnings.warn(f"mxnet was imported before gluon_resnetv2 and runs {used} OpenMP thread(s) on "
                              f"this machine's {threads} physical core(s); import gluon_resnetv2 first or set "
                              f"OMP_NUM_THREADS={threads} before starting Python", RuntimeWarning, stacklevel=3)
            threads, source = used, "mxnet default (mxnet imported first)"
        else:
            environ["OMP_NUM_THREADS"] = str(threads)
    _state.update(threads=threads, source=source)
    return threads


def in_use():
    """``{'threads': n, 'source': ...}``: the OpenMP thread count this process's MXNet runs with, and why
    (recorded in every run's ``config.json`` and in ``bench.json``)."""
    if _state["threads"] is None:
        threads, source = choose()
        _state.update(threads=threads, source=source)
    return {"threads": _state["threads"], "source": _state["source"]}
