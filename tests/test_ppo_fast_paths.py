"""PPO's faster paths (issue 9, speed) give the numbers of the plain ones: the max pooling's
gradient, the option features indexed before stacking, evaluate_actions from the devices
with a task alone, rollouts collected under inference mode, the fused optimiser and the
allocator setting; and the shared critic is a working critic."""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from edgesplit.agents.allocator import keep_freed_memory
from edgesplit.agents.registry import get_agent
from edgesplit.agents.sb3_vec import NativeVecEnv
from edgesplit.agents.shared_policy import (
    SharedSplitPolicy,
    SplitOffloadNet,
    amax_over_devices,
)
from edgesplit.sim.core import Core
from edgesplit.sim.scenario import load_scenario


def _observations(scenario: str = "default", e: int = 32, slots: int = 6) -> torch.Tensor:
    """Observations of ``e`` episodes over ``slots`` slots of random decisions."""
    from edgesplit.agents.baselines import make_baseline

    core = Core(load_scenario(scenario), e)
    core.reset(np.arange(e, dtype=np.uint64))
    rule, out = make_baseline("random"), []
    for _ in range(slots):
        out.append(core.observe().reshape(e, -1).copy())
        core.step(rule.decide(core))
    return torch.as_tensor(np.concatenate(out))


def _policy(critic: str = "own", scenario: str = "default") -> SharedSplitPolicy:
    venv = NativeVecEnv({"scenario": scenario}, n_envs=2, seed=0)
    torch.manual_seed(0)
    return SharedSplitPolicy(
        venv.observation_space,
        venv.action_space,
        lambda _: 3e-4,
        scenario=scenario,
        hidden=16,
        rounds=2,
        critic=critic,
    )


def test_max_pooling_gradient_is_atens_with_ties() -> None:
    x = torch.randn(64, 6, 16)
    x[:, 3] = x[:, 1]  # exact ties: aten splits the gradient evenly among them
    g = torch.randn(64, 16)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    (a.amax(1) * g).sum().backward()
    (amax_over_devices(b) * g).sum().backward()
    assert torch.equal(amax_over_devices(x), x.amax(1))
    assert torch.equal(a.grad, b.grad)


@pytest.mark.parametrize("critic", ["own", "shared"])
@pytest.mark.parametrize("scenario", ["default", "battery"])
def test_evaluate_actions_from_the_task_devices_is_the_full_distributions(
    critic: str, scenario: str
) -> None:
    pol = _policy(critic, scenario)
    obs = _observations(scenario)
    with torch.no_grad():
        actions = pol(obs)[0]  # what the policy samples (a device without a task: its one)
        dist, value = pol._dist(obs)
        v, logp, ent = pol.evaluate_actions(obs, actions)
    assert torch.equal(v[:, 0], value)
    torch.testing.assert_close(logp, dist.log_prob(actions), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent, dist.entropy(), rtol=1e-5, atol=1e-5)
    assert torch.isfinite(logp).all() and (ent > 0).any()


def test_evaluate_actions_gradients_match_the_full_path() -> None:
    pol = _policy("own")
    obs = _observations()
    with torch.no_grad():
        actions = pol(obs)[0]
    grads = []
    for compact in (True, False):
        pol.zero_grad()
        if compact:
            v, logp, ent = pol.evaluate_actions(obs, actions)
        else:
            dist, value = pol._dist(obs)
            v, logp, ent = value[:, None], dist.log_prob(actions), dist.entropy()
        (v.sum() - logp.mean() - 0.01 * ent.mean()).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in pol.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_shared_critic_has_no_second_encoder_and_learns_a_value() -> None:
    pol = _policy("shared")
    assert not hasattr(pol.net, "v_enc") and not hasattr(pol.net, "v_ctx")
    obs = _observations()
    with torch.no_grad():
        assert torch.equal(pol.predict_values(obs)[:, 0], pol.net(obs)[3])
    target = torch.linspace(-1.0, 0.0, obs.shape[0])
    opt = torch.optim.Adam(pol.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(pol.predict_values(obs)[:, 0], target)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first


def test_critic_name_is_checked() -> None:
    core = Core(load_scenario("single"), 1)
    with pytest.raises(ValueError, match=r"critic.*'both'"):
        SplitOffloadNet.from_core(core, critic="both")


def test_option_features_indexed_are_the_stacked_ones() -> None:
    torch.manual_seed(0)
    pol = _policy("own")
    net = pol.net
    obs = _observations()
    _x, _has, est, feasible = net.parse(obs)
    full = net.option_features(est, feasible)  # [B, N, SJ, F]
    idx = feasible.reshape(-1).nonzero()[:, 0]
    got = net.option_features(est, feasible, idx)
    assert torch.equal(got, full.reshape(-1, full.shape[-1])[idx])


def test_ppo_collects_under_inference_mode_and_steps_a_fused_adam() -> None:
    seen: list[bool] = []
    agent = get_agent("ppo").build(
        {
            "policy": "SharedSplitPolicy",
            "kwargs": {"n_steps": 8, "batch_size": 16, "n_epochs": 1},
        },
        {"scenario": "single", "decision_mode": "joint", "action_type": "multidiscrete"},
        seed=0,
        n_envs=2,
    )
    assert isinstance(agent.model, PPO)
    pol = agent.model.policy
    assert pol.optimizer.param_groups[0]["fused"] is True
    forward = pol.forward

    def spy(*args, **kwargs):
        seen.append(torch.is_inference_mode_enabled())
        return forward(*args, **kwargs)

    pol.forward = spy
    agent.learn(32, checkpoint=lambda: None, checkpoint_every=10**9)
    agent.close()
    assert seen and all(seen)


def test_allocator_setting_is_taken_on_glibc() -> None:
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is glibc
    assert keep_freed_memory() is glibc  # idempotent
