"""The CPU: how many OpenMP threads MXNet runs (one per *physical* core by default, chosen before mxnet
loads), its vector units and its peak floating-point rate.

MXNet 1.9.1 fixes its thread count when libmxnet loads (``src/engine/openmp.cc``): ``MXNET_OMP_MAX_THREADS``
if set, else ``OMP_NUM_THREADS`` if set, else ``omp_get_num_procs() / 2`` on x86, which assumes two hardware
threads per core and so leaves half of a machine with one thread per core idle.  Its C API
``MXSetNumOMPThreads`` changes only the calling thread (no effect on the engine's workers), so the count
has to be in the environment before the first ``import mxnet``; :func:`configure` (run by
:mod:`gluon_resnetv2._compat`) puts the number of physical cores this process may run on there, unless the
user chose already.  Hyper-threads are not counted: two threads sharing a core's vector units do not make
convolutions faster and add a barrier partner that is often descheduled.

:func:`peak` is cores x clock x float32 FLOP per cycle, from ``/proc/cpuinfo`` (flags, vendor, family) and
the cpufreq maximum where the kernel exposes one; what cannot be read from there (how many FMA units a core
has, how wide its datapath is) is an assumption that :func:`peak` names in its result.
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
                warnings.warn(
                    f"mxnet was imported before gluon_resnetv2 and runs {used} OpenMP thread(s) on "
                    f"this machine's {threads} physical core(s); import gluon_resnetv2 first or set "
                    f"OMP_NUM_THREADS={threads} before starting Python",
                    RuntimeWarning,
                    stacklevel=3,
                )
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


# --- vector units and peak --------------------------------------------------------------------------

CPUINFO = "/proc/cpuinfo"


def cpu_info(path=CPUINFO):
    """The first processor's ``/proc/cpuinfo`` fields as a dict (``flags`` as a set); ``{}`` off Linux."""
    info = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    if info:
                        break
                    continue
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        return {}
    info["flags"] = set(info.get("flags", "").split())
    return info


def has_avx512_bf16(info=None):
    """True when the CPU has AVX-512 BF16 (what oneDNN's bfloat16 convolutions need to beat float32)."""
    return "avx512_bf16" in (cpu_info() if info is None else info).get("flags", set())


def clock_ghz(info=None, root=SYSFS_CPU):
    """``(GHz, source)``: the cpufreq maximum of cpu0 if the kernel has one, else ``cpu MHz`` of cpuinfo
    (a virtual machine's nominal clock), else None."""
    try:
        with open(os.path.join(root, "cpu0", "cpufreq", "cpuinfo_max_freq")) as f:
            return int(f.read()) / 1e6, "cpufreq cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    info = cpu_info() if info is None else info
    try:
        return float(info["cpu MHz"]) / 1e3, "/proc/cpuinfo cpu MHz"
    except (KeyError, ValueError):
        return None, "unknown"


def vector_units(info=None):
    """``(float32 FLOP per cycle per core, description)`` from the instruction-set flags and the vendor.

    Assumptions (not readable from cpuinfo): two FMA pipes per core from Haswell / Zen 2 on; AVX-512 pipes
    are 512 bits wide on Intel and on AMD Zen 5 (family 26), 256 bits on Zen 4 (family 25: AVX-512
    instructions run in two halves)."""
    info = cpu_info() if info is None else info
    flags = info.get("flags", set())
    amd = info.get("vendor_id") == "AuthenticAMD"
    try:
        family = int(info.get("cpu family", 0))
    except ValueError:
        family = 0
    if "avx512f" in flags and "fma" in flags:
        if amd and family < 26:
            return 32, "AVX-512 on 2 x 256-bit FMA pipes (AMD Zen 4: 512-bit operations in two halves)"
        return 64, "AVX-512: 2 x 512-bit FMA units (assumed; some Intel parts have 1)"
    if "avx2" in flags and "fma" in flags:
        return 32, "AVX2: 2 x 256-bit FMA units (assumed)"
    if "avx" in flags:
        return 16, "AVX: 256-bit add + multiply, no FMA"
    if "sse2" in flags:
        return 8, "SSE2: 128-bit add + multiply"
    return 2, "scalar (no vector unit recognised)"


def peak(threads=None, info=None, cores=None):
    """This CPU's float32 peak as a dict: ``gflops`` (all physical cores available to the process),
    ``gflops_used`` (``threads`` of them, default the count MXNet runs), with the parts and assumptions.
    ``None`` GFLOP/s where the clock is unknown."""
    info = cpu_info() if info is None else info
    cores = physical_cores() if cores is None else cores
    threads = in_use()["threads"] if threads is None else threads
    ghz, clock_source = clock_ghz(info)
    per_cycle, vector = vector_units(info)
    used = min(threads, cores)
    total = None if ghz is None else cores * ghz * per_cycle
    return {
        "cores": cores,
        "threads": threads,
        "clock_ghz": ghz,
        "clock_source": clock_source,
        "flop_per_cycle": per_cycle,
        "vector_units": vector,
        "gflops": total,
        "gflops_used": None if total is None else used * ghz * per_cycle,
        "bf16_note": "AVX-512 BF16 dot products (vdpbf16ps) do 2 multiply-adds per float32 lane: bfloat16 peak 2x"
        if has_avx512_bf16(info)
        else "no AVX-512 BF16",
    }


def describe_peak(p):
    """One line: ``2 cores x 2.60 GHz (source) x 32 FLOP/cycle (units) = 166 GFLOP/s``."""
    gflops = "unknown" if p["gflops"] is None else f"{p['gflops']:.0f} GFLOP/s"
    ghz = "?" if p["clock_ghz"] is None else f"{p['clock_ghz']:.2f}"
    return (
        f"peak fp32: {p['cores']} cores x {ghz} GHz ({p['clock_source']}) x {p['flop_per_cycle']} FLOP/cycle "
        f"({p['vector_units']}) = {gflops}; {p['threads']} thread(s) used: "
        + ("unknown" if p["gflops_used"] is None else f"{p['gflops_used']:.0f} GFLOP/s")
    )
