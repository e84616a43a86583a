"""The GPU preflight: can this MXNet build run on the requested GPUs, and can its runtime fusion?

Kernels: the pip wheels of MXNet 1.9.1 (``mxnet-cu112``, ``mxnet-cu117``) contain kernels for sm_50,
sm_60, sm_70, sm_80 and sm_86 and no PTX, so they cannot run on Hopper (sm_90: H100, H200) or newer GPUs,
and the plain ``mxnet`` wheel has no CUDA at all.  Rather than failing deep inside the first convolution
with "no kernel image is available", :func:`preflight_gpus` stops before training with a message that
names the GPU, its architecture, the architectures in the build and what to install.  The decision itself
is the pure function :func:`check_gpu_support`, tested with fake inputs.

Fusion: on a GPU MXNet fuses chains of pointwise operators (the BN-ReLU and the residual addition of a
pre-activation unit, Fig. 4(e)) into kernels that it compiles at run time with NVRTC for
``--gpu-architecture=compute_<major><minor>`` of the GPU it runs on (``src/operator/fusion/fused_op.cu``),
and loads the PTX through the driver.  An NVRTC that does not know the GPU's architecture (compute_89,
Ada: L4, L40, RTX 4090, needs CUDA 11.8) or a driver older than the NVRTC (the driver cannot load newer
PTX) stops the first training step with "NVRTC Compilation failed. Please set environment variable
MXNET_USE_FUSION to 0", although the build's sm_86 kernels run on the GPU.  :func:`fusion_problem`
decides (pure), :func:`configure_fusion` sets ``MXNET_USE_FUSION=0`` in this process's environment (read
by MXNet when it builds a graph, and inherited by child processes) unless the user set it.
"""

import collections
import ctypes
import os
import shutil
import subprocess
import warnings
from importlib import metadata

import mxnet as mx

#: A visible GPU: index, marketing name, compute capability as ``(major, minor)``.
GpuInfo = collections.namedtuple("GpuInfo", "index name capability")

#: Kernel architectures of known MXNet builds (compute capabilities as major*10+minor), no PTX.
KNOWN_BUILD_ARCHS = {
    ("1.9.1", "cu112"): (50, 60, 70, 80, 86),
    ("1.9.1", "cu117"): (50, 60, 70, 80, 86),
    ("1.9.1", "cu110"): (50, 60, 70, 80),
}

#: Environment variable overriding the detected build architectures, e.g. ``"50,60,70,80,86,90"``
#: (a source build), optionally with ``+ptx`` to say the build also carries PTX for its newest arch.
ARCHS_ENV = "GLUON_RESNETV2_CUDA_ARCHS"
ARCHS_FORM = "comma-separated compute capabilities such as '50,60,70,80,86' or 'sm_80,9.0+ptx'"

#: MXNet's switch for its runtime pointwise fusion on GPUs (on unless set to 0).
FUSION_ENV = "MXNET_USE_FUSION"
#: The first CUDA (NVRTC) version that compiles for ``compute_XY``; older capabilities need nothing newer
#: than any NVRTC 11.  A capability newer than the table is treated as unknown to every NVRTC here.
NVRTC_FIRST = {80: (11, 0), 86: (11, 1), 87: (11, 4), 89: (11, 8), 90: (11, 8)}
#: What NVRTC is assumed to be when it cannot be asked: the oldest that has the soname MXNet links.
NVRTC_ASSUMED = (11, 2)

_ARCH_NAMES = [
    ((3, 0), "Kepler"),
    ((5, 0), "Maxwell"),
    ((6, 0), "Pascal"),
    ((7, 0), "Volta"),
    ((7, 5), "Turing"),
    ((8, 0), "Ampere"),
    ((8, 9), "Ada Lovelace"),
    ((9, 0), "Hopper"),
    ((10, 0), "Blackwell"),
]


def architecture_name(capability):
    """Marketing name of a compute capability ``(major, minor)``: (9, 0) -> "Hopper"."""
    name = "unknown"
    for cap, label in _ARCH_NAMES:
        if tuple(capability) >= cap:
            name = label
    return name


def sm(capability):
    """``(9, 0)`` -> ``"sm_90"``; also accepts the integer form ``90``."""
    if isinstance(capability, int):
        return f"sm_{capability}"
    return f"sm_{capability[0]}{capability[1]}"


