"""The child process of a parallel or Slurm run: ``python -m gluon_resnetv2.experiments --job JSON`` runs one
row's seed (:func:`~.scheduler.run_experiment`) and exits 0 when the run ended (finished or diverged)."""

import argparse
import json

from .scheduler import run_experiment
from .suites import Experiment


def main(argv=None):
    """Child process of :func:`~.scheduler._run_parallel`: ``python -m gluon_resnetv2.experiments --job JSON``."""
    parser = argparse.ArgumentParser(prog="python -m gluon_resnetv2.experiments")
    parser.add_argument("--job", required=True, help="JSON: experiment, run_dir, seed, data_dir, gpus")
    spec = json.loads(parser.parse_args(argv).job)
    exp = Experiment.from_dict(spec["experiment"])
    status = run_experiment(exp, spec["run_dir"], spec["seed"], spec.get("data_dir"), spec.get("gpus"))
    return 0 if status and status.get("status") in ("finished", "failed") else 1
