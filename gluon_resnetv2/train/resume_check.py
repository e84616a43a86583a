"""A resume continues the run its checkpoint was written by: ``config.json`` is checked against the checkpoint.

Every checkpoint records the settings that shape the result (:func:`config_record`: every
:class:`~.recipe.TrainConfig` field but those ``--resume`` may change, the output directory and the plot
label).  :func:`check_resume` refuses a resume whose ``config.json`` was edited since, naming the field, so
that lowering ``iterations`` below the checkpoint or changing ``model`` is an error that says so instead of
a run marked finished with later weights, or a parameter file that does not fit.  Checkpoints written
before the record existed are checked on their run length only.
"""

import dataclasses
import json
import os

from .recipe import RESUME_OVERRIDES, TrainConfig

#: Fields a checkpoint does not pin: those a resume may change, the run directory and the legend label.
UNPINNED = frozenset(RESUME_OVERRIDES) | {"out", "label"}


def config_record(config):
    """``{field: value}`` (JSON values) of a resolved :class:`TrainConfig`: what the checkpoint pins."""
    return {
        field.name: json.loads(json.dumps(getattr(config, field.name)))
        for field in dataclasses.fields(TrainConfig)
        if field.name not in UNPINNED
    }


def check_resume(config, state, total, out_dir):
    """ValueError when the resolved ``config`` (from ``<out_dir>/config.json``) is not the one the checkpoint
    ``state`` was written with, naming the first field that differs; ``total``: the run length in iterations
    that ``config`` gives."""
    config_path = os.path.join(out_dir, "config.json")
    checkpoint = os.path.join(out_dir, "checkpoint.zip")
    advice = "a resume continues the same run: put it back, or train a new run with another --out"
    recorded = state.get("config")
    if isinstance(recorded, dict):
        now = config_record(config)
        for name in sorted(recorded):
            if name in now and now[name] != recorded[name]:
                raise ValueError(
                    f"cannot resume {out_dir}: {config_path} has {name}={now[name]!r} but {checkpoint} was "
                    f"written with {name}={recorded[name]!r}; {advice}"
                )
    iteration = state.get("iteration")
    length_changed = not isinstance(recorded, dict) and state.get("total") not in (None, total)
    if (isinstance(iteration, int) and iteration > total) or length_changed:
        length = "iterations" if config.iterations is not None else "epochs"
        raise ValueError(
            f"cannot resume {out_dir}: {config_path} gives a run of {total} iterations ({length}="
            f"{getattr(config, length)!r}) but {checkpoint} is at iteration {iteration} of a run of "
            f"{state.get('total')}; {advice}"
        )
