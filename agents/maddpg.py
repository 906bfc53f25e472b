"""MADDPG (Lowe et al., NeurIPS 2017) with one shared actor and a set critic, trained on a
batch of EdgeSplit environments at once.

**Actor.** One network for every device (:class:`SharedActor`): it sees the device's own
observation, a learned embedding of the device's identity and, with ``context=True``, the
mean of every device's encoded observation (a summary of the others' pending tasks and
measurements, the same for every device). Its output is one categorical head per
dimension of the device's ``MultiDiscrete`` action (split, target, bandwidth level,
compute level). Permuting the devices together with their identities permutes the
outputs (``tests/test_maddpg.py`` checks it).

**Critic.** Centralised and the same weights for any number of devices
(:class:`SetCritic`): every device's (observation, action, identity) is encoded, the
encodings are pooled by mean and max, and device ``i``'s value is a function of its own
encoding, the pool and its identity. It gives a value per device, trained on each device's
own reward (``team_weight`` mixes in the team's mean, as the PettingZoo face does).

**Actor update.** With ``actor_loss="st"`` (MADDPG's own) every device's action comes
from the actor at once (straight-through Gumbel-softmax, Jang et al., ICLR 2017) and the
actor ascends the mean of the devices' values: a device is credited with what its action
does to the others' costs too (the sum "mixer" of FACMAC, Peng et al., NeurIPS 2021).
With ``actor_loss="cf"`` (the shipped config) the critic values every alternative of every
device's choices, field by field, with the others at their most likely actions
(:meth:`SetCritic.counterfactual`), and the actor ascends the expected advantage under its
probabilities (COMA's counterfactual baseline, Foerster et al., AAAI 2018, over all
alternatives rather than a sample): the gradient no longer depends on the critic's slope
at one-hot actions. Infeasible choices (the environment's
action masks) get no probability, in sampling, in the greedy (deployed) action and in the
target actions.

**Warm start.** For the first ``bc_timesteps`` environment steps the actor learns by
behaviour cloning (cross-entropy of its masked heads) from the ``greedy`` baseline's
decisions, which read only what the scheduler knows; half of the environments act by the
baseline and half by the actor (DAgger-style roll-in), and the critic learns from all of
them. Afterwards ``bc_coef`` keeps a behaviour-cloning term in the actor's loss (0: pure
MADDPG).

**Collection.** ``n_envs`` copies of the environment in the native batched VectorEnv
(:class:`~edgesplit.envs.vector_env.SplitOffloadVectorEnv`, same-step autoreset): one
actor call and one simulator call per ``n_envs`` environment steps; ``gradient_steps``
updates of ``batch_size`` transitions every ``train_freq`` environment steps.

**Speed** (issue 9). The "cf" loss encodes and values only the alternatives it uses (the
allowed choices of devices with a task: about a fifth of them on ``default``) and takes
its baseline values from the same encoding (:meth:`SetCritic.counterfactual_values`); the
``greedy`` labels stop once the cloning term's weight is 0; the estimate actor runs no
forward it does not use (no per-field logits in its own loss, no critic half).
``tests/test_maddpg_reference.py`` holds the losses, their gradients and a seeded run to
the plain definitions.

Checkpoints are plain ``torch.save`` dictionaries of tensors and numbers, loaded with
``weights_only=True``; the replay buffer is an ``.npz`` file. Deployment goes through ONNX
(:mod:`edgesplit.agents.export`): :attr:`MADDPG.policy` is the joint policy over the joint
observation, which is the concatenation of the devices' observations.

>>> import torch
>>> from edgesplit.envs.split_offload_v1 import parallel_env
>>> _ = torch.manual_seed(0)
>>> env = parallel_env(scenario="default", action_type="multidiscrete", max_cycles=20)
>>> algo = MADDPG(env, n_envs=8, learning_starts=32, batch_size=32, train_freq=8, seed=0)
>>> algo.learn(64).num_timesteps
64
>>> obs, info = env.reset(seed=1)
>>> algo.act(np.stack([obs[a] for a in env.possible_agents])[None]).shape
(1, 6, 4)
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from edgesplit.envs.vector_env import SplitOffloadVectorEnv
from edgesplit.sim.encoding import Tables

from .baselines import decisions_to_action, make_baseline
from .shared_policy import SplitOffloadNet

if TYPE_CHECKING:  # pragma: no cover
    from .registry import AgentSpec

__all__ = [
    "MADDPG",
    "JointPolicy",
    "MADDPGAgent",
    "OptionFeatures",
    "SetCritic",
    "SharedActor",
    "masked_heads",
]

FORMAT_VERSION = 2  # 2: shared actor and set critic (1: an actor and a critic per device)


def _mlp(d_in: int, d_out: int, hidden: tuple[int, ...], last_relu: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(d_in, h), nn.ReLU()]
        d_in = h
    layers.append(nn.Linear(d_in, d_out))
    if last_relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _ids(n: int, ids: torch.Tensor | None) -> torch.Tensor:
    return torch.arange(n) if ids is None else ids


class OptionFeatures(nn.Module):
    """What a scheduler computes from its profiles and measurements, read back from a
    device's observation: for every (split candidate, target) option, the estimated time on
    the device (its backlog and the head), the transfer at the measured rate, the time at
    the target (its reported backlog and the tail) and their sum, each as ``x / (x +
    deadline)``: ``[B, N, 4 * S * J]`` from observations ``[B, N, D]``.

    The observation's squashed values ``y = x / (x + scale)`` are unsquashed with the
    scenario's fixed scales (:class:`~edgesplit.sim.encoding.Tables`); shares, round trips
    and the cloud's backhaul are left for the network to learn. Device ``i`` reaches target
    ``j`` through access point ``ap_of_target[ids[i], j]``.
    """

    def __init__(self, tables: Tables) -> None:
        super().__init__()
        ta = tables
        a, s, j, m = ta.n_apps, ta.n_candidates, ta.n_targets, ta.n_aps
        self.a, self.s, self.j, self.m = a, s, j, m
        self.c0 = 3 + a  # first candidate column
        self.c1 = self.c0 + s * (3 + j)  # device backlog column
        self.ls, self.bs, self.rs = ta.latency_scale_s, ta.bytes_scale, ta.rate_scale_mbps
        self.register_buffer("ap", torch.as_tensor(ta.ap_of_target, dtype=torch.long))
        self.register_buffer("deadline", torch.as_tensor(ta.deadline_s, dtype=torch.float32))
        self.width = 4 * s * j

    @staticmethod
    def _unsquash(y: torch.Tensor, scale: float) -> torch.Tensor:
        return scale * y / (1.0 - y).clamp_min(1e-3)

    def forward(self, obs: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = obs.shape
        s, j, m, ls = self.s, self.j, self.m, self.ls
        app = obs[..., 1 : 1 + self.a]
        has = obs[..., :1]
        deadline = (app * self.deadline).sum(-1, keepdim=True) + (1.0 - has)  # [B, N, 1]
        cand = obs[..., self.c0 : self.c1].reshape(b, n, s, 3 + j)
        head = self._unsquash(cand[..., 1], ls)  # [B, N, S]
        sent = self._unsquash(cand[..., 2], self.bs)
        tail = self._unsquash(cand[..., 3:], ls)  # [B, N, S, J]
        q_dev = self._unsquash(obs[..., self.c1 : self.c1 + 1], ls)  # [B, N, 1]
        rates = self._unsquash(obs[..., self.c1 + 1 : self.c1 + 1 + m], self.rs)  # [B, N, M]
        q_srv = self._unsquash(obs[..., self.c1 + 1 + m + j : self.c1 + 1 + m + 2 * j], ls)
        ap = self.ap[_ids(n, ids)].expand(b, n, j)  # [B, N, J]
        rate = torch.gather(rates, 2, ap)  # [B, N, J] Mbps to each target's access point
        local = (q_dev + head)[..., None].expand(b, n, s, j)
        transfer = sent[..., None] * 8e-6 / rate[:, :, None, :].clamp_min(1e-3)
        remote = q_srv[:, :, None, :] + tail
        parts = torch.stack([local, transfer, remote, local + transfer + remote], -1)
        dl = deadline[..., None, None]
        return (parts / (parts + dl)).reshape(b, n, self.width)


class SharedActor(nn.Module):
    """One actor for every device: logits ``[B, N, K]`` from observations ``[B, N, D]``.

    Device ``i``'s logits are a function of its observation, the embedding of its identity
    ``ids[i]`` (``arange(N)`` by default), with ``context`` the mean over devices of an
    encoding of their observations and, given ``features`` (an :class:`OptionFeatures`),
    its options' estimated times. Permuting devices and ``ids`` together permutes the
    logits.

    >>> actor = SharedActor(n=3, d=5, k=4, hidden=(8,))
    >>> actor(torch.rand(2, 3, 5)).shape
    torch.Size([2, 3, 4])
    """

    def __init__(
        self,
        n: int,
        d: int,
        k: int,
        hidden: tuple[int, ...],
        id_dim: int = 8,
        context: bool = True,
        features: OptionFeatures | None = None,
    ) -> None:
        super().__init__()
        self.ident = nn.Embedding(n, id_dim)
        self.context = context
        self.features = features
        h = hidden[0]
        self.encode = _mlp(d, h, (), last_relu=True) if context else None
        width = d + id_dim + (h if context else 0) + (features.width if features else 0)
        self.net = _mlp(width, k, hidden)

    def forward(self, obs: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = obs.shape
        parts = [obs, self.ident(_ids(n, ids)).expand(b, n, -1)]
        if self.encode is not None:
            parts.append(self.encode(obs).mean(1, keepdim=True).expand(b, n, -1))
        if self.features is not None:
            parts.append(self.features(obs, ids))
        return self.net(torch.cat(parts, -1))


class EstimateActor(nn.Module):
    """The shared actor as PPO's :class:`~edgesplit.agents.shared_policy.SplitOffloadNet`:
    each option scored from its estimated outcome (computed from the observation), the
    devices' pooled encodings and, with ``rounds`` 2, a second look under the load of the
    first choices; logits ``[B, N, K]`` per decision field (each split's best option, the
    best split's targets: the net's max-marginals), options the net rules out at -1e4
    (finite, for the Gumbel-softmax and the cloning loss). The device's identity is in its
    static tables, so ``ids`` is not used. Its critic half is unused here (and not run)."""

    def __init__(self, core: Any, hidden: int, rounds: int = 1) -> None:
        super().__init__()
        self.net = SplitOffloadNet.from_core(core, hidden=hidden, rounds=rounds)

    def forward(self, obs: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = obs.shape
        return self.net.action_logits(obs.reshape(b, -1)).reshape(b, n, -1).clamp_min(-1e4)

    def options(
        self, obs: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The net's own distribution: logits of the joint ``(split, target)`` options
        ``[B, N, S * J]`` (split-major) and of the two levels ``[B, N, 2L]``, what the net or
        the environment's per-field ``mask [B, N, K]`` rules out at -1e4, and ``has_task``
        ``[B, N]``."""
        b = obs.shape[0]
        net = self.net
        opt, bw, cpu, _value, has = net(obs.reshape(b, -1), value=False)
        s, j = net.s, net.j
        keep = (mask[..., :s, None] & mask[..., s : s + j][..., None, :]).flatten(2)
        opt = opt.masked_fill(~(keep | ~has[..., None]), float("-inf")).clamp_min(-1e4)
        lv = torch.cat([bw, cpu], -1).masked_fill(~(mask[..., s + j :] | ~has[..., None]), -1e4)
        return opt, lv.clamp_min(-1e4), has


