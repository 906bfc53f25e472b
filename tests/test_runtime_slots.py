"""The slot clock: the runtime's queue discipline is the simulator's (the same slots decide
the same tasks, the same tasks drop), a device's heads run one at a time in the order
decided, a device's tasks overlap on the wire, and the scheduler decides a slot's tasks in
one request."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import torch
from runtime_nets import INPUT_SHAPE, partition_tiny, tiny_resnet

from edgesplit.runtime.device import Device, FixedDecider, SchedulerDecider, ServerEndpoint
from edgesplit.runtime.link import AccessPoint, EmulatedLink, SharedPacer
from edgesplit.runtime.parts import load_parts, preprocess
from edgesplit.runtime.server import TailServer
from edgesplit.runtime.slots import HeadLine, slot_schedule
from edgesplit.sim.core import Core
from edgesplit.sim.replay import replay
from edgesplit.sim.scenario import load_scenario
from edgesplit.sim.schema import Decisions


@pytest.mark.parametrize("rate_hz", [3.0, 12.0, 40.0])  # light load, queues, drops
@pytest.mark.parametrize("seed", [0, 1])
def test_slot_schedule_is_the_replays_queue_discipline(rate_hz, seed):
    core = Core(load_scenario("default"), 1, backend="numpy")
    ta = core.tables
    rng = np.random.default_rng(seed)
    dev, app, arr = [], [], []
    for i in range(core.n_devices):
        t = np.cumsum(rng.exponential(1.0 / rate_hz, size=int(3 * rate_hz) + 2))
        t = t[t < 3.0]
        # arrivals on a slot's edge too: the bucketing must be the replay's own
        t = np.sort(np.concatenate([t, [0.3, 0.3, 1.0]]))
        dev += [i] * len(t)
        app += list(rng.integers(0, len(ta.app_names), size=len(t)))
        arr += list(t)
    dev, app, arr = np.array(dev), np.array(app), np.array(arr)
    last = ta.n_valid[app] - 1  # every task whole on the device: any decision would do
    dec = Decisions(last, ta.home[dev], np.ones(len(arr)), np.ones(len(arr)))
    rp = replay(core, dev, app, arr, dec)
    seen_drop = False
    for i in range(core.n_devices):
        mine = np.flatnonzero(dev == i)
        mine = mine[np.argsort(arr[mine], kind="stable")]
        slots, dropped, queued = slot_schedule(arr[mine], core.slot_s, ta.queue_capacity)
        np.testing.assert_array_equal(dropped, rp.dropped[mine])
        np.testing.assert_array_equal(slots, np.where(rp.dropped[mine], -1, rp.slot[mine]))
        assert np.all((queued >= 1) == ~dropped) and queued.max() <= ta.queue_capacity
        # one decision per slot and device, never before the slot after the arrival
        kept = slots[~dropped]
        assert np.all(np.diff(kept) >= 1)
        assert np.all(kept >= np.floor(arr[mine][~dropped] / core.slot_s) + 1)
        seen_drop |= bool(dropped.any())
    if rate_hz >= 40:
        assert seen_drop  # the case this parameter is for


def test_slot_schedule_refuses_bad_input():
    with pytest.raises(ValueError, match="slot_s = 0"):
        slot_schedule([0.1], 0, 4)
    with pytest.raises(ValueError, match="capacity = 0"):
        slot_schedule([0.1], 0.1, 0)
    with pytest.raises(ValueError, match="capacity = True"):
        slot_schedule([0.1], 0.1, True)
    with pytest.raises(ValueError, match=r"arrival_s\[1\] = -1.0"):
        slot_schedule([0.1, -1.0], 0.1, 4)
    with pytest.raises(ValueError, match=r"arrival_s\[2\] = 0.1: arrivals must be in order"):
        slot_schedule([0.1, 0.2, 0.1], 0.1, 4)
    with pytest.raises(ValueError, match=r"arrival_s\[0\] = nan"):
        slot_schedule([float("nan")], 0.1, 4)
    slots, dropped, queued = slot_schedule([], 0.1, 4)
    assert slots.size == dropped.size == queued.size == 0


def test_head_line_runs_heads_one_at_a_time_in_order_and_counts_the_backlog():
    running, order, overlap = [], [], []
    lock = threading.Lock()

    def run(job):
        with lock:
            running.append(job)
            overlap.append(len(running))
        time.sleep(0.02)
        with lock:
            running.remove(job)
            order.append(job)

    line = HeadLine(run)
    for k in range(5):
        line.put(k, 0.02)
    time.sleep(0.005)  # the first head is running, four queued
    b = line.backlog_s()
    assert 0.06 < b <= 0.10 + 1e-9
    line.close()
    assert order == [0, 1, 2, 3, 4] and max(overlap) == 1
    assert line.backlog_s() == 0.0


def test_head_line_reraises_a_failed_head_on_close_and_runs_the_rest():
    done = []

    def run(job):
        if job == "bad":
            raise RuntimeError("head failed")
        done.append(job)

    line = HeadLine(run)
    for job in ("a", "bad", "b"):
        line.put(job, 0.0)
    with pytest.raises(RuntimeError, match="head failed"):
        line.close()
    assert done == ["a", "b"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    parts = load_parts(partition_tiny(tmp_path_factory.mktemp("tiny")))
    with TailServer({"tiny": parts}, engine="onnxruntime") as srv:
        yield parts, srv


def test_a_device_overlaps_its_tasks_on_the_wire_and_each_gets_its_own_result(tiny):
    parts, srv = tiny
    # two tensors cross this cut: a frame over the 4096 bytes a rate is measured from
    name = next(n for n, c in parts.candidates.items() if len(c.cut) == 2)
    ap = AccessPoint("edge0")
    # a slow link: the second task's head runs while the first's cut is on its way; the
    # device starts from another rate than it will measure
    ep = {"edge0": ServerEndpoint(*srv.address, EmulatedLink(SharedPacer(ap, 2.0), 0.01),
                                  initial_mbps=10.0)}  # fmt: skip
    dev = Device("d0", parts, ep, FixedDecider(name, "edge0"), engine="onnxruntime", app="tiny")
    rng = np.random.default_rng(3)
    imgs = [rng.integers(0, 256, INPUT_SHAPE, dtype=np.uint8) for _ in range(3)]
    pending = [dev.start_task(img, decision={"split": name, "target": "edge0"},
                              entry={"link_mbps": {}}) for img in imgs]  # fmt: skip
    recs: list = [None] * 3
    threads = [threading.Thread(target=lambda k=k: recs.__setitem__(k, dev.finish_task(pending[k])))
               for k in range(3)]  # fmt: skip
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    dev.close()
    assert len(dev._conn["edge0"]._all) >= 2  # a connection per task in flight
    with torch.no_grad():
        for k, img in enumerate(imgs):
            whole = tiny_resnet()(torch.from_numpy(preprocess(img))).numpy()
            np.testing.assert_allclose(pending[k].output, whole, atol=1e-4 * np.abs(whole).max())
            assert recs[k].candidate == name and recs[k].target == "edge0"
            assert recs[k].decide_s == 0.0  # decided outside: what the caller said
    # each task measured the link at its own airtime: the rate the device reports is its own
    assert dev.rates_mbps["edge0"] == pytest.approx(2.0, rel=1e-6)


def test_a_shared_pacers_airtime_is_each_sending_threads_own():
    pacer = SharedPacer(AccessPoint("ap"), 50.0)
    sizes = [20_000, 60_000, 5_000]
    seen: dict[int, float] = {}

    def drain(sock, n):
        got = 0
        while got < n:
            got += len(sock.recv(1 << 16))

    def send(n):
        a, b = socket.socketpair()
        reader = threading.Thread(target=drain, args=(b, n))
        reader.start()
        pacer.send(a, b"x" * n)
        reader.join()
        time.sleep(0.02)  # the other threads send meanwhile
        seen[n] = pacer.last_airtime_s
        a.close()
        b.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in sizes]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert seen == {n: pytest.approx(n * 8 / 50e6) for n in sizes}
    assert pacer.last_airtime_s is None  # this thread sent nothing


def test_a_decision_given_to_start_task_is_used_and_a_bad_target_refused_before_the_head(tiny):
    parts, srv = tiny
    ep = {"edge0": ServerEndpoint(*srv.address, EmulatedLink.constant(100.0))}
    dev = Device("d0", parts, ep, FixedDecider("input", "edge0"), engine="onnxruntime",
                 app="tiny")  # fmt: skip
    cut = next(n for n, c in parts.candidates.items() if c.kind == "intermediate")
    p = dev.start_task(decision={"split": cut, "target": None}, decide_s=0.25)
    rec = dev.finish_task(p)
    assert rec.target is None and rec.candidate == cut and rec.decide_s == 0.25
    with pytest.raises(ValueError, match="decision target 'edge9'"):
        dev.start_task(decision={"split": cut, "target": "edge9"})
    dev.close()


class _Recording:
    """A scheduler stand-in that records each request and answers a fixed decision."""

    def __init__(self, devices):
        self.requests = []
        self._devices = devices

    class policy:  # what SchedulerDecider reads of a scheduler
        @staticmethod
        def describe():
            return {"devices": ["a", "b", "c"],
                    "device_links": {d: ["edge0"] for d in ("a", "b", "c")}}  # fmt: skip

    def decide(self, req):
        self.requests.append(req)
        return {"decisions": [
            {"device": d, "split": "input" if e["task"] else None, "target": "edge0",
             "source": "policy", "bandwidth_weight": 0.5, "compute_weight": 0.25,
             "offload_target": "edge0"}
            for d, e in req["devices"].items()]}  # fmt: skip


def test_the_scheduler_decides_a_slots_tasks_in_one_request():
    sched = _Recording(["a", "b", "c"])
    dec = SchedulerDecider(sched)
    entry = {"task": {"app": "tiny", "waited_s": 0.1}, "queue_length": 2, "backlog_s": 0.0,
             "link_mbps": {"edge0": 20.0}}  # fmt: skip
    out = dec.decide_joint({"a": entry, "c": entry}, {"edge0": 0.05}, slot=7)
    assert len(sched.requests) == 1
    req = sched.requests[0]
    assert req["slot"] == 7 and req["server_backlog_s"] == {"edge0": 0.05}
    assert req["devices"]["a"]["task"] == entry["task"] and req["devices"]["c"]["queue_length"] == 2
    assert req["devices"]["b"]["task"] is None  # not heard of: idle, with a link
    assert req["devices"]["b"]["link_mbps"] == {"edge0": 20.0}
    assert set(out) == {"a", "c"}
    assert out["a"] == {"split": "input", "target": "edge0", "source": "policy",
                        "bandwidth_weight": 0.5, "compute_weight": 0.25,
                        "offload_target": "edge0"}  # fmt: skip
    # decided: the board holds them idle again for the next request
    dec.decide_joint({"b": entry}, {})
    assert sched.requests[1]["devices"]["a"]["task"] is None
    assert "slot" not in sched.requests[1]


@pytest.mark.parametrize("head_s", [-0.1, float("nan"), float("inf"), "0.1", True, None])
def test_head_line_refuses_a_bad_head_time_naming_it(head_s):
    line = HeadLine(lambda job: None)
    with pytest.raises(ValueError, match=r"head_s = .*expected a finite number of seconds >= 0"):
        line.put("a", head_s)
    line.close()
    assert line.backlog_s() == 0.0  # nothing was queued


def test_head_line_refuses_a_job_after_close():
    done = []
    line = HeadLine(done.append)
    line.put("a", 0.0)
    line.close()
    with pytest.raises(RuntimeError, match="closed"):
        line.put("b", 0.0)  # it would never run
    assert done == ["a"]


def test_slot_schedule_takes_numpy_numbers_and_refuses_a_bool_slot():
    slots, _, _ = slot_schedule(np.array([0.01, 0.02]), np.float32(0.1), np.int64(2))
    assert slots.tolist() == [1, 2]
    with pytest.raises(ValueError, match="slot_s = True"):
        slot_schedule([0.1], True, 4)


class _SlowReads(dict):
    """A dict whose reads take a while: widens any read-modify-write race on it."""

    def __getitem__(self, key):
        value = super().__getitem__(key)
        time.sleep(0.1)
        return value


def test_overlapping_offloads_each_fold_their_rate_into_the_devices_estimate(tiny):
    parts, srv = tiny
    # two tensors cross this cut: a frame over the 4096 bytes a rate is measured from
    name = next(n for n, c in parts.candidates.items() if len(c.cut) == 2)
    ep = {"edge0": ServerEndpoint(*srv.address, EmulatedLink(SharedPacer(AccessPoint("e"), 2.0)),
                                  initial_mbps=10.0)}  # fmt: skip
    dev = Device("d0", parts, ep, FixedDecider(name, "edge0"), engine="onnxruntime", app="tiny",
                 rate_ewma_weight=0.5)  # fmt: skip
    dev.rates_mbps = _SlowReads(dev.rates_mbps)
    pending = [dev.start_task(decision={"split": name, "target": "edge0"}) for _ in range(2)]
    threads = [threading.Thread(target=dev.finish_task, args=(p,)) for p in pending]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    dev.close()
    # two transfers measured at 2 Mbps (their airtime) from 10: 10 -> 6 -> 4; a lost
    # update (both folded into the same old value) leaves 6
    assert dev.rates_mbps["edge0"] == pytest.approx(4.0)


def test_a_joint_request_carries_the_idle_devices_state_given_with_it():
    sched = _Recording(["a", "b", "c"])
    dec = SchedulerDecider(sched)
    entry = {"task": {"app": "tiny", "waited_s": 0.0}, "queue_length": 1, "backlog_s": 0.0,
             "link_mbps": {"edge0": 20.0}}  # fmt: skip
    now = {**entry, "backlog_s": 0.3, "link_mbps": {"edge0": 7.0}}  # b: idle, still busy
    out = dec.decide_joint({"a": entry}, {}, slot=1, idle={"b": now})
    sent = sched.requests[0]["devices"]["b"]
    assert sent["task"] is None and sent["queue_length"] == 0
    assert sent["backlog_s"] == 0.3 and sent["link_mbps"] == {"edge0": 7.0}
    assert set(out) == {"a"}  # decisions only for the pending tasks


@pytest.mark.parametrize("slot", [-1, 2.5, True, "3"])
def test_a_joint_request_refuses_a_bad_slot_naming_it(slot):
    dec = SchedulerDecider(_Recording(["a", "b", "c"]))
    entry = {"task": {"app": "tiny"}, "link_mbps": {"edge0": 20.0}}
    with pytest.raises(ValueError, match=r"slot = .*expected an integer >= 0"):
        dec.decide_joint({"a": entry}, {}, slot=slot)
    assert dec.board == {}  # refused before anything was written
