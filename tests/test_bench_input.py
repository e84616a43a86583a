"""scripts/bench_input.py: its result files, and one tiny real run (slow)."""

import json

import numpy as np
import pytest

from gluon_resnetv2.data import bench_input, bench_input_report, load_dataset, make_loader


def fake_result(rows):
    return {
        "date": "2026-12-06T18:00:00Z",
        "command": "python scripts/bench_input.py --rounds 3",
        "machine": {"cpu": "Test CPU", "cpus": 2, "mxnet": "1.9.1", "python": "3.11"},
        "physical_cores": 2,
        "load_average": {"before": [0.5, 0.4, 0.3], "after": [1.5, 0.6, 0.35]},
        "settings": {"rounds": 3, "scaling_goal": 0.8},
        "rows": bench_input_report.add_scaling(rows),
    }


def row(data, loader, workers, rate, **extra):
    return {"data": data, "loader": loader, "workers": workers, "batch_size": 64, "images_per_s": rate, **extra}


def test_scaling_verdicts_and_the_fragment(tmp_path):
    result = fake_result(
        [
            row("imagenet", "ours, processes (uint8)", 1, 300.0, images_per_cpu_s=280.0),
            row("imagenet", "ours, processes (uint8)", 2, 540.0),  # 0.90 of linear: met
            row("imagenet", "ours, processes (float32)", 1, 200.0),
            row("imagenet", "ours, processes (float32)", 2, 390.0),
            row("imagenet", "mx.io.ImageRecordIter (float32)", 1, 250.0, decode_threads=1),
            row("imagenet", "mx.io.ImageRecordIter (float32)", 2, 260.0, decode_threads=1),
            row("cifar", "ours, threads (float32)", 1, 1000.0),
            row("cifar", "ours, threads (float32)", 2, 1500.0),  # 0.75: missed
        ]
    )
    scaling = [(r["scaling"], r["meets_goal"]) for r in result["rows"]]
    assert scaling == [
        (1.0, True),
        (0.9, True),
        (1.0, True),
        (0.975, True),
        (1.0, True),
        (0.52, False),
        (1.0, True),
        (0.75, False),
    ]

    json_path, md_path = bench_input_report.write_results(result, str(tmp_path / "results"))
    saved = json.loads(open(json_path).read())
    assert saved["date"] == result["date"] and saved["command"].startswith("python scripts/bench_input.py")
    assert saved["load_average"] == {"before": [0.5, 0.4, 0.3], "after": [1.5, 0.6, 0.35]}
    text = open(md_path).read()
    assert "load average (1/5/15 min) 0.50 / 0.40 / 0.30 before, 1.50 / 0.60 / 0.35 after" in text
    assert "| ours, processes (uint8) | 1 | 300 | 1.00 |  | 280 |" in text
    assert "| ours, processes (uint8) | 2 | 540 | 0.90 | met |  |" in text
    assert "| ours, threads (float32) | 2 | 1500 | 0.75 | missed |  |" in text
    assert "| mx.io.ImageRecordIter (float32) | 2 (1 decoding) | 260 | 0.52 | missed |  |" in text
    assert "caps `preprocess_threads`" in text
    assert "- float32, like for like: 1 worker 0.80x, 2 workers 1.50x" in text
    assert "- uint8: 1 worker 1.20x, 2 workers 2.08x" in text
    assert "busy" not in text
    result["load_average"]["before"][0] = 7.2
    assert "**The machine was busy** (load 7.2 on 2 cores)" in bench_input_report.markdown(result)


def test_image_record_iter_thread_cap():
    # MXNet 1.9.1 ImageRecordIOParser2: min(preprocess_threads, max(omp_get_num_procs() / 2 - 1, 1))
    assert [bench_input.record_iter_threads(t, cpus=2) for t in (1, 2)] == [1, 1]
    assert [bench_input.record_iter_threads(t, cpus=16) for t in (1, 4, 8, 10)] == [1, 4, 7, 7]


def test_bad_options_are_one_line(capsys):
    from gluon_resnetv2.cli import run_as_script

    with pytest.raises(SystemExit) as stop:
        run_as_script("bench_input", ["--rounds", "0", "--out", ""], prog="bench_input.py")
    assert stop.value.code == 2
    assert "argument --rounds: expected an integer >= 1, got '0'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_tiny_real_run(tmp_path):
    """im2rec.py packs the JPEGs; our loader and ImageRecordIter both read that .rec in the same run."""
    rec, idx = bench_input.imagenet_files(str(tmp_path), count=8)
    dataset = load_dataset("imagenet", str(tmp_path), num_classes=10)
    data, label = next(iter(make_loader(dataset, 4, num_workers=0, hand_over="uint8")))
    assert data.shape == (4, 224, 224, 3) and len(dataset) == 8
    assert sorted(np.asarray(dataset.keys)) == list(range(8))
    batch = next(iter(bench_input.record_iter(rec, idx, 4, 1)))
    assert batch.data[0].shape == (4, 3, 224, 224)

    result = bench_input.run_input_bench(
        num_workers=[1, 2],
        batch_size=32,
        imagenet_batch=4,
        batches=2,
        imagenet_batches=2,
        images=16,
        rounds=1,
        out=str(tmp_path / "out"),
        command="python scripts/bench_input.py --test",
        log=lambda *_: None,
    )
    loaders = {(r["data"], r["loader"], r["workers"]) for r in result["rows"]}
    for name in [name for name, _ in bench_input.OURS] + ["mx.io.ImageRecordIter (float32)"]:
        assert {("imagenet", name, 1), ("imagenet", name, 2)} <= loaders
    assert ("cifar-shaped synthetic 32x32x3", "ours, threads (float32)", 2) in loaders
    assert all(r["images_per_s"] > 0 and r["images_per_cpu_s"] > 0 for r in result["rows"])
    saved = json.loads((tmp_path / "out" / "bench_input.json").read_text())
    assert saved["command"] == "python scripts/bench_input.py --test" and len(saved["load_average"]["after"]) == 3
    assert (tmp_path / "out" / "bench_input.md").read_text().startswith("Measured ")
