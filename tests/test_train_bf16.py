"""--dtype bfloat16: AMP casts in the graph, float32 parameters shared, exact resume, refusal elsewhere."""

import dataclasses

import mxnet as mx
import numpy as np
import pytest
from data_fixtures import tiny_run

from gluon_resnetv2 import cpu, get_model
from gluon_resnetv2 import experiments as E
from gluon_resnetv2.train import TrainConfig, bf16, resume, steps, train
from gluon_resnetv2.train import checkpoint as ckpt
from gluon_resnetv2.train.checkpoint import read_checkpoint_state
from gluon_resnetv2.train.runlog import read_log_rows, read_status

TINY = tiny_run()
needs_bf16 = pytest.mark.skipif(not cpu.has_avx512_bf16(), reason="this CPU has no AVX-512 BF16")


def _net():
    mx.random.seed(0)
    net = get_model("cifar_resnet20_v2", classes=10)
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True)
    steps.materialize(net, (3, 8, 8), mx.cpu())
    return net


def test_bf16_forward_shares_parameters_and_computes_in_bfloat16():
    net = _net()
    x = mx.nd.random.normal(shape=(4, 3, 8, 8))
    fp32 = net(x).asnumpy()
    block = bf16.bf16_forward(net)
    out = block(x)
    assert out.dtype == np.float32
    diff = np.abs(out.asnumpy() - fp32).max()
    assert 0 < diff < 0.05 * np.abs(fp32).max()  # bfloat16 rounding (8-bit mantissa), not float32
    assert set(block.collect_params().values()) <= set(net.collect_params().values())  # the same objects
    internals = block(mx.sym.var("data")).get_internals()
    types = dict(zip(internals.list_outputs(), internals.infer_type(data="float32")[1]))
    conv_types = {str(t) for n, t in types.items() if n.endswith("_fwd_output") and "conv" in n}
    assert conv_types == {str(mx.contrib.amp.amp.bfloat16)}
    assert all(types[p] == np.float32 for p in block.collect_params())
    np.testing.assert_array_equal(net(x).asnumpy(), fp32)  # nothing patched globally: float32 unchanged


@needs_bf16
def test_bf16_training_runs_and_stays_close_to_float32(tmp_path):
    a = train(TrainConfig(out=str(tmp_path / "fp32"), epochs=2, seed=3, **TINY))
    b = train(TrainConfig(out=str(tmp_path / "bf16"), epochs=2, seed=3, dtype="bfloat16", cpus=2, **TINY))
    assert a["status"] == b["status"] == "finished"
    rows_a, rows_b = read_log_rows(str(tmp_path / "fp32")), read_log_rows(str(tmp_path / "bf16"))
    assert [r["iteration"] for r in rows_a] == [r["iteration"] for r in rows_b]
    assert rows_a[-1]["test_loss"] != rows_b[-1]["test_loss"]
    assert rows_b[-1]["test_loss"] == pytest.approx(rows_a[-1]["test_loss"], rel=0.05)


@needs_bf16
def test_bf16_resume_is_exact(tmp_path, monkeypatch):
    config = dict(
        iterations=9, checkpoint_interval=4, log_interval=2, seed=5, dtype="bfloat16", eval_interval=3, **TINY
    )
    train(TrainConfig(out=str(tmp_path / "full"), **config))
    save = ckpt.save_checkpoint
    calls = []

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        calls.append(1)
        raise KeyboardInterrupt  # stopped right after the first checkpoint (iteration 3, end of epoch 1)

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out=str(tmp_path / "cut"), **config))
    monkeypatch.setattr(ckpt, "save_checkpoint", save)
    assert read_checkpoint_state(str(tmp_path / "cut"))["iteration"] == 3
    assert resume(str(tmp_path / "cut"))["status"] == "finished"
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    full, cut = strip(read_log_rows(str(tmp_path / "full"))), strip(read_log_rows(str(tmp_path / "cut")))
    assert len(full) == 6 and cut == full  # bit-identical losses and errors
    assert read_status(str(tmp_path / "cut"))["test_error"] == read_status(str(tmp_path / "full"))["test_error"]


def test_bf16_is_refused_without_avx512_bf16(tmp_path, monkeypatch):
    monkeypatch.setattr(bf16, "has_avx512_bf16", lambda: False)
    with pytest.raises(ValueError, match=r"--dtype bfloat16 needs a CPU with AVX-512 BF16 .*--dtype float32"):
        train(TrainConfig(out=str(tmp_path / "x"), iterations=1, dtype="bfloat16", **TINY))
    with pytest.raises(ValueError, match="on GPUs use --dtype float16"):
        bf16.check_bf16([mx.gpu(0)])


def test_has_avx512_bf16_reads_the_flags():
    assert cpu.has_avx512_bf16({"flags": {"avx512f", "avx512_bf16"}})
    assert not cpu.has_avx512_bf16({"flags": {"avx2", "fma"}})


@pytest.mark.slow
@needs_bf16
def test_reproduce_runs_rows_in_bfloat16(tmp_path):
    out = str(tmp_path / "t1")
    small = dict(scale="quick", dataset="synthetic", iterations=4, batch_size=16, log=lambda _: None)
    E.run_table("table1", out, rows="original", dtype="bfloat16", **small)
    run_dir = tmp_path / "t1" / "original" / "seed0"
    assert read_status(str(run_dir))["status"] == "finished"
    assert TrainConfig.load(str(run_dir / "config.json")).dtype == "bfloat16"
    with pytest.raises(ValueError, match="dtype: 'bfloat16' there, 'float32' now"):
        E.run_table("table1", out, rows="original", **small)
    exp = E.get_experiments("table1", rows="original", scale="quick")[0]
    moved = E.Experiment.from_dict(dataclasses.replace(exp, dtype="bfloat16").to_dict())  # --parallel's hand-over
    assert moved.config(str(tmp_path / "x")).dtype == "bfloat16"
