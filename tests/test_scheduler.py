"""The edge scheduler: what it encodes and decides equals what the environment does, bad
requests and bad policy files are refused naming the field, and the HTTP service behaves."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from edgesplit.agents.baselines import make_baseline
from edgesplit.agents.export import export_policy
from edgesplit.agents.registry import get_agent
from edgesplit.envs import ENV_ID, ENV_ID_V0
from edgesplit.scheduler import (
    PolicyError,
    RequestError,
    Scheduler,
    SchedulerError,
    load_policy,
)
from edgesplit.scheduler.__main__ import example_request, main
from edgesplit.scheduler.policy import policy_digest
from edgesplit.scheduler.server import BackgroundServer, Limits, create_app

pytest.importorskip("onnxruntime")


def _export(algo: str, scenario: str, out: Path) -> Path:
    spec = get_agent(algo)
    env = gym.make(
        ENV_ID, scenario=scenario, decision_mode=spec.decision_mode, action_type=spec.action_type
    )
    kw = {"n_steps": 64, "batch_size": 64} if spec.on_policy else {"learning_starts": 0}
    model = spec.load_class()("MlpPolicy", env, seed=0, device="cpu", **kw)
    model.learn(64)
    return export_policy(model, algo, {"scenario": scenario}, out)


@pytest.fixture(scope="module")
def ppo_dir(tmp_path_factory) -> Path:
    return _export("ppo", "default", tmp_path_factory.mktemp("ppo"))


@pytest.fixture(scope="module")
def single_dir(tmp_path_factory) -> Path:
    return _export("ppo", "single", tmp_path_factory.mktemp("single"))


@pytest.fixture(scope="module")
def dqn_dir(tmp_path_factory) -> Path:
    return _export("dqn", "default", tmp_path_factory.mktemp("dqn"))


def _request(core, e: int = 0) -> dict:
    """The snapshot of environment ``e`` of a core, as a scheduler would be sent it."""
    ta = core.tables
    has, app = core.pending()
    wait = core._pending().wait
    devices = {}
    for i, name in enumerate(ta.device_names):
        task = (
            {"app": ta.app_names[app[e, i]], "waited_s": float(wait[e, i])} if has[e, i] else None
        )
        devices[name] = {
            "task": task,
            "queue_length": int(core.qlen[e, i]),
            "backlog_s": float(core.dev_backlog[e, i]),
            "link_mbps": {
                ap: float(core.state.rates_seen[e, i, m])
                for m, ap in enumerate(ta.access_point_names)
                if ta.reachable[i, m]
            },
        }
    return json.loads(  # through JSON, as over the wire
        json.dumps(
            {
                "slot": int(core.t[e]),
                "devices": devices,
                "server_backlog_s": {
                    t: float(core.state.srv_seen[e, j]) for j, t in enumerate(ta.target_names)
                },
            }
        )
    )


def test_joint_policy_sees_and_decides_what_the_env_gives(ppo_dir: Path) -> None:
    sched = Scheduler(load_policy(ppo_dir))
    env = gym.make(ENV_ID, scenario="default")
    obs, info = env.reset(seed=5)
    core = env.unwrapped.core
    for _ in range(60):
        req = _request(core)
        # the same observation, bit for bit, from a JSON snapshot
        np.testing.assert_array_equal(sched.observation(req).reshape(-1), obs)
        ans = sched.decide(req)
        act = sched.policy.act(obs[None], info["action_mask"][None])[0]
        obs, _, _, trunc, info = env.step(act)
        has = info["has_task"]
        for i, d in enumerate(ans["decisions"]):
            assert d["task"] == bool(has[i])
            if d["task"]:
                assert d["source"] == "policy"
                assert d["split_index"] == info["split"][i]
                if not d["runs_locally"]:
                    assert d["target"] == core.tables.target_names[info["target"][i]]
                # the target a forced full offload goes to, local split or not
                assert d["offload_target"] == core.tables.target_names[info["target"][i]]
                assert d["bandwidth_weight"] == info["bw_weight"][i]
                assert d["compute_weight"] == info["cpu_weight"][i]
        assert not trunc


def test_sequential_policy_decides_as_in_the_env(dqn_dir: Path) -> None:
    sched = Scheduler(load_policy(dqn_dir))
    env = gym.make(ENV_ID, scenario="default", decision_mode="sequential")
    obs, info = env.reset(seed=8)
    core = env.unwrapped.core
    checked = 0
    for _ in range(20):  # slots
        ans = sched.decide(_request(core))
        while True:
            act = sched.policy.act(obs[None], info["action_mask"][None])[0]
            obs, _, _, trunc, info = env.step(act)
            if "split" in info:  # the slot resolved
                break
        for i, d in enumerate(ans["decisions"]):
            if d["task"]:
                assert d["split_index"] == info["split"][i]
                assert d["bandwidth_weight"] == info["bw_weight"][i]
                # the env's applied target (reachable-corrected), where a forced full
                # offload goes, local split or not (a discrete action's target may be one
                # the device cannot reach)
                tg = core.tables.target_names[info["target"][i]]
                assert d["offload_target"] == tg
                assert d["target"] == (None if d["runs_locally"] else tg)
                checked += 1
        if trunc:
            break
    assert checked > 20


def _links(req: dict, dev: str) -> dict:
    return req["devices"][dev]["link_mbps"]


def _task(req: dict, dev: str) -> dict:
    return req["devices"][dev]["task"]


def _base(sched: Scheduler) -> dict:
    return example_request(sched)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r["devices"].pop("pi_0"), "devices.pi_0"),
        (lambda r: r["devices"].update(ghost={"task": None, "link_mbps": {}}), "devices.ghost"),
        (lambda r: _links(r, "pi_1").update(edge0=-3.0), "devices.pi_1.link_mbps.edge0"),
        (lambda r: _links(r, "pi_1").update(edge9=3.0), "devices.pi_1.link_mbps.edge9"),
        (lambda r: r["devices"]["pi_0"].update(queue_length=99), "devices.pi_0.queue_length"),
        (lambda r: r["devices"]["pi_0"].update(queue_length=0), "devices.pi_0.queue_length"),
        (lambda r: r["devices"]["pi_0"].update(backlog_s="soon"), "devices.pi_0.backlog_s"),
        (lambda r: _task(r, "pi_0").update(waited_s=float("nan")), "devices.pi_0.task.waited_s"),
        (lambda r: r["devices"]["pi_0"]["task"].update(app=7), "devices.pi_0.task.app"),
        (lambda r: r["devices"]["pi_0"].update(colour="red"), "devices.pi_0.colour"),
        (lambda r: r.update(slot=-1), "slot"),
        (lambda r: r["devices"]["pi_0"].update(backlog_s=10**400), "devices.pi_0.backlog_s"),
        (lambda r: r["server_backlog_s"].update(mars=0.0), "server_backlog_s.mars"),
        (lambda r: r["devices"]["pi_0"].update(queue_length=1.5), "devices.pi_0.queue_length"),
        (lambda r: r.update(slot=True), "slot"),
    ],
)  # fmt: skip
def test_bad_requests_name_the_field(ppo_dir: Path, mutate, field: str) -> None:
    sched = Scheduler(load_policy(ppo_dir))
    req = _base(sched)
    mutate(req)
    with pytest.raises(RequestError) as ei:
        sched.decide(req)
    assert ei.value.field == field
    assert field in str(ei.value)
    assert isinstance(ei.value, SchedulerError) and isinstance(ei.value, ValueError)


def test_integral_floats_are_integers(ppo_dir: Path) -> None:
    """JSON has one number type (and JSON Schema calls 2.0 an integer): ``2.0`` is taken as
    the integer 2, and gets the same answer."""
    sched = Scheduler(load_policy(ppo_dir))
    req = _base(sched)
    as_floats = json.loads(json.dumps(req))
    as_floats["slot"] = 3.0
    as_floats["devices"]["pi_0"]["queue_length"] = 2.0
    req["slot"], req["devices"]["pi_0"]["queue_length"] = 3, 2
    assert sched.decide(as_floats) == sched.decide(req)


def test_unknown_applications_and_policy_failures_fall_back(single_dir: Path) -> None:
    sched = Scheduler(load_policy(single_dir))
    assert "mobilenet_v2" not in sched.tables.app_names
    dev = sched.tables.device_names[0]
    req = _base(sched)
    req["devices"][dev]["task"]["app"] = "mobilenet_v2"  # a shipped profile, not trained on
    (d,) = sched.decide(req)["decisions"]
    assert d["source"] == "neurosurgeon" and "not one the policy was trained on" in d["note"]
    assert d["app"] == "mobilenet_v2" and isinstance(d["split"], str)
    req["devices"][dev]["task"]["app"] = "no_such_net"  # no profile anywhere
    (d,) = sched.decide(req)["decisions"]
    assert d["source"] == "local" and "no_such_net" in d["note"] and d["runs_locally"]
    for path in ("/etc/hostname", str(Path(__file__)), "../x.json"):  # never read as files
        req["devices"][dev]["task"]["app"] = path
        (d,) = sched.decide(req)["decisions"]
        assert d["source"] == "local" and "no shipped profile" in d["note"]
        assert "Errno" not in d["note"] and "Expecting" not in d["note"]

    def broken(*a, **k):
        raise RuntimeError("onnx session lost")

    sched.policy.act = broken  # type: ignore[method-assign]
    ans = sched.decide(_base(sched))
    assert "onnx session lost" in ans["fallback"]
    assert {d["source"] for d in ans["decisions"] if d["task"]} == {"neurosurgeon"}


def _write(d: Path, man: dict) -> None:
    """Write a manifest with its digest recomputed (so the consistency checks are the ones
    that must catch the edit)."""
    man = {**man, "digest": policy_digest(man, d / "policy.onnx")}
    (d / "policy.json").write_text(json.dumps(man))


def test_policy_files_are_checked(ppo_dir: Path, tmp_path) -> None:
    d = tmp_path / "p"
    shutil.copytree(ppo_dir, d)
    load_policy(d)  # intact
    with pytest.raises(PolicyError, match=r"policy\.json"):
        load_policy(tmp_path / "nowhere")
    man = json.loads((d / "policy.json").read_text())
    _write(d, {**man, "format_version": 99})
    with pytest.raises(PolicyError, match=r"format_version.*99"):
        load_policy(d)
    _write(d, {k: v for k, v in man.items() if k != "tables"})
    with pytest.raises(PolicyError, match="tables"):
        load_policy(d)
    for field, bad in (("rate_scale_mbps", 0), ("queue_capacity", -1), ("horizon", True)):
        _write(d, {**man, "tables": {**man["tables"], field: bad}})
        with pytest.raises(PolicyError, match=rf"tables\.{field}"):
            load_policy(d)
    (d / "policy.json").write_text("{not json")
    with pytest.raises(PolicyError, match="not readable JSON"):
        load_policy(d)
    (d / "policy.json").write_text(json.dumps(man))
    load_policy(d)
    with (d / "policy.onnx").open("ab") as f:
        f.write(b"\0")  # tampered
    with pytest.raises(PolicyError, match=r"digest\.value"):
        load_policy(d)


@pytest.fixture()
def server(ppo_dir: Path):
    sched = Scheduler(load_policy(ppo_dir))
    limits = Limits(max_body=64 * 1024)
    with BackgroundServer(create_app(sched, limits), limits) as srv:
        yield srv.url, sched


def _call(url: str, method: str = "GET", body: bytes | None = None, ctype="application/json"):
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_http_service(server) -> None:
    url, sched = server
    assert _call(url + "/healthz") == (200, {"status": "ok"})
    status, pol = _call(url + "/v1/policy")
    assert (
        status == 200 and pol["algorithm"] == "ppo" and pol["devices"] == sched.tables.device_names
    )
    # each device's links, exactly the keys its requests give (example_request is built from
    # the tables independently)
    example = example_request(sched)["devices"]
    assert pol["device_links"] == {d: sorted(v["link_mbps"]) for d, v in example.items()}
    good = json.dumps(example_request(sched)).encode()
    status, ans = _call(url + "/v1/decide", "POST", good)
    assert status == 200 and len(ans["decisions"]) == sched.tables.n_devices
    assert ans == json.loads(json.dumps(sched.decide(example_request(sched))))
    bad = example_request(sched)
    bad["devices"]["pi_0"]["backlog_s"] = -1
    status, err = _call(url + "/v1/decide", "POST", json.dumps(bad).encode())
    assert status == 400 and err["field"] == "devices.pi_0.backlog_s" and err["value"] == -1
    assert _call(url + "/v1/decide", "POST", b"{oops")[0] == 400
    assert _call(url + "/v1/decide", "POST", b'{"devices": NaN}')[0] == 400
    assert _call(url + "/v1/decide", "POST", good, ctype="text/plain")[0] == 415
    assert _call(url + "/v1/decide", "POST", b" " * (65 * 1024))[0] == 413
    assert _call(url + "/v1/decide")[0] == 405
    assert _call(url + "/nope")[0] == 404
    # an error answered before the body was read closes the connection: the unread body is
    # never parsed as the next request
    import http.client

    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/v1/decide", body=b'{"a": 1}', headers={"Content-Type": "text/plain"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 415 and resp.getheader("Connection") == "close"
    conn.close()
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(
        "POST", "/v1/decide", body=b"{}", headers={"Content-Type": "application/json",
                                                  "Content-Length": "\u00b2"},
    )  # fmt: skip
    assert conn.getresponse().status == 400  # refused by the HTTP parser
    conn.close()


def test_cli_example_and_decide(ppo_dir: Path, tmp_path, capsys) -> None:
    assert main(["example", "--policy", str(ppo_dir)]) == 0
    req = tmp_path / "req.json"
    req.write_text(capsys.readouterr().out)
    assert main(["decide", "--policy", str(ppo_dir), str(req)]) == 0
    ans = json.loads(capsys.readouterr().out)
    assert ans["policy"]["algorithm"] == "ppo"
    assert main(["decide", "--policy", str(tmp_path / "none"), str(req)]) == 2


def test_scheduler_needs_no_torch_gymnasium_or_numba(single_dir: Path) -> None:
    """The deployment path: numpy, onnxruntime and the cost models, nothing else."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('gymnasium', 'torch', 'pettingzoo', 'stable_baselines3', 'numba'):\n"
        "    sys.modules[m] = None\n"
        "from edgesplit.scheduler import Scheduler, load_policy\n"
        "from edgesplit.scheduler.__main__ import example_request\n"
        "import edgesplit.scheduler.server\n"
        f"s = Scheduler(load_policy({str(single_dir)!r}))\n"
        "req = example_request(s)\n"
        "assert s.decide(req)['decisions'][0]['source'] == 'policy'\n"
        "dev = s.tables.device_names[0]\n"
        "req['devices'][dev]['task']['app'] = 'mobilenet_v2'\n"
        "assert s.decide(req)['decisions'][0]['source'] == 'neurosurgeon'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_fallback_rule_is_the_neurosurgeon_baseline_on_the_environment(
    single_dir: Path,
) -> None:
    """With the policy failing, the scheduler's Neurosurgeon rule takes, for the one device
    of `single`, the split and target whose task cost, as the environment itself then
    measures it, is the lowest (v0, so that the request's rates and backlogs are the true
    ones): the rule judges with the environment's own model, and decides as the
    `neurosurgeon_privileged` baseline does."""
    import copy

    sched = Scheduler(load_policy(single_dir))
    sched.policy.act = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("down"))  # type: ignore[method-assign]
    env = gym.make(ENV_ID_V0, scenario="single").unwrapped
    ta = env.core.tables
    checked = 0
    for seed in range(6):
        env.reset(seed=seed)
        for _ in range(15):  # slots, each from a fresh state of its own
            env.step(env.action_space.sample())
            has, app = env.core.pending()
            if not has[0, 0]:
                continue
            (d,) = sched.decide(_request(env.core))["decisions"]
            assert d["source"] == "neurosurgeon"
            a = int(app[0, 0])
            lat = {}
            for s in range(int(ta.n_valid[a])):
                for j in range(ta.n_targets):
                    trial = copy.deepcopy(env.core)
                    act = np.array([[[s, j, ta.n_levels - 1, ta.n_levels - 1]]])
                    lat[s, j] = float(trial.step_action(act, "multidiscrete").cost[0, 0])
            best = min(lat.values())
            chosen = (d["split_index"], ta.target_names.index(d["target"]) if d["target"] else 0)
            assert lat[chosen] == pytest.approx(best, rel=1e-9), (lat, chosen)
            rule = make_baseline("neurosurgeon_privileged").decide(env.core)
            assert (int(rule.split[0, 0]), int(rule.target[0, 0])) == (
                d["split_index"],
                ta.target_names.index(d["target"]) if d["target"] else int(rule.target[0, 0]),
            )
            checked += 1
    assert checked >= 10
