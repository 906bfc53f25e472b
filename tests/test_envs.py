"""The environment against the upstream conformance suites and our own properties."""

from __future__ import annotations

import functools
import types

import gymnasium as gym
import numpy as np
import pytest
from conformance import pettingzoo_suites  # tests/conformance.py
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from edgesplit.envs import ENV_ID, ENV_ID_V0, split_offload_v0, split_offload_v1
from edgesplit.envs.gym_env import SplitOffloadEnv
from edgesplit.envs.vector_env import SplitOffloadVectorEnv
from edgesplit.sim.encoding import ActionError
from edgesplit.sim.scenario import ScenarioError, available_scenarios, load_scenario

SCENARIOS = available_scenarios()
REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
MODES = [
    ("joint", "multidiscrete"),
    ("joint", "continuous"),
    ("sequential", "discrete"),
    ("sequential", "multidiscrete"),
    ("sequential", "continuous"),
]
PZ_ACTIONS = ["discrete", "multidiscrete", "continuous"]


def test_shipped_scenarios() -> None:
    assert {"default", "single", "dense", "three_tier"} <= set(SCENARIOS)
    sc = load_scenario("default")
    assert len({d.device_class for d in sc.devices}) == 3
    assert len({s.device_class for s in sc.servers}) == 2 and sc.cloud is not None
    assert len(load_scenario("dense").devices) >= 16
    assert len(load_scenario("dense").servers) == 3


@pytest.mark.parametrize(
    ("patch", "field", "value"),
    [
        ({"bogus": 1}, "bogus", None),
        ({"slot_s": -0.1}, "slot_s", "-0.1"),
        ({"horizon": 2.5}, "horizon", "2.5"),
        ({"weight_levels": [0.5, 1.5]}, "weight_levels[1]", "1.5"),
        ({"costs": {"wire_dtype": "float8"}}, "costs.wire_dtype", "float8"),
        ({"reward": {"team_weight": 2}}, "reward.team_weight", "2"),
    ],
)
def test_bad_scenarios_name_field_and_value(patch: dict, field: str, value: str | None) -> None:
    d = load_scenario("single").to_dict()
    d.update(patch)
    with pytest.raises(ScenarioError) as ei:
        load_scenario(d)
    assert field in str(ei.value)
    if value is not None:
        assert value in str(ei.value)


def test_bad_device_fields() -> None:
    d = load_scenario("single").to_dict()
    d["devices"][0]["home"] = "nowhere"
    with pytest.raises(ScenarioError, match=r"devices\[0\]\.home.*nowhere"):
        load_scenario(d)
    d = load_scenario("single").to_dict()
    d["devices"][0]["device_class"] = "pdp11"
    with pytest.raises(ScenarioError, match=r"devices\[0\]\.device_class.*pdp11"):
        SplitOffloadEnv(scenario=d)
    d = load_scenario("single").to_dict()
    d["applications"][0]["network"] = "lenet_missing"
    with pytest.raises(ScenarioError, match=r"applications\[0\]\.network.*lenet_missing"):
        SplitOffloadEnv(scenario=d)


def test_make_accepts_name_path_and_dict(tmp_path) -> None:
    import yaml

    d = load_scenario("single").to_dict()
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(d))
    for spec in ("single", str(p), d):
        env = gym.make("edgesplit/SplitOffload-v1", scenario=spec)
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)


@pytest.mark.parametrize("env_id", [ENV_ID, ENV_ID_V0])
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize(("mode", "action_type"), MODES)
def test_gymnasium_and_sb3_check_env(env_id: str, scenario: str, mode: str, action_type: str):
    env = gym.make(env_id, scenario=scenario, decision_mode=mode, action_type=action_type)
    gym_check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(SplitOffloadEnv(scenario=scenario, decision_mode=mode, action_type=action_type))


@pytest.mark.parametrize("env_id", [ENV_ID, ENV_ID_V0])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_make_vec_native(env_id: str, scenario: str) -> None:
    envs = gym.make_vec(env_id, num_envs=3, scenario=scenario)
    assert isinstance(envs.unwrapped, SplitOffloadVectorEnv)
    obs, _ = envs.reset(seed=1)
    assert envs.observation_space.contains(obs)
    obs, rew, term, _trunc, _info = envs.step(envs.action_space.sample())
    assert obs.shape == (3, *envs.single_observation_space.shape)
    assert rew.shape == (3,) and not term.any()


