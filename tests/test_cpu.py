"""The OpenMP thread count chosen before mxnet loads (gluon_resnetv2.cpu), on faked topologies."""

import os
import subprocess
import sys
import warnings

import pytest

from gluon_resnetv2 import cpu

# 4 logical CPUs, 2 cores with 2 hardware threads each (Linux numbering: core 0 = {0, 2}, core 1 = {1, 3})
SMT2 = {0: frozenset({0, 2}), 2: frozenset({0, 2}), 1: frozenset({1, 3}), 3: frozenset({1, 3})}
SMT1 = {0: frozenset({0}), 1: frozenset({1}), 2: frozenset({2}), 3: frozenset({3})}


@pytest.fixture(autouse=True)
def _keep_state():
    saved = dict(cpu._state)
    yield
    cpu._state.clear()
    cpu._state.update(saved)


def test_parse_cpu_list():
    assert cpu.parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert cpu.parse_cpu_list("5") == {5}


def test_physical_cores_counts_cores_not_hardware_threads():
    assert cpu.physical_cores({0, 1, 2, 3}, SMT2) == 2
    assert cpu.physical_cores({0, 1, 2, 3}, SMT1) == 4


def test_physical_cores_follow_the_affinity_mask():
    assert cpu.physical_cores({0, 2}, SMT2) == 1  # both threads of one core
    assert cpu.physical_cores({0, 1}, SMT2) == 2  # one thread of each core
    assert cpu.physical_cores({3}, SMT1) == 1


def test_read_siblings_from_a_sysfs_tree(tmp_path):
    for cpu_id, sib in {0: "0,2", 1: "1,3", 2: "0,2", 3: "1-3"}.items():
        topo = tmp_path / f"cpu{cpu_id}" / "topology"
        topo.mkdir(parents=True)
        (topo / "thread_siblings_list").write_text(sib + "\n")
    siblings = cpu.read_siblings({0, 1, 2, 3, 4}, root=str(tmp_path))
    assert siblings[0] == {0, 2} and siblings[3] == {1, 2, 3}
    assert siblings[4] == {4}  # unreadable: a core of its own
    assert cpu.physical_cores({0, 2}, siblings) == 1


def test_default_is_physical_cores_and_is_put_in_the_environment():
    env = {}
    assert cpu.configure(env, mxnet_loaded=False, affinity={0, 1, 2, 3}, siblings=SMT2) == 2
    assert env["OMP_NUM_THREADS"] == "2"
    assert cpu.in_use() == {"threads": 2, "source": "physical cores"}
    env = {}
    assert cpu.configure(env, mxnet_loaded=False, affinity={0, 1, 2, 3}, siblings=SMT1) == 4
    assert env["OMP_NUM_THREADS"] == "4"


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"OMP_NUM_THREADS": "3"}, (3, "OMP_NUM_THREADS")),
        ({"OMP_NUM_THREADS": "4,2"}, (4, "OMP_NUM_THREADS")),
        ({"MXNET_OMP_MAX_THREADS": "5", "OMP_NUM_THREADS": "3"}, (5, "MXNET_OMP_MAX_THREADS")),
        ({"OMP_NUM_THREADS": "zero"}, (2, "physical cores")),  # MXNet ignores it too (not an integer)
    ],
)
def test_the_users_variable_wins(env, expected):
    assert cpu.choose(env, {0, 1, 2, 3}, SMT2) == expected
    before = dict(env)
    cpu.configure(env, mxnet_loaded=False, affinity={0, 1, 2, 3}, siblings=SMT2)
    if expected[1] != "physical cores":
        assert env == before  # untouched
    assert cpu.in_use()["threads"] == expected[0]


def test_mxnet_imported_first_warns_once_and_reports_its_default():
    cpu._state["warned"] = False
    with pytest.warns(
        RuntimeWarning,
        match=r"mxnet was imported before gluon_resnetv2 and runs 2 OpenMP "
        r"thread\(s\) on this machine's 4 physical core\(s\).*"
        r"OMP_NUM_THREADS=4",
    ):
        used = cpu.configure({}, mxnet_loaded=True, affinity={0, 1, 2, 3}, siblings=SMT1)
    assert used == 2 and cpu.in_use()["source"].startswith("mxnet default")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cpu.configure({}, mxnet_loaded=True, affinity={0, 1, 2, 3}, siblings=SMT1)  # no second warning


@pytest.mark.parametrize("preset", [None, "1"])
def test_mxnet_runs_the_chosen_count(preset):
    """In a fresh interpreter: OpenMP's thread count after `import gluon_resnetv2, mxnet` is the physical
    core count (or the user's OMP_NUM_THREADS)."""
    env = {k: v for k, v in os.environ.items() if k not in cpu.USER_VARIABLES}
    if preset:
        env["OMP_NUM_THREADS"] = preset
    code = (
        "import ctypes, gluon_resnetv2, mxnet; from gluon_resnetv2 import cpu; "
        "mxnet.nd.ones((2,)).asnumpy(); "
        "print(ctypes.CDLL('libgomp.so.1').omp_get_max_threads(), cpu.in_use()['threads'], "
        "cpu.physical_cores())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    omp, used, cores = map(int, out.stdout.split())
    assert used == omp == (int(preset) if preset else cores)
