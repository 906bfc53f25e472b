"""PettingZoo entry points of EdgeSplit, version 0 (the ``simple_spread_v3`` convention): the
first version, kept for reproducibility. Its agents observe the true link rates and server
backlogs of the slot being decided (privileged information); version 1
(:mod:`.split_offload_v1`, whose table of agents, spaces and arguments applies here too)
observes what a real scheduler knows.

>>> from edgesplit.envs import split_offload_v0
>>> par = split_offload_v0.parallel_env(scenario="single")
>>> par.scenario.information.privileged
True
"""

from __future__ import annotations

from typing import Any

from . import split_offload_v1 as v1
from .pz_env import SplitOffloadParallelEnv

__all__ = ["env", "parallel_env", "raw_env"]


def _privileged(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"information": "privileged", **kwargs}


def parallel_env(**kwargs: Any) -> SplitOffloadParallelEnv:
    """The native parallel environment, with privileged information unless told otherwise."""
    return v1.parallel_env(**_privileged(kwargs))


def raw_env(**kwargs: Any):
    """The AEC environment (PettingZoo's conversion of the parallel one), unwrapped."""
    return v1.raw_env(**_privileged(kwargs))


def env(**kwargs: Any):
    """The AEC environment with PettingZoo's order-enforcing wrapper."""
    return v1.env(**_privileged(kwargs))
