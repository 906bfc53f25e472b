"""RLlib multi-agent PPO: every device-agent of the PettingZoo env acts through one shared
policy, with remote env runners on a local Ray instance bound to the loopback.

Run: ``python rllib_multi_agent.py --iterations 10``.
"""

import argparse

from ray_local import init_ray  # recipes/ray_local.py: loopback-only local Ray

p = argparse.ArgumentParser()
p.add_argument("--iterations", type=int, default=10)
p.add_argument("--batch", type=int, default=2000, help="agent steps per training iteration")
p.add_argument("--address", default=None, help="a running cluster's address (ray start)")
args = p.parse_args()

init_ray(args.address)
import ray  # noqa: E402
from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv  # noqa: E402
from ray.tune.registry import register_env  # noqa: E402


def make_env(config):
    from edgesplit.envs import split_offload_v1  # imported in each env runner

    return ParallelPettingZooEnv(split_offload_v1.parallel_env(**config))


register_env("split_offload_v1", make_env)
config = (
    PPOConfig()
    .environment("split_offload_v1", env_config={"scenario": "default", "max_cycles": 50})
    .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, *a, **k: "shared")
    .env_runners(num_env_runners=1)
    .training(train_batch_size_per_learner=args.batch, minibatch_size=64, num_epochs=2)
)
algo = config.build_algo()
for _ in range(args.iterations):
    result = algo.train()
runners = result["env_runners"]
steps = runners["num_agent_steps_sampled_lifetime"]  # per agent id
learned = sorted(result["learners"].keys() - {"__all_modules__"})
print(
    f"trained {args.iterations} iterations: {len(steps)} agents, "
    f"{sum(steps.values())} agent steps; policies learned {learned}"
)
algo.stop()
ray.shutdown()
