"""``gluon-resnetv2 export --model NAME --params FILE --out PREFIX [--onnx]``: deployable files.

Writes ``PREFIX-symbol.json``, ``PREFIX-0000.params``, ``PREFIX-preprocess.json`` (input shape, the
training set's per-channel mean/std, class names, data set) and with ``--onnx`` ``PREFIX.onnx``; the work
is :func:`gluon_resnetv2.deploy.export_bundle`.

Where the preprocessing comes from, first match wins: ``--mean``/``--std`` given explicitly; the data set
``--dataset`` (its training statistics, read from ``--data-dir``); the ``config.json`` of the training run
that wrote ``--params`` (``<run>/model.params`` sits next to it), which also supplies the model options.
"""

import fcntl
import json
import os
import re
import tempfile
import warnings
import zipfile

import mxnet as mx

from ..data import load_dataset
from ..deploy import Preprocess, export_bundle
from ..deploy.export import input_channels
from ..fileio import load_json, read_json
from ..nets.gluoncv import from_gluoncv
from ..nets.zoo import get_model
from ..train.build import MODEL_NAME
from ..train.checkpoint import CHECKPOINT_NAME
from ..train.runlog import CONFIG_NAME, LOCK_NAME, STATUS_NAME
from ..validate import ListOf, finite_float, positive_int
from .model_args import add_model_args, model_kwargs

#: ``--mean`` / ``--std``: per-channel pixel statistics (0..255; a std of 0 would divide by zero).
PIXEL_MEANS = ListOf(finite_float(0, 255), what="mean")
PIXEL_STDS = ListOf(finite_float(0, 255, low_open=True), what="std")


def _shape(text):
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"--input-shape {text!r}: expected exactly four positive integers N,C,H,W such as 1,3,32,32")
    return shape


def _floats(text, option):
    if isinstance(text, list):  # already parsed and checked (--mean/--std's type)
        return text
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} {text!r}: expected comma-separated numbers (pixel units 0..255)") from None


def add_parser(subparsers):
    """Register ``export`` on the ``gluon-resnetv2`` sub-command parsers."""
    parser = subparsers.add_parser(
        "export",
        help="export a trained network (symbol, params, preprocessing, optional ONNX)",
        description="Export a trained network for deployment: PREFIX-symbol.json, PREFIX-0000.params, "
        "PREFIX-preprocess.json (mean/std, input shape, class names) and with --onnx PREFIX.onnx.",
    )
    add_model_args(parser, model_required=False)
    parser.add_argument(
        "--classes", type=positive_int, default=None, help="number of classes (default: the data set's)"
    )
    parser.add_argument(
        "--params",
        required=True,
        metavar="FILE",
        help="trained parameters: a .params file (e.g. RUN/model.params), RUN/checkpoint.zip or "
        "a training run directory RUN",
    )
    parser.add_argument("--out", required=True, metavar="PREFIX", help="output prefix, e.g. exports/r110")
    parser.add_argument("--onnx", action="store_true", help="also write PREFIX.onnx (needs the [onnx] extra)")
    parser.add_argument(
        "--input-shape",
        default=None,
        metavar="N,C,H,W",
        help="traced input shape (default: 1 and the data set's image shape)",
    )
    parser.add_argument("--dataset", default=None, help="training data set whose statistics normalise the input")
    parser.add_argument("--data-dir", default=None, help="where the data set lives (default: its usual place)")
    parser.add_argument(
        "--mean", type=PIXEL_MEANS, default=None, metavar="M[,M,M]", help="per-channel mean, pixel units"
    )
    parser.add_argument("--std", type=PIXEL_STDS, default=None, metavar="S[,S,S]", help="per-channel std, pixel units")
    parser.add_argument(
        "--class-names",
        default=None,
        metavar="FILE",
        help="text file with one class name per line (default: the data set's)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing export at PREFIX (every file of it, a stale PREFIX.onnx included)",
    )
    parser.add_argument(
        "--gluoncv", action="store_true", help="--params is a gluoncv model-zoo file (loaded with gluoncv's layout)"
    )
    parser.set_defaults(func=run)
    return parser


def run_config(params_path):
    """The ``config.json`` of the training run that wrote ``params_path``, or {}."""
    path = os.path.join(os.path.dirname(os.path.abspath(params_path)), CONFIG_NAME)
    if not os.path.isfile(path):
        return {}
    config = load_json(path, "training run's config.json (written by gluon-resnetv2 train)")
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a training run's config.json (a JSON object expected)")
    return config


