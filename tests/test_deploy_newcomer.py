"""Issue 20 (a second newcomer trial), deployment: what predict and export say about files and inputs a new
user gives (the numbered points of the issue are in the test names' comments)."""

import json
import os
import re
import zipfile

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

from gluon_resnetv2 import cli
from gluon_resnetv2.deploy import Predictor, Preprocess, array_images, export_bundle
from gluon_resnetv2.nets.cifar import cifar_resnet
from gluon_resnetv2.nets.zoo import get_model
from gluon_resnetv2.train.runlog import lock_run_dir

SHAPE = (1, 12, 12)
MEAN, STD = [73.0], [90.0]


def _net(channels=1, classes=10):
    net = cifar_resnet(8, classes=classes)
    net.initialize(mx.init.Xavier(magnitude=2))
    net(mx.nd.zeros((1, channels) + SHAPE[1:]))
    return net


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    prefix = str(tmp_path_factory.mktemp("export") / "r8")
    export_bundle(_net(), prefix, Preprocess(SHAPE, MEAN, STD, dataset="toy"))
    return prefix


def _cli_export(params, out, *extra, model="cifar_resnet20_v2", shape="1,1,12,12"):
    args = ["export", "--model", model, "--params", params, "--out", out, "--input-shape", shape]
    return cli.main(args + ["--mean", "73", "--std", "90", *extra])


@pytest.fixture(scope="module")
def r20_params(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("params") / "r20.params")
    net = get_model("cifar_resnet20_v2", classes=10)
    net.initialize()
    net(mx.nd.zeros((1,) + SHAPE))
    net.save_parameters(path)
    return path


