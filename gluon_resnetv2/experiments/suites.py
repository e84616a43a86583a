"""The rows of the paper's Tables 1-4 as :class:`Experiment` s at a scale, and ``reproduce --list``."""

import dataclasses
import json
from typing import Optional

from .. import paper_results as paper
from ..data.base import check_image_size
from ..data.datasets import canonical_name
from ..data.fashion_mnist import IMAGE_SIDE
from ..train.recipe import TrainConfig
from ..validate import name_list
from .scales import (
    DEPTH_SETTINGS,
    DEPTH_SPREAD_SEEDS,
    PAPER_ITERATIONS,
    PAPER_WARMUP,
    QUICK_MODELS,
    RUNNABLE_TABLES,
    get_scale,
)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One row of a paper table made into a training run (see :func:`get_experiments`)."""

    table: str
    key: str
    scale: str
    model: str
    dataset: str
    model_kwargs: dict = dataclasses.field(hash=False)
    iterations: int = PAPER_ITERATIONS
    batch_size: int = 128
    warmup: int = PAPER_WARMUP
    eval_interval: Optional[int] = None
    eval_subset: Optional[int] = None
    checkpoint_interval: Optional[int] = None
    log_interval: int = 50
    dataset_options: dict = dataclasses.field(default_factory=dict, hash=False)
    optimizer: str = "sgd"
    lr_steps: Optional[tuple] = dataclasses.field(default=None, hash=False)  # iterations; None: 1/2, 3/4
    dtype: str = "float32"  # --dtype of the runs (bfloat16: AMP on AVX-512 BF16 CPUs)

    @property
    def paper(self):
        """The :class:`~gluon_resnetv2.paper_results.PaperRow` this experiment reproduces."""
        return paper.get_row(self.table, self.key)

    @property
    def label(self):
        """Legend label: the row key and the network actually run."""
        return f"{self.key} ({self.model})"

    def signature(self):
        """Everything that determines the result; two rows with one signature are one run."""
        data = dataclasses.asdict(self)
        for name in ("table", "key", "scale"):
            data.pop(name)
        return json.dumps(data, sort_keys=True)

    def config(self, out, seed=0, data_dir=None, gpus=None, num_workers=1, progress=False):
        """The :class:`~gluon_resnetv2.train.TrainConfig` of this experiment's run in ``out``."""

        return TrainConfig(
            model=self.model,
            dataset=self.dataset,
            out=out,
            model_kwargs=dict(self.model_kwargs),
            data_dir=data_dir,
            gpus=list(gpus) if gpus else None,
            batch_size=self.batch_size,
            iterations=self.iterations,
            warmup=self.warmup,
            optimizer=self.optimizer,
            lr_steps=list(self.lr_steps) if self.lr_steps else None,
            seed=seed,
            log_interval=self.log_interval,
            eval_interval=self.eval_interval,
            eval_subset=self.eval_subset,
            checkpoint_interval=self.checkpoint_interval,
            num_workers=num_workers,
            progress=progress,
            label=f"{self.table}/{self.key}",
            dataset_options=dict(self.dataset_options),
            dtype=self.dtype,
        )

    def to_dict(self):
        return dataclasses.asdict(self)

    def describe(self, seeds=1):
        """One line: network and variant, data and resolution, iterations x mini-batch, seeds."""
        kwargs = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.model_kwargs.items())
        size = self.dataset_options.get("image_size")
        runs = self.seeds(seeds)
        recipe = (
            f", lr /10 at {'/'.join(map(str, self.lr_steps))}, warm-up {self.warmup}, {self.optimizer}"
            if self.lr_steps is not None
            else ""
        )
        return (
            f"{self.model}{'[' + kwargs + ']' if kwargs else ''} on {self.dataset}"
            f"{f' {size}x{size}' if size else ''}, {self.iterations} it x {self.batch_size}{recipe}"
            f"{f', {runs} seeds' if runs > 1 else ''}"
        )

    @classmethod
    def from_dict(cls, data):
        return cls(**data)

    def seeds(self, seeds=1):
        """Runs of this row when a table is run with ``seeds`` seeds: at the depth scale the table's spread
        row gets at least :data:`DEPTH_SPREAD_SEEDS`."""
        setting = DEPTH_SETTINGS.get(self.table) if self.scale == "depth" else None
        return max(seeds, DEPTH_SPREAD_SEEDS) if setting and setting.spread_row == self.key else seeds


