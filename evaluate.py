"""Compare a trained run with every baseline: ``python evaluate.py run=<dir> episodes=20``.

Loads ``<dir>/model/`` and ``<dir>/summary.json`` (written by ``train.py``), runs the policy
and each baseline on the same held-out episodes and writes ``<dir>/evaluate/eval.csv``,
``eval.md`` and the figures. The config is typed
(:class:`edgesplit.agents.config.EvaluateConfig`): a wrong type or a value out of range is an
error naming the key and the value.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from edgesplit.agents.config import ConfigError, check_evaluate_config, register_configs

register_configs()


@hydra.main(config_path="configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    plain = OmegaConf.to_container(cfg, resolve=True)
    try:
        check_evaluate_config(plain)
    except ConfigError as e:
        sys.exit(f"evaluate.py: config error: {e}")
    from edgesplit.agents.evaluate_run import evaluate_run

    out = evaluate_run(plain["run"], plain["episodes"], plain["first_seed"], plain["baselines"])
    print(out.read_text())


if __name__ == "__main__":
    main()
