"""The model options every command that builds a network takes, spelled the same way everywhere."""

from ..nets.zoo import ACTIVATIONS, PROJECTIONS, SHORTCUTS
from ..units.shortcuts import OPTION_RANGES


def add_model_args(parser, model_required=True, default_model=None):
    """Register ``--model``, ``--classes`` and the unit-variant options on ``parser``."""
    group = parser.add_argument_group("model (see `gluon-resnetv2 models`)")
    group.add_argument(
        "--model",
        required=model_required and default_model is None,
        default=default_model,
        help="registered network name, e.g. cifar_resnet110_v2",
    )
    group.add_argument(
        "--activation", choices=ACTIVATIONS, default=None, help="Fig. 4 unit ordering (default: the name's _v1/_v2)"
    )
    group.add_argument("--shortcut", choices=SHORTCUTS, default=None, help="Fig. 2 shortcut (default: identity)")
    group.add_argument(
        "--shortcut-scale",
        type=OPTION_RANGES["shortcut_scale"],
        default=None,
        help="constant_scaling: lambda on the shortcut",
    )
    group.add_argument(
        "--residual-scale", type=OPTION_RANGES["residual_scale"], default=None, help="constant_scaling: scale of F"
    )
    group.add_argument("--gate-bias", type=OPTION_RANGES["gate_bias"], default=None, help="gating: initial b_g")
    group.add_argument(
        "--shortcut-dropout",
        type=OPTION_RANGES["shortcut_dropout"],
        default=None,
        help="dropout shortcut: drop probability",
    )
    group.add_argument(
        "--projection",
        choices=PROJECTIONS,
        default=None,
        help="shortcut where dimensions change: conv (option B) or zero_pad (option A)",
    )
    return group


def model_kwargs(args):
    """The keyword arguments of :func:`gluon_resnetv2.get_model` given on the command line (None = default)."""
    names = [
        "activation",
        "shortcut",
        "shortcut_scale",
        "residual_scale",
        "gate_bias",
        "shortcut_dropout",
        "projection",
    ]
    kwargs = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if getattr(args, "classes", None) is not None:
        kwargs["classes"] = args.classes
    return kwargs
