"""TorchRL: ``GymEnv`` on the registered id, ``GymWrapper`` over the native VectorEnv and
``PettingZooWrapper`` with the global state and action masks.

TorchRL resets batched envs itself, so the native VectorEnv is made with
``autoreset_mode="DISABLED"`` (TorchRL's preferred mode; ``SAME_STEP`` works too): TorchRL
then resets the copies whose episode ended through ``reset(options={"reset_mask": ...})``.
Run: ``python torchrl_envs.py --steps 300``.
"""

import argparse

import gymnasium as gym
import torch
from torchrl.collectors import Collector
from torchrl.envs import GymEnv, GymWrapper, PettingZooWrapper

import edgesplit.envs  # noqa: F401
from edgesplit.envs import split_offload_v1

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=300)
args = parser.parse_args()
torch.manual_seed(0)

# 1. GymEnv on the id, a collector with a random policy
env = GymEnv("edgesplit/SplitOffload-v1", scenario="single", max_cycles=50)
collector = Collector(env, None, frames_per_batch=100, total_frames=args.steps)
frames = sum(batch.numel() for batch in collector)
collector.shutdown()
print(f"GymEnv: collected {frames} frames")

# 2. GymWrapper over the native VectorEnv (4 copies in one batched simulator)
venv = gym.make_vec(
    "edgesplit/SplitOffload-v1",
    num_envs=4,
    scenario="single",
    max_cycles=50,
    autoreset_mode="DISABLED",
)
wrapped = GymWrapper(venv)
td = wrapped.rollout(args.steps // 4, break_when_any_done=False)
episodes = int(td["next", "done"].sum())
print(
    f"GymWrapper: batch {tuple(wrapped.batch_size)}, {td.numel()} steps, {episodes} episodes ended"
)

# 3. PettingZooWrapper: one group of agents (device_0..), global state, masks
pz = split_offload_v1.parallel_env(scenario="default", action_type="multidiscrete", max_cycles=50)
menv = PettingZooWrapper(pz, return_state=True, use_mask=True)
td = menv.rollout(args.steps // 6, break_when_any_done=False)
groups = list(menv.group_map)
print(
    f"PettingZooWrapper: groups {groups} of {len(menv.group_map[groups[0]])} agents; "
    f"state {tuple(td['state'].shape[1:])}; mask {tuple(td[groups[0], 'action_mask'].shape[1:])}"
)
