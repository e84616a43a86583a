"""Issue 20, all or nothing on disk: an export interrupted by a real SIGINT/SIGTERM or failing on a real full
disk leaves the previous export byte-identical and no stray files, and a retry works; Ctrl-C in any command
is one line and exit status 130.

The subprocess tests make the export slow deterministically with the staging test hook
(:data:`gluon_resnetv2.fileio.PAUSE_ENV`, a sleep between the files) and signal it once the first files are
staged.  The full-disk test mounts a small tmpfs (root only; skipped where mount is not permitted).
"""

import glob
import os
import signal
import subprocess
import time

import mxnet as mx
import pytest
from cli_process import cli as cli_process
from cli_process import communicate

from gluon_resnetv2 import cli, export
from gluon_resnetv2.deploy import Preprocess, export_bundle
from gluon_resnetv2.fileio import PAUSE_ENV
from gluon_resnetv2.nets.cifar import cifar_resnet
from gluon_resnetv2.nets.zoo import get_model

SHAPE = (1, 12, 12)


def _net(model="cifar_resnet20_v2", seed=0):
    mx.random.seed(seed)
    net = get_model(model, classes=10)
    net.initialize(mx.init.Xavier(magnitude=2))
    net(mx.nd.zeros((1,) + SHAPE))
    return net


@pytest.fixture(scope="module")
def params(tmp_path_factory):
    """Two parameter files of different networks (20 and 32 layers): a new export differs in every file."""
    directory = tmp_path_factory.mktemp("params")
    paths = {}
    for model in ("cifar_resnet20_v2", "cifar_resnet32_v2"):
        paths[model] = str(directory / f"{model}.params")
        _net(model).save_parameters(paths[model])
    return paths


def _args(params, out, model="cifar_resnet20_v2", *extra):
    return [
        "export",
        "--model",
        model,
        "--params",
        params[model],
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


def _snapshot(directory):
    """Every file under ``directory`` (hidden ones included) with its bytes."""
    found = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, directory)] = open(path, "rb").read() if os.path.isfile(path) else None
    return found


def _wait_for_staged(directory, pattern, proc, timeout=60):
    """Poll until a staged file matching ``pattern`` exists in a staging directory of ``directory``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if glob.glob(os.path.join(glob.escape(str(directory)), ".*staging-*", "new", pattern)):
            return
        if proc.poll() is not None:
            pytest.fail(f"the export ended before it was signalled:\n{proc.communicate()[0].decode()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the export never staged its files")


# -- real signals --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_export_interrupted_by_a_real_signal_keeps_the_old_export(params, tmp_path, monkeypatch, signum, code):
    """Point 1 / 12: ``export --onnx --force`` over an export, signalled between its files."""
    pytest.importorskip("onnx")
    out = str(tmp_path / "r")
    assert cli.main(_args(params, out, "cifar_resnet20_v2", "--onnx")) == 0
    before = _snapshot(tmp_path)
    assert sorted(before) == ["r-0000.params", "r-preprocess.json", "r-symbol.json", "r.onnx"]

    monkeypatch.setenv(PAUSE_ENV, "3")
    proc = cli_process(*_args(params, out, "cifar_resnet32_v2", "--onnx", "--force"))
    _wait_for_staged(tmp_path, "*-preprocess.json", proc)  # graph, parameters and preprocessing staged
    proc.send_signal(signum)
    rc, text = communicate(proc, timeout=60)
    assert rc == code, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    assert f"interrupted by {signal.Signals(signum).name}" in lines[0] and f"export {out} left as it was" in lines[0]
    assert _snapshot(tmp_path) == before  # byte-identical, no staging directory, no stray file

    monkeypatch.delenv(PAUSE_ENV)
    rc, text = communicate(cli_process(*_args(params, out, "cifar_resnet32_v2", "--onnx", "--force")), timeout=120)
    assert rc == 0, text
    after = _snapshot(tmp_path)
    assert sorted(after) == sorted(before)
    assert all(after[name] != before[name] for name in before if name != "r-preprocess.json")  # the same mean/std


def test_ctrl_c_inside_an_export_is_one_line_and_130(params, tmp_path, monkeypatch, capsys):
    """The same in process: a KeyboardInterrupt while the last file is written."""
    import gluon_resnetv2.deploy.bundle as bundle

    out = str(tmp_path / "r")
    assert cli.main(_args(params, out)) == 0
    before = _snapshot(tmp_path)
    capsys.readouterr()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle, "write_onnx", interrupted)
    monkeypatch.setattr(bundle, "check_onnx", lambda: None)
    try:
        rc = cli.main(_args(params, out, "cifar_resnet32_v2", "--onnx", "--force"))
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped as a traceback")
    assert rc == 130
    err = capsys.readouterr().err.strip()
    assert err == f"gluon-resnetv2 export: interrupted; export {out} left as it was"
    assert _snapshot(tmp_path) == before


def test_ctrl_c_in_any_command_is_one_line_and_130(monkeypatch, capsys):
    import gluon_resnetv2.commands.models as models

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "run", interrupted)
    parser_args = ["models"]
    try:
        rc = cli.main(parser_args)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped as a traceback")
    assert rc == 130 and capsys.readouterr().err.strip() == "gluon-resnetv2 models: interrupted"


def test_ctrl_c_during_plot_leaves_the_old_figure(tmp_path, monkeypatch, capsys):
    """Point 12: ``plot`` interrupted while matplotlib writes the figure: the old figure stays whole."""
    import matplotlib.figure

    run = tmp_path / "run"
    run.mkdir()
    (run / "log.csv").write_text(
        "iteration,epoch,lr,train_loss,train_error,test_loss,test_error,time\n"
        "10,0.1,0.1,2.0,0.8,2.1,0.8,1.0\n20,0.2,0.1,1.5,0.6,1.6,0.6,2.0\n"
    )
    figure = tmp_path / "fig.png"
    figure.write_bytes(b"the old figure")

    def savefig(self, fname, *args, **kwargs):
        if isinstance(fname, (str, os.PathLike)):
            with open(fname, "wb") as handle:
                handle.write(b"half a fig")
        else:
            fname.write(b"half a fig")
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    try:
        rc = cli.main(["plot", str(run), "-o", str(figure)])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped as a traceback")
    assert capsys.readouterr().err.strip() == f"gluon-resnetv2 plot: interrupted; {figure} left as it was"
    assert rc == 130
    assert sorted(os.listdir(tmp_path)) == ["fig.png", "run"] and figure.read_bytes() == b"the old figure"


# -- a real full disk ------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 5 MiB tmpfs at ``tmp_path/disk`` (unmounted afterwards); skipped where mounting is not permitted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mount)], capture_output=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"cannot mount a tmpfs: {err}")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=20)


def _fill(directory, leave):
    """Fill the file system of ``directory`` up to ``leave`` free bytes with ``directory/filler``."""
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    with open(os.path.join(directory, "filler"), "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))
    return os.path.join(directory, "filler")


def test_export_onto_a_full_disk_keeps_the_old_export(params, small_disk, capsys):
    """Point 2: ``export --force`` onto a full disk; the message names the user's file, not a staging path."""
    out = str(small_disk / "r")
    assert cli.main(_args(params, out)) == 0
    filler = _fill(small_disk, 400_000)  # room for the new graph, not for its 1.9 MB of parameters
    before = _snapshot(small_disk)
    capsys.readouterr()
    assert cli.main(_args(params, out, "cifar_resnet32_v2", "--force")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"gluon-resnetv2 export: error: {out}-0000.params: No space left on device"), err
    assert "staging" not in err and len(err.splitlines()) == 1
    assert _snapshot(small_disk) == before

    os.remove(filler)
    assert cli.main(_args(params, out, "cifar_resnet32_v2", "--force")) == 0
    assert sorted(os.listdir(small_disk)) == ["r-0000.params", "r-preprocess.json", "r-symbol.json"]


