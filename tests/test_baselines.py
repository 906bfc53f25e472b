"""Baselines: each is a valid policy, and the dynamics order them as they should."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from edgesplit.agents.baselines import (
    BASELINES,
    Oracle,
    evaluate_baselines,
    make_baseline,
    seed_keys,
)
from edgesplit.envs import ENV_ID
from edgesplit.sim.core import Core
from edgesplit.sim.scenario import load_scenario


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_act_in_the_gym_env(name: str) -> None:
    env = gym.make(ENV_ID, scenario="default")
    env.reset(seed=0)
    pol = make_baseline(name)
    for _ in range(5):
        a = pol.act(env)
        assert env.action_space.contains(a)
        _, _, _, _, info = env.step(a)
        if name != "random":
            assert not info["infeasible"].any()


def test_baseline_keys_match_env_reset() -> None:
    env = gym.make(ENV_ID, scenario="default")
    obs, _ = env.reset(seed=5)
    core = Core(load_scenario("default"), 1)
    core.reset(seed_keys([5]))
    np.testing.assert_array_equal(core.observe().reshape(-1), obs)


def test_exact_oracle_is_no_worse_than_any_single_slot_alternative() -> None:
    core = Core(load_scenario("single"), 8)
    core.reset(seed_keys(range(8)))
    for _ in range(10):
        best = core.resolve(Oracle().decide(core)).cost.sum(1)
        for nm in ("local", "offload", "neurosurgeon", "greedy", "random"):
            other = core.resolve(make_baseline(nm).decide(core)).cost.sum(1)
            assert (best <= other + 1e-12).all(), nm
        core.step(make_baseline("random").decide(core))


def test_dense_sanity_table_over_20_seeds() -> None:
    """oracle <= greedy <= neurosurgeon in mean cost; local and offload worse than oracle."""
    res = evaluate_baselines(
        "dense", range(20), ["local", "offload", "neurosurgeon", "greedy", "oracle"]
    )
    m = {k: v["cost_per_slot"].mean() for k, v in res.items()}
    assert m["oracle"] <= m["greedy"] <= m["neurosurgeon"], m
    assert m["local"] > m["oracle"] and m["offload"] > m["oracle"], m
    # contention is real: blind choices pay for it
    assert m["neurosurgeon"] > 1.1 * m["greedy"], m
