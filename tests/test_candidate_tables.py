"""Training on a per-candidate class: the tables read its measured heads and tails.

The scenario ``tests/data/candidate_tables/scenario.yaml`` has two applications whose
networks are profiles with per-candidate classes (copies of ``docs/runtime_profiles``), an
edge server of class ``x86_cpu_1t_ort`` (tails measured whole on onnxruntime) and one device
of that class (heads measured whole). Checked here: the catalogue entry, the tables' ``H[k]``
and ``T[k]`` against ``candidate_latency``, the refusals, both simulator backends step for
step, the Gymnasium, SB3 and PettingZoo checkers, and a short PPO run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from backend_checks import assert_same_fields
from conformance import pettingzoo_suites  # tests/conformance.py
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from edgesplit.cost_models.devices import (
    NUMERIC_FIELDS,
    DeviceError,
    load_devices,
    node_latency,
    parse_devices,
)
from edgesplit.cost_models.network import load_network
from edgesplit.envs import ENV_ID, split_offload_v1
from edgesplit.envs.gym_env import SplitOffloadEnv
from edgesplit.sim.core import Core
from edgesplit.sim.scenario import ScenarioError, load_scenario
from edgesplit.sim.state import State
from edgesplit.sim.tables import build

DATA = Path(__file__).resolve().parent / "data" / "candidate_tables"
SCENARIO = DATA / "scenario.yaml"
ORT = "x86_cpu_1t_ort"


def _copy(tmp_path: Path) -> Path:
    """The test scenario and its profiles in ``tmp_path`` (to edit one of them)."""
    for f in DATA.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / SCENARIO.name


def _with(tmp_path: Path, **changes) -> Path:
    """The test scenario with top-level keys replaced, written beside its profiles."""
    path = _copy(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc.update(changes)
    path.write_text(yaml.safe_dump(doc))
    return path


# ----------------------------------------------------------------------------- catalogue


def test_per_candidate_classes_inherit_their_base_with_its_sources() -> None:
    cat = load_devices()
    base = cat["x86_cpu_1t"]
    for name in (ORT, "x86_cpu_1t_torch"):
        c = cat[name]
        assert (c.kind, c.base, c.tier, c.precision) == ("per_candidate", "x86_cpu_1t",
                                                         base.tier, base.precision)  # fmt: skip
        for key in NUMERIC_FIELDS:
            assert getattr(c, key) == getattr(base, key), (name, key)
            assert c.sources[key] == f"inherited from x86_cpu_1t: {base.sources[key]}"
        assert "profile_candidates" in c.sources["kind"] and c.description != base.description
    assert base.base == "" and cat["rpi4"].base == ""


def _catalogue_doc() -> dict:
    from edgesplit.cost_models.devices import default_catalogue_path

    return json.loads(default_catalogue_path().read_text())


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (lambda c: c.update(base="x86_cpu_9t"), "base", "not a measured or modelled class"),
        (lambda c: c.update(base="x86_cpu_1t_torch"), "base", "not a measured or modelled"),
        (lambda c: c.pop("base"), "(document)", "missing key 'base'"),
        (lambda c: c.update(p_active_w=9.0), "p_active_w", "unknown key"),
        (lambda c: c["sources"].update(p_active_w="x"), "sources.p_active_w", "inherited"),
        (lambda c: c.update(sources={}), "sources", "no source for 'kind'"),
    ],
)
def test_bad_per_candidate_entries_name_the_field(edit, field: str, words: str) -> None:
    doc = _catalogue_doc()
    edit(doc["classes"][ORT])
    with pytest.raises(DeviceError) as err:
        parse_devices(doc, "cat.json")
    want = f"classes.{ORT}" if field == "(document)" else f"classes.{ORT}.{field}"
    assert err.value.field == want and words in str(err.value), str(err.value)


def test_node_latency_refuses_a_per_candidate_class_measured_or_not() -> None:
    cat = load_devices()
    measured = load_network(DATA / "resnet18.json")
    shipped = load_network("resnet18")  # no per-candidate class at all
    for prof, words in ((measured, "candidate_latency"), (shipped, "profile_candidates")):
        with pytest.raises(DeviceError) as err:
            node_latency(prof, cat[ORT])
        assert err.value.field == f"candidate_measurements.{ORT}" and words in str(err.value)


# ----------------------------------------------------------------------------- tables


def test_tables_take_heads_and_tails_from_the_measured_medians() -> None:
    sc = load_scenario(str(SCENARIO))
    ta, ph = build(sc)
    twin = sc.to_dict()  # the same scenario with every class per node (torch eager)
    twin["servers"][0]["device_class"] = "x86_cpu_1t"
    twin["devices"][1]["device_class"] = "x86_cpu_1t"
    tb, pb = build(load_scenario(twin))
    assert ta.target_names == ["edge0"] and tb.candidate_names == ta.candidate_names
    for a, app in enumerate(sc.applications):
        prof = load_network(app.network)
        lat = prof.candidate_latency(ORT)
        node = prof.candidate_latency("x86_cpu_1t")
        keep = [[c.name for c in prof.candidates].index(n) for n in ta.candidate_names[a]]
        k = len(keep)
        assert keep == list(lat.indices), app.name  # the base class keeps what was measured
        np.testing.assert_array_equal(ta.tail_s[a, :k, 0], lat.tail_s)  # T[k]: the medians
        np.testing.assert_array_equal(ta.head_s[1, a, :k], lat.head_s)  # device_1 on ort
        # its heads' energy: the base's power x the measured medians (not the per-node heads)
        np.testing.assert_array_equal(ta.head_energy_j[1, a, :k],
                                      ph.p_active_w[1] * np.asarray(lat.head_s))  # fmt: skip
        assert ph.p_active_w[1] == load_devices()["x86_cpu_1t"].p_active_w
        np.testing.assert_array_equal(ta.head_s[0, a, :k], node.head_s[keep])  # per node
        np.testing.assert_array_equal(tb.tail_s[a, :k, 0], node.tail_s[keep])
        assert not np.array_equal(ta.tail_s[a, :k, 0], tb.tail_s[a, :k, 0])
        assert ta.tail_s[a, k - 1, 0] == 0 and ta.head_s[1, a, 0] == 0
    assert ta.tail_s[0, 0, 0] == pytest.approx(0.02096)  # alexnet's whole network, measured
    # bytes, deadlines, power and the rest do not depend on the engine
    for name in ("bytes_", "valid", "n_valid", "deadline_s", "p_active_w", "reachable"):
        np.testing.assert_array_equal(getattr(ta, name), getattr(tb, name), err_msg=name)
    np.testing.assert_array_equal(ph.p_tx_w, pb.p_tx_w)


def test_an_unmeasured_kept_candidate_is_refused_naming_it(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    prof_file = tmp_path / "resnet18.json"
    doc = json.loads(prof_file.read_text())
    m = doc["candidate_measurements"][ORT]
    j = m["candidates"].index(58)  # drop candidate 58 (add_6) from the ort measurement
    for value in m.values():
        if isinstance(value, list):
            del value[j]
    prof_file.write_text(json.dumps(doc))
    with pytest.raises(ScenarioError) as err:
        build(load_scenario(str(path)))
    msg = str(err.value)
    for words in ("field 'applications[1].network'", "application 'resnet18'", f"class '{ORT}'",
                  "candidate 58 ('add_6')", f"'candidate_measurements.{ORT}.candidates' = "
                  "[0, 67, 69]", "--candidates 0,58,67,69"):  # fmt: skip
        assert words in msg, (words, msg)


def test_a_per_candidate_class_without_its_measurement_is_refused(tmp_path: Path) -> None:
    path = _with(tmp_path, applications=[{"network": "alexnet", "deadline_s": 0.2}])
    doc = yaml.safe_load(path.read_text())
    for d in doc["devices"]:
        d["apps"] = {"alexnet": 1}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ScenarioError) as err:
        build(load_scenario(str(path)))  # the shipped alexnet profile has no ort class
    msg = str(err.value)
    assert "applications[0].network" in msg and f"candidate_measurements.{ORT}" in msg
    assert f"profile_candidates alexnet --engine ENGINE --device-class {ORT}" in msg


def test_candidates_kept_at_another_wire_precision_are_refused(tmp_path: Path) -> None:
    """At float16 on the wire the rule keeps more cuts (alexnet's candidate 3) than the ort
    class measured at float32: refused, never derived."""
    path = _with(tmp_path, costs={"wire_dtype": "float16"})
    with pytest.raises(ScenarioError) as err:
        build(load_scenario(str(path)))
    msg = str(err.value)
    assert "application 'alexnet' keeps candidate 3" in msg and f"class '{ORT}'" in msg


def test_the_runtime_partitions_the_candidates_the_tables_keep() -> None:
    """runtime.partition keeps, for a per-candidate class, what the simulator keeps."""
    from edgesplit.runtime.partition import kept_candidates, scenario_candidates

    for net in ("alexnet", "resnet18"):
        prof = load_network(DATA / f"{net}.json")
        measured = list(prof.candidate_measurements[ORT].indices)
        assert kept_candidates(prof, [ORT]) == measured == kept_candidates(prof, ["x86_cpu_1t"])
        assert scenario_candidates(prof, [str(SCENARIO)]) == set(measured)


# ----------------------------------------------------------------------------- simulator


def test_numba_step_matches_numpy_on_measured_tables() -> None:
    pytest.importorskip("numba")
    sc = load_scenario(str(SCENARIO))
    e = 3
    ref, fast = Core(sc, e, backend="numpy"), Core(sc, e, backend="numba")
    assert (ref.backend, fast.backend) == ("numpy", "numba")
    keys = (np.arange(e, dtype=np.uint64) + np.uint64(11)) * np.uint64(0x9E3779B9)
    ref.reset(keys)
    fast.reset(keys)
    ta, rng = ref.tables, np.random.default_rng(0)
    offloaded = 0
    for step in range(200):
        where = f"step {step}"
        np.testing.assert_array_equal(fast.observe(), ref.observe(), err_msg=where)
        np.testing.assert_array_equal(fast.masks(), ref.masks(), err_msg=where)
        kind = ("multidiscrete", "continuous", "discrete")[step % 3]
        n = ta.n_devices
        if kind == "multidiscrete":
            act = rng.integers(0, ta.nvec, size=(e, n, len(ta.nvec)))
        elif kind == "discrete":
            act = rng.integers(0, int(np.prod(ta.action_nvec())), size=(e, n))
        else:
            act = rng.uniform(-1.0, 1.0, size=(e, n, ta.continuous_width))
        ra, rb = ref.step_action(act, kind), fast.step_action(act, kind)
        assert_same_fields(ra, rb, ra.__dataclass_fields__, where, atol=1e-14)
        assert_same_fields(ref.state, fast.state, State.names(), where, atol=1e-14)
        offloaded += int((ra.has_task & (ra.split < ta.n_valid.min() - 1)).sum())
    assert offloaded > 50  # tails on the measured class were really run


def test_gymnasium_sb3_and_pettingzoo_checkers_pass() -> None:
    """The suites tests/test_envs.py runs on the shipped scenarios."""
    kw = {"scenario": str(SCENARIO)}
    gym_check_env(gym.make(ENV_ID, **kw).unwrapped, skip_render_check=False)
    sb3_check_env(SplitOffloadEnv(**kw))
    pettingzoo_suites(split_offload_v1, **kw)


def test_ppo_trains_on_the_measured_class(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from edgesplit.agents.config import register_configs
    from edgesplit.agents.training import train

    register_configs()
    configs = str(Path(__file__).resolve().parents[1] / "configs")
    overrides = [
        "algo=ppo",
        f"env.scenario={SCENARIO}",
        "env.max_cycles=20",
        "total_timesteps=300",
        "checkpoint_every=300",
        "n_envs=2",
        "algo.n_envs=null",
        "eval.episodes=2",
        "eval.baselines=[local,neurosurgeon]",
    ]
    with initialize_config_dir(config_dir=configs, version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    cfg["algo"]["kwargs"].update(n_steps=64, batch_size=64)
    s = train(cfg, tmp_path)
    assert s["total_timesteps"] >= 300 and (tmp_path / "model" / "model.zip").is_file()
    assert {r["policy"] for r in s["eval"]} == {"ppo", "local", "neurosurgeon"}
    assert all(np.isfinite(r["cost_per_slot"]) for r in s["eval"])
