"""The device on a shipped network (resnet18): decisions from the edge scheduler (in process
and over HTTP), every kept candidate completed against a server on loopback."""

from __future__ import annotations

import threading
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from runtime_nets import partition_kept

from edgesplit.agents.export import export_policy
from edgesplit.agents.registry import get_agent
from edgesplit.cost_models import zoo
from edgesplit.envs import ENV_ID
from edgesplit.runtime.device import (
    Device,
    FixedDecider,
    SchedulerDecider,
    ServerEndpoint,
)
from edgesplit.runtime.link import AccessPoint, EmulatedLink, SharedPacer
from edgesplit.runtime.partition import partition
from edgesplit.runtime.parts import load_parts, preprocess
from edgesplit.runtime.server import TailServer
from edgesplit.scheduler import Scheduler, load_policy
from edgesplit.scheduler.server import BackgroundServer, create_app


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    spec = get_agent("ppo")
    env = gym.make(ENV_ID, scenario="single", decision_mode=spec.decision_mode,
                   action_type=spec.action_type)  # fmt: skip
    model = spec.load_class()("MlpPolicy", env, seed=0, device="cpu", n_steps=64, batch_size=64)
    model.learn(64)
    out = export_policy(model, "ppo", {"scenario": "single"}, tmp_path_factory.mktemp("pol"))
    return Scheduler(load_policy(out))


@pytest.fixture(scope="module")
def r18(tmp_path_factory, scheduler):
    ta = scheduler.tables
    names = ta.candidate_names[ta.app_names.index("resnet18")]
    parts = load_parts(partition_kept("resnet18", names, tmp_path_factory.mktemp("r18")))
    with TailServer({"resnet18": parts}, engine="torch") as srv:
        yield parts, srv, names


def _endpoints(srv):
    return {"edge0": ServerEndpoint(*srv.address, EmulatedLink.constant(100.0, rtt_s=0.002))}


def test_every_kept_candidate_of_resnet18_completes(r18):
    parts, srv, names = r18
    img = np.random.default_rng(0).integers(0, 256, (1, 3, 224, 224), dtype=np.uint8)
    with torch.no_grad():
        whole = zoo.resnet18()(torch.from_numpy(preprocess(img))).numpy()
    for name in names:
        c = parts.candidate(name)
        target = None if c.kind == "output" else "edge0"
        dev = Device("device_0", parts, _endpoints(srv), FixedDecider(name, target))
        rec = dev.run_task(img)
        dev.close()
        np.testing.assert_allclose(dev.last_output, whole, rtol=1e-3, atol=1e-4, err_msg=name)
        assert rec.head_s >= 0 and rec.end_to_end_s >= rec.head_s


@pytest.mark.parametrize("over_http", [False, True])
def test_device_asks_the_scheduler(r18, scheduler, over_http):
    parts, srv, names = r18
    httpd = None
    if over_http:
        httpd = BackgroundServer(create_app(scheduler)).__enter__()
        decider = SchedulerDecider(httpd.url)
    else:
        decider = SchedulerDecider(scheduler)
    try:
        dev = Device("device_0", parts, _endpoints(srv), decider)
        entry = dev.snapshot_entry(waited_s=0.01, queue_length=2, backlog_s=0.05)
        req = decider.request(dev, entry)
        # the snapshot is the scheduler's request format, this device's task included
        assert req["devices"]["device_0"]["task"] == {"app": "resnet18", "waited_s": 0.01}
        assert set(req["devices"]["device_0"]["link_mbps"]) == {"edge0"}
        scheduler.decide(req)  # valid: raises RequestError otherwise
        for _ in range(3):
            rec = dev.run_task()
            assert rec.source == "policy"
            assert rec.candidate in names
            assert rec.target in (None, "edge0")
        dev.close()
    finally:
        if httpd is not None:
            httpd.__exit__(None, None, None)


def test_the_device_measures_its_link(r18):
    parts, srv, names = r18
    first = next(n for n in names if parts.candidate(n).kind == "input")
    ep = {"edge0": ServerEndpoint(*srv.address, EmulatedLink.constant(40.0), initial_mbps=5.0)}
    dev = Device("device_0", parts, ep, FixedDecider(first, "edge0"))
    assert dev.snapshot_entry()["link_mbps"] == {"edge0": 5.0}
    for _ in range(4):
        dev.run_task()
    dev.close()
    rate = dev.snapshot_entry()["link_mbps"]["edge0"]
    assert 25.0 < rate < 42.0  # moving towards the paced 40 Mbps from 5


