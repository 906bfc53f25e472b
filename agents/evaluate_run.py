"""Body of ``evaluate.py``: evaluate a run directory against the baselines."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from .evaluation import compare, evaluate_policy, markdown_table, policy_predictor, summarise
from .plots import plot_evaluation
from .registry import get_agent

__all__ = ["evaluate_run"]


def evaluate_run(run: str | Path, episodes: int, first_seed: int, baselines: list[str]) -> Path:
    """Evaluate ``run``'s final model and the baselines; returns the Markdown table's path."""
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
    model_path = run / ("model.pt" if spec.multi_agent else "model.zip")
    if not model_path.is_file():
        raise FileNotFoundError(f"run {run}: missing {model_path.name} (is it a train.py run?)")
    torch.set_num_threads(1)
    if spec.multi_agent:
        from .training import pettingzoo_env

        model = spec.load_class().load(model_path, pettingzoo_env(kw))
    else:
        model = spec.load_class().load(model_path, device="cpu")
    seeds = list(range(first_seed, first_seed + episodes))

    predict = policy_predictor(model)

    results = compare(
        {spec.name: evaluate_policy(predict, kw, seeds)}, kw["scenario"], seeds, baselines
    )
    rows = summarise(results)
    out_dir = run / "evaluate"
    out_dir.mkdir(exist_ok=True)
    with (out_dir / "eval.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    from edgesplit.sim.scenario import load_scenario
    from edgesplit.sim.tables import build

    figs = plot_evaluation(results, build(load_scenario(kw["scenario"]))[0], out_dir, run)
    md = out_dir / "eval.md"
    md.write_text(
        f"# {spec.name} on {kw['scenario']}: {episodes} held-out episodes "
        f"(seeds {first_seed}..{first_seed + episodes - 1})\n\n"
        + markdown_table(rows)
        + "".join(f"\n![{f.stem}]({f.name})\n" for f in figs)
    )
    return md
