"""The agent protocol for stable-baselines3 algorithms (PPO, MaskablePPO, DQN, DDQN, DDPG,
and any other SB3 class or subclass a registry entry names).

The model learns on ``n_envs`` copies of the environment: for joint decisions all in one
batched core (:class:`~edgesplit.agents.sb3_vec.NativeVecEnv`), for sequential ones copies of
the Gymnasium face in a ``DummyVecEnv`` (each in a ``Monitor``); ``rollout/ep_rew_mean``
reaches TensorBoard either way. ``policy: SharedSplitPolicy`` in an algorithm config picks
the shared per-device policy (:mod:`edgesplit.agents.shared_policy`), and ``warm_start``
clones a rule's decisions before the first update (:mod:`edgesplit.agents.warm_start`).
A saved agent is a directory holding ``model.zip`` (SB3's own format) and, for off-policy
algorithms, ``replay_buffer.pkl``.

>>> from edgesplit.agents.registry import get_agent
>>> agent = get_agent("ppo").build({"policy": "MlpPolicy", "kwargs": {"n_steps": 32,
...     "batch_size": 32}}, {"scenario": "single", "decision_mode": "joint",
...     "action_type": "multidiscrete", "max_cycles": 10}, seed=0)
>>> agent.learn(64, checkpoint=lambda: None, checkpoint_every=32)
>>> agent.num_timesteps
64
>>> agent.close()
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize
from stable_baselines3.dqn.policies import DQNPolicy
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from edgesplit.envs import ENV_ID

from .ddpg_policy import SharedSplitDDPGPolicy, clone_actor_critic
from .registry import AgentSpec
from .sb3_vec import NativeVecEnv
from .shared_policy import MaskableSharedSplitPolicy, SharedSplitPolicy
from .warm_start import behaviour_clone

__all__ = ["InferenceMaskablePPO", "InferencePPO", "SB3Agent"]

MODEL_FILE = "model.zip"
REPLAY_FILE = "replay_buffer.pkl"
WARM_START_FILE = "warm_start.json"
#: the reward normaliser's running statistics (``normalize_reward``), for a resumed run
REWARD_NORM_FILE = "reward_norm.json"
TB_RUN = "run_1"  # the folder SB3 itself picks for tb_log_name="run"


class _PurgingTensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard writer, opened with ``purge_step``: a resumed segment hides the
    points an interrupted one wrote at or after the step it resumes from."""

    def __init__(self, folder: str, purge_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False

    def flush(self) -> None:
        self.writer.flush()


class _EveryN(BaseCallback):
    """Calls ``checkpoint()`` at the first rollout start after the model passes another
    multiple of ``every`` env steps (after flushing TensorBoard, so a checkpoint's curve is
    on disk with it).

    A rollout start is where SB3's state holds together: the previous rollout's update is
    done and every transition so far is in the replay buffer. (``on_step`` comes between
    the env step and the buffer write: a checkpoint there would miss the last transition.)
    """

    def __init__(
        self,
        checkpoint: Callable[[], None],
        every: int,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self.checkpoint, self.every, self.progress = checkpoint, int(every), progress
        self._next = self.every

    def _on_step(self) -> bool:
        if self.progress is not None and self.n_calls % 64 == 0:
            self.progress(self.model.num_timesteps)
        return True

    def _init_callback(self) -> None:
        self._next = (self.model.num_timesteps // self.every + 1) * self.every

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps >= self._next:
            for fmt in self.model.logger.output_formats:
                if isinstance(fmt, _PurgingTensorBoard):
                    fmt.flush()
            self.checkpoint()
            self._next = (self.model.num_timesteps // self.every + 1) * self.every


class _InferenceRollouts:
    """Collects rollouts under :func:`torch.inference_mode` instead of SB3's ``no_grad``:
    the same numbers (nothing collected is differentiated), without autograd's version
    counters and view tracking on every tensor (the shared policy's forward on 64 copies of
    ``default``: 1.7 ms against 2.0 ms, 2026-11-26)."""

    def collect_rollouts(self, *args: Any, **kwargs: Any) -> bool:
        with torch.inference_mode():
            return super().collect_rollouts(*args, **kwargs)  # type: ignore[misc]


class InferencePPO(_InferenceRollouts, PPO):  # type: ignore[misc]
    """SB3's :class:`~stable_baselines3.PPO`, collecting under ``inference_mode`` (the
    registry's ``ppo``)."""


class InferenceMaskablePPO(_InferenceRollouts, MaskablePPO):  # type: ignore[misc]
    """sb3-contrib's :class:`~sb3_contrib.MaskablePPO`, collecting under ``inference_mode``
    (the registry's ``maskable_ppo``)."""


class _ActorLogits(nn.Module):
    """An SB3 actor-critic policy's action logits (no sampling, no value head)."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: Any) -> Any:
        p = self.policy
        features = p.extract_features(obs, p.pi_features_extractor)
        return p.action_net(p.mlp_extractor.forward_actor(features))


class _PolicyLogits(nn.Module):
    """A policy's own per-dimension logits (:class:`~.shared_policy.SharedSplitPolicy`)."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: Any) -> Any:
        return self.policy.action_logits(obs)


def _normalized(venv: VecEnv, gamma: float, stats: dict[str, Any] | None = None) -> VecNormalize:
    """``venv`` with its rewards divided by the running standard deviation of the discounted
    return (SB3's :class:`VecNormalize`, observations untouched: they are bounded already),
    restored from ``stats`` (:data:`REWARD_NORM_FILE`) when resuming."""
    out = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=float(gamma))
    if stats is not None:
        out.ret_rms.mean = np.float64(stats["mean"])
        out.ret_rms.var = np.float64(stats["var"])
        out.ret_rms.count = float(stats["count"])
    return out


def _vec_env(env_kwargs: dict[str, Any], n_envs: int, seed: int | None) -> VecEnv:
    """Joint decisions: every copy in one batched core (:class:`NativeVecEnv`); sequential
    decisions: copies of the Gymnasium face in a ``DummyVecEnv``, each in a ``Monitor`` (so
    ``rollout/ep_rew_mean`` reaches TensorBoard either way)."""
    if env_kwargs.get("decision_mode", "joint") == "joint":
        return NativeVecEnv(env_kwargs, n_envs=int(n_envs), seed=seed)
    return make_vec_env(
        lambda: gym.make(ENV_ID, **env_kwargs),
        n_envs=int(n_envs),
        seed=seed,
        vec_env_cls=DummyVecEnv,
    )


#: policies of this project an algorithm config may name, beside SB3's own ("MlpPolicy"):
#: (unmasked, masked) classes
POLICIES = {
    "SharedSplitPolicy": (SharedSplitPolicy, MaskableSharedSplitPolicy),
    "SharedSplitDDPGPolicy": (SharedSplitDDPGPolicy, SharedSplitDDPGPolicy),  # DDPG, TD3
}


def _policy(
    spec: AgentSpec, algo_cfg: dict[str, Any], env_kwargs: dict[str, Any], kwargs: dict[str, Any]
) -> Any:
    """The policy class (or SB3 name) of ``algo_cfg``; a shared policy gets the scenario
    (its static tables) in its keywords, and its masked form for a masked agent."""
    name = algo_cfg.get("policy", "MlpPolicy")
    if name not in POLICIES:
        return name
    pk = dict(kwargs.get("policy_kwargs") or {})
    pk.setdefault("scenario", env_kwargs["scenario"])
    kwargs["policy_kwargs"] = pk
    return POLICIES[name][1 if spec.masked else 0]


class SB3Agent:
    """An SB3 model (``spec.cls_path``) and its vectorised training env, if any."""

    def __init__(self, spec: AgentSpec, model: Any, venv: VecEnv | None = None) -> None:
        self.spec, self.model, self.venv = spec, model, venv
        self.tb_dir: str | None = None
        self.warm_start: dict[str, float | int] | None = None  # behaviour cloning's summary

    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    @property
    def observation_space(self) -> Any:
        return self.model.observation_space

    @property
    def action_space(self) -> Any:
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
    ) -> SB3Agent:
        venv = _vec_env(env_kwargs, n_envs, seed)
        kwargs = dict(algo_cfg.get("kwargs") or {})
        normalize = bool(algo_cfg.get("normalize_reward", False))
        if normalize:
            venv = _normalized(venv, float(kwargs.get("gamma", 0.99)))
        sigma = algo_cfg.get("action_noise_sigma")
        if sigma is not None:  # Gaussian exploration noise on the [-1, 1] actions
            n = venv.action_space.shape[0]
            kwargs["action_noise"] = NormalActionNoise(np.zeros(n), float(sigma) * np.ones(n))
        policy = _policy(spec, algo_cfg, env_kwargs, kwargs)
        model = spec.algorithm_class()(
            policy,
            venv,
            seed=int(seed),
            tensorboard_log=None if tb_dir is None else str(tb_dir),
            verbose=0,
            device="cpu",
            **kwargs,
        )
        agent = cls(spec, model, venv)
        agent.tb_dir = None if tb_dir is None else str(tb_dir)
        warm = dict(algo_cfg.get("warm_start") or {})
        if warm:  # behaviour cloning from a rule before the first update
            t0 = time.perf_counter()
            # (DDPG's split actor clones its own way: actor, critic and their targets)
            ddpg = isinstance(model.policy, SharedSplitDDPGPolicy)
            clone = clone_actor_critic if ddpg else behaviour_clone
            agent.warm_start = clone(
                model.policy,
                env_kwargs,
                n_envs=int(n_envs),
                gamma=float(getattr(model, "gamma", 0.5)),
                seed=int(seed),
                normalize_returns=normalize,
                **warm,
            )
            agent.warm_start["seconds"] = round(time.perf_counter() - t0, 3)
        return agent

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
    ) -> SB3Agent:
        path = Path(directory) / MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{directory}: missing {MODEL_FILE}")
        algo = spec.algorithm_class()
        if not training:
            return cls(spec, algo.load(path, device="cpu"))
        venv = _vec_env(env_kwargs, n_envs, seed)
        norm = Path(directory) / REWARD_NORM_FILE
        if norm.is_file():  # trained on normalised rewards: go on with the same scale
            stats = json.loads(norm.read_text())
            venv = _normalized(venv, stats["gamma"], stats)
        model = algo.load(path, env=venv, device="cpu")
        warm = Path(directory) / WARM_START_FILE
        rb = Path(directory) / REPLAY_FILE
        if rb.is_file() and hasattr(model, "load_replay_buffer"):
            model.load_replay_buffer(rb)
        agent = cls(spec, model, venv)
        agent.tb_dir = None if tb_dir is None else str(tb_dir)
        if warm.is_file():
            agent.warm_start = json.loads(warm.read_text())
        return agent

    def save(self, directory: Path) -> None:
        self.model.save(Path(directory) / MODEL_FILE)
        if isinstance(self.venv, VecNormalize):
            rms = self.venv.ret_rms
            stats = {"gamma": self.venv.gamma, "mean": float(np.asarray(rms.mean))}
            stats.update(var=float(np.asarray(rms.var)), count=float(rms.count))
            (Path(directory) / REWARD_NORM_FILE).write_text(json.dumps(stats))
        if self.warm_start is not None:  # what the run's warm start did, for its summary
            (Path(directory) / WARM_START_FILE).write_text(json.dumps(self.warm_start))

    def save_replay_buffer(self, directory: Path) -> bool:
        if getattr(self.model, "replay_buffer", None) is None:
            return False
        self.model.save_replay_buffer(Path(directory) / REPLAY_FILE)
        return True

    def learn(
        self,
        total_timesteps: int,
        checkpoint: Callable[[], None],
        checkpoint_every: int,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        start = self.num_timesteps
        if start >= int(total_timesteps):
            return
        if self.tb_dir is not None:
            folder = str(Path(self.tb_dir) / TB_RUN)
            self.model.set_logger(Logger(folder, [_PurgingTensorBoard(folder, start)]))
        else:
            self.model.set_logger(Logger(None, []))
        self.model.learn(
            total_timesteps=int(total_timesteps) - start,
            callback=_EveryN(checkpoint, checkpoint_every, progress),
            reset_num_timesteps=start == 0,
            tb_log_name="run",
        )
        self.model.logger.close()

    def predict(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        if self.spec.masked:  # sb3-contrib's convention: the masks go to predict()
            return self.model.predict(obs, action_masks=masks, deterministic=True)[0]
        return self.model.predict(obs, deterministic=True)[0]

    def policy_module(self) -> nn.Module:
        policy = self.model.policy
        if isinstance(policy, DQNPolicy):  # Q-values: the argmax is the greedy action
            return policy.q_net
        if isinstance(policy, TD3Policy):  # DDPG/TD3: the deterministic actor
            return policy.actor
        if hasattr(policy, "action_logits"):  # a policy of this project's
            return _PolicyLogits(policy)
        return _ActorLogits(policy)  # actor-critic policies (PPO, MaskablePPO, A2C)

    def rng_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "action_space": self.model.action_space.np_random.bit_generator.state
        }
        if self.venv is not None:
            state["envs"] = [g.bit_generator.state for g in self.venv.get_attr("np_random")]
        return state

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.model.action_space.np_random.bit_generator.state = state["action_space"]
        if self.venv is None or "envs" not in state:
            return
        # SB3's load seeded the envs for their next reset with the run's seed, which would
        # replay the first episodes: take that reset, then restore the generators and start
        # the resumed segment's episodes from them
        self.venv.reset()
        # (a run resumed with another n_envs restores the copies both segments have)
        for g, s in zip(self.venv.get_attr("np_random"), state["envs"], strict=False):
            g.bit_generator.state = s
        self.model._last_obs = self.venv.reset()  # learn() goes on from these observations
        self.model._last_episode_starts = np.ones((self.venv.num_envs,), dtype=bool)

    def close(self) -> None:
        if self.venv is not None:
            self.venv.close()
