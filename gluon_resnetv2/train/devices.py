"""Devices: parsing ``--cpus`` / ``--gpus``, splitting a batch over them, and the GPU preflight.

The paper trains CIFAR on 2 GPUs x 64 images and ImageNet on 8 GPUs; here the global mini-batch is split
over the contexts with :func:`mxnet.gluon.utils.split_and_load`.  ``--cpus N`` makes N CPU contexts
(``mx.cpu(0) ... mx.cpu(N-1)``), which exercises exactly the multi-device code path on a machine without
a GPU.

GPU preflight: the pip wheels of MXNet 1.9.1 (``mxnet-cu112``, ``mxnet-cu117``) contain kernels for
sm_50, sm_60, sm_70, sm_80 and sm_86 and no PTX, so they cannot run on Hopper (sm_90: H100, H200) or
newer GPUs, and the plain ``mxnet`` wheel has no CUDA at all.  Rather than failing deep inside the first
convolution with "no kernel image is available", :func:`preflight_gpus` stops before training with a
message that names the GPU, its architecture, the architectures in the build and what to install.  The
decision itself is the pure function :func:`check_gpu_support`, tested with fake inputs.
"""

import collections
import ctypes
import os
import shutil
import subprocess
import warnings
from importlib import metadata

import mxnet as mx
from mxnet import gluon

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


# --------------------------------------------------------------------------------------------- contexts


def parse_gpus(text):
    """``"0,1,2,3"`` (or a list) -> ``[0, 1, 2, 3]``; ValueError for anything that is not indices."""
    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [part.strip() for part in str(text).split(",") if part.strip() != ""]
    try:
        gpus = [int(item) for item in items]
    except ValueError:
        raise ValueError(f"--gpus takes comma-separated GPU indices such as 0,1,2,3; got {text!r}") from None
    if not gpus:
        raise ValueError("--gpus needs at least one GPU index, e.g. --gpus 0")
    if any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise ValueError(f"--gpus takes distinct non-negative indices; got {text!r}")
    return gpus


def make_contexts(cpus=None, gpus=None):
    """The MXNet contexts of ``--cpus N`` or ``--gpus LIST`` (default: one CPU context)."""
    if cpus is not None and gpus is not None:
        raise ValueError("give either --cpus or --gpus, not both")
    if gpus is not None:
        return [mx.gpu(i) for i in parse_gpus(gpus)]
    count = 1 if cpus is None else int(cpus)
    if count < 1:
        raise ValueError(f"--cpus must be at least 1, got {cpus}")
    return [mx.cpu(i) for i in range(count)]


def check_batch_split(batch_size, num_devices, num_workers=1):
    """Per-worker batch of a global ``batch_size``; ValueError unless it splits sensibly.

    The global batch must divide evenly over the workers (each worker's loader yields ``batch/workers``
    images and the kvstore sums the gradients of all of them) and give every device at least one image.
    """
    if batch_size % num_workers:
        raise ValueError(f"--batch-size {batch_size} does not divide evenly over {num_workers} workers")
    per_worker = batch_size // num_workers
    if per_worker < num_devices:
        raise ValueError(
            f"--batch-size {batch_size} gives {per_worker} images per worker, fewer than its "
            f"{num_devices} devices: every device needs at least one image"
        )
    if per_worker % num_devices:
        # split_batch slices as gluon.utils.split_data does: the first (size % devices) get one more.
        each, extra = divmod(per_worker, num_devices)
        sizes = "+".join(str(each + (i < extra)) for i in range(num_devices))
        warnings.warn(
            f"--batch-size {batch_size} does not split evenly over {num_devices} devices: each iteration "
            f"is split {sizes} images{' per worker' if num_workers > 1 else ''} (BatchNorm statistics "
            f"come from slices of different sizes)",
            stacklevel=2,
        )
    return per_worker


def split_batch(data, label, contexts):
    """Split a batch over ``contexts`` (uneven slices allowed); fewer images than devices use fewer devices."""

    n = data.shape[0]
    ctxs = contexts[: max(1, min(len(contexts), n))]
    if len(ctxs) == 1:
        return [data.as_in_context(ctxs[0])], [label.as_in_context(ctxs[0])]
    return (
        gluon.utils.split_and_load(data, ctxs, even_split=False),
        gluon.utils.split_and_load(label, ctxs, even_split=False),
    )


# --------------------------------------------------------------------------------------------- preflight


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
            "CUDA (the pip package 'mxnet' is CPU-only). Install a CUDA build, e.g. "
            "'pip install mxnet-cu112==1.9.1' (GPUs from Maxwell to Ampere, sm_50-sm_86), or train on the "
            "CPU with --cpus N."
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


def _installed_mxnet_variant():
    """``("1.9.1", "cu112")`` from the installed distribution's name (``mxnet-cu112``), or the version and ''."""
    for dist in metadata.distributions():
        name = (dist.metadata.get("Name") or "").lower()
        if name == "mxnet" or name.startswith("mxnet-cu") or name.startswith("mxnet_cu"):
            variant = name.replace("_", "-")[len("mxnet-") :] if name != "mxnet" else ""
            return dist.version, variant
    return mx.__version__, ""


def build_cuda_archs():
    """``(archs, ptx)`` of the installed MXNet, or ``(None, ())`` when unknown.

    From :data:`ARCHS_ENV` when set, else from :data:`KNOWN_BUILD_ARCHS` for the pip wheels.
    """
    override = os.environ.get(ARCHS_ENV)
    if override:
        archs, ptx = [], []
        for part in override.split(","):
            part = part.strip().lower().replace("sm_", "").replace(".", "")
            if not part:
                continue
            if part.endswith("+ptx"):
                part = part[:-4]
                ptx.append(int(part))
            archs.append(int(part))
        return tuple(archs), tuple(ptx)
    version, variant = _installed_mxnet_variant()
    return KNOWN_BUILD_ARCHS.get((version, variant), None), ()


def _query_gpus_libcuda():
    """Visible GPUs through the CUDA driver API (libcuda, part of the driver); [] when unavailable."""
    for libname in ("libcuda.so.1", "libcuda.so"):
        try:
            cuda = ctypes.CDLL(libname)
            break
        except OSError:
            continue
    else:
        return []
    if cuda.cuInit(0) != 0:
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


def preflight_gpus(gpus):
    """Stop (RuntimeError) before training on GPUs this MXNet cannot use; see :func:`check_gpu_support`."""
    requested = parse_gpus(gpus)
    cuda_enabled = mx.runtime.Features().is_enabled("CUDA")
    visible = query_gpus() if cuda_enabled else []
    if cuda_enabled and not visible:
        try:
            count = mx.context.num_gpus()
        except mx.base.MXNetError:
            count = 0
        visible = [GpuInfo(i, f"GPU {i}", (0, 0)) for i in range(count)]
        archs, ptx = None, ()  # capability unknown: let MXNet try
    else:
        archs, ptx = build_cuda_archs()
    message = check_gpu_support(requested, cuda_enabled, visible, archs, ptx, mx.__version__)
    if message:
        raise RuntimeError(message)