def _warmup(iterations):
    # The paper warms up for 400 of 64k iterations; keep that fraction for other lengths.
    return (
        max(1, round(iterations * PAPER_WARMUP / PAPER_ITERATIONS)) if iterations != PAPER_ITERATIONS else PAPER_WARMUP
    )


def experiment_for(row, scale="quick", dataset=None, iterations=None, batch_size=None, image_size=None):
    """The :class:`Experiment` of a :class:`~gluon_resnetv2.paper_results.PaperRow` at ``scale``.

    ``dataset``, ``iterations``, ``batch_size`` and ``image_size`` (the data set's ``image_size`` option:
    images averaged down to S x S) override the scale's choice (the row's paper number stays for
    reference).
    """
    scale = get_scale(scale)
    if row.table not in RUNNABLE_TABLES:
        raise ValueError(
            f"{row.table} ({row.dataset}) is listed for reference only; train its networks with "
            f"`gluon-resnetv2 train --model {row.model} --dataset imagenet`"
        )
    given_iterations = iterations
    model = row.model
    if scale.name == "quick":
        model = QUICK_MODELS[model]
    options = {}
    setting = DEPTH_SETTINGS.get(row.table) if scale.name == "depth" else None
    if scale.name == "depth":
        if setting is None:
            raise ValueError(
                f"scale depth covers {', '.join(DEPTH_SETTINGS)}; {row.table} has no depth setting "
                "(use --scale quick or paper)"
            )
        options["image_size"] = image_size if image_size is not None else setting.image_size
    elif image_size is not None:
        options["image_size"] = image_size
    default_iterations = setting.iterations if setting else scale.iterations
    iterations = int(iterations) if iterations is not None else default_iterations
    if iterations < 1:
        raise ValueError(f"iterations must be positive, got {iterations}")
    # The row's own mini-batch (Table 4: 64) is the point of that row, so it wins over the scale's.
    batch = batch_size or row.batch_size or scale.batch_size or 128
    interval = scale.checkpoint_interval
    eval_interval = scale.eval_interval
    warmup = _warmup(iterations)
    if setting:  # ten evaluations and eight checkpoints a run, whatever its length
        eval_interval, interval = max(1, iterations // 10), max(1, iterations // 8)
        warmup = min(setting.warmup, iterations)
    if interval and interval >= iterations:
        interval = max(1, iterations // 4)
    dataset = dataset or scale.dataset or row.dataset
    if "image_size" in options:
        options["image_size"] = _checked_image_size(dataset, options["image_size"])
    # The synthetic set has fewer test images (512) than the scales' subsets: it is evaluated whole.
    subset = None if dataset == "synthetic" else scale.eval_subset
    exp = Experiment(
        row.table,
        row.key,
        scale.name,
        model,
        dataset,
        dict(row.model_kwargs),
        iterations,
        batch,
        warmup,
        min(eval_interval, iterations) if eval_interval else None,
        subset,
        interval,
        min(scale.log_interval, iterations),
        options,
    )
    if scale.name == "paper" and row.recipe.epochs is not None:
        exp = _with_row_recipe(exp, row.recipe, given_iterations)
    return exp


def _checked_image_size(dataset, size):
    # Refused here so that --list and --slurm say it too, not only the training job when it loads the data.
    if canonical_name(dataset) != "fashion-mnist":
        raise ValueError(
            f"--image-size averages Fashion-MNIST's images down; data set {dataset} takes no "
            "image size (leave --image-size out, or use --dataset fashion-mnist)"
        )
    try:
        return check_image_size(size, IMAGE_SIDE)
    except ValueError as error:
        raise ValueError(f"--image-size: {error}") from None


def _with_row_recipe(exp, recipe, iterations=None):
    """``exp`` trained with its row's own recipe (Table 4's batch 64: the authors' README run); a given
    ``iterations`` keeps the recipe's milestones as fractions of the run."""
    full = recipe.iterations(exp.batch_size)
    total = int(iterations) if iterations is not None else full
    steps = tuple(int(round(step * total / full)) for step in recipe.lr_steps(exp.batch_size))
    warmup = recipe.warmup if recipe.warmup is not None else _warmup(total)
    return dataclasses.replace(
        exp,
        iterations=total,
        warmup=warmup,
        optimizer=recipe.optimizer,
        lr_steps=steps,
        log_interval=min(exp.log_interval, total),
    )


def select_rows(table, rows=None):
    """The :class:`~gluon_resnetv2.paper_results.PaperRow` list of ``table``, restricted to ``rows`` (keys,
    a list or a comma-separated string; None: all).  ValueError names unknown keys and the valid ones, or an
    empty selection."""
    all_rows = paper.get_table(table)
    if rows is None:
        return list(all_rows)
    # An empty selection ('' or []) is refused: it used to run every row.
    keys = [str(k).strip() for k in name_list.check(rows, "rows")]
    known = {row.key: row for row in all_rows}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise ValueError(
            f"{all_rows[0].table} has no row(s) {', '.join(map(repr, unknown))}; its rows are {', '.join(known)}"
        )
    if len(set(keys)) != len(keys):
        raise ValueError(f"--rows names a row twice: {','.join(keys)}")
    return [known[k] for k in keys]


def runs_at(row, scale):
    """Whether ``scale`` runs ``row`` (the depth scale runs the CIFAR-10 rows only: Fashion-MNIST has 10
    classes, so the CIFAR-100 rows have no counterpart there)."""
    datasets = get_scale(scale).datasets
    return datasets is None or row.dataset in datasets


#: What ``reproduce --dataset/--iterations/--batch-size/--image-size`` may change of a scale's run.
OVERRIDABLE = ("dataset", "iterations", "batch_size", "dataset_options")


def overrides(experiments):
    """``["iterations 4 instead of the scale's 400", ...]``: where ``experiments`` differ from what their scale makes of
    the same rows without options, so that a report describes the runs that were made; [] when none."""
    changed = {}
    for exp in experiments:
        if exp.table not in RUNNABLE_TABLES:
            continue  # Table 5 (reference only) has no scale default to differ from
        own = experiment_for(exp.paper, exp.scale)
        for name in OVERRIDABLE:
            if getattr(exp, name) != getattr(own, name):
                changed.setdefault(name, (set(), set()))
                changed[name][0].add(_text(getattr(exp, name)))
                changed[name][1].add(_text(getattr(own, name)))
    labels = {"dataset": "data set", "batch_size": "mini-batch", "dataset_options": "data options"}
    return [
        f"{labels.get(name, name)} {'/'.join(sorted(ran))} instead of the scale's {'/'.join(sorted(default))}"
        for name, (ran, default) in changed.items()
    ]


def _text(value):
    return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "none" if isinstance(value, dict) else str(value)


def get_experiments(table, scale="quick", rows=None, dataset=None, iterations=None, batch_size=None, image_size=None):
    """The experiments of ``table`` (all rows, or ``rows``) at ``scale``; rows the scale does not run
    (:func:`runs_at`) are left out, and a ValueError is raised when none is left."""
    selected = [row for row in select_rows(table, rows) if runs_at(row, scale)]
    if not selected:
        raise ValueError(
            f"scale {get_scale(scale).name} runs none of the selected rows of {table} (it runs "
            f"{', '.join(get_scale(scale).datasets)} rows only)"
        )
    return [experiment_for(row, scale, dataset, iterations, batch_size, image_size) for row in selected]


def format_list(table, scale="quick", rows=None, dataset=None, iterations=None, batch_size=None, image_size=None):
    """``reproduce TABLE --list``: every row with the paper's number and the run the scale makes of it."""
    selected = select_rows(table, rows)
    name = selected[0].table
    lines = [paper.TITLES[name], ""]
    runnable = name in RUNNABLE_TABLES
    header = f"{'row':<28} {'network':<26} {'unit variant':<52} {'data':<9} {'paper %':>8}  {'recipe':<16}"
    if runnable:
        header += f"  run at scale {get_scale(scale).name}"
    lines.append(header)
    for row in selected:
        value = row.error_text + (f" / {row.top5:.1f}" if row.top5 is not None else "")
        line = f"{row.key:<28} {row.network:<26} {row.variant:<52} {row.dataset:<9} {value:>8}  {row.recipe.name:<16}"
        if runnable and not runs_at(row, scale):
            line += f"  not run at this scale ({row.dataset} row)"
        elif runnable:
            exp = experiment_for(row, scale, dataset, iterations, batch_size, image_size)
            line += f"  {exp.describe()}"
        lines.append(line)
    recipes = {row.recipe.name: row.recipe.source for row in selected}
    title = "Where each row's recipe comes from" + (
        " (applied at scale paper; other scales keep their own schedule):" if runnable else ":"
    )
    lines += ["", title] + [f"  {name}: {source}" for name, source in recipes.items()]
    if not runnable:
        lines += ["", "(ImageNet rows are listed for reference; train them with `gluon-resnetv2 train`.)"]
    return "\n".join(lines)
