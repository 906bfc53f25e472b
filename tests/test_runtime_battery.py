"""The runtime device's battery (``runtime/battery.py``) against the simulator's own code.

Its energy for given measured phase times and its slot update equal the simulator's
(``Core.resolve_snapshot``, ``Core.step`` on both backends, ``Core.drain_batteries``); its
head gate is the simulator's mask; a device driven by a policy trained on ``battery``
reports a valid ``charge_j`` in every request (in process and over HTTP) and an empty battery
never runs a head the simulator masks; bad parameters name the field and the value.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import gymnasium as gym
import numpy as np
import pytest
from runtime_nets import partition_kept

from edgesplit.agents.export import export_policy
from edgesplit.agents.registry import get_agent
from edgesplit.envs import ENV_ID
from edgesplit.runtime.battery import Battery
from edgesplit.runtime.demo import WaitingHead, device_battery
from edgesplit.runtime.device import Device, FixedDecider, SchedulerDecider, ServerEndpoint
from edgesplit.runtime.link import EmulatedLink
from edgesplit.runtime.parts import load_parts
from edgesplit.runtime.server import TailServer
from edgesplit.scheduler import Scheduler, load_policy
from edgesplit.scheduler.server import BackgroundServer, create_app
from edgesplit.sim.core import Core
from edgesplit.sim.replay import replay
from edgesplit.sim.scenario import load_scenario
from edgesplit.sim.schema import Decisions
from edgesplit.sim.tables import build

SC = load_scenario("battery")


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


# -- the accounting against the simulator's code --------------------------------------------
def test_energy_of_measured_phases_and_the_slot_update_equal_the_simulators() -> None:
    # measured head and air times, put into the simulator's tables and links so that its
    # own code (resolve_snapshot, drain_batteries) computes the energy and the update
    ta, ph = build(SC)
    n, a = ta.n_devices, 0
    s = ta.candidate_names[a].index("add_6")  # a head and a transfer
    rng = np.random.default_rng(0)
    head = rng.uniform(0.01, 0.09, n)
    air = rng.uniform(0.005, 0.08, n)
    head_s = np.array(ta.head_s)
    head_s[np.arange(n), a, s] = head
    ta2 = dataclasses.replace(ta, head_s=head_s)
    core = Core(SC, 1, tables=(ta2, ph), backend="numpy")
    mbits = float(ta.bytes_[a, s]) * 8e-6
    rates = np.zeros((1, n, core.n_aps))
    rates[0, :, 0] = mbits * n / air  # n equal weights share the access point: air = x
    dec = Decisions.filled((1, n), split=s, home=ta.home[None, :])
    has = np.ones((1, n), dtype=bool)
    charge = np.array([[0.1, 0.5, 5.0, 20.0, 265.0, 266.4]])  # empty to full
    debt = np.array([[0.0, 0.3, 0.0, 2.0, 0.0, 0.0]])
    clock = _Clock()
    bats = [device_battery(SC, ta2, ph, i, float(charge[0, i]), start=0.0,
                           energy_debt_j=float(debt[0, i])) for i in range(n)]  # fmt: skip
    for b in bats:
        b.clock = clock
    res = core.resolve_snapshot(dec, has, np.zeros((1, n), dtype=np.int64), np.zeros((1, n)),
                                np.zeros((1, n)), np.zeros((1, 1)), rates, charge_j=charge,
                                debt_j=debt)  # fmt: skip
    run = ~res.infeasible[0]  # the gated ones run full offload: no head, the raw input sent
    np.testing.assert_allclose(res.transfer_s[0, run], air[run], rtol=1e-12)
    np.testing.assert_array_equal(res.head_s[0, run], head[run])
    for i, b in enumerate(bats):
        gated = bool(res.infeasible[0, i])  # the simulator ran full offload instead
        assert gated == (not b.affordable("resnet18", "add_6", now=0.0))
        e_head = b.spend_head(0.0 if gated else head[i], now=0.02)
        e_radio = b.spend_radio(float(res.transfer_s[0, i]), now=0.07)
        assert e_head + e_radio == pytest.approx(float(res.energy_j[0, i]), rel=1e-13, abs=0)
    assert res.infeasible[0, 0] and not res.infeasible[0, -1]  # both cases were exercised
    # the slot's end, then an empty slot: the simulator's own update
    core.drain_batteries(res.energy_j, charge, debt)
    want1 = charge[0].copy(), debt[0].copy()
    core.drain_batteries(np.zeros((1, n)), charge, debt)
    for i, b in enumerate(bats):
        assert b.charge_j(now=0.1) == pytest.approx(want1[0][i], rel=1e-13, abs=1e-15)
        assert b.debt_j(now=0.1) == pytest.approx(want1[1][i], rel=1e-13, abs=1e-15)
        assert b.charge_j(now=0.25) == pytest.approx(charge[0, i], rel=1e-13, abs=1e-15)
        assert b.debt_j(now=0.25) == pytest.approx(debt[0, i], rel=1e-13, abs=1e-15)
        assert b.charge_j(now=0.25) <= b.capacity_j


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_the_battery_follows_the_cores_own_steps(backend: str) -> None:
    # the core's run on random decisions, slot by slot: the runtime battery fed each step's
    # head and air times has the core's charge and deficit, and allows exactly the heads the
    # core's masks allow
    core = Core(SC, 1, backend=backend)
    core.reset(np.array([11], dtype=np.uint64))
    ta, ph = core.tables, core.physics
    n = core.n_devices
    clock = _Clock()
    bats = [device_battery(SC, ta, ph, i, float(core.state.charge[0, i]), start=0.0)
            for i in range(n)]  # fmt: skip
    for b in bats:
        b.clock = clock
    rng = np.random.default_rng(1)
    gated = 0
    for t in range(120):
        has, app = core.pending()
        ok = core.affordable()[0]
        dec = Decisions.filled((1, n), home=ta.home[None, :])
        for i in range(n):
            a = int(app[0, i])
            names = ta.candidate_names[a]
            for s, c in enumerate(names):
                if has[0, i]:
                    assert bats[i].affordable(ta.app_names[a], c, now=t * 0.1) == ok[i, s]
            dec.split[0, i] = int(rng.integers(ta.n_valid[a]))
        res = core.step(dec)
        for i in range(n):
            if res.has_task[0, i]:
                gated += int(res.infeasible[0, i])
                bats[i].spend_head(float(res.head_s[0, i]), now=t * 0.1 + 0.01)
                bats[i].spend_radio(float(res.transfer_s[0, i]), now=t * 0.1 + 0.09)
        for i in range(n):
            end = (t + 1) * 0.1
            assert bats[i].charge_j(now=end) == pytest.approx(core.state.charge[0, i], rel=1e-12)
            assert bats[i].debt_j(now=end) == pytest.approx(
                core.state.energy_debt[0, i], rel=1e-12, abs=1e-12
            )
    assert gated > 0  # the run reached heads the charge could not pay for


def test_a_slot_with_two_tasks_cannot_spend_the_same_joules_twice() -> None:
    clock = _Clock()
    heads = {"net": {"input": 0.0, "mid": 0.6}}
    b = Battery(10.0, 1.0, p_active_w=10.0, p_tx_w=4.0, slot_s=0.1, head_energy_j=heads,
                clock=clock, start=0.0)  # fmt: skip
    assert b.affordable("net", "mid")
    b.spend_head(0.06, now=0.01)  # 0.6 J
    assert b.charge_j() == pytest.approx(0.4)
    assert not b.affordable("net", "mid")  # the same slot: 0.4 J left
    assert b.affordable("net", "input")  # full offload always can
    b.spend_radio(1.0, now=0.05)  # 4 J: the radio is not gated, drained to 0
    assert b.charge_j() == 0.0 and b.state()["spent_j"] == pytest.approx(4.6)
    clock.t = 1000.0  # no harvest, no budget: idle slots change nothing (and are skipped)
    assert b.charge_j() == 0.0 and b.debt_j() == 0.0 and b.state()["slot"] == 10000


def test_a_report_reads_the_clock_once() -> None:
    # a clock that moves on every reading: charge and deficit must be of one slot, not the
    # charge before a boundary and the deficit after it
    class Ticking(_Clock):
        def __call__(self) -> float:
            self.t += 0.1
            return self.t - 0.1

    clock = Ticking()
    b = Battery(10.0, 1.0, p_active_w=10.0, p_tx_w=4.0, slot_s=0.1, harvest_w=1.0, budget_w=1.0,
                clock=clock, start=0.0)  # fmt: skip
    b.spend(0.5, now=0.01)
    clock.t = 0.05  # slot 0: 0.5 J left, no deficit yet; slot 1: 0.6 J and 0.4 J
    assert b.report() == pytest.approx({"charge_j": 0.5, "energy_debt_j": 0.0})
    clock.t = 0.05
    st = b.state()
    assert (st["slot"], st["charge_j"], st["energy_debt_j"]) == (0, pytest.approx(0.5), 0.0)


# -- a device driven by a policy trained on battery -----------------------------------------
@pytest.fixture(scope="module")
def battery_policy_dir(tmp_path_factory):
    spec = get_agent("ppo")
    env = gym.make(ENV_ID, scenario="battery", decision_mode=spec.decision_mode,
                   action_type=spec.action_type)  # fmt: skip
    model = spec.load_class()("MlpPolicy", env, seed=0, device="cpu", n_steps=64, batch_size=64)
    model.learn(64)
    return export_policy(model, "ppo", {"scenario": "battery"}, tmp_path_factory.mktemp("pol"))


@pytest.fixture(scope="module")
def battery_policy(battery_policy_dir):
    return Scheduler(load_policy(battery_policy_dir))


@pytest.fixture(scope="module")
def r18_server(tmp_path_factory, battery_policy):
    ta = battery_policy.tables
    names = ta.candidate_names[ta.app_names.index("resnet18")]
    parts = load_parts(partition_kept("resnet18", names, tmp_path_factory.mktemp("r18")))
    with TailServer({"resnet18": parts}, engine="torch") as srv:
        yield parts, srv


class _SpyHead(WaitingHead):
    """The demo's emulated head (waits the table's time), recording the heads it ran."""

    def __init__(self, parts, head_s) -> None:
        super().__init__(parts, head_s)
        self.ran: list[str] = []

    def head(self, name, image):
        self.ran.append(name)
        return super().head(name, image)


def _device(name, parts, srv, decider, ta, ph, charge, spy=False):
    i = ta.device_names.index(name)
    a = ta.app_names.index("resnet18")
    heads = {c: float(ta.head_s[i, a, s]) for s, c in enumerate(ta.candidate_names[a])}
    bat = device_battery(SC, ta, ph, i, charge)
    ep = {"edge0": ServerEndpoint(*srv.address, EmulatedLink.constant(50.0, rtt_s=0.002))}
    engine = _SpyHead(parts, heads) if spy else WaitingHead(parts, heads)
    return Device(name, parts, ep, decider, engine=engine, app="resnet18", battery=bat), bat


class _Recording(SchedulerDecider):
    """The scheduler decider, keeping every request it sent."""

    sent: list

    def request(self, device, entry):
        req = super().request(device, entry)
        self.sent = [*getattr(self, "sent", []), req]
        return req


@pytest.mark.parametrize("over_http", [False, True])
def test_a_device_on_the_battery_policy_reports_its_charge(battery_policy, r18_server, over_http):
    parts, srv = r18_server
    sched = battery_policy
    ta = sched.tables
    _, ph = build(SC)
    caps = sched.policy.describe()["device_batteries_j"]
    assert set(caps) == set(ta.device_names)  # every camera has a battery
    httpd = BackgroundServer(create_app(sched)).__enter__() if over_http else None
    try:
        decider = _Recording(httpd.url if over_http else sched)
        cam0, bat0 = _device("cam_0", parts, srv, decider, ta, ph, 30.0)
        cam1, bat1 = _device("cam_1", parts, srv, decider, ta, ph, 3.0)
        recs = [dev.run_task() for dev in (cam1, cam0, cam0, cam1, cam0)]
        for dev in (cam0, cam1):
            dev.close()
    finally:
        if httpd is not None:
            httpd.__exit__(None, None, None)
    assert len(decider.sent) == len(recs)
    for req, rec in zip(decider.sent, recs, strict=True):
        for name, e in req["devices"].items():  # every battery device, asking or not
            c = e["charge_j"]
            assert isinstance(c, float) and 0.0 <= c <= caps[name], (name, c)
            assert math.isfinite(e.get("energy_debt_j", 0.0))
        asking = next(n for n, e in req["devices"].items() if e["task"] is not None)
        assert req["devices"][asking]["charge_j"] == rec.charge_j
        sched.decide(req)  # valid: raises RequestError otherwise
        assert rec.source == "policy" and rec.end_to_end_s > 0 and rec.energy_j > 0
    # the board carries the other devices' latest charges: cam_1's, as it last reported it
    assert decider.sent[1]["devices"]["cam_1"]["charge_j"] == recs[0].charge_j
    assert decider.sent[0]["devices"]["cam_0"]["charge_j"] == 0.0  # not heard of yet
    for bat, dev_recs in ((bat0, recs[1:3] + recs[4:]), (bat1, [recs[0], recs[3]])):
        assert bat.state()["spent_j"] == pytest.approx(sum(r.energy_j for r in dev_recs))


# a Jetson Nano's resnet18 heads cost 0.309 (add_6), 0.354 (avgpool) and 0.358 J (fc)
@pytest.mark.parametrize("charge", [0.0, 0.15, 0.33, 0.356, 1.0])
def test_an_empty_battery_never_runs_a_head_the_simulator_masks(battery_policy, r18_server,
                                                                charge):  # fmt: skip
    parts, srv = r18_server
    ta = battery_policy.tables
    _, ph = build(SC)
    core = Core(SC, 1, backend="numpy")
    a = ta.app_names.index("resnet18")
    n = ta.n_devices
    forced = 0
    for s, name in enumerate(ta.candidate_names[a]):
        local = s == ta.n_valid[a] - 1
        dev, bat = _device("cam_2", parts, srv, FixedDecider(name, None if local else "edge0"),
                           ta, ph, charge, spy=True)  # fmt: skip
        rec = dev.run_task()
        dev.close()
        # the simulator's outcome of the same decision at the same charge
        dec = Decisions.filled((1, n), split=s, home=ta.home[None, :])
        has = np.zeros((1, n), dtype=bool)
        has[0, 2] = True
        c = np.full((1, n), charge)
        res = core.resolve_snapshot(dec, has, np.full((1, n), a), np.zeros((1, n)),
                                    np.zeros((1, n)), np.zeros((1, 1)),
                                    np.full((1, n, 1), 50.0), charge_j=c)  # fmt: skip
        applied = ta.candidate_names[a][int(res.split[0, 2])]
        assert dev.engine.ran == [applied], (charge, name)  # the head the simulator runs
        assert rec.candidate == applied and rec.requested_candidate == name
        assert rec.forced_offload == bool(res.infeasible[0, 2])
        if rec.forced_offload:  # full offload of the raw input to the home edge
            assert rec.candidate_index == 0 and rec.target == "edge0"
            forced += 1
        assert bat.state()["forced_offloads"] == int(rec.forced_offload)
    # how many of the three heads the charge could not pay for
    assert forced == {0.0: 3, 0.15: 3, 0.33: 2, 0.356: 1, 1.0: 0}[charge]


class _LocalDecider:
    """A local split, with the scheduler's offload_target (or none, as Neurosurgeon's)."""

    def __init__(self, split, offload_target):
        self.split, self.offload_target = split, offload_target

    def __call__(self, device, entry):
        d = {"split": self.split, "target": None, "source": "policy"}
        if self.offload_target is not None:
            d["offload_target"] = self.offload_target
        return d


def _empty_cam2_local(battery_policy, r18_server, offload_target, targets):
    """cam_2 with an empty battery, deciding resnet18's local split (with the scheduler's
    ``offload_target``), its targets all served by the one test server; returns the device,
    its battery and the local split's name."""
    parts, srv = r18_server
    ta = battery_policy.tables
    _, ph = build(SC)
    i, a = ta.device_names.index("cam_2"), ta.app_names.index("resnet18")
    local = ta.candidate_names[a][int(ta.n_valid[a]) - 1]
    heads = {c: float(ta.head_s[i, a, s]) for s, c in enumerate(ta.candidate_names[a])}
    link = EmulatedLink.constant(50.0, rtt_s=0.002)
    eps = {t: ServerEndpoint(*srv.address, link) for t in targets}
    bat = device_battery(SC, ta, ph, i, 0.0)
    dev = Device("cam_2", parts, eps, _LocalDecider(local, offload_target),
                 engine=WaitingHead(parts, heads), app="resnet18", battery=bat,
                 home="edge0")  # fmt: skip
    return dev, bat, local


@pytest.mark.parametrize("offload_target", ["edge1", None])
def test_a_forced_offload_after_a_local_split_goes_to_the_policys_target(
    battery_policy, r18_server, offload_target
):
    dev, _, local = _empty_cam2_local(battery_policy, r18_server, offload_target,
                                      ("edge0", "edge1"))  # fmt: skip
    rec = dev.run_task()
    dev.close()
    assert rec.forced_offload and rec.requested_candidate == local and rec.candidate_index == 0
    # where the simulator sends it: the policy's target output; without one, the home edge
    assert rec.target == (offload_target or "edge0")


def test_a_forced_offload_to_an_unknown_offload_target_is_refused_naming_it(
    battery_policy, r18_server
):
    dev, bat, _ = _empty_cam2_local(battery_policy, r18_server, "cloud", ("edge0",))
    with pytest.raises(ValueError, match=r"decision offload_target 'cloud': no server"):
        dev.run_task()
    dev.close()
    assert bat.forced_offloads == 0  # nothing was offloaded


# -- the slotted replay carries batteries -------------------------------------------------
def test_the_replay_carries_batteries_as_the_runtime_battery_does() -> None:
    core = Core(SC, 1, backend="numpy")
    ta, ph = core.tables, core.physics
    n = core.n_devices
    rng = np.random.default_rng(2)
    k = 60
    dev = rng.integers(0, n, k)
    app = rng.integers(0, 2, k)
    arr = np.sort(rng.uniform(0, 3.0, k))
    split = np.array([int(rng.integers(ta.n_valid[x])) for x in app])
    dec = Decisions(split, np.zeros(k, dtype=int), np.ones(k), np.ones(k))
    c0 = np.array([0.0, 0.5, 2.0, 10.0, 40.0, 266.4])
    r = replay(core, dev, app, arr, dec, charge_j=c0, min_slots=50)
    assert r.n_slots >= 50 and not r.dropped.any()
    assert r.infeasible.any() and (r.split[r.infeasible] == 0).all()
    # the runtime battery fed the replay's energies in the replay's slots ends where it ends
    clock = _Clock()
    for i in range(n):
        b = device_battery(SC, ta, ph, i, float(c0[i]), start=0.0)
        b.clock = clock
        for kk in np.flatnonzero(dev == i)[np.argsort(r.slot[dev == i])]:
            clock.t = r.slot[kk] * 0.1 + 0.05
            assert b.charge_j() == pytest.approx(r.charge_j[kk], rel=1e-12, abs=1e-12)
            assert b.affordable(ta.app_names[app[kk]], ta.candidate_names[app[kk]][split[kk]]) \
                == (not r.infeasible[kk])  # fmt: skip
            b.spend(float(r.energy_j[kk]))
        clock.t = r.n_slots * 0.1
        assert b.charge_j() == pytest.approx(r.final_charge_j[i], rel=1e-12, abs=1e-12)
        assert b.debt_j() == pytest.approx(r.final_debt_j[i], rel=1e-12, abs=1e-12)


def test_the_replay_needs_the_initial_charges() -> None:
    dec = Decisions.filled((1,))
    with pytest.raises(ValueError, match=r"charge_j: None.*battery"):
        replay(SC, [0], [0], [0.0], dec)
    with pytest.raises(ValueError, match=r"charge_j\[3\] = 300.0.*266.4"):
        replay(SC, [0], [0], [0.0], dec, charge_j=[1, 1, 1, 300, 1, 1])
    with pytest.raises(ValueError, match=r"charge_j: expected shape \(6,\)"):
        replay(SC, [0], [0], [0.0], dec, charge_j=[1.0])
    with pytest.raises(ValueError, match="min_slots = -1"):
        replay(SC, [0], [0], [0.0], dec, charge_j=np.ones(6), min_slots=-1)


# -- bad parameters ---------------------------------------------------------------------
GOOD = {"capacity_j": 10.0, "charge_j": 5.0, "p_active_w": 10.0, "p_tx_w": 4.0, "slot_s": 0.1}


@pytest.mark.parametrize(
    ("field", "value"),
    [("capacity_j", 0.0), ("capacity_j", -1.0), ("capacity_j", float("nan")),
     ("capacity_j", "10"), ("capacity_j", True), ("charge_j", 10.5), ("charge_j", -0.1),
     ("p_active_w", -1.0), ("p_tx_w", float("inf")), ("slot_s", 0.0), ("harvest_w", -0.5),
     ("budget_w", 0.0), ("budget_w", "2")],
)  # fmt: skip
def test_bad_battery_parameters_name_the_field_and_the_value(field, value) -> None:
    with pytest.raises(ValueError, match=re.escape(f"battery.{field} = {value!r}")):
        Battery(**{**GOOD, field: value})


@pytest.mark.parametrize("start", ["soon", "1.5", True, float("nan"), float("inf")])
def test_a_bad_start_names_the_field_and_the_value(start) -> None:
    with pytest.raises(ValueError, match=re.escape(f"battery.start = {start!r}")):
        Battery(**GOOD, start=start)


@pytest.mark.parametrize(
    ("heads", "field"),
    [({"net": 3.0}, "battery.head_energy_j['net'] = 3.0"),
     ([1.0], "battery.head_energy_j = [1.0]")],
)  # fmt: skip
def test_head_energies_of_the_wrong_shape_are_named(heads, field) -> None:
    with pytest.raises(ValueError, match=re.escape(field)):
        Battery(**GOOD, head_energy_j=heads)


def test_bad_head_energies_and_unknown_heads_are_named() -> None:
    with pytest.raises(ValueError, match=r"battery\.head_energy_j\['net'\]\['x'\] = -1"):
        Battery(**GOOD, head_energy_j={"net": {"x": -1.0}})
    b = Battery(**GOOD, head_energy_j={"net": {"x": 1.0}})
    with pytest.raises(ValueError, match="no modelled energy for application 'net', candidate 'y'"):
        b.affordable("net", "y")
    with pytest.raises(ValueError, match=r"battery\.energy_j = -2"):
        b.spend(-2.0)


# -- the demo on a policy trained on battery ------------------------------------------------
@pytest.mark.slow
def test_the_demo_reports_the_batteries_beside_the_replays(tmp_path) -> None:
    from edgesplit.runtime.demo import format_report, run_demo

    spec = get_agent("ppo")
    env = gym.make(ENV_ID, scenario="battery", decision_mode=spec.decision_mode,
                   action_type=spec.action_type)  # fmt: skip
    model = spec.load_class()("MlpPolicy", env, seed=0, device="cpu", n_steps=64, batch_size=64)
    model.learn(64)
    pol = export_policy(model, "ppo", {"scenario": "battery"}, tmp_path / "policy")
    rep = run_demo(str(pol), duration_s=1.5, seed=3)
    cams = [f"cam_{i}" for i in range(6)]
    assert sorted(rep["initial_charge_j"]) == cams
    assert all(5.0 <= c <= 40.0 for c in rep["initial_charge_j"].values())
    for r in rep["rules"].values():
        assert sorted(r["batteries"]) == cams
        for b in r["batteries"].values():
            m, s = b["measured"], b["slotted_sim"]
            assert m["slot"] == s["slot"] == r["batteries_summary"]["slots"]  # the same time
            for x in (m, s):
                assert 0.0 <= x["charge_j"] <= 266.4 and x["energy_debt_j"] >= 0.0
            assert m["spent_j"] == pytest.approx(m["compute_j"] + m["radio_j"])
            assert m["tasks"] == s["tasks"]  # nothing dropped in 1.5 s at 4 tasks/s
        tot = r["batteries_summary"]
        assert tot["measured"]["spent_j"] > 0
        # the same decisions: the measured energy is the simulator's, bar measurement
        assert tot["measured"]["spent_j"] == pytest.approx(tot["slotted_sim"]["spent_j"], rel=0.1)
    assert "batteries (measured, after" in format_report(rep)


@pytest.mark.slow
def test_the_demo_counts_a_battery_devices_tasks_without_those_the_slot_clock_dropped(
    battery_policy_dir,
) -> None:
    from edgesplit.runtime.demo import run_demo

    # arrivals far above one decision per slot: the queues fill and tasks drop
    rep = run_demo(str(battery_policy_dir), duration_s=0.4, seed=3, rules=("neurosurgeon",),
                   arrival_scale=6.0, clock="slot")  # fmt: skip
    r = rep["rules"]["neurosurgeon"]
    assert r["measured"]["dropped"] > 0 and r["decision_slots_agree"] is True
    ran = 0
    for b in r["batteries"].values():
        assert b["measured"]["tasks"] == b["slotted_sim"]["tasks"]  # the tasks that ran
        ran += b["measured"]["tasks"]
    assert ran == r["tasks"] - r["measured"]["dropped"]


# -- the device command on a battery policy ---------------------------------------------


def test_the_scheduler_describes_each_battery_as_the_demo_builds_it(battery_policy):
    ta = battery_policy.tables
    _, ph = build(SC)
    specs = battery_policy.policy.describe()["device_batteries"]
    assert set(specs) == {d for i, d in enumerate(ta.device_names) if ta.battery_j[i] > 0}
    for name, spec in specs.items():
        i = ta.device_names.index(name)
        got = Battery.from_spec(spec, 12.5, start=0.0)
        want = device_battery(SC, ta, ph, i, 12.5, start=0.0)
        for k in ("capacity_j", "p_active_w", "p_tx_w", "slot_s", "harvest_j", "budget_j",
                  "head_energy_j"):  # fmt: skip
            assert getattr(got, k) == getattr(want, k), (name, k)
        assert spec["initial_charge_j"] == list(SC.devices[i].battery.initial_charge_j)


def test_the_battery_description_is_json_and_a_callers_copy(battery_policy):
    pol = battery_policy.policy
    d = pol.describe()
    json.dumps(d, allow_nan=False)  # what GET /v1/policy sends: plain JSON, nothing infinite
    name = next(iter(d["device_batteries"]))
    d["device_batteries"][name]["capacity_j"] = -1.0  # a caller's change ...
    d["device_batteries"][name]["head_energy_j"].clear()
    again = pol.describe()["device_batteries"][name]  # ... is not the next answer's
    assert again["capacity_j"] > 0 and again["head_energy_j"]


def test_a_battery_description_missing_a_key_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"device_batteries.cam_0.p_tx_w: missing"):
        Battery.from_spec({"capacity_j": 1.0, "harvest_w": 0.0, "budget_w": None,
                           "p_active_w": 1.0, "slot_s": 0.1, "head_energy_j": {}}, 0.5,
                          field="device_batteries.cam_0")  # fmt: skip
    with pytest.raises(ValueError, match="battery = 3: expected a battery's description"):
        Battery.from_spec(3, 0.5)


def test_a_bad_value_in_a_battery_description_is_named_under_its_field():
    spec = {"capacity_j": 1.0, "harvest_w": 0.0, "budget_w": None, "p_active_w": 1.0,
            "p_tx_w": 0.5, "slot_s": 0.1, "head_energy_j": {"r": {"input": 0.0}}}  # fmt: skip
    f = "device_batteries.cam_0"
    for key, bad in (("p_tx_w", math.nan), ("capacity_j", "x"), ("head_energy_j", [1])):
        with pytest.raises(ValueError, match=rf"^{re.escape(f)}\.{key} = "):
            Battery.from_spec({**spec, key: bad}, 0.5, field=f)
    with pytest.raises(ValueError, match=rf"^{re.escape(f)}\.head_energy_j\['r'\]"):
        Battery.from_spec({**spec, "head_energy_j": {"r": {"input": -1.0}}}, 0.5, field=f)
    # the charge is not the description's: named as the battery's
    with pytest.raises(ValueError, match=r"^battery\.charge_j = nan"):
        Battery.from_spec(spec, math.nan, field=f)