def params_file(path):
    """The parameter file ``--params`` names: the file itself, or in a training run directory its
    ``model.params`` (the final weights) when the run finished, else its ``checkpoint.zip`` (with a warning
    saying the run is unfinished and which iteration the checkpoint holds)."""
    if os.path.isdir(path):
        model, checkpoint = os.path.join(path, MODEL_NAME), os.path.join(path, CHECKPOINT_NAME)
        status = read_json(os.path.join(path, STATUS_NAME)) or {}
        finished = status.get("status") == "finished" or (not status and os.path.isfile(model))
        if os.path.isfile(checkpoint) and not finished:
            warnings.warn(_unfinished(path, status, checkpoint), stacklevel=2)
            return checkpoint
        for name in (model, checkpoint):
            if os.path.isfile(name):
                return name
        raise FileNotFoundError(
            f"--params {path}: a directory without model.params or checkpoint.zip (not a "
            "finished or checkpointed training run)"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--params {path}: no such file")
    return path


def _trainer_alive(run_dir):
    """Whether a trainer holds ``run_dir``'s lock (see :func:`gluon_resnetv2.train.runlog.lock_run_dir`)."""
    try:
        with open(os.path.join(run_dir, LOCK_NAME), encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
    except OSError:
        return False
    return False


def _unfinished(run_dir, status, checkpoint):
    """What the warning for a run that has not finished says: its state and the checkpoint's iteration."""
    total = status.get("total_iterations")
    try:
        with zipfile.ZipFile(checkpoint) as archive:
            iteration = json.loads(archive.read("state.json").decode("utf-8")).get("iteration")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        iteration = None  # load_params reports a corrupt checkpoint
    if _trainer_alive(run_dir):
        state = "is still training"
    elif status.get("status") in ("running", None):
        state = "stopped without finishing (its trainer is gone)"
    else:
        state = f"is unfinished (status {status['status']})"
    at = f"iteration {iteration}" if iteration is not None else "an unknown iteration"
    of = f" of {total}" if total else ""
    return f"{run_dir} {state}: exporting its last checkpoint, {at}{of}, not the final weights"


def _last_line(err):
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def load_params(net, path, ctx):
    """Load ``path`` (a .params file or a training checkpoint.zip) into ``net``; a corrupt checkpoint, a file
    that is not MXNet parameters and parameters of another network each get their own ValueError."""
    path = params_file(path)
    with open(path, "rb") as handle:
        is_zip = handle.read(4) == b"PK\x03\x04"
    with tempfile.TemporaryDirectory() as tmp:
        if is_zip or path.endswith(".zip"):
            try:
                with zipfile.ZipFile(path) as archive:
                    if "net.params" not in archive.namelist():
                        raise ValueError(f"{path}: a zip file without net.params, not a training checkpoint")
                    params = archive.extract("net.params", tmp)
            except (zipfile.BadZipFile, EOFError, OSError) as err:
                raise ValueError(
                    f"{path}: checkpoint is corrupt ({err}); use the run's model.params or an earlier copy"
                ) from None
        else:
            params = path
        try:
            mx.nd.load(params)
        except mx.base.MXNetError:
            raise ValueError(
                f"{path}: not a parameter file (MXNet cannot read it); give a .params file written "
                "by training (RUN/model.params) or RUN/checkpoint.zip"
            ) from None
        try:
            # cast_dtype: a float16 file (written by --dtype float16 runs before they saved float32) loads too
            net.load_parameters(params, ctx=ctx, cast_dtype=True)
        except (mx.base.MXNetError, AssertionError, ValueError) as err:
            # The network's own message lists every name, and for a checkpoint names the extracted copy.
            raise ValueError(_mismatch(path, params, net, err)) from None


def _units(names):
    """Residual units per stage of parameter ``names`` (``features.S.U.branch...``), stage by stage."""
    stages = {}
    for name in names:
        if match := re.match(r"features\.(\d+)\.(\d+)\.branch\.", name):
            stages.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    return [len(stages[s]) for s in sorted(stages)]


def _mismatch(path, params, net, err):
    """One line: how the parameters in ``params`` (read from the user's ``path``) differ from ``net``'s."""
    hint = "check --model and the model options (--classes, --activation, --shortcut ...)"
    stored = {k.split(":", 1)[-1]: tuple(v.shape) for k, v in mx.nd.load(params).items()}
    own = net._collect_params_with_prefix()
    theirs, ours = _units(stored), _units(own)
    if theirs != ours:
        return (
            f"{path} holds a network of another depth: {sum(theirs)} residual units ({theirs} per stage) where "
            f"{net.name} has {sum(ours)} ({ours}); {hint}"
        )
    output, mine = stored.get("output.weight"), own.get("output.weight")
    if output and mine is not None and mine.shape[0] and output[0] != mine.shape[0]:
        return (
            f"{path}: an output layer for {output[0]} classes, this network has {mine.shape[0]} (--classes {output[0]})"
        )
    missing, unexpected = sorted(set(own) - set(stored)), sorted(set(stored) - set(own))
    shapes = [
        f"{k} {stored[k]} in the file, {own[k].shape} here"
        for k in own
        if k in stored and all(own[k].shape) and tuple(own[k].shape) != stored[k]
    ]
    parts = [f"{len(missing)} parameters missing (e.g. {missing[0]})"] if missing else []
    parts += [f"{len(unexpected)} unexpected (e.g. {unexpected[0]})"] if unexpected else []
    parts += [f"{len(shapes)} of another shape (e.g. {shapes[0]})"] if shapes else []
    detail = "; ".join(parts) or _last_line(err)
    return f"{path} does not fit {net.name}: {detail}; {hint}"


def build_preprocess(args, config, input_shape):
    """The :class:`~gluon_resnetv2.deploy.Preprocess` the options (or the training run) describe."""

    dataset_name = args.dataset or config.get("dataset")
    dataset = None
    needed = args.mean is None or args.std is None or args.class_names is None or input_shape is None
    if dataset_name and needed:
        data_dir = args.data_dir or (config.get("data_dir") if not args.dataset else None)
        dataset = load_dataset(dataset_name, data_dir=data_dir, split="test")
    if args.mean is not None and args.std is not None:
        mean, std = _floats(args.mean, "--mean"), _floats(args.std, "--std")
    elif dataset is not None:
        mean, std = list(dataset.mean), list(dataset.std)
    else:
        raise ValueError(
            "the preprocessing is unknown: give --dataset NAME (the training set, whose per-channel "
            "statistics normalised the inputs) or --mean and --std in pixel units, or --params "
            "from a training run directory that has config.json"
        )
    classes = None
    if args.class_names:
        try:
            with open(args.class_names, encoding="utf-8") as handle:
                classes = [line.strip() for line in handle if line.strip()]
        except UnicodeDecodeError:
            raise ValueError(f"--class-names {args.class_names}: not a text file (one class name per line)") from None
        if not classes:
            raise ValueError(f"--class-names {args.class_names}: empty; expected one class name per line")
    elif dataset is not None:
        classes = list(dataset.classes)
    if input_shape is None:
        if dataset is None:
            raise ValueError("--input-shape is needed when no --dataset gives the image shape")
        input_shape = (1,) + tuple(dataset.image_shape)
    return Preprocess(input_shape[1:], mean, std, classes=classes, dataset=dataset_name), input_shape


def run(args):
    """Build the network, load the parameters, write the export; returns 0."""

    ctx = mx.cpu()
    args.params = params_file(args.params)
    config = run_config(args.params)
    model = args.model or config.get("model")
    if not model:
        raise ValueError("--model is required (no training run config.json next to --params names it)")
    input_shape = _shape(args.input_shape) if args.input_shape else None
    preprocess, input_shape = build_preprocess(args, config, input_shape)
    kwargs = dict(config.get("model_kwargs") or {}) if model == config.get("model") else {}
    kwargs.update(model_kwargs(args))
    if "classes" not in kwargs:
        if preprocess.classes is not None:
            kwargs["classes"] = len(preprocess.classes)
        elif config.get("classes"):
            kwargs["classes"] = int(config["classes"])
    if preprocess.classes is not None and kwargs.get("classes") not in (None, len(preprocess.classes)):
        raise ValueError(f"--classes {kwargs['classes']} but {len(preprocess.classes)} class names")
    if args.gluoncv:
        net = from_gluoncv(model, args.params, ctx=ctx, **kwargs)
    else:
        net = get_model(model, **kwargs)
        load_params(net, args.params, ctx)
    channels = input_channels(net)
    if channels is not None and channels != input_shape[1]:
        source = f"--input-shape {args.input_shape}" if args.input_shape else f"the {preprocess.dataset} images"
        raise ValueError(
            f"{args.params}: trained on {channels}-channel images; this export expects {input_shape[1]} ({source})"
        )
    files = export_bundle(
        net, args.out, preprocess, batch_size=input_shape[0], onnx=args.onnx, ctx=ctx, force=args.force
    )
    for path in files.values():
        print(f"wrote {path}")
    return 0
