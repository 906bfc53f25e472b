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
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.scheduler

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# Recipe environments: libraries whose pins clash with ours (Ray pins gymnasium 1.2.2; BenchMARL
# and TorchRL pull torchvision) each get a venv of their own, installed from the built wheel with
# torch held to the CPU build, and run their recipe tests from outside the checkout.
RECIPE_VENVS ?= .venvs
CONSTRAINTS := recipes/constraints.txt
WHEEL_DIR := dist

.PHONY: wheel recipes-torchrl recipes-benchmarl recipes-ray recipes

wheel: $(STAMP)
	rm -rf $(WHEEL_DIR)
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation -w $(WHEEL_DIR) .

# recipe-venv NAME "REQUIREMENTS": a fresh venv with the CPU torch, the wheel and REQUIREMENTS
define recipe-venv
	rm -rf $(RECIPE_VENVS)/$(1)
	$(PYTHON) -m venv $(RECIPE_VENVS)/$(1)
	$(RECIPE_VENVS)/$(1)/bin/python -m pip install --quiet --upgrade pip
	$(RECIPE_VENVS)/$(1)/bin/python -m pip install --quiet torch==2.13.0
	$(RECIPE_VENVS)/$(1)/bin/python -m pip install --quiet -c $(CONSTRAINTS) \
		$(WHEEL_DIR)/edgesplit-*.whl $(2) "pytest>=8"
endef

recipes-torchrl: wheel
	$(call recipe-venv,torchrl,"torchrl==0.14.1")
	$(RECIPE_VENVS)/torchrl/bin/python -m pytest -q -p no:cacheprovider tests/test_recipes_torchrl.py

# BenchMARL 1.5.2 pins torchrl>=0.10,<0.12: a venv apart from the TorchRL one
recipes-benchmarl: wheel
	$(call recipe-venv,benchmarl,"benchmarl==1.5.2")
	$(RECIPE_VENVS)/benchmarl/bin/python -m pytest -q -p no:cacheprovider tests/test_recipes_benchmarl.py

# the sweep recipe trains through edgesplit.agents.training: the wheel's `train` extra too
recipes-ray: wheel
	$(call recipe-venv,ray,"ray[rllib]==2.60.0" "$$(ls $(WHEEL_DIR)/edgesplit-*.whl)[train]")
	$(RECIPE_VENVS)/ray/bin/python -m pytest -q -p no:cacheprovider tests/test_recipes_ray.py

recipes: recipes-torchrl recipes-benchmarl recipes-ray
