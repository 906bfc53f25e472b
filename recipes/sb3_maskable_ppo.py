"""sb3-contrib's MaskablePPO: the env's ``action_masks()`` keeps infeasible choices out.

Run: ``python sb3_maskable_ppo.py --steps 20000``.
"""

import argparse

from sb3_contrib import MaskablePPO
from stable_baselines3.common.env_util import make_vec_env

import edgesplit.envs  # noqa: F401

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=20_000)
args = parser.parse_args()

vec_env = make_vec_env("edgesplit/SplitOffload-v1", n_envs=4, env_kwargs={"scenario": "default"})
model = MaskablePPO("MlpPolicy", vec_env, n_steps=64, batch_size=64, seed=0, verbose=0)
model.learn(total_timesteps=args.steps)

# masked choices never reach the simulator: `infeasible` counts choices it had to replace
obs = vec_env.reset()
infeasible = 0
for _ in range(50):
    masks = vec_env.env_method("action_masks")
    action, _ = model.predict(obs, action_masks=masks, deterministic=True)
    obs, _, _, infos = vec_env.step(action)
    infeasible += sum(int(i["infeasible"].sum()) for i in infos)
print(f"trained {model.num_timesteps} steps; infeasible choices in 50 steps: {infeasible}")
