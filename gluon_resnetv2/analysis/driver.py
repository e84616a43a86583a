"""Measure variants end to end: build, optionally train, measure (:func:`propagation`) and write the files
(:func:`analyze`)."""

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from ..data import load_dataset
from ..fileio import staged
from ..nets.zoo import get_model
from ..train.recipe import DATASETS, SEED
from ..validate import check_choice, nonneg_int, positive_int
from .measure import measure_propagation
from .report import plot_propagation, summary_markdown
from .results import PropagationResult, write_csv
from .training import load_batch, train_iterations
from .variants import Variant, merge_kwargs, parse_variants


def propagation(
    model,
    variants=("identity",),
    dataset="fashion-mnist",
    data_dir=None,
    batch_size=16,
    iterations=0,
    seed=0,
    base_kwargs=None,
    train_batch_size=128,
    log=None,
):
    """Measure every variant on the same batch, at initialisation or after ``iterations`` SGD steps.

    ``variants``: :class:`Variant` objects or ``--variant`` strings (see :func:`parse_variant`);
    ``base_kwargs``: model options common to all (e.g. ``activation='original'``).  Each variant's network
    is built and initialised from the same seed (MSRA init, Sec. 4).  Returns a list of
    :class:`PropagationResult`.
    """
    if not variants:
        raise ValueError("no variants to measure")
    if isinstance(variants, str):
        variants = [variants]
    variants = [v for item in variants for v in ([item] if isinstance(item, Variant) else parse_variants([item]))]
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    data, label, ds = load_batch(dataset, data_dir, batch_size, seed)
    kwargs_list = [merge_kwargs(base_kwargs or {}, v) for v in variants]
    if ds.num_classes:
        for kwargs in kwargs_list:
            kwargs.setdefault("classes", ds.num_classes)
    train_set = None
    if iterations:
        options = {"num_samples": 512} if str(dataset).lower() == "synthetic" else {}
        train_set = load_dataset(dataset, data_dir, "train", **options)
    results = []
    for variant, kwargs in zip(variants, kwargs_list):
        start = time.time()
        mx.random.seed(seed)
        np.random.seed(seed)
        net = get_model(model, **kwargs)
        net.initialize()
        if iterations:
            train_iterations(net, train_set, iterations, train_batch_size, seed)
        rows = measure_propagation(net, data, label, seed=seed)
        with autograd.train_mode():
            loss = float(gluon.loss.SoftmaxCrossEntropyLoss()(net(data), label).mean().asscalar())
        result = PropagationResult(variant, model, iterations, rows, loss, time.time() - start)
        results.append(result)
        if log:
            s = result.summary()
            log(
                f"{variant.label}: first unit {s['ratio_first']:.3g} x the last's gradient, min {s['ratio_min']:.3g} "
                f"(unit {s['argmin']}), shortcut-path term at unit 1 {s['shortcut_term_unit1']:.3g} "
                f"[{result.seconds:.0f} s]"
            )
    return results


def analyze(
    model: str,
    variants: Sequence[Variant | str],
    out: str,
    dataset: str = "fashion-mnist",
    data_dir: str | None = None,
    batch_size: int = 16,
    iterations: int = 0,
    seed: int = 0,
    base_kwargs: dict[str, Any] | None = None,
    log: Callable[[str], Any] = print,
) -> list[PropagationResult]:
    """Measure ``variants`` of ``model`` and write ``<out>/propagation.csv``, ``<out>/propagation.png`` and
    ``<out>/summary.md``, all or nothing (:func:`~gluon_resnetv2.fileio.staged`: an error or Ctrl-C keeps
    an earlier analysis's three files).  Returns the list of :class:`PropagationResult`.  The numbers are
    checked with the ranges of ``gluon-resnetv2 analyze``'s options before anything is built."""
    check_choice(dataset, DATASETS, "dataset")
    positive_int.check(batch_size, "batch_size")
    nonneg_int.check(iterations, "iterations")
    SEED.check(seed, "seed")
    os.makedirs(out, exist_ok=True)  # an unwritable --out fails before the measurement, not after it
    results = propagation(model, variants, dataset, data_dir, batch_size, iterations, seed, base_kwargs, log=log)
    header = (
        f"# Signal propagation: {model}, {dataset}, batch {batch_size}, seed {seed}, "
        f"{'at initialisation' if not iterations else f'after {iterations} iterations'}\n\n"
    )
    names = [os.path.join(out, name) for name in ("propagation.csv", "propagation.png", "summary.md")]
    with staged(names, what=f"analysis {out}") as stage:
        write_csv(results, stage.path(names[0]))
        plot_propagation(results, stage.path(names[1]))
        with open(stage.path(names[2]), "w", encoding="utf-8") as handle:
            handle.write(header + summary_markdown(results))
    return results
