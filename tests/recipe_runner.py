"""Runs a recipe script of ``recipes/`` as a user would: a fresh interpreter, outside the
checkout (so only the installed package is importable), a few hundred steps."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pytest

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def run_recipe(
    name: str, tmp_path: Path, *args: str, timeout: float = 300, prefix: Sequence[str] = ()
) -> str:
    """The recipe's standard output; its output and errors in the failure otherwise.
    ``prefix`` goes before the interpreter (a tracer such as ``strace``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    proc = subprocess.run(
        [*prefix, sys.executable, str(RECIPES / name), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


def require_library(module: str, venv: str) -> ModuleType:
    """Import ``module`` for a recipe test file that runs in the venv ``make recipes-<venv>``
    builds. In the main venv, which lacks the library, the file skips; under that make target
    (``EDGESPLIT_RECIPE_VENV`` names the venv) a failed import is an error, so a broken
    install fails CI instead of hiding behind a skip."""
    if os.environ.get("EDGESPLIT_RECIPE_VENV") == venv:
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"runs in its own venv: make recipes-{venv}")
