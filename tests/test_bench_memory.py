"""Memory at depth, measured (:mod:`gluon_resnetv2.bench.depth_memory`), and the thin benchmark scripts.

The configurations run in children (``python -m gluon_resnetv2.bench.depth_memory``), so the end-to-end
test is slow; the scripts' wrappers are checked through their ``main``.
"""

import json
import math
import os
import runpy

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script_main(name):
    return runpy.run_path(os.path.join(ROOT, "scripts", name), run_name="script")["main"]


def test_bench_script_delegates_to_the_command(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _script_main("bench.py")(["--models", "cifar_resnet20_v2", "--modes", "turbo", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "bench.py: error: argument --modes: unknown mode turbo" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_memory_script_measures_each_engine_in_a_child(tmp_path, capsys):
    out = tmp_path / "memory.json"
    assert (
        _script_main("bench_memory.py")(
            [
                "--models",
                "cifar_resnet20_v2",
                "cifar_resnet21_v2",
                "--engines",
                "gluon",
                "recompute",
                "--mirror",
                "0",
                "--batch",
                "2",
                "--iters",
                "1",
                "--warmup",
                "0",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads(out.read_text())
    assert [(r["model"], r["engine"], r["mirror"]) for r in results] == [
        ("cifar_resnet20_v2", "gluon", False),
        ("cifar_resnet20_v2", "recompute", False),
        ("cifar_resnet21_v2", "gluon", False),
        ("cifar_resnet21_v2", "recompute", False),
    ]
    gluon_run, recompute_run = results[:2]
    for r in (gluon_run, recompute_run):
        assert r["returncode"] == 0 and r["batch"] == 2 and r["peak_rss_mib"] > 50
        assert len(r["step_s"]) == 1 and r["step_s"][0] > 0 and math.isfinite(r["loss"])
    assert recompute_run["segment"] is None and gluon_run["mirror"] is False
    # the same seed, data and first step: recomputation changes memory, not the loss
    assert recompute_run["loss"] == pytest.approx(gluon_run["loss"], rel=1e-5)
    for r in results[2:]:
        assert r["returncode"] != 0 and "unknown model 'cifar_resnet21_v2'" in r["error"]
    printed = capsys.readouterr().out
    assert printed.count("# load:") == 2 and "FAILED: ValueError: unknown model" in printed
