"""MADDPG's fast counterfactual ("cf") losses against their definitions.

The actor-critic phase values every alternative of every device's choices with the set
critic. The fast path (:meth:`SetCritic.counterfactual_values`) encodes only the
alternatives the loss uses (allowed choices of devices with a task), updates the pools
rather than recomputing them, and takes the baseline values from the same encoding. The
references below do it the plain way: one full critic call per (device, alternative) with
that device's action swapped, the baseline from :meth:`SetCritic.forward`. Both must give
the same losses and gradients, and a short seeded run with either must end with the same
weights (up to float rounding).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgesplit.agents.maddpg import MADDPG, OptionFeatures, SetCritic
from edgesplit.envs.split_offload_v1 import parallel_env


def _env(scenario: str = "default", **kw):
    return parallel_env(scenario=scenario, action_type="multidiscrete", **kw)


def _swapped_values(algo: MADDPG, o: torch.Tensor, base: torch.Tensor, alts: list) -> torch.Tensor:
    """``[B, N, A]``: the devices' mean value with device ``i`` alone at ``alts[a](base_i)``
    and the others at ``base``, minus the mean value at ``base`` (one critic call each)."""
    b, n, _ = base.shape
    v0 = algo.critic(o, base).mean(1)
    adv = torch.zeros(b, n, len(alts))
    for i in range(n):
        for a, swap in enumerate(alts):
            x = base.clone()
            x[:, i] = swap(base[:, i])
            adv[:, i, a] = algo.critic(o, x).mean(1) - v0
    return adv


def _expected_advantage(probs: torch.Tensor, adv: torch.Tensor, valid: torch.Tensor):
    adv = adv.masked_fill(~valid, 0.0)
    scale = adv[valid].std() + 1e-8 if valid.sum() > 1 else torch.tensor(1.0)
    return -(probs * adv).sum(-1).mean() / scale


def reference_cf_loss(algo: MADDPG, o: torch.Tensor, logits: torch.Tensor, m: torch.Tensor):
    """The MLP actor's cf loss by its definition (class docstring of :class:`MADDPG`)."""
    lg = logits.masked_fill(~m, -1e9)
    heads = torch.split(lg, algo._heads, -1)
    offsets = algo._offsets.tolist()

    def choice(c: int):
        h = int(np.searchsorted(offsets, c, side="right")) - 1
        lo, hi = offsets[h], offsets[h] + algo._heads[h]

        def swap(x: torch.Tensor) -> torch.Tensor:
            x = x.clone()
            x[..., lo:hi] = 0.0
            x[..., c] = 1.0
            return x

        return swap

    with torch.no_grad():
        base = torch.cat(
            [torch.nn.functional.one_hot(h.argmax(-1), h.shape[-1]) for h in heads], -1
        )
        adv = _swapped_values(algo, o, base.float(), [choice(c) for c in range(algo.k)])
    valid = m & (o[..., :1] > 0.5)
    probs = torch.cat([torch.softmax(h, -1) for h in heads], -1)
    return _expected_advantage(probs, adv, valid)


