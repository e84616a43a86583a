"""``reproduce --gpus ... --parallel N`` (issue 18, point 12): the launch plan of the rows' child processes,
captured (no GPU, no child is started): GPUs left idle by equal groups are named in one line, and each GPU
row's process gets its share of the physical cores instead of all of them."""

import json
import warnings

import pytest

from gluon_resnetv2 import cpu
from gluon_resnetv2 import experiments as E
from gluon_resnetv2.experiments import scheduler

TINY = dict(scale="quick", dataset="synthetic", iterations=6, batch_size=16)
ROWS = "original_110,bn_after_add_110,relu_before_add_110,full_preact_110"


class _Done:
    """A child process that has already ended with status 0."""

    pid, returncode = 424242, 0

    def poll(self):
        return 0

    def wait(self, timeout=None):
        return 0


def _plan(monkeypatch, tmp_path, source="physical cores", **options):
    launched = []

    def popen(argv, env=None, **kwargs):
        spec = json.loads(argv[argv.index("--job") + 1])
        launched.append((spec["gpus"], env.get("OMP_NUM_THREADS"), env.get("MXNET_CPU_WORKER_NTHREADS")))
        return _Done()

    monkeypatch.setattr(scheduler.subprocess, "Popen", popen)
    run = scheduler.procs.run
    monkeypatch.setattr(scheduler.procs, "run", lambda *a, **k: run(*a, **dict(k, interval=0.01)))
    monkeypatch.setattr(scheduler, "preflight_gpus", lambda gpus: None)
    monkeypatch.setattr(cpu, "in_use", lambda: {"threads": 16, "source": source})
    monkeypatch.setattr(cpu, "physical_cores", lambda *a, **k: 16)
    monkeypatch.setenv("OMP_NUM_THREADS", "16")  # what the package puts in the environment by default
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        E.run_table("table2", str(tmp_path / "t"), rows=ROWS, log=lambda _: None, **TINY, **options)
    return launched, [str(w.message) for w in caught]


def test_gpu_rows_get_their_share_of_the_cores(monkeypatch, tmp_path):
    launched, said = _plan(monkeypatch, tmp_path, gpus="0,1,2,3", parallel=2)
    assert sorted(launched) == [([0, 1], "8", None), ([0, 1], "8", None), ([2, 3], "8", None), ([2, 3], "8", None)]
    assert not said  # before: OMP_NUM_THREADS=16 in every child, 2 x 16 threads on 16 cores


def test_an_explicit_thread_count_passes_through(monkeypatch, tmp_path):
    launched, _ = _plan(monkeypatch, tmp_path, source="OMP_NUM_THREADS", gpus="0,1", parallel=2)
    assert {threads for _, threads, _ in launched} == {"16"}


def test_idle_gpus_are_named_in_one_line(monkeypatch, tmp_path):
    launched, said = _plan(monkeypatch, tmp_path, gpus="0,1,2", parallel=2)
    assert {tuple(gpus) for gpus, _, _ in launched} == {(0,), (1,)}
    assert len(said) == 1 and "\n" not in said[0]
    assert "GPU(s) 2 stay idle" in said[0] and "--parallel 2" in said[0]


def test_cpu_rows_are_unchanged(monkeypatch, tmp_path):
    launched, said = _plan(monkeypatch, tmp_path, threads=8, parallel=2)
    assert {(None, "4", "4")} == set(launched) and not said


@pytest.mark.parametrize("gpus,parallel", [("0,1,2,3", 2), ("0,1,2", 3), ("0", 1)])
def test_no_warning_when_every_gpu_is_used(gpus, parallel):
    assert scheduler._idle_gpus_warning(scheduler.parse_gpus(gpus), parallel) is None
