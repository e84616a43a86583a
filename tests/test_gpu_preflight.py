"""The GPU preflight on faked GPUs: the architectures variable, Ada's runtime fusion, ``predict --gpu`` and
``Predictor`` (preflight, ``fuse`` on a GPU).

This machine's MXNet is the CPU build: the tests replace what the preflight asks the build, the driver and
NVRTC (``cuda_enabled``, ``query_gpus``, ``installed_mxnet_variant``, ``nvrtc_version``,
``driver_cuda_version``) with fakes.
"""

import os
import warnings

import mxnet as mx
import numpy as np
import pytest

from gluon_resnetv2 import cli
from gluon_resnetv2.deploy import Predictor, Preprocess, export_bundle
from gluon_resnetv2.nets.cifar import cifar_resnet
from gluon_resnetv2.train import preflight
from gluon_resnetv2.train.preflight import (
    FUSION_ENV,
    GpuInfo,
    build_cuda_archs,
    configure_fusion,
    fusion_problem,
    preflight_gpus,
)

H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", (9, 0))
A100 = GpuInfo(0, "NVIDIA A100-SXM4-40GB", (8, 0))
L4 = GpuInfo(0, "NVIDIA L4", (8, 9))


@pytest.fixture
def fake_gpus(monkeypatch):
    """``fake_gpus(gpu, nvrtc=(11, 2), driver=(12, 2))``: a CUDA build (mxnet-cu112) seeing ``gpu``; the
    user's MXNET_USE_FUSION is unset for the test and restored after it."""
    monkeypatch.setenv(FUSION_ENV, "restored-after-the-test")
    monkeypatch.delenv(FUSION_ENV)
    monkeypatch.delenv(preflight.ARCHS_ENV, raising=False)

    def install(*gpus, nvrtc=(11, 2), driver=(12, 2)):
        monkeypatch.setattr(preflight, "cuda_enabled", lambda: True)
        monkeypatch.setattr(preflight, "query_gpus", lambda: list(gpus))
        monkeypatch.setattr(preflight, "installed_mxnet_variant", lambda: ("1.9.1", "cu112"))
        monkeypatch.setattr(preflight, "nvrtc_version", lambda: nvrtc)
        monkeypatch.setattr(preflight, "driver_cuda_version", lambda: driver)

    return install


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    net = cifar_resnet(8, "basic", classes=10)
    net.initialize()
    net(mx.nd.zeros((1, 1, 8, 8)))
    out = str(tmp_path_factory.mktemp("export") / "tiny")
    export_bundle(net, out, Preprocess((1, 8, 8), [0.0], [1.0], classes=[str(i) for i in range(10)]))
    return out


# ------------------------------------------------------------------------------------------ architectures


def test_archs_variable_in_a_wrong_form_is_one_clear_line(monkeypatch, fake_gpus):
    monkeypatch.setenv("GLUON_RESNETV2_CUDA_ARCHS", "compute_90")
    with pytest.raises(ValueError) as err:
        build_cuda_archs()
    message = str(err.value)
    assert "GLUON_RESNETV2_CUDA_ARCHS='compute_90'" in message and "'50,60,70,80,86'" in message
    assert "\n" not in message and "invalid literal" not in message
    fake_gpus(A100)
    with pytest.raises(ValueError, match="GLUON_RESNETV2_CUDA_ARCHS"):
        preflight_gpus("0")
    monkeypatch.setenv("GLUON_RESNETV2_CUDA_ARCHS", " , ")
    with pytest.raises(ValueError, match="names no architecture"):
        build_cuda_archs()
    monkeypatch.setenv("GLUON_RESNETV2_CUDA_ARCHS", "80,sm_86, 9.0+ptx")
    assert build_cuda_archs() == ((80, 86, 90), (90,))


# ------------------------------------------------------------------------------------------ Ada and fusion


