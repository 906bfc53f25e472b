"""MADDPG's actor-critic phase options: the counterfactual values of the set critic, the
critic's option features, the actor's delay and the cloning term's decay."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgesplit.agents.maddpg import MADDPG, OptionFeatures, SetCritic
from edgesplit.envs.split_offload_v1 import parallel_env


def _env(scenario: str = "default", **kw):
    return parallel_env(scenario=scenario, action_type="multidiscrete", **kw)


@pytest.mark.parametrize("with_features", [False, True])
def test_counterfactual_values_are_the_critic_with_one_action_swapped(with_features) -> None:
    """``SetCritic.counterfactual`` (one pass, pools updated) equals evaluating the critic
    once per (device, alternative) with that device's action replaced."""
    env = _env()
    torch.manual_seed(0)
    n, d, k = len(env.possible_agents), 68, 17
    feats = OptionFeatures(env.core.tables) if with_features else None
    critic = SetCritic(n, d, k, (16, 16), 4, feats)
    obs = torch.rand(3, n, d) * 0.9
    act, alt = torch.rand(3, n, k), torch.rand(3, n, 5, k)
    cf = critic.counterfactual(obs, act, alt)
    for i in range(n):
        for a in range(5):
            swapped = act.clone()
            swapped[:, i] = alt[:, i, a]
            torch.testing.assert_close(cf[:, i, a], critic(obs, swapped).mean(1))
    one = SetCritic(1, d, k, (16, 16), 4)  # a single device: no others to pool
    ref = one(obs[:, :1], alt[:, 0, 2][:, None])[:, 0]
    torch.testing.assert_close(one.counterfactual(obs[:, :1], act[:, :1], alt[:, :1])[:, 0, 2], ref)


def test_the_critic_sees_the_chosen_options_estimates() -> None:
    """With option features, the critic's input for a one-hot (split, target) carries that
    option's four estimated times from the table."""
    env = _env()
    feats = OptionFeatures(env.core.tables)
    critic = SetCritic(len(env.possible_agents), 68, 17, (8, 8), 4, feats)
    obs = torch.rand(2, critic.ident.num_embeddings, 68) * 0.9
    s, j = feats.s, feats.j
    act = torch.zeros(2, obs.shape[1], 17)
    act[..., 3] = 1.0  # split 3
    act[..., s + 1] = 1.0  # target 1
    table = feats(obs)
    x = critic._inputs(obs, act, critic.ident.weight.expand(2, -1, -1), table)
    chosen = table.reshape(2, obs.shape[1], s, j, 4)[:, :, 3, 1]
    torch.testing.assert_close(x[..., -4:], chosen)


@pytest.mark.parametrize("loss", ["cf", "soft", "st"])
def test_the_actor_waits_for_the_critic_then_learns(loss) -> None:
    """After cloning the actor stays put for ``actor_delay`` steps (the critic learns), then
    moves; the cloning term's weight decays; every loss gives finite values."""
    kw = {"n_envs": 4, "learning_starts": 8, "batch_size": 8, "train_freq": 4, "seed": 0}
    algo = MADDPG(
        _env(max_cycles=10), bc_timesteps=16, bc_coef=1.0, actor_delay=16, bc_decay=16,
        actor_loss=loss, critic_features=True, cf_batch=4, **kw,
    )  # fmt: skip
    algo.learn(16)
    before = [p.detach().clone() for p in algo.actor.parameters()]
    critic = [p.detach().clone() for p in algo.critic.parameters()]
    algo.learn(16)  # the delay: the critic moves, the actor does not
    assert all(torch.equal(a, b) for a, b in zip(before, algo.actor.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(critic, algo.critic.parameters(), strict=True))
    assert "actor_q" not in algo.last_losses
    algo.learn(32)
    assert "actor_q" in algo.last_losses and np.isfinite(algo.last_losses["actor_q"])
    assert not all(torch.equal(a, b) for a, b in zip(before, algo.actor.parameters(), strict=True))
    assert "bc" not in algo.last_losses  # decayed to 0 after 16 steps


def test_bad_actor_critic_options_are_named() -> None:
    with pytest.raises(ValueError, match="actor_loss"):
        MADDPG(_env(), actor_loss="ppo")
    with pytest.raises(ValueError, match="q_coef"):
        MADDPG(_env(), q_coef=-1.0)
    with pytest.raises(ValueError, match="actor_delay"):
        MADDPG(_env(), actor_delay=-5)
    with pytest.raises(ValueError, match="cf_batch"):
        MADDPG(_env(), cf_batch=0)


def test_the_estimate_actor_learns_on_its_own_joint_options() -> None:
    """``actor="estimates"``: its joint options respect the environment's per-field masks,
    greedy cloning labels are options it can take (a finite cloning loss), and the
    counterfactual phase runs on options and levels."""
    kw = {"n_envs": 4, "learning_starts": 8, "batch_size": 8, "train_freq": 4, "seed": 0}
    algo = MADDPG(
        _env(max_cycles=10), actor="estimates", rounds=2, hidden=[16], bc_timesteps=24,
        bc_decay=8, actor_loss="cf", cf_batch=4, **kw,
    )  # fmt: skip
    algo.learn(24)
    assert np.isfinite(algo.last_losses["bc"]) and algo.last_losses["bc"] < 50.0
    b = algo.buffer
    o, m = torch.as_tensor(b.obs[:24]), torch.as_tensor(b.mask[:24])
    with torch.no_grad():
        opt, _lv, has = algo.actor.options(o, m)
    s, j = algo._heads[0], algo._heads[1]
    allowed = (m[..., :s, None] & m[..., s : s + j][..., None, :]).flatten(2)
    assert not ((opt > -1e3) & ~allowed & has[..., None]).any()
    ex = torch.as_tensor(b.expert[:24]).long()
    lab = opt.gather(-1, (ex[..., 0] * j + ex[..., 1])[..., None])[..., 0]
    assert (lab[has] > -1e3).all()
    algo.learn(24)
    assert np.isfinite(algo.last_losses["actor_q"]) and "bc" not in algo.last_losses


def test_the_cloning_term_skips_labels_the_estimate_actor_rules_out() -> None:
    """Where the net rules out every label of a batch (its battery gate is a hair stricter
    than the environment's), the estimate actor's loss stays finite, without a cloning
    term (a cross-entropy over no labels is NaN)."""
    kw = {"n_envs": 2, "learning_starts": 10**9, "batch_size": 8, "seed": 0}
    algo = MADDPG(_env(max_cycles=10), actor="estimates", hidden=[8], bc_timesteps=8, **kw)
    algo.learn(8)
    b = algo.buffer
    o, m = torch.as_tensor(b.obs[:8]), torch.as_tensor(b.mask[:8]).clone()
    ex = torch.as_tensor(b.expert[:8]).long()
    assert (ex[..., 0] >= 0).any()
    # forbid each labelled device's own split: every label is ruled out
    m.scatter_(-1, ex[..., :1].clamp_min(0), False)
    loss, out = algo._option_loss(o, m, 1.0, ex, cf=False)
    assert torch.isfinite(loss) and "bc" not in out