def _cap(capability):
    return capability[0] * 10 + capability[1]


def check_gpu_support(requested, cuda_enabled, gpus, build_archs, build_ptx=(), mxnet_version="1.9.1"):
    """Decide whether this MXNet can train on the ``requested`` GPU indices; pure function.

    ``cuda_enabled``: ``mx.runtime.Features().is_enabled('CUDA')``; ``gpus``: the visible
    :class:`GpuInfo` s; ``build_archs``: the compute capabilities (``major*10+minor``) the build has
    kernels for, or ``None`` when unknown; ``build_ptx``: those it carries PTX for (JIT-compiled for any
    newer GPU).  A cubin for sm_XY runs on sm_XZ with Z >= Y (same major).  Returns ``None`` when training
    can go ahead, else a message (a string) naming the GPU, its architecture, the build's architectures and
    what to install.
    """
    if not cuda_enabled:
        return (
            f"--gpus {','.join(map(str, requested))}: the installed MXNet {mxnet_version} was built without "
            "CUDA (the pip package 'mxnet' is CPU-only). Install the CUDA build with its libraries: "
            "pip install '.[cu112]' in this repository (mxnet-cu112 and the CUDA 11 runtime wheels; GPUs "
            "from Maxwell to Ada, sm_50-sm_89; docs/guides/gpu.md), or train on the CPU with --cpus N."
        )
    by_index = {g.index: g for g in gpus}
    missing = [i for i in requested if i not in by_index]
    if missing:
        seen = ", ".join(f"{g.index} ({g.name})" for g in gpus) or "none"
        return (
            f"--gpus asks for GPU {', '.join(map(str, missing))} but the visible GPUs are: {seen} "
            "(check CUDA_VISIBLE_DEVICES)."
        )
    if build_archs is None:
        return None
    archs = sorted(int(a) for a in build_archs)
    ptx = sorted(int(a) for a in build_ptx)
    for index in requested:
        gpu = by_index[index]
        major, minor = gpu.capability
        cap = major * 10 + minor
        cubin_ok = any(a // 10 == major and a % 10 <= minor for a in archs)
        ptx_ok = any(a <= cap for a in ptx)
        if cubin_ok or ptx_ok:
            continue
        arch_list = ", ".join(sm(a) for a in archs) or "none"
        ptx_text = ("PTX for " + ", ".join(sm(a) for a in ptx)) if ptx else "no PTX"
        advice = (
            "MXNet 1.9.1 publishes no wheel for this GPU: build MXNet from source with CUDA >= 11.8 "
            f'and MXNET_CUDA_ARCH including {major}.{minor} (cmake -DMXNET_CUDA_ARCH="{major}.{minor}"), '
            "or use an NVIDIA NGC MXNet container that supports it, or train on the CPU with --cpus N; "
            f"a source build's architectures can be declared with "
            f'{ARCHS_ENV}="{",".join(map(str, archs + [cap]))}".'
        )
        if cap < min(archs or [0]):
            advice = (
                "this GPU is older than the oldest architecture in the build: use an MXNet build that "
                f"includes {sm(cap)} (e.g. a source build), or train on the CPU with --cpus N."
            )
        return (
            f"GPU {index} ({gpu.name}) has compute capability {major}.{minor} ({sm(cap)}, "
            f"{architecture_name(gpu.capability)}), but the installed MXNet {mxnet_version} contains kernels "
            f"only for {arch_list} and {ptx_text}, so it cannot run on this GPU. {advice}"
        )
    return None


def mxnet_distributions():
    """``[(version, variant)]`` of the installed MXNet distributions (``mxnet`` -> '', ``mxnet-cu112`` -> 'cu112')."""
    found = []
    for dist in metadata.distributions():
        name = (dist.metadata.get("Name") or "").lower().replace("_", "-")
        if name == "mxnet" or name.startswith("mxnet-cu"):
            found.append((dist.version, name[len("mxnet-") :] if name != "mxnet" else ""))
    return found


def installed_mxnet_variant():
    """``("1.9.1", "cu112")`` from the installed distribution's name (``mxnet-cu112``), or the version and ''.

    With both ``mxnet`` and ``mxnet-cu112`` installed (the ``cu112`` extra next to the base dependency) they
    share the ``mxnet`` folder: the build that is loaded (CUDA or not) tells which one's files are there.
    """
    found = mxnet_distributions()
    if len(found) > 1:
        cuda = cuda_enabled()
        found = [item for item in found if bool(item[1]) == cuda] or found
    return found[0] if found else (mx.__version__, "")


def parse_archs(text):
    """``"sm_80,9.0+ptx"`` -> ``((80, 90), (90,))``; ValueError naming :data:`ARCHS_ENV` otherwise."""
    archs, ptx = [], []
    for part in text.split(","):
        item = part.strip().lower()
        if not item:
            continue
        number = item.removeprefix("sm_").removesuffix("+ptx").replace(".", "")
        if not number.isdigit() or not 2 <= len(number) <= 3:
            raise ValueError(
                f"{ARCHS_ENV}={text!r}: cannot read {part.strip()!r}; expected {ARCHS_FORM} "
                "(+ptx marks the architectures the build also has PTX for)"
            )
        archs.append(int(number))
        if item.endswith("+ptx"):
            ptx.append(int(number))
    if not archs:
        raise ValueError(f"{ARCHS_ENV}={text!r} names no architecture; expected {ARCHS_FORM}")
    return tuple(archs), tuple(ptx)


def build_cuda_archs():
    """``(archs, ptx)`` of the installed MXNet, or ``(None, ())`` when unknown.

    From :data:`ARCHS_ENV` when set, else from :data:`KNOWN_BUILD_ARCHS` for the pip wheels.
    """
    override = os.environ.get(ARCHS_ENV)
    if override:
        return parse_archs(override)
    return KNOWN_BUILD_ARCHS.get(installed_mxnet_variant(), None), ()


# --------------------------------------------------------------------------------------------- the driver


def _libcuda():
    for libname in ("libcuda.so.1", "libcuda.so"):
        try:
            return ctypes.CDLL(libname)
        except OSError:
            continue
    return None


def _version_pair(number):
    return (number // 1000, (number % 1000) // 10)


def driver_cuda_version():
    """The CUDA version the driver supports, ``(12, 2)``, or None without a driver."""
    cuda = _libcuda()
    version = ctypes.c_int()
    if cuda is None or cuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None
    return _version_pair(version.value)


def nvrtc_version():
    """``(major, minor)`` of the NVRTC that MXNet loads (the same soname, so the same library), or None."""
    for libname in ("libnvrtc.so.11.2", "libnvrtc.so.12", "libnvrtc.so"):
        try:
            nvrtc = ctypes.CDLL(libname)
        except OSError:
            continue
        major, minor = ctypes.c_int(), ctypes.c_int()
        if nvrtc.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)) == 0:
            return (major.value, minor.value)
    return None


