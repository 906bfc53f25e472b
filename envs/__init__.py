"""EdgeSplit environments: one batched simulator core under Gymnasium, VectorEnv and
PettingZoo faces.

Importing this package registers ``edgesplit/SplitOffload-v1`` with Gymnasium (a
centralised env with a native ``vector_entry_point``), and ``edgesplit/SplitOffload-v0``, the
same env with the first version's privileged information (the true link rates and server
backlogs of the slot being decided). The PettingZoo faces are
:mod:`edgesplit.envs.split_offload_v1` and :mod:`edgesplit.envs.split_offload_v0`.

The simulator under both faces, with the observation encoder and action decoder, is
:mod:`edgesplit.sim`, which needs numpy only and registers nothing: an edge scheduler
imports it without Gymnasium. Where Gymnasium is not installed, importing this package
skips the registration.

>>> import gymnasium as gym
>>> import edgesplit.envs
>>> "edgesplit/SplitOffload-v1" in gym.registry, "edgesplit/SplitOffload-v0" in gym.registry
(True, True)

A process that has not imported this package (a worker started with ``spawn``, an RLlib
env runner) knows the env by its module-prefixed id, which makes Gymnasium import the
module before the look-up; use it wherever environments are made in other processes:

>>> env = gym.make("edgesplit.envs:edgesplit/SplitOffload-v1", scenario="single")

Recipes for SB3, SuperSuit, CleanRL, TorchRL, BenchMARL and RLlib: ``docs/recipes/``.
"""

ENV_ID = "edgesplit/SplitOffload-v1"
#: the first version, kept for reproducibility: the scheduler knows the true link rates and
#: server backlogs of the slot it decides (privileged information)
ENV_ID_V0 = "edgesplit/SplitOffload-v0"
#: the id with its module: what other processes (spawned workers, env runners) should use
ENV_ID_WITH_MODULE = "edgesplit.envs:" + ENV_ID

try:
    from gymnasium.envs.registration import register, registry
except ImportError:  # pragma: no cover - numpy-only deployments (the scheduler)
    pass
else:
    for _id, _kwargs in (
        (ENV_ID, {"scenario": "default"}),
        (ENV_ID_V0, {"scenario": "default", "information": "privileged"}),
    ):
        if _id not in registry:
            register(
                id=_id,
                entry_point="edgesplit.envs.gym_env:SplitOffloadEnv",
                vector_entry_point="edgesplit.envs.vector_env:SplitOffloadVectorEnv",
                kwargs=_kwargs,
            )

__all__ = ["ENV_ID", "ENV_ID_V0", "ENV_ID_WITH_MODULE"]