class SetCritic(nn.Module):
    """A centralised critic that scales with the number of devices: values ``[B, N]``
    (one per device) from observations ``[B, N, D]`` and one-hot actions ``[B, N, K]``.

    Every device's ``(observation, action, identity)`` is encoded by one network; device
    ``i``'s value is a function of its own encoding, the mean and the max of all the
    encodings, and its identity. The weights do not depend on ``N`` (but for the identity
    table). Given ``features`` (an :class:`OptionFeatures`), each device's encoding also
    sees its options' estimated times and those of the option its action picks (the first
    two heads of the action: split and target).

    >>> critic = SetCritic(n=3, d=5, k=4, hidden=(8,))
    >>> critic(torch.rand(2, 3, 5), torch.rand(2, 3, 4)).shape
    torch.Size([2, 3])
    >>> alt = torch.rand(2, 3, 7, 4)  # seven alternatives for each device's action
    >>> critic.counterfactual(torch.rand(2, 3, 5), torch.rand(2, 3, 4), alt).shape
    torch.Size([2, 3, 7])
    """

    def __init__(
        self,
        n: int,
        d: int,
        k: int,
        hidden: tuple[int, ...],
        id_dim: int = 8,
        features: OptionFeatures | None = None,
    ) -> None:
        super().__init__()
        self.ident = nn.Embedding(n, id_dim)
        self.features = features
        h = hidden[0]
        extra = 0 if features is None else features.width + 4
        self.encode = _mlp(d + k + id_dim + extra, h, hidden[:1], last_relu=True)
        # the head's first layer on [own encoding, mean, max, identity], in parts: the pooled
        # part is computed once per sample rather than once per device
        g = hidden[1] if len(hidden) > 1 else h
        self.own = nn.Linear(h, g)
        self.pool = nn.Linear(2 * h, g, bias=False)
        self.who = nn.Linear(id_dim, g, bias=False)
        self.head = _mlp(g, 1, tuple(hidden[2:]))

    def _inputs(
        self, obs: torch.Tensor, act: torch.Tensor, emb: torch.Tensor, table: torch.Tensor | None
    ) -> torch.Tensor:
        """Each device's encoder input; ``act`` may carry extra leading dimensions after
        ``[B, N]`` (alternatives), to which the rest is broadcast."""
        shape = act.shape[:-1]
        parts = [obs.expand(*shape, -1), act, emb.expand(*shape, -1)]
        if table is not None and self.features is not None:
            f = self.features
            grid = table.reshape(*table.shape[:-1], f.s, f.j, 4).expand(*shape, f.s, f.j, 4)
            split, target = act[..., : f.s], act[..., f.s : f.s + f.j]
            chosen = (grid * split[..., :, None, None] * target[..., None, :, None]).sum((-3, -2))
            parts += [table.expand(*shape, -1), chosen]
        return torch.cat(parts, -1)

    def forward(
        self, obs: torch.Tensor, act: torch.Tensor, ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, n, _ = obs.shape
        emb = self.ident(_ids(n, ids))  # [N, id_dim]
        table = None if self.features is None else self.features(obs, ids)
        e = self.encode(self._inputs(obs, act, emb.expand(b, n, -1), table))  # [B, N, H]
        pool = torch.cat([e.mean(1, keepdim=True), e.amax(1, keepdim=True)], -1)  # [B, 1, 2H]
        z = torch.relu(self.own(e) + self.pool(pool) + self.who(emb))
        return self.head(z).squeeze(-1)

    def counterfactual(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        alt: torch.Tensor,
        ids: torch.Tensor | None = None,
        where: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The mean over devices of the values when device ``i`` alone takes action
        ``alt[:, i, a]`` and the others keep ``act``: ``[B, N, A]`` from ``alt [B, N, A,
        K]`` (every alternative of every device in one pass: one encoding per alternative,
        the pools updated rather than recomputed). Given ``where [B, N, A]`` (bool), only
        those alternatives are valued and the others are 0."""
        return self.counterfactual_values(obs, act, alt, ids, where)[0]

    def counterfactual_values(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        alt: torch.Tensor,
        ids: torch.Tensor | None = None,
        where: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`counterfactual` and the values at ``act`` (what :meth:`forward` gives,
        ``[B, N]``) from one encoding of the devices' actions.

        Only the alternatives in ``where`` are encoded and valued (rows picked out of the
        batch: on ``default`` about a fifth of them, 19% of a sampled batch in BENCHMARKS.md,
        are a task's allowed choice), each as the full pass would; the rest of the result
        is 0."""
        b, n, _ = obs.shape
        na, k = alt.shape[2], alt.shape[3]
        emb = self.ident(_ids(n, ids))
        table = None if self.features is None else self.features(obs, ids)
        e = self.encode(self._inputs(obs, act, emb.expand(b, n, -1), table))  # [B, N, H]
        h = e.shape[-1]
        pooled = torch.cat([e.mean(1, keepdim=True), e.amax(1, keepdim=True)], -1)
        who = self.who(emb)  # [N, G]
        own = self.own(e)
        values = self.head(torch.relu(own + self.pool(pooled) + who)).squeeze(-1)  # forward's
        # the alternatives valued: P rows of (sample, device, alternative)
        if where is None:
            sel = torch.arange(b * n * na, device=obs.device)
        else:
            sel = where.reshape(-1).nonzero()[:, 0]
        bi = sel // na  # sample * n + device
        bb, ii = bi // n, bi % n
        alt_p = alt.reshape(-1, k).index_select(0, sel)
        t_p = None if table is None else table.reshape(b * n, -1).index_select(0, bi)
        x = self._inputs(obs.reshape(b * n, -1).index_select(0, bi), alt_p, emb[ii], t_p)
        ea = self.encode(x)  # [P, H]
        mean = ((e.sum(1, keepdim=True) - e).reshape(b * n, h).index_select(0, bi) + ea) / n
        if n > 1:
            eye = torch.eye(n, dtype=torch.bool, device=obs.device)[None, :, :, None]
            rest = e[:, None].expand(b, n, n, -1).masked_fill(eye, float("-inf")).amax(2)
            top = torch.maximum(rest.reshape(b * n, h).index_select(0, bi), ea)
        else:
            top = ea
        pool = self.pool(torch.cat([mean, top], -1))  # [P, G]
        others = own + who  # [B, N(j), G]
        # the largest tensor here, [P, N, G]: built in place (gather, add, relu)
        v = self.head(others.index_select(0, bb).add_(pool[:, None]).relu_()).squeeze(-1)
        mine = self.head(torch.relu(self.own(ea) + who[ii] + pool)).squeeze(-1)  # [P]
        diag = v.gather(1, ii[:, None])[:, 0]  # j == i
        cf = (v.sum(-1) - diag + mine) / n
        if where is None:
            return cf.reshape(b, n, na), values
        out = cf.new_zeros(b * n * na).index_copy(0, sel, cf)
        return out.reshape(b, n, na), values


def masked_heads(
    logits: torch.Tensor, mask: torch.Tensor | None, nvec: list[int], mode: str, tau: float = 1.0
) -> torch.Tensor:
    """Per-head one-hot actions ``[..., K]`` from logits ``[..., K]`` (heads of sizes
    ``nvec``), never a choice whose ``mask`` is False: ``"greedy"`` (argmax), ``"sample"``
    (Gumbel-max) or ``"st"`` (straight-through Gumbel-softmax at temperature ``tau``, with
    the gradient of the soft sample).

    >>> lg = torch.zeros(4, 5)
    >>> m = torch.tensor([[True, False, True, False, True]] * 4)
    >>> masked_heads(lg, m, [2, 3], "sample")[:, [1, 3]].sum().item()
    0.0
    """
    lg = logits if mask is None else logits.masked_fill(~mask, -1e9)
    out = []
    for head in torch.split(lg, nvec, dim=-1):
        if mode == "greedy":
            out.append(F.one_hot(head.argmax(-1), head.shape[-1]).to(head.dtype))
        elif mode == "sample":
            g = -torch.empty_like(head).exponential_().log()
            out.append(F.one_hot((head + g).argmax(-1), head.shape[-1]).to(head.dtype))
        elif mode == "st":
            out.append(F.gumbel_softmax(head, tau=tau, hard=True))
        else:
            raise ValueError(f"mode: {mode!r} is not one of 'greedy', 'sample', 'st'")
    return torch.cat(out, dim=-1)


class JointPolicy(nn.Module):
    """The shared actor as one policy over the joint observation ``[B, N * D]``: logits
    ``[B, N * K]`` in the environment's flattened ``MultiDiscrete`` order (what the
    exporter needs)."""

    def __init__(self, actor: SharedActor, n: int, d: int) -> None:
        super().__init__()
        self.actor, self.n, self.d = actor, n, d

    def joint_logits(self, obs: torch.Tensor) -> torch.Tensor:
        b = obs.shape[0]
        return self.actor(obs.reshape(b, self.n, self.d)).reshape(b, -1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.joint_logits(obs)


_BUFFER_FIELDS = ("obs", "act", "mask", "rew", "obs2", "mask2", "done", "expert")


class _Buffer:
    """Uniform replay of joint transitions (numpy, saved as .npz): actions as indices
    ``[N, dims]``, the expert's (``-1``: none) beside them."""

    def __init__(self, cap: int, n: int, d: int, k: int, dims: int) -> None:
        self.cap, self.size, self.pos = cap, 0, 0
        self.obs = np.zeros((cap, n, d), np.float32)
        self.act = np.zeros((cap, n, dims), np.int8)
        self.mask = np.ones((cap, n, k), bool)
        self.rew = np.zeros((cap, n), np.float32)
        self.obs2 = np.zeros((cap, n, d), np.float32)
        self.mask2 = np.ones((cap, n, k), bool)
        self.done = np.zeros(cap, np.float32)
        self.expert = np.full((cap, n, dims), -1, np.int8)

    def add(self, **rows: np.ndarray) -> None:
        """A batch of transitions, each field ``[E, ...]``."""
        e = len(rows["rew"])
        idx = (self.pos + np.arange(e)) % self.cap
        for k in _BUFFER_FIELDS:
            getattr(self, k)[idx] = rows[k]
        self.pos = int((self.pos + e) % self.cap)
        self.size = min(self.size + e, self.cap)

    def sample(self, rng: np.random.Generator, b: int) -> dict[str, torch.Tensor]:
        idx = rng.integers(0, self.size, b)
        return {k: torch.as_tensor(getattr(self, k)[idx]) for k in _BUFFER_FIELDS}

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, pos=self.pos, **{k: getattr(self, k)[: self.size] for k in _BUFFER_FIELDS})
        os.replace(tmp, path)

    def load(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _BUFFER_FIELDS if k not in z]
            if missing:
                raise ValueError(f"{path}: fields {missing} missing: not a MADDPG v2 replay buffer")
            n = len(z["rew"])
            for k in _BUFFER_FIELDS:
                getattr(self, k)[:n] = z[k]
            self.size, self.pos = n, int(z["pos"]) % self.cap


class MADDPG:
    """MADDPG on EdgeSplit's PettingZoo face (:func:`~edgesplit.envs.split_offload_v1.
    parallel_env` with ``action_type="multidiscrete"``), collected from ``n_envs`` copies of
    its scenario in the native VectorEnv.

    Parameters
    ----------
    env : SplitOffloadParallelEnv
        Gives the scenario (with its horizon and information model) and the spaces.
    n_envs : int
        Environments stepped at once.
    lr_actor, lr_critic : float
        Adam learning rates.
    gamma : float
        Discount.
    tau : float
        Soft update rate of the target networks.
    buffer_size, batch_size, learning_starts, train_freq, gradient_steps : int
        Replay and update schedule (steps are environment steps: ``n_envs`` per call).
    temperature : float
        Gumbel-softmax temperature.
    hidden : tuple of int
        Hidden sizes of the actor and the critic.
    id_dim : int
        Size of the devices' identity embedding.
    context : bool
        Whether the actor also sees the mean of the devices' encoded observations.
    option_features : bool
        Whether the actor also sees its options' estimated times (:class:`OptionFeatures`).
    actor : str
        ``"mlp"``: :class:`SharedActor`; ``"estimates"``: :class:`EstimateActor` (PPO's
        shared network, ``hidden[0]`` wide, ``rounds`` looks; ``id_dim``, ``context`` and
        ``option_features`` do not apply).
    rounds : int
        The estimate actor's looks (1 or 2).
    team_weight : float or None
        Device ``i``'s reward is ``team_weight * team + (1 - team_weight) * own_i`` (own:
        minus its task's cost; team: the mean of own); None: the scenario's.
    bc_timesteps : int
        Environment steps of behaviour cloning from the ``greedy`` baseline at the start.
    bc_coef : float
        Weight of the behaviour-cloning term in the actor's loss after that (needs the
        baseline's decisions on every step: 0 skips them).
    lr_bc : float or None
        The actor's learning rate in the cloning phase (None: ``lr_actor``).
    actor_loss : str
        How the critic moves the actor after cloning: ``"st"``, the devices' mean value at
        straight-through Gumbel-softmax samples of every device's action (MADDPG's own);
        ``"soft"``, at the actor's probabilities (no sampling); ``"cf"``, counterfactual
        advantages: with every other device at its most likely action, each of device
        ``i``'s choices, head by head, is valued by the critic (the devices' mean value,
        :meth:`SetCritic.counterfactual`) against its most likely one, and the actor
        ascends the expected advantage under its probabilities (all choices at once, as
        COMA's counterfactual baseline but without sampling; normalised by the batch's
        spread of advantages and weighted by ``q_coef``; on the first ``cf_batch``
        transitions of each batch: it values ``K`` alternatives per device).
    q_coef : float
        Weight of the critic's term in the actor's loss.
    cf_batch : int
        Transitions of each batch the ``"cf"`` loss values.
    critic_features : bool
        Whether the critic also sees each device's options' estimated times and those of
        the option its action picks (:class:`OptionFeatures`).
    actor_delay : int
        Environment steps after cloning in which only the critic learns (on the clone's
        own actions) before the actor moves.
    bc_decay : int
        Environment steps over which the cloning term's weight falls linearly from
        ``bc_coef`` to 0 once the actor moves (0: it stays at ``bc_coef``).
    seed : int
    """

    def __init__(
        self,
        env: Any,
        n_envs: int = 16,
        lr_actor: float = 1e-3,
        lr_critic: float = 1e-3,
        gamma: float = 0.5,
        tau: float = 0.01,
        buffer_size: int = 100_000,
        batch_size: int = 256,
        learning_starts: int = 2000,
        train_freq: int = 16,
        gradient_steps: int = 1,
        temperature: float = 1.0,
        hidden: tuple[int, ...] | list[int] = (128, 128),
        id_dim: int = 8,
        context: bool = True,
        option_features: bool = True,
        actor: str = "mlp",
        rounds: int = 1,
        team_weight: float | None = None,
        bc_timesteps: int = 0,
        bc_coef: float = 0.0,
        lr_bc: float | None = None,
        actor_loss: str = "st",
        q_coef: float = 1.0,
        cf_batch: int = 128,
        critic_features: bool = False,
        actor_delay: int = 0,
        bc_decay: int = 0,
        seed: int = 0,
        tensorboard_log: str | None = None,
    ) -> None:
        self.env = env
        agents = list(env.possible_agents)
        self.agents = agents
        sp = env.action_space(agents[0])
        if not isinstance(sp, spaces.MultiDiscrete):
            raise ValueError(f"env.action_space: MADDPG needs MultiDiscrete, got {sp}")
        if any(env.action_space(a) != sp for a in agents):
            raise ValueError("env.action_space: every agent must have the same action space")
        if not hasattr(env, "scenario"):
            raise ValueError(f"env: {type(env).__name__} is not EdgeSplit's PettingZoo face")
        for name, v, lo in (
            ("n_envs", n_envs, 1),
            ("batch_size", batch_size, 1),
            ("buffer_size", buffer_size, 1),
            ("train_freq", train_freq, 1),
            ("gradient_steps", gradient_steps, 0),
            ("bc_timesteps", bc_timesteps, 0),
            ("learning_starts", learning_starts, 0),
            ("actor_delay", actor_delay, 0),
            ("bc_decay", bc_decay, 0),
            ("cf_batch", cf_batch, 1),
        ):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
        if team_weight is not None and not 0.0 <= float(team_weight) <= 1.0:
            raise ValueError(
                f"team_weight: expected None or a number in [0, 1], got {team_weight!r}"
            )
        if float(bc_coef) < 0:
            raise ValueError(f"bc_coef: expected a number >= 0, got {bc_coef!r}")
        if actor_loss not in ("st", "soft", "cf"):
            raise ValueError(f"actor_loss: expected 'st', 'soft' or 'cf', got {actor_loss!r}")
        if float(q_coef) < 0:
            raise ValueError(f"q_coef: expected a number >= 0, got {q_coef!r}")
        if actor not in ("mlp", "estimates"):
            raise ValueError(f"actor: expected 'mlp' or 'estimates', got {actor!r}")
        self.nvec = np.asarray(sp.nvec, dtype=np.int64)
        self.n, self.k = len(agents), int(self.nvec.sum())
        self.d = int(env.observation_space(agents[0]).shape[0])
        self.hparams = {
            "n_envs": n_envs, "lr_actor": lr_actor, "lr_critic": lr_critic, "gamma": gamma,
            "tau": tau, "buffer_size": buffer_size, "batch_size": batch_size,
            "learning_starts": learning_starts, "train_freq": train_freq,
            "gradient_steps": gradient_steps, "temperature": temperature,
            "hidden": list(hidden), "id_dim": id_dim, "context": bool(context),
            "option_features": bool(option_features), "actor": actor, "rounds": int(rounds),
            "team_weight": team_weight, "bc_timesteps": bc_timesteps, "bc_coef": bc_coef,
            "lr_bc": lr_bc, "actor_loss": actor_loss, "q_coef": float(q_coef),
            "cf_batch": cf_batch,
            "critic_features": bool(critic_features), "actor_delay": actor_delay,
            "bc_decay": bc_decay, "seed": seed,
        }  # fmt: skip
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        h = tuple(int(x) for x in hidden)
        n, d, k = self.n, self.d, self.k
        if actor == "estimates":
            self.actor: nn.Module = EstimateActor(env.core, h[0], int(rounds))
        else:
            feats = OptionFeatures(env.core.tables) if option_features else None
            self.actor = SharedActor(n, d, k, h, int(id_dim), bool(context), feats)
        cf = OptionFeatures(env.core.tables) if critic_features else None
        self.critic = SetCritic(n, d, k, h, int(id_dim), cf)
        self.actor_t = copy.deepcopy(self.actor)
        self.critic_t = copy.deepcopy(self.critic)
        self.opt_a = torch.optim.Adam(self.actor.parameters(), lr=lr_actor)
        self.opt_c = torch.optim.Adam(self.critic.parameters(), lr=lr_critic)
        self.buffer = _Buffer(int(buffer_size), n, d, k, len(self.nvec))
        self.num_timesteps = 0
        self.n_updates = 0
        self.policy = JointPolicy(self.actor, n, d)
        self.observation_space = spaces.Box(0.0, 1.0, (n * d,), np.float32)
        self.action_space = spaces.MultiDiscrete(np.tile(self.nvec, n))
        self.tensorboard_log = tensorboard_log
        self.last_losses: dict[str, float] = {}
        self._heads = [int(x) for x in self.nvec]
        self._offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(self.nvec)[:-1]]))
        tw = env.scenario.reward.team_weight if team_weight is None else team_weight
        self._tw = float(tw)
        self._venv: SplitOffloadVectorEnv | None = None
        self._alternatives = self._alternative_rows()
        self._expert = make_baseline("greedy")

    def _alternative_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(keep, put)`` ``[A, K]``: alternative ``a`` of a one-hot action ``x`` is ``x *
        keep[a] + put[a]`` (the "cf" loss's choices, built once). The MLP actor's: every
        choice ``c`` of every head (that head's positions cleared, ``c`` set); the estimate
        actor's: every joint ``(split, target)`` option, then every level of each level
        head."""
        k, heads = self.k, self._heads
        if self.hparams["actor"] != "estimates":
            seg = torch.zeros(k, k)  # seg[c]: the positions of choice c's head
            for a, w in zip(self._offsets.tolist(), heads, strict=True):
                seg[a : a + w, a : a + w] = 1.0
            return 1.0 - seg, torch.eye(k)
        s, j, nl = heads[0], heads[1], heads[2]
        q = torch.arange(s * j)
        tmpl = torch.zeros(s * j, k)
        tmpl[q, q // j] = 1.0
        tmpl[q, s + q % j] = 1.0
        st = torch.zeros(k)
        st[: s + j] = 1.0
        seg = torch.zeros(2 * nl, k)
        for i in range(2):
            seg[i * nl : (i + 1) * nl, s + j + i * nl : s + j + (i + 1) * nl] = 1.0
        keep = torch.cat([(1.0 - st).expand(s * j, k), 1.0 - seg])
        return keep, torch.cat([tmpl, torch.eye(k)[s + j :]])

    # -- acting --------------------------------------------------------------------------
    def _one_hot(self, logits: torch.Tensor, mask: torch.Tensor | None, mode: str) -> torch.Tensor:
        return masked_heads(logits, mask, self._heads, mode, float(self.hparams["temperature"]))

    def _indices(self, one_hot: torch.Tensor) -> torch.Tensor:
        return torch.stack([h.argmax(-1) for h in torch.split(one_hot, self._heads, -1)], -1)

    def _from_indices(self, idx: torch.Tensor) -> torch.Tensor:
        """One-hot ``[..., K]`` from per-dimension indices ``[..., dims]``."""
        out = torch.zeros((*idx.shape[:-1], self.k))
        return out.scatter_(-1, idx.long() + self._offsets, 1.0)

    def act(
        self, obs: np.ndarray, masks: np.ndarray | None = None, deterministic: bool = True
    ) -> np.ndarray:
        """Actions ``[B, N, len(nvec)]`` for per-device observations ``[B, N, D]`` (and
        masks ``[B, N, K]``)."""
        with torch.no_grad():
            logits = self.actor(torch.as_tensor(np.asarray(obs, np.float32)))
            m = None if masks is None else torch.as_tensor(np.asarray(masks, bool))
            oh = self._one_hot(logits, m, "greedy" if deterministic else "sample")
        return self._indices(oh).numpy()

    def predict(
        self,
        obs: np.ndarray,
        action_masks: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """SB3-style: joint observations ``[B, N * D]`` (the Gymnasium env's joint view) to
        joint ``MultiDiscrete`` actions ``[B, N * len(nvec)]``."""
        obs = np.asarray(obs, np.float32)
        b = obs.shape[0]
        m = None if action_masks is None else np.asarray(action_masks, bool).reshape(b, self.n, -1)
        a = self.act(obs.reshape(b, self.n, self.d), m, deterministic)
        return a.reshape(b, -1), None

    # -- learning ------------------------------------------------------------------------
    def _option_actions(self, opt: torch.Tensor, lv: torch.Tensor, mode: str) -> torch.Tensor:
        """Indices ``[..., 4]`` from the estimate actor's joint-option and level logits:
        ``"greedy"`` (argmax) or ``"sample"`` (Gumbel-max)."""
        j = self._heads[1]
        parts = [opt, *torch.split(lv, self._heads[2:], -1)]
        if mode == "sample":
            parts = [x - torch.empty_like(x).exponential_().log() for x in parts]
        o, *levels = (x.argmax(-1) for x in parts)
        return torch.stack([o // j, o % j, *levels], -1)

    def _option_loss(
        self, o: torch.Tensor, m: torch.Tensor, bc_w: float, ex: torch.Tensor, cf: bool
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The estimate actor's loss on its own joint options: cloning by cross-entropy
        over the ``(split, target)`` options and the levels (the max-marginal heads would
        score a label's target among another split's targets), and the counterfactual
        term over every option and level."""
        assert isinstance(self.actor, EstimateActor)
        opt, lv, has = self.actor.options(o, m)
        j, nl = self._heads[1], self._heads[2]
        loss = 1e-3 * (opt.clamp_min(-30.0) ** 2).mean()
        out: dict[str, float] = {}
        labelled = (ex[..., 0] >= 0) & has
        if bc_w > 0 and labelled.any():
            lab = ex[labelled]
            ol, ll = opt[labelled], lv[labelled]
            # labels the net rules out (its charge gate is a hair stricter than the
            # environment's) are left out; none left: no cloning term (the mean of nothing
            # is NaN, which would poison the actor's weights)
            ok = ol.gather(1, (lab[:, 0] * j + lab[:, 1])[:, None])[:, 0] > -1e3
            if ok.any():
                ce = F.cross_entropy(ol[ok], (lab[ok, 0] * j + lab[ok, 1]))
                for i in range(2):
                    ce = ce + F.cross_entropy(ll[ok][:, i * nl : (i + 1) * nl], lab[ok, 2 + i])
                loss = loss + bc_w * ce
                out["bc"] = float(ce.item())
        if cf:
            c = int(self.hparams.get("cf_batch", 128))
            oc, opc, lvc, hc = o[:c], opt[:c], lv[:c], has[:c]
            with torch.no_grad():
                base = self._from_indices(self._option_actions(opc, lvc, "greedy"))
                keep, put = self._alternatives
                alt = base[:, :, None, :] * keep + put  # [B, N, S*J + 2L, K]
                valid = (torch.cat([opc, lvc], -1) > -1e3) & hc[..., None]
                adv, values = self.critic.counterfactual_values(oc, base, alt, where=valid)
                adv = adv - values.mean(1)[:, None, None]
                adv = adv.masked_fill(~valid, 0.0)
                scale = adv[valid].std() + 1e-8 if valid.sum() > 1 else torch.tensor(1.0)
            probs = torch.cat(
                [torch.softmax(x, -1) for x in (opc, lvc[..., :nl], lvc[..., nl:])], -1
            )
            loss_q = -(probs * adv).sum(-1).mean() / scale
            loss = loss + float(self.hparams.get("q_coef", 1.0)) * loss_q
            out["actor_q"] = loss_q.item()
        return loss, out

    def _counterfactual_loss(
        self, o: torch.Tensor, logits: torch.Tensor, m: torch.Tensor
    ) -> torch.Tensor:
        """Minus the expected counterfactual advantage of every device's choices under
        the actor's probabilities (``actor_loss="cf"``, see the class docstring)."""
        lg = logits.masked_fill(~m, -1e9)
        with torch.no_grad():
            base = self._one_hot(lg, None, "greedy")  # [B, N, K]
            keep, put = self._alternatives
            alt = base[:, :, None, :] * keep + put  # [B, N, K, K]
            valid = m & (o[..., :1] > 0.5)  # allowed choices of devices with a task
            adv, values = self.critic.counterfactual_values(o, base, alt, where=valid)
            adv = adv - values.mean(1)[:, None, None]  # [B, N, K]
            adv = adv.masked_fill(~valid, 0.0)
            scale = adv[valid].std() + 1e-8 if valid.sum() > 1 else torch.tensor(1.0)
        probs = torch.cat([torch.softmax(h, -1) for h in torch.split(lg, self._heads, -1)], -1)
        return -(probs * adv).sum(-1).mean() / scale

    def _update(self, bc_only: bool, t: int | None = None) -> None:
        hp = self.hparams
        t = self.num_timesteps if t is None else t
        moves = t > hp["bc_timesteps"] + hp.get("actor_delay", 0)
        bt = self.buffer.sample(self.rng, int(hp["batch_size"]))
        o, o2, m, m2 = bt["obs"], bt["obs2"], bt["mask"], bt["mask2"]
        a = self._from_indices(bt["act"])
        with torch.no_grad():
            a2 = self._one_hot(self.actor_t(o2), m2, "greedy")
            q2 = self.critic_t(o2, a2)  # [B, N]
            y = bt["rew"] + hp["gamma"] * (1.0 - bt["done"])[:, None] * q2
        loss_c = F.mse_loss(self.critic(o, a), y)
        self.opt_c.zero_grad()
        loss_c.backward()
        nn.utils.clip_grad_norm_(self.critic.parameters(), 1.0)
        self.opt_c.step()
        losses = {"critic": loss_c.item()}
        if not bc_only and not moves:  # the critic learns the clone's values first
            self._soft_update()
            self.n_updates += 1
            self.last_losses = losses
            return
        mode = hp.get("actor_loss", "st")
        joint = hp["actor"] == "estimates" and (bc_only or mode == "cf")
        if not joint:  # (the joint loss runs the actor itself)
            logits = self.actor(o)  # [B, N, K]
            loss_a = 1e-3 * (logits**2).mean()
        if joint:  # the estimate actor learns on its own joint options
            bc_w = 1.0 if bc_only else float(hp["bc_coef"]) * self._bc_decay(t)
            loss_a, extra = self._option_loss(o, m, bc_w, bt["expert"].long(), not bc_only)
            losses.update(extra)
        elif not bc_only:
            if mode == "cf":
                c = int(hp.get("cf_batch", 128))
                loss_q = self._counterfactual_loss(o[:c], logits[:c], m[:c])
            else:
                # every device's action from the actor; the actor ascends the devices' mean
                # value (at a straight-through sample, or at the probabilities)
                if mode == "soft":
                    lg = logits.masked_fill(~m, -1e9)
                    own = torch.cat(
                        [torch.softmax(h, -1) for h in torch.split(lg, self._heads, -1)], -1
                    )
                else:
                    own = self._one_hot(logits, m, "st")
                loss_q = -self.critic(o, own).mean()
            loss_a = loss_a + float(hp.get("q_coef", 1.0)) * loss_q
            losses["actor_q"] = loss_q.item()
        bc_w = 1.0 if bc_only else float(hp["bc_coef"]) * self._bc_decay(t)
        ex = bt["expert"].long()
        labelled = (ex[..., 0] >= 0) & (o[..., 0] > 0.5)  # a decision the expert made
        if not joint and bc_w > 0 and labelled.any():
            lg = logits.masked_fill(~m, -1e9)
            ce = sum(
                F.cross_entropy(h[labelled], ex[labelled][:, j])
                for j, h in enumerate(torch.split(lg, self._heads, -1))
            )
            loss_a = loss_a + bc_w * ce
            losses["bc"] = float(ce.item())
        lr = hp["lr_bc"] if bc_only and hp["lr_bc"] is not None else hp["lr_actor"]
        for group in self.opt_a.param_groups:
            group["lr"] = lr
        self.opt_a.zero_grad()
        loss_a.backward()
        nn.utils.clip_grad_norm_(self.actor.parameters(), 1.0)
        self.opt_a.step()
        self._soft_update()
        self.n_updates += 1
        self.last_losses = losses

    def _bc_decay(self, t: int) -> float:
        """The cloning term's weight factor at step ``t`` after cloning (``bc_decay``)."""
        hp = self.hparams
        decay = int(hp.get("bc_decay", 0))
        if decay <= 0:
            return 1.0
        return max(0.0, 1.0 - (t - hp["bc_timesteps"] - hp.get("actor_delay", 0)) / decay)

    def labels_until(self) -> float:
        """The environment step from which :meth:`learn` stops asking the ``greedy``
        baseline for labels, since no loss would read them: ``bc_timesteps`` (the end of
        cloning) when ``bc_coef`` is 0; with ``bc_coef`` > 0,
        ``bc_timesteps + actor_delay + bc_decay``, where the cloning term's weight reaches
        0, or ``inf`` without ``bc_decay`` (the term never goes). Benchmarks ask this for
        the start of the label-free phase (``benchmarks/train_speed_maddpg.py``).

        >>> from edgesplit.envs.split_offload_v1 import parallel_env
        >>> env = parallel_env(scenario="single", action_type="multidiscrete")
        >>> MADDPG(env, bc_coef=1.0, bc_timesteps=64, actor_delay=16, bc_decay=32).labels_until()
        112
        >>> MADDPG(env, bc_coef=1.0, bc_timesteps=64, bc_decay=0).labels_until()
        inf
        """
        hp = self.hparams
        end = int(hp["bc_timesteps"])
        if float(hp["bc_coef"]) <= 0:
            return end
        if int(hp.get("bc_decay", 0)) <= 0:
            return float("inf")
        return max(end, end + int(hp.get("actor_delay", 0)) + int(hp["bc_decay"]))

    def _soft_update(self) -> None:
        tau = self.hparams["tau"]
        with torch.no_grad():
            for net, tgt in ((self.actor, self.actor_t), (self.critic, self.critic_t)):
                for p, pt in zip(net.parameters(), tgt.parameters(), strict=True):
                    pt.mul_(1.0 - tau).add_(p, alpha=tau)

    def _vector_env(self) -> SplitOffloadVectorEnv:
        if self._venv is None:
            self._venv = SplitOffloadVectorEnv(
                num_envs=int(self.hparams["n_envs"]),
                scenario=self.env.scenario,
                action_type="multidiscrete",
                autoreset_mode="SAME_STEP",
            )
        return self._venv

    def _behaviour(
        self, o: np.ndarray, m: np.ndarray, expert: np.ndarray | None, t: int
    ) -> np.ndarray:
        """Actions ``[E, N, dims]`` to take: uniform over the allowed choices before
        ``learning_starts``; in the cloning phase the expert's in the first half of the
        environments and the actor's samples in the other; the actor's samples after."""
        hp = self.hparams
        mt = torch.as_tensor(m)
        with torch.no_grad():
            if expert is None and t < hp["learning_starts"]:
                idx = self._indices(self._one_hot(torch.zeros(mt.shape), mt, "sample")).numpy()
            elif isinstance(self.actor, EstimateActor):  # its own joint options
                opt, lv, _has = self.actor.options(torch.as_tensor(o), mt)
                idx = self._option_actions(opt, lv, "sample").numpy()
            else:
                lg = self.actor(torch.as_tensor(o))
                idx = self._indices(self._one_hot(lg, mt, "sample")).numpy()
        if expert is not None and t < hp["bc_timesteps"]:
            half = (len(idx) + 1) // 2
            idx[:half] = expert[:half]
        return idx

    def learn(
        self,
        total_timesteps: int,
        checkpoint: Callable[[MADDPG], None] | None = None,
        checkpoint_every: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> MADDPG:
        """Interact and learn for ``total_timesteps`` more environment steps (rounded up to
        a multiple of ``n_envs``); calls ``checkpoint(self)`` whenever the step count
        passes a multiple of ``checkpoint_every``, and ``progress(num_timesteps)`` whenever
        it passes a multiple of 64.

        The environments are reseeded from the model's generator first, so a model restored
        with its generator's state (:meth:`MADDPGAgent.set_rng_state`) goes on with new
        episodes rather than replaying the first ones."""
        hp = self.hparams
        venv = self._vector_env()
        e, n, d = venv.num_envs, self.n, self.d
        ta = venv.core.tables
        writer = None
        if self.tensorboard_log:
            from torch.utils.tensorboard import SummaryWriter

            # a resumed segment hides the points an interrupted one wrote from here on
            writer = SummaryWriter(
                str(Path(self.tensorboard_log) / "maddpg"), purge_step=self.num_timesteps
            )
        obs, info = venv.reset(seed=int(self.rng.integers(2**31)))
        o = obs.reshape(e, n, d)
        m = info["action_mask"].reshape(e, n, -1)
        ep_ret = np.zeros(e)
        end = self.num_timesteps + int(total_timesteps)
        label_until = self.labels_until()
        while self.num_timesteps < end:
            t0 = self.num_timesteps
            expert = None
            if t0 < label_until:
                dec = self._expert.decide(venv.core)
                expert = decisions_to_action(ta, dec, "multidiscrete").reshape(e, n, -1)
                if hp["actor"] == "estimates":  # all-local: the home target stands for all
                    has, app = venv.core.pending()
                    local = has & (expert[..., 0] >= ta.n_valid[app] - 1)
                    expert[..., 1] = np.where(local, ta.home[None, :], expert[..., 1])
            idx = self._behaviour(o, m, expert, t0)
            obs2, rew, _term, trunc, info = venv.step(idx.reshape(e, -1))
            own = -np.asarray(info["cost"], np.float32)  # [E, N]
            r = self._tw * rew[:, None] + (1.0 - self._tw) * own
            o2 = obs2.reshape(e, n, d).copy()
            m2 = info["action_mask"].reshape(e, n, -1).copy()
            if trunc.any():  # same-step autoreset: the ended episodes' last observations
                fi = info["final_info"]["action_mask"].reshape(e, n, -1)
                for i in np.flatnonzero(trunc):
                    o2[i] = info["final_obs"][i].reshape(n, d)
                    m2[i] = fi[i]
            self.buffer.add(
                obs=o, act=idx, mask=m, rew=r, obs2=o2, mask2=m2,
                done=np.zeros(e, np.float32),  # episodes are truncated, never terminated
                expert=expert if expert is not None else np.int8(-1),
            )  # fmt: skip
            ep_ret += rew
            self.num_timesteps = t = t0 + e
            if trunc.any():
                if writer is not None:
                    writer.add_scalar("rollout/ep_rew_mean", float(ep_ret[trunc].mean()), t)
                ep_ret[trunc] = 0.0
            o, m = obs2.reshape(e, n, d), info["action_mask"].reshape(e, n, -1)
            if t >= hp["learning_starts"]:
                due = (t // hp["train_freq"] - t0 // hp["train_freq"]) * hp["gradient_steps"]
                for _ in range(int(due)):
                    self._update(bc_only=t <= hp["bc_timesteps"], t=t)
                if writer is not None and due and self.n_updates % 100 < due:
                    for key, v in self.last_losses.items():
                        writer.add_scalar(f"train/{key}_loss", v, t)
            if progress is not None and t // 64 != t0 // 64:
                progress(t)
            if checkpoint is not None and checkpoint_every:
                if t // checkpoint_every != t0 // checkpoint_every:
                    if writer is not None:  # the curve up to the checkpoint is on disk with it
                        writer.flush()
                    checkpoint(self)
        if writer is not None:
            writer.close()
        return self

    def close(self) -> None:
        """Close the environments."""
        if self._venv is not None:
            self._venv.close()
            self._venv = None
        self.env.close()

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path, replay_buffer: bool = False) -> None:
        """Weights, optimiser states and counters (``torch.save`` of tensors and numbers,
        written to a temporary file and renamed); the replay buffer beside it as ``.npz``."""
        path = Path(path)
        state = {
            "format": "edgesplit-maddpg",
            "version": FORMAT_VERSION,
            "hparams": self.hparams,
            "num_timesteps": self.num_timesteps,
            "n_updates": self.n_updates,
            "shape": [self.n, self.d, self.k],
            "nets": {
                "actor": self.actor.state_dict(),
                "critic": self.critic.state_dict(),
                "actor_t": self.actor_t.state_dict(),
                "critic_t": self.critic_t.state_dict(),
            },
            "opt_a": self.opt_a.state_dict(),
            "opt_c": self.opt_c.state_dict(),
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        if replay_buffer:
            self.save_replay_buffer(path.with_name(path.stem + "_replay.npz"))

    def save_replay_buffer(self, path: str | Path) -> None:
        """The replay buffer as ``.npz`` (written to a temporary file and renamed)."""
        self.buffer.save(Path(path))

    def load_replay_buffer(self, path: str | Path) -> None:
        """A replay buffer saved by :meth:`save_replay_buffer`."""
        self.buffer.load(Path(path))

    @classmethod
    def load(cls, path: str | Path, env: Any, tensorboard_log: str | None = None) -> MADDPG:
        """A model saved by :meth:`save`, on ``env`` (its replay buffer too, if saved)."""
        path = Path(path)
        state = torch.load(path, weights_only=True)
        if state.get("format") != "edgesplit-maddpg":
            raise ValueError(f"{path}: field 'format' = {state.get('format')!r}: not a MADDPG file")
        if state.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{path}: field 'version' = {state.get('version')!r}: this MADDPG reads "
                f"version {FORMAT_VERSION} (a shared actor and a set critic); retrain"
            )
        hp = dict(state["hparams"])
        model = cls(env, tensorboard_log=tensorboard_log, **hp)
        if [model.n, model.d, model.k] != list(state["shape"]):
            raise ValueError(
                f"{path}: field 'shape' = {state['shape']}: the env has "
                f"{[model.n, model.d, model.k]} (agents, observation, action logits)"
            )
        for k, net in (
            ("actor", model.actor),
            ("critic", model.critic),
            ("actor_t", model.actor_t),
            ("critic_t", model.critic_t),
        ):
            net.load_state_dict(state["nets"][k])
        model.opt_a.load_state_dict(state["opt_a"])
        model.opt_c.load_state_dict(state["opt_c"])
        model.num_timesteps = int(state["num_timesteps"])
        model.n_updates = int(state["n_updates"])
        rb = path.with_name(path.stem + "_replay.npz")
        if rb.exists():
            model.buffer.load(rb)
        return model


class MADDPGAgent:
    """The agent protocol (:class:`edgesplit.agents.protocol.Agent`) for :class:`MADDPG`.

    It learns on a batch of copies of the PettingZoo face's scenario (the algorithm's own
    ``n_envs`` argument, in the config's ``kwargs``: the run's ``n_envs``, meant for SB3's
    copies, does not apply) and acts on the Gymnasium face's joint view. A saved agent is a
    directory holding ``model.pt`` and, in checkpoints, ``replay_buffer.npz``.
    """

    MODEL_FILE = "model.pt"
    REPLAY_FILE = "replay_buffer.npz"

    def __init__(self, spec: AgentSpec, model: MADDPG) -> None:
        self.spec, self.model = spec, model

    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    @property
    def observation_space(self) -> spaces.Box:
        return self.model.observation_space

    @property
    def action_space(self) -> spaces.MultiDiscrete:
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
    ) -> MADDPGAgent:
        from .run_env import pettingzoo_env

        env = pettingzoo_env(env_kwargs)
        hp = dict(algo_cfg.get("kwargs") or {})
        hp.setdefault("n_envs", int(n_envs))  # the run's algo.n_envs (or n_envs), as for SB3
        tb = None if tb_dir is None else str(tb_dir)
        return cls(spec, spec.algorithm_class()(env, seed=int(seed), tensorboard_log=tb, **hp))

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
    ) -> MADDPGAgent:
        from .run_env import pettingzoo_env

        path = Path(directory) / cls.MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{directory}: missing {cls.MODEL_FILE}")
        tb = None if tb_dir is None else str(tb_dir)
        model = spec.algorithm_class().load(path, pettingzoo_env(env_kwargs), tensorboard_log=tb)
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
        return self.model.predict(obs, action_masks=masks if self.spec.masked else None)[0]

    def policy_module(self) -> nn.Module:
        return self.model.policy

    def rng_state(self) -> dict[str, Any]:
        # the environment is reseeded from this generator at the start of learn()
        return {"rng": self.model.rng.bit_generator.state}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.model.rng.bit_generator.state = state["rng"]

    def close(self) -> None:
        self.model.close()
