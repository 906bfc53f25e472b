"""RLlib PPO (single agent) with remote env runners, on a local Ray instance bound to the
loopback; the same script runs on a cluster (see docs/recipes/rllib.md).

Each env runner is a separate process that has not imported ``edgesplit.envs``: the
module-prefixed id ``"edgesplit.envs:edgesplit/SplitOffload-v1"`` makes Gymnasium import it
there. The env class works too (``--env class``): RLlib calls ``SplitOffloadEnv(env_config)``
with the config mapping, which the constructor takes in place of the scenario.
Run: ``python rllib_ppo.py --iterations 10``.
"""

import argparse

from ray_local import init_ray  # recipes/ray_local.py: loopback-only local Ray

from edgesplit.envs.gym_env import SplitOffloadEnv

p = argparse.ArgumentParser()
p.add_argument("--iterations", type=int, default=10)
p.add_argument("--batch", type=int, default=2000, help="env steps per training iteration")
p.add_argument("--env", choices=["id", "class"], default="id")
p.add_argument("--address", default=None, help="a running cluster's address (ray start)")
args = p.parse_args()

init_ray(args.address)  # a cluster started with `ray start`, or this machine alone
import ray  # noqa: E402
from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402

env = "edgesplit.envs:edgesplit/SplitOffload-v1" if args.env == "id" else SplitOffloadEnv
config = (
    PPOConfig()
    .environment(env, env_config={"scenario": "single", "max_cycles": 50})
    .env_runners(num_env_runners=1, num_envs_per_env_runner=1)  # remote runner processes
    .training(train_batch_size_per_learner=args.batch, minibatch_size=64, num_epochs=2)
)
algo = config.build_algo()
for _ in range(args.iterations):
    result = algo.train()
steps = result["num_env_steps_sampled_lifetime"]
ret = result["env_runners"].get("episode_return_mean", float("nan"))
print(f"trained {args.iterations} iterations, {steps} env steps; episode return {ret:.2f}")
algo.stop()
ray.shutdown()
