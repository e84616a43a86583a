"""Shared pytest set-up: the ``slow`` marker (``make test-fast`` deselects it) and deterministic seeds."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 threads on 2 busy cores make MXNet 4-10x slower

import numpy as np
import pytest

import gluon_resnetv2  # noqa: F401  (numpy aliases and the thread count before any test imports mxnet)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes over ~3 s; deselect with -m 'not slow' (make test-fast)")
    config.addinivalue_line(
        "markers",
        "cluster: starts real daemons (sshd, or munged + slurmctld + slurmd) on loopback; select with -m cluster",
    )


@pytest.fixture(autouse=True)
def _seed():
    import mxnet as mx  # not at the top: isort would sort it above gluon_resnetv2 (the numpy aliases)

    mx.random.seed(0)
    np.random.seed(0)
    yield
    # MXNet runs operators asynchronously: without draining its engine here, work a test queued (e.g. the
    # deferred initialisation of a deep net) runs, and is timed, inside whichever test next reads a value.
    mx.nd.waitall()
