"""``gluon-resnetv2 train``: parse the options into a TrainConfig and call :func:`gluon_resnetv2.train.train`
(or :func:`~gluon_resnetv2.train.resume` with ``--resume DIR``)."""
import argparse
import json
import sys

from ..train.recipe import DATASETS, DEFAULT_DATASET, DTYPES, OPTIMIZERS, SCHEDULES
from .model_args import add_model_args, model_kwargs

KVSTORE_HELP = "device (default), local, nccl; dist_sync / dist_device_sync under `gluon-resnetv2 launch`"

# Options that describe a new run; with --resume they come from DIR/config.json instead.
_RUN_OPTIONS = ("model", "dataset", "out", "batch_size", "epochs", "iterations", "lr", "lr_schedule", "lr_steps",
                "lr_factor", "warmup", "warmup_lr", "momentum", "wd", "optimizer", "seed", "dtype",
                "log_interval", "eval_interval", "eval_subset", "checkpoint_interval", "augment", "train_subset",
                "data_option", "label", "activation", "shortcut", "shortcut_scale", "residual_scale", "gate_bias",
                "shortcut_dropout", "projection")


def _float_list(text):
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _data_option(text):
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        value = json.loads(value)
    except ValueError:
        pass  # a plain string
    return key.strip(), value


def add_run_args(parser, dataset_default=None, model_default=None):
    """The options of a training run (shared by the command and scripts/train_*.py)."""
    add_model_args(parser, model_required=False, default_model=model_default)
    data = parser.add_argument_group("data")
    # The default is filled in by config_from_args, so that --resume can tell an option given from none.
    data.add_argument("--dataset", choices=DATASETS, default=dataset_default,
                      help=f"data set (default {dataset_default or DEFAULT_DATASET}; synthetic: random images "
                           "for smoke tests, its error means nothing)")
    data.add_argument("--data-dir", default=None, help="directory of the data set files (default: its usual place)")
    data.add_argument("--num-workers", type=int, default=None, help="loader threads (default 2)")
    data.add_argument("--no-augment", dest="augment", action="store_const", const=False, default=None,
                      help="no augmentation (default: the data set's; CIFAR: 4-pixel pad, crop, flip)")
    data.add_argument("--augment", dest="augment", action="store_const", const=True,
                      help="force the pad-crop-flip augmentation on")
    data.add_argument("--train-subset", type=int, default=None, metavar="N", help="train on the first N images only")
    data.add_argument("--data-option", type=_data_option, action="append", default=None, metavar="KEY=VALUE",
                      help="extra load_dataset option (JSON value), e.g. image_shape=[3,16,16] for synthetic")

    dev = parser.add_argument_group("devices")
    dev.add_argument("--cpus", type=int, default=None, metavar="N", help="train on N CPU contexts (default 1)")
    dev.add_argument("--gpus", default=None, metavar="LIST", help="comma-separated GPU indices, e.g. 0,1,2,3")
    dev.add_argument("--kvstore", default=None, help=KVSTORE_HELP)
    dev.add_argument("--dtype", choices=DTYPES, default=None,
                     help="float16 trains with multi-precision SGD (fp32 master weights, GPUs); bfloat16 with "
                          "MXNet's AMP on CPUs with AVX-512 BF16 (fp32 weights, bf16 convolutions)")

    opt = parser.add_argument_group("optimisation (defaults: the paper's recipe for the data set)")
    opt.add_argument("--batch-size", type=int, default=None, help="global mini-batch (paper: 128 CIFAR, 256 ImageNet)")
    length = opt.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, default=None, help="run length in epochs")
    length.add_argument("--iterations", type=int, default=None, help="run length in iterations (paper CIFAR: 64000)")
    opt.add_argument("--lr", type=float, default=None, help="base learning rate (paper: 0.1)")
    opt.add_argument("--lr-schedule", choices=SCHEDULES, default=None,
                     help="step (paper: /10 at 1/2 and 3/4 of the run, i.e. 32k and 48k of 64k), cosine, constant")
    opt.add_argument("--lr-steps", type=_float_list, default=None, metavar="LIST",
                     help="step milestones in the run's unit (iterations with --iterations, epochs with --epochs)")
    opt.add_argument("--lr-factor", type=float, default=None, help="step decay factor (paper: 0.1)")
    opt.add_argument("--warmup", type=int, default=None, metavar="ITERATIONS",
                     help="iterations at --warmup-lr first (paper CIFAR: 400 at 0.01; 0 disables)")
    opt.add_argument("--warmup-lr", type=float, default=None, help="warm-up learning rate (paper: 0.01)")
    opt.add_argument("--momentum", type=float, default=None, help="SGD momentum (paper: 0.9)")
    opt.add_argument("--wd", type=float, default=None, help="weight decay (paper: 1e-4)")
    opt.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                     help="sgd: momentum SGD (default, the paper's runs); nag: Nesterov momentum (the authors' "
                          "released Torch code)")
    opt.add_argument("--seed", type=int, default=None, help="random seed; makes a CPU run repeatable (default 0)")

    out = parser.add_argument_group("output")
    out.add_argument("--out", default=None, help="run directory: log.csv, config.json, status.json, checkpoints")
    out.add_argument("--log-interval", type=int, default=None, help="iterations per training-loss row (default 50)")
    out.add_argument("--eval-interval", type=int, default=None,
                     help="iterations between test evaluations (default: every epoch)")
    out.add_argument("--eval-subset", type=int, default=None, metavar="N",
                     help="periodic evaluations on N evenly spaced test images (the final one uses all)")
    out.add_argument("--checkpoint-interval", type=int, default=None, metavar="ITERATIONS",
                     help="extra checkpoints every ITERATIONS (always: every epoch and at the end)")
    out.add_argument("--label", default=None, help="legend label for plots")
    out.add_argument("--no-progress", dest="progress", action="store_false", default=True,
                     help="no progress bar nor summary line")
    return parser


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a network with the paper's recipe",
        description="Train a network (paper recipe: SGD momentum 0.9, wd 1e-4, batch 128, lr 0.1 /10 at 32k "
                    "and 48k iterations, 64k iterations on CIFAR). Writes OUT/log.csv, config.json, "
                    "status.json and checkpoints; `--resume OUT` continues a stopped run.")
    add_run_args(parser)
    parser.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR from its checkpoint")
    parser.set_defaults(func=run)
    return parser


