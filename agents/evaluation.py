"""Evaluate learned policies and baselines on the same held-out episodes.

Episodes are identified by seeds: ``env.reset(seed=s)`` and the baselines'
:func:`~edgesplit.agents.baselines.seed_keys` give the same episode, so every row of a
comparison table is measured on exactly the same arrivals and link traces.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesplit.envs.common import resolve_options
from edgesplit.envs.gym_env import SplitOffloadEnv
from edgesplit.envs.vector_env import SplitOffloadVectorEnv

from .baselines import make_baseline, run_episodes
from .config import DEFAULT_BASELINES
from .metrics import EpisodeTotals
from .protocol import Predict

__all__ = ["compare", "evaluate_policy", "markdown_table", "summarise", "write_tables"]


def evaluate_policy(
    predict: Predict,
    env_kwargs: dict[str, Any],
    seeds: Sequence[int],
) -> dict[str, np.ndarray]:
    """Per-seed metrics of ``predict`` (batched observations and action masks -> actions:
    an agent's :meth:`~edgesplit.agents.protocol.Agent.predict`), one episode each.

    Joint decision mode runs all seeds at once in the native VectorEnv; sequential mode
    runs one single env per seed.
    """
    seeds = [int(s) for s in seeds]
    e = len(seeds)
    tot = EpisodeTotals(e)

    mode = env_kwargs.get("decision_mode", "joint")
    if mode == "joint":
        venv = SplitOffloadVectorEnv(num_envs=e, **env_kwargs)
        obs, info = venv.reset(seed=seeds)
        horizon, n_dev = venv.scenario.horizon, venv.core.n_devices
        for _ in range(horizon):
            obs, _, _, _, info = venv.step(predict(obs, info["action_mask"]))
            tot.add(slice(None), **info)
        return tot.metrics(horizon, n_dev)
    for i, s in enumerate(seeds):
        env = SplitOffloadEnv(**env_kwargs)
        obs, info = env.reset(seed=s)
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(predict(obs[None], info["action_mask"][None])[0])
            done = term or trunc
            if "cost" in info:
                tot.add(i, **info)
        horizon, n_dev = env.scenario.horizon, env.core.n_devices
    return tot.metrics(horizon, n_dev)


def compare(
    policies: dict[str, dict[str, np.ndarray]],
    env_kwargs: dict[str, Any],
    seeds: Sequence[int],
    baselines: Sequence[str] = DEFAULT_BASELINES,
) -> dict[str, dict[str, np.ndarray]]:
    """Learned policies' metrics (already computed) plus every baseline on the same seeds
    and the same scenario as the policies ran on: ``env_kwargs``' scenario with its
    ``max_cycles`` and ``information`` applied, as the environment applies them."""
    scenario, _ = resolve_options(
        env_kwargs["scenario"],
        "joint",
        None,
        env_kwargs.get("max_cycles"),
        env_kwargs.get("information"),
    )
    out = dict(policies)
    for nm in baselines:
        out[nm] = run_episodes(make_baseline(nm), scenario, seeds)
    return out


def summarise(results: dict[str, dict[str, np.ndarray]]) -> list[dict[str, float | str]]:
    """Rows (mean and standard error over seeds) for a table."""
    rows = []
    for nm, m in results.items():
        c = m["cost_per_slot"]
        rows.append(
            {
                "policy": nm,
                "cost_per_slot": float(c.mean()),
                "cost_se": float(c.std(ddof=1) / np.sqrt(len(c))) if len(c) > 1 else 0.0,
                "latency_ms": float(1e3 * m["mean_latency_s"].mean()),
                "miss_rate": float(m["miss_rate"].mean()),
                "energy_mj": float(1e3 * m["mean_energy_j"].mean()),
                "drops": float(m["drops"].mean()),
            }
        )
    return rows


def markdown_table(rows: list[dict[str, float | str]]) -> str:
    """A Markdown table of :func:`summarise` rows."""
    head = "| policy | cost / device-slot | ± se | latency ms | miss % | energy mJ | drops |\n"
    head += "|---|---:|---:|---:|---:|---:|---:|\n"
    body = "".join(
        f"| {r['policy']} | {r['cost_per_slot']:.4f} | {r['cost_se']:.4f} | "
        f"{r['latency_ms']:.1f} | {100 * float(r['miss_rate']):.1f} | {r['energy_mj']:.1f} | "
        f"{r['drops']:.1f} |\n"
        for r in rows
    )
    return head + body


def write_tables(
    rows: list[dict[str, float | str]],
    out_dir: str | Path,
    title: str,
    figures: Sequence[Path] = (),
) -> Path:
    """Write ``eval.csv`` and ``eval.md`` (``# title``, the table, then ``figures``) into
    ``out_dir``; returns the Markdown file's path. The one writer of evaluation tables, for
    training's final comparison and for ``evaluate.py``.

    >>> import tempfile
    >>> rows = [{"policy": "local", "cost_per_slot": 0.5, "cost_se": 0.0, "latency_ms": 1.0,
    ...          "miss_rate": 0.0, "energy_mj": 2.0, "drops": 0.0}]
    >>> print(write_tables(rows, tempfile.mkdtemp(), "demo").read_text())
    # demo
    <BLANKLINE>
    | policy | cost / device-slot | ± se | latency ms | miss % | energy mJ | drops |
    |---|---:|---:|---:|---:|---:|---:|
    | local | 0.5000 | 0.0000 | 1.0 | 0.0 | 2.0 | 0.0 |
    <BLANKLINE>
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "eval.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = out_dir / "eval.md"
    md.write_text(
        f"# {title}\n\n"
        + markdown_table(rows)
        + "".join(f"\n![{f.stem}]({f.name})\n" for f in figures)
    )
    return md