# -- point 5: arrays predict must refuse or convert exactly -------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 20, 20), (4, 20, 20), (3, 20, 20)])
def test_a_stack_of_grey_images_of_another_size_is_refused_not_read_as_channels(bundle, tmp_path, capsys, shape):
    """Point 5: (N, H, W) whose H, W are not the export's gave one prediction (slices read as alpha/RGB)."""
    path = tmp_path / "stack.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8))
    assert cli.main(["predict", bundle, str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "ambiguous" in err
    assert f"{shape[0]} grey images (N, H, W) of 20x20, not the export's 12x12" in err


@pytest.mark.parametrize(
    "array, message",
    [
        (np.ones((12, 12), bool), "boolean array"),
        (np.full((12, 12), 3000, np.int16), "int16 values in [3000, 3000]"),
        (np.full((12, 12), -5, np.int16), "int16 values in [-5, -5]"),
        (np.full((12, 12), -1.5, np.float32), "looks normalised already"),
        (np.full((12, 12), 300.0, np.float64), "float64 values in [300, 300]"),
        (np.zeros((12, 12), np.complex64), "dtype complex64"),
        (np.zeros((0, 12, 12), np.uint8), "empty array"),
    ],
)
def test_arrays_that_are_not_pixels_are_refused(bundle, tmp_path, capsys, array, message):
    """Point 5: bool and int16 arrays were classified without a word."""
    path = tmp_path / "x.npy"
    np.save(path, array)
    assert cli.main(["predict", bundle, str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path}: " in err and message in err, err


@pytest.mark.parametrize("name", ["empty.npy", "empty.png"])
def test_an_empty_file_is_said_to_be_empty(bundle, tmp_path, capsys, name):
    (tmp_path / name).write_bytes(b"")
    assert cli.main(["predict", bundle, str(tmp_path / name)]) == 2
    err = capsys.readouterr().err.strip()
    expected = f"{tmp_path / name}: empty file; expected an image file or a .npy array (numpy.save)"
    assert err == f"gluon-resnetv2 predict: error: {expected}"


def test_16_bit_pixels_are_scaled_exactly_and_said(bundle, tmp_path):
    """uint16 arrays and 16-bit PNGs are 0..65535 pixels: scaled to 0..255 with a warning (PIL alone clips)."""
    grey = np.random.default_rng(1).integers(0, 256, (12, 12)).astype(np.uint8)
    wide = grey.astype(np.uint16) * 257  # the same picture in 16 bits
    np.save(tmp_path / "wide.npy", wide)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    np.save(tmp_path / "grey.npy", grey)
    predictor = Predictor(bundle)
    with pytest.warns(UserWarning, match="16-bit pixels .* scaled to 0..255"):
        _, batch = predictor.load([str(tmp_path / "wide.npy"), str(tmp_path / "wide.png")])
    _, reference = predictor.load([str(tmp_path / "grey.npy")])
    np.testing.assert_allclose(batch[0], reference[0], atol=1e-4)
    np.testing.assert_allclose(batch[1], reference[0], atol=1e-4)


def test_outputs_that_are_not_finite_are_reported(tmp_path, capsys):
    net = _net()
    net.collect_params()[[k for k in net.collect_params() if k.endswith("dense0_bias")][0]].set_data(
        mx.nd.full((10,), np.nan)
    )
    prefix = str(tmp_path / "nan")
    export_bundle(net, prefix, Preprocess(SHAPE, MEAN, STD))
    np.save(tmp_path / "x.npy", np.zeros((12, 12), np.uint8))
    assert cli.main(["predict", prefix, str(tmp_path / "x.npy")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"{tmp_path / 'x.npy'}: the network's output is not finite" in captured.err
    with pytest.raises(ValueError, match="not finite"):
        Predictor(prefix).predict([str(tmp_path / "x.npy")])


# -- point 8: a run that is still training ------------------------------------------------------------------


def test_export_of_a_run_that_still_trains_says_which_iteration(r20_params, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with zipfile.ZipFile(run / "checkpoint.zip", "w") as archive:
        archive.write(r20_params, "net.params")
        archive.writestr("state.json", json.dumps({"iteration": 1200}))
    (run / "status.json").write_text(json.dumps({"status": "running", "iteration": 1250, "total_iterations": 64000}))
    lock = lock_run_dir(str(run))  # a live trainer holds the run
    try:
        assert _cli_export(str(run), str(tmp_path / "e")) == 0
    finally:
        lock.close()
    err = capsys.readouterr().err
    assert f"{run} is still training: exporting its last checkpoint, iteration 1200 of 64000" in err
    assert os.path.isfile(tmp_path / "e-0000.params")
    # the trainer gone (killed) with status.json still saying running
    assert _cli_export(str(run), str(tmp_path / "f")) == 0
    assert "stopped without finishing" in capsys.readouterr().err


def test_a_finished_run_exports_its_final_weights_silently(r20_params, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.params").write_bytes(open(r20_params, "rb").read())
    (run / "checkpoint.zip").write_bytes(b"not read")
    (run / "status.json").write_text(json.dumps({"status": "finished", "iteration": 64000}))
    assert _cli_export(str(run), str(tmp_path / "e")) == 0
    assert "warning" not in capsys.readouterr().err


# -- point 10: from_gluoncv ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gluoncv_files(tmp_path_factory):
    model_zoo = pytest.importorskip("gluoncv.model_zoo")
    directory = tmp_path_factory.mktemp("gluoncv")
    files = {}
    for name, classes in (("cifar_resnet56_v2", 10), ("cifar_resnet20_v2", 100)):
        net = model_zoo.get_model(name, classes=classes)
        net.initialize()
        net(mx.nd.zeros((1, 3, 32, 32)))
        files[(name, classes)] = str(directory / f"{name}_{classes}.params")
        net.save_parameters(files[(name, classes)])
    (directory / "garbage.params").write_bytes(os.urandom(700))
    files["garbage"] = str(directory / "garbage.params")
    return files


@pytest.mark.slow
def test_from_gluoncv_says_what_a_file_holds(gluoncv_files, tmp_path):
    """Point 10: no dmlc-core C++ traceback, no "Set ignore_extra=True"."""
    from gluon_resnetv2 import from_gluoncv

    with pytest.raises(FileNotFoundError) as info:
        from_gluoncv("cifar_resnet20_v2", str(tmp_path / "absent.params"))
    assert info.value.filename == str(tmp_path / "absent.params") and "gluoncv cifar_resnet20_v2" in str(info.value)
    cases = [
        (gluoncv_files["garbage"], {}, f"{gluoncv_files['garbage']}: not an MXNet parameter file"),
        (
            gluoncv_files[("cifar_resnet56_v2", 10)],
            {},
            f"{gluoncv_files[('cifar_resnet56_v2', 10)]} holds gluoncv cifar_resnet56_v2 parameters, "
            "not cifar_resnet20_v2",
        ),
        (gluoncv_files[("cifar_resnet20_v2", 100)], {}, "parameters for 100 classes, not the 10 asked for"),
    ]
    for path, kwargs, message in cases:
        with pytest.raises(ValueError) as info:
            from_gluoncv("cifar_resnet20_v2", path, **kwargs)
        text = str(info.value)
        assert message in text and "Traceback" not in text and "ignore_extra" not in text, text
        assert len(text.splitlines()) == 1
    assert from_gluoncv("cifar_resnet20_v2", gluoncv_files[("cifar_resnet20_v2", 100)], classes=100) is not None


# -- point 11: what predict takes for PREFIX ---------------------------------------------------------------


def test_predict_takes_a_file_of_the_export_or_its_directory(bundle, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((12, 12), np.uint8))
    image = str(tmp_path / "x.npy")
    assert cli.main(["predict", bundle, image]) == 0
    expected = capsys.readouterr().out
    for given in (bundle + "-symbol.json", bundle + "-0000.params", bundle + ".onnx", os.path.dirname(bundle)):
        assert cli.main(["predict", given, image]) == 0, given
        assert capsys.readouterr().out == expected
    assert Predictor(bundle + "-preprocess.json").prefix == bundle


def test_predict_says_what_a_prefix_is(bundle, tmp_path, capsys):
    image = str(tmp_path / "x.npy")
    np.save(image, np.zeros((12, 12), np.uint8))
    missing = str(tmp_path / "r110b")
    assert cli.main(["predict", missing + "-symbol.json", image]) == 2
    err = capsys.readouterr().err
    assert "-symbol.json-symbol.json" not in err and f"missing {missing}-symbol.json" in err
    assert "an export PREFIX is the files PREFIX-symbol.json, PREFIX-0000.params and PREFIX-preprocess.json" in err
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert cli.main(["predict", str(run), image]) == 2
    assert f"{run}: a training run directory, not an export" in capsys.readouterr().err
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a", "b"):
        (two / f"{name}-symbol.json").write_text("{}")
    assert cli.main(["predict", str(two), image]) == 2
    assert "a directory with 2 exports (a, b)" in capsys.readouterr().err


def test_unreadable_export_files_are_named(bundle, tmp_path, capsys):
    copy = str(tmp_path / "copy")
    for suffix in ("-symbol.json", "-0000.params", "-preprocess.json"):
        with open(bundle + suffix, "rb") as src, open(copy + suffix, "wb") as dst:
            dst.write(src.read())
    np.save(tmp_path / "x.npy", np.zeros((12, 12), np.uint8))
    with open(copy + "-preprocess.json", "wb") as handle:
        handle.write(os.urandom(300))
    assert cli.main(["predict", copy, str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith(f"gluon-resnetv2 predict: error: {copy}-preprocess.json: not valid JSON")
        and len(err.splitlines()) == 1
    )
    with open(copy + "-symbol.json", "w") as handle:
        handle.write("{ truncated")
    os.remove(copy + "-preprocess.json")
    assert cli.main(["predict", copy, str(tmp_path / "x.npy")]) == 2
    assert f"{copy}-symbol.json: not valid JSON" in capsys.readouterr().err


# -- point 13: the ONNX export of a gated net prints nothing of its own --------------------------------------


def test_onnx_export_of_a_gated_net_prints_no_node_names(tmp_path, capfd):
    pytest.importorskip("onnx")
    net = cifar_resnet(8, classes=10, activation="original", shortcut="exclusive_gating", gate_bias=-2.0)
    net.initialize()
    net(mx.nd.zeros((1,) + SHAPE))
    export_bundle(net, str(tmp_path / "gated"), Preprocess(SHAPE, MEAN, STD), onnx=True)
    captured = capfd.readouterr()
    assert "rminusscalar" not in captured.out + captured.err and captured.out == ""
    assert os.path.isfile(tmp_path / "gated.onnx")


# -- point 14 and channels: export's options and parameter files ---------------------------------------------


def test_dataset_gives_the_input_shape_when_mean_std_and_classes_are_explicit(tmp_path, capsys):
    """Point 14: --dataset with --mean/--std/--class-names asked for --input-shape."""
    net = get_model("cifar_resnet20_v2", classes=3)
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    net.save_parameters(str(tmp_path / "net.params"))
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    args = ["export", "--model", "cifar_resnet20_v2", "--params", str(tmp_path / "net.params")]
    args += ["--out", str(tmp_path / "e"), "--dataset", "synthetic", "--mean", "1,2,3", "--std", "4,5,6"]
    assert cli.main(args + ["--class-names", str(tmp_path / "classes.txt")]) == 0, capsys.readouterr().err
    pre = Preprocess.load(str(tmp_path / "e-preprocess.json"))
    assert pre.input_shape == (3, 32, 32) and pre.classes == ["a", "b", "c"] and pre.mean == [1.0, 2.0, 3.0]


def test_parameters_for_another_number_of_channels_are_named(tmp_path, capsys):
    path = str(tmp_path / "rgb.params")
    net = get_model("cifar_resnet20_v2", classes=10)
    net.initialize()
    net(mx.nd.zeros((1, 3, 12, 12)))
    net.save_parameters(path)
    assert _cli_export(path, str(tmp_path / "e")) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"gluon-resnetv2 export: error: {path}: trained on 3-channel images; this export expects 1 "
        "(--input-shape 1,1,12,12)"
    )
    assert sorted(os.listdir(tmp_path)) == ["rgb.params"]
    with pytest.raises(ValueError, match="trained on 3-channel images; this export expects 1"):
        export_bundle(net, str(tmp_path / "api"), Preprocess(SHAPE, MEAN, STD))
    assert sorted(os.listdir(tmp_path)) == ["rgb.params"]


def test_a_broken_config_json_is_named(r20_params, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.params").write_bytes(open(r20_params, "rb").read())
    (run / "config.json").write_bytes(b"\x89PNG\r\n\x1a\n binary")
    assert _cli_export(str(run), str(tmp_path / "e")) == 2
    err = capsys.readouterr().err
    assert re.search(rf"{re.escape(str(run / 'config.json'))}: not valid JSON .*expected a training run", err)


def test_the_array_reader_still_takes_plain_pixels():
    items = array_images(np.full((12, 12), 255, np.uint8), "x.npy", SHAPE)
    assert len(items) == 1 and items[0][1].max() == 255


@pytest.mark.parametrize("content", [bytes(range(256)) * 8, b"iteration,epoch\n\0\0\0\n"], ids=["binary", "nul"])
def test_a_binary_log_csv_is_named(tmp_path, capsys, content):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.csv").write_bytes(content)
    assert cli.main(["plot", str(run), "-o", str(tmp_path / "fig.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"gluon-resnetv2 plot: error: {run / 'log.csv'}: binary data, not a text CSV file; expected the log.csv "
        "of a training run"
    )
    assert sorted(os.listdir(tmp_path)) == ["run"]


def test_a_stale_staging_directory_of_a_killed_export_is_cleared(bundle, tmp_path):
    import subprocess

    dead = subprocess.Popen(["true"])  # a pid that has ended, as a SIGKILLed export's
    dead.wait()
    prefix = str(tmp_path / "r8")
    stale = tmp_path / f".r8-symbol.json.staging-{dead.pid}-x"
    (stale / "new").mkdir(parents=True)
    (stale / "new" / "0-r8-symbol.json").write_text("half")
    export_bundle(_net(), prefix, Preprocess(SHAPE, MEAN, STD))
    assert sorted(os.listdir(tmp_path)) == ["r8-0000.params", "r8-preprocess.json", "r8-symbol.json"]


def test_a_checkpoint_of_another_network_is_one_line_naming_the_checkpoint(r20_params, tmp_path, capsys):
    """Not the copy extracted to a temporary directory, and not every parameter name."""
    net = get_model("cifar_resnet20_v2", classes=100)
    net.initialize()
    net(mx.nd.zeros((1,) + SHAPE))
    net.save_parameters(str(tmp_path / "c100.params"))
    checkpoint = tmp_path / "checkpoint.zip"
    with zipfile.ZipFile(checkpoint, "w") as archive:
        archive.write(tmp_path / "c100.params", "net.params")
    assert _cli_export(str(checkpoint), str(tmp_path / "e"), "--classes", "10") == 2
    err = capsys.readouterr().err.strip()
    expected = f"{checkpoint}: an output layer for 100 classes, this network has 10 (--classes 100)"
    assert err == f"gluon-resnetv2 export: error: {expected}"