def test_fusion_decision():
    ada = fusion_problem([L4], nvrtc=(11, 2), driver=(12, 2))
    assert "GPU 0 (NVIDIA L4, sm_89)" in ada and "NVRTC >= 11.8" in ada and "compute_89" in ada
    assert "could not be read" in fusion_problem([L4], nvrtc=None)  # unknown NVRTC: the oldest of the soname
    assert fusion_problem([L4], nvrtc=(11, 8), driver=(12, 2)) is None
    assert fusion_problem([A100], nvrtc=(11, 2), driver=None) is None  # sm_80: any NVRTC 11
    assert fusion_problem([GpuInfo(1, "Tesla V100", (7, 0))], nvrtc=(11, 2)) is None
    old_driver = fusion_problem([A100], nvrtc=(11, 8), driver=(11, 4))
    assert "driver supports CUDA 11.4" in old_driver and "NVRTC 11.8" in old_driver
    assert "newer than any CUDA 11" in fusion_problem([GpuInfo(0, "B200", (10, 0))], nvrtc=(11, 8))


def test_fusion_is_switched_off_unless_the_user_set_it():
    env = {}
    note = configure_fusion([L4], env=env, nvrtc=(11, 2), driver=(12, 2))
    assert env == {FUSION_ENV: "0"} and note.startswith("MXNET_USE_FUSION=0 set: GPU 0 (NVIDIA L4")
    assert "\n" not in note and "nvidia-cuda-nvrtc-cu11==11.8.89" in note
    env = {FUSION_ENV: "1"}
    assert configure_fusion([L4], env=env, nvrtc=(11, 2)) is None and env == {FUSION_ENV: "1"}
    env = {}
    assert configure_fusion([A100], env=env, nvrtc=(11, 2)) is None and env == {}


def test_preflight_sets_fusion_off_for_ada_in_this_process(fake_gpus):
    fake_gpus(L4, nvrtc=(11, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        preflight_gpus("0")
    assert os.environ[FUSION_ENV] == "0"  # set before any graph is built; child processes inherit it
    assert [str(w.message).split(":")[0] for w in caught] == ["MXNET_USE_FUSION=0 set"]
    del os.environ[FUSION_ENV]
    fake_gpus(L4, nvrtc=(11, 8))  # the NVRTC of the .[cu112] extra compiles compute_89
    preflight_gpus("0")
    assert FUSION_ENV not in os.environ


# ------------------------------------------------------------------------------------------ predict, Predictor


def test_predictor_runs_the_preflight(prefix, fake_gpus):
    fake_gpus(H100)
    with pytest.raises(RuntimeError, match=r"GPU 0 \(NVIDIA H100 80GB HBM3\).*sm_90.*Hopper"):
        Predictor(prefix, device=0)
    with pytest.raises(RuntimeError, match="GPU 1 but the visible GPUs are: 0"):
        Predictor(prefix, device="gpu:1")


def test_predict_cli_gpu_on_hopper_is_one_line(prefix, fake_gpus, tmp_path, capsys):
    fake_gpus(H100)
    image = tmp_path / "x.npy"
    np.save(image, np.zeros((8, 8), np.uint8))
    assert cli.main(["predict", prefix, str(image), "--gpu", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("gluon-resnetv2 predict: error: GPU 0 (NVIDIA H100") and "sm_90" in err[0]
    )


def test_fuse_on_a_gpu_is_refused(prefix, fake_gpus):
    fake_gpus(A100)  # the preflight passes: the refusal is fuse's
    with pytest.raises(ValueError, match=r"fuse=True \(--fuse\) is oneDNN graph fusion for the CPU.*gpu\(0\)"):
        Predictor(prefix, device=0, fuse=True)


def test_cpu_files_over_the_cuda_wheel_are_named(monkeypatch):
    """mxnet and mxnet-cu112 share the mxnet folder: the CPU build's files loaded with mxnet-cu112 installed."""
    monkeypatch.setattr(preflight, "cuda_enabled", lambda: False)
    monkeypatch.setattr(preflight, "mxnet_distributions", lambda: [("1.9.1", ""), ("1.9.1", "cu112")])
    with pytest.raises(
        RuntimeError, match=r"mxnet-cu112 is installed, but the CPU-only mxnet's files.*--force-reinstall"
    ):
        preflight_gpus("0")
    assert preflight.installed_mxnet_variant() == ("1.9.1", "")  # the files that are loaded
    monkeypatch.setattr(preflight, "cuda_enabled", lambda: True)
    assert preflight.installed_mxnet_variant() == ("1.9.1", "cu112")