def test_python_export_onto_a_full_disk_keeps_the_old_files(small_disk):
    """``gluon_resnetv2.export`` (two files) and ``export_bundle`` follow the same rule."""
    prefix = str(small_disk / "net")
    small = cifar_resnet(8, classes=10)
    small.initialize()
    export(small, prefix, (1,) + SHAPE)
    big = _net("cifar_resnet32_v2")
    _fill(small_disk, 200_000)
    before = _snapshot(small_disk)
    with pytest.raises(OSError) as info:
        export(big, prefix, (1,) + SHAPE)
    assert info.value.filename == f"{prefix}-0000.params"
    with pytest.raises(OSError):
        export_bundle(big, prefix, Preprocess(SHAPE, [73], [90]), force=True)
    assert _snapshot(small_disk) == before


@pytest.fixture(autouse=True)
def _no_pause(monkeypatch):
    monkeypatch.delenv(PAUSE_ENV, raising=False)


def test_a_failure_while_moving_into_place_puts_the_old_files_back(tmp_path, monkeypatch):
    """The commit itself: the third rename of a new file fails; the two already placed are taken back."""
    import gluon_resnetv2.fileio as fileio

    targets = [str(tmp_path / name) for name in ("a", "b", "c")]
    for path in targets[:2] + [str(tmp_path / "stale")]:
        open(path, "w").write(f"old {os.path.basename(path)}")
    before = _snapshot(tmp_path)
    real, placed = os.rename, []

    def rename(src, dst):
        if dst in targets:
            placed.append(dst)
            if len(placed) == 3:
                raise OSError(5, "Input/output error", dst)
        real(src, dst)

    monkeypatch.setattr(fileio.os, "rename", rename)
    with pytest.raises(OSError, match="Input/output error"):
        with fileio.staged(targets, remove=[str(tmp_path / "stale")]) as stage:
            for path in targets:
                open(stage.path(path), "w").write("new")
    assert _snapshot(tmp_path) == before


def test_export_onto_a_read_only_file_system_names_the_directory(params, tmp_path, capsys):
    mount = tmp_path / "ro"
    mount.mkdir()
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], capture_output=True)
    except OSError as err:
        pytest.skip(f"cannot mount a tmpfs: {err}")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.decode(errors='replace').strip()}")
    try:
        assert cli.main(_args(params, str(mount / "r"))) == 2
        assert capsys.readouterr().err.strip() == f"gluon-resnetv2 export: error: {mount}: Read-only file system"
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=20)