@pytest.mark.parametrize("pz", [split_offload_v1, split_offload_v0], ids=["v1", "v0"])
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("action_type", PZ_ACTIONS)
def test_pettingzoo_suites(pz: types.ModuleType, scenario: str, action_type: str) -> None:
    kw = {"scenario": scenario, "action_type": action_type}
    pettingzoo_suites(pz, **kw)


def _rollout(env: gym.Env, seed: int, steps: int) -> list:
    env.action_space.seed(seed)
    obs, info = env.reset(seed=seed)
    out = [obs]
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        out.append((obs, r, term, trunc, {k: np.copy(v) for k, v in info.items()}))
        if term or trunc:
            obs, info = env.reset()
            out.append(obs)
    return out


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=False))
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("mode", ["joint", "sequential"])
def test_determinism_200_steps(scenario: str, mode: str) -> None:
    mk = functools.partial(SplitOffloadEnv, scenario=scenario, decision_mode=mode)
    a, b, c = _rollout(mk(), 7, 200), _rollout(mk(), 7, 200), _rollout(mk(), 8, 200)
    assert _same(a, b)
    assert not _same(a, c)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("action_type", ["multidiscrete", "continuous"])
def test_vector_env_matches_single_envs(scenario: str, action_type: str) -> None:
    n, seed, cycles = 3, 11, 6
    venv = SplitOffloadVectorEnv(
        num_envs=n, scenario=scenario, action_type=action_type, max_cycles=cycles
    )
    singles = [
        SplitOffloadEnv(scenario=scenario, action_type=action_type, max_cycles=cycles)
        for _ in range(n)
    ]
    vobs, _ = venv.reset(seed=seed)
    sobs = [e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]
    np.testing.assert_array_equal(vobs, np.stack(sobs))
    rng = np.random.default_rng(0)
    space = venv.single_action_space
    space.seed(1)
    pending_reset = [False] * n
    for _ in range(3 * cycles + 2):  # crosses two autoresets
        acts = np.stack([space.sample() for _ in range(n)])
        vobs, vr, vterm, vtrunc, vinfo = venv.step(acts)
        for i, e in enumerate(singles):
            if pending_reset[i]:
                o, _ = e.reset()
                r, term, trunc = 0.0, False, False
                pending_reset[i] = False
            else:
                o, r, term, trunc, info = e.step(acts[i])
                np.testing.assert_allclose(vinfo["latency_s"][i], info["latency_s"])
                pending_reset[i] = trunc
            np.testing.assert_array_equal(vobs[i], o)
            assert vr[i] == pytest.approx(r, rel=1e-12, abs=1e-12)
            assert vtrunc[i] == trunc and vterm[i] == term
    del rng


def test_out_of_range_actions_name_device_and_value() -> None:
    env = SplitOffloadEnv(scenario="default")
    env.reset(seed=0)
    a = env.action_space.sample()
    a[len(env.unwrapped.core.tables.nvec)] = 99  # device 1's split
    with pytest.raises(ActionError, match=r"pi_1.*99"):
        env.step(a)
    with pytest.raises(ActionError, match="shape"):
        env.step(np.zeros(3, dtype=np.int64))
    env = SplitOffloadEnv(scenario="default", action_type="continuous")
    env.reset(seed=0)
    a = np.zeros(env.action_space.shape, np.float32)
    a[-1] = 3.0
    with pytest.raises(ActionError, match=r"orin_1.*3\.0"):
        env.step(a)
    a[-1] = np.nan
    with pytest.raises(ActionError, match="orin_1"):
        env.step(a)
    env = SplitOffloadEnv(scenario="default", decision_mode="sequential")
    env.reset(seed=0)
    with pytest.raises(ActionError, match="out of range"):
        env.step(env.action_space.n)


