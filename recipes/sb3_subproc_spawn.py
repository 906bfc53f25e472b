"""Worker processes: ``SubprocVecEnv`` with the ``spawn`` start method.

A spawned worker starts a fresh interpreter that has not imported ``edgesplit.envs``, so
the id alone is unknown there. The module-prefixed id ``"edgesplit.envs:edgesplit/SplitOffload-v1"``
makes Gymnasium import the module (which registers the env) before looking the id up, in
every process. Run: ``python sb3_subproc_spawn.py --steps 5000``.
"""

import argparse

from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

ENV_ID = "edgesplit.envs:edgesplit/SplitOffload-v1"  # no `import edgesplit.envs` needed

if __name__ == "__main__":  # spawned workers re-import this file: guard the driver
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5_000)
    args = parser.parse_args()
    vec_env = make_vec_env(
        ENV_ID,
        n_envs=2,
        env_kwargs={"scenario": "single"},
        vec_env_cls=SubprocVecEnv,
        vec_env_kwargs={"start_method": "spawn"},
    )
    model = PPO("MlpPolicy", vec_env, n_steps=64, batch_size=64, seed=0, verbose=0)
    model.learn(total_timesteps=args.steps)
    vec_env.close()
    print(f"trained {model.num_timesteps} steps in {vec_env.num_envs} spawned workers")
