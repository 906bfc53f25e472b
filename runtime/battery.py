"""A battery of the runtime's own device: the simulator's energy accounting, in real time.

A device of a scenario with batteries (``battery:`` in a device group, ``sim/scenario.py``'s
``BatterySpec``) reports its charge ``charge_j`` and its energy-budget deficit
``energy_debt_j`` in every scheduler request, and may not run a head its charge cannot pay
for. :class:`Battery` keeps both with exactly the simulator's accounting and numbers
(``sim/core.py``'s docstring; ``Core.drain_batteries``):

* **Energy of a task**: ``p_active_w x head time + p_tx_w x air time``, with the device
  class's powers from the device catalogue (``cost_models/devices.json``, the simulator's
  ``Physics.p_active_w`` / ``p_tx_w``) and the task's **measured** phases: the head's wall
  time, and the paced send's wall time (the simulator's air time: the transfer at the
  device's share of its access point; not the round trip, the server's wait or its tail).
* **Idle draw is not drained** (the simulator's model choice: read ``harvest_w`` as net of
  the idle draw).
* **Per slot** (the scenario's ``slot_s``): ``C <- min(capacity, max(0, C - E) + harvest_w x
  slot_s)`` and ``Z <- max(0, Z + E - budget_w x slot_s)`` (``Z`` stays 0 without a budget),
  ``E`` the energy spent in the slot.
* **The empty battery**: a head whose modelled compute energy (``p_active_w`` x the head
  time of the simulator's tables, ``Tables.head_energy_j``: what the simulator and the
  scheduler's masks compare) exceeds the charge cannot run (:meth:`Battery.affordable`);
  the device runs full offload instead (candidate 0, the raw input, to the chosen target
  or the home edge), as the simulator replaces a masked head. The radio is not gated: an
  empty device still sends, its energy drained down to 0.

**Continuous time onto slots.** The simulator charges a slot's energy and harvests at its
end; the runtime works in continuous time. The battery keeps the simulator's slot clock,
slot ``k`` being ``[start + k slot_s, start + (k + 1) slot_s)`` (``start``: the clock's
zero, the demo's arrival clock, so that the slots are the replay's). Energy is spent when
it is measured (the head's at the head's end, the radio's at the send's end) and counts in
the slot it is spent in; at each slot boundary passed, the slot update above runs with that
slot's energy ``E`` (0 for a slot with none). The charge reported between boundaries is
``max(0, C - E)``, the energy spent so far already gone (so that two tasks in one slot
cannot both spend the same joules); the deficit reported is ``Z`` at the last boundary, as
the simulator's observation holds it. With at most one task per slot this is the
simulator's arithmetic exactly (successive clamps at 0 give ``max(0, C - E1 - E2)``). Two
differences remain, by design: the simulator charges a whole task in the slot it was
decided, the runtime each part in the slot it is spent in (a transfer that ends after a
boundary pays in the next slot: the same joules, another slot's harvest and budget); and
the head is gated on its modelled energy, as the simulator does, but paid at its measured
time, so a head that ran longer than its table's time can overdraw the charge (clamped at 0,
as the radio is).

Numpy and the standard library only: the device imports it without the simulator (whose
numbers a :class:`Battery` is given, see ``runtime/demo.py``'s ``device_battery``), and
``tests/test_runtime_battery.py`` checks its figures against the simulator's own code.

>>> b = Battery(capacity_j=10.0, charge_j=1.0, p_active_w=10.0, p_tx_w=4.0, slot_s=0.1,
...             harvest_w=2.0, budget_w=2.0, head_energy_j={"net": {"input": 0.0, "out": 1.5}},
...             start=0.0)
>>> b.affordable("net", "out", now=0.0), b.affordable("net", "input", now=0.0)
(False, True)
>>> b.task_energy_j(head_s=0.05, air_s=0.1)  # 10 W x 0.05 s + 4 W x 0.1 s
0.9
>>> b.spend(0.9, now=0.01)
>>> round(b.charge_j(now=0.05), 6)
0.1
>>> # slot 0 ends at 0.1 s: C = min(10, max(0, 1 - 0.9) + 2 W x 0.1 s), Z = 0.9 - 0.2
>>> round(b.charge_j(now=0.1), 6), round(b.debt_j(now=0.1), 6)
(0.3, 0.7)
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Battery"]


def _param(value: Any, field: str, *, low: float = 0.0, low_open: bool = False,
           high: float = math.inf) -> float:  # fmt: skip
    """A finite number in range, or ValueError naming the field and the value."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    try:
        ok = ok or (hasattr(value, "dtype") and value.ndim == 0 and value.dtype.kind in "iuf")
    except AttributeError:  # pragma: no cover - an odd object
        ok = False
    x = float(value) if ok else math.nan
    if not ok or not math.isfinite(x) or x < low or (low_open and x == low) or x > high:
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        hi = "" if math.isinf(high) else f" and <= {high:g}"
        raise ValueError(f"battery.{field} = {value!r}: expected a finite number {lo}{hi}")
    return x


