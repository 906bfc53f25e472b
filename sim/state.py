"""The simulator's state: a typed dataclass of arrays (the gymnax ``EnvState`` habit).

Everything that changes from slot to slot in the core lives in one :class:`State`, batched
over ``E`` environments. Reset, copying, pickling and the compiled step's packed layout
(:mod:`edgesplit.sim.kernel` lays every field out in one int64 array, by name and dtype) all
derive from its fields, so a new piece of state is one field here plus the physics that
moves it. The links' own state (Markov chains, trace positions) lives in their
:class:`~edgesplit.cost_models.links.LinkBank`.

>>> s = State.zeros(e=2, n=3, queue_capacity=4, n_targets=2, n_aps=1)
>>> s.qapp.shape, s.srv_backlog.shape, s.rates.shape
((2, 3, 4), (2, 2), (2, 3, 1))
>>> s.qlen[1] = 2; s.reset_rows(np.array([False, True])); int(s.qlen.sum())
0
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = ["State"]


@dataclass
class State:
    """The state of ``E`` environments (``N`` devices, ``J`` targets, ``M`` access points,
    queues of ``Q`` tasks)."""

    key: np.ndarray  # [E] uint64, the episode's key (its seed)
    mixed_key: np.ndarray  # [E] uint64, the key mixed once (the generator's input)
    t: np.ndarray  # [E] int64, the slot
    qapp: np.ndarray  # [E, N, Q] int64, application of each queued task (ring buffer)
    qarr: np.ndarray  # [E, N, Q] int64, arrival slot of each queued task
    qhead: np.ndarray  # [E, N] int64, ring-buffer head
    qlen: np.ndarray  # [E, N] int64, queued tasks (the first is pending)
    phase: np.ndarray  # [E, N] int64, 1 while a burst of arrivals is on (scenario's bursts)
    dev_backlog: np.ndarray  # [E, N] float64, seconds of device work carried over
    srv_backlog: np.ndarray  # [E, J] float64, seconds of target work carried over
    rates: np.ndarray  # [E, N, M] float64, Mbps of each device's link to each access point
    # what the scheduler knows (the scenario's InformationSpec): the measured link rates and
    # the reported server backlogs; equal to rates and srv_backlog where it knows the truth
    rates_seen: np.ndarray  # [E, N, M] float64
    srv_seen: np.ndarray  # [E, J] float64
    charge: np.ndarray  # [E, N] float64, joules in each device's battery (0 without one)
    energy_debt: np.ndarray  # [E, N] float64, joules of energy-budget deficit (virtual queue)

    @classmethod
    def zeros(cls, e: int, n: int, queue_capacity: int, n_targets: int, n_aps: int) -> State:
        """An all-zero state (no tasks, no backlog) of the given sizes."""
        q = queue_capacity
        u, i, f = np.uint64, np.int64, np.float64
        return cls(
            key=np.zeros(e, u),
            mixed_key=np.zeros(e, u),
            t=np.zeros(e, i),
            qapp=np.zeros((e, n, q), i),
            qarr=np.zeros((e, n, q), i),
            qhead=np.zeros((e, n), i),
            qlen=np.zeros((e, n), i),
            phase=np.zeros((e, n), i),
            dev_backlog=np.zeros((e, n), f),
            srv_backlog=np.zeros((e, n_targets), f),
            rates=np.zeros((e, n, n_aps), f),
            rates_seen=np.zeros((e, n, n_aps), f),
            srv_seen=np.zeros((e, n_targets), f),
            charge=np.zeros((e, n), f),
            energy_debt=np.zeros((e, n), f),
        )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The fields, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def arrays(self) -> dict[str, np.ndarray]:
        """Field name -> array (the arrays themselves, not copies)."""
        return {k: getattr(self, k) for k in self.names()}

    def reset_rows(self, mask: np.ndarray) -> None:
        """Zero the environments selected by ``mask`` (``[E]`` bool), in place."""
        for a in self.arrays().values():
            a[mask] = 0

    def copy(self) -> State:
        """A deep copy (independent arrays)."""
        return copy.deepcopy(self)
