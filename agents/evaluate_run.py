"""Body of ``evaluate.py``: evaluate a run directory against the baselines."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .evaluation import compare, evaluate_policy, summarise, write_tables
from .plots import plot_evaluation
from .registry import get_agent

__all__ = ["MODEL_DIR", "evaluate_run"]

MODEL_DIR = "model"  # the final model inside a run directory, as the agent saved it


def evaluate_run(run: str | Path, episodes: int, first_seed: int, baselines: list[str]) -> Path:
    """Evaluate ``run``'s final model and the baselines; returns the Markdown table's path
    (``<run>/evaluate/eval.md``, beside ``eval.csv`` and the figures)."""
    run = Path(run)
    summary_path = run / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"run {run}: missing summary.json (is it a train.py run?)")
    try:
        summary = json.loads(summary_path.read_text())
        spec = get_agent(summary["algo"])
        kw = dict(summary["env_kwargs"])
    except (json.JSONDecodeError, KeyError, ValueError) as e:
        raise ValueError(f"run {run}: summary.json is malformed: {e}") from e
    # runs written before the model/ folder kept the model file at the top
    model_dir = run / MODEL_DIR if (run / MODEL_DIR).is_dir() else run
    torch.set_num_threads(1)
    try:
        agent = spec.load(model_dir, kw)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"run {run}: no final model ({e}; is it a train.py run?)") from e
    seeds = list(range(first_seed, first_seed + episodes))
    results = compare({spec.name: evaluate_policy(agent.predict, kw, seeds)}, kw, seeds, baselines)
    agent.close()
    out_dir = run / "evaluate"
    out_dir.mkdir(exist_ok=True)
    from edgesplit.sim.scenario import load_scenario
    from edgesplit.sim.tables import build

    figs = plot_evaluation(results, build(load_scenario(kw["scenario"]))[0], out_dir, run)
    title = (
        f"{spec.name} on {kw['scenario']}: {episodes} held-out episodes "
        f"(seeds {first_seed}..{first_seed + episodes - 1})"
    )
    return write_tables(summarise(results), out_dir, title, figs)
