"""The BenchMARL recipe (EdgeSplit as a custom task), run in its own environment by
``make recipes-benchmarl`` (BenchMARL 1.5 pins TorchRL < 0.12 and pulls torchvision; torch
stays the CPU build), which ``make test`` ends with. Skipped in the main environment, which
has no BenchMARL; under the make target a missing BenchMARL fails."""

from __future__ import annotations

import re

import pytest
from recipe_runner import require_library, run_recipe  # tests/recipe_runner.py

require_library("benchmarl", venv="benchmarl")

pytestmark = pytest.mark.slow


def test_benchmarl_mappo_on_edgesplit_as_a_custom_task(tmp_path) -> None:
    out = run_recipe("benchmarl_task.py", tmp_path, "--frames", "300", timeout=600)
    m = re.search(r"trained (\d+) frames; groups \{'agent': (\d+)\}", out)
    assert m and int(m[1]) >= 300 and m[2] == "6", out  # six devices, one shared group
