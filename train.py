"""Train an agent on EdgeSplit: ``python train.py algo=ppo env=default seed=0``.

Hydra composes ``configs/config.yaml`` with one entry of each group (``algo/``, ``env/``,
``logger/``) over the typed schema :class:`edgesplit.agents.config.TrainConfig`; any key can
be overridden on the command line (``total_timesteps=20000``,
``algo.kwargs.learning_rate=1e-3``). An unknown key, a value of the wrong type or out of range
is an error naming the key and the value, before anything heavy starts. The run directory
(``runs/<algo>-<scenario>-seed<seed>`` by default) holds the resolved config, TensorBoard
events, crash-safe checkpoints, the final model and the comparison with the baselines
(``eval.md``). Running the same command again resumes from the checkpoint.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from edgesplit.agents.config import ConfigError, check_train_config, register_configs

register_configs()


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    plain = OmegaConf.to_container(cfg, resolve=True)
    try:
        check_train_config(plain)
    except ConfigError as e:
        sys.exit(f"train.py: config error: {e}")
    from edgesplit.agents.training import train

    run_dir = HydraConfig.get().runtime.output_dir
    summary = train(plain, run_dir)
    print(f"run directory: {run_dir}")
    print((Path(run_dir) / "eval.md").read_text())
    print(f"trained {summary['total_timesteps']} steps in {summary['train_seconds']} s")


if __name__ == "__main__":
    main()
