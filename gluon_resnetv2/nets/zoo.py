"""The registry: network names -> specs, :func:`get_model`, :func:`list_models`.

Names follow gluoncv: ``cifar_resnet110_v2``, ``resnet50_v1``.  ``_v1`` builds the original unit
(Fig. 4(a)), ``_v2`` the full pre-activation unit (Fig. 4(e)); ``activation=`` and ``shortcut=`` select any
other variant of Figs. 2 and 4 on any network.
"""

import difflib
from dataclasses import dataclass
from typing import Any

from ..units import ACTIVATIONS, PROJECTIONS, SHORTCUTS  # noqa: F401  (re-exported for the CLI)
from ..units.orderings import get_ordering
from ..units.shortcuts import OPTION_RANGES, ShortcutSpec
from ..validate import check_choice, positive_int
from .cifar import cifar_resnet
from .imagenet import IMAGENET_DEPTHS, imagenet_resnet
from .network import ResidualNetwork

VERSIONS = {"v1": "original", "v2": "full_preact"}


@dataclass(frozen=True)
class ModelSpec:
    """What a registered name builds."""

    name: str
    family: str  # 'cifar' | 'imagenet'
    depth: int
    branch: str  # 'basic' | 'bottleneck' | 'single'
    activation: str  # default Fig. 4 ordering
    paper: str  # where the paper uses it

    def build(self, **kwargs):
        kwargs.setdefault("activation", self.activation)
        if self.family == "cifar":
            return cifar_resnet(self.depth, self.branch, prefix=f"{self.name}_", **kwargs)
        return imagenet_resnet(self.depth, prefix=f"{self.name}_", **kwargs)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec):
    """Add a :class:`ModelSpec` to the registry (a user may register their own)."""
    _REGISTRY[spec.name] = spec
    return spec


def _register_defaults():
    cifar = [(d, "basic", "Table 3 / gluoncv") for d in (20, 32, 44, 56, 110, 1202)]
    cifar += [(164, "bottleneck", "Tables 2-4"), (1001, "bottleneck", "Tables 3-4, Fig. 1")]
    for version, activation in VERSIONS.items():
        for depth, branch, paper in cifar:
            register(ModelSpec(f"cifar_resnet{depth}_{version}", "cifar", depth, branch, activation, paper))
        register(
            ModelSpec(
                f"cifar_resnet110_1layer_{version}",
                "cifar",
                110,
                "single",
                activation,
                "Table 3, ResNet-110 (1-layer skip)",
            )
        )
        # The smaller stand-ins of the reproduction's quick scale (gluon_resnetv2.experiments.QUICK_MODELS),
        # registered here so that every network `reproduce --list` shows can be trained by name.
        register(
            ModelSpec(
                f"cifar_resnet20_1layer_{version}",
                "cifar",
                20,
                "single",
                activation,
                "quick scale of Table 3's ResNet-110 (1-layer skip)",
            )
        )
        for depth in (29, 56):
            register(
                ModelSpec(
                    f"cifar_resnet{depth}_bottleneck_{version}",
                    "cifar",
                    depth,
                    "bottleneck",
                    activation,
                    "quick scale of ResNet-164 / -1001",
                )
            )
        for depth, (branch, _) in IMAGENET_DEPTHS.items():
            register(ModelSpec(f"resnet{depth}_{version}", "imagenet", depth, branch, activation, "Table 5"))


_register_defaults()

MODEL_OPTIONS = (
    "classes",
    "activation",
    "shortcut",
    "shortcut_scale",
    "residual_scale",
    "gate_bias",
    "shortcut_dropout",
    "projection",
    "norm_layer",
    "norm_kwargs",
    "layout",
)


def get_spec(name):
    """The :class:`ModelSpec` registered as ``name``; ValueError suggests close names."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Valid names: {', '.join(list_models())}") from None


def get_model(name: str, **kwargs: Any) -> ResidualNetwork:
    """Build the registered network ``name``.

    Keyword arguments: ``classes`` (default 10 for CIFAR, 1000 for ImageNet), ``activation`` (Fig. 4:
    original, bn_after_add, relu_before_add, relu_preact, full_preact), ``shortcut`` (Fig. 2: identity,
    constant_scaling, exclusive_gating, shortcut_only_gating, conv1x1, dropout) with ``shortcut_scale``,
    ``residual_scale``, ``gate_bias``, ``shortcut_dropout``; ``projection`` ('conv' option B or 'zero_pad'
    option A where dimensions change); ``norm_layer``/``norm_kwargs`` for every BatchNorm.

    >>> net = get_model('cifar_resnet110_v1', shortcut='exclusive_gating', gate_bias=-6)
    """
    spec = get_spec(name)
    unknown = sorted(set(kwargs) - set(MODEL_OPTIONS))
    if unknown:
        raise ValueError(
            f"get_model({name!r}) got unknown option(s) {', '.join(unknown)}; valid options: {', '.join(MODEL_OPTIONS)}"
        )
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    check_model_kwargs(kwargs)
    return spec.build(**kwargs)


def check_model_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """ValueError naming the first keyword of ``kwargs`` (get_model's options) whose value is out of range or
    not one of its choices, so that a bad value is refused here and not when the network is initialised."""
    positive_int.check(kwargs.get("classes"), "classes")
    if kwargs.get("activation") is not None:
        get_ordering(kwargs["activation"])  # an Ordering object or a Fig. 4 name
    if kwargs.get("shortcut") is not None and not isinstance(kwargs["shortcut"], ShortcutSpec):
        ShortcutSpec(kwargs["shortcut"])
    check_choice(kwargs.get("projection"), PROJECTIONS, "projection")
    for name, kind in OPTION_RANGES.items():
        kind.check(kwargs.get(name), name)
    return kwargs


def list_models(family: str | None = None) -> list[str]:
    """Registered names (all, or those of ``family`` 'cifar' / 'imagenet'), in registration order."""
    return [name for name, spec in _REGISTRY.items() if family is None or spec.family == family]
