"""What each option of a device would cost if that device were alone in the slot: the
estimate Neurosurgeon minimises, and the per-option features of the shared policies.

One function, :func:`alone_outcome`, written with arithmetic and comparisons only, so that
the same code runs on numpy arrays (:meth:`Core.option_estimates
<edgesplit.sim.core.Core.option_estimates>`, the simulator's and the baselines' side) and on
torch tensors (:mod:`edgesplit.agents.shared_policy`, which computes it from the observation
inside the network, so an exported policy needs nothing but the observation). It is the
slot model of :meth:`Core.resolve <edgesplit.sim.core.Core.resolve>` with the device's task
alone: its bandwidth and compute shares are whole, it waits for its own device's backlog and
for what the target server already holds, and no other task of the slot contends.

>>> import numpy as np
>>> from edgesplit.sim.core import Core
>>> from edgesplit.sim.scenario import load_scenario
>>> core = Core(load_scenario("single"), 2)
>>> core.reset(np.array([1, 2], dtype=np.uint64))
>>> est = core.option_estimates()
>>> est.cost.shape == (2, core.n_devices, core.tables.n_candidates, core.tables.n_targets)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .schema import CF

__all__ = ["AloneOutcome", "alone_outcome"]


@dataclass
class AloneOutcome:
    """Per-option outcome of a task alone in the slot (arrays or tensors of one shape)."""

    latency_s: Any
    head_s: Any
    transfer_s: Any  # air time at the whole link, plus the backhaul
    server_wait_s: Any  # the wait for the target's backlog
    tail_s: Any
    rtt_s: Any
    energy_j: Any
    deadline_s: Any
    miss: Any  # bool: latency past the deadline
    infeasible: Any  # 1 where the option is masked (and would be replaced)
    cost: Any  # the scenario's cost of the task, as the reward counts it


def alone_outcome(
    f: Any,
    wait_q: Any,
    dev_backlog: Any,
    rate_mbps: Any,
    server_backlog: Any,
    p_tx_w: Any,
    weights: tuple[float, ...],
    tail_factor: Any = 1.0,
) -> AloneOutcome:
    """The outcome of each option from its static choice-table row ``f [..., F]`` (columns
    :data:`~edgesplit.sim.schema.CF`) and the dynamic quantities broadcast to ``f``'s
    leading shape: the task's queueing wait, its device's backlog, the rate of the link the
    option uses (Mbps, > 0), the backlog of the option's target and the device's radio power.
    ``weights`` are the core's reward weights (latency, energy / E_ref, miss, infeasible,
    drop). Works on numpy arrays and torch tensors alike (only arithmetic and comparisons).

    ``tail_factor`` stretches the tail (1: the whole server; ``k``: ``k`` equal tasks share
    it), as a rate divided by ``k`` stretches the air time: an estimate under contention."""
    head = f[..., CF.head_s]
    air = f[..., CF.mbits] / rate_mbps
    transfer = air + f[..., CF.backhaul_s]
    work = f[..., CF.work_s] * tail_factor
    busy = work > 0
    ready = dev_backlog + head + transfer
    gap = server_backlog - ready
    server_wait = gap * (gap > 0) * busy
    rtt = f[..., CF.rtt_s]
    latency = wait_q + ready + rtt + server_wait + work
    energy = f[..., CF.head_energy_j] + p_tx_w * air
    dl = f[..., CF.deadline_s]
    miss = latency > dl
    infeasible = f[..., CF.infeasible]
    w_l, w_e, w_m, w_i = weights[:4]
    cost = w_l * latency / dl + w_e * energy + w_m * miss + w_i * infeasible
    return AloneOutcome(
        latency_s=latency,
        head_s=head,
        transfer_s=transfer,
        server_wait_s=server_wait,
        tail_s=work,
        rtt_s=rtt,
        energy_j=energy,
        deadline_s=dl,
        miss=miss,
        infeasible=infeasible,
        cost=cost,
    )
