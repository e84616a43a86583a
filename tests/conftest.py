"""Shared pytest set-up: the ``slow`` marker (skipped unless ``--runslow``) and deterministic seeds."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 threads on 2 busy cores make MXNet 4-10x slower

import gluon_resnetv2  # noqa: E402,F401  (numpy aliases before mxnet)
import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running test, run with --runslow (make test-all)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    import mxnet as mx
    import numpy as np

    mx.random.seed(0)
    np.random.seed(0)
