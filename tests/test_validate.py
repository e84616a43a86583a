"""Values are checked where they enter (issue 20): every numeric option of every command, discovered from the
parsers, refuses ``nan``, ``inf`` and a value out of its range with one line naming the option; the Python
API refuses the same values at the call that takes them."""

import argparse
import importlib
import math
import pkgutil

import pytest

from gluon_resnetv2 import cli, commands, demo
from gluon_resnetv2.validate import ListOf, Number, finite_float, name_list, port, positive_int


def _parsers():
    """``{name: parser}`` of every command: the CLI's sub-commands, the ``scripts/`` ones and the demo."""
    parsers = {}
    top = cli.build_parser()
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers.update(action.choices)
    for info in pkgutil.iter_modules(commands.__path__):
        module = importlib.import_module(f"gluon_resnetv2.commands.{info.name}")
        if hasattr(module, "add_arguments") and info.name.replace("_", "-") not in parsers:
            module.add_arguments(parser := argparse.ArgumentParser(prog=info.name))
            parsers[info.name] = parser
    parsers["demo"] = demo.build_parser()
    return parsers


PARSERS = _parsers()


def _numeric(kind):
    return (
        kind
        if isinstance(kind, Number)
        else kind.item
        if isinstance(kind, ListOf) and isinstance(kind.item, Number)
        else None
    )


def _options():
    """``(command, option, Number)`` of every numeric option, and the options typed with a bare int/float."""
    found, bare = [], []
    for name, parser in PARSERS.items():
        for action in parser._actions:
            if not action.option_strings:
                continue
            if action.type in (int, float):
                bare.append(f"{name} {action.option_strings[-1]}")
            elif _numeric(action.type) is not None:
                found.append((name, action.option_strings[-1], _numeric(action.type)))
    return found, bare


NUMERIC, BARE = _options()


def test_every_numeric_option_is_declared_with_a_validator():
    # type=int / type=float lets nan, inf and negative counts through: use gluon_resnetv2.validate.
    assert BARE == []
    assert len(NUMERIC) > 40  # the walk found the commands' options


def _refused(capsys, command, argv):
    with pytest.raises(SystemExit) as exit_info:
        PARSERS[command].parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("command, option, kind", NUMERIC, ids=[f"{c}{o}" for c, o, _ in NUMERIC])
def test_nan_inf_and_out_of_range_are_refused(capsys, command, option, kind):
    bad = ["nan", "inf", "-inf"] + ([kind.outside()] if kind.outside() is not None else [])
    for value in bad:
        line = _refused(capsys, command, [f"{option}={value}"])  # = : "-inf" is not an option
        assert f"argument {option}" in line or f"/{option}:" in line, line
        assert f"expected {kind.describe()}, got {value!r}" in line, line


def test_ranges_are_those_of_the_option():
    assert name_list("a, b") == ["a", "b"]
    assert port("65535") == 65535 and port.outside() == "0"
    assert finite_float(0, 1, high_open=True).describe() == "a finite number in [0, 1)"
    for text in ("", ",", " , "):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a comma-separated list"):
            name_list(text)
    with pytest.raises(argparse.ArgumentTypeError, match="empty item"):
        name_list("a,,b")
    assert positive_int.check(None, "x") is None
    for value in (0, 1.5, True, "3", math.nan):
        with pytest.raises(ValueError, match=r"^n=.*: expected an integer >= 1$"):
            positive_int.check(value, "n")


@pytest.mark.parametrize(
    "command, argv, option",
    [
        ("reproduce", ["table1", "--rows", ""], "--rows"),
        ("reproduce", ["table1", "--gpus", ""], "--gpus"),
        ("train", ["--lr-steps", ""], "--lr-steps"),
        ("train", ["--gpus", ","], "--gpus"),
        ("bench", ["--out", "x", "--models", ""], "--models"),
        ("bench", ["--out", "x", "--modes", "hybrid,warp"], "--modes"),
        ("plot", ["r", "-o", "f.png", "--labels", ""], "--labels"),
        ("launch", ["-n", "1", "--port", "70000"], "--port"),
        ("analyze", ["--out", "x", "--dataset", "mnist"], "--dataset"),
        ("reproduce", ["table1", "--dataset", "mnist"], "--dataset"),
    ],
)
def test_empty_lists_and_unknown_names_are_refused(capsys, command, argv, option):
    assert f"argument {option}" in _refused(capsys, command, argv)


