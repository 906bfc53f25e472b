"""Parameter sharing with SuperSuit: every device-agent of the PettingZoo env becomes one
copy of a vectorised env, and one SB3 policy learns from them all.

Run: ``python supersuit_parameter_sharing.py --steps 20000``.
"""

import argparse

import supersuit as ss
from stable_baselines3 import PPO

from edgesplit.envs import split_offload_v1

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=20_000)
args = parser.parse_args()

env = split_offload_v1.parallel_env(scenario="default", action_type="discrete")
vec = ss.pettingzoo_env_to_vec_env_v1(env)  # one copy per agent, all sharing the policy
vec = ss.concat_vec_envs_v1(vec, 2, num_cpus=0, base_class="stable_baselines3")
# no `seed=` here: SuperSuit 3.11's SB3 wrapper has no `seed()` for SB3 to call
model = PPO("MlpPolicy", vec, n_steps=32, batch_size=96, verbose=0)
model.learn(total_timesteps=args.steps)
print(f"trained {model.num_timesteps} agent-steps over {vec.num_envs} agent copies")