def _query_gpus_libcuda():
    """Visible GPUs through the CUDA driver API (libcuda, part of the driver); [] when unavailable."""
    cuda = _libcuda()
    if cuda is None or cuda.cuInit(0) != 0:
        return []
    count = ctypes.c_int()
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return []
    gpus = []
    for index in range(count.value):
        device = ctypes.c_int()
        if cuda.cuDeviceGet(ctypes.byref(device), index) != 0:
            continue
        name = ctypes.create_string_buffer(256)
        cuda.cuDeviceGetName(name, 256, device)
        major, minor = ctypes.c_int(), ctypes.c_int()
        # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76 (stable across CUDA versions)
        cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, device)
        cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, device)
        gpus.append(GpuInfo(index, name.value.decode(errors="replace"), (major.value, minor.value)))
    return gpus


def parse_nvidia_smi(text):
    """Parse ``nvidia-smi --query-gpu=index,name,compute_cap --format=csv,noheader`` output."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3:
            continue
        try:
            major, minor = parts[-1].split(".")
            gpus.append(GpuInfo(int(parts[0]), ",".join(parts[1:-1]), (int(major), int(minor))))
        except ValueError:
            continue
    return gpus


def _query_gpus_nvidia_smi():
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        text = subprocess.run(
            [exe, "--query-gpu=index,name,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(text)


def query_gpus():
    """The visible GPUs as :class:`GpuInfo` (driver API first, nvidia-smi as fallback)."""
    return _query_gpus_libcuda() or _query_gpus_nvidia_smi()


def cuda_enabled():
    """Whether the installed MXNet was built with CUDA."""
    return mx.runtime.Features().is_enabled("CUDA")


# --------------------------------------------------------------------------------------------- fusion


def fusion_problem(gpus, nvrtc=None, driver=None):
    """Why MXNet's runtime fusion would fail on one of ``gpus`` (:class:`GpuInfo`), or None; pure.

    ``nvrtc``: the NVRTC version (None: unknown, taken as :data:`NVRTC_ASSUMED`); ``driver``: the CUDA
    version of the driver (None: unknown, not checked).
    """
    known = nvrtc or NVRTC_ASSUMED
    shown = f"{known[0]}.{known[1]}" + ("" if nvrtc else " or older (its version could not be read)")
    for gpu in gpus:
        cap = _cap(gpu.capability)
        if cap == 0:
            continue  # capability unknown
        need = NVRTC_FIRST.get(cap, (11, 0) if cap < min(NVRTC_FIRST) else None)
        if need is None or need > known:
            wanted = f"NVRTC >= {need[0]}.{need[1]}" if need else "an NVRTC newer than any CUDA 11"
            return (
                f"GPU {gpu.index} ({gpu.name}, {sm(gpu.capability)}) needs {wanted} for MXNet's runtime "
                f"fusion (it compiles for compute_{cap}), and the NVRTC here is {shown}"
            )
    if nvrtc and driver and driver < nvrtc:
        return (
            f"the driver supports CUDA {driver[0]}.{driver[1]} but NVRTC {nvrtc[0]}.{nvrtc[1]} writes PTX "
            "that only a newer driver can load"
        )
    return None


def configure_fusion(gpus, env=None, nvrtc=None, driver=None):
    """Turn MXNet's runtime fusion off (``MXNET_USE_FUSION=0`` in ``env``, default ``os.environ``) when
    :func:`fusion_problem` finds one and the user has not set the variable; returns the one-line note
    to show, or None."""
    env = os.environ if env is None else env
    problem = fusion_problem(gpus, nvrtc, driver)
    if problem is None or FUSION_ENV in env:
        return None
    env[FUSION_ENV] = "0"
    return (
        f"{FUSION_ENV}=0 set: {problem}; MXNet's pointwise-operator fusion is off (slower, same results). "
        f"To keep it: pip install nvidia-cuda-nvrtc-cu11==11.8.89 and a driver >= 520, or set {FUSION_ENV}=1"
    )


def preflight_gpus(gpus):
    """Stop (RuntimeError) before training on GPUs this MXNet cannot use (:func:`check_gpu_support`), then
    switch off the runtime fusion where it would fail (:func:`configure_fusion`, one warning line)."""
    from .devices import parse_gpus  # devices re-exports this module

    requested = parse_gpus(gpus)
    enabled = cuda_enabled()
    visible = query_gpus() if enabled else []
    if enabled and not visible:
        try:
            count = mx.context.num_gpus()
        except mx.base.MXNetError:
            count = 0
        visible = [GpuInfo(i, f"GPU {i}", (0, 0)) for i in range(count)]
        archs, ptx = None, ()  # capability unknown: let MXNet try
    else:
        archs, ptx = build_cuda_archs()
    message = check_gpu_support(requested, enabled, visible, archs, ptx, mx.__version__)
    cuda_dists = [variant for _, variant in mxnet_distributions() if variant]
    if not enabled and cuda_dists:
        message = (
            f"--gpus {','.join(map(str, requested))}: mxnet-{cuda_dists[0]} is installed, but the CPU-only mxnet's "
            "files were installed over it (both packages share the 'mxnet' folder); restore the CUDA build with "
            f"pip install --force-reinstall --no-deps mxnet-{cuda_dists[0]}==1.9.1 (docs/guides/gpu.md)"
        )
    if message:
        raise RuntimeError(message)
    used = [g for g in visible if g.index in requested]
    note = configure_fusion(used, nvrtc=nvrtc_version(), driver=driver_cuda_version())
    if note:
        warnings.warn(note, stacklevel=2)
    return note
