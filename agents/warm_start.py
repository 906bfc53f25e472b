"""Warm start: behaviour cloning from a rule before reinforcement learning.

A policy-gradient agent that starts from random weights spends most of a short budget
rediscovering what a profile-driven rule knows. :func:`behaviour_clone` runs a teacher
baseline (by default ``greedy``, which decides on the measured information the policy
observes, so nothing privileged leaks into the student) on ``n_envs`` training episodes
(episode keys drawn from the run's seed, never the held-out evaluation seeds), and fits the
actor-critic policy to the teacher's joint actions (cross-entropy) and its value head to
the teacher's discounted returns. PPO then improves on the teacher from there.

>>> import torch
>>> from stable_baselines3 import PPO
>>> from edgesplit.agents.sb3_vec import NativeVecEnv
>>> venv = NativeVecEnv({"scenario": "single", "max_cycles": 8}, n_envs=2, seed=0)
>>> model = PPO("MlpPolicy", venv, n_steps=8, batch_size=16, seed=0, device="cpu")
>>> stats = behaviour_clone(model.policy, {"scenario": "single", "max_cycles": 8},
...                         teacher="greedy", n_envs=4, slots=8, epochs=2, gamma=0.5, seed=0)
>>> stats["samples"], stats["final_loss"] < stats["first_loss"]
(32, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edgesplit.envs.common import resolve_options
from edgesplit.sim.core import Core
from edgesplit.sim.encoding import encode_actions, idle_action

from .baselines import make_baseline

__all__ = ["behaviour_clone", "discounted_returns", "teacher_rollouts"]


def teacher_rollouts(
    env_kwargs: dict[str, Any], teacher: str, n_envs: int, slots: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``slots`` slots of ``n_envs`` episodes driven by the baseline ``teacher``: joint
    observations ``[T, E, N * D]``, the teacher's MultiDiscrete actions ``[T, E, N * 4]``
    (a device with no task: :func:`~edgesplit.sim.encoding.idle_action`, as the shared
    policy acts) and team rewards ``[T, E]``. Episodes that end are restarted with new keys."""
    sc, _ = resolve_options(
        env_kwargs["scenario"],
        "joint",
        None,
        env_kwargs.get("max_cycles"),
        env_kwargs.get("information"),
    )
    core = Core(sc, int(n_envs))
    ta = core.tables
    rng = np.random.default_rng([int(seed), 0x7EAC4E5])
    core.reset(rng.integers(0, 2**63, size=n_envs, dtype=np.int64).astype(np.uint64))
    rule = make_baseline(teacher)
    idle = idle_action(ta.n_levels)
    obs, acts, rews = [], [], []
    for _ in range(int(slots)):
        obs.append(core.observe().reshape(n_envs, -1).copy())
        dec = rule.decide(core)
        has, app = core.pending()
        a = encode_actions(ta, dec, "multidiscrete").reshape(n_envs, ta.n_devices, -1)
        # all-local runs nothing on the target: the home target stands for every one
        local = a[..., 0] >= ta.n_valid[app] - 1
        a[..., 1] = np.where(local, ta.home[None, :], a[..., 1])
        a = np.where(has[..., None], a, idle)
        acts.append(a.reshape(n_envs, -1))
        res = core.step(dec)
        rews.append(np.asarray(res.team_reward, dtype=np.float64))
        done = core.truncated
        if done.any():
            keys = rng.integers(0, 2**63, size=n_envs, dtype=np.int64).astype(np.uint64)
            core.reset(keys, done)
    return np.stack(obs), np.stack(acts), np.stack(rews)


def discounted_returns(rews: np.ndarray, gamma: float, normalize: bool = False) -> np.ndarray:
    """Discounted returns ``[T, E]`` of reward rows (the last slot's tail is cut off, a
    small bias for the discounts used here: 0.5 ** 20 is 1e-6); ``normalize`` divides them
    by their standard deviation (the scale of an agent trained with ``normalize_reward``).
    The value targets of every warm start."""
    out = np.zeros_like(rews)
    acc = np.zeros(rews.shape[1])
    for t in range(len(rews) - 1, -1, -1):
        acc = rews[t] + gamma * acc
        out[t] = acc
    if normalize:
        out = out / max(float(out.std()), 1e-8)
    return out


def behaviour_clone(
    policy: Any,
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
    """Fit an SB3 actor-critic ``policy`` (anything with ``evaluate_actions`` and an
    ``optimizer``) to the teacher's actions and returns; returns the first and last
    epoch's mean loss, the number of samples and the teacher's mean reward.

    ``normalize_returns``: the value head fits the returns divided by their standard
    deviation, the scale at which an agent with ``normalize_reward`` goes on learning."""
    obs, acts, rews = teacher_rollouts(env_kwargs, teacher, n_envs, slots, seed)
    ret = discounted_returns(rews, gamma, normalize_returns)
    x = torch.as_tensor(obs.reshape(-1, obs.shape[-1]), dtype=torch.float32)
    a = torch.as_tensor(acts.reshape(-1, acts.shape[-1]))
    r = torch.as_tensor(ret.reshape(-1), dtype=torch.float32)
    n = len(x)
    g = torch.Generator().manual_seed(int(seed))
    losses = []
    policy.set_training_mode(True)
    groups = policy.optimizer.param_groups
    lrs = [grp["lr"] for grp in groups]
    for grp in groups:
        grp["lr"] = float(learning_rate)
    for _ in range(int(epochs)):
        perm = torch.randperm(n, generator=g)
        tot = 0.0
        for i in range(0, n, int(batch_size)):
            idx = perm[i : i + int(batch_size)]
            values, logp, _ent = policy.evaluate_actions(x[idx], a[idx])
            loss = -logp.mean() + torch.nn.functional.mse_loss(values.flatten(), r[idx])
            policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            policy.optimizer.step()
            tot += float(loss.detach()) * len(idx)
        losses.append(tot / n)
    for grp, lr in zip(groups, lrs, strict=True):  # PPO's own rate from here on
        grp["lr"] = lr
    policy.set_training_mode(False)
    return {
        "first_loss": losses[0],
        "final_loss": losses[-1],
        "samples": n,
        "teacher_reward": float(rews.mean()),
    }