class Battery:
    """A device's battery and energy budget on the simulator's slot clock (see the module
    docstring). Thread-safe: the devices of one physical device (one per application, in
    the demo) share one.

    Parameters
    ----------
    capacity_j
        Capacity (J, > 0): the scenario's ``battery.capacity_j``.
    charge_j
        Charge at ``start`` (J, in ``[0, capacity_j]``).
    p_active_w, p_tx_w
        The device class's compute and radio power (W, >= 0): the device catalogue's
        ``p_active_w`` and ``p_tx_w``.
    slot_s
        The scenario's slot (s, > 0).
    harvest_w
        Recharge (W, >= 0; the scenario's ``battery.harvest_w``): ``harvest_w x slot_s``
        joules at the end of every slot, never above the capacity.
    budget_w
        Long-term power budget (W, > 0) or None: the deficit queue ``Z``.
    head_energy_j
        ``{application: {candidate name: J}}``, each head's modelled compute energy (the
        simulator's ``Tables.head_energy_j`` for this device): what the charge must cover
        for the head to run. A candidate missing from it is refused by :meth:`affordable`.
    clock
        Seconds, monotonic (default ``time.perf_counter``).
    start
        The clock's reading at which slot 0 starts (default: now).
    energy_debt_j
        The energy-budget deficit at ``start`` (J, >= 0; default 0, as at a reset).
    """

    def __init__(
        self,
        capacity_j: float,
        charge_j: float,
        p_active_w: float,
        p_tx_w: float,
        slot_s: float,
        harvest_w: float = 0.0,
        budget_w: float | None = None,
        head_energy_j: Mapping[str, Mapping[str, float]] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        start: float | None = None,
        energy_debt_j: float = 0.0,
    ) -> None:
        self.capacity_j = _param(capacity_j, "capacity_j", low_open=True)
        charge = _param(charge_j, "charge_j", high=self.capacity_j)
        self.p_active_w = _param(p_active_w, "p_active_w")
        self.p_tx_w = _param(p_tx_w, "p_tx_w")
        self.slot_s = _param(slot_s, "slot_s", low_open=True)
        self.harvest_w = _param(harvest_w, "harvest_w")
        self.budget_w = None if budget_w is None else _param(budget_w, "budget_w", low_open=True)
        # per slot, as the simulator's Physics holds them (harvest_w * slot_s, budget_w * slot_s)
        self.harvest_j = self.harvest_w * self.slot_s
        self.budget_j = math.inf if self.budget_w is None else self.budget_w * self.slot_s
        self.head_energy_j: dict[str, dict[str, float]] = {}
        if not isinstance(head_energy_j, (Mapping, type(None))):
            raise ValueError(
                f"battery.head_energy_j = {head_energy_j!r}: expected "
                "{application: {candidate: J}}"
            )
        for app, heads in (head_energy_j or {}).items():
            if not isinstance(heads, Mapping):
                raise ValueError(
                    f"battery.head_energy_j[{app!r}] = {heads!r}: expected {{candidate: J}}"
                )
            self.head_energy_j[app] = {
                c: _param(e, f"head_energy_j[{app!r}][{c!r}]") for c, e in heads.items()
            }
        self.clock = clock
        self.start = _param(clock() if start is None else start, "start", low=-math.inf)
        self._c = charge  # charge at the start of the current slot
        # energy-budget deficit at the start of the current slot
        self._z = _param(energy_debt_j, "energy_debt_j")
        self._e = 0.0  # energy spent in the current slot
        self._slot = 0  # the current slot
        self.spent_j = {"compute": 0.0, "radio": 0.0}  # totals, by kind
        self.forced_offloads = 0
        self._lock = threading.RLock()

    #: the keys of a battery's description (:meth:`from_spec`)
    SPEC_KEYS = ("capacity_j", "harvest_w", "budget_w", "p_active_w", "p_tx_w", "slot_s",
                 "head_energy_j")  # fmt: skip

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, Any], charge_j: float, *, field: str = "battery", **kwargs: Any
    ) -> Battery:
        """A battery from the scheduler's description of a device's
        (``GET /v1/policy``, ``device_batteries[NAME]``: :data:`SPEC_KEYS`, and an
        ``initial_charge_j`` range that is ignored here), starting at ``charge_j``; other
        keyword arguments (``clock``, ``start``, ``energy_debt_j``) are passed on. Raises
        ``ValueError`` naming ``field`` and the key for a description that is not a mapping,
        lacks a key or has a value out of range (``FIELD.KEY = value``), and
        ``battery.charge_j`` for a charge outside ``[0, capacity_j]`` or not finite.

        >>> spec = {"capacity_j": 100.0, "harvest_w": 1.0, "budget_w": None,
        ...         "p_active_w": 5.0, "p_tx_w": 2.0, "slot_s": 0.1,
        ...         "head_energy_j": {"resnet18": {"input": 0.0, "fc": 0.3}}}
        >>> b = Battery.from_spec(spec, 20.0, start=0.0)
        >>> b.capacity_j, b.harvest_j, b.affordable("resnet18", "fc", now=0.0)
        (100.0, 0.1, True)
        """
        if not isinstance(spec, Mapping):
            raise ValueError(f"{field} = {spec!r}: expected a battery's description")
        missing = [k for k in cls.SPEC_KEYS if k not in spec]
        if missing:
            raise ValueError(f"{field}.{missing[0]}: missing from the battery's description")
        try:
            return cls(charge_j=charge_j, **{k: spec[k] for k in cls.SPEC_KEYS}, **kwargs)
        except ValueError as e:  # a bad value of the description: name it under ``field``
            msg = str(e)
            key = msg.removeprefix("battery.").split(" ")[0].split("[")[0]
            if msg.startswith("battery.") and key in cls.SPEC_KEYS:
                raise ValueError(field + msg[len("battery") :]) from None
            raise

    # -- the simulator's arithmetic ----------------------------------------------------
    def task_energy_j(self, head_s: float = 0.0, air_s: float = 0.0) -> float:
        """A task's energy from its phases: ``p_active_w x head_s + p_tx_w x air_s`` (J)."""
        return self.p_active_w * head_s + self.p_tx_w * air_s

    def _end_slot(self) -> None:
        """The simulator's update at a slot's end (``Core.drain_batteries``)."""
        e = self._e
        self._c = min(max(self._c - e, 0.0) + self.harvest_j, self.capacity_j)
        self._z = max(self._z + e - self.budget_j, 0.0)
        self._e = 0.0
        self._slot += 1

    # -- the clock ---------------------------------------------------------------------
    def slot_of(self, now: float) -> int:
        """The slot the clock reading ``now`` falls in (to a nanosecond: ``start + k x
        slot_s`` is in slot ``k`` whatever the rounding of the sum)."""
        return math.floor(round((now - self.start) / self.slot_s, 9))

    def advance(self, now: float | None = None) -> None:
        """Run the slot update for every boundary passed up to ``now`` (default: the
        clock). Once an empty slot changes nothing (full, or no harvest, and no deficit
        left), the remaining empty slots are skipped: they would change nothing either."""
        with self._lock:
            k = self.slot_of(self.clock() if now is None else now)
            while self._slot < k:
                before = (self._c, self._z, self._e)
                self._end_slot()
                if before == (self._c, self._z, 0.0):  # a fixed point: skip to slot k
                    self._slot = k
        return None

    def charge_j(self, now: float | None = None) -> float:
        """The charge now (J): at the current slot's start, less what the slot spent."""
        with self._lock:
            self.advance(now)
            return max(self._c - self._e, 0.0)

    def debt_j(self, now: float | None = None) -> float:
        """The energy-budget deficit ``Z`` (J) at the current slot's start (0 without a
        budget)."""
        with self._lock:
            self.advance(now)
            return self._z

    def report(self, now: float | None = None) -> dict[str, float]:
        """The fields of a scheduler request: ``{"charge_j", "energy_debt_j"}``, both at one
        reading of the clock (so of one slot)."""
        with self._lock:
            now = self.clock() if now is None else now
            return {"charge_j": self.charge_j(now), "energy_debt_j": self.debt_j(now)}

    # -- spending ----------------------------------------------------------------------
    def affordable(self, app: str, candidate: str, now: float | None = None) -> bool:
        """Whether the charge pays for the head of ``candidate`` (the simulator's mask:
        modelled head energy <= charge). ValueError for a head with no modelled energy."""
        try:
            need = self.head_energy_j[app][candidate]
        except KeyError:
            raise ValueError(
                f"battery.head_energy_j: no modelled energy for application {app!r}, "
                f"candidate {candidate!r} (known: "
                f"{ {a: sorted(h) for a, h in self.head_energy_j.items()} })"
            ) from None
        return need <= self.charge_j(now)

    def spend(self, energy_j: float, now: float | None = None, kind: str = "compute") -> None:
        """Spend ``energy_j`` (J, >= 0) at ``now`` (default: the clock), counted under
        ``kind`` (``"compute"`` or ``"radio"``)."""
        e = _param(energy_j, "energy_j")
        if kind not in self.spent_j:
            raise ValueError(f"battery.kind = {kind!r}: expected 'compute' or 'radio'")
        with self._lock:
            self.advance(now)
            self._e += e
            self.spent_j[kind] += e

    def spend_head(self, head_s: float, now: float | None = None) -> float:
        """Spend a measured head's compute energy; returns it (J)."""
        e = self.task_energy_j(head_s=head_s)
        self.spend(e, now, "compute")
        return e

    def spend_radio(self, air_s: float, now: float | None = None) -> float:
        """Spend a measured transfer's radio energy; returns it (J)."""
        e = self.task_energy_j(air_s=air_s)
        self.spend(e, now, "radio")
        return e

    def note_forced_offload(self) -> None:
        """Count a head the charge could not pay for, replaced by full offload."""
        with self._lock:
            self.forced_offloads += 1

    def state(self, now: float | None = None) -> dict[str, Any]:
        """A JSON-ready summary: charge, deficit, slot, energy spent (by kind), forced
        offloads."""
        with self._lock:
            now = self.clock() if now is None else now
            return {
                **self.report(now),
                "slot": self._slot,
                "spent_j": self.spent_j["compute"] + self.spent_j["radio"],
                "compute_j": self.spent_j["compute"],
                "radio_j": self.spent_j["radio"],
                "forced_offloads": self.forced_offloads,
            }
