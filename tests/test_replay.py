"""The slotted simulator driven by recorded arrivals and decisions (``sim/replay.py``).

The replay of what the core itself drew and decided must give the core's own per-task
latencies and per-slot costs, bit for bit; bad input is refused with the field and value.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from edgesplit.sim.core import Core
from edgesplit.sim.replay import default_rates, replay
from edgesplit.sim.scenario import load_scenario
from edgesplit.sim.schema import Decisions


def _crowded_dense() -> dict:
    """``dense`` (16 devices, 3 servers, a cloud) with short queues and high rates: slots with
    several tasks per access point and server, queueing, and drops."""
    d = load_scenario("dense").to_dict()
    d["queue_capacity"] = 2
    for g in d["devices"]:
        g["arrival_rate_hz"] = 12.0
    return d


def _record(core: Core, slots: int, seed: int):
    """Run the numpy core on random feasible decisions; return the tasks it drew (device,
    app, arrival time in the replay's clock), their decisions, the latency the core gave
    each, the per-slot costs and the rates of every slot."""
    rng = np.random.default_rng(seed)
    ta, q = core.tables, core.tables.queue_capacity
    core.reset(np.array([seed], dtype=np.uint64))
    n = core.n_devices
    tasks: list[list] = []  # [device, app, arrival slot (core), rank in the slot]
    queues: list[deque[int]] = [deque() for _ in range(n)]
    st = core.state

    def joined(t_arr: int, before: np.ndarray) -> None:
        """Tasks that joined the queues after a slot (core slot ``t_arr - 1``)."""
        for i in range(n):
            new = int(st.qlen[0, i] - before[i])
            for m in range(new):
                pos = (st.qhead[0, i] + st.qlen[0, i] - new + m) % q
                assert st.qarr[0, i, pos] == t_arr
                tasks.append([i, int(st.qapp[0, i, pos]), t_arr, m])
                queues[i].append(len(tasks) - 1)

    joined(0, np.zeros(n, dtype=np.int64))
    dec_of: dict[int, tuple] = {}
    lat_of: dict[int, float] = {}
    costs, rates = [], [st.rates[0].copy()]  # replay slot 0 (nothing pending) and on
    for t in range(slots):
        rates.append(st.rates[0].copy())
        has, app = core.pending()
        dec = Decisions.filled((1, n), home=ta.home[None, :])
        for i in range(n):
            if has[0, i]:
                a = int(app[0, i])
                s = int(rng.integers(ta.n_valid[a]))
                j = int(rng.choice(np.flatnonzero(ta.reachable[i])))
                wb, wc = rng.choice(ta.weight_levels, 2)
                dec[0, i] = Decisions.filled((), split=s, target=j, bw_weight=wb, cpu_weight=wc)
                dec_of[queues[i][0]] = (s, j, wb, wc)
        before = st.qlen[0] - has[0]
        res = core.step(dec)
        for i in range(n):
            if res.has_task[0, i]:
                lat_of[queues[i].popleft()] = float(res.latency_s[0, i])
        joined(t + 1, before)
        for i in range(n):  # dropped tasks: after the accepted ones of their slot
            for m in range(int(res.dropped[0, i])):
                tasks.append([i, 0, t + 1, q + m])
        costs.append(res.cost[0].copy())
    return tasks, dec_of, lat_of, np.array(costs), np.array(rates)


@pytest.mark.parametrize("scenario", ["default", "crowded_dense"])
def test_replay_of_the_cores_own_run_gives_its_latencies_and_costs(scenario: str) -> None:
    sc = load_scenario(_crowded_dense() if scenario == "crowded_dense" else scenario)
    core = Core(sc, 1, backend="numpy")
    slots = 120
    tasks, dec_of, lat_of, costs, rates = _record(core, slots, seed=3)
    # the core's slot t is the replay's slot t + 1: a task pending from core slot c arrived
    # (in the replay's clock) during slot c, and is pending from c + 1
    arrival = np.array([(c + 0.1 + 0.05 * m) * core.slot_s for _, _, c, m in tasks])
    decided = [k for k in range(len(tasks)) if k in dec_of]
    # dropped tasks, and those still queued when the recording stopped (the replay decides
    # them later): candidate 0 to the home edge
    fields = np.array([dec_of.get(k, (0, int(core.tables.home[tasks[k][0]]), 1.0, 1.0))
                       for k in range(len(tasks))])  # fmt: skip
    dec = Decisions(fields[:, 0].astype(int), fields[:, 1].astype(int), fields[:, 2], fields[:, 3])
    extra = np.repeat(rates[-1:], 10 * len(tasks), axis=0)  # the slots after the recording
    r = replay(core, [x[0] for x in tasks], [x[1] for x in tasks], arrival, dec,
               rates_mbps=np.concatenate([rates, extra]))  # fmt: skip
    n_dropped = sum(1 for x in tasks if x[3] >= core.tables.queue_capacity)
    assert int(r.dropped.sum()) == n_dropped
    assert len(decided) > 120 and (n_dropped > 0 or scenario == "default")
    got = r.latency_s[decided]
    want = np.array([lat_of[k] for k in decided])
    np.testing.assert_array_equal(got, want)  # bit for bit: the same arithmetic
    np.testing.assert_array_equal(r.slot_cost[1 : slots + 1], costs)
    assert r.n_slots > slots  # the replay went on until the last queued task was decided
    assert not np.isnan(r.latency_s[~r.dropped]).any()
    np.testing.assert_allclose(r.from_arrival_s, r.latency_s + r.slot_wait_s)
    assert (r.slot_wait_s[~r.dropped] > 0).all()
    assert (r.slot_wait_s[~r.dropped] <= core.slot_s + 1e-12).all()
    # contention mattered: some slot had several offloaded tasks on one target
    apps = np.array([x[1] for x in tasks])
    off = ~r.dropped & (r.split < core.tables.n_valid[apps] - 1)
    _, shared = np.unique(np.stack([r.slot[off], r.target[off]]), axis=1, return_counts=True)
    assert shared.max() > 1


def test_replay_defaults_to_mean_rates_and_shares_within_a_slot() -> None:
    core = Core(load_scenario("default"), 1, backend="numpy")
    ta = core.tables
    rates = default_rates(core)
    assert rates.shape == (6, 2) and (rates > 0).all()
    # two devices of the same access point offload the same split to one server in one slot:
    # each gets half the bandwidth and half the compute
    i0, i1 = 0, 1  # the two Raspberry Pis, home edge0
    a, s, j = 0, 0, 0
    dec1 = Decisions.filled((1,), split=s, target=j)
    one = replay(core, [i0], [a], [0.05], dec1)
    dec2 = Decisions.filled((2,), split=s, target=j)
    two = replay(core, [i0, i1], [a, a], [0.05, 0.06], dec2)
    np.testing.assert_allclose(two.tail_s, 2 * one.tail_s[0])
    air = ta.bytes_[a, s] * 8e-6 / rates[i0, 0]
    np.testing.assert_allclose(one.transfer_s[0], air)
    np.testing.assert_allclose(two.transfer_s, 2 * air)
    # by their weights: 1 and 0.25 get 4/5 and 1/5 of the access point and of the server
    dec_w = Decisions.filled((2,), split=s, target=j, bw_weight=[1.0, 0.25], cpu_weight=[0.25, 1.0])
    w = replay(core, [i0, i1], [a, a], [0.05, 0.06], dec_w)
    np.testing.assert_allclose(w.transfer_s, [1.25 * air, 5 * air])
    np.testing.assert_allclose(w.tail_s, [5 * one.tail_s[0], 1.25 * one.tail_s[0]])
    # a device's second task of a slot waits a slot in its queue
    seq = replay(core, [i0, i0], [a, a], [0.05, 0.06], dec2)
    assert seq.slot.tolist() == [1, 2]
    assert seq.wait_s[1] >= core.slot_s and seq.wait_s[0] == 0.0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"device": ["pi_0", "toaster"]}, r"device\[1\] = 'toaster': unknown"),
        ({"device": [0, 99]}, r"device\[1\] = 99: unknown"),
        ({"app": [0, "lenet"]}, r"app\[1\] = 'lenet': unknown"),
        ({"app": [0, 5]}, r"app\[1\] = 5: unknown"),
        ({"arrival_s": [0.0, -0.5]}, r"arrival_s\[1\] = -0.5: expected a finite time >= 0"),
        ({"arrival_s": [0.0, np.nan]}, r"arrival_s\[1\] = nan"),
        ({"arrival_s": [0.0]}, r"device: 2 entries for 1 arrival times"),
        ({"split": [0, 8]}, r"decisions.split\[1\] = 8: expected an integer in \[0, \d+\)"),
        ({"split": [0, -1]}, r"decisions.split\[1\] = -1"),
        ({"target": [0, 3]}, r"decisions.target\[1\] = 3: expected the index of a target"),
        ({"bw_weight": [1.0, 0.0]}, r"decisions.bw_weight\[1\] = 0.0: expected a finite"),
        ({"cpu_weight": [np.inf, 1.0]}, r"decisions.cpu_weight\[0\] = inf"),
        ({"rates": np.ones((6, 3))}, r"rates_mbps: expected shape \(6, 2\)"),
        ({"rates": np.zeros((6, 2))}, r"rates_mbps\[0, 0, 0\] = 0.0: expected a rate > 0"),
        ({"rates": np.ones((1, 6, 2)) * 10}, r"rates_mbps: 1 slots given"),
    ],
)
def test_bad_input_names_the_field_and_value(change: dict, match: str) -> None:
    core = Core(load_scenario("default"), 1, backend="numpy")
    args = {"device": [0, 1], "app": [0, 1], "arrival_s": [0.0, 0.05]}
    dec = {"split": [0, 1], "target": [0, 1], "bw_weight": [1.0, 1.0], "cpu_weight": [1.0, 1.0]}
    rates = change.pop("rates", None)
    for k, v in change.items():
        (dec if k in dec else args)[k] = v
    with pytest.raises(ValueError, match=match):
        replay(core, decisions=Decisions(*(np.asarray(dec[f]) for f in dec)),
               rates_mbps=rates, **args)  # fmt: skip


def test_a_scenario_with_batteries_is_refused() -> None:
    with pytest.raises(ValueError, match="battery"):
        replay(load_scenario("battery"), [0], [0], [0.0], Decisions.filled((1,)))
