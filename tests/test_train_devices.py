"""Contexts, batch splitting, refused kvstores and the GPU preflight (a pure function fed fake GPUs)."""

import mxnet as mx
import pytest

from gluon_resnetv2.train.devices import (
    GpuInfo,
    build_cuda_archs,
    check_batch_split,
    check_gpu_support,
    make_contexts,
    parse_gpus,
    parse_nvidia_smi,
    split_batch,
)
from gluon_resnetv2.train.kvstore import check_kvstore, create_kvstore

PIP_ARCHS = (50, 60, 70, 80, 86)
H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", (9, 0))
A100 = GpuInfo(1, "NVIDIA A100-SXM4-40GB", (8, 0))


def test_contexts():
    assert make_contexts() == [mx.cpu(0)]
    assert make_contexts(cpus=3) == [mx.cpu(0), mx.cpu(1), mx.cpu(2)]
    assert make_contexts(gpus="0,2") == [mx.gpu(0), mx.gpu(2)]
    with pytest.raises(ValueError, match="not both"):
        make_contexts(cpus=2, gpus="0")
    for bad in ("a,b", "", "0,0", "-1"):
        with pytest.raises(ValueError, match="--gpus"):
            parse_gpus(bad)


def test_batch_split_checks():
    assert check_batch_split(128, 2) == 128
    assert check_batch_split(128, 2, num_workers=2) == 64
    with pytest.raises(ValueError, match="divide evenly over 3 workers"):
        check_batch_split(128, 1, num_workers=3)
    with pytest.raises(ValueError, match="at least one image"):
        check_batch_split(2, 4)


def test_split_batch_smaller_than_devices():
    ctxs = make_contexts(cpus=4)
    data, label = mx.nd.ones((3, 1, 2, 2)), mx.nd.arange(3)
    datas, labels = split_batch(data, label, ctxs)
    assert [d.shape[0] for d in datas] == [1, 1, 1]
    datas, labels = split_batch(mx.nd.ones((7, 1)), mx.nd.arange(7), ctxs[:2])  # uneven
    assert sorted(d.shape[0] for d in datas) == [3, 4] and sum(lab.shape[0] for lab in labels) == 7


def test_preflight_hopper_refused_with_a_useful_message():
    message = check_gpu_support([0], True, [H100], PIP_ARCHS)
    for part in (
        "GPU 0",
        "NVIDIA H100 80GB HBM3",
        "9.0",
        "sm_90",
        "Hopper",
        "sm_50",
        "sm_86",
        "no PTX",
        "build MXNet from source",
        "--cpus",
    ):
        assert part in message, part


def test_preflight_accepts_supported_gpus():
    assert check_gpu_support([1], True, [H100, A100], PIP_ARCHS) is None
    # binary compatibility within a major version: sm_86 cubins run on sm_89, sm_70 on sm_75
    assert check_gpu_support([0], True, [GpuInfo(0, "NVIDIA L4", (8, 9))], PIP_ARCHS) is None
    assert check_gpu_support([0], True, [GpuInfo(0, "Tesla T4", (7, 5))], PIP_ARCHS) is None
    # PTX is JIT-compiled for newer GPUs
    assert check_gpu_support([0], True, [H100], PIP_ARCHS, build_ptx=(86,)) is None
    # unknown build: let MXNet try
    assert check_gpu_support([0], True, [H100], None) is None


def test_preflight_other_failures():
    cpu_only = check_gpu_support([0], False, [], None)
    assert "without CUDA" in cpu_only and "mxnet-cu112" in cpu_only and "--cpus" in cpu_only
    missing = check_gpu_support([3], True, [A100], PIP_ARCHS)
    assert "GPU 3" in missing and "NVIDIA A100" in missing
    old = check_gpu_support([0], True, [GpuInfo(0, "Tesla K80", (3, 7))], PIP_ARCHS)
    assert "sm_37" in old and "Kepler" in old and "older" in old
    assert "GPU 1 (NVIDIA A100" in check_gpu_support(
        [0, 1], True, [H100._replace(capability=(8, 6)), A100._replace(capability=(7, 0))], (86,)
    )


def test_nvidia_smi_parsing_and_archs_override(monkeypatch):
    text = "0, NVIDIA H100 80GB HBM3, 9.0\n1, NVIDIA A100-SXM4-40GB, 8.0\n"
    assert parse_nvidia_smi(text) == [H100, GpuInfo(1, "NVIDIA A100-SXM4-40GB", (8, 0))]
    monkeypatch.setenv("GLUON_RESNETV2_CUDA_ARCHS", "sm_80,9.0+ptx")
    assert build_cuda_archs() == ((80, 90), (90,))


@pytest.mark.parametrize("name", ["horovod", "byteps"])
def test_refused_kvstores(name):
    with pytest.raises(ValueError, match=f"--kvstore {name} is not supported.*falls back to a local store"):
        check_kvstore(name, [mx.cpu()])


def test_kvstore_checks(monkeypatch):
    with pytest.raises(ValueError, match="unknown --kvstore"):
        check_kvstore("fast", [mx.cpu()])
    with pytest.raises(ValueError, match="nccl"):
        check_kvstore("nccl", [mx.cpu(0), mx.cpu(1)])
    for var in ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER", "DMLC_NUM_WORKER"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError, match="gluon-resnetv2 launch"):
        check_kvstore("dist_sync", [mx.cpu()])
    assert create_kvstore("device", [mx.cpu(0), mx.cpu(1)]) == ("device", 0, 1)
    monkeypatch.setenv("DMLC_ROLE", "worker")  # launched, but the command forgot --kvstore dist_sync
    with pytest.raises(ValueError, match="add --kvstore dist_sync"):
        check_kvstore("device", [mx.cpu()])
