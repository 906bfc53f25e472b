"""Compare a trained run with every baseline: ``python evaluate.py run=<dir> episodes=20``.

Loads ``<dir>/model.zip`` and ``<dir>/summary.json`` (written by ``train.py``), runs the
policy and each baseline on the same held-out episodes and writes
``<dir>/evaluate/eval.csv`` and ``eval.md``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from edgesplit.agents.evaluate_run import evaluate_run

    out = evaluate_run(cfg.run, int(cfg.episodes), int(cfg.first_seed), list(cfg.baselines))
    print(out.read_text())


if __name__ == "__main__":
    main()
