"""The stochastic processes of the simulator against their specifications (long runs of
many environments, checked statistically with generous bounds)."""

from __future__ import annotations

import numpy as np
import pytest

from edgesplit.sim.core import Core
from edgesplit.sim.scenario import ScenarioError, load_scenario
from edgesplit.sim.schema import Decisions


def _bursty(on_rate: float, base: float, mean_on: float, mean_off: float) -> dict:
    d = load_scenario("single").to_dict()
    d["queue_capacity"] = 64  # nothing dropped: every arrival is counted
    d["devices"][0]["arrival_rate_hz"] = base
    d["devices"][0]["bursts"] = {
        "on_rate_hz": on_rate,
        "mean_on_s": mean_on,
        "mean_off_s": mean_off,
    }
    return d


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_bursts_follow_the_on_off_process(backend: str) -> None:
    """Time in bursts matches mean_on / (mean_on + mean_off); bursts last mean_on on average;
    tasks arrive at on_rate in a burst and at the base rate between bursts."""
    sc = load_scenario(_bursty(on_rate=20.0, base=1.0, mean_on=0.5, mean_off=1.5))
    e, slots = 256, 400
    core = Core(sc, e, backend=backend)
    core.reset(np.arange(e, dtype=np.uint64) + np.uint64(11))
    dec = Decisions.filled((e, 1), split=core.tables.n_valid.max() - 1)  # all-local
    on_slots = arrivals_on = arrivals_off = ends = 0
    for _ in range(slots):
        phase = core.state.phase[:, 0].copy()
        total = core.state.qlen[:, 0].copy()
        res = core.step(dec)
        arrived = core.state.qlen[:, 0] - (total - res.has_task[:, 0])
        on_slots += int(phase.sum())
        arrivals_on += int(arrived[phase == 1].sum())
        arrivals_off += int(arrived[phase == 0].sum())
        ends += int(((phase == 1) & (core.state.phase[:, 0] == 0)).sum())
    n = e * slots
    dt = sc.slot_s
    p_on, p_off = -np.expm1(-dt / 1.5), -np.expm1(-dt / 0.5)  # per-slot switching
    assert on_slots / n == pytest.approx(p_on / (p_on + p_off), abs=0.015)  # 0.262
    assert arrivals_on / (on_slots * dt) == pytest.approx(20.0, rel=0.05)
    assert arrivals_off / ((n - on_slots) * dt) == pytest.approx(1.0, rel=0.1)
    # a burst ends with probability 1 - exp(-dt / mean_on) per slot
    assert ends / on_slots == pytest.approx(-np.expm1(-dt / 0.5), rel=0.1)


def test_devices_without_bursts_never_change_phase_and_keep_their_streams() -> None:
    """A scenario without bursts draws exactly what it drew before bursts existed: the
    burst phases use a stream of their own."""
    plain = Core(load_scenario("single"), 4, backend="numpy")
    d = load_scenario("single").to_dict()
    rate = d["devices"][0]["arrival_rate_hz"]
    d["devices"][0]["bursts"] = {"on_rate_hz": rate, "mean_on_s": 1.0, "mean_off_s": 1.0}
    same_rate = Core(load_scenario(d), 4, backend="numpy")  # bursts that change nothing
    keys = np.arange(4, dtype=np.uint64)
    plain.reset(keys)
    same_rate.reset(keys)
    dec = Decisions.filled((4, 1))
    for _ in range(100):
        a, b = plain.step(dec), same_rate.step(dec)
        np.testing.assert_array_equal(a.latency_s, b.latency_s)
        np.testing.assert_array_equal(plain.state.qapp, same_rate.state.qapp)
    assert not plain.state.phase.any() and same_rate.state.phase.any()


@pytest.mark.parametrize(
    ("bursts", "field"),
    [
        ({"on_rate_hz": -1.0, "mean_on_s": 1.0, "mean_off_s": 1.0}, "bursts.on_rate_hz"),
        ({"on_rate_hz": 1.0, "mean_on_s": 0.0, "mean_off_s": 1.0}, "bursts.mean_on_s"),
        ({"on_rate_hz": 1.0, "mean_on_s": 1.0}, "bursts.mean_off_s"),
        ({"on_rate_hz": 1.0, "mean_on_s": 1.0, "mean_off_s": 1.0, "x": 1}, "bursts.x"),
    ],
)
def test_bad_bursts_name_the_field(bursts: dict, field: str) -> None:
    d = load_scenario("single").to_dict()
    d["devices"][0]["bursts"] = bursts
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        load_scenario(d)


def test_information_overrides_fields_and_refuses_a_weight_on_true_rates() -> None:
    from edgesplit.envs.gym_env import SplitOffloadEnv

    d = load_scenario("single").to_dict()
    d["information"] = {"ewma_weight": 0.3}
    env = SplitOffloadEnv(scenario=d, information={"server_backlog": "true"})
    info = env.scenario.information
    assert (info.link_rate, info.ewma_weight, info.server_backlog) == ("measured", 0.3, "true")
    d["information"] = {"link_rate": "true", "ewma_weight": 0.5}
    with pytest.raises(ScenarioError, match=r"information\.ewma_weight"):
        load_scenario(d)
