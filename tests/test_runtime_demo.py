"""The demo: four devices and two real server processes, decisions from an exported policy
and from Neurosurgeon, measured latencies beside the slotted simulator and the cost-model
replay."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest

from edgesplit.agents.export import export_policy
from edgesplit.agents.registry import get_agent
from edgesplit.envs import ENV_ID
from edgesplit.runtime.demo import CLOCKS, SIDES, format_report, run_demo

SCENARIO = {
    "name": "demo_small",
    "slot_s": 0.1,
    "horizon": 50,
    "queue_capacity": 4,
    "weight_levels": [1.0],
    "applications": [{"network": "mobilenet_v2", "deadline_s": 0.3}],
    "servers": [
        {"name": "edge0", "device_class": "x86_cpu_1t"},
        {"name": "edge1", "device_class": "x86_cpu_1t"},
    ],
    "cloud": None,
    "devices": [
        {"name": "pi", "count": 2, "device_class": "rpi4", "home": "edge0",
         "links": {"edge0": "wifi", "edge1": "lte"}, "arrival_rate_hz": 2.0,
         "apps": {"mobilenet_v2": 1}},
        {"name": "orin", "count": 2, "device_class": "jetson_orin_nano", "home": "edge1",
         "links": {"edge0": "lte", "edge1": "wifi"}, "arrival_rate_hz": 2.0,
         "apps": {"mobilenet_v2": 1}},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    spec = get_agent("ppo")
    env = gym.make(ENV_ID, scenario=SCENARIO, decision_mode=spec.decision_mode,
                   action_type=spec.action_type)  # fmt: skip
    model = spec.load_class()("MlpPolicy", env, seed=0, device="cpu", n_steps=64, batch_size=64)
    model.learn(64)
    out = tmp_path_factory.mktemp("demo") / "policy"
    return str(export_policy(model, "ppo", {"scenario": SCENARIO}, out))


@pytest.mark.slow
@pytest.mark.parametrize("clock", CLOCKS)
def test_demo_runs_both_rules_on_the_same_arrivals(policy, clock):
    rep = run_demo(policy, duration_s=2.0, seed=1, per_task=True, clock=clock)
    assert rep["tasks"] > 0 and set(rep["rules"]) == {"policy", "neurosurgeon"}
    assert rep["clock"] == clock
    # as in the simulator, the devices behind an access point share its airtime
    assert rep["shared_access_points"] is True
    assert any("share its airtime" in n for n in rep["notes"])
    for rule, r in rep["rules"].items():
        assert r["tasks"] == rep["tasks"]  # the same arrivals for both rules
        assert r["sources"] == [rule]
        assert set(r["targets"]) <= {"None", "edge0", "edge1"}
        m, p, s = r["measured"], r["cost_model_replay"], r["slotted_sim"]
        assert 0 < m["p50_s"] <= m["p90_s"] <= m["p99_s"]
        assert 0 < p["p50_s"] <= p["p90_s"]
        assert 0 < s["p50_s"] <= s["p90_s"] <= s["p99_s"]
        assert 0 <= s["dropped"] < r["tasks"] and 0 <= s["deadline_miss_rate"] <= 1
        if clock == "arrival":
            # the slot model counts latency from the slot after the arrival: at most one slot
            assert 0 < s["p50_from_arrival_s"] - s["p50_s"] <= SCENARIO["slot_s"]
            assert "from_decision" not in r and "decision_slots_agree" not in r
        else:
            # measured from the arrival, and so is the simulator's figure beside it
            assert s["p50_s"] == s["p50_from_arrival_s"]
            # the runtime decided every task in the slot the simulator does, dropped the same
            assert r["decision_slots_agree"] is True
            assert r["measured"]["dropped"] == s["dropped"]
            fd = r["from_decision"]
            # the wait for the deciding slot is common to both sides: taken out, less is left
            assert 0 < fd["p50_s"]["measured"] < m["p50_s"]
            assert 0 < fd["p50_s"]["slotted_sim"] < s["p50_s"]
            assert 0 <= fd["median_abs_rel_error"] < 10
            # the cost-model replay follows the runtime's order of events on this clock too:
            # no task starts before the slot that decides it
            for x in r["tasks_detail"]:
                if not x["dropped"]:
                    assert x["cost_model_replay_s"] > x["slotted_sim_slot_wait_s"]
        # nothing finishes sooner than the cost model's unloaded figure allows, bar noise
        assert m["p50_s"] > 0.5 * p["p50_s"]
        assert r["p50_rel_error"]["slotted_sim"] == s["p50_s"] / m["p50_s"] - 1
        # both servers here are of the class that computes the tails (x86_cpu_1t): the
        # simulator with the real class is the simulator as trained
        assert r["slotted_sim_as_trained"] == s
        assert set(r["median_abs_rel_error"]) == {"slotted_sim", "cost_model_replay"}
        assert all(0 <= v < 10 for v in r["median_abs_rel_error"].values())
        o = r["offloaded"]
        assert o["tasks"] == sum(n for t, n in r["targets"].items() if t != "None")
        assert set(o["p50_s"]) == set(SIDES)
        # the per-task detail is what the figures summarise
        detail = r["tasks_detail"]
        assert len(detail) == r["tasks"]
        sim = [x["slotted_sim_s"] for x in detail if x.get("slotted_sim_s") is not None]
        assert len(sim) == r["tasks"] - s["dropped"]
        assert np.median(sim) == pytest.approx(s["p50_s"])
        ran = [x["measured_s"] for x in detail if not x["dropped"]]
        assert len(ran) == r["tasks"] - r["measured"].get("dropped", 0)
        assert np.median(ran) == pytest.approx(m["p50_s"])
    for key in ("ranking_by_mean_latency", "ranking_by_p50"):
        assert set(rep[key]) == set(SIDES)
        for order in rep[key].values():
            assert sorted(order) == ["neurosurgeon", "policy"]
    text = format_report(rep)
    assert all(side in text for side in SIDES) and "ranking by p50" in text
    assert f"decisions on the {clock} clock" in text
    with pytest.raises(ValueError, match="rules"):
        run_demo(policy, duration_s=1.0, rules=("oracle",))
    with pytest.raises(ValueError, match="clock = 'tick'"):
        run_demo(policy, duration_s=1.0, clock="tick")


@pytest.mark.slow
def test_the_slot_clock_drops_what_finds_the_queue_full_and_reports_the_rest(policy):
    # arrivals far above one decision per slot: the queues fill and tasks drop, in the
    # runtime as in the simulator (the same discipline), and every figure still comes out
    rep = run_demo(policy, duration_s=0.6, seed=2, rules=("neurosurgeon",), arrival_scale=12.0,
                   per_task=True, clock="slot")  # fmt: skip
    r = rep["rules"]["neurosurgeon"]
    m, s = r["measured"], r["slotted_sim"]
    assert m["dropped"] > 0 and m["dropped"] == s["dropped"]
    assert r["decision_slots_agree"] is True
    detail = r["tasks_detail"]
    assert sum(x["dropped"] for x in detail) == m["dropped"]
    assert all("candidate" not in x for x in detail if x["dropped"])  # nothing ran
    ran = [x["measured_s"] for x in detail if not x["dropped"]]
    assert len(ran) == r["tasks"] - m["dropped"] and np.median(ran) == pytest.approx(m["p50_s"])
    # a dropped task is a miss on every side, over every task that arrived
    p = r["cost_model_replay"]
    for side in (m, s, p):
        assert side["deadline_miss_rate"] >= m["dropped"] / r["tasks"]
    late = sum(x["cost_model_replay_s"] > 0.3 for x in detail if not x["dropped"])
    assert p["deadline_miss_rate"] == pytest.approx((late + m["dropped"]) / r["tasks"])


@pytest.mark.slow
def test_the_slot_clock_stops_deciding_once_a_task_failed(policy, monkeypatch):
    # a server that answers every task with an error: the run ends at the next slot with
    # that error, instead of deciding (and failing) every task still to come
    from edgesplit.runtime import device as device_mod

    started = []
    real_start = device_mod.Device.start_task

    def start(self, *args, **kwargs):
        started.append(self.name)
        return real_start(self, *args, **kwargs)

    def fail(self, p):
        raise device_mod.RemoteError({"error": "server gone"})

    closed = []
    real_close = device_mod.Device.close

    def close(self):
        closed.append(self.name)
        real_close(self)

    monkeypatch.setattr(device_mod.Device, "start_task", start)
    monkeypatch.setattr(device_mod.Device, "finish_task", fail)
    monkeypatch.setattr(device_mod.Device, "close", close)
    with pytest.raises(device_mod.RemoteError, match="server gone"):
        run_demo(policy, duration_s=4.0, seed=1, rules=("neurosurgeon",), clock="slot")
    # about 30 tasks arrive in 4 s; the heads already decided when the first failed run
    assert 1 <= len(started) <= 8
    # and every device's connections were closed all the same
    assert sorted(closed) == ["orin_0", "orin_1", "pi_0", "pi_1"]


@pytest.mark.slow
def test_the_slot_clock_sends_every_devices_state_of_that_slot(policy, monkeypatch):
    # a joint policy reads every device's observation, the idle ones' too: in the
    # environment an idle device's backlog (and rates, charge) is that slot's, so the
    # runtime's request must carry it, not what the device said when it last had a task
    from edgesplit.runtime import slots
    from edgesplit.scheduler import Scheduler

    requests = []
    real_decide = Scheduler.decide

    def decide(self, req):
        requests.append(req)
        return real_decide(self, req)

    monkeypatch.setattr(Scheduler, "decide", decide)
    monkeypatch.setattr(slots.HeadLine, "backlog_s", lambda self: 0.123)  # a marker
    run_demo(policy, duration_s=1.0, seed=1, rules=("policy",), clock="slot")
    assert requests
    idle = 0
    for req in requests:
        for e in req["devices"].values():
            assert e["backlog_s"] == 0.123  # read at the slot, by the device's head line
            idle += e["task"] is None
    assert idle > 0  # the case this test is for


@pytest.mark.slow
def test_the_arrival_clock_raises_a_failed_task_instead_of_dropping_its_device(policy, monkeypatch):
    from edgesplit.runtime import device as device_mod

    def fail(self, p):
        raise device_mod.RemoteError({"error": "server gone"})

    monkeypatch.setattr(device_mod.Device, "finish_task", fail)
    with pytest.raises(device_mod.RemoteError, match="server gone"):
        run_demo(policy, duration_s=1.5, seed=1, rules=("neurosurgeon",), clock="arrival")


@pytest.mark.slow
def test_the_slot_clocks_time_feature_wraps_at_the_policys_horizon(policy, monkeypatch):
    from edgesplit.runtime.device import SchedulerDecider

    slots = []
    real = SchedulerDecider.decide_joint

    def record(self, entries, server_backlog_s, slot=None, idle=None):
        slots.append(slot)
        return real(self, entries, server_backlog_s, slot, idle)

    monkeypatch.setattr(SchedulerDecider, "decide_joint", record)
    horizon = SCENARIO["horizon"]  # 50 slots: 5 s
    rep = run_demo(policy, duration_s=5.6, seed=4, rules=("policy",), arrival_scale=2.0)
    assert rep["rules"]["policy"]["tasks"] > 0 and slots
    assert all(0 <= s < horizon for s in slots)  # never the horizon, never past it
    # the slots after the horizon start a second episode: the feature went back down
    assert any(b < a for a, b in itertools.pairwise(slots))