def test_masked_choices_are_replaced_and_penalised() -> None:
    sc = load_scenario("default")
    env = SplitOffloadEnv(scenario=sc)
    env.reset(seed=3)
    ta = env.unwrapped.core.tables
    has, app = env.unwrapped.core.pending()
    mask = env.action_masks()
    assert mask.dtype == bool and mask.shape == (sc.n_devices * int(ta.action_nvec().sum()),)
    a = np.zeros((sc.n_devices, 4), dtype=np.int64)
    a[:, 0] = ta.n_candidates - 1  # past some networks' candidates
    a[:, 2:] = ta.n_levels - 1
    _, _, _, _, info = env.step(a.reshape(-1))
    short = has[0] & (ta.n_valid[app[0]] < ta.n_candidates)
    np.testing.assert_array_equal(info["infeasible"], short)
    assert (info["split"][has[0]] == ta.n_valid[app[0]][has[0]] - 1).all()


def test_render_ansi() -> None:
    env = SplitOffloadEnv(scenario="default", render_mode="ansi")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    text = env.render()
    assert "slot 1/" in text and "pi_0" in text and "server backlog" in text


def test_encoding_needs_numpy_only() -> None:
    """The scheduler reuses the encoder on hosts without gymnasium, torch or pettingzoo."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('gymnasium', 'torch', 'pettingzoo', 'stable_baselines3'):\n"
        "    sys.modules[m] = None\n"
        "import edgesplit.sim.encoding as enc\n"
        "assert callable(enc.encode_devices) and callable(enc.decode)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_environment_runs_without_torch() -> None:
    """envs needs numpy, gymnasium and pettingzoo only: profiles load without torch."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "import gymnasium as gym\n"
        "import edgesplit.envs\n"
        "env = gym.make('edgesplit/SplitOffload-v1', scenario='default')\n"
        "env.reset(seed=0)\n"
        "env.step(env.action_space.sample())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_own_board_and_profile_drop_in(tmp_path) -> None:
    """A practitioner's profile of their own board, a catalogue naming the board, and a
    scenario file pointing at both (relative paths) build a working environment whose head
    latencies are that profile's measured medians."""
    import json

    import yaml

    from edgesplit.cost_models.network import load_network

    shipped = REPO_ROOT / "cost_models"
    prof = json.loads((shipped / "profiles" / "alexnet.json").read_text())
    prof["measurements"] = {"my_board": prof["measurements"]["x86_cpu_1t"]}
    prof["name"] = "my_alexnet"
    (tmp_path / "my_alexnet.json").write_text(json.dumps(prof))
    cat = json.loads((shipped / "data" / "devices.json").read_text())
    cat["classes"]["my_board"] = dict(cat["classes"]["x86_cpu_1t"])
    (tmp_path / "my_devices.json").write_text(json.dumps(cat))
    d = load_scenario("single").to_dict()
    d["applications"] = [{"network": "my_alexnet.json", "deadline_s": 0.3}]
    d["devices"][0]["device_class"] = "my_board"
    d["devices"][0]["apps"] = {"my_alexnet.json": 1.0}
    d["device_catalogue"] = "my_devices.json"
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(d))

    env = SplitOffloadEnv(scenario=str(tmp_path / "mine.yaml"))
    env.reset(seed=0)
    env.step(env.action_space.sample())
    ta = env.core.tables
    p = load_network(tmp_path / "my_alexnet.json")
    head, _ = p.split_latency(p.measurements["my_board"].median_s)
    k = ta.n_valid[0]
    assert ta.head_s[0, 0, k - 1] == pytest.approx(head[-1])  # all-local = the whole network

    d["device_catalogue"] = "missing.json"
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(d))
    with pytest.raises(ScenarioError, match=r"device_catalogue.*missing\.json"):
        load_scenario(tmp_path / "broken.yaml")


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_copies_and_pickles_continue_identically(backend: str) -> None:
    """``copy.deepcopy`` and ``pickle`` give independent envs on the same trajectory (search
    baselines copy envs; worker processes receive pickled ones)."""
    import copy
    import pickle

    env = gym.make(ENV_ID, scenario="default", backend=backend)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(5):
        env.step(env.action_space.sample())
    copies = [env, copy.deepcopy(env), pickle.loads(pickle.dumps(env))]
    env.action_space.seed(1)
    actions = [env.action_space.sample() for _ in range(120)]  # past the horizon
    runs = []
    for e in copies:
        run = []
        for a in actions:
            obs, r, _, trunc, info = e.step(a)
            run.append((obs, r, info["latency_s"]))
            if trunc:
                run.append((e.reset(seed=3)[0], 0.0, None))
        runs.append(run)
    for run in runs[1:]:
        assert len(run) == len(runs[0])
        for (o0, r0, l0), (o1, r1, l1) in zip(runs[0], run, strict=True):
            np.testing.assert_array_equal(o0, o1)
            assert r0 == r1
            if l0 is not None:
                np.testing.assert_array_equal(l0, l1)
    # independent: stepping a copy leaves the original where it was
    a, b = copy.deepcopy(env), env
    t0 = b.unwrapped.core.t.copy()
    a.step(actions[0])
    np.testing.assert_array_equal(b.unwrapped.core.t, t0)
    vec = SplitOffloadVectorEnv(3, "single", backend=backend)
    vec.reset(seed=2)
    vec2 = pickle.loads(pickle.dumps(vec))
    act = vec.action_space.sample()
    np.testing.assert_array_equal(vec.step(act)[0], vec2.step(act)[0])
    par = split_offload_v0.parallel_env(scenario="single", backend=backend)
    par.reset(seed=4)
    par2 = copy.deepcopy(par)
    acts = {ag: par.action_space(ag).sample() for ag in par.agents}
    o1, o2 = par.step(acts)[0], par2.step(acts)[0]
    for ag in o1:
        np.testing.assert_array_equal(o1[ag], o2[ag])


