"""``gluon-resnetv2 train``: parse the options into a TrainConfig and call :func:`gluon_resnetv2.train.train`
(or :func:`~gluon_resnetv2.train.resume` with ``--resume DIR``)."""

import argparse
import dataclasses
import json
import sys

from .. import train as training
from ..train.devices import parse_gpus
from ..train.recipe import DEFAULT_DATASET, OPTION_GROUPS, TrainConfig
from .model_args import add_model_args, model_kwargs

# Every training option is declared once, as a TrainConfig field with metadata (train/recipe.py); the
# parser, the config from the parsed options and the --resume overrides are generated from it.
_FIELDS = [field for field in dataclasses.fields(TrainConfig) if field.metadata.get("group")]


def _flags(field):
    """``[(option string, add_argument kwargs)]`` of one TrainConfig field."""
    meta = field.metadata
    if isinstance(meta["flags"], list):
        return [(flag, dict(kwargs, dest=field.name)) for flag, kwargs in meta["flags"]]
    flag = meta["flags"] or "--" + field.name.replace("_", "-")
    cli = {key: value for key, value in meta["cli"].items() if key != "exclusive"}
    if isinstance(cli.get("type"), str):
        cli["type"] = _CONVERTERS[cli["type"]]
    return [(flag, dict(cli, default=None, help=meta["help"]))]


def _dest(field):
    return _flags(field)[0][1].get("dest") or _flags(field)[0][0].lstrip("-").replace("-", "_")


def _model_options():
    """The destinations of the model options (commands/model_args.py), which describe a new run too."""
    return tuple(action.dest for action in add_model_args(argparse.ArgumentParser())._group_actions)


def _data_option(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        value = json.loads(value)
    except ValueError:
        pass  # a plain string
    return key.strip(), value


def _parse_gpus(text):
    return parse_gpus(text)


_CONVERTERS = {"key_value": _data_option}
_TO_CONFIG = {"gpus": _parse_gpus, "pairs": lambda pairs: dict(pairs or [])}
_FIELD = {field.name: field for field in _FIELDS}


def add_run_args(parser, dataset_default=None, model_default=None):
    """The options of a training run (shared by the command and scripts/train_*.py)."""
    add_model_args(parser, model_required=False, default_model=model_default)
    groups, exclusive = {}, {}
    for field in _FIELDS:
        key = field.metadata["group"]
        if key not in groups:
            groups[key] = parser.add_argument_group(OPTION_GROUPS[key])
        target = groups[key]
        if field.metadata["cli"].get("exclusive"):
            name = (key, field.metadata["cli"]["exclusive"])
            if name not in exclusive:
                exclusive[name] = groups[key].add_mutually_exclusive_group()
            target = exclusive[name]
        for flag, kwargs in _flags(field):
            if field.name == "dataset":
                # The default is filled in by config_from_args, so that --resume can tell an option given from none.
                kwargs.update(
                    default=dataset_default, help=kwargs["help"].format(default=dataset_default or DEFAULT_DATASET)
                )
            target.add_argument(flag, **kwargs)
    return parser


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a network with the paper's recipe",
        description="Train a network (paper recipe: SGD momentum 0.9, wd 1e-4, batch 128, lr 0.1 /10 at 32k "
        "and 48k iterations, 64k iterations on CIFAR). Writes OUT/log.csv, config.json, "
        "status.json and checkpoints; `--resume OUT` continues a stopped run.",
    )
    add_run_args(parser)
    parser.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR from its checkpoint")
    parser.set_defaults(func=run)
    return parser


def _value(args, field):
    """The parsed value of ``field``'s option, converted for the config (None when not given)."""
    value = getattr(args, _dest(field), None)
    convert = field.metadata["to_config"]
    return _TO_CONFIG[convert](value) if convert else value


def config_from_args(args):
    """A :class:`~gluon_resnetv2.train.TrainConfig` from parsed options (ValueError for missing ones)."""
    missing = [f"--{name}" for name in ("model", "out") if getattr(args, name, None) is None]
    if missing:
        raise ValueError(f"train needs {', '.join(missing)} (or --resume DIR)")
    if args.cpus is not None and args.gpus is not None:
        raise ValueError("give either --cpus or --gpus, not both")
    fields = dict(model=args.model, model_kwargs=model_kwargs(args))
    for field in _FIELDS:
        value = _value(args, field)
        if value is not None:
            fields[field.name] = value
    if fields.get("iterations") is not None and fields.get("lr_steps"):
        fields["lr_steps"] = [int(step) for step in fields["lr_steps"]]
    return TrainConfig(**fields)


def resume_overrides(args):
    """The settings ``--resume`` takes from the command line (those a resume may change); ValueError naming
    the options that describe a new run."""
    run_options = _model_options() + tuple(_dest(field) for field in _FIELDS if not field.metadata["resume"])
    given = [
        f"--{name.replace('_', '-')}" for name in run_options if getattr(args, name, None) not in (None, [], False)
    ]
    if given:
        raise ValueError(
            f"--resume continues with the settings in {args.resume}/config.json; "
            f"do not combine it with {', '.join(given)}"
        )
    if args.cpus is not None and args.gpus is not None:
        raise ValueError("give either --cpus or --gpus, not both")
    overrides = {}
    for field in _FIELDS:
        if field.metadata["resume"] and _value(args, field) is not None:
            overrides[field.name] = _value(args, field)
    if "cpus" in overrides or "gpus" in overrides:  # the devices are replaced as a whole
        overrides.update(cpus=_value(args, _FIELD["cpus"]), gpus=_value(args, _FIELD["gpus"]))
    return overrides


def run(args):
    try:
        if args.resume is not None:
            status = training.resume(args.resume, **resume_overrides(args))
        else:
            status = training.train(config_from_args(args))
    except KeyboardInterrupt as err:
        # 130 = 128 + SIGINT, 143 = 128 + SIGTERM, as a shell reports a process the signal stopped.
        out = args.resume or args.out
        kept = "checkpoint written" if getattr(err, "checkpoint", False) else "last checkpoint kept"
        print(
            f"gluon-resnetv2 train: {str(err) or 'interrupted'} ({kept}); continue with --resume {out}", file=sys.stderr
        )
        return getattr(err, "exit_code", 130)
    except Exception as err:  # MXNet's own errors carry a C++ backtrace: keep its last line
        if type(err).__name__ != "MXNetError":
            raise
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        raise RuntimeError(f"MXNet: {lines[-1] if lines else err}") from None
    if status.get("status") == "failed":
        print(f"gluon-resnetv2 train: run failed: {status.get('reason')}", file=sys.stderr)
        return 1
    return 0
