"""PettingZoo entry points of EdgeSplit, version 0 (the ``simple_spread_v3`` convention): the
first version, kept for reproducibility. Its agents observe the true link rates and server
backlogs of the slot being decided (privileged information); version 1
(:mod:`.split_offload_v1`) observes what a real scheduler knows.

| | |
|---|---|
| agents | one per end device of the scenario |
| action (per agent) | ``Discrete(S * J * L * L)`` (or multidiscrete / continuous) |
| observation (per agent) | ``Box(0, 1, (D,))`` |
| state | ``Box(0, 1, (N * D,))`` |
| import | ``from edgesplit.envs import split_offload_v0`` |

``parallel_env(**kw)`` is the native :class:`~edgesplit.envs.pz_env.SplitOffloadParallelEnv`;
``raw_env(**kw)`` its AEC conversion; ``env(**kw)`` the AEC env with PettingZoo's
order-enforcing wrapper. Keyword arguments: ``scenario``, ``action_type``, ``max_cycles``,
``render_mode``.

>>> from edgesplit.envs import split_offload_v0
>>> aec = split_offload_v0.env(scenario="single")
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
    """The native parallel environment (privileged information unless told otherwise)."""
    kwargs.setdefault("information", "privileged")
    return SplitOffloadParallelEnv(**kwargs)


def raw_env(**kwargs: Any):
    """The AEC environment (PettingZoo's conversion of the parallel one), unwrapped."""
    return parallel_to_aec(parallel_env(**kwargs))


def env(**kwargs: Any):
    """The AEC environment with PettingZoo's order-enforcing wrapper."""
    return wrappers.OrderEnforcingWrapper(raw_env(**kwargs))
