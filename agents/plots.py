"""Figures of an evaluation: learning curve, latency CDF, chosen splits and targets.

``evaluate.py`` writes them next to its table (``<run>/evaluate/*.png``) when matplotlib is
installed (the ``train`` extra has it). Every figure is drawn from data the evaluation
measured: TensorBoard's ``rollout/ep_rew_mean`` of the run for the learning curve, and
every decided task of the held-out episodes (``sample_*`` of
:meth:`~edgesplit.agents.metrics.EpisodeTotals.metrics`) for the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["learning_curve", "plot_evaluation"]


def learning_curve(run: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, mean episode return) from the run's TensorBoard events, or None."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:  # pragma: no cover - tensorboard is in the train extra
        return None
    steps: list[float] = []
    values: list[float] = []
    # one accumulator per folder (it reads every events file there, in order, and drops the
    # points a resumed segment superseded); one per file would count a folder twice
    for folder in sorted({f.parent for f in (run / "tb").rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        if "rollout/ep_rew_mean" in acc.Tags().get("scalars", []):
            for ev in acc.Scalars("rollout/ep_rew_mean"):
                steps.append(ev.step)
                values.append(ev.value)
    if not steps:
        return None
    order = np.argsort(steps, kind="stable")
    return np.asarray(steps)[order], np.asarray(values)[order]


def plot_evaluation(
    results: dict[str, dict[str, np.ndarray]],
    tables: Any,
    out_dir: Path,
    run: Path | None = None,
) -> list[Path]:
    """Write the figures into ``out_dir``; returns their paths (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    # latency CDF of every decided task
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, (name, m) in enumerate(results.items()):
        lat = np.sort(m.get("sample_latency_s", np.zeros(0)))
        if lat.size:
            ax.step(
                1e3 * lat,
                np.arange(1, lat.size + 1) / lat.size,
                where="post",
                label=name,
                color=f"C{k % 10}",
            )
    ax.set_xscale("log")
    ax.set_xlabel("task latency (ms)")
    ax.set_ylabel("fraction of tasks")
    ax.set_title("Latency CDF, held-out episodes")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    written.append(_save(fig, out_dir / "latency_cdf.png", plt))

    # where tasks went: all-local, or each target; and how deep offloaded splits cut
    names = [n for n, m in results.items() if m.get("sample_split", np.zeros(0)).size]
    if names:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        cats = ["local", *tables.target_names]
        width = 0.8 / len(names)
        for k, name in enumerate(names):
            m = results[name]
            app = m["sample_app"].astype(int)
            split = m["sample_split"].astype(int)
            target = m["sample_target"].astype(int)
            last = tables.n_valid[app] - 1
            local = split >= last
            frac = [local.mean()] + [
                ((~local) & (target == j)).mean() for j in range(tables.n_targets)
            ]
            color = f"C{list(results).index(name) % 10}"  # one colour per policy, everywhere
            ax1.bar(np.arange(len(cats)) + k * width, frac, width, label=name, color=color)
            depth = split[~local] / np.maximum(last[~local], 1)
            if depth.size:
                ax2.hist(depth, bins=10, range=(0, 1), histtype="step", label=name, color=color)
        ax1.set_xticks(np.arange(len(cats)) + 0.4 - width / 2, cats, rotation=30)
        ax1.set_ylabel("fraction of tasks")
        ax1.set_title("Chosen target")
        ax1.legend(fontsize=7)
        ax2.set_xlabel("split depth of offloaded tasks (0: input, 1: last layer)")
        ax2.set_ylabel("tasks")
        ax2.set_title("Chosen split")
        ax2.legend(fontsize=7)
        written.append(_save(fig, out_dir / "choices.png", plt))

    curve = learning_curve(run) if run is not None else None
    if curve is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(*curve)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("mean episode return")
        ax.set_title("Learning curve")
        ax.grid(alpha=0.3)
        written.append(_save(fig, out_dir / "learning_curve.png", plt))
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
