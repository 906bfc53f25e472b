"""Per-episode metrics, accumulated slot by slot, the same for baselines and learned agents.

>>> import numpy as np
>>> tot = EpisodeTotals(2)
>>> tot.add(slice(None), cost=np.ones((2, 3)), latency_s=np.full((2, 3), 0.1),
...         energy_j=np.zeros((2, 3)), deadline_miss=np.zeros((2, 3), bool),
...         has_task=np.ones((2, 3), bool), dropped=np.zeros((2, 3), int))
>>> tot.metrics(horizon=1, n_devices=3)["cost_per_slot"]
array([1., 1.])
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["EpisodeTotals"]


class EpisodeTotals:
    """Sums over an episode, one entry per episode (environment) of a batch."""

    def __init__(self, n_episodes: int) -> None:
        self.cost = np.zeros(n_episodes)
        self.latency_s = np.zeros(n_episodes)
        self.energy_j = np.zeros(n_episodes)
        self.misses = np.zeros(n_episodes)
        self.tasks = np.zeros(n_episodes)
        self.drops = np.zeros(n_episodes)

    def add(
        self,
        idx: Any,
        *,
        cost: np.ndarray,
        latency_s: np.ndarray,
        energy_j: np.ndarray,
        deadline_miss: np.ndarray,
        has_task: np.ndarray,
        dropped: np.ndarray,
        **_: Any,
    ) -> None:
        """Add one slot's per-device arrays (``[..., N]``) to episodes ``idx``."""
        self.cost[idx] += np.sum(cost, axis=-1)
        self.latency_s[idx] += np.sum(latency_s, axis=-1)
        self.energy_j[idx] += np.sum(energy_j, axis=-1)
        self.misses[idx] += np.sum(deadline_miss, axis=-1)
        self.tasks[idx] += np.sum(has_task, axis=-1)
        self.drops[idx] += np.sum(dropped, axis=-1)

    def metrics(self, horizon: int, n_devices: int) -> dict[str, np.ndarray]:
        """Per-episode cost per device-slot and per-task means."""
        tasks = np.maximum(self.tasks, 1)
        return {
            "cost_per_slot": self.cost / (horizon * n_devices),
            "mean_latency_s": self.latency_s / tasks,
            "mean_energy_j": self.energy_j / tasks,
            "miss_rate": self.misses / tasks,
            "drops": self.drops.copy(),
            "tasks": self.tasks.copy(),
        }
