"""``gluon-resnetv2 check``: its report, the per-device comparison with the CPU, and its exit status, on two
CPU contexts and on faked GPUs (this machine's MXNet is the CPU build)."""

import numpy as np
import pytest

from gluon_resnetv2 import doctor
from gluon_resnetv2.cli import main
from gluon_resnetv2.train import preflight
from gluon_resnetv2.train.preflight import FUSION_ENV, GpuInfo

H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", (9, 0))
A100 = GpuInfo(1, "NVIDIA A100-SXM4-40GB", (8, 0))
L4 = GpuInfo(0, "NVIDIA L4", (8, 9))


@pytest.fixture
def fake_gpus(monkeypatch):
    monkeypatch.setenv(FUSION_ENV, "restored-after-the-test")
    monkeypatch.delenv(FUSION_ENV)

    def install(*gpus, nvrtc=(11, 2), driver=(12, 2)):
        monkeypatch.setattr(preflight, "cuda_enabled", lambda: True)
        monkeypatch.setattr(preflight, "query_gpus", lambda: list(gpus))
        monkeypatch.setattr(preflight, "installed_mxnet_variant", lambda: ("1.9.1", "cu112"))
        monkeypatch.setattr(preflight, "nvrtc_version", lambda: nvrtc)
        monkeypatch.setattr(preflight, "driver_cuda_version", lambda: driver)

    return install


def _check(capsys, *args):
    status = main(["check", *args])
    return status, capsys.readouterr().out


def test_check_two_cpus_passes_and_reports(monkeypatch, capsys):
    monkeypatch.setenv("MXNET_CHECK_TEST_KNOB", "7")
    status, out = _check(capsys, "--cpus", "2", "--steps", "2", "--batch-size", "4")
    assert status == 0, out
    lines = out.splitlines()
    assert lines[:2] == ["gluon-resnetv2 check", "MXNet"] and lines[2].startswith("  version      1.9.1")
    assert "CUDA no" in out and "MKLDNN yes" in out and "none visible (this MXNet has no CUDA)" in out
    assert "  MXNET_CHECK_TEST_KNOB=7" in lines and "Devices: cpu(0), cpu(1)" in lines
    for ctx in ("cpu(0)", "cpu(1)"):
        assert any(line.startswith(f"  ok   {ctx}: forward/backward/update vs cpu") for line in lines), ctx
    assert "(<= 0.001, float32)" in out and "timing: 2 steps of cifar_resnet8 (4 images per device)" in out
    assert lines[-1] == "result: all checks passed"


def test_a_device_that_computes_differently_fails(monkeypatch, capsys):
    step = doctor.sgd_step

    def off_on_cpu1(ctx, *args):
        result = step(ctx, *args)
        if str(ctx) == "cpu(1)":
            result["weights"][0] = result["weights"][0] + 0.01 * np.abs(result["weights"][0]).max()
        return result

    monkeypatch.setattr(doctor, "sgd_step", off_on_cpu1)
    status, out = _check(capsys, "--cpus", "2", "--steps", "1")
    assert status == 1
    assert (
        "  ok   cpu(0)" in out
        and "  FAIL cpu(1): forward/backward/update vs cpu: max relative difference 1.00e-02" in out
    )
    assert "timing" not in out and out.splitlines()[-1] == "result: a check FAILED (see above)"


def test_faked_gpus_are_listed_and_hopper_fails_the_preflight(fake_gpus, capsys):
    fake_gpus(H100, A100, nvrtc=(11, 8))
    status, out = _check(capsys, "--gpus", "0,1")
    assert status == 1
    assert "distribution mxnet-cu112 1.9.1" in out and "CUDA archs   sm_50, sm_60, sm_70, sm_80, sm_86" in out
    assert "  0  NVIDIA H100 80GB HBM3  sm_90 (Hopper)  CANNOT RUN; fusion ok" in out
    assert "  1  NVIDIA A100-SXM4-40GB  sm_80 (Ampere)  can run; fusion ok" in out
    assert "  FAIL preflight: GPU 0 (NVIDIA H100 80GB HBM3) has compute capability 9.0" in out
    assert "forward/backward" not in out  # no step on a GPU the build cannot run on


def test_ada_gets_fusion_off_and_a_failing_step_is_reported(fake_gpus, capsys):
    import os

    fake_gpus(L4, nvrtc=(11, 2))
    status, out = _check(capsys, "--gpus", "0")
    assert "  0  NVIDIA L4  sm_89 (Ada Lovelace)  can run; fusion fails" in out
    assert "fusion: GPU 0 (NVIDIA L4, sm_89) needs NVRTC >= 11.8" in out
    assert "  preflight ok for GPU 0" in out and "  MXNET_USE_FUSION=0 set: GPU 0" in out
    assert os.environ[FUSION_ENV] == "0"
    # the CPU build cannot run the step on gpu(0): reported as a failed check with MXNet's first line
    assert status == 1 and "  FAIL gpu(0): the step raised: " in out
