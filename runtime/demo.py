"""The loop closed, on one machine: devices with Poisson arrivals, real servers, a policy.

``python -m edgesplit.runtime demo --policy runs/.../policy --duration-s 20``

The policy's scenario gives the devices (class, links, arrival rate, application mix), the
edge servers and the cloud. One ``serve`` process per target hosts the tails of every
application (torch eager, one thread) and computes them **for real on this CPU**, so
transfers, framing, queueing on the servers and their sharing between devices are real. A
device of this project's measured class (``x86_cpu_1t``) would run its heads for real; the
others (a Raspberry Pi, a Jetson) cannot, and their heads are **emulated by waiting the
head time the simulator's tables give for their class**, then sending the cut tensors (of
the right names, shapes and dtypes; zeros). Each device's link to each access point is
emulated at its link class's mean rate and round-trip time (the cloud adds the backhaul's
round trip). As in the simulator, the devices behind one access point share its airtime
(:class:`~edgesplit.runtime.link.AccessPoint`: in proportion to each transfer's bandwidth
weight, the policy's or 1 for Neurosurgeon, each at its own device's rate), and a transfer
to the cloud crosses the device's access point first; ``shared_access_points=False``
(``--dedicated-links``) gives each device its own link to each access point instead.

The same arrivals (seeded) are run once per rule: ``policy`` (the exported policy through
:class:`edgesplit.scheduler.Scheduler`) and ``neurosurgeon`` (each task's own best split and
target under its measured rates, from the same tables the scheduler holds, blind to the
others). When devices ask (``clock``):

* ``"slot"`` (default): **the policy as it was trained** (:mod:`edgesplit.runtime.slots`).
  At each of the scenario's slot boundaries, every device whose queue has a task gets a
  decision for the task at its head, all of them in one joint request to the scheduler
  (with the slot's index, the policy's time feature, and the other devices' state at that
  slot: backlog, measured rates, charge); a task arriving in a slot is pending
  from the next, a full queue drops it; a device runs its heads one at a time in the order
  decided and is free for the next head once a head ends (the offload goes on, on a thread
  of its own). Latency is measured from the arrival, so it includes the wait for the
  deciding slot, and the slotted simulator's figure it is set beside is its latency from
  arrival too (:attr:`~edgesplit.sim.replay.Replay.from_arrival_s`). The report's
  ``from_decision`` takes that common wait out of both sides.
* ``"arrival"``: a device asks when a task reaches the head of its queue and it is free, one
  request per task with every device's latest state; it waits for an offloaded task's
  result before its next task. A slotted policy then decides states it never saw in
  training (a task alone in its request, devices that wait for results), and the slotted
  simulator's latency (from the start of a task's first slot) is set beside the measured.

Per rule the report gives per-task latency percentiles (arrival to result, device queueing
included) and deadline misses, measured, beside two predictions for the same arrivals and
decisions:

* ``slotted_sim``: **the slotted simulator itself** (:func:`edgesplit.sim.replay.replay`):
  the arrivals bucketed into the scenario's slots, one task per device and slot, the core's
  device and server backlogs, and its sharing of an access point's bandwidth and a server's
  compute between the tasks of a slot (by the weights each task got: the policy's, or 1 for
  Neurosurgeon), over the links' mean rates (those emulated here). Its servers are of the
  class that really computes the tails, ``x86_cpu_1t`` (the scenario's table with every
  target's tail from that class's profile); ``slotted_sim_as_trained`` in the JSON keeps the
  scenario's own server classes, what the policy was trained on. Latency is the simulator's
  own, counted from the start of the slot a task is first pending in (see
  :mod:`edgesplit.sim.replay`), or from the arrival on the slot clock, as measured; tasks
  the simulator drops (a full queue) count as misses.
* ``cost_model_replay``: the simulator's head (the table), transfer
  (``bytes * 8 / rate + rtt``) and tail (the ``x86_cpu_1t`` profile) with first-come
  first-served queues on each device and server in continuous time: no slotted dynamics
  and no sharing, the runtime's own order of events (on the slot clock a head starts at the
  boundary of the slot that decided it and the device is free once its head ends; on the
  arrival clock a task starts on its arrival and the device waits for its result). It says
  how far the cost tables are from what happened; the slotted simulator says how far the
  simulator's dynamics are.

**Batteries** (a policy trained on a scenario whose devices have a ``battery``, such as
``battery``): each such device gets a :class:`~edgesplit.runtime.battery.Battery`
(:func:`device_battery`: the scenario's capacity, harvest and budget, the device catalogue's
powers, the policy's tables' head energies for the gate) on the replay's slot clock, its
initial charge drawn uniformly in the scenario's ``initial_charge_j`` range (seeded: the
same for both rules). Its requests carry ``charge_j`` and ``energy_debt_j``, a head it
cannot pay for runs as full offload (under either rule), and its measured heads and sends
pay. Per rule the report gives, per battery device, the charge, deficit and energy spent at
the end, measured and as the slotted simulator predicts for the same decisions (the
replay's batteries, from the same initial charges, with the simulator's energies: table head
times and modelled air times), both after the same number of slots.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .battery import Battery
from .device import Device, SchedulerDecider, ServerEndpoint
from .link import AccessPoint, EmulatedLink, SharedPacer
from .parts import Partitions, load_parts
from .slots import HeadLine, slot_schedule

__all__ = ["CLOCKS", "device_battery", "format_report", "run_demo"]

MEASURED_CLASS = "x86_cpu_1t"
#: when a device asks for a decision: ``"slot"``, at the environment's slot boundaries, one
#: joint decision per slot for every device with a task (the policy as trained; see
#: :mod:`edgesplit.runtime.slots`); ``"arrival"``, as soon as a task reaches the head of
#: its device's queue and the device is free, one request per task
CLOCKS = ("slot", "arrival")
BATTERY_NOTE = (
    "batteries: each battery device's charge, deficit and energy spent at the end, measured "
    "(measured head and send times at the catalogue's powers) beside the slotted simulator's "
    "(its own energies) for the same decisions, after the same number of slots; a head the "
    "charge cannot pay for runs as full offload (the raw input to the chosen target or home)"
)


class WaitingHead:
    """A head engine that waits the modelled head time and returns zero cut tensors."""

    def __init__(self, parts: Partitions, head_s: dict[str, float]) -> None:
        self.parts, self.head_s = parts, head_s

    def head(self, name: str, image: np.ndarray) -> list[np.ndarray]:
        c = self.parts.candidate(name)
        time.sleep(self.head_s[name])
        if c.kind == "input":
            return [image]
        return [np.zeros(t.shape, np.float32) for t in c.cut]


@dataclass
class _Task:
    device: int
    app: int
    arrival: float


class NeurosurgeonDecider:
    """Each task's own best split and target at the device's measured rates (tables of the
    policy: what the scheduler believes), blind to the other devices."""

    def __init__(self, ta: Any, rtt_s: np.ndarray, backhaul: Any, index: int) -> None:
        self.ta, self.rtt, self.backhaul, self.i = ta, rtt_s, backhaul, index

    def __call__(self, device: Device, entry: dict[str, Any]) -> dict[str, Any]:
        ta, i = self.ta, self.i
        a = ta.app_names.index(device.app)
        k = int(ta.n_valid[a])
        best, pick = math.inf, (k - 1, None)
        for s in range(k):
            if s == k - 1:
                lat = float(ta.head_s[i, a, s])
                if lat < best:
                    best, pick = lat, (s, None)
                continue
            for j, tname in enumerate(ta.target_names):
                if not ta.reachable[i, j]:
                    continue
                ap = int(ta.ap_of_target[i, j])
                rate = entry["link_mbps"][ta.access_point_names[ap]]
                mbits = float(ta.bytes_[a, s]) * 8e-6
                lat = float(ta.head_s[i, a, s]) + mbits / rate + float(self.rtt[i, ap])
                lat += float(ta.tail_s[a, s, j])
                if j >= ta.n_aps and self.backhaul is not None:
                    lat += mbits / self.backhaul.mean_mbps + self.backhaul.rtt_s
                if lat < best:
                    best, pick = lat, (s, tname)
        s, t = pick
        return {"split": ta.candidate_names[a][s], "target": t, "source": "neurosurgeon"}


class _RecordingScheduler:
    """The scheduler, recording the weights it gives each deciding device (the device's
    transfer shares its access point by the bandwidth weight; the slotted simulator shares
    by both)."""

    def __init__(self, sched: Any) -> None:
        self._sched = sched
        self.weights: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sched, name)

    def decide(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = self._sched.decide(request)
        with self._lock:  # only the asking device has a task in its request
            for d in answer["decisions"]:
                if d.get("task"):
                    self.weights[d["device"]] = (d["bandwidth_weight"], d["compute_weight"])
        return answer


def _spawn(parts_dirs: Sequence[Path]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "edgesplit.runtime", "serve", "--port", "0"]
    for d in parts_dirs:
        cmd += ["--parts", str(d)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def _port(proc: subprocess.Popen) -> int:
    line = proc.stdout.readline() if proc.stdout else ""
    if " on " not in line:
        raise RuntimeError(f"a server did not start: {line!r}")
    return int(line.split(" on ")[1].split()[0].rpartition(":")[2])


def _arrivals(sc: Any, duration_s: float, seed: int, scale: float = 1.0) -> list[_Task]:
    rng = np.random.default_rng(seed)
    apps = [a.name for a in sc.applications]
    out = []
    for i, d in enumerate(sc.devices):
        names, w = zip(*d.apps.items(), strict=True)
        p = np.array(w, dtype=float) / sum(w)
        rate = d.arrival_rate_hz * scale
        t = rng.exponential(1.0 / rate)
        while t < duration_s:
            out.append(_Task(i, apps.index(str(rng.choice(names, p=p))), float(t)))
            t += rng.exponential(1.0 / rate)
    return sorted(out, key=lambda x: x.arrival)


def device_battery(
    sc: Any, ta: Any, ph: Any, i: int, charge_j: float, start: float | None = None,
    energy_debt_j: float = 0.0,
) -> Battery | None:  # fmt: skip
    """The :class:`~edgesplit.runtime.battery.Battery` of device ``i`` of scenario ``sc``
    (None where it has none), with the simulator's numbers: ``sc``'s battery section
    (capacity, harvest, budget) and slot, the device class's powers from the physics ``ph``
    (``sim.tables.build``: the device catalogue's ``p_active_w`` and ``p_tx_w``), and each
    head's modelled energy from the tables ``ta`` (``Tables.head_energy_j``, what the
    scheduler's masks compare), starting at ``charge_j`` (and a deficit ``energy_debt_j``)
    at clock reading ``start``.

    >>> from edgesplit.sim.scenario import load_scenario
    >>> from edgesplit.sim.tables import build
    >>> sc = load_scenario("battery")
    >>> ta, ph = build(sc)
    >>> b = device_battery(sc, ta, ph, 0, 20.0, start=0.0)
    >>> b.capacity_j, b.harvest_w, b.budget_w, bool(b.p_active_w == ph.p_active_w[0])
    (266.4, 2.0, 2.0, True)
    >>> device_battery(load_scenario("single"), *build(load_scenario("single")), 0, 0.0) is None
    True
    """
    spec = sc.devices[i].battery
    if spec is None:
        return None
    heads = {
        app: {c: float(ta.head_energy_j[i, a, s]) for s, c in enumerate(ta.candidate_names[a])}
        for a, app in enumerate(ta.app_names)
    }
    return Battery(
        capacity_j=spec.capacity_j, charge_j=charge_j, p_active_w=float(ph.p_active_w[i]),
        p_tx_w=float(ph.p_tx_w[i]), slot_s=sc.slot_s, harvest_w=spec.harvest_w,
        budget_w=spec.budget_w, head_energy_j=heads, start=start, energy_debt_j=energy_debt_j,
    )  # fmt: skip


def _initial_charges(sc: Any, seed: int) -> np.ndarray:
    """``[N]`` each battery's initial charge, uniform in its ``initial_charge_j`` range (0
    without a battery); seeded, the same for every rule."""
    u = np.random.default_rng([seed, 8]).uniform(size=len(sc.devices))
    out = np.zeros(len(sc.devices))
    for i, d in enumerate(sc.devices):
        if d.battery is not None:
            lo, hi = d.battery.initial_charge_j
            out[i] = lo + u[i] * (hi - lo)
    return out


def run_demo(
    policy: str,
    duration_s: float = 20.0,
    seed: int = 0,
    rules: Sequence[str] = ("policy", "neurosurgeon"),
    arrival_scale: float = 1.0,
    profile_dir: str | None = None,
    progress: Any = None,
    per_task: bool = False,
    shared_access_points: bool = True,
    clock: str = "slot",
) -> dict[str, Any]:
    """Run the demo (see the module docstring); returns the JSON-ready report.

    ``profile_dir`` holds ``NETWORK.json`` profiles measured on this machine (class
    ``x86_cpu_1t``) for the replay's tails; by default the shipped profiles, which describe
    the machine they were measured on. ``per_task`` adds each rule's tasks (device,
    application, arrival, decision, and the latency measured and predicted by each side) to
    the report, under ``tasks_detail``. ``shared_access_points`` (default): the devices
    behind an access point share its airtime, as in the simulator; else each device has a
    link of its own to each access point.
    """
    from edgesplit.cost_models.devices import load_devices, node_latency
    from edgesplit.cost_models.network import load_network
    from edgesplit.scheduler import Scheduler, load_policy
    from edgesplit.sim.scenario import load_scenario
    from edgesplit.sim.tables import build

    from .partition import partition

    pol = load_policy(policy)
    sched = Scheduler(pol)
    ta = sched.tables
    sc = load_scenario(pol.manifest["scenario"])
    bad = [r for r in rules if r not in ("policy", "neurosurgeon")]
    if bad or not rules:
        raise ValueError(f"rules: {bad or rules!r}: expected 'policy' and/or 'neurosurgeon'")
    if clock not in CLOCKS:
        raise ValueError(f"clock = {clock!r}: expected one of {list(CLOCKS)}")
    if not (arrival_scale > 0 and math.isfinite(arrival_scale)):
        raise ValueError(f"arrival_scale must be a positive number, got {arrival_scale!r}")
    ta_sim, ph = build(sc)
    if ta_sim.candidate_names != ta.candidate_names:
        raise ValueError(
            f"policy: its tables' candidates {ta.candidate_names} are not those of scenario "
            f"'{sc.name}' built here ({ta_sim.candidate_names})"
        )
    cat = load_devices()
    tasks = _arrivals(sc, duration_s, seed, arrival_scale)
    charge0 = _initial_charges(sc, seed)
    real_head = [d.device_class == MEASURED_CLASS for d in sc.devices]
    emulated = sorted({d.device_class for d in sc.devices if d.device_class != MEASURED_CLASS})
    report: dict[str, Any] = {
        "policy": str(policy),
        "scenario": sc.name,
        "duration_s": duration_s,
        "seed": seed,
        "arrival_scale": arrival_scale,
        "tail_profiles": profile_dir or "shipped",
        "shared_access_points": shared_access_points,
        "clock": clock,
        "tasks": len(tasks),
        "initial_charge_j": {
            d: float(charge0[i]) for i, d in enumerate(ta.device_names) if ph.capacity_j[i] > 0
        },
        "notes": [
            "servers compute their tails for real on this CPU (class x86_cpu_1t), whatever "
            "their class in the scenario",
            f"heads of devices of classes {emulated} are emulated by waiting their class's "
            "head time from the tables; a device of class x86_cpu_1t runs them for real",
            f"{len(ta.target_names)} server processes ({', '.join(ta.target_names)}) share "
            "this machine's cores",
            "each device's link is emulated at its class's mean rate; "
            + (
                "the devices behind an access point share its airtime by their bandwidth weights"
                if shared_access_points
                else "access points are not shared between devices (dedicated links)"
            ),
            (
                "decisions on the slot clock: one joint decision per slot for the devices "
                "whose queue has a task, heads in the order decided, a device free after its "
                "head; latency measured from arrival"
                if clock == "slot"
                else "decisions on arrival: a device asks when a task reaches the head of its "
                "queue and it is free (it waits for an offloaded task's result)"
            ),
            "slotted_sim: the slotted simulator (sim/replay.py) on the recorded arrivals "
            "and decisions, its servers of class x86_cpu_1t, links at their mean rates; "
            + (
                "latency from arrival (the wait for the deciding slot included, as measured)"
                if clock == "slot"
                else "latency from the start of a task's first slot"
            )
            + ", drops counted as misses",
            "cost_model_replay: the cost tables with FIFO queues in continuous time (no "
            "slots, no sharing)",
            *([BATTERY_NOTE] if (ph.capacity_j > 0).any() else []),
        ],
        "rules": {},
    }
    with tempfile.TemporaryDirectory(prefix="edgesplit-demo-") as tmp:
        dirs, parts, tail_x86, prof_index = [], {}, {}, {}
        for a, app in enumerate(ta.app_names):
            net = sc.applications[a].network
            prof = load_network(net)
            idx = [next(k for k, c in enumerate(prof.candidates) if c.name == n)
                   for n in ta.candidate_names[a]]  # fmt: skip
            d = Path(tmp) / app
            partition(str(net), d, profile=prof, candidates=idx, onnx=False, name=app)
            dirs.append(d)
            parts[app] = load_parts(d)
            tprof = prof
            if profile_dir is not None:
                tprof = load_network(Path(profile_dir) / f"{net}.json")
                if [c.name for c in tprof.candidates] != [c.name for c in prof.candidates]:
                    raise ValueError(f"profile_dir: {net}.json has other candidates")
            tail_x86[app] = tprof.split_latency(node_latency(tprof, cat[MEASURED_CLASS]))[1]
            prof_index[app] = dict(zip(ta.candidate_names[a], idx, strict=True))
        sims = _slotted_cores(sc, ta_sim, ph, tail_x86, prof_index)
        procs, ports = [], {}
        try:
            procs = [_spawn(dirs) for _ in ta.target_names]  # they start side by side
            ports = {t: _port(proc) for t, proc in zip(ta.target_names, procs, strict=True)}
            for rule in rules:
                report["rules"][rule] = _run_rule(
                    rule, sched, ta, ph, parts, ports, tasks, tail_x86, prof_index, real_head,
                    sims, per_task, shared_access_points, sc, charge0, clock,
                )  # fmt: skip
                if progress:
                    progress(f"{rule}: {report['rules'][rule]['measured']}")
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    by = report["rules"]
    for key, stat in (("ranking_by_mean_latency", "mean_s"), ("ranking_by_p50", "p50_s")):
        report[key] = {side: sorted(by, key=lambda r, s=side: by[r][s][stat]) for side in SIDES}
    return report


#: the report's sides, per rule: what happened and the two predictions
SIDES = ("measured", "slotted_sim", "cost_model_replay")


def _slotted_cores(
    sc: Any, ta: Any, ph: Any, tail_x86: dict[str, np.ndarray],
    prof_index: dict[str, dict[str, int]],
) -> dict[str, Any]:  # fmt: skip
    """Numpy cores of the scenario for the slotted replay: ``"x86"``, every target's tail
    from the class that really computes it here; ``"as_trained"``, the scenario's own."""
    from edgesplit.sim.core import Core

    tail = np.array(ta.tail_s)
    for a, app in enumerate(ta.app_names):
        for s, name in enumerate(ta.candidate_names[a]):
            tail[a, s, :] = tail_x86[app][prof_index[app][name]]
    x86 = dataclasses.replace(ta, tail_s=tail)
    return {
        "x86": Core(sc, 1, tables=(x86, ph), backend="numpy"),
        "as_trained": Core(sc, 1, tables=(ta, ph), backend="numpy"),
    }