def test_v1_observes_measured_rates_and_v0_the_true_ones() -> None:
    """v1's observation carries the rate each link had over the last slot and the backlog the
    servers reported a slot ago; v0's the true rate of the slot being decided. Both envs
    follow the same trajectory (the information does not change the dynamics)."""
    v1 = gym.make(ENV_ID, scenario="default").unwrapped
    v0 = gym.make(ENV_ID_V0, scenario="default").unwrapped
    v1.reset(seed=4)
    v0.reset(seed=4)
    core1, core0 = v1.core, v0.core
    act = v1.action_space.sample()
    differs = 0
    for _ in range(30):
        prev_rates, prev_srv = core1.rates.copy(), core1.srv_backlog.copy()
        v1.step(act)
        v0.step(act)
        np.testing.assert_array_equal(core1.rates, core0.rates)  # same dynamics
        np.testing.assert_array_equal(core1.state.rates_seen, prev_rates)  # ewma weight 1
        np.testing.assert_array_equal(core1.state.srv_seen, prev_srv)
        np.testing.assert_array_equal(core0.state.rates_seen, core0.rates)
        differs += int(not np.array_equal(core1.observe(), core0.observe()))
    assert differs > 20  # the observations differ whenever a link rate changed


# --- outside libraries: render, env configs, autoreset modes, PettingZoo names and masks ---


def _sync_and_native(mode: AutoresetMode, n: int, cycles: int):
    kw = {"scenario": "default", "max_cycles": cycles}
    sync = gym.vector.SyncVectorEnv(
        [functools.partial(SplitOffloadEnv, **kw) for _ in range(n)], autoreset_mode=mode
    )
    native = gym.make_vec(ENV_ID, num_envs=n, autoreset_mode=mode, **kw)
    return sync, native


