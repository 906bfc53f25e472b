"""The training-speed benchmark's config variants (``--set``): dotted keys of the PPO
config, and a clear error for a key it does not have. (Its timings are the benchmark's
business, not the suite's.)"""

from __future__ import annotations

import doctest

import pytest

from benchmarks import train_speed
from benchmarks.train_speed import with_overrides


def test_the_docstring_examples_run() -> None:
    assert doctest.testmod(train_speed).failed == 0


def test_overrides_set_nested_keys_and_leave_the_config_alone() -> None:
    cfg = {"n_envs": 64, "kwargs": {"n_epochs": 4, "policy_kwargs": {"hidden": 64}}}
    out = with_overrides(cfg, ["n_envs=128", "kwargs.policy_kwargs.hidden=32"])
    assert out == {"n_envs": 128, "kwargs": {"n_epochs": 4, "policy_kwargs": {"hidden": 32}}}
    assert cfg["n_envs"] == 64 and cfg["kwargs"]["policy_kwargs"]["hidden"] == 64


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("kwargs.n_epoch=2", "no key 'n_epoch'"),
        ("kwarg.n_epochs=2", "no section 'kwarg'"),
        ("n_envs", "not KEY=VALUE"),
    ],
)
def test_an_unknown_key_is_an_error_naming_it(item: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        with_overrides({"n_envs": 64, "kwargs": {"n_epochs": 4}}, [item])


def test_the_maddpg_benchmark_builds_the_shipped_agent() -> None:
    # it read n_envs from the kwargs after n_envs moved beside them, and failed at its first
    # line; the shipped kwargs must build the agent it times
    from benchmarks.train_speed_maddpg import shipped_kwargs
    from edgesplit.agents.maddpg import MADDPG
    from edgesplit.envs.split_offload_v1 import parallel_env

    kw = shipped_kwargs()
    assert kw["n_envs"] == 64
    model = MADDPG(parallel_env(scenario="single", action_type="multidiscrete"), **kw)
    assert model.hparams["n_envs"] == kw["n_envs"]


def test_the_maddpg_benchmark_reads_the_tuned_scenario_and_names_a_bad_override() -> None:
    from benchmarks.train_speed_maddpg import shipped_kwargs
    from benchmarks.train_speed_maddpg import with_overrides as maddpg_overrides

    dense = shipped_kwargs("dense")  # configs/tuned/maddpg_dense.yaml
    assert dense["cf_batch"] < shipped_kwargs()["cf_batch"]
    assert maddpg_overrides(dense, ["actor=estimates", "rounds=2"])["rounds"] == 2
    with pytest.raises(ValueError, match="'round' is not an argument of MADDPG"):
        maddpg_overrides(dense, ["round=2"])
