"""What ``predict`` and ``export`` do with inputs a new user gives: stacks of grey images, 0..1 batches,
one bad file among good ones, malformed shapes, existing bundles, run directories, broken parameter files."""

import os
import stat
import zipfile

import mxnet as mx
import numpy as np
import pytest

from gluon_resnetv2 import cli
from gluon_resnetv2.deploy import Predictor, Preprocess, array_images, export_bundle
from gluon_resnetv2.nets.zoo import get_model

SHAPE = (1, 12, 12)
MEAN, STD = [73.0], [90.0]


def _net():
    net = get_model("cifar_resnet20_v2", classes=10)
    net.initialize(mx.init.Xavier(magnitude=2))
    net(mx.nd.zeros((1,) + SHAPE))
    return net


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    net = _net()
    prefix = str(tmp_path_factory.mktemp("export") / "r20")
    export_bundle(net, prefix, Preprocess(SHAPE, MEAN, STD, dataset="toy"))
    return net, prefix


@pytest.fixture(scope="module")
def params(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("params") / "net.params")
    _net().save_parameters(path)
    return path


def _export_args(params, out, *extra):
    return [
        "export",
        "--model",
        "cifar_resnet20_v2",
        "--params",
        params,
        "--out",
        out,
        "--input-shape",
        "1,1,12,12",
        "--mean",
        "73",
        "--std",
        "90",
        *extra,
    ]


# -- point 5: layouts of .npy arrays --------------------------------------------------------------------


def test_a_stack_of_grey_images_is_n_images(bundle, tmp_path):
    """(N, H, W) with the export's H, W: N grey images, each classified as on its own."""
    _, prefix = bundle
    images = np.random.default_rng(0).integers(0, 256, (4, 12, 12)).astype(np.uint8)
    np.save(tmp_path / "stack.npy", images)
    predictor = Predictor(prefix)
    names, probs = predictor.predict([str(tmp_path / "stack.npy")])
    assert names == [f"{tmp_path / 'stack.npy'}[{i}]" for i in range(4)]
    for i in range(4):
        np.save(tmp_path / f"one{i}.npy", images[i])
        _, single = predictor.predict([str(tmp_path / f"one{i}.npy")])
        np.testing.assert_allclose(probs[i], single[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "shape, count, layout",
    [
        ((5, 12, 12), 5, "NHW"),
        ((1, 12, 12), 1, "CHW"),
        ((12, 12, 3), 1, "HWC"),
        ((1, 20, 20), 1, "CHW"),
        ((6, 1, 12, 12), 6, "NCHW"),
        ((6, 12, 12, 1), 6, "NHWC"),
        ((2, 12, 12, 3), 2, "NHWC"),
    ],
)
def test_array_layouts(shape, count, layout):
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) % 200 + 2
    items = array_images(array, "a.npy", SHAPE)
    assert len(items) == count
    first = items[0][1]
    expected = {
        "NHW": lambda: array[0][:, :, None],
        "CHW": lambda: array.transpose(1, 2, 0),
        "HWC": lambda: array,
        "NCHW": lambda: array[0].transpose(1, 2, 0),
        "NHWC": lambda: array[0],
    }[layout]()
    np.testing.assert_array_equal(first, expected)


@pytest.mark.parametrize(
    "shape, input_shape",
    [
        ((4, 12, 12), (3, 12, 12)),
        ((3, 12, 3), (3, 12, 12)),
        ((2, 3, 12, 3), (3, 12, 12)),
        # issue 20 point 5: N grey images of another size than the export's, not one N-channel image
        ((2, 20, 20), (1, 12, 12)),
        ((3, 20, 20), (1, 12, 12)),
        ((4, 20, 20), (3, 12, 12)),
    ],
)
def test_ambiguous_arrays_are_refused_naming_shape_and_layouts(shape, input_shape):
    with pytest.raises(ValueError) as info:
        array_images(np.ones(shape, np.uint8), "x.npy", input_shape)
    text = str(info.value)
    assert f"shape {shape}" in text and "ambiguous" in text and "(N, H, W)" in text and "(N, C, H, W)" in text


# -- point 6: the 0..1 warning for batches ----------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 12, 12), (3, 12, 12, 1), (12, 12)])
def test_zero_one_floats_warn_for_batches_too(shape):
    with pytest.warns(UserWarning, match="within \\[0, 1\\]"):
        array_images(np.full(shape, 0.5, np.float32), "x.npy", SHAPE)


# -- point 16: one bad file among good ones ----------------------------------------------------------------


