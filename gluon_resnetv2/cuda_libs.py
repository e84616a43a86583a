"""The CUDA libraries of ``mxnet-cu112`` from NVIDIA's pip wheels (the ``cu112`` extra), loaded before MXNet.

``libmxnet.so`` of mxnet-cu112 1.9.1 needs (its ELF ``NEEDED`` entries) libcudart.so.11.0,
libcublas.so.11, libcusolver.so.11, libcurand.so.10, libcufft.so.10, libnvrtc.so.11.2, libcudnn.so.8,
libnccl.so.2, libnvToolsExt.so.1 and the driver's libcuda.so.1, and looks for them only on the library
path (its RPATH is its own directory), so on a machine with only the NVIDIA driver ``import mxnet`` fails.
NVIDIA's wheels (``nvidia-cuda-runtime-cu11`` ...) put them under ``site-packages/nvidia/<name>/lib``; as
PyTorch does with the same wheels, :func:`preload` loads those that ``libmxnet.so`` names with
``RTLD_GLOBAL`` before mxnet is imported (``gluon_resnetv2._compat`` calls it first), and the dynamic loader
then finds them already loaded by their sonames.  ``libcuda.so.1`` is the driver's and never a wheel.

A plain ``python -c "import mxnet"`` does not go through this module: import ``gluon_resnetv2`` first, or
put :func:`library_dirs` on ``LD_LIBRARY_PATH`` (``gluon-resnetv2 check`` prints the line).
"""

import ctypes
import importlib.util
import os
import struct
import sys

#: Directory under ``site-packages/nvidia`` of each soname (the wheel that ships it), dependencies first.
WHEEL_DIRS = {
    "libcudart.so.11.0": "cuda_runtime",
    "libcublasLt.so.11": "cublas",
    "libcublas.so.11": "cublas",
    "libcusparse.so.11": "cusparse",
    "libcusolver.so.11": "cusolver",
    "libcufft.so.10": "cufft",
    "libcurand.so.10": "curand",
    "libnvrtc.so.11.2": "cuda_nvrtc",
    "libcudnn.so.8": "cudnn",
    "libnccl.so.2": "nccl",
    "libnvToolsExt.so.1": "nvtx",
}
#: Loaded with the library that needs them though libmxnet.so does not name them.
IMPLIED = {"libcublas.so.11": ("libcublasLt.so.11",), "libcusolver.so.11": ("libcusparse.so.11",)}
#: Comes with the NVIDIA driver, not with a wheel.
DRIVER_LIBRARY = "libcuda.so.1"


def elf_needed(path):
    """The ``DT_NEEDED`` sonames of the 64-bit ELF file ``path`` (read from its dynamic segment), or []."""
    with open(path, "rb") as handle:
        header = handle.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:
            return []
        order = "<" if header[5] == 1 else ">"
        phoff = struct.unpack_from(order + "Q", header, 32)[0]
        phentsize, phnum = struct.unpack_from(order + "HH", header, 54)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
        loads, dynamic = [], None
        for i in range(phnum):
            kind, _, offset, vaddr, _, filesz = struct.unpack_from(order + "IIQQQQ", table, i * phentsize)
            if kind == 1:  # PT_LOAD
                loads.append((vaddr, offset, filesz))
            elif kind == 2:  # PT_DYNAMIC
                dynamic = (offset, filesz)
        if dynamic is None:
            return []
        handle.seek(dynamic[0])
        needed, strtab, strsz = [], None, 0
        for tag, value in struct.iter_unpack(order + "qQ", handle.read(dynamic[1])):
            if tag == 0:
                break
            if tag == 1:
                needed.append(value)
            elif tag == 5:
                strtab = value
            elif tag == 10:
                strsz = value
        offset = next((o + strtab - v for v, o, size in loads if v <= (strtab or -1) < v + size), None)
        if offset is None:
            return []
        handle.seek(offset)
        strings = handle.read(strsz)
    return [strings[o : strings.index(b"\0", o)].decode() for o in needed]


def libmxnet_path():
    """``site-packages/mxnet/libmxnet.so`` of the installed mxnet (found without importing it), or None."""
    spec = importlib.util.find_spec("mxnet")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "libmxnet.so")
        if os.path.isfile(path):
            return path
    return None


def wheel_roots():
    """The ``site-packages/nvidia`` folders (a namespace package: one per site-packages that has one)."""
    spec = importlib.util.find_spec("nvidia")
    return list(spec.submodule_search_locations or []) if spec else []


def locate(sonames=None):
    """``{soname: path or None}`` for the CUDA libraries ``libmxnet.so`` needs (default: read from it), in
    load order, from NVIDIA's wheels; the driver's libcuda.so.1 is left out."""
    if sonames is None:
        path = libmxnet_path()
        sonames = elf_needed(path) if path else []
    wanted = []
    for name in sonames:
        if name in WHEEL_DIRS:
            wanted += [name, *IMPLIED.get(name, ())]
    roots = wheel_roots()
    found = {}
    for name in sorted(set(wanted), key=list(WHEEL_DIRS).index):
        paths = [os.path.join(root, WHEEL_DIRS[name], "lib", name) for root in roots]
        found[name] = next((p for p in paths if os.path.isfile(p)), None)
    return found


def library_dirs(found=None):
    """The folders of the located libraries (for ``LD_LIBRARY_PATH``)."""
    found = locate() if found is None else found
    return list(dict.fromkeys(os.path.dirname(p) for p in found.values() if p))


def preload():
    """Load the CUDA libraries that libmxnet.so needs from NVIDIA's wheels (``RTLD_GLOBAL``) before mxnet is
    imported; returns the paths loaded ([] with a CPU build, without the wheels, or once mxnet is loaded)."""
    if "mxnet" in sys.modules or not wheel_roots():  # no NVIDIA wheels (a CPU install): libmxnet.so is not read
        return []
    try:
        found = locate()
    except OSError:
        return []
    loaded = []
    for path in found.values():
        if path is None:
            continue  # a library on the system path instead, or missing: import mxnet names it
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        loaded.append(path)
    return loaded


def loaded_libraries():
    """``{soname-like file name: path}`` of the CUDA libraries mapped into this process now (Linux)."""
    names = set(WHEEL_DIRS) | {DRIVER_LIBRARY}
    seen = {}
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                path = line.split(None, 5)[-1].strip() if line.count(" ") >= 5 else ""
                base = os.path.basename(path)
                for name in names:
                    if base.startswith(name):
                        seen.setdefault(name, path)
    except OSError:
        pass
    return seen
