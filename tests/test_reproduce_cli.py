"""``reproduce`` as a new user meets it: the networks it lists are trainable by name, ``--threads`` (not
``--cpus``) for CPU threads, readable help, skipped rows said, no empty ``figures/``."""

import inspect
import json
import os
import subprocess
import sys

import pytest

from gluon_resnetv2 import cli, list_models
from gluon_resnetv2 import experiments as E
from gluon_resnetv2.experiments.state import locked_out
from gluon_resnetv2.train.preflight import cuda_enabled


def _quick_models():
    return sorted({exp.model for table in E.RUNNABLE_TABLES for exp in E.get_experiments(table, "quick")})


@pytest.mark.slow
def test_every_listed_network_is_trainable_by_name_in_a_fresh_process():
    """In a process that never imported the experiments: get_model and `train --model` know them."""
    names = _quick_models()
    assert {"cifar_resnet29_bottleneck_v1", "cifar_resnet20_1layer_v1"} <= set(names)
    code = (
        "import json, sys\nfrom gluon_resnetv2 import get_model, list_models\n"
        "names = json.loads(sys.argv[1])\n"
        "assert set(names) <= set(list_models()), set(names) - set(list_models())\n"
        "for name in names:\n    get_model(name)\n"
        "assert 'gluon_resnetv2.experiments' not in sys.modules\n"
        "from gluon_resnetv2.cli import build_parser\nfrom gluon_resnetv2.commands.train import config_from_args\n"
        "for name in names:\n"
        "    config_from_args(build_parser().parse_args(['train', '--model', name, '--out', 'x'])).resolved()\n"
        "print('ok')\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(names)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_list_shows_only_registered_networks(capsys):
    assert cli.main(["reproduce", "table3", "--list"]) == 0
    out = capsys.readouterr().out
    shown = {word for word in out.replace("|", " ").split() if word.startswith("cifar_resnet")}
    assert shown and shown <= set(list_models())


def test_threads_is_its_own_option_and_cpus_means_devices_only(capsys):
    args = cli.build_parser().parse_args(["reproduce", "table2", "--threads", "4"])
    assert args.threads == 4 and not hasattr(args, "cpus")
    assert "threads" in inspect.signature(E.run_table).parameters
    assert "cpus" not in inspect.signature(E.run_table).parameters
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["reproduce", "table2", "--cpus", "4"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "train on N CPU contexts" in capsys.readouterr().out


@pytest.mark.parametrize("command, text", [("reproduce", "'fail' (> 20%)"), ("plot", "solid = test error %")])
def test_help_shows_percent_signs_not_doubled(capsys, command, text):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert text in out and "%%" not in out


def test_a_finished_row_is_said_to_be_skipped(tmp_path):
    exp = E.get_experiments("table2", "quick", rows="original_110")[0]
    run_dir = E.run_dir_of(str(tmp_path), exp.key, 0)
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "status.json"), "w") as handle:
        json.dump({"status": "finished", "test_error": 0.1}, handle)
    said = []
    E.run_experiment(exp, run_dir, log=said.append)
    assert said == [f"table2/original_110 seed 0: skipped, already finished in {run_dir}"]


def test_no_empty_figures_directory(tmp_path):
    """A one-row Table 1 selection (its baseline) has no group to draw: no figures/ either."""
    experiments = E.get_experiments("table1", "quick", rows="original")
    assert E.plot_groups(str(tmp_path), experiments) == []
    E.write_report(str(tmp_path), experiments)
    assert sorted(os.listdir(tmp_path)) == ["report.json", "report.md"]


# -- issue 20 point 9: GPUs checked once before anything is created; one reproduce per --out ----------------


@pytest.mark.skipif(cuda_enabled(), reason="the CPU build of MXNet refuses --gpus; this one has CUDA")
def test_gpus_with_the_cpu_build_stop_once_before_anything_is_created(capsys, tmp_path):
    out = tmp_path / "t1"
    argv = ["reproduce", "table1", "--gpus", "0,1", "--dataset", "synthetic", "--iterations", "1", "--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr()
    lines = err.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gluon-resnetv2 reproduce: error: ") and "CUDA" in lines[0]
    assert err.out == "" and not out.exists()


def test_a_second_reproduce_on_the_same_out_refuses_at_the_start(capsys, tmp_path):
    out = str(tmp_path / "t1")
    argv = ["reproduce", "table1", "--rows", "original", "--dataset", "synthetic", "--iterations", "1", "--out", out]
    with locked_out(out):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"gluon-resnetv2 reproduce: error: {out} is in use by another `reproduce` (pid {os.getpid()}); "
            "wait for it to end or give another --out"
        ]
        assert sorted(os.listdir(out)) == [".lock"]


def test_the_lock_of_a_killed_reproduce_does_not_block(tmp_path):
    out = str(tmp_path / "t1")
    os.makedirs(out)
    # The child takes the lock as locked_out does (flock on <out>/.lock) without loading MXNet.
    child = (
        "import fcntl, os, sys, time\n"
        f"handle = open({os.path.join(out, '.lock')!r}, 'a+')\n"
        "fcntl.flock(handle, fcntl.LOCK_EX)\n"
        "handle.write(f'pid {os.getpid()}'); handle.flush(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RuntimeError, match=f"pid {holder.pid}"):
            with locked_out(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    with locked_out(out):  # the kernel dropped the dead process's lock: nothing stale remains
        pass


def test_a_slurm_submission_refuses_an_out_in_use(tmp_path):
    from gluon_resnetv2.experiments.slurm import submit_table

    out = str(tmp_path / "t1")
    with locked_out(out):
        with pytest.raises(RuntimeError, match="is in use by another `reproduce`"):
            submit_table("table1", out, rows="original")
    assert os.listdir(out) == [".lock"]
