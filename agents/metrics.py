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
        # every decided task, for distributions (latency CDF, chosen splits and targets)
        self._samples: dict[str, list[np.ndarray]] = {
            k: [] for k in ("latency_s", "app", "split", "target", "device")
        }

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
        **extra: Any,
    ) -> None:
        """Add one slot's per-device arrays (``[..., N]``) to episodes ``idx``."""
        self.cost[idx] += np.sum(cost, axis=-1)
        self.latency_s[idx] += np.sum(latency_s, axis=-1)
        self.energy_j[idx] += np.sum(energy_j, axis=-1)
        self.misses[idx] += np.sum(deadline_miss, axis=-1)
        self.tasks[idx] += np.sum(has_task, axis=-1)
        self.drops[idx] += np.sum(dropped, axis=-1)
        has = np.asarray(has_task, bool)
        if "split" in extra and "target" in extra and "app" in extra:
            dev = np.broadcast_to(np.arange(has.shape[-1]), has.shape)
            for k, v in (
                ("latency_s", latency_s),
                ("app", extra["app"]),
                ("split", extra["split"]),
                ("target", extra["target"]),
                ("device", dev),
            ):
                self._samples[k].append(np.asarray(v)[has])

    def metrics(self, horizon: int, n_devices: int) -> dict[str, np.ndarray]:
        """Per-episode cost per device-slot and per-task means, and (``sample_*``) every
        decided task's latency, app, split, target and device."""
        tasks = np.maximum(self.tasks, 1)
        return {
            **{f"sample_{k}": v for k, v in self.samples().items()},
            "cost_per_slot": self.cost / (horizon * n_devices),
            "mean_latency_s": self.latency_s / tasks,
            "mean_energy_j": self.energy_j / tasks,
            "miss_rate": self.misses / tasks,
            "drops": self.drops.copy(),
            "tasks": self.tasks.copy(),
        }

    def samples(self) -> dict[str, np.ndarray]:
        """Every decided task of the episodes: latency, app, split, target and device
        (empty arrays when the infos carried no decisions)."""
        return {k: np.concatenate(v) if v else np.zeros(0) for k, v in self._samples.items()}
