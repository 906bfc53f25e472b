"""DDPG with the shared per-device policy: options scored from their estimates, then
written as the environment's continuous action.

stable-baselines3's DDPG (a TD3 with one critic and no target smoothing) learns a
deterministic actor ``a = mu(s)`` in [-1, 1] and a critic ``Q(s, a)``; the actor climbs
``dQ/da``. :class:`SplitActor` is that actor built on
:class:`~edgesplit.agents.shared_policy.SplitOffloadNet`: the network scores every device's
``(split, target)`` options and weight levels from each option's estimated outcome (the
same scoring PPO uses), and the actor writes its choice in the continuous view of
:mod:`edgesplit.sim.encoding` (per device ``J + 3`` values: the split as a fraction of the
task's valid candidates, one logit per target, the two weights):

* **forward value**: the best (masked argmax) option and levels, encoded exactly: the split
  at the centre of its bin (``(2k + 1) / n_valid - 1``, which the decoder reads back as
  ``k``), ``+1`` on the chosen target and ``-1`` on the others, each weight at its level.
  The network masks infeasible options, so the decoded decision is always feasible;
* **gradient** (straight-through): that of the expected encoding under the options'
  softmax at ``temperature``, so ``dQ/da`` moves probability between options.

:class:`SharedSplitDDPGPolicy` is the TD3/DDPG policy with this actor (SB3's MLP critic on
the observation and the action). :func:`clone_actor_critic` warm-starts it from a rule's
decisions (:func:`~edgesplit.agents.warm_start.teacher_rollouts`): the actor by
cross-entropy on the teacher's options, the critic on the teacher's discounted returns at
the teacher's (encoded) actions, and the target networks copied from both.

>>> import torch
>>> from gymnasium import spaces
>>> from edgesplit.sim.core import Core
>>> from edgesplit.sim.scenario import load_scenario
>>> core = Core(load_scenario("single"), 1)
>>> ta = core.tables
>>> obs_space = spaces.Box(0.0, 1.0, (ta.n_devices * ta.obs_dim,))
>>> act_space = spaces.Box(-1.0, 1.0, (ta.n_devices * ta.continuous_width,))
>>> actor = SplitActor(obs_space, act_space, scenario="single", hidden=8)
>>> actor(torch.as_tensor(core.observe().reshape(1, -1))).shape
torch.Size([1, 4])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from edgesplit.sim.core import Core
from edgesplit.sim.scenario import load_scenario
from edgesplit.sim.schema import MIN_WEIGHT

from .shared_policy import SplitDistribution, SplitOffloadNet
from .warm_start import discounted_returns, teacher_rollouts

__all__ = ["LrScaledAdam", "SharedSplitDDPGPolicy", "SplitActor", "clone_actor_critic"]


class LrScaledAdam(torch.optim.Adam):
    """Adam stepping at ``lr_scale`` times its groups' rate.

    SB3's TD3 and DDPG set one learning rate on the actor's and the critic's optimizers
    before every update; this lets the actor (warm-started from a rule) move more slowly
    than the critic (which learns from scratch)."""

    def __init__(self, params: Any, lr_scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        if not lr_scale > 0:
            raise ValueError(f"actor_lr_scale: expected a number > 0, got {lr_scale!r}")
        self.lr_scale = float(lr_scale)

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        lrs = [g["lr"] for g in self.param_groups]
        for g in self.param_groups:
            g["lr"] = g["lr"] * self.lr_scale
        try:
            return super().step(closure)
        finally:
            for g, lr in zip(self.param_groups, lrs, strict=True):
                g["lr"] = lr


class SplitActor(BasePolicy):
    """A deterministic DDPG actor over the joint continuous action ``[B, N * (J + 3)]``,
    from :class:`SplitOffloadNet`'s option and level scores (see the module docstring).

    ``scenario`` gives the static tables, ``hidden`` and ``rounds`` the network's width and
    looks; ``temperature`` scales the option and level logits in the softmax whose
    expected encoding carries the gradient (not the forward value).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        scenario: Any = "default",
        hidden: int = 64,
        rounds: int = 1,
        temperature: float = 1.0,
        normalize_images: bool = True,
    ) -> None:
        super().__init__(
            observation_space, action_space, normalize_images=normalize_images, squash_output=True
        )
        if not temperature > 0:
            raise ValueError(f"temperature: expected a number > 0, got {temperature!r}")
        self.scenario, self.hidden, self.rounds = scenario, int(hidden), int(rounds)
        self.temperature = float(temperature)
        core = Core(load_scenario(scenario), 1, backend="numpy")
        ta = core.tables
        self.net = SplitOffloadNet.from_core(core, hidden=self.hidden, rounds=self.rounds)
        net = self.net
        n_obs = int(np.prod(observation_space.shape))  # type: ignore[arg-type]
        n_act = int(np.prod(action_space.shape))  # type: ignore[arg-type]
        if n_obs != net.n * net.d or n_act != net.n * ta.continuous_width:
            raise ValueError(
                f"scenario: {scenario!r} has observations of {net.n * net.d} values and "
                f"actions of {net.n * ta.continuous_width}, the environment {n_obs} and {n_act}"
            )
        # each option's split bin centre per application (the last row: no task, one
        # valid candidate), its target as +-1 per target, each level's weight in [-1, 1]
        n_valid = np.append(np.asarray(ta.n_valid, dtype=np.float64), 1.0)
        k = np.repeat(np.arange(net.s), net.j)  # option o = k * J + target
        centre = (2.0 * np.minimum(k[None, :], n_valid[:, None] - 1) + 1.0) / n_valid[:, None]
        self.register_buffer("centre", torch.as_tensor(centre - 1.0, dtype=torch.float32))
        tgt = np.tile(np.arange(net.j), net.s)
        self.register_buffer(
            "target_sign",
            torch.as_tensor(2.0 * (tgt[:, None] == np.arange(net.j)) - 1.0, dtype=torch.float32),
        )
        w = np.asarray(ta.weight_levels, dtype=np.float64)
        code = 2.0 * (w - MIN_WEIGHT) / (1.0 - MIN_WEIGHT) - 1.0
        self.register_buffer("level_code", torch.as_tensor(code, dtype=torch.float32))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            scenario=self.scenario,
            hidden=self.hidden,
            rounds=self.rounds,
            temperature=self.temperature,
        )
        return data

    def _app(self, obs: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` each device's application row (``A``: no task)."""
        i, size = self.net.at["app"]
        x = obs.float().reshape(obs.shape[0], self.net.n, self.net.d)
        app = x[..., i : i + size].argmax(-1)
        return torch.where(has, app, torch.full_like(app, self.net.a))

    def encode(
        self, obs: torch.Tensor, option: torch.Tensor, bw: torch.Tensor, cpu: torch.Tensor
    ) -> torch.Tensor:
        """The continuous action ``[B, N * (J + 3)]`` of the options ``[B, N]`` (``split *
        J + target``) and level indices ``[B, N]``: what the actor emits for that choice."""
        has = self.net.parse(obs)[1]
        return self._encode_hard(self._app(obs, has), option, bw, cpu)

    def _encode_hard(
        self, app: torch.Tensor, option: torch.Tensor, bw: torch.Tensor, cpu: torch.Tensor
    ) -> torch.Tensor:
        b = app.shape[0]
        split = torch.gather(self.centre[app], 2, option[..., None])  # [B, N, 1]
        target = self.target_sign[option]  # [B, N, J]
        per_dev = [split, target, self.level_code[bw][..., None], self.level_code[cpu][..., None]]
        return torch.cat(per_dev, -1).reshape(b, -1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        opt, bw, cpu, _value, has = self.net(obs)
        app = self._app(obs, has)
        hard = self._encode_hard(app, opt.argmax(-1), bw.argmax(-1), cpu.argmax(-1))
        if not torch.is_grad_enabled():  # acting or exporting: the choice, nothing else
            return hard
        t = self.temperature
        p = torch.softmax(opt / t, -1)  # [B, N, SJ]
        split = (p * self.centre[app]).sum(-1, keepdim=True)
        target = p @ self.target_sign  # [B, N, J]
        lb = torch.softmax(bw / t, -1) @ self.level_code
        lc = torch.softmax(cpu / t, -1) @ self.level_code
        soft = torch.cat([split, target, lb[..., None], lc[..., None]], -1).reshape(hard.shape)
        return hard + (soft - soft.detach())  # the value is exactly ``hard``

    def _predict(self, observation: Any, deterministic: bool = False) -> torch.Tensor:
        return self(observation)

    def distribution(self, obs: torch.Tensor) -> SplitDistribution:
        """The options' and levels' categorical distribution (what behaviour cloning fits)."""
        opt, bw, cpu, _value, _has = self.net(obs)
        return SplitDistribution(opt, bw, cpu, self.net.j)


class SharedSplitDDPGPolicy(TD3Policy):
    """SB3's TD3/DDPG policy with :class:`SplitActor` as actor (and target actor) and
    SB3's MLP critic (``net_arch``: its layers).

    ``scenario``, ``hidden``, ``rounds`` and ``temperature`` go to the actor;
    ``actor_lr_scale`` multiplies the learning rate for the actor only
    (:class:`LrScaledAdam`). Set ``policy: SharedSplitDDPGPolicy`` in ``configs/algo/ddpg.yaml``
    (the agent fills in the scenario).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Any,
        scenario: Any = "default",
        hidden: int = 64,
        rounds: int = 1,
        temperature: float = 1.0,
        actor_lr_scale: float = 1.0,
        **kwargs: Any,
    ) -> None:
        # _build (called by the parent's __init__) needs these
        self._actor_args = {
            "scenario": scenario,
            "hidden": int(hidden),
            "rounds": int(rounds),
            "temperature": float(temperature),
        }
        self.actor_lr_scale = float(actor_lr_scale)
        if kwargs.get("share_features_extractor"):
            raise ValueError("share_features_extractor: the split actor has no extractor to share")
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def make_actor(self, features_extractor: Any = None) -> SplitActor:  # type: ignore[override]
        return SplitActor(
            self.observation_space,
            self.action_space,  # type: ignore[arg-type]
            normalize_images=self.normalize_images,
            **self._actor_args,
        ).to(self.device)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        if self.optimizer_class is not torch.optim.Adam:
            raise ValueError(
                f"optimizer_class: {self.optimizer_class!r}; the split actor steps with Adam"
            )
        self.actor.optimizer = LrScaledAdam(
            self.actor.parameters(),
            lr_scale=self.actor_lr_scale,
            lr=lr_schedule(1),
            **self.optimizer_kwargs,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self._actor_args, actor_lr_scale=self.actor_lr_scale)
        return data


def clone_actor_critic(
    policy: SharedSplitDDPGPolicy,
    env_kwargs: dict[str, Any],
    *,
    teacher: str = "greedy",
    n_envs: int = 64,
    slots: int = 200,
    epochs: int = 10,
    batch_size: int = 512,
    learning_rate: float = 1e-3,
    gamma: float = 0.5,
    seed: int = 0,
    normalize_returns: bool = False,
) -> dict[str, float | int]:
    """Behaviour cloning for :class:`SharedSplitDDPGPolicy` (the arguments of
    :func:`~edgesplit.agents.warm_start.behaviour_clone`): the actor's option and level
    distributions fit the teacher's actions (cross-entropy), every critic fits the
    teacher's discounted returns at the teacher's encoded actions, each with its own Adam
    at ``learning_rate``; then the target networks are set to the fitted ones. Returns the
    first and last epoch's mean actor and critic losses, the number of samples and the
    teacher's mean reward."""
    obs, acts, rews = teacher_rollouts(env_kwargs, teacher, n_envs, slots, seed)
    ret = discounted_returns(rews, gamma, normalize_returns)
    actor, critic = policy.actor, policy.critic
    x = torch.as_tensor(obs.reshape(-1, obs.shape[-1]), dtype=torch.float32)
    a = torch.as_tensor(acts.reshape(-1, acts.shape[-1])).long()
    r = torch.as_tensor(ret.reshape(-1, 1), dtype=torch.float32)
    j = actor.net.j
    md = a.reshape(len(a), -1, 4)
    with torch.no_grad():
        a_cont = actor.encode(x, md[..., 0] * j + md[..., 1], md[..., 2], md[..., 3])
    n = len(x)
    g = torch.Generator().manual_seed(int(seed))
    opt_a = torch.optim.Adam(actor.parameters(), lr=float(learning_rate))
    opt_c = torch.optim.Adam(critic.parameters(), lr=float(learning_rate))
    a_losses, c_losses = [], []
    policy.set_training_mode(True)
    for _ in range(int(epochs)):
        perm = torch.randperm(n, generator=g)
        tot_a = tot_c = 0.0
        for i in range(0, n, int(batch_size)):
            idx = perm[i : i + int(batch_size)]
            loss_a = -actor.distribution(x[idx]).log_prob(a[idx]).mean()
            opt_a.zero_grad()
            loss_a.backward()
            nn.utils.clip_grad_norm_(actor.parameters(), 0.5)
            opt_a.step()
            qs = critic(x[idx], a_cont[idx])
            loss_c = sum(nn.functional.mse_loss(q, r[idx]) for q in qs)
            opt_c.zero_grad()
            loss_c.backward()  # type: ignore[union-attr]
            opt_c.step()
            tot_a += float(loss_a.detach()) * len(idx)
            tot_c += float(loss_c.detach()) * len(idx)  # type: ignore[union-attr]
        a_losses.append(tot_a / n)
        c_losses.append(tot_c / n)
    policy.actor_target.load_state_dict(actor.state_dict())
    policy.critic_target.load_state_dict(critic.state_dict())
    policy.set_training_mode(False)
    return {
        "first_loss": a_losses[0],
        "final_loss": a_losses[-1],
        "first_critic_loss": c_losses[0],
        "final_critic_loss": c_losses[-1],
        "samples": n,
        "teacher_reward": float(rews.mean()),
    }
