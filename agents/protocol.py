"""The agent protocol: what training, evaluation and export ask of every agent.

An agent is an object that wraps one trained (or training) model and its environment.
Training (:mod:`.training`), checkpoints (:mod:`.checkpoint`), evaluation
(:mod:`.evaluation`, :mod:`.evaluate_run`) and export (:mod:`.export`) call only the methods
below, and ask the agent's :class:`~edgesplit.agents.registry.AgentSpec` what it supports;
none of them names an algorithm. Three implementations ship:
:class:`edgesplit.agents.sb3_agent.SB3Agent` (every stable-baselines3 algorithm and subclass:
PPO, MaskablePPO, DDPG), :class:`edgesplit.agents.maddpg.MADDPGAgent` and
:class:`edgesplit.agents.dqn_masked.MaskedDQNAgent` (DQN and DDQN).

A checkpoint is one directory that training fills through :meth:`Agent.save`,
:meth:`Agent.save_replay_buffer` and :meth:`Agent.rng_state`, then renames into place in one
step (:class:`edgesplit.agents.checkpoint.CheckpointStore`).

>>> from edgesplit.agents.sb3_agent import SB3Agent
>>> from edgesplit.agents.maddpg import MADDPGAgent
>>> from edgesplit.agents.dqn_masked import MaskedDQNAgent
>>> isinstance(SB3Agent, type) and all(callable(getattr(c, m, None))
...     for c in (SB3Agent, MADDPGAgent, MaskedDQNAgent) for m in PROTOCOL_METHODS)
True
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .registry import AgentSpec

__all__ = ["PROTOCOL_METHODS", "Agent", "Predict"]

Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (obs, action masks) -> actions

PROTOCOL_METHODS = (
    "build",
    "load",
    "save",
    "save_replay_buffer",
    "learn",
    "predict",
    "policy_module",
    "rng_state",
    "set_rng_state",
    "close",
)


@runtime_checkable
class Agent(Protocol):
    """One model with its environment, as training, evaluation and export see it.

    Attributes: ``spec`` (its registry entry), ``num_timesteps`` (environment steps learnt
    so far), ``observation_space`` and ``action_space`` (of the Gymnasium face's joint view,
    which is what the exported policy reads and writes).
    """

    spec: AgentSpec
    observation_space: Any
    action_space: Any

    @property
    def num_timesteps(self) -> int: ...

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
    ) -> Agent:
        """A new agent: its training environment(s) from ``env_kwargs`` (``n_envs`` copies
        where the algorithm uses several), its model from ``algo_cfg`` (``policy``,
        ``kwargs``, ``action_noise_sigma``), seeded with ``seed``, logging to ``tb_dir``."""
        ...

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
    ) -> Agent:
        """The agent saved in ``directory`` (its replay buffer too, when one is there).
        ``training`` builds the training environment(s) as :meth:`build` does, so that
        :meth:`learn` can go on; otherwise only what :meth:`predict` needs is built."""
        ...

    def save(self, directory: Path) -> None:
        """Write the model (weights, optimiser states, counters) into ``directory``."""
        ...

    def save_replay_buffer(self, directory: Path) -> bool:
        """Write the replay buffer into ``directory``; False if the agent has none."""
        ...

    def learn(
        self,
        total_timesteps: int,
        checkpoint: Callable[[], None],
        checkpoint_every: int,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Learn until :attr:`num_timesteps` reaches ``total_timesteps`` (an absolute count,
        so a resumed agent learns only what is left), calling ``checkpoint()`` each time
        another ``checkpoint_every`` steps are done and ``progress(num_timesteps)`` now and
        then (the progress bar). TensorBoard scalars written by an earlier segment at or
        after the current step are superseded (``purge_step``)."""
        ...

    def predict(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Deterministic actions for batched observations ``[B, obs_dim]`` of the Gymnasium
        face (and its action masks ``[B, ...]``, which only a ``spec.masked`` agent uses)."""
        ...

    def policy_module(self) -> nn.Module:
        """A torch module from the batched observation to the action logits in the env's
        flattened order (discrete views), or to the deterministic action in ``[-1, 1]``
        (continuous view): what :func:`edgesplit.agents.export.export_policy` compiles."""
        ...

    def rng_state(self) -> dict[str, Any]:
        """The agent's and its environments' random-number states (JSON-serialisable)."""
        ...

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`rng_state`; the training environments start a fresh episode that
        draws from the restored generators."""
        ...

    def close(self) -> None:
        """Release the environments."""
        ...
