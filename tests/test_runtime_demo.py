"""The demo: four devices and two real server processes, decisions from an exported policy
and from Neurosurgeon, measured latencies beside the cost-model replay."""

from __future__ import annotations

import gymnasium as gym
import pytest

from edgesplit.agents.export import export_policy
from edgesplit.agents.registry import get_agent
from edgesplit.envs import ENV_ID
from edgesplit.runtime.demo import run_demo

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


@pytest.mark.slow
def test_demo_runs_both_rules_on_the_same_arrivals(tmp_path):
    spec = get_agent("ppo")
    env = gym.make(ENV_ID, scenario=SCENARIO, decision_mode=spec.decision_mode,
                   action_type=spec.action_type)  # fmt: skip
    model = spec.load_class()("MlpPolicy", env, seed=0, device="cpu", n_steps=64, batch_size=64)
    model.learn(64)
    pol = export_policy(model, "ppo", {"scenario": SCENARIO}, tmp_path / "policy")
    rep = run_demo(str(pol), duration_s=2.0, seed=1)
    assert rep["tasks"] > 0 and set(rep["rules"]) == {"policy", "neurosurgeon"}
    for rule, r in rep["rules"].items():
        assert r["tasks"] == rep["tasks"]  # the same arrivals for both rules
        assert r["sources"] == [rule]
        assert set(r["targets"]) <= {"None", "edge0", "edge1"}
        m, p = r["measured"], r["predicted"]
        assert 0 < m["p50_s"] <= m["p90_s"] <= m["p99_s"]
        assert 0 < p["p50_s"] <= p["p90_s"]
        # nothing finishes sooner than the cost model's unloaded figure allows, bar noise
        assert m["p50_s"] > 0.5 * p["p50_s"]
    assert sorted(rep["ranking_by_mean_latency"]["measured"]) == ["neurosurgeon", "policy"]
    with pytest.raises(ValueError, match="rules"):
        run_demo(str(pol), duration_s=1.0, rules=("oracle",))
