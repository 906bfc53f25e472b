"""The shared per-device policy: its in-network estimates are the simulator's, it never
picks an infeasible option, it is equivariant under a permutation of the devices, and the
native SB3 VecEnv and the warm start it trains with behave."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from edgesplit.agents.baselines import make_baseline
from edgesplit.agents.sb3_vec import NativeVecEnv
from edgesplit.agents.shared_policy import SharedSplitPolicy, SplitDistribution, SplitOffloadNet
from edgesplit.agents.warm_start import teacher_rollouts
from edgesplit.envs.gym_env import SplitOffloadEnv
from edgesplit.sim.core import Core
from edgesplit.sim.encoding import action_masks
from edgesplit.sim.scenario import load_scenario
from edgesplit.sim.schema import Decisions

SCENARIOS = ["single", "default", "dense", "three_tier", "bursty", "battery"]


def _states(scenario: str, e: int = 8, slots: int = 12, seed: int = 1):
    """Cores at successive slots of ``e`` episodes driven by the random baseline."""
    core = Core(load_scenario(scenario), e)
    core.reset(np.arange(seed, seed + e, dtype=np.uint64))
    rule = make_baseline("random")
    for _ in range(slots):
        yield core
        core.step(rule.decide(core))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_estimates_from_the_observation_are_the_simulators(scenario: str) -> None:
    net, gated = None, 0
    for core in _states(scenario):
        net = net or SplitOffloadNet.from_core(core, hidden=8)
        ref = core.option_estimates(known=True)
        obs = torch.as_tensor(core.observe().reshape(core.num_envs, -1))
        _x, has, estimates, feasible = net.parse(obs)
        est = estimates[0]
        e, n = has.shape
        got = est.cost.double().numpy()
        want = ref.cost.reshape(e, n, -1)
        sel = (has[..., None] & feasible).numpy()
        np.testing.assert_allclose(got[sel], want[sel], rtol=1e-4, atol=1e-6)
        lat = est.latency_s.double().numpy()
        np.testing.assert_allclose(lat[sel], ref.latency_s.reshape(e, n, -1)[sel], rtol=1e-4)
        if core.tables.has_batteries:  # the charge gates heads as the env's masks do
            ta = core.tables
            _, app = core.pending()
            ok = action_masks(ta, app, has.numpy(), "multidiscrete", core.state.charge)
            split_ok = np.repeat(ok[..., : ta.n_candidates], ta.n_targets, axis=-1)
            assert not (sel & ~split_ok).any()
            gated += int((has.numpy()[..., None] & ~split_ok).sum())
    assert gated > 0 or not core.tables.has_batteries  # the battery case is exercised


@pytest.mark.parametrize("scenario", ["default", "three_tier", "battery"])
def test_neurosurgeon_is_each_devices_best_option_alone(scenario: str) -> None:
    """Neurosurgeon (the argmin of the estimates) against its definition: each device
    alone in the slot, every option judged by Core.resolve."""
    ns = make_baseline("neurosurgeon")
    for core in _states(scenario, e=4, slots=6):
        dec = ns.decide(core)
        has, _ = core.pending()
        ta = core.tables
        e, n = has.shape
        for k in range(n):
            alone = np.zeros((e, n), dtype=bool)
            alone[:, k] = True
            costs = np.zeros((e, ta.n_candidates, ta.n_targets))
            for s in range(ta.n_candidates):
                for j in range(ta.n_targets):
                    d = dec.copy()
                    d.split[:, k], d.target[:, k] = s, j
                    costs[:, s, j] = core.resolve(d, active=alone, known=True).cost[:, k]
            mine = core.resolve(dec, active=alone, known=True).cost[:, k]
            best = costs.reshape(e, -1).min(1)
            np.testing.assert_allclose(mine[has[:, k]], best[has[:, k]], rtol=1e-12)


@pytest.mark.parametrize("scenario", ["default", "dense", "battery"])
def test_the_policy_never_picks_an_infeasible_option(scenario: str) -> None:
    torch.manual_seed(0)
    net = None
    for core in _states(scenario, e=16, slots=10, seed=7):
        net = net or SplitOffloadNet.from_core(core, hidden=16, rounds=2)
        ta = core.tables
        obs = torch.as_tensor(core.observe().reshape(core.num_envs, -1))
        with torch.no_grad():
            opt, bw, cpu, _v, _has = net(obs)
        dist = SplitDistribution(opt, bw, cpu, ta.n_targets)
        has, app = core.pending()
        charge = core.state.charge if ta.has_batteries else None  # heads it cannot pay for
        masks = action_masks(ta, app, has, "multidiscrete", charge)  # [E, N, S + J + 2L]
        s_n, j_n = ta.n_candidates, ta.n_targets
        for deterministic in (True, False, False, False):
            a = dist.get_actions(deterministic).numpy().reshape(core.num_envs, ta.n_devices, 4)
            split_ok = np.take_along_axis(masks[..., :s_n], a[..., :1], -1)[..., 0]
            target_ok = np.take_along_axis(masks[..., s_n : s_n + j_n], a[..., 1:2], -1)[..., 0]
            assert (split_ok & target_ok)[has].all()
            # and the simulator takes it as it is (nothing replaced, nothing infeasible)
            dec = Decisions(
                split=a[..., 0],
                target=a[..., 1],
                bw_weight=ta.weight_levels[a[..., 2]],
                cpu_weight=ta.weight_levels[a[..., 3]],
            )
            res = core.resolve(dec)
            assert not np.asarray(res.infeasible)[has].any()


def _permuted(net: SplitOffloadNet, perm: np.ndarray) -> SplitOffloadNet:
    """The same weights, with the devices' static tables in the order ``perm``."""
    out = copy.deepcopy(net)
    a1 = net.a + 1
    rows = (perm[:, None] * a1 + np.arange(a1)).reshape(-1)
    names = ("f_tab", "ap_of", "target_of", "canonical", "off_of", "busy_of")
    for name in (*names, "t_onehot", "ap_onehot"):
        setattr(out, name, getattr(net, name)[torch.as_tensor(rows)])
    out.p_tx = net.p_tx[torch.as_tensor(perm)]
    return out