def _assert_infos_equal(ref: dict, got: dict, where: str) -> None:
    """Every key of Gymnasium's own infos (and its `_key` mask) is in ours, equal; a key
    Gymnasium has for no copy is for no copy in ours either."""
    for k, v in got.items():
        if k.startswith("_") and k not in ref and k != "_autoreset":
            assert not v.any(), f"{where}: {k} holds copies {v} where Gymnasium's has none"
    for k, v in ref.items():
        assert k in got, f"{where}: info key {k!r} missing"
        if isinstance(v, dict):
            _assert_infos_equal(v, got[k], f"{where}.{k}")
        elif v.dtype == object:
            for a, b in zip(v, got[k], strict=True):
                assert (a is None) == (b is None), f"{where}.{k}"
                if a is not None:
                    np.testing.assert_array_equal(a, b, err_msg=f"{where}.{k}")
        else:
            np.testing.assert_array_equal(v, got[k], err_msg=f"{where}.{k}")
            assert v.dtype == got[k].dtype, f"{where}.{k}: {got[k].dtype}, not {v.dtype}"


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_vector_autoreset_modes_match_sync_vector_env(mode: AutoresetMode) -> None:
    n, cycles = 3, 4
    sync, native = _sync_and_native(mode, n, cycles)
    assert native.autoreset_mode == mode and native.metadata["autoreset_mode"] == mode
    so, si = sync.reset(seed=5)
    no, ni = native.reset(seed=5)
    np.testing.assert_array_equal(so, no)
    _assert_infos_equal(si, ni, "reset")
    space = native.single_action_space
    space.seed(0)
    ended_seen = 0
    for t in range(3 * cycles + 2):  # crosses two episode ends
        acts = np.stack([space.sample() for _ in range(n)])
        s = sync.step(acts)
        g = native.step(acts)
        for x, y in zip(s[:4], g[:4], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=f"step {t}")
        _assert_infos_equal(s[4], g[4], f"step {t}")
        done = s[2] | s[3]
        ended_seen += int(done.sum())
        if mode == AutoresetMode.DISABLED and done.any():
            with pytest.raises(RuntimeError, match="reset_mask"):
                native.step(acts)
            so, si = sync.reset(options={"reset_mask": done.copy()})
            no, ni = native.reset(options={"reset_mask": done.copy()})
            np.testing.assert_array_equal(so, no)
            _assert_infos_equal(si, ni, f"reset {t}")
    assert ended_seen >= 2 * n


def test_vector_infos_masked_on_reset_steps() -> None:
    envs = SplitOffloadVectorEnv(2, "single", max_cycles=2)  # NEXT_STEP
    envs.reset(seed=0)
    act = np.zeros((2, *envs.single_action_space.shape), dtype=np.int64)
    for _ in range(2):
        _, _, _, trunc, info = envs.step(act)
    assert trunc.all() and info["_latency_s"].all()
    _, rew, _, trunc, info = envs.step(act)  # the reset step: no step happened
    assert not trunc.any() and (rew == 0).all() and info["autoreset"].all()
    assert not info["_latency_s"].any() and not info["_cost"].any()
    assert (info["latency_s"] == 0).all() and (info["cost"] == 0).all()
    assert info["_action_mask"].all()


def test_autoreset_mode_through_make_vec_and_errors() -> None:
    same = gym.make_vec(ENV_ID, num_envs=2, scenario="single", autoreset_mode="same_step")
    assert same.unwrapped.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    # the class default is untouched by an instance's choice
    assert SplitOffloadVectorEnv.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    # Gymnasium's own vector envs take the mode through vector_kwargs
    sync = gym.make_vec(
        ENV_ID,
        num_envs=2,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED},
        scenario="single",
    )
    assert sync.metadata["autoreset_mode"] is AutoresetMode.DISABLED
    # ...and refuses them for a custom VectorEnv, whose arguments are keywords (documented)
    with pytest.raises(gym.error.Error, match="vector_kwargs"):
        gym.make_vec(ENV_ID, 2, vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    with pytest.raises(ValueError, match="autoreset_mode: 'sometimes'"):
        SplitOffloadVectorEnv(2, "single", autoreset_mode="sometimes")
    envs = SplitOffloadVectorEnv(2, "single")
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.zeros(2, dtype=bool)})
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.ones(3, dtype=bool)})


def test_rgb_array_render_on_every_face() -> None:
    env = SplitOffloadEnv(scenario="default", render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    frames = [first]
    for _ in range(5):
        env.step(env.action_space.sample())
        frames.append(env.render())
    assert {f.shape for f in frames} == {first.shape}  # a video needs one frame size
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])  # it shows the slot
    venv = SplitOffloadVectorEnv(2, "default", render_mode="rgb_array")
    venv.reset(seed=0)
    venv.step(venv.action_space.sample())
    pics = venv.render()
    assert len(pics) == 2 and all(p.shape == first.shape for p in pics)
    par = split_offload_v0.parallel_env(scenario="default", render_mode="rgb_array")
    par.reset(seed=0)
    par.step({a: par.action_space(a).sample() for a in par.agents})
    assert par.render().shape == first.shape
    with pytest.raises(ValueError, match="render_mode: 'human'"):
        SplitOffloadEnv(render_mode="human")


