# Two commands do all set-up on a fresh machine:
#   make demo   -> .venv + install + Fashion-MNIST, trains ResNet-1001 v1 and v2 (8x8), writes demo/figure1.png
#   make test   -> .venv + install + Fashion-MNIST + sshd/Slurm/munge packages, runs the test suite
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
FMNIST := /usr/share/datasets/fashion-mnist
PYTEST_ARGS ?=
EXTRAS := test,onnx,docs

.PHONY: install dataset cluster-packages lint docs test test-fast demo bench clean constraints

# constraints.txt pins every package (ours and theirs) to the versions the suite last passed with, so a new
# gluoncv or matplotlib release cannot break a fresh clone unnoticed; `make constraints` refreshes it.
$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3.12 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

# Fashion-MNIST is the embedded default data set: Debian's dataset-fashion-mnist package.
dataset:
	@if [ -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then exit 0; fi; \
	SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	if command -v apt-get >/dev/null && { [ -z "$$SUDO" ] || sudo -n true 2>/dev/null; }; then \
	  echo "installing Debian package dataset-fashion-mnist"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	else \
	  echo "warning: Fashion-MNIST is missing from $(FMNIST) and apt-get cannot run here;"; \
	  echo "         run 'sudo apt-get update && sudo apt-get install dataset-fashion-mnist'"; \
	  echo "         or pass --data-dir to a directory holding the four IDX .gz files."; \
	fi

# The cluster tests (tests/test_cluster.py) start a real sshd and a one-node Slurm (munged, slurmctld,
# slurmd) on loopback: Debian's openssh-server, slurmctld, slurmd, slurm-client and munge.
CLUSTER_BINARIES := /usr/sbin/sshd /usr/bin/ssh /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch
cluster-packages:
	@missing=""; for f in $(CLUSTER_BINARIES); do [ -x $$f ] || missing="$$missing $$f"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	if command -v apt-get >/dev/null && { [ -z "$$SUDO" ] || sudo -n true 2>/dev/null; }; then \
	  echo "installing Debian packages for the cluster tests (missing:$$missing)"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    openssh-server openssh-client slurmctld slurmd slurm-client munge; \
	else \
	  echo "warning: the cluster tests need$$missing and apt-get cannot run here;"; \
	  echo "         run 'sudo apt-get install openssh-server slurmctld slurmd slurm-client munge'"; \
	fi

# Lint (pyproject.toml's [tool.ruff] and [tool.mypy]): the formatting, then unused names, undefined names, import
# order, likely bugs, then the types of the public API; .ci/run runs it before the tests.
LINT_PATHS := gluon_resnetv2 scripts tests docs/conf.py docs/_ext
lint: install
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy

# Refresh the pins: a new venv from the unpinned pyproject.toml, then its `pip freeze` (our own package left out).
constraints:
	rm -rf .venv-constraints && $(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/pip install -q --upgrade pip && .venv-constraints/bin/pip install -q -e ".[$(EXTRAS)]"
	{ sed -n '/^#/p' constraints.txt; .venv-constraints/bin/pip freeze --exclude-editable | grep -v '^gluon-resnetv2'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-constraints

# The manual (docs/, Sphinx + MyST): warnings are errors, -n checks every internal reference; no network.
# Its measured figures are rendered from the committed result files at build time (docs/_ext/grv2_results.py).
docs: install
	$(VENV)/bin/sphinx-build -q -W --keep-going -n -b html docs docs/_build/html

# pytest-xdist runs the suite over the cores (-n auto); --durations prints the slowest tests, for marking them.
test: install dataset cluster-packages docs
	$(PY) -m pytest -q -n auto --durations=15 $(PYTEST_ARGS) tests

# Skips the tests marked slow (the deepest networks, end-to-end demo): a quick check while editing. pytest-xdist
# spreads the tests over the cores (-n auto: one worker per core; each test runs MXNet on one thread).
test-fast: install dataset
	$(PY) -m pytest -q -n auto -m "not slow" --durations=15 $(PYTEST_ARGS) tests

demo: install dataset
	$(PY) -m gluon_resnetv2.demo --out demo

bench: install
	$(PY) scripts/bench.py --models cifar_resnet56_v2 --out bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .venv-constraints docs/_build docs/_generated
