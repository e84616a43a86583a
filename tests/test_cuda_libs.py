"""GPU set-up on a driver-only machine: the ``cu112`` extra's NVIDIA wheels cover what libmxnet.so needs,
and ``import gluon_resnetv2`` makes ``import mxnet`` (mxnet-cu112) find them.

The ELF reading and the wheel lookup run everywhere (on fakes).  The installation checks need a Python with
mxnet-cu112 and the extra's wheels: the current one, or the one named by ``GLUON_RESNETV2_CUDA_PYTHON``
(a throwaway venv, see docs/guides/gpu.md); they are skipped without it.  No GPU and no driver are needed:
``libcuda.so.1`` is a stub compiled here with the driver functions libmxnet.so links (every call
answers "no device").
"""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from gluon_resnetv2 import cuda_libs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The driver functions libmxnet.so of mxnet-cu112 1.9.1 imports (nm -D --undefined-only), plus those the
#: preflight calls through ctypes.
DRIVER_FUNCTIONS = (
    "cuDeviceGet cuDevicePrimaryCtxRetain cuGetErrorString cuGraphKernelNodeGetParams cuGraphNodeGetType "
    "cuLaunchKernel cuModuleGetFunction cuModuleLoadData cuModuleLoadDataEx cuModuleUnload cuInit "
    "cuDeviceGetCount cuDriverGetVersion cuDeviceGetName cuDeviceGetAttribute"
).split()


def _cuda_python():
    candidates = [os.environ.get("GLUON_RESNETV2_CUDA_PYTHON"), sys.executable]
    for python in filter(None, candidates):
        probe = "import importlib.metadata as m; m.version('mxnet-cu112'); m.version('nvidia-cuda-runtime-cu11')"
        if subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0:
            return python
    return None


@pytest.fixture(scope="module")
def cuda_python():
    python = _cuda_python()
    if python is None:
        pytest.skip(
            "needs mxnet-cu112 and the cu112 extra's wheels (or GLUON_RESNETV2_CUDA_PYTHON naming such a Python)"
        )
    return python


@pytest.fixture(scope="module")
def stub_driver(tmp_path_factory):
    """A folder with a stub ``libcuda.so.1`` (no GPU: every driver call returns CUDA_ERROR_NO_DEVICE)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc to build the stub libcuda.so.1")
    folder = tmp_path_factory.mktemp("driver")
    source = folder / "stub.c"
    source.write_text("".join(f"int {name}(void) {{ return 100; }}\n" for name in DRIVER_FUNCTIONS))
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", str(folder / "libcuda.so.1"), str(source)],
        check=True,
        timeout=60,
    )
    return str(folder)


def _run(python, code, driver_dir, **extra):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1", LD_LIBRARY_PATH=driver_dir, **extra)
    return subprocess.run([python, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300)


# ------------------------------------------------------------------------------------------ everywhere


def test_elf_needed_reads_a_real_library():
    libmxnet = cuda_libs.libmxnet_path()
    needed = cuda_libs.elf_needed(libmxnet)
    assert libmxnet and "libc.so.6" in needed and "libgomp.so.1" in needed  # what readelf -d lists
    assert cuda_libs.elf_needed(__file__) == []  # not an ELF file


def test_locate_finds_wheel_libraries_in_dependency_order(tmp_path, monkeypatch):
    for soname, folder in cuda_libs.WHEEL_DIRS.items():
        os.makedirs(tmp_path / "nvidia" / folder / "lib", exist_ok=True)
        if soname != "libnccl.so.2":
            (tmp_path / "nvidia" / folder / "lib" / soname).write_bytes(b"")
    monkeypatch.setattr(cuda_libs, "wheel_roots", lambda: [str(tmp_path / "nvidia")])
    found = cuda_libs.locate(["libc.so.6", "libcusolver.so.11", "libcuda.so.1", "libcublas.so.11", "libnccl.so.2"])
    # the implied libraries come first (cuBLASLt before cuBLAS, cuSPARSE before cuSOLVER); the driver is no wheel
    assert list(found) == [
        "libcublasLt.so.11",
        "libcublas.so.11",
        "libcusparse.so.11",
        "libcusolver.so.11",
        "libnccl.so.2",
    ]
    assert found["libnccl.so.2"] is None and found["libcublas.so.11"] == str(
        tmp_path / "nvidia" / "cublas" / "lib" / "libcublas.so.11"
    )
    assert cuda_libs.library_dirs(found)[0] == str(tmp_path / "nvidia" / "cublas" / "lib")


def test_cpu_build_preloads_nothing():
    assert "libcudart.so.11.0" not in cuda_libs.elf_needed(cuda_libs.libmxnet_path())
    assert cuda_libs.locate() == {}


# ------------------------------------------------------------------------------------------ mxnet-cu112 installed


@pytest.mark.slow
def test_every_library_of_libmxnet_resolves_from_the_wheels(cuda_python, stub_driver):
    code = """
        import subprocess, sys
        from gluon_resnetv2 import cuda_libs   # imports mxnet-cu112 too: the preload must come first
        found = cuda_libs.locate()
        missing = [name for name, path in found.items() if path is None]
        assert not missing, missing
        path = ":".join(cuda_libs.library_dirs(found) + [sys.argv[1] if len(sys.argv) > 1 else ""])
        ldd = subprocess.run(["ldd", cuda_libs.libmxnet_path()], capture_output=True, text=True,
                             env={"LD_LIBRARY_PATH": path + ":" + "DRIVER"}).stdout
        print(ldd)
    """.replace("DRIVER", stub_driver)
    result = _run(cuda_python, code, stub_driver)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if "=>" in line]
    assert not [line for line in lines if "not found" in line]
    for soname in ("libcudart.so.11.0", "libcublas.so.11", "libcudnn.so.8", "libnvrtc.so.11.2", "libnccl.so.2"):
        assert any(line.strip().startswith(soname) and "/nvidia/" in line for line in lines), soname


@pytest.mark.slow
def test_import_mxnet_cu112_on_a_driver_only_machine(cuda_python, stub_driver):
    code = """
        import gluon_resnetv2, mxnet as mx
        from gluon_resnetv2 import cuda_libs
        features = mx.runtime.Features()
        print(sorted(k for k in ("CUDA", "CUDNN", "NCCL", "CUDA_RTC") if features.is_enabled(k)))
        loaded = cuda_libs.loaded_libraries()
        print(sorted(name for name, path in loaded.items() if "/nvidia/" in path))
        print(float((mx.nd.ones((2, 2)) * 3).sum().asscalar()))
    """
    result = _run(cuda_python, code, stub_driver)
    assert result.returncode == 0, result.stderr[-3000:]
    features, from_wheels, total = result.stdout.strip().splitlines()[-3:]
    assert features == "['CUDA', 'CUDA_RTC', 'CUDNN', 'NCCL']"
    assert "'libcudart.so.11.0'" in from_wheels and "'libcudnn.so.8'" in from_wheels
    assert total == "12.0"
    # without the preload (mxnet first) the same machine cannot import it: what the extra fixes
    bare = _run(cuda_python, "import mxnet", stub_driver)
    assert bare.returncode != 0 and "cannot open shared object file" in bare.stderr
