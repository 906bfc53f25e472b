"""Replay recorded arrivals and decisions through the slotted simulator.

:class:`~edgesplit.sim.core.Core` draws its own arrivals and takes its decisions slot by
slot from an agent. A real system (the runtime's ``demo``, a trace of a deployment) gives
instead a list of tasks, each with its device, application and arrival time, and the
decision each task got. :func:`replay` runs those through the simulator's own slot model:
the same one-task-per-slot device queues, device and server backlogs, and sharing of an
access point's bandwidth and a server's compute between the tasks of a slot, through
:meth:`Core.resolve_snapshot <edgesplit.sim.core.Core.resolve_snapshot>` (the arithmetic of
:meth:`Core.step <edgesplit.sim.core.Core.step>`, numpy reference) and
:meth:`Core.carry_backlogs <edgesplit.sim.core.Core.carry_backlogs>`. It returns what the
simulator says of every task: its latency, its parts, its deadline miss, whether it was
dropped. Nothing of the core's state is read or changed.

What the slotted model makes of a recorded run (approximations, by design of the simulator):

* **Arrivals are bucketed into slots.** A task arriving at ``arrival_s`` arrives in slot
  ``floor(arrival_s / slot_s)`` and, as in the core, joins its device's queue at the end of
  that slot and is pending from the next; its latency is counted from the start of that
  slot (the core's ``wait_q``). The time between the arrival and that slot's start (up to
  one slot, half a slot on average) is not part of the simulator's latency; it is returned
  apart (``slot_wait_s``), and ``from_arrival_s`` adds it.
* **One task per device is decided per slot**, first come first served; tasks that find the
  device's queue full (``queue_capacity``) are dropped, as in the core. A real device may
  start several tasks in one slot, or none while it waits for a result.
* **Device work is a backlog, not a wait for results**: a head longer than a slot delays the
  device's next tasks (``Qd``); a device does not wait for a task's result before the next.
* **Tasks of one slot share** the access point's bandwidth (in proportion to their
  bandwidth weights) and a server's compute (compute weights) for their whole transfer and
  tail, and a server's backlog is its carried-over work (``Qs``): the core's fluid model,
  not a real scheduler's interleaving.
* **Link rates** are given: one rate per (device, access point), constant or per slot
  (``rates_mbps``); by default each link class's mean rate, the emulated links of the
  runtime's demo. The core's Markov-modulated links are not drawn.
* The replay runs until every task is decided, past the scenario's horizon if need be
  (and at least ``min_slots`` slots).
* **Batteries** (a scenario with ``battery`` devices) start from the charges given
  (``charge_j``, required there) and no energy-budget deficit; each slot's outcome is
  judged on them as the core judges its own (a head the charge cannot pay for runs as full
  offload and is flagged ``infeasible``; the deficit costs), and they move after the slot
  with :meth:`Core.drain_batteries <edgesplit.sim.core.Core.drain_batteries>`, the core's
  own update. ``final_charge_j`` and ``final_debt_j`` are the batteries after the last slot.

>>> import numpy as np
>>> from edgesplit.sim.core import Core
>>> from edgesplit.sim.scenario import load_scenario
>>> from edgesplit.sim.schema import Decisions
>>> core = Core(load_scenario("single"), backend="numpy")
>>> last = int(core.tables.n_valid[0]) - 1  # run the whole network on the device
>>> dec = Decisions.filled((2,), split=last, home=0)
>>> r = replay(core, device=[0, 0], app=[0, 0], arrival_s=[0.01, 0.02], decisions=dec)
>>> r.slot.tolist(), r.dropped.tolist()  # both arrive in slot 0, decided in slots 1 and 2
([1, 2], [False, False])
>>> bool(np.isclose(r.latency_s[0], core.tables.head_s[0, 0, last]))
True
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .core import Core
from .scenario import Scenario
from .schema import Decisions

__all__ = ["Replay", "default_rates", "replay"]


@dataclass
class Replay:
    """What the slotted simulator says of each recorded task, arrays ``[K]`` in the order
    the tasks were given (NaN, or -1 for ints, where a task was dropped)."""

    latency_s: np.ndarray  # the simulator's latency, from the start of the task's first slot
    slot_wait_s: np.ndarray  # arrival to the start of the slot it became pending in
    from_arrival_s: np.ndarray  # slot_wait_s + latency_s
    deadline_miss: np.ndarray  # bool, latency_s over the deadline (False where dropped)
    dropped: np.ndarray  # bool, found the device's queue full
    slot: np.ndarray  # int, the slot it was decided in
    head_s: np.ndarray
    transfer_s: np.ndarray
    rtt_s: np.ndarray
    tail_s: np.ndarray
    wait_s: np.ndarray  # queue + device backlog + server backlog
    energy_j: np.ndarray
    split: np.ndarray  # int, applied
    target: np.ndarray  # int, applied
    slot_cost: np.ndarray  # [T, N] each device's cost per slot, drop penalties included
    slot_s: float
    infeasible: np.ndarray  # bool, a masked choice was replaced (e.g. a head the charge
    # could not pay for ran as full offload)
    charge_j: np.ndarray  # the device's charge when the task was decided (NaN: no battery)
    final_charge_j: np.ndarray  # [N] each battery's charge after the last slot (0: none)
    final_debt_j: np.ndarray  # [N] each device's energy-budget deficit after the last slot

    @property
    def n_slots(self) -> int:
        """Slots the replay ran."""
        return int(self.slot_cost.shape[0])


def default_rates(core: Core) -> np.ndarray:
    """``[N, M]`` each device's link to each access point at its link class's mean rate
    (Mbps; 0 where there is no link)."""
    ph = core.physics
    out = np.zeros((core.n_devices, core.n_aps))
    for lc, n_idx, m_idx in ph.link_pairs.values():
        out[n_idx, m_idx] = lc.mean_mbps
    return out


def _indices(values: Any, names: Sequence[str], field: str) -> np.ndarray:
    """Indices from a sequence of indices or names; ValueError naming the field and value."""
    vals = list(np.asarray(values, dtype=object).reshape(-1))
    out = np.empty(len(vals), dtype=np.int64)
    for k, v in enumerate(vals):
        if isinstance(v, str):
            if v not in names:
                raise ValueError(f"{field}[{k}] = {v!r}: unknown (expected one of {list(names)})")
            out[k] = names.index(v)
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            if not 0 <= int(v) < len(names):
                raise ValueError(
                    f"{field}[{k}] = {int(v)!r}: unknown (expected an index in "
                    f"[0, {len(names)}) or one of {list(names)})"
                )
            out[k] = int(v)
        else:
            raise ValueError(f"{field}[{k}] = {v!r}: expected an index or a name")
    return out


def _check_decisions(core: Core, dec: Decisions, dev: np.ndarray, app: np.ndarray) -> None:
    ta = core.tables
    k_n = len(dev)
    for name, a in zip(("split", "target", "bw_weight", "cpu_weight"), dec.fields(), strict=True):
        if np.shape(a) != (k_n,):
            raise ValueError(f"decisions.{name}: expected shape ({k_n},), got {np.shape(a)}")
    split, target = np.asarray(dec.split), np.asarray(dec.target)
    for k in range(k_n):
        s, j, a, i = split[k], target[k], app[k], dev[k]
        hi = int(ta.n_valid[a])
        if not (s == np.floor(s) and 0 <= s < hi):
            raise ValueError(
                f"decisions.split[{k}] = {s.item()!r}: expected an integer in [0, {hi}) "
                f"(the candidates of {ta.app_names[a]!r})"
            )
        if not (j == np.floor(j) and 0 <= j < ta.n_targets and ta.reachable[i, int(j)]):
            ok = [t for t, r in zip(ta.target_names, ta.reachable[i], strict=True) if r]
            raise ValueError(
                f"decisions.target[{k}] = {j.item()!r}: expected the index of a target "
                f"{ta.device_names[i]!r} reaches ({ok}, in {list(ta.target_names)})"
            )
    for name in ("bw_weight", "cpu_weight"):
        w = np.asarray(getattr(dec, name), dtype=float)
        bad = ~np.isfinite(w) | (w <= 0)
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(
                f"decisions.{name}[{k}] = {float(w[k])!r}: expected a finite weight > 0"
            )


def _check_rates(core: Core, rates: np.ndarray) -> np.ndarray:
    n, m = core.n_devices, core.n_aps
    if rates.ndim == 2:
        rates = rates[None]
    elif rates.ndim != 3:
        rates = rates[None, None]  # a shape the check below refuses
    if rates.shape[1:] != (n, m):
        raise ValueError(
            f"rates_mbps: expected shape ({n}, {m}) or (slots, {n}, {m}), got {rates.shape}"
        )
    linked = default_rates(core) > 0
    bad = (~np.isfinite(rates) | (rates <= 0)) & linked[None]
    if bad.any():
        t, i, ap = np.argwhere(bad)[0]
        raise ValueError(
            f"rates_mbps[{t}, {i}, {ap}] = {float(rates[t, i, ap])!r}: expected a rate > 0 (Mbps) "
            f"for the link of {core.tables.device_names[i]!r} to "
            f"{core.tables.access_point_names[ap]!r}"
        )
    return rates


def replay(
    sim: Core | Scenario,
    device: Sequence[int | str] | np.ndarray,
    app: Sequence[int | str] | np.ndarray,
    arrival_s: Sequence[float] | np.ndarray,
    decisions: Decisions,
    rates_mbps: np.ndarray | None = None,
    charge_j: Sequence[float] | np.ndarray | None = None,
    min_slots: int = 0,
) -> Replay:
    """Run recorded tasks and their decisions through the slotted simulator.

    Parameters
    ----------
    sim:
        a :class:`~edgesplit.sim.core.Core` (its tables, physics and reward; its state is
        neither read nor changed) or a scenario (a numpy-backend core is built).
    device, app:
        ``[K]`` each task's device and application, as indices or names.
    arrival_s:
        ``[K]`` each task's arrival time, seconds from the start of the replay (>= 0).
    decisions:
        :class:`~edgesplit.sim.schema.Decisions` of shape ``[K]``: each task's split
        (an index among its application's candidates), target (reachable from its device),
        bandwidth and compute weights (> 0).
    rates_mbps:
        each device's link rate to each access point (Mbps): ``[N, M]`` for every slot, or
        ``[T, N, M]`` slot by slot (T at least the slots the replay runs). Default:
        :func:`default_rates`.
    charge_j:
        ``[N]`` each device's battery charge at the start (J, in ``[0, capacity]``; ignored
        for a device without a battery): required for a scenario with batteries.
    min_slots:
        run at least this many slots (>= 0), idle ones after the last task if need be (so
        that the batteries are compared at a given time).

    Returns the :class:`Replay`. Raises ``ValueError`` naming the field and the value for
    an unknown device or application, a negative or non-finite time, a decision out of
    range, rates of the wrong shape or not positive, or charges missing (a scenario with
    batteries) or out of range.
    """
    core = sim if isinstance(sim, Core) else Core(sim, 1, backend="numpy")
    ta, sc = core.tables, core.scenario
    cap = core.physics.capacity_j
    bat = cap > 0
    charge = debt = None
    if bat.any():
        if charge_j is None:
            i = int(np.argmax(bat))
            raise ValueError(
                f"charge_j: None, but scenario '{sc.name}' has batteries ({ta.device_names[i]!r} "
                "has a battery): give each device's initial charge"
            )
        c0 = np.asarray(charge_j, dtype=float)
        if c0.shape != (core.n_devices,):
            raise ValueError(f"charge_j: expected shape ({core.n_devices},), got {c0.shape}")
        bad = bat & ~((c0 >= 0) & (c0 <= cap))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"charge_j[{i}] = {float(c0[i])!r}: expected a charge in [0, {cap[i]:g}] J "
                f"(the capacity of {ta.device_names[i]!r})"
            )
        charge = np.where(bat, c0, 0.0)[None]
        debt = np.zeros((1, core.n_devices))
    if isinstance(min_slots, bool) or not isinstance(min_slots, (int, np.integer)) or min_slots < 0:
        raise ValueError(f"min_slots = {min_slots!r}: expected an integer >= 0")
    dev = _indices(device, ta.device_names, "device")
    apps = _indices(app, ta.app_names, "app")
    t_arr = np.asarray(arrival_s, dtype=float).reshape(-1)
    k_n = len(t_arr)
    for name, a in (("device", dev), ("app", apps)):
        if len(a) != k_n:
            raise ValueError(f"{name}: {len(a)} entries for {k_n} arrival times")
    bad = ~np.isfinite(t_arr) | (t_arr < 0)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(f"arrival_s[{k}] = {float(t_arr[k])!r}: expected a finite time >= 0 (s)")
    _check_decisions(core, decisions, dev, apps)
    rates = default_rates(core) if rates_mbps is None else np.asarray(rates_mbps, float)
    per_slot = rates.ndim == 3
    rates = _check_rates(core, rates)
    split = np.asarray(decisions.split, dtype=np.int64)
    target = np.asarray(decisions.target, dtype=np.int64)
    bw = np.asarray(decisions.bw_weight, dtype=np.float64)
    cpu = np.asarray(decisions.cpu_weight, dtype=np.float64)

    slot_s, n, q = core.slot_s, core.n_devices, ta.queue_capacity
    arr_slot = np.floor(t_arr / slot_s).astype(np.int64)
    pend = arr_slot + 1  # the slot a task is pending from (the core's ``qarr``)
    order = np.lexsort((np.arange(k_n), t_arr))  # by arrival, ties in the given order
    nan = np.full(k_n, np.nan)
    out = {f: nan.copy() for f in ("latency_s", "head_s", "transfer_s", "rtt_s", "tail_s",
                                   "wait_s", "energy_j")}  # fmt: skip
    miss = np.zeros(k_n, dtype=bool)
    infeasible = np.zeros(k_n, dtype=bool)
    charge_at = nan.copy()
    dropped = np.zeros(k_n, dtype=bool)
    slot = np.full(k_n, -1, dtype=np.int64)
    s_app, t_app = np.full(k_n, -1, dtype=np.int64), np.full(k_n, -1, dtype=np.int64)
    queues: list[deque[int]] = [deque() for _ in range(n)]
    dev_b, srv_b = np.zeros((1, n)), np.zeros((1, core.n_targets))
    drop_w = sc.reward.drop_penalty
    costs: list[np.ndarray] = []
    t, p = 0, 0
    while p < k_n or any(queues) or t < min_slots:
        if per_slot and t >= rates.shape[0]:
            raise ValueError(
                f"rates_mbps: {rates.shape[0]} slots given, the replay needs more (slot {t})"
            )
        rate_t = rates[t if per_slot else 0]
        has = np.zeros((1, n), dtype=bool)
        app_t = np.zeros((1, n), dtype=np.int64)
        wait = np.zeros((1, n))
        dec = Decisions.filled((1, n), home=ta.home[None, :])
        head = [qu[0] if qu else -1 for qu in queues]
        for i, k in enumerate(head):
            if k >= 0:
                has[0, i], app_t[0, i] = True, apps[k]
                wait[0, i] = (t - pend[k]) * slot_s
                dec.split[0, i], dec.target[0, i] = split[k], target[k]
                dec.bw_weight[0, i], dec.cpu_weight[0, i] = bw[k], cpu[k]
        res = core.resolve_snapshot(
            dec, has, app_t, wait, dev_b, srv_b, rate_t[None], charge_j=charge, debt_j=debt
        )
        for i, k in enumerate(head):
            if k >= 0:
                queues[i].popleft()
                slot[k] = t
                for f in out:
                    out[f][k] = getattr(res, f)[0, i]
                miss[k] = res.deadline_miss[0, i]
                infeasible[k] = res.infeasible[0, i]
                s_app[k], t_app[k] = res.split[0, i], res.target[0, i]
                if charge is not None and bat[i]:
                    charge_at[k] = charge[0, i]
        core.carry_backlogs(res, dev_b, srv_b)
        if charge is not None:  # the batteries pay for the slot and harvest
            core.drain_batteries(res.energy_j, charge, debt)
        # this slot's arrivals join the queues (after the decided tasks left), or drop
        n_drop = np.zeros(n, dtype=np.int64)
        while p < k_n and arr_slot[order[p]] == t:
            k = int(order[p])
            if len(queues[dev[k]]) < q:
                queues[dev[k]].append(k)
            else:
                dropped[k] = True
                n_drop[dev[k]] += 1
            p += 1
        costs.append(res.cost[0] + drop_w * n_drop)
        t += 1
    slot_wait = np.where(dropped, np.nan, pend * slot_s - t_arr)
    return Replay(
        **out,
        slot_wait_s=slot_wait,
        from_arrival_s=slot_wait + out["latency_s"],
        deadline_miss=miss,
        dropped=dropped,
        slot=slot,
        split=s_app,
        target=t_app,
        slot_cost=np.array(costs).reshape(-1, n),
        slot_s=slot_s,
        infeasible=infeasible,
        charge_j=charge_at,
        final_charge_j=np.zeros(n) if charge is None else charge[0].copy(),
        final_debt_j=np.zeros(n) if debt is None else debt[0].copy(),
    )