def test_record_video_writes_a_video(tmp_path) -> None:
    env = gym.make(ENV_ID, scenario="single", max_cycles=20, render_mode="rgb_array")
    env = gym.wrappers.RecordVideo(env, str(tmp_path), episode_trigger=lambda ep: True)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        done = term or trunc
    env.close()
    videos = list(tmp_path.glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 0


def test_env_config_mapping_passed_positionally() -> None:
    env = SplitOffloadEnv({"scenario": "single", "max_cycles": 5})  # RLlib's env_cls(config)
    assert env.scenario.name == "single" and env.scenario.horizon == 5
    assert SplitOffloadEnv({}).scenario.name == "default"
    assert SplitOffloadEnv(scenario="single").scenario.name == "single"
    venv = SplitOffloadVectorEnv({"scenario": "single", "num_envs": 3})
    assert venv.num_envs == 3 and venv.scenario.name == "single"
    par = split_offload_v0.parallel_env(scenario={"scenario": "single", "max_cycles": 4})
    assert par.scenario.horizon == 4
    with pytest.raises(ValueError, match=r"env_config: unknown keys \['bogus'\]"):
        SplitOffloadEnv({"scenario": "single", "bogus": 1})
    with pytest.raises(ValueError, match=r"env_config: \['max_cycles'\] given both"):
        SplitOffloadEnv({"max_cycles": 5}, max_cycles=6)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pettingzoo_agents_group_as_one_and_keep_their_device(scenario: str) -> None:
    par = split_offload_v0.parallel_env(scenario=scenario, action_type="multidiscrete")
    sc = load_scenario(scenario)
    n = len(sc.devices)
    assert par.possible_agents == [f"agent_{i}" for i in range(n)]
    # TorchRL's default grouping of a parallel env: "name_int" agents form the group "name"
    assert {a.rsplit("_", 1)[0] for a in par.possible_agents} == {"agent"}
    assert list(par.agent_devices.values()) == [d.name for d in sc.devices]
    _, infos = par.reset(seed=0)
    sp = par.action_space(par.agents[0])
    width = int(sp.nvec.sum())
    for a in par.agents:  # one flat int8 mask per agent, which the space samples from
        m = infos[a]["action_mask"]
        assert m.dtype == np.int8 and m.shape == (width,)
        for _ in range(5):
            x = sp.sample(m)
            offsets = np.concatenate([[0], np.cumsum(sp.nvec)[:-1]])
            assert m[offsets + x].all() or not m.any()
    _, _, _, _, infos = par.step({a: par.action_space(a).sample() for a in par.agents})
    for i, a in enumerate(par.agents):
        assert infos[a]["device"] == sc.devices[i].name
        assert infos[a]["device_class"] == sc.devices[i].device_class


@pytest.mark.parametrize(
    ("mode", "bad"),
    [
        ("joint", np.array([None] * 24, dtype=object)),
        ("joint", "abc"),
        ("joint", np.zeros(24, dtype=complex) + 1j),
        ("joint", [0] * 23 + [2**70]),
        ("sequential", None),
        ("sequential", "3"),
        ("sequential", 2**70),
        ("sequential", 1 + 5j),
    ],
)
def test_malformed_actions_name_the_device_and_change_nothing(mode: str, bad) -> None:
    """Objects, None, strings, complex numbers and integers past 64 bits are refused with an
    ActionError naming a device (issue 12, point 8), before any state changes."""
    env = SplitOffloadEnv(scenario="default", decision_mode=mode)
    env.reset(seed=0)
    before = {k: v.copy() for k, v in env.core.state.arrays().items()}
    names = env.core.tables.device_names
    with pytest.raises(ActionError) as err:
        env.step(bad)
    msg = str(err.value)
    assert any(repr(n) in msg for n in names) or "shape" in msg, msg
    for k, v in env.core.state.arrays().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_pettingzoo_refuses_a_none_action_naming_the_agent_device() -> None:
    par = split_offload_v1.parallel_env(scenario="default")
    par.reset(seed=0)
    acts = {a: par.action_space(a).sample() for a in par.agents}
    acts[par.agents[2]] = None
    with pytest.raises(ActionError, match=repr(par.core.tables.device_names[2])):
        par.step(acts)
