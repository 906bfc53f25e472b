"""BenchMARL with EdgeSplit as a custom task: MAPPO with one shared policy over the device
agents, the global state for the critic and the action masks.

Run: ``python benchmarl_task.py --frames 60000``.
"""

import argparse
import copy
import tempfile

from benchmarl.algorithms import MappoConfig
from benchmarl.environments.common import Task, TaskClass
from benchmarl.experiment import Experiment, ExperimentConfig
from benchmarl.models.mlp import MlpConfig
from torchrl.data import Composite
from torchrl.envs import PettingZooWrapper

from edgesplit.envs import split_offload_v1


class EdgeSplitClass(TaskClass):
    """The task: ``config`` holds the keyword arguments of ``split_offload_v1.parallel_env``."""

    def get_env_fun(self, num_envs, continuous_actions, seed, device):
        config = copy.deepcopy(self.config)
        return lambda: PettingZooWrapper(
            split_offload_v1.parallel_env(**config),
            categorical_actions=True,
            return_state=True,
            use_mask=True,
            seed=seed,
            device=device,
        )

    def supports_continuous_actions(self):
        return False

    def supports_discrete_actions(self):
        return True

    def has_render(self, env):
        return False

    def max_steps(self, env):
        return self.config["max_cycles"]

    def group_map(self, env):
        return env.group_map  # one group, "agent": agent_0 .. agent_{N-1}

    def observation_spec(self, env):
        spec = env.observation_spec.clone()
        for group in self.group_map(env):
            for key in list(spec[group].keys()):
                if key != "observation":
                    del spec[group][key]
        del spec["state"]
        return spec

    def info_spec(self, env):
        return None

    def state_spec(self, env):
        return Composite({"state": env.observation_spec["state"].clone()})

    def action_spec(self, env):
        return env.full_action_spec

    def action_mask_spec(self, env):
        spec = env.observation_spec.clone()
        for group in self.group_map(env):
            for key in list(spec[group].keys()):
                if key != "action_mask":
                    del spec[group][key]
        del spec["state"]
        return spec

    @staticmethod
    def env_name():
        return "edgesplit"


class EdgeSplitTask(Task):
    SPLIT_OFFLOAD = None

    @staticmethod
    def associated_class():
        return EdgeSplitClass


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--frames", type=int, default=60_000)
    args = p.parse_args()
    task = EdgeSplitTask.SPLIT_OFFLOAD.get_task(
        config={"scenario": "default", "action_type": "discrete", "max_cycles": 50}
    )
    cfg = ExperimentConfig.get_from_yaml()
    cfg.sampling_device = cfg.train_device = cfg.buffer_device = "cpu"
    cfg.max_n_frames = args.frames
    cfg.on_policy_collected_frames_per_batch = min(args.frames, 1000)
    cfg.on_policy_n_envs_per_worker = 2
    cfg.on_policy_minibatch_size = 100
    cfg.on_policy_n_minibatch_iters = 2
    cfg.evaluation = False
    cfg.loggers = []
    cfg.create_json = False
    cfg.checkpoint_at_end = False
    cfg.save_folder = tempfile.mkdtemp()
    experiment = Experiment(
        task=task,
        algorithm_config=MappoConfig.get_from_yaml(),
        model_config=MlpConfig.get_from_yaml(),
        critic_model_config=MlpConfig.get_from_yaml(),
        seed=0,
        config=cfg,
    )
    experiment.run()
    groups = {g: len(a) for g, a in experiment.group_map.items()}
    print(f"trained {experiment.total_frames} frames; groups {groups}")
