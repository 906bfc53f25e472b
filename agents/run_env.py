"""The environment a run trains and is evaluated on, from its config.

>>> cfg = {"algo": {"name": "dqn"}, "env": {"scenario": "single", "max_cycles": 20}}
>>> env_kwargs(cfg)
{'scenario': 'single', 'decision_mode': 'sequential', 'action_type': 'discrete', 'max_cycles': 20}
"""

from __future__ import annotations

from typing import Any

from .registry import get_agent

__all__ = ["env_kwargs", "pettingzoo_env"]


def env_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of the Gymnasium face for this run's agent (the decision mode and
    action view its spec asks for)."""
    spec = get_agent(cfg["algo"]["name"])
    kw: dict[str, Any] = {
        "scenario": cfg["env"]["scenario"],
        "decision_mode": spec.decision_mode,
        "action_type": spec.action_type,
    }
    if cfg["env"].get("max_cycles") is not None:
        kw["max_cycles"] = int(cfg["env"]["max_cycles"])
    return kw


def pettingzoo_env(kw: dict[str, Any]) -> Any:
    """The PettingZoo parallel face for a run's env kwargs (the decision mode belongs to
    the Gymnasium face; the PettingZoo face always decides one device per agent)."""
    from edgesplit.envs.split_offload_v1 import parallel_env

    return parallel_env(**{k: v for k, v in kw.items() if k != "decision_mode"})
