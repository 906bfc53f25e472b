"""One registry from the names used on the command line to agents, with what each supports.

An :class:`AgentSpec` says what the agent needs from the environment (decision mode, action
view, the PettingZoo face, masks), what it supports (asked through
:meth:`~AgentSpec.supports_discrete_actions` and friends, never by testing its name) and which
class implements the agent protocol (:class:`edgesplit.agents.protocol.Agent`: build, load,
save, learn, predict, export). Training, evaluation and export only ever talk to that
protocol, so adding an algorithm is one module, one entry below and one config file
(``docs/agents.md`` walks through it).

>>> from edgesplit.agents.registry import AGENTS
>>> sorted(AGENTS)
['ddpg', 'ddqn', 'dqn', 'maddpg', 'maskable_ppo', 'ppo']
>>> AGENTS["dqn"].decision_mode, AGENTS["dqn"].action_type
('sequential', 'discrete')
>>> AGENTS["maddpg"].has_centralized_critic(), AGENTS["ddpg"].supports_discrete_actions()
(True, False)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .protocol import Agent

__all__ = ["AGENTS", "AgentSpec", "get_agent"]

SB3 = "edgesplit.agents.sb3_agent:SB3Agent"  # the protocol for stable-baselines3 algorithms


def _load(path: str) -> Any:
    mod, _, name = path.partition(":")
    return getattr(importlib.import_module(mod), name)


@dataclass(frozen=True)
class AgentSpec:
    """What an agent needs from the environment, what it supports and how to build it."""

    name: str
    cls_path: str  # "module:Class": the algorithm
    decision_mode: str  # the env's decision_mode it trains on
    action_type: str  # the env's action view it needs
    on_policy: bool
    multi_agent: bool = False  # learns on the PettingZoo face, one agent per device
    description: str = ""
    # trained (and evaluated) with the env's action masks: its exported policy takes them too;
    # the others are deployed exactly as evaluated, and the env's (and the scheduler's)
    # replacement of an infeasible choice applies
    masked: bool = False
    centralized_critic: bool = False  # a critic that sees the global state and every action
    agent_path: str = SB3  # "module:Class" implementing edgesplit.agents.protocol.Agent

    # -- capabilities (BenchMARL's names) ------------------------------------------------
    def supports_discrete_actions(self) -> bool:
        """Whether it trains on a discrete (``Discrete``/``MultiDiscrete``) action view."""
        return self.action_type in ("discrete", "multidiscrete")

    def supports_continuous_actions(self) -> bool:
        """Whether it trains on the continuous (``Box``) action view."""
        return self.action_type == "continuous"

    def has_centralized_critic(self) -> bool:
        """Whether its critic sees the global state (MADDPG's ``state()``)."""
        return self.centralized_critic

    # -- construction --------------------------------------------------------------------
    def algorithm_class(self) -> Any:
        """The algorithm's class (``cls_path``), imported on first use."""
        return _load(self.cls_path)

    def load_class(self) -> Any:
        """Alias of :meth:`algorithm_class` (the name earlier code used)."""
        return self.algorithm_class()

    def agent_class(self) -> type[Agent]:
        """The class implementing the agent protocol for this algorithm."""
        return _load(self.agent_path)

    def build(
        self,
        algo_cfg: dict[str, Any],
        env_kwargs: dict[str, Any],
        *,
        seed: int,
        n_envs: int = 1,
        tb_dir: str | Path | None = None,
    ) -> Agent:
        """A new agent on the environment ``env_kwargs`` (``configs/algo/<name>.yaml`` gives
        ``algo_cfg``); see :meth:`edgesplit.agents.protocol.Agent.build`."""
        return self.agent_class().build(
            self, algo_cfg, env_kwargs, seed=seed, n_envs=n_envs, tb_dir=tb_dir
        )

    def load(
        self,
        directory: str | Path,
        env_kwargs: dict[str, Any],
        *,
        training: bool = False,
        seed: int | None = None,
        n_envs: int = 1,
        tb_dir: str | Path | None = None,
    ) -> Agent:
        """An agent saved by :meth:`edgesplit.agents.protocol.Agent.save` in ``directory``."""
        return self.agent_class().load(
            self,
            Path(directory),
            env_kwargs,
            training=training,
            seed=seed,
            n_envs=n_envs,
            tb_dir=tb_dir,
        )


AGENTS: dict[str, AgentSpec] = {
    "ppo": AgentSpec(
        "ppo",
        "edgesplit.agents.sb3_agent:InferencePPO",
        "joint",
        "multidiscrete",
        True,
        description="SB3 PPO over every device's (split, target, bw, cpu) at once",
    ),
    "maskable_ppo": AgentSpec(
        "maskable_ppo",
        "edgesplit.agents.sb3_agent:InferenceMaskablePPO",
        "joint",
        "multidiscrete",
        True,
        description="sb3-contrib MaskablePPO using the env's action_masks()",
        masked=True,
    ),
    "dqn": AgentSpec(
        "dqn",
        "edgesplit.agents.dqn_masked:MaskedDQN",
        "sequential",
        "discrete",
        False,
        description="DQN with masked argmax and target, one device's decision per step, "
        "on a batched sequential face",
        masked=True,
        agent_path="edgesplit.agents.dqn_masked:MaskedDQNAgent",
    ),
    "ddqn": AgentSpec(
        "ddqn",
        "edgesplit.agents.ddqn:MaskedDDQN",
        "sequential",
        "discrete",
        False,
        description="Double DQN with masks (the online net's masked argmax, evaluated by "
        "the target net), one device per step",
        masked=True,
        agent_path="edgesplit.agents.dqn_masked:MaskedDQNAgent",
    ),
    "maddpg": AgentSpec(
        "maddpg",
        "edgesplit.agents.maddpg:MADDPG",
        "joint",
        "multidiscrete",
        False,
        multi_agent=True,
        description="MADDPG on batched copies of the PettingZoo face: one shared actor, a "
        "set critic for any number of devices, masked Gumbel-softmax (straight-through) heads",
        masked=True,
        centralized_critic=True,
        agent_path="edgesplit.agents.maddpg:MADDPGAgent",
    ),
    "ddpg": AgentSpec(
        "ddpg",
        "stable_baselines3:DDPG",
        "joint",
        "continuous",
        False,
        description="SB3 DDPG over the continuous view (split fraction, target logits, weights)",
    ),
}


def get_agent(name: str) -> AgentSpec:
    """The spec of agent ``name``; a clear error listing the known names otherwise."""
    if name not in AGENTS:
        raise ValueError(f"algo: {name!r} is not one of {sorted(AGENTS)}")
    return AGENTS[name]