@pytest.mark.parametrize("scenario", ["default", "dense"])
def test_the_shared_policy_is_permutation_equivariant(scenario: str) -> None:
    torch.manual_seed(1)
    core = next(iter(_states(scenario, e=4, slots=3)))
    net = SplitOffloadNet.from_core(core, hidden=16, rounds=2)
    n, d = net.n, net.d
    perm = np.random.default_rng(0).permutation(n)
    obs = torch.as_tensor(core.observe()).reshape(core.num_envs, n, d)
    with torch.no_grad():
        out = net(obs.reshape(core.num_envs, -1))
        out_p = _permuted(net, perm)(obs[:, perm].reshape(core.num_envs, -1))
    for a, b in zip(out[:3], out_p[:3], strict=True):  # options, levels: permuted
        torch.testing.assert_close(a[:, perm], b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[3], out_p[3], rtol=1e-5, atol=1e-6)  # value: the same


def test_the_native_vecenv_matches_the_gymnasium_face() -> None:
    kw = {"scenario": "single", "max_cycles": 5}
    venv = NativeVecEnv(kw, n_envs=3, seed=11)
    obs = venv.reset()
    rng = np.random.default_rng(0)
    envs = [SplitOffloadEnv(**kw) for _ in range(3)]
    ref = [env.reset(seed=11 + i)[0] for i, env in enumerate(envs)]
    np.testing.assert_array_equal(obs, np.stack(ref))
    for t in range(5):
        acts = np.stack([env.action_space.sample() for env in envs])
        rng.shuffle(acts)
        obs, rew, done, infos = venv.step(acts)
        for i, env in enumerate(envs):
            o, r, _term, trunc, _ = env.step(acts[i])
            assert rew[i] == pytest.approx(r, rel=1e-6)
            assert done[i] == trunc == (t == 4)
            if done[i]:  # the last observation is kept; the copy has restarted
                np.testing.assert_array_equal(infos[i]["terminal_observation"], o)
                assert infos[i]["TimeLimit.truncated"] and infos[i]["episode"]["l"] == 5
            else:
                np.testing.assert_array_equal(obs[i], o)
    masks = venv.env_method("action_masks")
    assert len(masks) == 3 and masks[0].dtype == bool


def test_teacher_actions_are_ones_the_policy_can_take() -> None:
    obs, acts, rews = teacher_rollouts({"scenario": "default"}, "greedy", 4, 6, seed=0)
    core = Core(load_scenario("default"), 1)
    net = SplitOffloadNet.from_core(core, hidden=8)
    x = torch.as_tensor(obs.reshape(-1, obs.shape[-1]))
    with torch.no_grad():
        opt, bw, cpu, _v, _has = net(x)
    lp = SplitDistribution(opt, bw, cpu, net.j).log_prob(torch.as_tensor(acts.reshape(len(x), -1)))
    assert torch.isfinite(lp).all()
    assert rews.shape == (6, 4) and (rews <= 0).all() and (rews < 0).any()


