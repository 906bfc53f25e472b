"""The MADDPG speed benchmark's label-free phase starts where the agent says its labels stop
(:meth:`MADDPG.labels_until`), not at a cut-off the benchmark works out by hand."""

from __future__ import annotations

import math

import pytest

from benchmarks import train_speed_maddpg as bench
from edgesplit.agents.maddpg import MADDPG
from edgesplit.envs.split_offload_v1 import parallel_env

SMALL = {
    "n_envs": 8, "learning_starts": 16, "batch_size": 16, "train_freq": 8, "seed": 0,
    "hidden": [16, 16], "actor_loss": "cf", "cf_batch": 8, "bc_timesteps": 64, "bc_coef": 1.0,
}  # fmt: skip


def _model(**kw) -> MADDPG:
    return MADDPG(parallel_env(scenario="single", action_type="multidiscrete"), **kw)


@pytest.mark.parametrize(
    ("extra", "start"),
    [
        ({"bc_decay": 32, "actor_delay": 16}, 64 + 16 + 32),
        ({"bc_decay": 32}, 64 + 32),
        ({"bc_decay": 0}, None),  # the cloning term stays: labels to the end
        ({"bc_decay": 32, "bc_coef": 0.0}, None),  # no cloning term: label-free at 64
    ],
    ids=["decay and delay", "decay", "no decay", "no cloning term"],
)
def test_the_benchmark_phase_boundary_is_the_agents(extra: dict, start: int | None) -> None:
    model = _model(**{**SMALL, **extra})
    until = model.labels_until()
    assert bench.decayed_phase_start(model) == start
    if start is not None:
        assert until == start
    elif extra["bc_decay"] == 0:
        assert math.isinf(until)
    else:
        assert until == SMALL["bc_timesteps"]


def test_the_shipped_config_s_boundary_is_the_agents() -> None:
    kw = bench.shipped_kwargs()
    assert kw["bc_decay"] > 0
    model = _model(**kw)
    want = kw["bc_timesteps"] + kw.get("actor_delay", 0) + kw["bc_decay"]
    assert bench.decayed_phase_start(model) == model.labels_until() == want


@pytest.mark.parametrize("bc_decay", [32, 0])
def test_the_benchmark_times_the_label_free_phase_from_there(
    bc_decay: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``maddpg_rates`` times a third phase only with ``bc_decay``, and starts it at the
    agent's boundary."""
    starts: list[int] = []
    learn = MADDPG.learn

    def spy(self: MADDPG, total_timesteps: int, *a, **k) -> MADDPG:
        starts.append(self.num_timesteps)
        return learn(self, total_timesteps, *a, **k)

    monkeypatch.setattr(MADDPG, "learn", spy)
    kw = {**SMALL, "bc_decay": bc_decay, "actor_delay": 16}
    rates = bench.maddpg_rates("single", 32, kw)
    decayed = "MADDPG phase, cloning term decayed"
    assert (decayed in rates) == (bc_decay > 0)
    if bc_decay:
        assert starts[-2] == _model(**kw).labels_until() == 64 + 16 + 32
