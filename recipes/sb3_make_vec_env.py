"""Stable-Baselines3's one-liner: ``make_vec_env`` on the registered id, then PPO.

SB3 asks for ``render_mode="rgb_array"``, so its ``VecVideoRecorder`` works too.
Run: ``python sb3_make_vec_env.py --steps 20000``.
"""

import argparse

from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import edgesplit.envs  # noqa: F401  (registers "edgesplit/SplitOffload-v1")

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=20_000)
args = parser.parse_args()

vec_env = make_vec_env("edgesplit/SplitOffload-v1", n_envs=4, env_kwargs={"scenario": "single"})
model = PPO("MlpPolicy", vec_env, n_steps=64, batch_size=64, seed=0, verbose=0)
model.learn(total_timesteps=args.steps)
frames = vec_env.get_images()  # one rgb_array picture per copy
print(f"trained {model.num_timesteps} steps; frame {frames[0].shape}")
