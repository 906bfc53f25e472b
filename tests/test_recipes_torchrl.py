"""The TorchRL recipe, run in its own environment by ``make recipes-torchrl`` (TorchRL
pulls in its own pins; torch stays the CPU build), which ``make test`` ends with. Skipped in
the main environment, which has no TorchRL; under the make target a missing TorchRL fails."""

from __future__ import annotations

import re

import pytest
from recipe_runner import require_library, run_recipe  # tests/recipe_runner.py

require_library("torchrl", venv="torchrl")


def test_torchrl_gymenv_gymwrapper_and_pettingzoowrapper(tmp_path) -> None:
    out = run_recipe("torchrl_envs.py", tmp_path, "--steps", "300")
    assert "GymEnv: collected 300 frames" in out
    # 4 copies x 75 steps over a 50-slot horizon: every copy ended once, TorchRL reset it
    assert "GymWrapper: batch (4,), 300 steps, 4 episodes ended" in out
    m = re.search(r"groups \['agent'\] of (\d+) agents; state \((\d+),\); mask \(6, (\d+)\)", out)
    assert m and m[1] == "6", out  # the default scenario's six devices, one group


def test_torchrl_refuses_next_step_and_takes_same_step() -> None:
    import gymnasium as gym
    from torchrl.envs import GymWrapper

    import edgesplit.envs  # noqa: F401

    def make(mode: str):
        return gym.make_vec(
            "edgesplit/SplitOffload-v1",
            num_envs=2,
            scenario="single",
            max_cycles=5,
            autoreset_mode=mode,
        )

    with pytest.raises(RuntimeError, match="SAME_STEP or DISABLED"):
        GymWrapper(make("NEXT_STEP"))
    td = GymWrapper(make("SAME_STEP")).rollout(12, break_when_any_done=False)
    assert int(td["next", "done"].sum()) == 4  # 2 copies x 2 episode ends in 12 steps