def config_from_args(args):
    """A :class:`~gluon_resnetv2.train.TrainConfig` from parsed options (ValueError for missing ones)."""
    from ..train import TrainConfig
    from ..train.devices import parse_gpus

    missing = [f"--{name}" for name in ("model", "out") if getattr(args, name, None) is None]
    if missing:
        raise ValueError(f"train needs {', '.join(missing)} (or --resume DIR)")
    if args.cpus is not None and args.gpus is not None:
        raise ValueError("give either --cpus or --gpus, not both")
    fields = dict(model=args.model, dataset=args.dataset or DEFAULT_DATASET, out=args.out,
                  model_kwargs=model_kwargs(args), data_dir=args.data_dir, cpus=args.cpus, gpus=parse_gpus(args.gpus),
                  dataset_options=dict(args.data_option or []))
    for name in ("kvstore", "batch_size", "epochs", "iterations", "lr", "lr_schedule", "lr_steps", "lr_factor",
                 "warmup", "warmup_lr", "momentum", "wd", "optimizer", "seed", "dtype", "log_interval",
                 "eval_interval", "eval_subset", "checkpoint_interval", "num_workers", "augment", "train_subset",
                 "label"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    fields["progress"] = args.progress
    if fields.get("iterations") is not None and fields.get("lr_steps"):
        fields["lr_steps"] = [int(step) for step in fields["lr_steps"]]
    return TrainConfig(**fields)


def run(args):
    from .. import train as training

    try:
        if args.resume is not None:
            given = [f"--{name.replace('_', '-')}" for name in _RUN_OPTIONS
                     if getattr(args, name, None) not in (None, [], False)]
            if given:
                raise ValueError(f"--resume continues with the settings in {args.resume}/config.json; "
                                 f"do not combine it with {', '.join(given)}")
            overrides = {"progress": args.progress}
            for name in ("num_workers", "data_dir", "kvstore"):
                if getattr(args, name, None) is not None:
                    overrides[name] = getattr(args, name)
            if args.cpus is not None or args.gpus is not None:
                if args.cpus is not None and args.gpus is not None:
                    raise ValueError("give either --cpus or --gpus, not both")
                from ..train.devices import parse_gpus
                overrides.update(cpus=args.cpus, gpus=parse_gpus(args.gpus))
            status = training.resume(args.resume, **overrides)
        else:
            status = training.train(config_from_args(args))
    except KeyboardInterrupt as err:
        # 130 = 128 + SIGINT, 143 = 128 + SIGTERM, as a shell reports a process the signal stopped.
        out = args.resume or args.out
        kept = "checkpoint written" if getattr(err, "checkpoint", False) else "last checkpoint kept"
        print(f"gluon-resnetv2 train: {str(err) or 'interrupted'} ({kept}); continue with --resume {out}",
              file=sys.stderr)
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