def test_predict_prints_the_good_inputs_and_names_the_bad_one(bundle, tmp_path, capsys):
    _, prefix = bundle
    np.save(tmp_path / "a.npy", np.full((12, 12), 100, np.uint8))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    np.save(tmp_path / "c.npy", np.full((12, 12), 7, np.uint8))
    code = cli.main(
        ["predict", prefix, str(tmp_path / "a.npy"), str(tmp_path / "bad.png"), str(tmp_path / "c.npy"), "--top-k", "1"]
    )
    out, err = capsys.readouterr()
    assert code == 2
    assert [line for line in out.splitlines() if not line.startswith(" ")] == [
        str(tmp_path / "a.npy"),
        str(tmp_path / "c.npy"),
    ]
    assert "bad.png: cannot read as an image" in err and len(err.strip().splitlines()) == 1


# -- point 7: --input-shape --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["1,3,32", "1,1,12,12,1", "0,1,12,12", "1,-1,12,12", "a,b"])
def test_input_shape_must_be_four_positive_integers(params, tmp_path, capsys, shape):
    args = _export_args(params, str(tmp_path / "x"))
    args[args.index("--input-shape") + 1] = shape
    assert cli.main(args) == 2
    assert "expected exactly four positive integers N,C,H,W" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


# -- point 8: existing bundles --------------------------------------------------------------------------


def test_export_refuses_to_overwrite_without_force_and_replaces_every_file_with_it(params, tmp_path, capsys):
    out = str(tmp_path / "bundle")
    assert cli.main(_export_args(params, out)) == 0
    open(out + ".onnx", "wb").write(b"stale")  # as an earlier --onnx export of another network left it
    symbol = open(out + "-symbol.json").read()
    assert cli.main(_export_args(params, out)) == 2
    err = capsys.readouterr().err
    assert "is already an export" in err and "--force" in err and open(out + ".onnx", "rb").read() == b"stale"
    assert cli.main(_export_args(params, out, "--force")) == 0
    assert not os.path.exists(out + ".onnx") and open(out + "-symbol.json").read() == symbol
    assert sorted(os.listdir(tmp_path)) == ["bundle-0000.params", "bundle-preprocess.json", "bundle-symbol.json"]
    mode = stat.S_IMODE(os.stat(out + "-preprocess.json").st_mode)
    assert mode == stat.S_IMODE(os.stat(out + "-symbol.json").st_mode) == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- point 11: what --params names --------------------------------------------------------------------------


def test_params_may_be_a_run_directory(params, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with open(params, "rb") as src:
        (run / "model.params").write_bytes(src.read())
    assert cli.main(_export_args(str(run), str(tmp_path / "e"))) == 0
    assert os.path.isfile(tmp_path / "e-0000.params")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: str(d / "absent.params"), "absent.params: no such file"),
        (lambda d: (d / "empty").mkdir() or str(d / "empty"), "a directory without model.params or checkpoint.zip"),
        (lambda d: (d / "junk.params").write_bytes(os.urandom(600)) and str(d / "junk.params"), "not a parameter file"),
        (lambda d: _truncated_checkpoint(d), "checkpoint is corrupt"),
    ],
)
def test_params_errors_each_say_what_is_wrong(tmp_path, capsys, make, message):
    path = make(tmp_path)
    assert cli.main(_export_args(path, str(tmp_path / "out"))) == 2
    err = capsys.readouterr().err
    assert message in err and "--model is required" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def _truncated_checkpoint(directory):
    path = directory / "checkpoint.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("net.params", os.urandom(4000))
        archive.writestr("state.json", "{}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def test_params_of_another_network_does_not_fit(params, tmp_path, capsys):
    args = _export_args(params, str(tmp_path / "x"))
    args[args.index("--model") + 1] = "cifar_resnet32_v2"
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert f"{params} holds a network of another depth: 9 residual units ([3, 3, 3] per stage) where " in err
    assert "cifar_resnet32_v2 has 15 ([5, 5, 5])" in err and "Traceback" not in err and len(err.splitlines()) == 1


# -- point 10: unwritable output --------------------------------------------------------------------------------


def test_export_to_an_unwritable_place_is_one_line(params, tmp_path, capsys):
    (tmp_path / "file").write_text("a file where a directory should be")
    assert cli.main(_export_args(params, str(tmp_path / "file" / "sub" / "x"))) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"gluon-resnetv2 export: error: {tmp_path / 'file' / 'sub'}: Not a directory"
