# Set-up and the two main jobs. `make train` and `make test` each bootstrap the venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgesplit-installed

.PHONY: setup train test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# A bare `torch` requirement pulls a multi-GB CUDA build: pin the CPU build first.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	$(PY) train.py algo=ppo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.scheduler

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
