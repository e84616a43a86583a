"""Issue 20 point 3: ``train --resume`` checks config.json against the checkpoint and names the field that was
edited (run length lowered below the checkpoint, another model), never a temporary file."""

import io
import json
import os
import zipfile

import pytest
from data_fixtures import tiny_train_argv

from gluon_resnetv2 import cli
from gluon_resnetv2.train.runlog import read_status

ARGS = tiny_train_argv(4)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A run of 4 iterations (one epoch: its checkpoint is at iteration 4), copied fresh for each test."""
    out = str(tmp_path_factory.mktemp("resume") / "run")
    assert cli.main(ARGS + ["--out", out]) == 0
    return out


@pytest.fixture
def run(finished_run, tmp_path):
    import shutil

    out = str(tmp_path / "run")
    shutil.copytree(finished_run, out)
    return out


def _edit_config(out, **changes):
    path = os.path.join(out, "config.json")
    config = json.load(open(path))
    config.update(changes)
    json.dump(config, open(path, "w"))


def _resume_error(capsys, out):
    assert cli.main(["train", "--resume", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gluon-resnetv2 train: error: cannot resume "), err
    assert "gluon-resnetv2-ckpt" not in err[0] and "gluoncv" not in err[0]
    return err[0]


def _drop_config_record(out):
    """Make the checkpoint look like one written before checkpoints recorded their config."""
    path = os.path.join(out, "checkpoint.zip")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    state = json.loads(members["state.json"])
    state.pop("config", None)
    members["state.json"] = json.dumps(state).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    open(path, "wb").write(buffer.getvalue())


def test_iterations_lowered_below_the_checkpoint_is_named(capsys, run):
    before = read_status(run)
    _edit_config(run, iterations=2)
    err = _resume_error(capsys, run)
    assert f"{run}/config.json has iterations=2 but {run}/checkpoint.zip was written with iterations=4" in err
    assert read_status(run) == before  # not marked finished at iteration 2


def test_an_edited_model_is_named_not_a_temporary_file(capsys, run):
    _edit_config(run, model="cifar_resnet32_v2")
    err = _resume_error(capsys, run)
    assert "has model='cifar_resnet32_v2' but" in err and "written with model='cifar_resnet20_v2'" in err


def test_an_older_checkpoint_is_checked_on_its_length_and_its_weights(capsys, run):
    _drop_config_record(run)
    _edit_config(run, iterations=2)
    err = _resume_error(capsys, run)
    assert "gives a run of 2 iterations (iterations=2)" in err and "is at iteration 4" in err
    _edit_config(run, iterations=4, model="cifar_resnet32_v2")
    err = _resume_error(capsys, run)
    assert f"the weights in {run}/checkpoint.zip do not fit the network that {run}/config.json describes" in err


def test_an_unchanged_config_resumes(capsys, run):
    assert cli.main(["train", "--resume", run, "--num-workers", "0"]) == 0
    assert read_status(run)["status"] == "finished"


def test_a_config_edited_into_nonsense_names_the_file(capsys, run):
    config = os.path.join(run, "config.json")
    _edit_config(run, lr="x")
    assert f"cannot resume {run}: {config}: lr='x': expected a finite number > 0" in _resume_error(capsys, run)
    _edit_config(run, lr=0.1, model_kwargs={"shortcut": "exclusive_gating", "gate_bias": "x"})
    assert f"{config}: gate_bias='x': expected a finite number" in _resume_error(capsys, run)
    open(config, "w").write("{")
    assert cli.main(["train", "--resume", run]) == 2
    assert f"error: {config} is not valid JSON (" in capsys.readouterr().err
