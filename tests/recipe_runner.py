"""Runs a recipe script of ``recipes/`` as a user would: a fresh interpreter, outside the
checkout (so only the installed package is importable), a few hundred steps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def run_recipe(name: str, tmp_path: Path, *args: str, timeout: float = 300) -> str:
    """The recipe's standard output; its output and errors in the failure otherwise."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    proc = subprocess.run(
        [sys.executable, str(RECIPES / name), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout
