"""Build a scenario's static cost tables from the profiled cost models.

This is the only place where :mod:`edgesplit.sim` reads :mod:`edgesplit.cost_models`:
profiles give per-node latency (measured, or roofline-modelled for catalogue classes) and the
bytes crossing each split; the candidates are compressed per network against the device
classes that run its head in the scenario; the result is a :class:`~edgesplit.sim.encoding.Tables`
of plain arrays, plus the physical constants the simulator needs (power, links, arrivals).

**Per-candidate classes.** A device or server whose class an application's profile measures
per candidate (``candidate_measurements``, e.g. ``x86_cpu_1t_ort``: heads and tails timed
whole on the runtime's engine) takes that application's head ``H[k]`` and tail ``T[k]``
straight from the class's medians
(:meth:`~edgesplit.cost_models.network.NetworkProfile.candidate_latency`); nothing is summed
or derived. Which candidates are kept is still the compression rule, with such a class
standing as its catalogue ``base`` class (``x86_cpu_1t``: the rule ``profile_candidates``
chose its candidates by), and every kept candidate must be one the class measured, or
:func:`build` fails naming the application, the class and the candidate. Bytes, deadlines
and the powers (the ``base`` class's) do not depend on it; a head's modelled energy, ``p_active_w
x H[k]``, follows the measured ``H[k]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgesplit.cost_models.candidates import keep_candidates
from edgesplit.cost_models.devices import (
    DeviceCatalogue,
    DeviceClass,
    DeviceError,
    candidate_rule_class,
    load_devices,
    node_latency,
)
from edgesplit.cost_models.links import LinkCatalogue, LinkClass, load_links
from edgesplit.cost_models.network import NetworkProfile, load_network

from .encoding import Tables
from .scenario import WIRE_BYTES, BurstSpec, Scenario, ScenarioError

__all__ = ["Physics", "build"]


@dataclass
class Physics:
    """Per-device and per-link constants the simulator needs beside the tables."""

    p_active_w: np.ndarray  # [N] device compute power while running the head
    p_tx_w: np.ndarray  # [N] device radio power while transmitting
    rtt_s: np.ndarray  # [N, M] round-trip time of each device's link to each access point
    link_pairs: dict[str, tuple[LinkClass, np.ndarray, np.ndarray]]  # class -> (n idx, m idx)
    backhaul: LinkClass | None
    arrival_mean: np.ndarray  # [N, 2] mean arrivals per slot, between bursts and in one
    phase_on: np.ndarray  # [N] probability per slot that a burst starts (0: never)
    phase_off: np.ndarray  # [N] probability per slot that a burst ends
    phase_start: np.ndarray  # [N] probability that an episode starts in a burst (the
    # stationary law of the per-slot chain)
    app_cdf: np.ndarray  # [N, A] cumulative application mix
    # batteries (sim/scenario.py's BatterySpec); devices without one: capacity 0
    capacity_j: np.ndarray  # [N] battery capacity (0: mains-powered)
    charge0_j: np.ndarray  # [N, 2] initial charge drawn uniformly in [low, high] at reset
    harvest_j: np.ndarray  # [N] energy harvested per slot (harvest_w * slot_s)
    budget_j: np.ndarray  # [N] energy budget per slot (budget_w * slot_s; inf: no budget)


def _stationary_on(b: BurstSpec, slot_s: float) -> float:
    """Probability that the per-slot on/off chain is on, at stationarity."""
    p_on, p_off = -np.expm1(-slot_s / b.mean_off_s), -np.expm1(-slot_s / b.mean_on_s)
    return float(p_on / (p_on + p_off))


def _per_candidate(
    sc: Scenario,
    a: int,
    prof: NetworkProfile,
    devices: DeviceCatalogue,
    used: list[DeviceClass],
) -> dict[str, DeviceClass]:
    """The classes among ``used`` that application ``a``'s profile measures per candidate,
    checked: each must be a catalogue class of kind ``per_candidate`` (it names the base class
    that chooses the kept candidates), and a ``per_candidate`` class must be measured."""
    app = sc.applications[a]
    where = f"scenario '{sc.name}': field 'applications[{a}].network' = {app.network!r}"
    out: dict[str, DeviceClass] = {}
    for dc in used:
        if dc.name in prof.candidate_measurements:
            if dc.kind != "per_candidate":
                raise ScenarioError(
                    f"{where}: profile {prof.name!r} measures class {dc.name!r} per candidate, "
                    f"but the device catalogue ({devices.path}) has it as kind {dc.kind!r}: "
                    "give it a catalogue entry of kind 'per_candidate' naming its 'base' "
                    "class (docs/devices.md)"
                )
            out[dc.name] = dc
        elif dc.kind == "per_candidate":
            raise ScenarioError(
                f"{where}: application {app.name!r} runs on class {dc.name!r}, measured per "
                f"candidate, but profile {prof.name!r} has no 'candidate_measurements."
                f"{dc.name}' (it has {sorted(prof.candidate_measurements)}); measure it with "
                f"`python -m edgesplit.cost_models.profile_candidates {prof.name} --engine "
                f"ENGINE --device-class {dc.name} --out FILE` and name FILE as the network"
            )
    return out


def _measured_rows(
    sc: Scenario, a: int, prof: NetworkProfile, dc: DeviceClass, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Head and tail seconds of the kept candidates ``keep`` as per-candidate class ``dc``
    measured them; a kept candidate it did not measure is an error naming the application,
    the class and the candidate."""
    lat = prof.candidate_latency(dc.name)
    pos = {k: j for j, k in enumerate(lat.indices)}
    missing = [int(k) for k in keep if int(k) not in pos]
    if missing:
        app, k = sc.applications[a], missing[0]
        raise ScenarioError(
            f"scenario '{sc.name}': field 'applications[{a}].network' = {app.network!r}: "
            f"application {app.name!r} keeps candidate {k} ({prof.candidates[k].name!r}) "
            f"but class {dc.name!r} did not measure it (profile field 'candidate_measurements."
            f"{dc.name}.candidates' = {list(lat.indices)}; the scenario keeps "
            f"{[int(i) for i in keep]}, missing {missing}); measure those with "
            f"`python -m edgesplit.cost_models.profile_candidates {prof.name} --engine "
            f"{lat.engine} --device-class {dc.name} --candidates "
            f"{','.join(str(int(i)) for i in keep)} --profile {prof.path or prof.name} "
            "--out FILE`"
        )
    rows = np.array([pos[int(k)] for k in keep], dtype=np.intp)
    return np.asarray(lat.head_s)[rows], np.asarray(lat.tail_s)[rows]


def build(
    scenario: Scenario,
    devices: DeviceCatalogue | None = None,
    links: LinkCatalogue | None = None,
) -> tuple[Tables, Physics]:
    """Cost tables and physical constants for ``scenario``.

    Raises :class:`~edgesplit.sim.scenario.ScenarioError` when the scenario names a network,
    device class or link class that the catalogues do not have, or when an application's
    profile cannot serve a class it runs on: a measured class it lacks, a per-candidate class
    it does not measure, or a kept candidate that class did not measure (the message names
    the application, the class and the candidate; see the module docstring).
    """
    sc = scenario
    devices = devices or load_devices(sc.device_catalogue)
    links = links or load_links(sc.link_catalogue)
    if sc.trace_links:  # the scenario's own trace-driven classes join the catalogue's
        for t in sc.trace_links:
            if t.name in links:
                raise ScenarioError(
                    f"scenario '{sc.name}': field 'trace_links.{t.name}' = {t.name!r}: already "
                    f"a class of the link catalogue {links.path} (pick another name)"
                )
        links = links.with_classes(sc.trace_link_classes())

    def dev_class(name: str, field: str):
        if name not in devices:
            raise ScenarioError(
                f"scenario '{sc.name}': field '{field}' = {name!r}: unknown device class "
                f"(catalogue: {list(devices.names())})"
            )
        return devices[name]

    def link_class(name: str, field: str) -> LinkClass:
        if name not in links:
            raise ScenarioError(
                f"scenario '{sc.name}': field '{field}' = {name!r}: unknown link class "
                f"(catalogue: {list(links.names())})"
            )
        return links[name]

    n_dev, n_app, m_ap = sc.n_devices, len(sc.applications), sc.n_servers
    dclasses = [
        dev_class(d.device_class, f"devices[{i}].device_class") for i, d in enumerate(sc.devices)
    ]
    tclasses = [
        dev_class(s.device_class, f"servers[{i}].device_class") for i, s in enumerate(sc.servers)
    ]
    if sc.cloud is not None:
        tclasses.append(dev_class(sc.cloud.device_class, "cloud.device_class"))
    n_tgt = len(tclasses)
    cap = sc.costs.max_candidates
    wire = WIRE_BYTES[sc.costs.wire_dtype]

    head = np.zeros((n_dev, n_app, cap))
    tail = np.zeros((n_app, cap, n_tgt))
    byt = np.zeros((n_app, cap))
    valid = np.zeros((n_app, cap), dtype=bool)
    n_valid = np.zeros(n_app, dtype=np.int64)
    cand_names: list[list[str]] = []
    uniq_dev = sorted({c.name for c in dclasses})
    for a, app in enumerate(sc.applications):
        try:
            prof = load_network(app.network)
        except (OSError, ValueError) as e:
            raise ScenarioError(
                f"scenario '{sc.name}': field 'applications[{a}].network' = {app.network!r}: {e}"
            ) from e
        per_cand = _per_candidate(sc, a, prof, devices, [*dclasses, *tclasses])
        # a per-candidate class keeps the candidates its base class keeps
        rule = sorted({candidate_rule_class(devices, c).name for c in uniq_dev})
        try:
            kept = keep_candidates(
                prof, [devices[c] for c in rule], wire, sc.costs.input_compression, cap
            )
        except DeviceError as e:
            raise ScenarioError(
                f"scenario '{sc.name}': field 'applications[{a}].network' = "
                f"{app.network!r}: candidates are kept against classes {rule}: {e}"
            ) from e
        keep, heads, b_all = kept.indices, kept.head_s, kept.bytes_
        k = len(keep)
        n_valid[a] = k
        valid[a, :k] = True
        cand_names.append([prof.candidates[i].name for i in keep])
        measured = {c: _measured_rows(sc, a, prof, dc, keep) for c, dc in per_cand.items()}
        for n, dc in enumerate(dclasses):
            head[n, a, :k] = measured[dc.name][0] if dc.name in measured else heads[dc.name][keep]
        for jt, tc in enumerate(tclasses):
            if tc.name in measured:
                tail[a, :k, jt] = measured[tc.name][1]
            else:
                try:
                    tail[a, :k, jt] = prof.split_latency(node_latency(prof, tc))[1][keep]
                except DeviceError as e:
                    raise ScenarioError(
                        f"scenario '{sc.name}': field 'applications[{a}].network' = "
                        f"{app.network!r}: tails on class {tc.name!r}: {e}"
                    ) from e
        b = b_all[keep].copy()
        b[k - 1] = 0.0  # all-local: nothing travels (the application runs on the device)
        byt[a, :k] = b

    snames = [s.name for s in sc.servers]
    reach = np.zeros((n_dev, n_tgt), dtype=bool)
    home = np.zeros(n_dev, dtype=np.int64)
    ap_of = np.zeros((n_dev, n_tgt), dtype=np.int64)
    rtt = np.zeros((n_dev, m_ap))
    pairs: dict[str, tuple[list[int], list[int]]] = {}
    lc_by_name: dict[str, LinkClass] = {}
    for n, d in enumerate(sc.devices):
        home[n] = snames.index(d.home)
        for m, sname in enumerate(snames):
            if sname in d.links:
                lc = link_class(d.links[sname], f"devices[{n}].links.{sname}")
                lc_by_name[lc.name] = lc
                pairs.setdefault(lc.name, ([], []))
                pairs[lc.name][0].append(n)
                pairs[lc.name][1].append(m)
                rtt[n, m] = lc.rtt_s
                reach[n, m] = True
                ap_of[n, m] = m
        if sc.cloud is not None:
            reach[n, m_ap] = True
            ap_of[n, m_ap] = home[n]
    backhaul = link_class(sc.cloud.backhaul, "cloud.backhaul") if sc.cloud else None

    deadlines = np.array([a.deadline_s for a in sc.applications])
    used = [lc_by_name[k] for k in pairs]
    rate_scale = float(np.mean([lc.mean_mbps for lc in used])) if used else 10.0
    tables = Tables(
        device_names=[d.name for d in sc.devices],
        app_names=[a.name for a in sc.applications],
        target_names=list(sc.target_names),
        access_point_names=snames,
        candidate_names=cand_names,
        weight_levels=np.array(sc.weight_levels),
        head_s=head,
        tail_s=tail,
        bytes_=byt,
        valid=valid,
        n_valid=n_valid,
        deadline_s=deadlines,
        reachable=reach,
        home=home,
        ap_of_target=ap_of,
        queue_capacity=sc.queue_capacity,
        horizon=sc.horizon,
        latency_scale_s=float(deadlines.max()),
        bytes_scale=float(byt.max()) if byt.max() > 0 else 1.0,
        rate_scale_mbps=rate_scale,
        battery_j=np.array(
            [0.0 if d.battery is None else d.battery.capacity_j for d in sc.devices]
        ),
        p_active_w=np.array([c.p_active_w for c in dclasses]),
        energy_scale_j=sc.reward.energy_ref_j,
    )
    bats = [d.battery for d in sc.devices]
    app_idx = {a.name: i for i, a in enumerate(sc.applications)}
    mix = np.zeros((n_dev, n_app))
    for n, d in enumerate(sc.devices):
        for an, w in d.apps.items():
            mix[n, app_idx[an]] = w
    mix /= mix.sum(1, keepdims=True)
    physics = Physics(
        p_active_w=np.array([c.p_active_w for c in dclasses]),
        p_tx_w=np.array([c.p_tx_w for c in dclasses]),
        rtt_s=rtt,
        link_pairs={k: (lc_by_name[k], np.array(v[0]), np.array(v[1])) for k, v in pairs.items()},
        backhaul=backhaul,
        arrival_mean=np.array(
            [
                [d.arrival_rate_hz, d.arrival_rate_hz if d.bursts is None else d.bursts.on_rate_hz]
                for d in sc.devices
            ]
        )
        * sc.slot_s,
        # exponential sojourns, checked once per slot: P(switch in a slot) = 1 - exp(-dt/mean)
        phase_on=np.array(
            [
                0.0 if d.bursts is None else -np.expm1(-sc.slot_s / d.bursts.mean_off_s)
                for d in sc.devices
            ]
        ),
        phase_off=np.array(
            [
                0.0 if d.bursts is None else -np.expm1(-sc.slot_s / d.bursts.mean_on_s)
                for d in sc.devices
            ]
        ),
        # the stationary law of the per-slot chain: p_on / (p_on + p_off)
        phase_start=np.array(
            [0.0 if d.bursts is None else _stationary_on(d.bursts, sc.slot_s) for d in sc.devices]
        ),
        app_cdf=np.cumsum(mix, axis=1),
        capacity_j=tables.battery_j.copy(),
        charge0_j=np.array([[0.0, 0.0] if b is None else b.initial_charge_j for b in bats]),
        harvest_j=np.array([0.0 if b is None else b.harvest_w * sc.slot_s for b in bats]),
        budget_j=np.array(
            [np.inf if b is None or b.budget_w is None else b.budget_w * sc.slot_s for b in bats]
        ),
    )
    return tables, physics