def test_the_decisions_bandwidth_weight_reaches_the_shared_access_point(r18):
    parts, srv, names = r18
    first = next(n for n in names if parts.candidate(n).kind == "input")
    seen: list[float] = []

    class Recording(SharedPacer):
        def send(self, sock, data, weight=1.0):
            seen.append(weight)
            return super().send(sock, data, weight)

    link = EmulatedLink(Recording(AccessPoint("edge0"), 100.0))
    ep = {"edge0": ServerEndpoint(*srv.address, link)}

    def decider(weight):
        return lambda dev, entry: {"split": first, "target": "edge0", "bandwidth_weight": weight}

    dev = Device("device_0", parts, ep, decider(0.25))
    dev.run_task()
    assert seen == [0.25]
    dev.decider = decider(np.float32(0.5))  # any real number will do
    dev.run_task()
    assert seen == [0.25, 0.5]
    # a weight that is not a positive number is refused, naming the field and the value
    for bad in (0.0, -1.0, "half", True):
        dev.decider = decider(bad)
        with pytest.raises(ValueError, match=f"bandwidth_weight: {bad!r}"):
            dev.run_task()
    dev.close()


def test_idle_devices_get_the_access_points_they_reach_over_http(tmp_path):
    # two devices with disjoint access points: the request one device builds must give the
    # other, absent, device its own access point (from GET /v1/policy), or it is refused
    scenario = {
        "name": "disjoint",
        "slot_s": 0.1,
        "horizon": 20,
        "queue_capacity": 2,
        "weight_levels": [1.0],
        "applications": [{"network": "resnet18", "deadline_s": 0.3}],
        "servers": [{"name": "edge0", "device_class": "x86_cpu_1t"},
                    {"name": "edge1", "device_class": "x86_cpu_1t"}],
        "cloud": None,
        "devices": [
            {"name": "a", "count": 1, "device_class": "rpi4", "home": "edge0",
             "links": {"edge0": "wifi"}, "arrival_rate_hz": 2.0, "apps": {"resnet18": 1}},
            {"name": "b", "count": 1, "device_class": "rpi4", "home": "edge1",
             "links": {"edge1": "lte"}, "arrival_rate_hz": 2.0, "apps": {"resnet18": 1}},
        ],
    }  # fmt: skip
    spec = get_agent("ppo")
    env = gym.make(ENV_ID, scenario=scenario, decision_mode=spec.decision_mode,
                   action_type=spec.action_type)  # fmt: skip
    model = spec.load_class()("MlpPolicy", env, seed=0, device="cpu", n_steps=32, batch_size=32)
    model.learn(32)
    sched = Scheduler(load_policy(export_policy(model, "ppo", {"scenario": scenario},
                                                tmp_path / "pol")))  # fmt: skip
    partition("resnet18", tmp_path / "r18", candidates=[0], onnx=False)
    parts = load_parts(tmp_path / "r18")
    with BackgroundServer(create_app(sched)) as httpd:
        decider = SchedulerDecider(httpd.url)
        names = sched.tables.device_names
        dev = Device(names[0], parts, {"edge0": ServerEndpoint("127.0.0.1", 1)}, decider)
        req = decider.request(dev, dev.snapshot_entry())
        assert set(req["devices"][names[0]]["link_mbps"]) == {"edge0"}
        assert set(req["devices"][names[1]]["link_mbps"]) == {"edge1"}
        answer = sched.decide(req)  # valid: raises RequestError otherwise
        assert {d["device"] for d in answer["decisions"]} == set(names)


def test_behind_a_shared_access_point_the_device_reports_its_own_link_rate(r18, drained_socket):
    # another device keeps the access point busy with three times the weight: the transfer
    # takes longer than its airtime, but the rate the device reports is its link's (what
    # the simulator's devices observe; the scheduler adds the sharing by itself)
    parts, srv, names = r18
    first = next(n for n in names if parts.candidate(n).kind == "input")
    ap = AccessPoint("edge0")
    link = EmulatedLink(SharedPacer(ap, 40.0))
    dev = Device("device_0", parts, {"edge0": ServerEndpoint(*srv.address, link)},
                 FixedDecider(first, "edge0"))  # fmt: skip
    cli = drained_socket()
    busy = threading.Thread(target=SharedPacer(ap, 40.0).send, args=(cli, b"\0" * 600_000, 3.0))
    try:
        busy.start()
        time.sleep(0.01)  # the other transfer is under way
        rec = dev.run_task()
        busy.join(10)
        airtime = rec.bytes_sent * 8 / 40e6
        assert rec.send_s > 1.5 * airtime  # it waited for the other's share
        assert dev.snapshot_entry()["link_mbps"]["edge0"] == pytest.approx(40.0)
    finally:
        dev.close()