def _run_rule(
    rule: str, sched: Any, ta: Any, ph: Any, parts: dict[str, Partitions],
    ports: dict[str, int], tasks: list[_Task], tail_x86: dict[str, np.ndarray],
    prof_index: dict[str, dict[str, int]], real_head: list[bool], sims: dict[str, Any],
    per_task: bool = False, shared_access_points: bool = True, sc: Any = None,
    charge0: np.ndarray | None = None, clock: str = "slot",
) -> dict[str, Any]:  # fmt: skip
    board: dict[str, dict[str, Any]] = {}
    # each battery device's own battery, shared by its devices (one per application); its
    # slot clock starts with the arrivals' (set below), so its slots are the replay's
    bats: dict[int, Battery] = {}
    if sc is not None and charge0 is not None:
        for i in range(len(ta.device_names)):
            b = device_battery(sc, ta, ph, i, float(charge0[i]), start=0.0)
            if b is not None:
                bats[i] = b
    # one medium per access point and rule, fresh so that no rule inherits another's state
    media = ({name: AccessPoint(name) for name in ta.access_point_names}
             if shared_access_points else None)  # fmt: skip
    recorder = _RecordingScheduler(sched)
    scheduler_decider = SchedulerDecider(recorder, board)
    devices: dict[tuple[int, str], Device] = {}
    for i, dname in enumerate(ta.device_names):
        eps = {}
        for j, tname in enumerate(ta.target_names):
            if not ta.reachable[i, j]:
                continue
            ap = int(ta.ap_of_target[i, j])
            rate = _link_rate(ph, i, ap)
            rtt = float(ph.rtt_s[i, ap])
            if j >= ta.n_aps and ph.backhaul is not None:
                rtt += ph.backhaul.rtt_s
            link = (EmulatedLink(SharedPacer(media[ta.access_point_names[ap]], rate), rtt)
                    if media is not None else EmulatedLink.constant(rate, rtt))  # fmt: skip
            eps[tname] = ServerEndpoint("127.0.0.1", ports[tname], link,
                                        access_point=ta.access_point_names[ap],
                                        initial_mbps=rate)  # fmt: skip
        for a, app in enumerate(ta.app_names):
            head = {n: float(ta.head_s[i, a, s]) for s, n in enumerate(ta.candidate_names[a])}
            decider = (scheduler_decider if rule == "policy"
                       else NeurosurgeonDecider(ta, ph.rtt_s, ph.backhaul, i))  # fmt: skip
            # a device of this CPU's class runs its heads for real; the others wait theirs
            engine = "torch" if real_head[i] else WaitingHead(parts[app], head)
            devices[(i, app)] = Device(dname, parts[app], eps, decider, engine=engine,
                                       app=app, battery=bats.get(i),
                                       home=ta.target_names[int(ta.home[i])])  # fmt: skip
        board[dname] = {"task": None, "queue_length": 0, "backlog_s": 0.0,
                        "link_mbps": dict(devices[(i, ta.app_names[0])].rates_mbps)}  # fmt: skip
        if i in bats:
            board[dname].update(charge_j=float(charge0[i]), energy_debt_j=0.0)
    per_device: dict[int, list[_Task]] = {}
    for t in tasks:
        per_device.setdefault(t.device, []).append(t)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    t0 = time.perf_counter() + 0.5
    for b in bats.values():  # nothing spent yet: slot 0 starts with the arrivals' clock
        b.start = t0
    try:
        if clock == "slot":
            nsd = {i: NeurosurgeonDecider(ta, ph.rtt_s, ph.backhaul, i)
                   for i in range(len(ta.device_names))}  # fmt: skip
            results = _on_slots(rule, ta, devices, per_device, t0, float(sims["x86"].slot_s),
                                scheduler_decider, nsd)  # fmt: skip
        else:
            _on_arrival(rule, ta, devices, per_device, t0, recorder, results, lock)
    finally:  # a failed run leaves no connection open
        for dev in devices.values():
            dev.close()
    results.sort(key=lambda r: (r["arrival"], r["device"]))
    ran = [r for r in results if r["rec"] is not None]  # what ran (the slot clock drops)
    kept = np.array([r["rec"] is not None for r in results], dtype=bool)
    lat = np.array([r["done"] - r["arrival"] if r["rec"] is not None else np.nan
                    for r in results])  # fmt: skip
    deadline = np.array([ta.deadline_s[r["app"]] for r in results])
    pred = np.full(len(results), np.nan)
    slot_s = float(sims["x86"].slot_s)
    pred[kept] = _replay(ran, ta, ph, tail_x86, prof_index, slot_s if clock == "slot" else None)
    # the batteries are compared after the same number of slots: at least until the last
    # result (the runtime) and the last decision (the replay)
    end_slot = int(max(r["done"] for r in ran) // slot_s) + 1 if ran else 0
    c0 = charge0 if bats else None
    from_arrival = clock == "slot"  # the measured latency counts the wait for the slot
    slotted = {k: _slotted(core, results, ta, c0, end_slot, from_arrival)
               for k, core in sims.items()}  # fmt: skip
    measured, cost_model = (_stats(x[kept], deadline[kept]) for x in (lat, pred))
    for side, x in ((measured, lat), (cost_model, pred)):
        # the tasks the runtime dropped are misses for both, as the simulator's drops are
        side["deadline_miss_rate"] = float(
            (np.sum(x[kept] > deadline[kept]) + np.sum(~kept)) / len(results)
        )
    measured["dropped"] = int(np.sum(~kept))
    out = {
        "tasks": len(results),
        "measured": measured,
        "slotted_sim": slotted["x86"][0],
        "cost_model_replay": cost_model,
        "slotted_sim_as_trained": slotted["as_trained"][0],
    }
    # the offloaded tasks alone: where transfers, server compute and sharing are at stake
    # (an emulated head waits the table's time, so local tasks match the tables by design)
    rp = slotted["x86"][1]
    sim_lat = rp.from_arrival_s if from_arrival else rp.latency_s
    off = np.array([r["rec"] is not None and r["rec"].target is not None for r in results])
    sim_off = sim_lat[off & ~rp.dropped]
    out["offloaded"] = {
        "tasks": int(off.sum()),
        "p50_s": {
            "measured": float(np.median(lat[off])) if off.any() else None,
            "slotted_sim": float(np.median(sim_off)) if sim_off.size else None,
            "cost_model_replay": float(np.median(pred[off])) if off.any() else None,
        },
    }
    if bats:
        n_slots = max(end_slot, rp.n_slots)
        out["batteries"] = _batteries(bats, t0 + n_slots * slot_s, rp, results, ta)
        out["batteries_summary"] = _battery_summary(out["batteries"], n_slots)
    ok = ~rp.dropped & kept
    if from_arrival:
        # the runtime decides each task in the slot the replay does (the same queue
        # discipline, slots.slot_schedule), and drops the same tasks
        decided = np.array([r.get("slot", -1) if r["rec"] is not None else -1
                            for r in results])  # fmt: skip
        out["decision_slots_agree"] = bool(
            np.array_equal(decided[ok], rp.slot[ok]) and np.array_equal(~kept, rp.dropped)
        )
        # with the common wait for the deciding slot taken out of both: what the decision
        # set going (the head's wait behind the device's backlog, head, transfer, server)
        arr = np.array([r["arrival"] for r in results])
        m_dec = lat - (decided * slot_s - arr)
        s_dec = sim_lat - (rp.slot * slot_s - arr)
        out["from_decision"] = {
            "p50_s": {"measured": float(np.median(m_dec[ok])),
                      "slotted_sim": float(np.median(s_dec[ok]))},
            "median_abs_rel_error": float(np.median(np.abs(s_dec[ok] / m_dec[ok] - 1.0))),
        }  # fmt: skip
    if per_task:
        out["tasks_detail"] = [_detail(ta, r, k, rp, lat, pred, sim_lat) for k, r in
                               enumerate(results)]  # fmt: skip
    return {
        **out,
        # each prediction's median against the measured one: predicted / measured - 1
        "p50_rel_error": {
            k: out[k]["p50_s"] / out["measured"]["p50_s"] - 1.0
            for k in ("slotted_sim", "cost_model_replay")
        },
        # task by task (as validate's figure): the median of |predicted / measured - 1|
        "median_abs_rel_error": {
            "slotted_sim": float(np.median(np.abs(sim_lat[ok] / lat[ok] - 1.0))),
            "cost_model_replay": float(np.median(np.abs(pred[kept] / lat[kept] - 1.0))),
        },
        "sources": sorted({r["rec"].source for r in ran}),
        "splits": _count(f"{ta.app_names[r['app']]}:{r['rec'].candidate}" for r in ran),
        "targets": _count(str(r["rec"].target) for r in ran),
    }


def _detail(
    ta: Any, r: dict[str, Any], k: int, rp: Any, lat: np.ndarray, pred: np.ndarray,
    sim_lat: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    """One task of the report's ``tasks_detail``: its decision, and its latency and parts
    on each side (``sim_lat``: the slotted simulator's latency as the report compares it)."""
    base = {"device": ta.device_names[r["device"]], "app": ta.app_names[r["app"]],
            "arrival_s": r["arrival"], "dropped": r["rec"] is None}  # fmt: skip
    if r["rec"] is None:
        return base
    rec, sim_ok = r["rec"], not rp.dropped[k]
    return {
        **base, "candidate": rec.candidate, "target": rec.target,
        "weights": list(r["weights"]), "requested_candidate": rec.requested_candidate,
        "forced_offload": rec.forced_offload, "charge_j": rec.charge_j,
        "energy_j": rec.energy_j,
        "slotted_sim_charge_j": float(rp.charge_j[k]) if sim_ok else None,
        "slotted_sim_energy_j": float(rp.energy_j[k]) if sim_ok else None,
        "measured_s": float(lat[k]), "cost_model_replay_s": float(pred[k]),
        "slotted_sim_s": float(sim_lat[k]) if sim_ok else None,
        "slotted_sim_slot_wait_s": float(rp.slot_wait_s[k]) if sim_ok else None,
        "measured_parts_s": {"device_queue_s": r["start"] - r["arrival"],
                             **{p: getattr(rec, p) for p in
                                ("decide_s", "head_s", "transfer_s", "server_wait_s",
                                 "tail_s")}},
        "slotted_sim_parts_s": {p: float(getattr(rp, p)[k]) for p in
                                ("head_s", "transfer_s", "rtt_s", "wait_s", "tail_s")},
    }  # fmt: skip


def _on_arrival(
    rule: str, ta: Any, devices: dict[tuple[int, str], Device],
    per_device: dict[int, list[_Task]], t0: float, recorder: _RecordingScheduler,
    results: list[dict[str, Any]], lock: threading.Lock,
) -> None:  # fmt: skip
    """The arrival clock: a thread per device runs its tasks one after the other, each
    asking for its decision when it starts (and waiting for its result). A task that fails
    stops its device's thread and, once every thread has ended, the run, with that error."""
    errors: list[BaseException] = []

    def worker(i: int, mine: list[_Task]) -> None:
        try:
            run(i, mine)
        except BaseException as e:  # raised after the threads end
            errors.append(e)

    def run(i: int, mine: list[_Task]) -> None:
        for n, task in enumerate(mine):
            if errors:  # another device failed: the run is over
                return
            due = t0 + task.arrival
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            start = time.perf_counter()
            queued = sum(1 for x in mine[n:] if t0 + x.arrival <= start)
            app = ta.app_names[task.app]
            rec = devices[(i, app)].run_task(
                waited_s=start - due, queue_length=min(max(queued, 1), ta.queue_capacity)
            )
            done = time.perf_counter()
            # this device's last request was this task's (one thread per device)
            weights = recorder.weights.get(ta.device_names[i], (1.0, 1.0))
            if rule != "policy":
                weights = (1.0, 1.0)
            with lock:
                results.append({"device": i, "app": task.app, "arrival": task.arrival,
                                "start": start - t0, "done": done - t0, "rec": rec,
                                "weights": weights})  # fmt: skip

    threads = [threading.Thread(target=worker, args=(i, m)) for i, m in per_device.items()]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]


def _on_slots(
    rule: str, ta: Any, devices: dict[tuple[int, str], Device],
    per_device: dict[int, list[_Task]], t0: float, slot_s: float,
    scheduler_decider: SchedulerDecider, neurosurgeon: dict[int, NeurosurgeonDecider],
) -> list[dict[str, Any]]:  # fmt: skip
    """The slot clock (:mod:`edgesplit.runtime.slots`): at each slot boundary one decision
    for every device whose queue has a task (one joint request to the scheduler under the
    policy; Neurosurgeon task by task), then each device's heads in the order decided on
    its :class:`~edgesplit.runtime.slots.HeadLine`, each offload on a thread of its own.
    Dropped tasks (a full queue) are returned with ``rec`` None. Once a head or an offload
    has failed no further slot is decided; the first error is raised when the heads
    already decided and the offloads in flight have ended."""
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    horizon = max(int(ta.horizon), 1)  # the policy's episode, in slots
    plan: dict[int, list[tuple[int, _Task, int]]] = {}
    for i, mine in per_device.items():
        slots, dropped, queued = slot_schedule([x.arrival for x in mine], slot_s,
                                               int(ta.queue_capacity))  # fmt: skip
        for task, n, drop, q in zip(mine, slots, dropped, queued, strict=True):
            if drop:
                results.append({"device": i, "app": task.app, "arrival": task.arrival,
                                "rec": None, "dropped": True, "weights": (1.0, 1.0)})  # fmt: skip
            else:
                plan.setdefault(int(n), []).append((i, task, int(q)))
    srv_backlog = dict.fromkeys(ta.target_names, 0.0)  # the latest each server reported
    offloads: list[threading.Thread] = []
    errors: list[BaseException] = []

    def finish(dev: Device, p: Any, job: dict[str, Any]) -> None:
        try:
            rec = dev.finish_task(p)
        except BaseException as e:  # raised after the run
            errors.append(e)
            return
        done = time.perf_counter()
        with lock:
            if rec.target is not None:
                srv_backlog[rec.target] = rec.server_backlog_s
            results.append({**job, "done": done - t0, "rec": rec})

    def head(job: dict[str, Any]) -> None:
        dev = job.pop("dev")
        p = dev.start_task(decision=job.pop("decision"), entry=job.pop("entry"),
                           decide_s=job.pop("decide_s"))  # fmt: skip
        job["start"] = p.t1 - t0
        if p.target is None or p.candidate.kind == "output":
            finish(dev, p, job)  # nothing to send
            return
        th = threading.Thread(target=finish, args=(dev, p, job))
        with lock:
            offloads.append(th)
        th.start()

    lines = {i: HeadLine(head) for i in per_device}
    last_dev: dict[int, Device] = {}  # per device, the application it last decided
    try:
        for n in sorted(plan):
            if errors or any(line.errors for line in lines.values()):
                break  # a head or an offload failed: decide nothing more, raise it below
            due = t0 + n * slot_s
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            entries, who = {}, {}
            for i, task, q in plan[n]:
                dev = devices[(i, ta.app_names[task.app])]
                pend = math.floor(task.arrival / slot_s) + 1  # the slot it is pending from
                entries[dev.name] = dev.snapshot_entry((n - pend) * slot_s, q,
                                                       lines[i].backlog_s())  # fmt: skip
                who[dev.name] = (i, task, dev)
                last_dev[i] = dev  # the device's latest rates are this application's
            tq = time.perf_counter()
            with lock:
                backlog = dict(srv_backlog)
            if rule == "policy":
                # the devices with nothing to decide, as they are at this slot (a joint
                # policy reads them too): backlog, the rates they measured, their charge
                idle = {}
                for i, dname in enumerate(ta.device_names):
                    if dname not in entries:
                        dev = last_dev.get(i) or devices[(i, ta.app_names[0])]
                        line = lines.get(i)
                        e = dev.snapshot_entry(0.0, 1, line.backlog_s() if line else 0.0)
                        idle[dname] = e
                # the time feature: the slot's index in an episode of the policy's horizon,
                # wrapped as consecutive episodes (training never sees the horizon itself)
                decisions = scheduler_decider.decide_joint(entries, backlog, n % horizon, idle)
            else:
                decisions = {name: neurosurgeon[i](dev, entries[name])
                             for name, (i, _, dev) in who.items()}  # fmt: skip
            decide_s = time.perf_counter() - tq
            for name, (i, task, dev) in who.items():
                d = decisions[name]
                a = task.app
                weights = ((float(d["bandwidth_weight"]), float(d["compute_weight"]))
                           if rule == "policy" else (1.0, 1.0))  # fmt: skip
                s = ta.candidate_names[a].index(d["split"])
                lines[i].put({"device": i, "app": a, "arrival": task.arrival, "slot": n,
                              "weights": weights, "dev": dev, "decision": d,
                              "entry": entries[name], "decide_s": decide_s},
                             float(ta.head_s[i, a, s]))  # fmt: skip
    finally:
        for line in lines.values():
            try:
                line.close()
            except BaseException as e:  # raised below
                errors.append(e)
        for th in list(offloads):
            th.join()
    if errors:
        raise errors[0]
    return results


def _slotted(
    core: Any, results: list[dict[str, Any]], ta: Any, charge0: np.ndarray | None = None,
    min_slots: int = 0, from_arrival: bool = False,
) -> tuple[dict[str, float], Any]:  # fmt: skip
    """The slotted simulator's figures for the recorded arrivals and decisions (each task's
    requested split: the simulator gates a head its own battery cannot pay for), and its
    :class:`~edgesplit.sim.replay.Replay` (batteries from ``charge0``, at least
    ``min_slots`` slots). Its figures are of the simulator's latency, or with
    ``from_arrival`` of that plus the wait for the task's first slot. A task the runtime
    dropped (``rec`` None) gets a placeholder decision: the replay drops it too (the same
    queue discipline, :func:`~edgesplit.runtime.slots.slot_schedule`)."""
    from edgesplit.sim.replay import replay
    from edgesplit.sim.schema import Decisions

    split, target = [], []
    for r in results:
        rec, i, a = r["rec"], r["device"], r["app"]
        if rec is None:  # dropped by the runtime's slot clock, and so by the replay's queue
            # (the same discipline); any valid decision: all-local at home
            split.append(int(ta.n_valid[a]) - 1)
            target.append(int(ta.home[i]))
            continue
        split.append(ta.candidate_names[a].index(rec.requested_candidate or rec.candidate))
        # all-local: the simulator ignores the target; the home edge is always reachable
        target.append(int(ta.home[i]) if rec.target is None else ta.target_names.index(rec.target))
    w = np.array([r["weights"] for r in results], dtype=float).reshape(-1, 2)
    dec = Decisions(np.array(split), np.array(target), w[:, 0], w[:, 1])
    rp = replay(core, [r["device"] for r in results], [r["app"] for r in results],
                [r["arrival"] for r in results], dec, charge_j=charge0,
                min_slots=min_slots)  # fmt: skip
    ok = ~rp.dropped
    deadline = np.array([ta.deadline_s[r["app"]] for r in results])
    lat = rp.from_arrival_s if from_arrival else rp.latency_s
    out = _stats(lat[ok], deadline[ok])
    miss = (lat[ok] > deadline[ok]).sum() if from_arrival else rp.deadline_miss.sum()
    out["deadline_miss_rate"] = float((miss + rp.dropped.sum()) / len(rp.dropped))
    out["dropped"] = int(rp.dropped.sum())
    out["p50_from_arrival_s"] = float(np.percentile(rp.from_arrival_s[ok], 50))
    out["mean_from_arrival_s"] = float(rp.from_arrival_s[ok].mean())
    return out, rp


def _batteries(
    bats: dict[int, Battery], end: float, rp: Any, results: list[dict[str, Any]], ta: Any
) -> dict[str, dict[str, Any]]:
    """Per battery device: its state at clock reading ``end`` (measured) beside the slotted
    replay's after its last slot (the same slot when ``end`` is that slot's end)."""
    out = {}
    for i, b in bats.items():
        mine = [k for k, r in enumerate(results) if r["device"] == i]
        ok = [k for k in mine if not rp.dropped[k]]
        ran = [k for k in mine if results[k]["rec"] is not None]  # the slot clock drops
        out[ta.device_names[i]] = {
            "measured": {
                **b.state(end),
                "tasks": len(ran),
            },
            "slotted_sim": {
                "charge_j": float(rp.final_charge_j[i]),
                "energy_debt_j": float(rp.final_debt_j[i]),
                "slot": int(rp.n_slots),
                "spent_j": float(np.sum(rp.energy_j[ok])),
                "forced_offloads": int(np.sum(rp.infeasible[ok])),
                "tasks": len(ok),
            },
        }
    return out


def _battery_summary(bats: dict[str, dict[str, Any]], n_slots: int) -> dict[str, Any]:
    """The battery devices together, per side: mean final charge, total energy spent, forced
    offloads."""
    out: dict[str, Any] = {"slots": n_slots}
    for side in ("measured", "slotted_sim"):
        xs = [d[side] for d in bats.values()]
        out[side] = {
            "mean_charge_j": float(np.mean([x["charge_j"] for x in xs])),
            "mean_energy_debt_j": float(np.mean([x["energy_debt_j"] for x in xs])),
            "spent_j": float(sum(x["spent_j"] for x in xs)),
            "forced_offloads": int(sum(x["forced_offloads"] for x in xs)),
        }
    return out


def _link_rate(ph: Any, i: int, ap: int) -> float:
    for lc, n_idx, m_idx in ph.link_pairs.values():
        if np.any((n_idx == i) & (m_idx == ap)):
            return float(lc.mean_mbps)
    raise ValueError(f"device {i} has no link to access point {ap}")


def _replay(
    results: list[dict[str, Any]], ta: Any, ph: Any, tail_x86: dict[str, np.ndarray],
    prof_index: dict[str, dict[str, int]], slot_s: float | None = None,
) -> np.ndarray:  # fmt: skip
    """Per-task latency from the cost tables: an event replay of the recorded arrivals and
    decisions with first-come first-served queues on each device and on each server, in
    the runtime's order of events: on the arrival clock (``slot_s`` None) a device starts
    a task on its arrival and waits for its result before the next; on the slot clock
    (``slot_s``: each result's ``slot`` is the one that decided it) a head starts at its
    slot's boundary and the device is free for the next once the head ends."""
    by_dev: dict[int, list[int]] = {}
    for k in sorted(range(len(results)), key=lambda k: results[k]["arrival"]):
        by_dev.setdefault(results[k]["device"], []).append(k)
    nxt = dict.fromkeys(by_dev, 0)
    out = np.zeros(len(results))
    srv_free: dict[str, float] = {}
    events: list[tuple[float, int, str, int]] = []  # (time, seq, kind, task)
    seq = 0

    def push(t: float, kind: str, k: int) -> None:
        nonlocal seq
        heapq.heappush(events, (t, seq, kind, k))
        seq += 1

    def next_task(i: int, free: float) -> None:
        if nxt[i] < len(by_dev[i]):
            k = by_dev[i][nxt[i]]
            nxt[i] += 1
            ready = results[k]["arrival"] if slot_s is None else results[k]["slot"] * slot_s
            push(max(ready, free), "start", k)

    for i in by_dev:
        next_task(i, 0.0)
    while events:
        t, _, kind, k = heapq.heappop(events)
        r = results[k]
        rec, i, a = r["rec"], r["device"], r["app"]
        app = ta.app_names[a]
        s = ta.candidate_names[a].index(rec.candidate)
        if kind == "start":
            head = float(ta.head_s[i, a, s])
            if rec.target is None:
                out[k] = t + head - r["arrival"]
                next_task(i, t + head)
                continue
            j = ta.target_names.index(rec.target)
            ap = int(ta.ap_of_target[i, j])
            tx = float(ta.bytes_[a, s]) * 8e-6 / _link_rate(ph, i, ap) + float(ph.rtt_s[i, ap])
            if j >= ta.n_aps and ph.backhaul is not None:
                tx += ph.backhaul.rtt_s
            push(t + head + tx, "server", k)
            if slot_s is not None:  # free after the head: the offload goes on
                next_task(i, t + head)
        else:
            tail = float(tail_x86[app][prof_index[app][rec.candidate]])
            begin = max(t, srv_free.get(rec.target, 0.0))
            srv_free[rec.target] = begin + tail
            out[k] = begin + tail - r["arrival"]
            if slot_s is None:  # the device waited for the result
                next_task(i, begin + tail)
    return out


def _stats(lat: np.ndarray, deadline: np.ndarray) -> dict[str, float]:
    return {
        "p50_s": float(np.percentile(lat, 50)),
        "p90_s": float(np.percentile(lat, 90)),
        "p99_s": float(np.percentile(lat, 99)),
        "mean_s": float(lat.mean()),
        "deadline_miss_rate": float(np.mean(lat > deadline)),
    }


def format_report(rep: dict[str, Any]) -> str:
    """The demo's report as text: per rule, measured beside the slotted simulator and the
    cost-model replay."""
    clock = rep.get("clock", "arrival")  # reports from before the slot clock
    lines = [f"{rep['scenario']}: {rep['tasks']} tasks in {rep['duration_s']} s "
             f"(seed {rep['seed']}, decisions on the {clock} clock)"]  # fmt: skip
    lines += [f"  note: {note}" for note in rep["notes"]]
    head = f"{'rule':>13} {'side':>18} {'p50 ms':>7} {'p90 ms':>7} {'mean ms':>8} {'misses':>7}"
    lines.append(head)
    for rule, r in rep["rules"].items():
        for side in SIDES:
            x = r[side]
            lines.append(
                f"{rule:>13} {side:>18} {x['p50_s'] * 1e3:7.0f} {x['p90_s'] * 1e3:7.0f} "
                f"{x['mean_s'] * 1e3:8.0f} {x['deadline_miss_rate']:7.1%}"
            )
        err = ", ".join(f"{k} {v:+.1%}" for k, v in r["p50_rel_error"].items())
        lines.append(f"{'':>13} p50 against measured: {err}; drops, measured "
                     f"{r['measured'].get('dropped', 0)} and simulator "
                     f"{r['slotted_sim']['dropped']}; targets {r['targets']}")  # fmt: skip
        err = ", ".join(f"{k} {v:.1%}" for k, v in r["median_abs_rel_error"].items())
        lines.append(f"{'':>13} task by task, median |predicted / measured - 1|: {err}")
        fd = r.get("from_decision")
        if fd:
            lines.append(
                f"{'':>13} from the deciding slot on: p50 ms measured "
                f"{fd['p50_s']['measured'] * 1e3:.0f}, slotted_sim "
                f"{fd['p50_s']['slotted_sim'] * 1e3:.0f}; task by task "
                f"{fd['median_abs_rel_error']:.1%}; decision slots agree: "
                f"{r['decision_slots_agree']}"
            )
        o = r["offloaded"]
        p50 = ", ".join(f"{k} {'-' if v is None else f'{v * 1e3:.0f}'}"
                        for k, v in o["p50_s"].items())  # fmt: skip
        lines.append(f"{'':>13} the {o['tasks']} offloaded tasks' p50 ms: {p50}")
        bs = r.get("batteries_summary")
        if bs:
            for side in ("measured", "slotted_sim"):
                x = bs[side]
                lines.append(
                    f"{'':>13} batteries ({side}, after {bs['slots']} slots): mean charge "
                    f"{x['mean_charge_j']:.1f} J, mean deficit {x['mean_energy_debt_j']:.1f} J, "
                    f"spent {x['spent_j']:.1f} J, forced offloads {x['forced_offloads']}"
                )
    for key in ("ranking_by_mean_latency", "ranking_by_p50"):
        rank = ", ".join(f"{side} {order}" for side, order in rep[key].items())
        lines.append(f"{key.replace('_', ' ')}: {rank}")
    return "\n".join(lines)


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))
