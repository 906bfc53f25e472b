"""DQN and Double DQN with action masks, trained on a batched sequential face.

The sequential face (``decision_mode="sequential"``, ``Discrete(S * J * L * L)``) decides one
device's task per step: the device sees its own observation block, which device it is and
what the devices before it claimed this slot
(:func:`edgesplit.sim.encoding.sequential_observation`).
:class:`SequentialBatch` runs ``n_envs`` copies of that face over one batched
:class:`~edgesplit.sim.core.Core`: each slot it asks every device in turn, in all copies at
once, exactly what the Gymnasium face would ask it (``tests/test_dqn.py`` checks the two
give the same observations and masks), so one network forward serves ``n_envs`` decisions.

:class:`MaskedDQN` is the learner (a CleanRL-style loop, not SB3: SB3's DQN has neither
masks nor a batched sequential collector):

* **masks everywhere**: the greedy action is the argmax over allowed actions, epsilon
  exploration draws uniformly among allowed actions only, and the TD target's max (or, with
  ``double=True``, the online network's argmax evaluated by the target network: van Hasselt
  et al., AAAI 2016) runs over the next state's allowed actions;
* **the replay buffer stores each decision once**: its successor (the next decision in the
  same copy: the next device with a task this slot, or the first one next slot) is a row
  index, so the next observation and its mask are not stored twice;
* **reward** ``"own"`` (default): minus the deciding device's own cost this slot (its task's
  latency, energy, miss and drop terms); ``"team"``: minus the slot's mean cost over
  devices (the Gymnasium face's reward, given to every decision of the slot);
* **action** ``"split_target"`` (default): the network scores the ``S * J`` (split, target)
  pairs with both weights at the top level, which is what every device asking for the
  same weights amounts to (proportional shares of equal weights are equal shares); ``"full"``
  scores all ``S * J * L * L`` actions. The exported policy always returns the
  environment's own ``Discrete(S * J * L * L)`` index;
* **warm start** (``warm_start_steps``): the first decisions are a teacher's
  (``warm_start_teacher``: by default the ``greedy`` baseline, which decides on the same
  measured information as the policy; the ``clairvoyant`` reference where foresight pays),
  and a large-margin loss (DQfD, Hester et al., AAAI 2018) pulls the teacher's action's
  value above the others while ``bc_weight`` is not zero; epsilon exploration starts after
  it;
* **dueling** heads (Wang et al., ICML 2016) when ``dueling=True``.

The episode's last decisions are terminal (no bootstrap): the observation carries the time
left, so the end of an episode is part of the state.

>>> import torch
>>> from edgesplit.envs.gym_env import SplitOffloadEnv
>>> _ = torch.manual_seed(0)
>>> env = SplitOffloadEnv("single", decision_mode="sequential", max_cycles=20)
>>> model = MaskedDQN("MlpPolicy", env, n_envs=4, learning_starts=16, batch_size=16, seed=0)
>>> model.learn(200).num_timesteps >= 200
True
>>> obs, info = env.reset(seed=1)
>>> a, _ = model.predict(obs[None], action_masks=info["action_mask"][None])
>>> bool(info["action_mask"][a[0]])
True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from torch import nn
from torch.nn import functional as F

from edgesplit.envs.common import MaskTable
from edgesplit.envs.gym_env import SplitOffloadEnv
from edgesplit.sim.core import Core
from edgesplit.sim.encoding import decode
from edgesplit.sim.scenario import Scenario
from edgesplit.sim.schema import DECISION_FIELDS, ROW

from .registry import AgentSpec

__all__ = ["MaskedDQN", "MaskedDQNAgent", "QNetwork", "ReducedToFull", "SequentialBatch"]

FORMAT = "edgesplit-masked-dqn"
REWARDS = ("own", "team")
ACTIONS = ("split_target", "full")


class SequentialBatch:
    """``n_envs`` copies of the sequential Gymnasium face over one batched core.

    A slot goes: :meth:`start_slot`, then for each device ``i`` in order
    :meth:`observation` ``(i)`` and :meth:`masks` ``(i)`` (``[E, obs_dim]``, ``[E, K]``),
    :meth:`record` ``(i, actions)``, then :meth:`finish_slot`, which resolves the slot in
    every copy, restarts the copies whose episode ended and returns the per-device costs.
    Only copies where :attr:`has` ``[:, i]`` is set take a decision for device ``i``
    (the Gymnasium face skips the others); the actions of the others are ignored.

    Episodes are drawn as :class:`~edgesplit.envs.vector_env.SplitOffloadVectorEnv` draws
    them: copy ``e`` has its own generator, seeded ``seed + e``, which gives one key per
    episode, so copy ``e`` of a batch seeded ``s`` plays the episodes of
    ``SplitOffloadEnv.reset(seed=s + e)`` followed by ``reset()``.
    """

    def __init__(self, scenario: Scenario, n_envs: int, seed: int | None = None) -> None:
        if isinstance(n_envs, bool) or not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
            raise ValueError(f"n_envs: expected an integer >= 1, got {n_envs!r}")
        self.scenario = scenario
        self.n_envs = e = int(n_envs)
        self.core = Core(scenario, e)
        ta = self.tables = self.core.tables
        self.n_devices = n = ta.n_devices
        self.obs_dim = ta.obs_dim + n + ta.n_aps + ta.n_targets
        self.n_actions = int(ta.n_discrete)
        self._mask_table = MaskTable(ta, "discrete")
        nvec = ta.nvec  # (split, target, bw, cpu), the first most significant
        self._radix_split = int(np.prod(nvec[1:]))
        self._radix_target = int(np.prod(nvec[2:]))
        self._onehot = np.eye(n, dtype=np.float32)
        self.rngs = [
            seeding.np_random(None if seed is None else int(seed) + i)[0] for i in range(e)
        ]
        self.actions = np.zeros((e, n), dtype=np.int64)
        self.episode_return = np.zeros(e)
        self.finished_returns: list[float] = []
        self.reset()

    def _keys(self, mask: np.ndarray) -> np.ndarray:
        keys = np.zeros(self.n_envs, dtype=np.uint64)
        for i in np.flatnonzero(mask):
            keys[i] = self.rngs[i].integers(0, 2**63, dtype=np.int64)
        return keys

    def reset(self) -> None:
        """Start a new episode in every copy (from each copy's generator)."""
        mask = np.ones(self.n_envs, dtype=bool)
        self.core.reset(self._keys(mask), mask)
        self.episode_return[:] = 0.0
        self.start_slot()

    def start_slot(self) -> None:
        """Read the slot's pending tasks, observations and masks; nothing claimed yet."""
        core, ta, e = self.core, self.tables, self.n_envs
        self.device_obs = core.observe().copy()  # [E, N, D]
        has, app = core.pending()
        self.has, self.app = has.copy(), app.copy()
        self._masks = self._mask_table.take(core.pending_rows())  # [E, N, K]
        self._ap_load = np.zeros((e, ta.n_aps), np.float32)
        self._work = np.zeros((e, ta.n_targets), np.float32)
        self.actions[:] = 0

    def observation(self, i: int) -> np.ndarray:
        """``[E, obs_dim]`` device ``i``'s turn in every copy (float32)."""
        ta = self.tables
        work = self._work / (self._work + ta.latency_scale_s)
        return np.concatenate(
            [
                self.device_obs[:, i],
                np.broadcast_to(self._onehot[i], (self.n_envs, self.n_devices)),
                self._ap_load,
                work,
            ],
            axis=1,
        )

    def masks(self, i: int) -> np.ndarray:
        """``[E, K]`` device ``i``'s allowed actions in every copy."""
        return self._masks[:, i]

    def record(self, i: int, actions: np.ndarray) -> None:
        """Device ``i``'s actions ``[E]`` (indices of ``Discrete(S * J * L * L)``); what the
        copies where it has a task claim is added to what the next devices see."""
        ta = self.tables
        a = np.asarray(actions, dtype=np.int64)
        self.actions[:, i] = a
        rows = np.flatnonzero(self.has[:, i])
        if not len(rows):
            return
        a = a[rows]
        app = self.app[rows, i]
        last = ta.n_valid[app] - 1
        s = np.minimum(a // self._radix_split, last)
        tg = (a // self._radix_target) % ta.n_targets
        off = s != last
        # as sequential_observation adds them (same dtypes, same order of additions)
        np.add.at(self._ap_load, (rows[off], ta.ap_of_target[i, tg[off]]), 1.0 / self.n_devices)
        np.add.at(self._work, (rows, tg), ta.tail_s[app, s, tg] * off)

    def finish_slot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Resolve the slot with the recorded actions; returns each device's cost
        ``[E, N]``, the team reward ``[E]`` and which copies ended their episode ``[E]``
        (those start a new one). The next slot is started."""
        core = self.core
        dec = decode(self.tables, self.actions, "discrete", self.app)
        packed = core.step_packed(dec)
        a, r = ROW["cost"]
        cost = packed[a][r].copy()
        a, r = ROW["team_reward"]
        team = packed[a][r, :, 0].copy()
        self.episode_return += team
        ended = core.truncated.copy()
        if ended.any():
            self.finished_returns.extend(self.episode_return[ended].tolist())
            self.episode_return[ended] = 0.0
            core.reset(self._keys(ended), ended)
        self.start_slot()
        return cost, team, ended

    def rng_state(self) -> list[dict[str, Any]]:
        return [g.bit_generator.state for g in self.rngs]

    def set_rng_state(self, states: Sequence[dict[str, Any]]) -> None:
        """Restore the copies' generators and start new episodes from them."""
        for g, s in zip(self.rngs, states, strict=False):
            g.bit_generator.state = s
        self.reset()


class QNetwork(nn.Module):
    """An MLP from the observation to one value per (reduced) action; with ``dueling`` a
    state value plus mean-centred advantages."""

    def __init__(self, obs_dim: int, n_out: int, hidden: Sequence[int], dueling: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = obs_dim
        for h in hidden:
            layers += [nn.Linear(d, int(h)), nn.ReLU()]
            d = int(h)
        self.body = nn.Sequential(*layers)
        self.dueling = bool(dueling)
        self.head = nn.Linear(d, n_out)
        self.value = nn.Linear(d, 1) if dueling else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        z = self.body(obs)
        q = self.head(z)
        if self.value is not None:
            q = self.value(z) + q - q.mean(dim=1, keepdim=True)
        return q


class ReducedToFull(nn.Module):
    """Values over the reduced actions to logits over the environment's full discrete
    action: a reduced action's value lands on its full index, every other index gets
    ``-1e9`` (never the argmax while an allowed reduced action exists). A product with a 0/1
    matrix, so it exports to ONNX as one MatMul and one Add, exactly."""

    def __init__(self, q_net: nn.Module, index: np.ndarray, n_full: int) -> None:
        super().__init__()
        self.q_net = q_net
        p = torch.zeros((len(index), n_full))
        p[torch.arange(len(index)), torch.as_tensor(index)] = 1.0
        bias = torch.full((n_full,), -1e9)
        bias[torch.as_tensor(index)] = 0.0
        self.register_buffer("place", p)
        self.register_buffer("bias", bias)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_net(obs) @ self.place + self.bias


class _Replay:
    """Decisions, each stored once; ``nxt`` is the row of the same copy's next decision."""

    def __init__(self, cap: int, obs_dim: int, k: int) -> None:
        self.cap = int(cap)
        self.obs = np.zeros((cap, obs_dim), np.float32)
        self.act = np.zeros(cap, np.int64)
        self.mask = np.zeros((cap, k), bool)
        self.rew = np.zeros(cap, np.float32)
        self.nxt = np.full(cap, -1, np.int64)
        self.done = np.zeros(cap, bool)
        self.ok = np.zeros(cap, bool)  # reward and successor (or the end) known
        self.expert = np.zeros(cap, bool)  # the warm start's (the teacher's) decisions
        self.pos = 0
        self.size = 0

    def add(self, obs: np.ndarray, act: np.ndarray, mask: np.ndarray, expert: bool) -> np.ndarray:
        """Store decisions; returns their rows."""
        b = len(act)
        rows = (self.pos + np.arange(b)) % self.cap
        self.obs[rows], self.act[rows], self.mask[rows] = obs, act, mask
        self.nxt[rows], self.done[rows], self.ok[rows] = -1, False, False
        self.expert[rows] = expert
        self.pos = int((self.pos + b) % self.cap)
        self.size = min(self.size + b, self.cap)
        return rows

    def sample(self, rng: np.random.Generator, b: int) -> np.ndarray:
        idx = rng.integers(0, self.size, size=2 * b + 8)
        idx = idx[self.ok[idx]]
        while len(idx) < b:  # few complete rows yet
            more = rng.integers(0, self.size, size=2 * b + 8)
            idx = np.concatenate([idx, more[self.ok[more]]])
        return idx[:b]

    def arrays(self) -> dict[str, np.ndarray]:
        """The stored rows in the order they were written (oldest first)."""
        n = self.size
        order = (np.arange(n) + (self.pos if n == self.cap else 0)) % self.cap
        back = np.full(self.cap, -1, np.int64)
        back[order] = np.arange(n)
        nxt = np.where(self.nxt[order] >= 0, back[np.maximum(self.nxt[order], 0)], -1)
        return {
            "obs": self.obs[order],
            "act": self.act[order],
            "mask": self.mask[order],
            "rew": self.rew[order],
            "nxt": nxt,
            "done": self.done[order],
            "ok": self.ok[order] & ((nxt >= 0) | self.done[order]),
            "expert": self.expert[order],
        }

    def load(self, z: Any) -> None:
        n = min(len(z["rew"]), self.cap)
        first = len(z["rew"]) - n  # keep the newest rows if the buffer is now smaller
        for k in ("obs", "act", "mask", "rew", "done", "ok", "expert"):
            getattr(self, k)[:n] = z[k][first:]
        nxt = z["nxt"][first:] - first
        self.nxt[:n] = np.where(nxt >= 0, nxt, -1)
        self.ok[:n] &= (self.nxt[:n] >= 0) | self.done[:n]
        self.pos, self.size = n % self.cap, n


def _linear(start: float, end: float, frac: float) -> float:
    return end + (start - end) * max(0.0, 1.0 - frac)


class MaskedDQN:
    """DQN (``double=False``) or Double DQN (``double=True``) with action masks on
    ``n_envs`` copies of the sequential face of ``env``'s scenario (see the module docs).

    ``env`` is the Gymnasium face it is deployed on (``decision_mode="sequential"``,
    ``action_type="discrete"``): its scenario (with its horizon and information model) is
    the one trained on, its spaces are the policy's. Steps (``num_timesteps``,
    ``learning_starts``, ``train_freq``, ``exploration_fraction`` of the budget) count
    decisions, the sequential face's steps.

    Parameters (units in brackets):

    * ``learning_rate``: Adam's step size.
    * ``buffer_size`` [decisions]: replay capacity.
    * ``learning_starts`` [decisions]: no gradient step before this many decisions.
    * ``batch_size``: decisions per gradient step.
    * ``gamma``: discount from one decision of a copy to its next.
    * ``train_freq`` [decisions] and ``gradient_steps``: ``gradient_steps`` gradient steps
      each time another ``train_freq`` decisions are collected.
    * ``target_update_interval`` [gradient steps]: the target network is copied from the
      online one this often.
    * ``exploration_fraction`` (of the budget given to :meth:`learn`),
      ``exploration_initial_eps``, ``exploration_final_eps``: epsilon's linear schedule.
    * ``max_grad_norm``: gradient clipping.
    * ``n_envs``: copies of the sequential face stepped together (one forward per device
      turn serves all of them).
    * ``policy_kwargs``: ``net_arch`` (hidden sizes) and ``dueling``.
    * ``double``: Double DQN's target (``None``: the class's :attr:`DOUBLE`).
    * ``reward``: ``"own"`` or ``"team"``; ``action``: ``"split_target"`` or ``"full"``.
    * ``warm_start_steps`` [decisions]: the first decisions are the teacher's
      (``warm_start_teacher``, a baseline's name: ``greedy`` by default; ``clairvoyant``
      where foresight pays, labelling the training episodes only); ``bc_weight``: the
      weight of the large-margin loss on them (``bc_margin``). With ``action:
      split_target`` a teacher's bandwidth and compute weights become the top levels (the
      only ones that action has).
    * ``seed``, ``device``, ``tensorboard_log``, ``verbose``: as in SB3.
    """

    DOUBLE = False  # the target when ``double`` is not given

    def __init__(
        self,
        policy: str = "MlpPolicy",
        env: Any = None,
        learning_rate: float = 5e-4,
        buffer_size: int = 200_000,
        learning_starts: int = 2_000,
        batch_size: int = 256,
        gamma: float = 0.0,
        train_freq: int = 64,
        gradient_steps: int = 1,
        target_update_interval: int = 250,
        exploration_fraction: float = 0.2,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.02,
        max_grad_norm: float = 10.0,
        n_envs: int = 64,
        policy_kwargs: dict[str, Any] | None = None,
        double: bool | None = None,
        reward: str = "own",
        action: str = "split_target",
        warm_start_steps: int = 0,
        warm_start_teacher: str = "greedy",
        bc_weight: float = 0.0,
        bc_margin: float = 0.05,
        seed: int | None = None,
        device: str = "cpu",
        tensorboard_log: str | None = None,
        verbose: int = 0,
    ) -> None:
        if policy not in ("MlpPolicy", "none"):
            raise ValueError(f"policy: {policy!r}: MaskedDQN builds its own MLP ('MlpPolicy')")
        base = getattr(env, "unwrapped", env)
        if not isinstance(base, SplitOffloadEnv):
            raise ValueError(f"env: expected an EdgeSplit Gymnasium env, got {type(env).__name__}")
        if base.decision_mode != "sequential" or base.action_type != "discrete":
            raise ValueError(
                f"env: decision_mode={base.decision_mode!r}, action_type={base.action_type!r}: "
                "MaskedDQN needs decision_mode='sequential', action_type='discrete'"
            )
        if reward not in REWARDS:
            raise ValueError(f"reward: {reward!r} is not one of {REWARDS}")
        if action not in ACTIONS:
            raise ValueError(f"action: {action!r} is not one of {ACTIONS}")
        for name, v, lo in (
            ("buffer_size", buffer_size, 1),
            ("batch_size", batch_size, 1),
            ("train_freq", train_freq, 1),
            ("gradient_steps", gradient_steps, 0),
            ("target_update_interval", target_update_interval, 1),
            ("learning_starts", learning_starts, 0),
            ("warm_start_steps", warm_start_steps, 0),
        ):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
        from .baselines import BASELINES

        if warm_start_teacher not in BASELINES:
            raise ValueError(
                f"warm_start_teacher: {warm_start_teacher!r} is not one of {sorted(BASELINES)}"
            )
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"gamma: expected a number in [0, 1], got {gamma!r}")
        pk = dict(policy_kwargs or {})
        unknown = set(pk) - {"net_arch", "dueling"}
        if unknown:
            raise ValueError(f"policy_kwargs: unknown keys {sorted(unknown)} (net_arch, dueling)")
        self.hparams: dict[str, Any] = {
            "learning_rate": float(learning_rate),
            "buffer_size": int(buffer_size),
            "learning_starts": int(learning_starts),
            "batch_size": int(batch_size),
            "gamma": float(gamma),
            "train_freq": int(train_freq),
            "gradient_steps": int(gradient_steps),
            "target_update_interval": int(target_update_interval),
            "exploration_fraction": float(exploration_fraction),
            "exploration_initial_eps": float(exploration_initial_eps),
            "exploration_final_eps": float(exploration_final_eps),
            "max_grad_norm": float(max_grad_norm),
            "n_envs": int(n_envs),
            "policy_kwargs": {
                "net_arch": [int(h) for h in pk.get("net_arch", [256, 256])],
                "dueling": bool(pk.get("dueling", False)),
            },
            "double": self.DOUBLE if double is None else bool(double),
            "reward": reward,
            "action": action,
            "warm_start_steps": int(warm_start_steps),
            "warm_start_teacher": str(warm_start_teacher),
            "bc_weight": float(bc_weight),
            "bc_margin": float(bc_margin),
        }
        self.env = base
        self.seed = seed
        self.device = torch.device(device)
        self.tensorboard_log = tensorboard_log
        self.verbose = int(verbose)
        self.observation_space: spaces.Box = base.observation_space
        self.action_space: spaces.Discrete = base.action_space
        ta = base.core.tables
        self.tables = ta
        k_full = int(ta.n_discrete)
        if action == "full":
            self.index = np.arange(k_full)
        else:  # every (split, target) at the top weight levels
            top = int(np.argmax(ta.weight_levels))
            st = np.arange(ta.n_candidates * ta.n_targets)
            self.index = (st * ta.n_levels + top) * ta.n_levels + top
        obs_dim = int(self.observation_space.shape[0])
        hidden = self.hparams["policy_kwargs"]["net_arch"]
        dueling = self.hparams["policy_kwargs"]["dueling"]
        if seed is not None:
            torch.manual_seed(int(seed))
        self.q_net = QNetwork(obs_dim, len(self.index), hidden, dueling).to(self.device)
        self.q_target = QNetwork(obs_dim, len(self.index), hidden, dueling).to(self.device)
        self.q_target.load_state_dict(self.q_net.state_dict())
        # fused: one kernel for the whole update (faster on a CPU for a few small tensors)
        self.optimizer = torch.optim.Adam(
            self.q_net.parameters(), lr=self.hparams["learning_rate"], fused=True
        )
        self.rng = np.random.default_rng(seed)
        self.buffer = _Replay(self.hparams["buffer_size"], obs_dim, len(self.index))
        self.num_timesteps = 0
        self.n_updates = 0
        self._batch: SequentialBatch | None = None
        self._last_row: np.ndarray | None = None
        self._since_train = 0
        self._teacher: Any = None

    # -- acting --------------------------------------------------------------------------
    def _q(self, obs: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return self.q_net(torch.as_tensor(obs, device=self.device))

    def reduced_masks(self, masks: np.ndarray) -> np.ndarray:
        return np.asarray(masks, dtype=bool)[:, self.index]

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, None]:
        """Greedy actions ``[B]`` (indices of the environment's ``Discrete(S * J * L * L)``)
        for observations ``[B, obs_dim]``: the argmax over the allowed actions of
        ``action_masks`` ``[B, S * J * L * L]`` (all actions without it). SB3's signature;
        ``deterministic`` is ignored (the policy is greedy)."""
        obs = np.asarray(observation, dtype=np.float32).reshape(-1, self.observation_space.shape[0])
        q = self._q(obs).cpu().numpy()
        if action_masks is not None:
            m = self.reduced_masks(np.asarray(action_masks).reshape(len(obs), -1))
            q = np.where(m, q, -np.inf)
        return self.index[q.argmax(axis=1)], None

    def policy_module(self) -> nn.Module:
        """Observation to logits over the environment's full discrete action (what the
        exporter compiles; it adds the mask and the argmax)."""
        return ReducedToFull(self.q_net, self.index, int(self.action_space.n)).eval()

    def act(self, obs: np.ndarray, m: np.ndarray, eps: float) -> np.ndarray:
        """Reduced actions ``[E]``: masked greedy, and with probability ``eps`` uniform among
        the allowed actions."""
        q = self._q(obs).cpu().numpy()
        a = np.where(m, q, -np.inf).argmax(axis=1)
        explore = self.rng.random(len(obs)) < eps
        if explore.any():
            u = np.where(m[explore], self.rng.random(m[explore].shape), -1.0)
            a[explore] = u.argmax(axis=1)
        return a

    # -- learning ------------------------------------------------------------------------
    def td_target(self, rew: torch.Tensor, nobs: torch.Tensor, nmask: torch.Tensor,
                   done: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """``r + gamma * (1 - done) * Q'(s', a')`` with ``a'`` the allowed next action of
        largest target value (DQN) or of largest online value (Double DQN)."""
        gamma = self.hparams["gamma"]
        if gamma == 0.0:
            return rew
        with torch.no_grad():
            q_t = self.q_target(nobs)
            if self.hparams["double"]:
                a = self.q_net(nobs).masked_fill(~nmask, float("-inf")).argmax(1, keepdim=True)
                nq = q_t.gather(1, a).squeeze(1)
            else:
                nq = q_t.masked_fill(~nmask, float("-inf")).max(1).values
            return rew + gamma * (1.0 - done) * nq

    def _train_step(self) -> dict[str, float]:
        hp, buf = self.hparams, self.buffer
        idx = buf.sample(self.rng, hp["batch_size"])
        dev = self.device
        obs = torch.as_tensor(buf.obs[idx], device=dev)
        act = torch.as_tensor(buf.act[idx], device=dev)
        rew = torch.as_tensor(buf.rew[idx], device=dev)
        if hp["gamma"] > 0.0:  # the successors' observations and masks
            done = torch.as_tensor(buf.done[idx], device=dev, dtype=torch.float32)
            nxt = np.maximum(buf.nxt[idx], 0)
            nobs = torch.as_tensor(buf.obs[nxt], device=dev)
            nmask = torch.as_tensor(buf.mask[nxt], device=dev)
            target = self.td_target(rew, nobs, nmask, done)
        else:  # a contextual bandit: the target is the reward
            target = rew
        q_all = self.q_net(obs)
        q = q_all.gather(1, act[:, None]).squeeze(1)
        loss = F.smooth_l1_loss(q, target)
        out = {"td_loss": float(loss.item())}
        if hp["bc_weight"] > 0.0:
            ex = torch.as_tensor(buf.expert[idx], device=dev)
            if bool(ex.any()):
                m = torch.as_tensor(buf.mask[idx], device=dev)
                margin = torch.full_like(q_all, hp["bc_margin"])
                margin.scatter_(1, act[:, None], 0.0)
                best = (q_all + margin).masked_fill(~m, float("-inf")).max(1).values
                bc = (best - q)[ex].mean()
                loss = loss + hp["bc_weight"] * bc
                out["bc_loss"] = float(bc.item())
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.q_net.parameters(), hp["max_grad_norm"])
        self.optimizer.step()
        self.n_updates += 1
        if self.n_updates % hp["target_update_interval"] == 0:
            self.q_target.load_state_dict(self.q_net.state_dict())
        return out

    def _ensure_batch(self) -> SequentialBatch:
        if self._batch is None:
            self._batch = SequentialBatch(self.env.scenario, self.hparams["n_envs"], self.seed)
            self._last_row = np.full(self._batch.n_envs, -1, np.int64)
        return self._batch

    def _teacher_actions(self, batch: SequentialBatch) -> np.ndarray:
        """``[E, N]`` the warm start's teacher's decisions this slot, as reduced actions
        (with ``action: split_target``, at the top weight levels)."""
        from .baselines import decisions_to_action, make_baseline

        if self._teacher is None:
            self._teacher = make_baseline(self.hparams["warm_start_teacher"])
        dec = self._teacher.decide(batch.core)
        if self.hparams["action"] == "split_target":
            top = self.tables.weight_levels.max()
            for f in DECISION_FIELDS:
                if f.kind == "level":
                    setattr(dec, f.name, np.full_like(getattr(dec, f.name), top))
        full = decisions_to_action(self.tables, dec, "discrete")
        lookup = np.full(int(self.action_space.n), -1, np.int64)
        lookup[self.index] = np.arange(len(self.index))
        red = lookup[np.asarray(full).reshape(batch.n_envs, batch.n_devices)]
        if (red < 0).any():  # pragma: no cover - the projection above rules it out
            raise RuntimeError("the teacher chose an action outside the reduced action")
        return red

    def learn(
        self,
        total_timesteps: int,
        checkpoint: Callable[[MaskedDQN], None] | None = None,
        checkpoint_every: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> MaskedDQN:
        """Collect and learn for ``total_timesteps`` more decisions (stopping at the first
        slot boundary past them), calling ``checkpoint(self)`` at the first slot boundary
        after each multiple of ``checkpoint_every`` decisions and ``progress(num_timesteps)``
        once a slot."""
        hp, buf = self.hparams, self.buffer
        batch = self._ensure_batch()
        assert self._last_row is not None
        start = self.num_timesteps
        end = start + int(total_timesteps)
        every = int(checkpoint_every)
        next_ckpt = (start // every + 1) * every if every > 0 else None
        writer = None
        if self.tensorboard_log:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(
                str(Path(self.tensorboard_log) / "masked_dqn"), purge_step=self.num_timesteps
            )
        n = batch.n_devices
        rows_of = np.full((batch.n_envs, n), -1, np.int64)
        stats: dict[str, float] = {}
        logged = -1
        while self.num_timesteps < end:
            warm = self.num_timesteps < hp["warm_start_steps"]
            taught = self._teacher_actions(batch) if warm else None
            frac = (self.num_timesteps - hp["warm_start_steps"]) / max(
                1.0, hp["exploration_fraction"] * (end - hp["warm_start_steps"])
            )
            eps = _linear(hp["exploration_initial_eps"], hp["exploration_final_eps"], frac)
            self.exploration_rate = eps
            rows_of[:] = -1
            for i in range(n):
                has = batch.has[:, i]
                if not has.any():
                    continue
                obs = batch.observation(i)
                m = self.reduced_masks(batch.masks(i))
                if taught is not None:
                    red = taught[:, i]
                else:
                    red = self.act(obs, m, eps)
                batch.record(i, self.index[red])
                live = np.flatnonzero(has)
                rows = buf.add(obs[live], red[live], m[live], expert=taught is not None)
                prev = self._last_row[live]
                link = prev >= 0
                buf.nxt[prev[link]] = rows[link]
                buf.ok[prev[link]] = True
                self._last_row[live] = rows
                rows_of[live, i] = rows
                self.num_timesteps += len(live)
                self._since_train += len(live)
            cost, team, ended = batch.finish_slot()
            got = rows_of >= 0
            r = -cost if hp["reward"] == "own" else np.broadcast_to(team[:, None], cost.shape)
            buf.rew[rows_of[got]] = r[got]
            if ended.any():  # the episode's last decisions: terminal
                last = self._last_row[ended]
                last = last[last >= 0]
                buf.done[last] = True
                buf.ok[last] = True
                self._last_row[ended] = -1
            # pending successors are only known next slot; a row whose successor is known
            # is complete once its reward is in (it is, at its slot's end)
            if self.num_timesteps >= hp["learning_starts"] and buf.ok[: buf.size].any():
                while self._since_train >= hp["train_freq"]:
                    self._since_train -= hp["train_freq"]
                    for _ in range(hp["gradient_steps"]):
                        stats = self._train_step()
            else:
                self._since_train = min(self._since_train, hp["train_freq"])
            if writer is not None and batch.finished_returns and self.num_timesteps > logged:
                logged = self.num_timesteps  # one point per step: curves go forward only
                writer.add_scalar(
                    "rollout/ep_rew_mean", float(np.mean(batch.finished_returns)),
                    self.num_timesteps,
                )  # fmt: skip
                writer.add_scalar("rollout/exploration_rate", eps, self.num_timesteps)
                for k, v in stats.items():
                    writer.add_scalar(f"train/{k}", v, self.num_timesteps)
                batch.finished_returns.clear()
            if progress is not None:
                progress(self.num_timesteps)
            if next_ckpt is not None and self.num_timesteps >= next_ckpt:
                if writer is not None:
                    writer.flush()
                if checkpoint is not None:
                    checkpoint(self)
                next_ckpt = (self.num_timesteps // every + 1) * every
        if writer is not None:
            writer.close()
        return self

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Weights, optimiser state, counters and hyperparameters (``torch.save`` of tensors
        and plain values, no pickled objects), written to a temporary file and renamed."""
        path = Path(path)
        state = {
            "format": FORMAT,
            "version": 1,
            "hparams": self.hparams,
            "num_timesteps": self.num_timesteps,
            "n_updates": self.n_updates,
            "obs_dim": int(self.observation_space.shape[0]),
            "n_actions": int(self.action_space.n),
            "q_net": self.q_net.state_dict(),
            "q_target": self.q_target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def save_replay_buffer(self, path: str | Path) -> None:
        """The replay buffer as ``.npz`` (oldest decision first; written and renamed)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **self.buffer.arrays())
        os.replace(tmp, path)

    def load_replay_buffer(self, path: str | Path) -> None:
        with np.load(Path(path)) as z:
            self.buffer.load(z)

    @classmethod
    def load(
        cls,
        path: str | Path,
        env: Any,
        seed: int | None = None,
        tensorboard_log: str | None = None,
    ) -> MaskedDQN:
        """A model saved by :meth:`save`, deployed on (and, to learn on, trained on) ``env``."""
        path = Path(path)
        state = torch.load(path, weights_only=True)
        if state.get("format") != FORMAT:
            raise ValueError(f"{path}: field 'format' = {state.get('format')!r}: not {FORMAT!r}")
        hp = state["hparams"]
        model = cls("MlpPolicy", env, seed=seed, tensorboard_log=tensorboard_log, **hp)
        got = [int(model.observation_space.shape[0]), int(model.action_space.n)]
        if got != [state["obs_dim"], state["n_actions"]]:
            raise ValueError(
                f"{path}: field 'obs_dim, n_actions' = {[state['obs_dim'], state['n_actions']]}: "
                f"the env has {got}"
            )
        model.q_net.load_state_dict(state["q_net"])
        model.q_target.load_state_dict(state["q_target"])
        model.optimizer.load_state_dict(state["optimizer"])
        model.num_timesteps = int(state["num_timesteps"])
        model.n_updates = int(state["n_updates"])
        return model

    # -- random-number state -------------------------------------------------------------
    def rng_state(self) -> dict[str, Any]:
        batch = self._ensure_batch()
        return {"rng": self.rng.bit_generator.state, "envs": batch.rng_state()}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`rng_state`: the copies start new episodes from their generators;
        decisions whose successor was not yet known stay out of the updates."""
        self.rng.bit_generator.state = state["rng"]
        batch = self._ensure_batch()
        batch.set_rng_state(state["envs"])
        assert self._last_row is not None
        self._last_row[:] = -1


class MaskedDQNAgent:
    """The agent protocol (:class:`edgesplit.agents.protocol.Agent`) for :class:`MaskedDQN`
    and its Double DQN subclass.

    It learns on ``algo.n_envs`` copies of the batched sequential face (the run's
    ``n_envs`` where the algorithm config sets none, as for every agent;
    ``algo.kwargs.n_envs`` still wins where given) and acts on the Gymnasium face's
    sequential view with its masks. A saved agent is a directory holding ``model.pt`` and,
    in checkpoints, ``replay_buffer.npz``.
    """

    MODEL_FILE = "model.pt"
    REPLAY_FILE = "replay_buffer.npz"

    def __init__(self, spec: AgentSpec, model: MaskedDQN) -> None:
        self.spec, self.model = spec, model

    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    @property
    def observation_space(self) -> spaces.Box:
        return self.model.observation_space

    @property
    def action_space(self) -> spaces.Discrete:
        return self.model.action_space

    @classmethod
    def build(
        cls,
        spec: AgentSpec,
        algo_cfg: dict[str, Any],
        env_kwargs: dict[str, Any],
        *,
        seed: int,
        n_envs: int = 1,
        tb_dir: str | Path | None = None,
    ) -> MaskedDQNAgent:
        env = SplitOffloadEnv(**env_kwargs)
        hp = dict(algo_cfg.get("kwargs") or {})
        hp.setdefault("n_envs", int(n_envs))  # the run's algo.n_envs (or n_envs), as for SB3
        tb = None if tb_dir is None else str(tb_dir)
        algo = spec.algorithm_class()
        return cls(spec, algo("MlpPolicy", env, seed=int(seed), tensorboard_log=tb, **hp))

    @classmethod
    def load(
        cls,
        spec: AgentSpec,
        directory: Path,
        env_kwargs: dict[str, Any],
        *,
        training: bool = False,
        seed: int | None = None,
        n_envs: int = 1,
        tb_dir: str | Path | None = None,
    ) -> MaskedDQNAgent:
        path = Path(directory) / cls.MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{directory}: missing {cls.MODEL_FILE}")
        tb = None if tb_dir is None else str(tb_dir)
        env = SplitOffloadEnv(**env_kwargs)
        model = spec.algorithm_class().load(path, env, seed=seed, tensorboard_log=tb)
        rb = Path(directory) / cls.REPLAY_FILE
        if training and rb.is_file():
            model.load_replay_buffer(rb)
        return cls(spec, model)

    def save(self, directory: Path) -> None:
        self.model.save(Path(directory) / self.MODEL_FILE)

    def save_replay_buffer(self, directory: Path) -> bool:
        self.model.save_replay_buffer(Path(directory) / self.REPLAY_FILE)
        return True

    def learn(
        self,
        total_timesteps: int,
        checkpoint: Callable[[], None],
        checkpoint_every: int,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        if self.model.num_timesteps < int(total_timesteps):
            self.model.learn(
                int(total_timesteps) - self.model.num_timesteps,
                checkpoint=lambda _m: checkpoint(),
                checkpoint_every=int(checkpoint_every),
                progress=progress,
            )

    def predict(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return self.model.predict(obs, action_masks=masks)[0]

    def policy_module(self) -> nn.Module:
        return self.model.policy_module()

    def rng_state(self) -> dict[str, Any]:
        return self.model.rng_state()

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.model.set_rng_state(state)

    def close(self) -> None:
        """Nothing to release (the batched face holds no processes or files)."""
