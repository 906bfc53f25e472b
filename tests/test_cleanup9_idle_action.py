"""The action of a device with no task has one home (:func:`edgesplit.sim.encoding.idle_action`):
the shared policy gives exactly that action, of probability 1, on its compact and dense
paths, and the warm start's teacher actions use it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgesplit.agents.shared_policy import SplitDistribution, SplitOffloadNet
from edgesplit.agents.warm_start import teacher_rollouts
from edgesplit.sim.core import Core
from edgesplit.sim.encoding import idle_action
from edgesplit.sim.scenario import load_scenario
from edgesplit.sim.schema import DECISION_FIELDS


def test_idle_action_is_split_0_target_0_at_the_top_levels() -> None:
    assert idle_action(4).tolist() == [0, 0, 3, 3]
    assert len(idle_action(2)) == len(DECISION_FIELDS)


@pytest.fixture(scope="module")
def rollouts() -> tuple[Core, np.ndarray, np.ndarray, np.ndarray]:
    """Greedy's teacher rollouts on ``default`` and where each device had no task."""
    core = Core(load_scenario("default"), 1)
    obs, acts, _ = teacher_rollouts({"scenario": "default"}, "greedy", 4, 6, seed=3)
    n, d = core.tables.n_devices, core.tables.obs_dim
    has = obs.reshape(-1, n, d)[..., 0] > 0.5  # has_task is each device's first entry
    assert has.any() and (~has).any()
    return core, obs.reshape(-1, n * d), acts.reshape(-1, n, len(DECISION_FIELDS)), has


def test_the_teacher_gives_a_device_with_no_task_the_idle_action(rollouts) -> None:
    core, _obs, acts, has = rollouts
    assert (acts[~has] == idle_action(core.tables.n_levels)).all()
    assert not (acts[has] == idle_action(core.tables.n_levels)).all(-1).all()


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "dense"])
def test_the_shared_policy_gives_it_with_probability_1(rollouts, compact: bool) -> None:
    core, obs, _acts, has = rollouts
    torch.manual_seed(0)
    net = SplitOffloadNet.from_core(core, hidden=16)
    net.compact = compact
    with torch.no_grad():
        opt, bw, cpu, _value, net_has = net(torch.as_tensor(obs))
    assert torch.equal(net_has, torch.as_tensor(has))
    dist = SplitDistribution(opt, bw, cpu, net.j)
    want = torch.as_tensor(idle_action(core.tables.n_levels))
    for deterministic in (True, False):
        a = dist.get_actions(deterministic).reshape(*has.shape, -1)
        assert (a[torch.as_tensor(~has)] == want).all()
    # one finite logit per head for such a device: probability 1
    idle = torch.as_tensor(~has)
    for logits in (opt, bw, cpu):
        assert (torch.isfinite(logits[idle]).sum(-1) == 1).all()
