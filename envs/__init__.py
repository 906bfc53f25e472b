"""EdgeSplit environments: one batched simulator core under Gymnasium, VectorEnv and
PettingZoo faces.

Importing this package registers ``edgesplit/SplitOffload-v0`` with Gymnasium (a
centralised env with a native ``vector_entry_point``). The PettingZoo face is
:mod:`edgesplit.envs.split_offload_v0`.

>>> import gymnasium as gym
>>> import edgesplit.envs
>>> "edgesplit/SplitOffload-v0" in gym.registry
True
"""

from gymnasium.envs.registration import register, registry

ENV_ID = "edgesplit/SplitOffload-v0"

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="edgesplit.envs.gym_env:SplitOffloadEnv",
        vector_entry_point="edgesplit.envs.gym_env:SplitOffloadVectorEnv",
        kwargs={"scenario": "default"},
    )

__all__ = ["ENV_ID"]