def test_ppo_with_the_shared_policy_learns_saves_and_loads(tmp_path) -> None:
    kw = {"scenario": "single", "max_cycles": 16}
    venv = NativeVecEnv(kw, n_envs=4, seed=0)
    model = PPO(
        SharedSplitPolicy,
        venv,
        n_steps=16,
        batch_size=32,
        n_epochs=1,
        policy_kwargs={"scenario": "single", "hidden": 8},
        seed=0,
        device="cpu",
    )
    model.learn(128)
    obs = venv.reset()
    a, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "m.zip")
    back = PPO.load(tmp_path / "m.zip", device="cpu")
    np.testing.assert_array_equal(back.predict(obs, deterministic=True)[0], a)
    assert isinstance(back.policy, SharedSplitPolicy)
    with pytest.raises(ValueError, match="scenario"):  # a policy for another scenario
        PPO(SharedSplitPolicy, venv, policy_kwargs={"scenario": "default"}, device="cpu")


@pytest.mark.parametrize("algo", ["ppo", "maskable_ppo"])
def test_the_exported_shared_policy_is_the_evaluated_one(algo: str, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from edgesplit.agents.export import export_policy
    from edgesplit.agents.registry import get_agent

    kw = {"scenario": "default", "max_cycles": 16}
    cfg = {
        "policy": "SharedSplitPolicy",
        "kwargs": {"n_steps": 16, "batch_size": 64, "n_epochs": 1, "policy_kwargs": {"hidden": 8}},
        "warm_start": {"teacher": "greedy", "slots": 8, "epochs": 2},
    }
    spec = get_agent(algo)
    agent = spec.build(cfg, kw, seed=0, n_envs=4)
    assert agent.warm_start is not None and agent.warm_start["samples"] == 32
    agent.learn(64, checkpoint=lambda: None, checkpoint_every=64)
    out = export_policy(agent, algo, {"scenario": "default"}, tmp_path)
    sess = ort.InferenceSession(str(out / "policy.onnx"), providers=["CPUExecutionProvider"])
    venv = NativeVecEnv(kw, n_envs=8, seed=5)
    obs = venv.reset()
    for _ in range(6):  # states a few slots into the episodes, with backlogs
        masks = np.stack(venv.env_method("action_masks"))
        obs, *_ = venv.step(agent.predict(obs, masks))
    masks = np.stack(venv.env_method("action_masks"))
    feeds = {"obs": obs.astype(np.float32)}
    if spec.masked:
        feeds["action_mask"] = masks
    (onnx_act,) = sess.run(None, feeds)
    np.testing.assert_array_equal(onnx_act, agent.predict(obs, masks))


def test_normalised_rewards_are_saved_and_restored_on_resume(tmp_path) -> None:
    """``normalize_reward``: PPO learns on rewards scaled by the running spread of the
    return (SB3's VecNormalize); the statistics are saved beside the model and a resumed
    run goes on at the same scale; the warm start fits its value at that scale."""
    from stable_baselines3.common.vec_env import VecNormalize

    from edgesplit.agents.registry import get_agent
    from edgesplit.agents.sb3_agent import REWARD_NORM_FILE

    kw = {"scenario": "single", "max_cycles": 16}
    cfg = {
        "policy": "SharedSplitPolicy",
        "normalize_reward": True,
        "warm_start": {"slots": 8, "epochs": 1},
        "kwargs": {"n_steps": 16, "batch_size": 32, "gamma": 0.99},
    }
    spec = get_agent("ppo")
    agent = spec.build(cfg, kw, seed=0, n_envs=4)
    assert isinstance(agent.venv, VecNormalize) and agent.venv.gamma == 0.99
    agent.model.learn(64)
    var = float(agent.venv.ret_rms.var)
    assert agent.venv.ret_rms.count > 1 and var != 1.0  # it has seen returns
    agent.save(tmp_path)
    stats = json.loads((tmp_path / REWARD_NORM_FILE).read_text())
    assert stats["gamma"] == 0.99 and stats["var"] == pytest.approx(var)
    again = spec.load(tmp_path, kw, training=True, seed=1, n_envs=4)
    assert isinstance(again.venv, VecNormalize)
    assert float(again.venv.ret_rms.var) == pytest.approx(var)
    plain = spec.build({**cfg, "normalize_reward": False}, kw, seed=0, n_envs=4)
    assert not isinstance(plain.venv, VecNormalize)


def test_normalize_reward_is_refused_for_agents_outside_sb3() -> None:
    from edgesplit.agents.config import ConfigError, check_train_config

    cfg = {
        "seed": 0,
        "threads": 1,
        "total_timesteps": 10,
        "n_envs": 1,
        "checkpoint_every": 10,
        "eval": {"episodes": 1, "first_seed": 0, "baselines": ["local"]},
        "env": {"scenario": "single", "max_cycles": None},
        "algo": {"name": "maddpg", "normalize_reward": True, "kwargs": {}},
    }
    with pytest.raises(ConfigError, match=r"algo\.normalize_reward=True: maddpg"):
        check_train_config(cfg, algo_kwargs=False)
