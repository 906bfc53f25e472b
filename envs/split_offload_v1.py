"""PettingZoo entry points of EdgeSplit, version 1 (the ``simple_spread_v3`` convention).

Version 1: each agent observes what a real scheduler knows (the link rates measured over the
last slot, the server backlogs reported a slot ago; see
:class:`~edgesplit.sim.scenario.InformationSpec`). Version 0 (:mod:`.split_offload_v0`)
observes the true rates and backlogs of the slot being decided.

| | |
|---|---|
| agents | one per end device of the scenario |
| action (per agent) | ``Discrete(S * J * L * L)`` (or multidiscrete / continuous) |
| observation (per agent) | ``Box(0, 1, (D,))`` |
| state | ``Box(0, 1, (N * D,))`` |
| import | ``from edgesplit.envs import split_offload_v1`` |

``parallel_env(**kw)`` is the native :class:`~edgesplit.envs.pz_env.SplitOffloadParallelEnv`;
``raw_env(**kw)`` its AEC conversion; ``env(**kw)`` the AEC env with PettingZoo's
order-enforcing wrapper. Keyword arguments: ``scenario``, ``action_type``, ``max_cycles``,
``render_mode``.

>>> from edgesplit.envs import split_offload_v1
>>> aec = split_offload_v1.env(scenario="single")
>>> aec.reset(seed=1)
>>> aec.agent_selection
'agent_0'
"""

from __future__ import annotations

from typing import Any

from pettingzoo.utils import wrappers
from pettingzoo.utils.conversions import parallel_to_aec

from .pz_env import SplitOffloadParallelEnv

__all__ = ["env", "parallel_env", "raw_env"]


def parallel_env(**kwargs: Any) -> SplitOffloadParallelEnv:
    """The native parallel environment."""
    return SplitOffloadParallelEnv(**kwargs)


def raw_env(**kwargs: Any):
    """The AEC environment (PettingZoo's conversion of the parallel one), unwrapped."""
    return parallel_to_aec(parallel_env(**kwargs))


def env(**kwargs: Any):
    """The AEC environment with PettingZoo's order-enforcing wrapper."""
    return wrappers.OrderEnforcingWrapper(raw_env(**kwargs))