def test_the_device_command_runs_a_battery_device_of_the_policy(
    battery_policy_dir, r18_server, capsys
):
    import json

    from edgesplit.runtime.__main__ import main

    parts, srv = r18_server
    host, port = srv.address
    base = ["device", "--parts", str(parts.root), "--server", f"edge0={host}:{port}",
            "--scheduler", str(battery_policy_dir), "--name", "cam_2", "--tasks", "2",
            "--rate-mbps", "50"]  # fmt: skip
    assert main([*base, "--charge-j", "30"]) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(recs) == 2 and all(r["source"] == "policy" for r in recs)
    # the charge it reported to the scheduler: 30 J and what the 2 W harvest brought since
    # the battery started (the command's set-up takes a few slots), never more than that
    assert 30.0 <= recs[0]["charge_j"] <= 30.0 + 2.0 * 5.0
    assert all(r["energy_j"] > 0 for r in recs)  # its heads and sends were paid for
    # a battery device needs its charge; a mains-powered one refuses one
    assert main(base) == 2
    assert "--charge-j: the policy's device 'cam_2' has a battery" in capsys.readouterr().err
    assert main([*base, "--charge-j", "999"]) == 2
    assert "--charge-j 999.0: expected a finite number >= 0 and <= " in capsys.readouterr().err


def test_the_device_command_names_what_is_wrong_with_its_battery(
    battery_policy_dir, r18_server, capsys, monkeypatch
):
    from edgesplit.runtime.__main__ import main
    from edgesplit.scheduler.policy import LoadedPolicy

    parts, srv = r18_server
    host, port = srv.address
    base = ["device", "--parts", str(parts.root), "--server", f"edge0={host}:{port}",
            "--name", "cam_2", "--tasks", "1", "--rate-mbps", "50"]  # fmt: skip
    sched = ["--scheduler", str(battery_policy_dir)]
    # a charge that is not a number in [0, capacity] is named as the option
    for bad in ("nan", "-1"):
        assert main([*base, *sched, "--charge-j", bad]) == 2
        assert f"--charge-j {float(bad)!r}: expected a finite number" in capsys.readouterr().err
    # fixed decisions have no policy to describe a battery
    assert main([*base, "--candidate", "input", "--charge-j", "3"]) == 2
    assert "--charge-j 3.0: needs --scheduler" in capsys.readouterr().err
    # a scheduler older than the device: its description has no device_batteries
    describe = LoadedPolicy.describe

    def old(self):
        d = dict(describe(self))
        del d["device_batteries"]
        return d

    monkeypatch.setattr(LoadedPolicy, "describe", old)
    for extra in ([], ["--charge-j", "30"]):
        assert main([*base, *sched, *extra]) == 2
        err = capsys.readouterr().err
        assert "device_batteries: missing from the scheduler's policy description" in err, err


def test_the_device_command_keeps_the_same_battery_over_http(battery_policy, r18_server, capsys):
    import urllib.request

    from edgesplit.runtime.__main__ import main

    parts, srv = r18_server
    host, port = srv.address
    with BackgroundServer(create_app(battery_policy)) as httpd:
        with urllib.request.urlopen(httpd.url + "/v1/policy", timeout=10) as r:
            spec = json.load(r)["device_batteries"]["cam_2"]
        assert spec == battery_policy.policy.describe()["device_batteries"]["cam_2"]
        args = ["device", "--parts", str(parts.root), "--server", f"edge0={host}:{port}",
                "--scheduler", httpd.url, "--name", "cam_2", "--tasks", "1",
                "--rate-mbps", "50"]  # fmt: skip
        assert main([*args, "--charge-j", "30"]) == 0
        (rec,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert rec["source"] == "policy" and rec["energy_j"] > 0 and rec["charge_j"] >= 30.0
        assert main([*args, "--charge-j", "nan"]) == 2
        assert "--charge-j nan: expected a finite number" in capsys.readouterr().err
