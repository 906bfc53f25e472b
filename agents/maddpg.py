"""MADDPG (Lowe et al., NeurIPS 2017) over a PettingZoo parallel environment.

Decentralised actors: agent ``i``'s actor sees only its own observation. Centralised critics:
critic ``i`` sees the global state (``env.state()``) and every agent's action. Discrete
actions: each agent's ``MultiDiscrete`` action (for EdgeSplit: split, target, bandwidth
level, compute level) is one categorical head per dimension, sampled with the
straight-through Gumbel-softmax (Jang et al., ICLR 2017), so the actor's gradient flows
through the critic. Infeasible choices (the environment's action masks) get no probability.

The ``N`` actors (and the ``N`` critics) are independent networks evaluated together as one
batched matrix product, which keeps the per-step cost of ``N`` small networks low on a CPU.

Checkpoints are plain ``torch.save`` dictionaries of tensors and numbers, loaded with
``weights_only=True``; the replay buffer is an ``.npz`` file. Deployment goes through ONNX
(:mod:`edgesplit.agents.export`): :attr:`MADDPG.policy` is the joint policy over the joint
observation, which is the concatenation of the agents' observations.

>>> import torch
>>> from edgesplit.envs.split_offload_v1 import parallel_env
>>> _ = torch.manual_seed(0)
>>> env = parallel_env(scenario="default", action_type="multidiscrete", max_cycles=20)
>>> algo = MADDPG(env, learning_starts=32, batch_size=32, train_freq=8, seed=0)
>>> algo.learn(64).num_timesteps
64
>>> obs, info = env.reset(seed=1)
>>> algo.act(np.stack([obs[a] for a in env.possible_agents])[None]).shape
(1, 6, 4)
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from .registry import AgentSpec

__all__ = ["MADDPG", "BatchedMLP", "JointPolicy", "MADDPGAgent"]


class BatchedMLP(nn.Module):
    """``n`` independent MLPs (ReLU hidden layers) evaluated at once: ``[n, B, d_in] ->
    [n, B, d_out]``; network ``k`` sees only row ``k`` of the input."""

    def __init__(self, n: int, d_in: int, d_out: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        sizes = [d_in, *hidden, d_out]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in itertools.pairwise(sizes):
            w = torch.empty(n, a, b)
            for k in range(n):  # PyTorch's Linear initialisation, per network
                nn.init.kaiming_uniform_(w[k].T, a=math.sqrt(5))
            bound = 1.0 / math.sqrt(a)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.empty(n, 1, b).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.relu(x)
        return x


def _masked(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return logits if mask is None else logits.masked_fill(~mask, -1e9)


class JointPolicy(nn.Module):
    """The actors as one policy over the joint observation ``[B, N * D]``: logits ``[B, N *
    K]`` in the environment's flattened ``MultiDiscrete`` order (what the exporter needs)."""

    def __init__(self, actors: BatchedMLP, n: int, d: int) -> None:
        super().__init__()
        self.actors, self.n, self.d = actors, n, d

    def joint_logits(self, obs: torch.Tensor) -> torch.Tensor:
        b = obs.shape[0]
        x = obs.reshape(b, self.n, self.d).transpose(0, 1)  # [N, B, D]
        return self.actors(x).transpose(0, 1).reshape(b, -1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.joint_logits(obs)


class _Buffer:
    """Uniform replay of joint transitions (numpy, saved as .npz)."""

    def __init__(self, cap: int, n: int, d: int, k: int) -> None:
        self.cap, self.size, self.pos = cap, 0, 0
        self.obs = np.zeros((cap, n, d), np.float32)
        self.act = np.zeros((cap, n, k), np.float32)
        self.rew = np.zeros((cap, n), np.float32)
        self.obs2 = np.zeros((cap, n, d), np.float32)
        self.mask2 = np.ones((cap, n, k), bool)
        self.done = np.zeros(cap, np.float32)

    def add(self, o, a, r, o2, m2, done) -> None:
        i = self.pos
        self.obs[i], self.act[i], self.rew[i], self.obs2[i], self.mask2[i] = o, a, r, o2, m2
        self.done[i] = done
        self.pos = (i + 1) % self.cap
        self.size = min(self.size + 1, self.cap)

    def sample(self, rng: np.random.Generator, b: int) -> list[torch.Tensor]:
        idx = rng.integers(0, self.size, b)
        return [
            torch.as_tensor(x[idx])
            for x in (self.obs, self.act, self.rew, self.obs2, self.mask2, self.done)
        ]

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp, obs=self.obs[: self.size], act=self.act[: self.size], rew=self.rew[: self.size],
            obs2=self.obs2[: self.size], mask2=self.mask2[: self.size],
            done=self.done[: self.size], pos=self.pos,
        )  # fmt: skip
        os.replace(tmp, path)

    def load(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as z:
            n = len(z["rew"])
            for k in ("obs", "act", "rew", "obs2", "mask2", "done"):
                getattr(self, k)[:n] = z[k]
            self.size, self.pos = n, int(z["pos"]) % self.cap


class MADDPG:
    """MADDPG on a PettingZoo parallel env whose agents share a ``MultiDiscrete`` action
    space and whose ``state()`` is the concatenation of the agents' observations (as
    EdgeSplit's :func:`~edgesplit.envs.split_offload_v1.parallel_env` with
    ``action_type="multidiscrete"``).

    Parameters
    ----------
    env : pettingzoo.ParallelEnv
    lr_actor, lr_critic : float
        Adam learning rates.
    gamma : float
        Discount.
    tau : float
        Soft update rate of the target networks.
    buffer_size, batch_size, learning_starts, train_freq, gradient_steps : int
        Replay and update schedule (steps are environment steps).
    temperature : float
        Gumbel-softmax temperature.
    hidden : tuple of int
        Hidden sizes of every actor and critic.
    seed : int
    """

    def __init__(
        self,
        env: Any,
        lr_actor: float = 1e-3,
        lr_critic: float = 1e-3,
        gamma: float = 0.9,
        tau: float = 0.01,
        buffer_size: int = 50_000,
        batch_size: int = 256,
        learning_starts: int = 2000,
        train_freq: int = 4,
        gradient_steps: int = 1,
        temperature: float = 1.0,
        hidden: tuple[int, ...] | list[int] = (128, 128),
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
        self.nvec = np.asarray(sp.nvec, dtype=np.int64)
        self.n, self.k = len(agents), int(self.nvec.sum())
        self.d = int(env.observation_space(agents[0]).shape[0])
        self.hparams = {
            "lr_actor": lr_actor, "lr_critic": lr_critic, "gamma": gamma, "tau": tau,
            "buffer_size": buffer_size, "batch_size": batch_size,
            "learning_starts": learning_starts, "train_freq": train_freq,
            "gradient_steps": gradient_steps, "temperature": temperature,
            "hidden": list(hidden), "seed": seed,
        }  # fmt: skip
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        h = tuple(int(x) for x in hidden)
        n, d, k = self.n, self.d, self.k
        self.actors = BatchedMLP(n, d, k, h)
        self.critics = BatchedMLP(n, n * d + n * k, 1, h)
        self.actors_t = BatchedMLP(n, d, k, h)
        self.critics_t = BatchedMLP(n, n * d + n * k, 1, h)
        self.actors_t.load_state_dict(self.actors.state_dict())
        self.critics_t.load_state_dict(self.critics.state_dict())
        self.opt_a = torch.optim.Adam(self.actors.parameters(), lr=lr_actor)
        self.opt_c = torch.optim.Adam(self.critics.parameters(), lr=lr_critic)
        self.buffer = _Buffer(int(buffer_size), n, d, k)
        self.num_timesteps = 0
        self.n_updates = 0
        self.policy = JointPolicy(self.actors, n, d)
        self.observation_space = spaces.Box(0.0, 1.0, (n * d,), np.float32)
        self.action_space = spaces.MultiDiscrete(np.tile(self.nvec, n))
        self.tensorboard_log = tensorboard_log
        self.last_losses: dict[str, float] = {}
        self._cuts = np.cumsum(self.nvec)[:-1]

    # -- acting --------------------------------------------------------------------------
    def _heads(self, logits: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(logits, [int(x) for x in self.nvec], dim=-1))

    def _one_hot(self, logits: torch.Tensor, mask: torch.Tensor | None, mode: str) -> torch.Tensor:
        """Per-head one-hot actions ``[..., K]``: ``"greedy"`` (argmax), ``"sample"``
        (Gumbel, no gradient) or ``"st"`` (straight-through Gumbel-softmax)."""
        lg = _masked(logits, mask)
        out = []
        for head in self._heads(lg):
            if mode == "greedy":
                out.append(F.one_hot(head.argmax(-1), head.shape[-1]).to(head.dtype))
            else:
                t = self.hparams["temperature"]
                out.append(F.gumbel_softmax(head, tau=t, hard=True))
        return torch.cat(out, dim=-1)

    def _indices(self, one_hot: np.ndarray) -> np.ndarray:
        return np.stack([h.argmax(-1) for h in np.split(one_hot, self._cuts, axis=-1)], -1)

    def act(
        self, obs: np.ndarray, masks: np.ndarray | None = None, deterministic: bool = True
    ) -> np.ndarray:
        """Actions ``[B, N, len(nvec)]`` for per-agent observations ``[B, N, D]`` (and masks
        ``[B, N, K]``)."""
        with torch.no_grad():
            o = torch.as_tensor(np.asarray(obs, np.float32)).transpose(0, 1)
            logits = self.actors(o).transpose(0, 1)
            m = None if masks is None else torch.as_tensor(np.asarray(masks, bool))
            oh = self._one_hot(logits, m, "greedy" if deterministic else "sample")
        return self._indices(oh.numpy())

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
        m = None if action_masks is None else np.asarray(action_masks).reshape(b, self.n, -1)
        a = self.act(obs.reshape(b, self.n, self.d), m, deterministic)
        return a.reshape(b, -1), None

    # -- learning ------------------------------------------------------------------------
    def _masks(self, infos: dict[str, Any]) -> np.ndarray:
        out = np.ones((self.n, self.k), bool)
        for i, a in enumerate(self.agents):
            m = infos.get(a, {}).get("action_mask")
            if m is not None:
                # flat (the env's int8 mask) or a tuple of per-dimension masks
                out[i] = np.concatenate(m) if isinstance(m, tuple) else np.asarray(m, bool)
        return out

    def _update(self) -> None:
        hp = self.hparams
        o, a, r, o2, m2, done = self.buffer.sample(self.rng, int(hp["batch_size"]))
        b, n = o.shape[0], self.n
        s, s2 = o.reshape(b, -1), o2.reshape(b, -1)
        with torch.no_grad():
            lg2 = self.actors_t(o2.transpose(0, 1)).transpose(0, 1)  # [B, N, K]
            a2 = self._one_hot(lg2, m2, "greedy").reshape(b, -1)
            x2 = torch.cat([s2, a2], -1).expand(n, b, -1)
            q2 = self.critics_t(x2).squeeze(-1)  # [N, B]
            y = r.T + hp["gamma"] * (1.0 - done)[None] * q2
        x = torch.cat([s, a.reshape(b, -1)], -1).expand(n, b, -1)
        q = self.critics(x).squeeze(-1)
        loss_c = F.mse_loss(q, y)
        self.opt_c.zero_grad()
        loss_c.backward()
        nn.utils.clip_grad_norm_(self.critics.parameters(), 1.0)
        self.opt_c.step()
        # actors: agent i's own action from its actor (straight-through), the others' as stored
        logits = self.actors(o.transpose(0, 1))  # [N, B, K]
        own = self._one_hot(logits, None, "st")  # [N, B, K]
        eye = torch.eye(n, dtype=torch.bool)[:, None, :, None]  # [N, 1, N, 1]
        joint = torch.where(eye, own[:, :, None, :], a[None])  # [N, B, N, K]
        xa = torch.cat([s.expand(n, b, -1), joint.reshape(n, b, -1)], -1)
        loss_a = -self.critics(xa).mean() + 1e-3 * (logits**2).mean()
        self.opt_a.zero_grad()
        loss_a.backward()
        nn.utils.clip_grad_norm_(self.actors.parameters(), 1.0)
        self.opt_a.step()
        with torch.no_grad():
            for net, tgt in ((self.actors, self.actors_t), (self.critics, self.critics_t)):
                for p, pt in zip(net.parameters(), tgt.parameters(), strict=True):
                    pt.mul_(1.0 - hp["tau"]).add_(p, alpha=hp["tau"])
        self.n_updates += 1
        self.last_losses = {"critic": loss_c.item(), "actor": loss_a.item()}

    def learn(
        self,
        total_timesteps: int,
        checkpoint: Callable[[MADDPG], None] | None = None,
        checkpoint_every: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> MADDPG:
        """Interact and learn for ``total_timesteps`` more environment steps; calls
        ``checkpoint(self)`` every ``checkpoint_every`` steps and ``progress(num_timesteps)``
        every 64.

        The environment is reseeded from the model's generator first, so a model restored
        with its generator's state (:meth:`MADDPGAgent.set_rng_state`) goes on with new
        episodes rather than replaying the first ones."""
        hp, env = self.hparams, self.env
        writer = None
        if self.tensorboard_log:
            from torch.utils.tensorboard import SummaryWriter

            # a resumed segment hides the points an interrupted one wrote from here on
            writer = SummaryWriter(
                str(Path(self.tensorboard_log) / "maddpg"), purge_step=self.num_timesteps
            )
        obs, infos = env.reset(seed=int(self.rng.integers(2**31)))
        o = np.stack([obs[a] for a in self.agents])
        m = self._masks(infos)
        ep_ret, ep_rets = 0.0, []
        end = self.num_timesteps + int(total_timesteps)
        while self.num_timesteps < end:
            if self.num_timesteps < hp["learning_starts"]:
                logits = torch.zeros(self.n, self.k)  # uniform over the allowed choices
                with torch.no_grad():
                    oh = self._one_hot(logits, torch.as_tensor(m), "sample").numpy()
            else:
                with torch.no_grad():
                    lg = self.actors(torch.as_tensor(o)[:, None])[:, 0]
                    oh = self._one_hot(lg, torch.as_tensor(m), "sample").numpy()
            idx = self._indices(oh)
            obs2, rew, term, trunc, infos = env.step({a: idx[i] for i, a in enumerate(self.agents)})
            o2 = np.stack([obs2[a] for a in self.agents])
            m2 = self._masks(infos)
            r = np.array([rew[a] for a in self.agents], np.float32)
            done = all(term.get(a, False) for a in self.agents)
            self.buffer.add(o, oh, r, o2, m2, float(done))
            ep_ret += float(r.mean())
            self.num_timesteps += 1
            if done or all(trunc.get(a, False) for a in self.agents):
                ep_rets.append(ep_ret)
                if writer is not None:
                    writer.add_scalar("rollout/ep_rew_mean", ep_ret, self.num_timesteps)
                ep_ret = 0.0
                obs2, infos = env.reset()
                o2 = np.stack([obs2[a] for a in self.agents])
                m2 = self._masks(infos)
            o, m = o2, m2
            t = self.num_timesteps
            if t >= hp["learning_starts"] and t % hp["train_freq"] == 0:
                for _ in range(int(hp["gradient_steps"])):
                    self._update()
                if writer is not None and self.n_updates % 100 == 0:
                    for k, v in self.last_losses.items():
                        writer.add_scalar(f"train/{k}_loss", v, t)
            if progress is not None and t % 64 == 0:
                progress(t)
            if checkpoint is not None and checkpoint_every and t % checkpoint_every == 0:
                if writer is not None:  # the curve up to the checkpoint is on disk with it
                    writer.flush()
                checkpoint(self)
        if writer is not None:
            writer.close()
        return self

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path, replay_buffer: bool = False) -> None:
        """Weights, optimiser states and counters (``torch.save`` of tensors and numbers,
        written to a temporary file and renamed); the replay buffer beside it as ``.npz``."""
        path = Path(path)
        state = {
            "format": "edgesplit-maddpg",
            "version": 1,
            "hparams": self.hparams,
            "num_timesteps": self.num_timesteps,
            "n_updates": self.n_updates,
            "shape": [self.n, self.d, self.k],
            "nets": {
                "actors": self.actors.state_dict(),
                "critics": self.critics.state_dict(),
                "actors_t": self.actors_t.state_dict(),
                "critics_t": self.critics_t.state_dict(),
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
        hp = dict(state["hparams"])
        model = cls(env, tensorboard_log=tensorboard_log, **hp)
        if [model.n, model.d, model.k] != list(state["shape"]):
            raise ValueError(
                f"{path}: field 'shape' = {state['shape']}: the env has "
                f"{[model.n, model.d, model.k]} (agents, observation, action logits)"
            )
        for k, net in (
            ("actors", model.actors),
            ("critics", model.critics),
            ("actors_t", model.actors_t),
            ("critics_t", model.critics_t),
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

    It learns on the PettingZoo face (one environment: ``n_envs`` does not apply) and acts
    on the Gymnasium face's joint view. A saved agent is a directory holding ``model.pt``
    and, in checkpoints, ``replay_buffer.npz``.
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
        self.model.env.close()
