"""One registry from the names used on the command line to agents, with what each supports.

>>> from edgesplit.agents.registry import AGENTS
>>> sorted(AGENTS)
['ddpg', 'ddqn', 'dqn', 'maddpg', 'maskable_ppo', 'ppo']
>>> AGENTS["dqn"].decision_mode, AGENTS["dqn"].action_type
('sequential', 'discrete')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["AGENTS", "AgentSpec", "get_agent"]


@dataclass(frozen=True)
class AgentSpec:
    """What an agent needs from the environment and how to build it."""

    name: str
    cls_path: str  # "module:Class"
    decision_mode: str  # the env's decision_mode it trains on
    action_type: str  # the env's action view it needs
    on_policy: bool
    multi_agent: bool = False
    description: str = ""
    # trained (and evaluated) with the env's action masks: its exported policy takes them too;
    # the others are deployed exactly as evaluated, and the env's (and the scheduler's)
    # replacement of an infeasible choice applies
    masked: bool = False

    def load_class(self) -> Any:
        import importlib

        mod, _, cls = self.cls_path.partition(":")
        return getattr(importlib.import_module(mod), cls)


AGENTS: dict[str, AgentSpec] = {
    "ppo": AgentSpec(
        "ppo",
        "stable_baselines3:PPO",
        "joint",
        "multidiscrete",
        True,
        description="SB3 PPO over every device's (split, target, bw, cpu) at once",
    ),
    "maskable_ppo": AgentSpec(
        "maskable_ppo",
        "sb3_contrib:MaskablePPO",
        "joint",
        "multidiscrete",
        True,
        description="sb3-contrib MaskablePPO using the env's action_masks()",
        masked=True,
    ),
    "dqn": AgentSpec(
        "dqn",
        "stable_baselines3:DQN",
        "sequential",
        "discrete",
        False,
        description="SB3 DQN, one device's decision per step",
    ),
    "ddqn": AgentSpec(
        "ddqn",
        "edgesplit.agents.ddqn:DDQN",
        "sequential",
        "discrete",
        False,
        description="Double DQN (SB3 DQN subclass), one device per step",
    ),
    "maddpg": AgentSpec(
        "maddpg",
        "edgesplit.agents.maddpg:MADDPG",
        "joint",
        "multidiscrete",
        False,
        multi_agent=True,
        description="MADDPG over the PettingZoo face: an actor per device, centralised "
        "critics, Gumbel-softmax (straight-through) heads",
        masked=True,
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
