"""``--variant`` specs: the Fig. 2 / Table 1 shortcut variants as data, parsed into :class:`Variant`.

He et al. 2016, Sec. 3.1 and Fig. 2: each variant is a shortcut (identity, constant scaling, exclusive and
shortcut-only gating, 1x1 convolution, dropout) with its Table 1 options.
"""

from dataclasses import dataclass, field

from ..units.shortcuts import SHORTCUTS, ShortcutSpec

#: Options a ``--variant`` may set (see :func:`parse_variant`), with their types.
VARIANT_OPTIONS = {
    "shortcut_scale": float,
    "residual_scale": float,
    "gate_bias": float,
    "shortcut_dropout": float,
    "activation": str,
    "projection": str,
}

#: The shortcut variants of Fig. 2 / Table 1, as ``--variant`` specs; ``--variant fig2`` expands to these.
FIG2_VARIANTS = (
    "identity",
    "constant_scaling:shortcut_scale=0.5,residual_scale=1",
    "constant_scaling:shortcut_scale=0.5,residual_scale=0.5",
    "constant_scaling:shortcut_scale=0,residual_scale=1",
    "exclusive_gating:gate_bias=0",
    "exclusive_gating:gate_bias=-6",
    "shortcut_only_gating:gate_bias=0",
    "shortcut_only_gating:gate_bias=-6",
    "conv1x1",
    "dropout:shortcut_dropout=0.5",
)
VARIANT_GROUPS = {"fig2": FIG2_VARIANTS}


@dataclass(frozen=True)
class Variant:
    """A unit variant to measure: a label and the :func:`~gluon_resnetv2.get_model` keyword arguments."""

    label: str
    kwargs: dict = field(default_factory=dict, hash=False)


def _convert(key, value, text):
    try:
        return VARIANT_OPTIONS[key](value)
    except ValueError:
        raise ValueError(f"variant {text!r}: {key}={value!r} is not a number") from None


def parse_variant(text):
    """Parse ``NAME[:KEY=VALUE[,KEY=VALUE...]]`` into a :class:`Variant`.

    ``NAME`` is a Fig. 2 shortcut (identity, constant_scaling, exclusive_gating, shortcut_only_gating,
    conv1x1, dropout); the keys are ``shortcut_scale``, ``residual_scale``, ``gate_bias``,
    ``shortcut_dropout`` (Table 1's options; '-' may replace '_'), ``activation`` (a Fig. 4 ordering) and
    ``projection``.  Examples: ``identity``, ``constant_scaling:shortcut_scale=0.5,residual_scale=0.5``,
    ``exclusive_gating:gate_bias=-6``.  The label is the text with spaces removed.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty variant {text!r}: expected NAME[:KEY=VALUE,...], NAME one of {', '.join(SHORTCUTS)}")
    text = "".join(text.split())
    name, _, options = text.partition(":")
    if name not in SHORTCUTS:
        raise ValueError(
            f"variant {text!r}: unknown shortcut {name!r}; expected NAME[:KEY=VALUE,...] with NAME "
            f"one of {', '.join(SHORTCUTS)} (or a group: {', '.join(VARIANT_GROUPS)})"
        )
    kwargs = {"shortcut": name}
    if options:
        for item in options.split(","):
            key, eq, value = item.partition("=")
            key = key.replace("-", "_")
            if not eq or not value:
                raise ValueError(f"variant {text!r}: {item!r} is not KEY=VALUE")
            if key not in VARIANT_OPTIONS:
                raise ValueError(
                    f"variant {text!r}: unknown option {key!r}; expected one of {', '.join(VARIANT_OPTIONS)}"
                )
            if key in kwargs:
                raise ValueError(f"variant {text!r}: {key} given twice")
            kwargs[key] = _convert(key, value, text)
    # Build the spec now so that an option given to the wrong shortcut fails before any computation.
    ShortcutSpec(
        name,
        kwargs.get("shortcut_scale"),
        kwargs.get("residual_scale"),
        kwargs.get("gate_bias"),
        kwargs.get("shortcut_dropout"),
    )
    return Variant(text, kwargs)


def parse_variants(texts):
    """Parse several specs (groups such as ``fig2`` expand in place); duplicates are an error."""
    variants = []
    for text in texts:
        group = VARIANT_GROUPS.get(str(text).strip().lower())
        variants.extend(parse_variant(t) for t in (group if group else (text,)))
    labels = [v.label for v in variants]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"variant(s) given twice: {', '.join(duplicates)}")
    return variants


def variant_from_kwargs(kwargs):
    """A :class:`Variant` for model keyword arguments (e.g. from ``--shortcut --shortcut-scale``)."""
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    name = kwargs.get("shortcut", "identity")
    opts = [
        f"{k}={kwargs[k]:g}" if isinstance(kwargs[k], float) else f"{k}={kwargs[k]}"
        for k in VARIANT_OPTIONS
        if k in kwargs
    ]
    return Variant(name + (":" + ",".join(opts) if opts else ""), dict(kwargs, shortcut=name))


def merge_kwargs(base, variant):
    """``base`` model options (e.g. ``--activation``) with a variant's; a conflicting value is an error."""
    merged = dict(base)
    for key, value in variant.kwargs.items():
        if key in merged and merged[key] != value:
            raise ValueError(
                f"variant {variant.label!r} sets {key}={value!r} but the model options give {key}={merged[key]!r}"
            )
        merged[key] = value
    return merged
