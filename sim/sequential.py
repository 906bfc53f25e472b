"""The sequential decision protocol: one slot decided one device at a time.

In sequential mode a policy decides for the devices with a pending task one after the other;
each sees its own observation block, which device it is, and what the devices before it
claimed this slot (:func:`~edgesplit.sim.encoding.sequential_observation`); the slot
resolves after the last. The Gymnasium face (``decision_mode="sequential"``, for DQN and
DDQN) and the scheduler (serving a policy trained that way) both run a slot through
:class:`SequentialTurns`, so what the policy saw in training is what it sees deployed.

>>> import numpy as np
>>> from edgesplit.sim.scenario import load_scenario
>>> from edgesplit.sim.tables import build
>>> ta, _ = build(load_scenario("default"))
>>> turns = SequentialTurns(ta, np.array([True, False, True, False, False, True]), np.zeros(6, int))
>>> turns.order.tolist(), turns.device
([0, 2, 5], 0)
>>> d = turns.decisions[:, :1].copy(); d.split[:] = 1
>>> turns.record(d); turns.device, turns.done
(2, False)
"""

from __future__ import annotations

import numpy as np

from .encoding import Tables, sequential_observation
from .schema import Decisions

__all__ = ["SequentialTurns"]


class SequentialTurns:
    """One slot's turns: ``has`` and ``app`` ``[N]`` are the devices' pending tasks.

    :attr:`decisions` (``[1, N]``) starts with every device local-first (split 0) to its
    home edge at full weights and collects each turn's decision; devices without a task keep
    that default (the core ignores them)."""

    def __init__(self, tables: Tables, has: np.ndarray, app: np.ndarray) -> None:
        self.tables = tables
        self.app = np.asarray(app)
        self.order = np.flatnonzero(has)
        self.k = 0
        self.decisions = Decisions.filled((1, tables.n_devices), home=tables.home[None])

    @property
    def done(self) -> bool:
        """Every device with a task has decided."""
        return self.k >= len(self.order)

    @property
    def device(self) -> int:
        """The device whose turn it is (0 once done, or when no device has a task)."""
        return int(self.order[self.k]) if not self.done else 0

    def observation(self, device_obs: np.ndarray) -> np.ndarray:
        """The current device's observation, from every device's block ``[N, D]``."""
        d = self.decisions
        dev = self.device
        done = self.order[: self.k]
        return sequential_observation(
            self.tables, device_obs[dev], dev, done, self.app, d.split[0], d.target[0]
        )

    def record(self, decision: Decisions) -> None:
        """The current device's decision (``[1, 1]``); the turn passes to the next."""
        dev = self.device
        self.decisions[:, dev : dev + 1] = decision
        self.k += 1