def reference_option_loss(algo: MADDPG, fast):
    """The estimate actor's loss with its cf term by definition (the cloning term from
    ``fast``, the method under test, called without its cf term)."""

    def loss(o, m, bc_w, ex, cf):
        total, out = fast(o, m, bc_w, ex, False)
        if not cf:
            return total, out
        c = int(algo.hparams["cf_batch"])
        opt, lv, has = algo.actor.options(o[:c], m[:c])
        s, j, nl = algo._heads[0], algo._heads[1], algo._heads[2]

        def field(lo: int, hi: int, at: tuple[int, ...]):
            def swap(x: torch.Tensor) -> torch.Tensor:
                x = x.clone()
                x[..., lo:hi] = 0.0
                for p in at:
                    x[..., p] = 1.0
                return x

            return swap

        alts = [field(0, s + j, (q // j, s + q % j)) for q in range(s * j)]
        for h in range(2):
            lo = s + j + h * nl
            alts += [field(lo, lo + nl, (lo + v,)) for v in range(nl)]
        with torch.no_grad():
            base = algo._from_indices(algo._option_actions(opt, lv, "greedy"))
            adv = _swapped_values(algo, o[:c], base, alts)
        valid = (torch.cat([opt, lv], -1) > -1e3) & has[..., None]
        probs = torch.cat([torch.softmax(x, -1) for x in (opt, lv[..., :nl], lv[..., nl:])], -1)
        loss_q = _expected_advantage(probs, adv, valid)
        out["actor_q"] = loss_q.item()
        return total + float(algo.hparams["q_coef"]) * loss_q, out

    return loss


@pytest.mark.parametrize("with_features", [False, True])
def test_counterfactual_where_values_only_the_chosen_alternatives(with_features) -> None:
    """With ``where``, the picked alternatives get the full pass's values and the others 0;
    the values beside them are :meth:`SetCritic.forward`'s."""
    env = _env()
    torch.manual_seed(1)
    n, d, k = len(env.possible_agents), 68, 17
    feats = OptionFeatures(env.core.tables) if with_features else None
    critic = SetCritic(n, d, k, (16, 16), 4, feats)
    obs = torch.rand(4, n, d) * 0.9
    act, alt = torch.rand(4, n, k), torch.rand(4, n, 7, k)
    where = torch.rand(4, n, 7) < 0.3
    full = critic.counterfactual(obs, act, alt)
    cf, values = critic.counterfactual_values(obs, act, alt, where=where)
    torch.testing.assert_close(cf[where], full[where])
    assert (cf[~where] == 0).all()
    torch.testing.assert_close(values, critic(obs, act))
    none, _ = critic.counterfactual_values(obs, act, alt, where=torch.zeros_like(where))
    assert none.shape == (4, n, 7) and (none == 0).all()


def _filled(algo: MADDPG, steps: int) -> dict[str, torch.Tensor]:
    algo.learn(steps)
    return algo.buffer.sample(np.random.default_rng(0), 16)


def test_the_cf_loss_and_its_gradient_are_the_definitions() -> None:
    kw = {"n_envs": 8, "learning_starts": 10**9, "seed": 0, "hidden": [16, 16], "cf_batch": 16}
    algo = MADDPG(_env(max_cycles=10), actor_loss="cf", critic_features=True, **kw)
    bt = _filled(algo, 64)
    o, m = bt["obs"], bt["mask"]
    assert (o[..., 0] > 0.5).any() and not (o[..., 0] > 0.5).all()
    grads = []
    for fn in (algo._counterfactual_loss, lambda *a: reference_cf_loss(algo, *a)):
        algo.actor.zero_grad()
        loss = fn(o, algo.actor(o), m)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in algo.actor.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_the_estimate_actors_option_loss_and_its_gradient_are_the_definitions() -> None:
    kw = {"n_envs": 8, "learning_starts": 10**9, "seed": 0, "hidden": [16], "cf_batch": 16}
    algo = MADDPG(_env(max_cycles=10), actor="estimates", rounds=2, actor_loss="cf", **kw)
    bt = _filled(algo, 64)
    o, m, ex = bt["obs"], bt["mask"], bt["expert"].long()
    results = []
    for fn in (algo._option_loss, reference_option_loss(algo, algo._option_loss)):
        algo.actor.zero_grad()
        loss, out = fn(o, m, 0.5, ex, True)
        loss.backward()
        grads = [
            torch.zeros(0) if p.grad is None else p.grad.clone() for p in algo.actor.parameters()
        ]
        results.append((loss.detach(), out, grads))
    # an untrained critic: values about 0.3, advantages about 6e-4 and an ulp of 0.3 is
    # 3e-8, so float rounding alone moves the normalised term by up to about 1e-4
    torch.testing.assert_close(results[0][0], results[1][0])
    assert results[0][1]["actor_q"] == pytest.approx(results[1][1]["actor_q"], rel=1e-3)
    for a, b in zip(results[0][2], results[1][2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)


def _state(algo: MADDPG) -> dict[str, torch.Tensor]:
    nets = {"a": algo.actor, "c": algo.critic, "at": algo.actor_t, "ct": algo.critic_t}
    return {f"{k}.{p}": v for k, net in nets.items() for p, v in net.state_dict().items()}


@pytest.mark.parametrize("actor", ["mlp", "estimates"])
def test_a_seeded_run_ends_where_the_reference_loss_takes_it(actor) -> None:
    """Cloning, then the cf phase: the same seed with the fast loss and with the reference
    ends with the same weights (float rounding apart: 60 updates)."""
    kw = {
        "n_envs": 8, "learning_starts": 32, "batch_size": 32, "train_freq": 8, "seed": 2,
        "bc_timesteps": 128, "bc_coef": 1.0, "bc_decay": 64, "actor_loss": "cf",
        "cf_batch": 8, "actor": actor, "rounds": 2, "hidden": [16, 16],
    }  # fmt: skip
    states = []
    for reference in (False, True):
        algo = MADDPG(_env(max_cycles=10), **kw)  # seeds torch's generator too
        if reference and actor == "mlp":
            algo._counterfactual_loss = lambda *a, algo=algo: reference_cf_loss(algo, *a)
        elif reference:
            algo._option_loss = reference_option_loss(algo, algo._option_loss)
        algo.learn(480)
        assert "actor_q" in algo.last_losses
        states.append(_state(algo))
    for key, v in states[0].items():
        torch.testing.assert_close(v, states[1][key], rtol=1e-4, atol=1e-5, msg=key)


def test_labels_stop_once_the_cloning_term_is_gone_and_nothing_else_changes() -> None:
    """The ``greedy`` labels are computed only while cloning or while the cloning term
    still weighs in (``bc_decay``); a run that labels every step ends with the same weights,
    bit for bit."""
    kw = {
        "n_envs": 8, "learning_starts": 32, "batch_size": 32, "train_freq": 8, "seed": 4,
        "bc_timesteps": 64, "bc_coef": 1.0, "bc_decay": 32, "actor_delay": 16,
        "actor_loss": "cf", "cf_batch": 8, "hidden": [16, 16],
    }  # fmt: skip
    states = []
    for always in (False, True):
        algo = MADDPG(_env(max_cycles=10), **kw)
        if always:
            algo.labels_until = lambda: float("inf")
        else:
            assert algo.labels_until() == 64 + 16 + 32
        algo.learn(256)
        ex = algo.buffer.expert[: algo.buffer.size]
        labelled = (ex >= 0).any(axis=(1, 2))
        assert labelled[:112].all()
        assert labelled[112:].all() == always and labelled[112:].any() == always
        states.append(_state(algo))
    for key, v in states[0].items():
        assert torch.equal(v, states[1][key]), key
    assert MADDPG(_env(), bc_coef=1.0, bc_timesteps=8).labels_until() == float("inf")
    assert MADDPG(_env(), bc_coef=0.0, bc_timesteps=8, bc_decay=4).labels_until() == 8
