"""Evaluate learned policies and baselines on the same held-out episodes.

Episodes are identified by seeds: ``env.reset(seed=s)`` and the baselines'
:func:`~edgesplit.agents.baselines.seed_keys` give the same episode, so every row of a
comparison table is measured on exactly the same arrivals and link traces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgesplit.envs.gym_env import SplitOffloadEnv
from edgesplit.envs.vector_env import SplitOffloadVectorEnv

from .baselines import make_baseline, run_episodes
from .metrics import EpisodeTotals

__all__ = ["compare", "evaluate_policy", "policy_predictor", "summarise"]

Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (obs, action masks) -> actions


def evaluate_policy(
    predict: Predict,
    env_kwargs: dict[str, Any],
    seeds: Sequence[int],
) -> dict[str, np.ndarray]:
    """Per-seed metrics of ``predict`` (batched observations and action masks -> actions),
    one episode each.

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


def policy_predictor(model: Any) -> Predict:
    """Deterministic ``(obs, masks) -> actions`` of an SB3 model; maskable models get the
    env's action masks (sb3-contrib's convention), the others ignore them."""
    if type(model).__name__.startswith("Maskable") or getattr(model, "uses_masks", False):
        return lambda obs, masks: model.predict(obs, action_masks=masks, deterministic=True)[0]
    return lambda obs, masks: model.predict(obs, deterministic=True)[0]


def compare(
    policies: dict[str, dict[str, np.ndarray]],
    scenario: Any,
    seeds: Sequence[int],
    baselines: Sequence[str] = ("local", "offload", "random", "neurosurgeon", "greedy", "oracle"),
) -> dict[str, dict[str, np.ndarray]]:
    """Learned policies' metrics (already computed) plus every baseline on the same seeds."""
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
