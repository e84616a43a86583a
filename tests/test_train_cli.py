"""``gluon-resnetv2 train`` / ``launch``: bad input gives one clear line, never a traceback."""

import os
import runpy

import pytest
from data_fixtures import tiny_train_argv

from gluon_resnetv2.cli import main
from gluon_resnetv2.train import TrainConfig
from gluon_resnetv2.train.runlog import read_log_rows, read_status

BASE = tiny_train_argv()


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("gluon-resnetv2 train: error: ") and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--cpus", "2", "--gpus", "0"], "either --cpus or --gpus"),
        (["--cpus", "4", "--batch-size", "2"], "every device needs at least one image"),
        (["--kvstore", "horovod"], "--kvstore horovod is not supported"),
        (["--kvstore", "byteps"], "falls back to a local store"),
        (["--kvstore", "dist_sync"], "gluon-resnetv2 launch"),
        (["--gpus", "0"], "without CUDA"),  # this machine's MXNet is the CPU build: the preflight stops it
        (["--batch-size", "64"], "larger than the 32 training images"),
        (["--dtype", "float16"], "float16 needs GPUs"),
    ],
)
def test_bad_options(capsys, tmp_path, extra, message):
    err = _error(capsys, BASE + ["--out", str(tmp_path / "run")] + extra)
    assert message in err


def test_missing_things(capsys, tmp_path):
    assert "needs --model" in _error(capsys, ["train", "--dataset", "cifar10", "--out", str(tmp_path)])
    err = _error(
        capsys,
        [
            "train",
            "--model",
            "cifar_resnet20_v2",
            "--dataset",
            "cifar10",
            "--data-dir",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert "nowhere" in err
    assert "no such directory" in _error(capsys, ["train", "--resume", str(tmp_path / "absent")])
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    assert "does not describe a training run" in _error(capsys, ["train", "--resume", str(tmp_path / "half")])
    assert "do not combine" in _error(capsys, ["train", "--resume", str(tmp_path / "half"), "--lr", "0.1"])


def test_unknown_dataset_and_model(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["train", "--model", "cifar_resnet20_v2", "--dataset", "mnist", "--out", str(tmp_path)])
    assert info.value.code == 2 and "invalid choice: 'mnist'" in capsys.readouterr().err
    err = _error(capsys, BASE[:1] + ["--model", "cifar_resnet21_v2"] + BASE[3:] + ["--out", str(tmp_path / "r")])
    assert "cifar_resnet21_v2" in err


def test_launch_needs_a_command(capsys):
    assert main(["launch", "-n", "2"]) == 2
    assert "needs a command" in capsys.readouterr().err


def test_scripts_are_thin_wrappers(capsys, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for script, dataset in (("train_cifar.py", "cifar10"), ("train_imagenet.py", "imagenet")):
        main_fn = runpy.run_path(os.path.join(root, "scripts", script), run_name="script")["main"]
        with pytest.raises(SystemExit) as info:
            main_fn(["--help"])
        assert info.value.code == 0 and f"default {dataset}" in capsys.readouterr().out
    # the wrapper delegates: the same clear errors as the command
    main_fn = runpy.run_path(os.path.join(root, "scripts", "train_cifar.py"), run_name="script")["main"]
    assert main_fn(["--out", str(tmp_path / "r"), "--kvstore", "horovod"]) == 2
    assert "horovod is not supported" in capsys.readouterr().err


def test_resume_without_a_checkpoint_starts_over_from_config_json(capsys, tmp_path):
    """A run stopped before its first checkpoint: --resume trains it from its config.json, with a warning."""

    out = tmp_path / "early"
    out.mkdir()
    TrainConfig(
        model="cifar_resnet20_v2",
        dataset="synthetic",
        out=str(out),
        batch_size=8,
        iterations=2,
        num_workers=0,
        log_interval=1,
        dataset_options={"num_samples": 32, "image_shape": [3, 8, 8]},
    ).save(str(out / "config.json"))
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"gluon-resnetv2 train: warning: {out} has no checkpoint yet" in err and "starting it over" in err
    assert read_status(str(out))["status"] == "finished" and [r["iteration"] for r in read_log_rows(str(out))] == [1, 2]
