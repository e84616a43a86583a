"""The paper's building blocks, public so that users can put any unit into their own network.

>>> from gluon_resnetv2.units import ResidualUnit
>>> unit = ResidualUnit(64, 2, True, in_channels=32, branch='basic', activation='full_preact',
...                     shortcut='exclusive_gating', gate_bias=-6)
"""

from .branches import BRANCHES, ConvSpec, ResidualBranch
from .init import HE_INIT
from .orderings import ACTIVATIONS, Ordering, get_ordering
from .shortcuts import (
    PROJECTIONS,
    SHORTCUTS,
    Add,
    ExclusiveGate,
    Identity,
    Projection,
    Scale,
    ScaledAdd,
    ShortcutDropout,
    ShortcutOnlyGate,
    ShortcutSpec,
    ZeroPadProjection,
    build_shortcut,
)
from .unit import SHORTCUT_SOURCES, ResidualUnit, walk_blocks

__all__ = [
    "ACTIVATIONS",
    "BRANCHES",
    "SHORTCUTS",
    "PROJECTIONS",
    "SHORTCUT_SOURCES",
    "HE_INIT",
    "ConvSpec",
    "Ordering",
    "ResidualBranch",
    "ResidualUnit",
    "ShortcutSpec",
    "get_ordering",
    "build_shortcut",
    "Add",
    "ScaledAdd",
    "ExclusiveGate",
    "ShortcutOnlyGate",
    "Identity",
    "Projection",
    "ZeroPadProjection",
    "Scale",
    "ShortcutDropout",
    "walk_blocks",
]