# -- point 6: the model keywords, in Python as on the command line -------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shortcut": "exclusive_gating", "gate_bias": "x"}, "gate_bias='x': expected a finite number"),
        ({"shortcut": "exclusive_gating", "gate_bias": math.nan}, "gate_bias=nan: expected a finite number"),
        ({"shortcut": "constant_scaling", "shortcut_scale": math.nan}, "shortcut_scale=nan"),
        ({"shortcut": "constant_scaling", "residual_scale": math.inf}, "residual_scale=inf"),
        ({"shortcut": "dropout", "shortcut_dropout": 1.0}, "shortcut_dropout=1.0: expected a finite number in [0, 1)"),
        ({"classes": 0}, "classes=0: expected an integer >= 1"),
        ({"activation": 3}, "activation=3 is not a Fig. 4 variant; expected one of original"),
        ({"shortcut": "gate"}, "shortcut='gate' is not a Fig. 2 variant"),
        ({"projection": "pad"}, "projection='pad': expected one of conv, zero_pad"),
    ],
)
def test_get_model_refuses_bad_keywords_at_the_call(kwargs, message):
    from gluon_resnetv2 import get_model

    with pytest.raises(ValueError) as err:
        get_model("cifar_resnet20_v1", **kwargs)
    assert message in str(err.value)


def test_train_refuses_nan_model_and_recipe_values_before_it_starts(tmp_path):
    from gluon_resnetv2.train import TrainConfig, train

    base = dict(model="cifar_resnet20_v2", dataset="synthetic", iterations=1, out=str(tmp_path / "r"))
    for extra, message in [
        (dict(model_kwargs={"shortcut": "exclusive_gating", "gate_bias": math.nan}), "gate_bias=nan"),
        (dict(lr=math.inf), "lr=inf: expected a finite number > 0"),
        (dict(momentum=math.nan), "momentum=nan"),
        (dict(seed=-1), "seed=-1"),
        (dict(lr_steps=[]), "lr_steps=[]: expected at least one milestone"),
    ]:
        with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
            train(TrainConfig(**dict(base, **extra)))
        assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match=r"^epochs=inf"):
        train(TrainConfig(**dict(base, iterations=None, epochs=math.inf)))


@pytest.mark.parametrize(
    "option, message",
    [
        ("num_samples=NaN", "synthetic: num_samples=nan: expected an integer >= 1"),
        ("num_samples=1.5", "synthetic: num_samples=1.5: expected an integer >= 1"),
        ("num_classes=0", "synthetic: num_classes=0: expected an integer >= 1"),
        ("noise=Infinity", "synthetic: noise=inf: expected a finite number >= 0"),
        ("image_shape=[3,-1,8]", "synthetic: image_shape=-1: expected an integer >= 1"),
    ],
)
def test_data_options_are_checked_and_named(capsys, tmp_path, option, message):
    argv = ["train", "--model", "cifar_resnet20_v2", "--dataset", "synthetic", "--data-option", option]
    assert cli.main(argv + ["--iterations", "1", "--no-progress", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"gluon-resnetv2 train: error: {message}"]


@pytest.mark.parametrize("command", ["bench_bf16", "bench_fusion"])
def test_bench_scripts_refuse_an_empty_model_list(capsys, command):
    assert "argument --models: expected a comma-separated list of names, got ''" in _refused(
        capsys, command, ["--models", ""]
    )
    assert PARSERS[command].parse_args([]).models  # the default list parses
