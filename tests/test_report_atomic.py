"""Issue 20: a reproduce report (report.md, report.json and its figures) is written all or nothing: Ctrl-C or
an error while a figure is drawn leaves the previous report and figures byte-identical, and no stray files."""

import json
import os

import pytest

from gluon_resnetv2 import experiments as E

ROWS = "original,constant_scaling_0_1,constant_scaling_0.5_0.5"


def _fake_run(run_dir, test_error, losses, iterations=100):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "status.json"), "w") as handle:
        json.dump({"status": "finished", "test_error": test_error, "iteration": iterations, "elapsed": 7.5}, handle)
    with open(os.path.join(run_dir, "log.csv"), "w") as handle:
        handle.write("iteration,epoch,lr,train_loss,train_error,test_loss,test_error,time\n")
        step = iterations // len(losses)
        for i, loss in enumerate(losses, start=1):
            handle.write(f"{i * step},0.1,0.1,{loss},0.5,,,{i}\n")
        handle.write(f"{iterations},0.1,0.1,,,1.0,{test_error},9\n")


def _snapshot(directory):
    found = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(root, name)
            if not os.path.relpath(path, directory).startswith(("original", "constant")):
                found[os.path.relpath(path, directory)] = open(path, "rb").read() if os.path.isfile(path) else None
    return found


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError], ids=["ctrl-c", "error"])
def test_a_report_interrupted_while_drawing_keeps_the_previous_one(tmp_path, monkeypatch, failure):
    import gluon_resnetv2.plot as plot

    experiments = E.get_experiments("table1", "depth", rows=ROWS, iterations=100)
    out = str(tmp_path)
    _fake_run(E.run_dir_of(out, "original", 0), 0.10, [2.0, 1.0, 0.5, 0.25])
    _fake_run(E.run_dir_of(out, "constant_scaling_0.5_0.5", 0), 0.30, [2.0, 1.9, 1.8, 1.5])
    E.write_report(out, experiments)
    before = _snapshot(tmp_path)
    assert "report.md" in before and "report.json" in before and any(k.startswith("figures/") for k in before)

    _fake_run(E.run_dir_of(out, "constant_scaling_0_1", 0), 0.50, [2.3, 2.3, 2.2, 2.2])  # a new row finished
    real = plot.plot_runs

    def plot_runs(runs, out_path=None, **kwargs):
        real(runs, out_path, **kwargs)  # the figure is written, then the user presses Ctrl-C
        raise failure(28, "No space left on device") if failure is OSError else failure()

    monkeypatch.setattr(plot, "plot_runs", plot_runs)
    with pytest.raises(failure):
        E.write_report(out, experiments)
    assert _snapshot(tmp_path) == before  # the old report, json and figures; no staging directory

    monkeypatch.setattr(plot, "plot_runs", real)
    E.write_report(out, experiments)
    after = _snapshot(tmp_path)
    assert after["report.md"] != before["report.md"] and after["report.json"] != before["report.json"]
