# Set-up and the two main jobs. `make train` and `make test` each bootstrap the venv first;
# `make test` also builds the recipe venvs (below) and runs their tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgesplit-installed
# --no-compile: no bytecode for every file of torch, Ray & co. at install (Python writes it for
# the modules actually imported, on first import); halves torch's install time here
PIP_INSTALL := -m pip install --quiet --no-compile

.PHONY: setup train test test-main lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) $(PIP_INSTALL) --upgrade pip
	# A bare `torch` requirement pulls a multi-GB CUDA build: pin the CPU build first.
	$(PY) $(PIP_INSTALL) torch==2.13.0
	$(PY) $(PIP_INSTALL) -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	$(PY) train.py algo=ppo

# lint, the suite in .venv, then the recipes of the libraries that need venvs of their own
test: test-main
	$(MAKE) --no-print-directory recipes

# lint and the suite in .venv only (the recipe files that need their own venv skip there)
test-main: $(STAMP)
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
	rm -rf $(VENV) $(RECIPE_VENVS) $(WHEEL_DIR) build *.egg-info .pytest_cache .ruff_cache

# Recipe environments: libraries whose pins clash with ours (Ray pins gymnasium 1.2.2; BenchMARL
# pins TorchRL < 0.12 and pulls torchvision; TorchRL 0.14 stays out of .venv too) each get a
# venv of their own under .venvs/, with torch held to the CPU build, and run their recipe tests
# from outside the checkout against the built wheel. A venv is rebuilt from nothing when
# pyproject.toml, the constraints or this Makefile change; the wheel is rebuilt and reinstalled
# on every run. EDGESPLIT_RECIPE_VENV makes a missing library an error there, not a skip
# (tests/recipe_runner.py: require_library).
RECIPE_VENVS ?= .venvs
CONSTRAINTS := recipes/constraints.txt
WHEEL_DIR := dist

.PHONY: wheel recipes-torchrl recipes-benchmarl recipes-ray recipes

wheel: $(STAMP)
	rm -rf $(WHEEL_DIR)
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation -w $(WHEEL_DIR) .

# $(call recipe-venv,NAME,REQUIREMENTS): the rule for .venvs/NAME/.installed, a fresh venv with
# the CPU torch, then REQUIREMENTS (the wheel among them, so its dependencies come too) held to
# it by the constraints; the wheel is built first
define recipe-venv
$(RECIPE_VENVS)/$(1)/.installed: pyproject.toml $(CONSTRAINTS) Makefile | wheel
	rm -rf $(RECIPE_VENVS)/$(1)
	$(PYTHON) -m venv $(RECIPE_VENVS)/$(1)
	$(RECIPE_VENVS)/$(1)/bin/python $(PIP_INSTALL) --upgrade pip
	$(RECIPE_VENVS)/$(1)/bin/python $(PIP_INSTALL) torch==2.13.0
	$(RECIPE_VENVS)/$(1)/bin/python $(PIP_INSTALL) -c $(CONSTRAINTS) $(2) "pytest>=8"
	touch $$@
endef

# $(call recipe-test,NAME,TEST FILE): this checkout's wheel into the venv, then its tests
define recipe-test
	$(RECIPE_VENVS)/$(1)/bin/python $(PIP_INSTALL) --no-deps --force-reinstall \
		$(WHEEL_DIR)/edgesplit-*.whl
	EDGESPLIT_RECIPE_VENV=$(1) OMP_NUM_THREADS=1 \
		$(RECIPE_VENVS)/$(1)/bin/python -m pytest -q -p no:cacheprovider $(2)
endef

$(eval $(call recipe-venv,torchrl,$(WHEEL_DIR)/edgesplit-*.whl "torchrl==0.14.1"))
recipes-torchrl: wheel $(RECIPE_VENVS)/torchrl/.installed
	$(call recipe-test,torchrl,tests/test_recipes_torchrl.py)

# BenchMARL 1.5.2 pins torchrl>=0.10,<0.12: a venv apart from the TorchRL one. The torchvision
# it pulls from PyPI is the CUDA build, whose operators do not load beside the CPU torch
# (`import torchvision` fails); the recipe never imports it. PyTorch's CPU index has the match.
$(eval $(call recipe-venv,benchmarl,$(WHEEL_DIR)/edgesplit-*.whl "benchmarl==1.5.2"))
recipes-benchmarl: wheel $(RECIPE_VENVS)/benchmarl/.installed
	$(call recipe-test,benchmarl,tests/test_recipes_benchmarl.py)

# the sweep recipe trains through edgesplit.agents.training: the wheel's `train` extra too
$(eval $(call recipe-venv,ray,"ray[rllib]==2.60.0" "$$$$(ls $(WHEEL_DIR)/edgesplit-*.whl)[train]"))
recipes-ray: wheel $(RECIPE_VENVS)/ray/.installed
	$(call recipe-test,ray,tests/test_recipes_ray.py)

# all three, one after the other (`make test` ends with them)
recipes: recipes-torchrl recipes-benchmarl recipes-ray
