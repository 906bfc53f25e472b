"""The recipes of docs/recipes/ that run in the main environment (SB3, sb3-contrib,
SuperSuit, a CleanRL-style PPO), each for a few hundred steps from outside the checkout.
TorchRL, BenchMARL and RLlib have environments of their own: ``make recipes``."""

from __future__ import annotations

import re

import pytest
from recipe_runner import run_recipe  # tests/recipe_runner.py

pytestmark = pytest.mark.slow


def test_sb3_make_vec_env(tmp_path) -> None:
    out = run_recipe("sb3_make_vec_env.py", tmp_path, "--steps", "256")
    assert "trained 256 steps; frame (48, 320, 3)" in out


def test_sb3_subproc_vec_env_with_spawn(tmp_path) -> None:
    out = run_recipe("sb3_subproc_spawn.py", tmp_path, "--steps", "256")
    assert "trained 256 steps in 2 spawned workers" in out


def test_sb3_contrib_maskable_ppo(tmp_path) -> None:
    out = run_recipe("sb3_maskable_ppo.py", tmp_path, "--steps", "256")
    assert "infeasible choices in 50 steps: 0" in out


def test_supersuit_parameter_sharing(tmp_path) -> None:
    out = run_recipe("supersuit_parameter_sharing.py", tmp_path, "--steps", "300")
    m = re.search(r"trained (\d+) agent-steps over (\d+) agent copies", out)
    assert m and int(m[1]) >= 300 and int(m[2]) == 12  # 6 devices x 2 copies


def test_cleanrl_style_ppo_over_the_native_vector_env(tmp_path) -> None:
    out = run_recipe("cleanrl_ppo.py", tmp_path, "--steps", "512", "--num-envs", "4")
    assert "trained 512 steps" in out
