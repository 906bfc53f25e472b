"""Train an agent on EdgeSplit: ``python train.py algo=ppo env=default seed=0``.

Hydra composes ``configs/config.yaml`` with one entry of each group (``algo/``, ``env/``,
``logger/``); any key can be overridden on the command line (``total_timesteps=20000``,
``algo.kwargs.learning_rate=1e-3``), and an unknown key is an error. The run directory
(``runs/<algo>-<scenario>-seed<seed>`` by default) holds the resolved config, TensorBoard
events, atomic checkpoints, the final model and the comparison with the baselines
(``eval.md``). Running the same command again resumes from the checkpoint.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from edgesplit.agents.registry import get_agent


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    get_agent(cfg.algo.name)  # a clear error for an unknown algo before anything heavy
    from edgesplit.agents.training import train

    run_dir = HydraConfig.get().runtime.output_dir
    summary = train(OmegaConf.to_container(cfg, resolve=True), run_dir)
    print(f"run directory: {run_dir}")
    print((__import__("pathlib").Path(run_dir) / "eval.md").read_text())
    print(f"trained {summary['total_timesteps']} steps in {summary['train_seconds']} s")


if __name__ == "__main__":
    main()
