"""DDPG's split actor: its continuous action decodes to exactly the option it scores best,
which is always feasible; a rule's actions round-trip through its encoding; the gradient
reaches the network; and DDPG with it warm-starts, trains, saves, loads, resumes and
exports (the exported policy acts as the evaluated one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from edgesplit.agents.baselines import make_baseline
from edgesplit.agents.checkpoint import CRASH_ENV, CRASH_EXIT_CODE
from edgesplit.agents.ddpg_policy import LrScaledAdam, SharedSplitDDPGPolicy, SplitActor
from edgesplit.agents.registry import get_agent
from edgesplit.agents.sb3_vec import NativeVecEnv
from edgesplit.agents.warm_start import teacher_rollouts
from edgesplit.sim.core import Core
from edgesplit.sim.encoding import action_masks, decode
from edgesplit.sim.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = ["single", "default", "dense", "three_tier", "battery"]


def _actor(scenario: str, hidden: int = 8, rounds: int = 1, seed: int = 0) -> SplitActor:
    ta = Core(load_scenario(scenario), 1).tables
    torch.manual_seed(seed)
    return SplitActor(
        spaces.Box(0.0, 1.0, (ta.n_devices * ta.obs_dim,)),
        spaces.Box(-1.0, 1.0, (ta.n_devices * ta.continuous_width,)),
        scenario=scenario,
        hidden=hidden,
        rounds=rounds,
    )


def _states(scenario: str, rule: str = "random", e: int = 8, slots: int = 10, seed: int = 3):
    """Cores at successive slots of ``e`` episodes driven by a baseline."""
    core = Core(load_scenario(scenario), e)
    core.reset(np.arange(seed, seed + e, dtype=np.uint64))
    policy = make_baseline(rule)
    for _ in range(slots):
        yield core
        core.step(policy.decide(core))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_actor_decodes_to_its_best_option_and_it_is_feasible(scenario: str) -> None:
    """Untrained weights, any state: the decoded action is the network's argmax option (on
    devices with a task) and passes the environment's masks (battery charge included)."""
    actor = _actor(scenario, rounds=2)
    checked = 0
    for core in _states(scenario):
        ta = core.tables
        obs = torch.as_tensor(core.observe().reshape(core.num_envs, -1))
        with torch.no_grad():
            act = actor(obs).numpy()
            opt, bw, cpu, _v, _has = actor.net(obs)
        has, app = core.pending()
        assert act.shape == (core.num_envs, ta.n_devices * ta.continuous_width)
        assert np.abs(act).max() <= 1.0
        dec = decode(ta, act.reshape(core.num_envs, ta.n_devices, -1), "continuous", app)
        best = opt.argmax(-1).numpy()
        split, target = best // ta.n_targets, best % ta.n_targets
        local = split >= ta.n_valid[app] - 1  # all-local: the target does not matter
        np.testing.assert_array_equal(dec.split[has], split[has])
        np.testing.assert_array_equal(dec.target[has & ~local], target[has & ~local])
        levels = ta.weight_levels
        np.testing.assert_allclose(
            dec.bw_weight[has], levels[bw.argmax(-1).numpy()][has], atol=1e-6
        )
        np.testing.assert_allclose(
            dec.cpu_weight[has], levels[cpu.argmax(-1).numpy()][has], atol=1e-6
        )
        masks = action_masks(ta, app, has, "multidiscrete", core.state.charge)
        s_ok = np.take_along_axis(masks[..., : ta.n_candidates], dec.split[..., None], -1)
        t_ok = np.take_along_axis(masks[..., ta.n_candidates :], dec.target[..., None], -1)
        assert (s_ok[..., 0] | ~has).all() and (t_ok[..., 0] | ~has).all()
        checked += int(has.sum())
    assert checked > 10


@pytest.mark.parametrize("scenario", ["default", "dense", "battery"])
def test_the_greedy_rules_actions_round_trip_through_the_encoding(scenario: str) -> None:
    obs, acts, _rews = teacher_rollouts({"scenario": scenario}, "greedy", 6, 8, seed=1)
    actor = _actor(scenario)
    ta = Core(load_scenario(scenario), 1).tables
    x = torch.as_tensor(obs.reshape(-1, obs.shape[-1]))
    md = acts.reshape(len(x), ta.n_devices, 4)
    a = torch.as_tensor(md)
    with torch.no_grad():
        cont = actor.encode(x, a[..., 0] * ta.n_targets + a[..., 1], a[..., 2], a[..., 3])
        _x, has, _est, _f = actor.net.parse(x)
    has = has.numpy()
    i, size = actor.net.at["app"]
    app = obs.reshape(len(x), ta.n_devices, -1)[..., i : i + size].argmax(-1)
    dec = decode(ta, cont.numpy().reshape(len(x), ta.n_devices, -1), "continuous", app)
    np.testing.assert_array_equal(dec.split[has], md[..., 0][has])
    np.testing.assert_array_equal(dec.target[has], md[..., 1][has])
    np.testing.assert_allclose(dec.bw_weight[has], ta.weight_levels[md[..., 2]][has], atol=1e-6)
    np.testing.assert_allclose(dec.cpu_weight[has], ta.weight_levels[md[..., 3]][has], atol=1e-6)
    assert has.sum() > 20


def test_the_action_is_the_choice_and_its_gradient_reaches_the_scores() -> None:
    actor = _actor("default", hidden=8)
    core = next(_states("default", "greedy"))
    obs = torch.as_tensor(core.observe().reshape(core.num_envs, -1))
    with torch.no_grad():
        hard = actor(obs)
    a = actor(obs)  # straight-through: the same value, a gradient through the softmax
    assert torch.equal(a, hard)
    a.sum().backward()
    grads = [p.grad for p in actor.net.score.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_the_actor_learns_more_slowly_than_the_critic() -> None:
    w = torch.nn.Parameter(torch.zeros(1))
    opt = LrScaledAdam([w], lr_scale=0.1, lr=1.0)
    w.grad = torch.ones(1)
    opt.step()  # Adam's first step moves by the rate
    assert float(w.detach()) == pytest.approx(-0.1) and opt.param_groups[0]["lr"] == 1.0
    with pytest.raises(ValueError, match="actor_lr_scale"):
        LrScaledAdam([w], lr_scale=0.0, lr=1.0)


CFG = {
    "policy": "SharedSplitDDPGPolicy",
    "action_noise_sigma": 0.05,
    "warm_start": {"teacher": "greedy", "slots": 8, "epochs": 2},
    "kwargs": {
        "learning_rate": 1e-3,
        "learning_starts": 64,
        "batch_size": 32,
        "buffer_size": 2000,
        "gamma": 0.5,
        "policy_kwargs": {"hidden": 8, "actor_lr_scale": 0.1, "net_arch": [16]},
    },
}


def test_ddpg_warm_starts_trains_saves_loads_and_exports(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from edgesplit.agents.export import export_policy

    kw = {"scenario": "default", "max_cycles": 16, "action_type": "continuous"}
    spec = get_agent("ddpg")
    agent = spec.build(CFG, kw, seed=0, n_envs=4)
    policy = agent.model.policy
    assert isinstance(policy, SharedSplitDDPGPolicy)
    ws = agent.warm_start
    assert ws is not None and ws["samples"] == 32
    assert ws["final_loss"] < ws["first_loss"]
    for net, target in ((policy.actor, policy.actor_target), (policy.critic, policy.critic_target)):
        for p, q in zip(net.parameters(), target.parameters(), strict=True):
            assert torch.equal(p, q)  # the targets start from the cloned networks
    before = [p.detach().clone() for p in policy.actor.parameters()]
    agent.learn(256, checkpoint=lambda: None, checkpoint_every=256)
    assert agent.num_timesteps == 256
    assert any(
        not torch.equal(b, p) for b, p in zip(before, policy.actor.parameters(), strict=True)
    )
    venv = NativeVecEnv(kw, n_envs=8, seed=5)
    obs = venv.reset()
    for _ in range(6):  # states a few slots into the episodes, with backlogs
        obs, *_ = venv.step(agent.predict(obs, None))
    act = agent.predict(obs, None)
    agent.save(tmp_path)
    back = spec.load(tmp_path, kw)
    assert isinstance(back.model.policy, SharedSplitDDPGPolicy)
    assert back.model.policy.actor_lr_scale == 0.1
    np.testing.assert_array_equal(back.predict(obs, None), act)
    out = export_policy(agent, "ddpg", {"scenario": "default"}, tmp_path / "policy")
    sess = ort.InferenceSession(str(out / "policy.onnx"), providers=["CPUExecutionProvider"])
    (onnx_act,) = sess.run(None, {"obs": obs.astype(np.float32)})
    # SB3's predict rescales [-1, 1] to the action space's bounds (the same ones, up to a
    # float rounding): the values agree to that rounding, the decisions exactly
    np.testing.assert_allclose(onnx_act, act, atol=1e-6)
    ta = Core(load_scenario("default"), 1).tables
    i, size = policy.actor.net.at["app"]
    app = obs.reshape(len(obs), ta.n_devices, -1)[..., i : i + size].argmax(-1)
    ours, theirs = (
        decode(ta, a.reshape(len(a), ta.n_devices, -1), "continuous", app) for a in (act, onnx_act)
    )
    np.testing.assert_array_equal(ours.split, theirs.split)
    np.testing.assert_array_equal(ours.target, theirs.target)
    np.testing.assert_allclose(ours.bw_weight, theirs.bw_weight, atol=1e-6)
    np.testing.assert_allclose(ours.cpu_weight, theirs.cpu_weight, atol=1e-6)
    agent.close()


def _train(run: Path, crash: str | None) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = crash
    cmd = [
        sys.executable,
        "train.py",
        "algo=ddpg",
        "env=single",
        "env.max_cycles=20",
        "algo.n_envs=2",
        "total_timesteps=240",
        "checkpoint_every=80",
        "algo.kwargs.learning_starts=40",
        "algo.kwargs.buffer_size=1000",
        "algo.kwargs.batch_size=32",
        "algo.kwargs.policy_kwargs.hidden=8",
        "algo.kwargs.policy_kwargs.net_arch=[16]",
        "algo.warm_start.slots=4",
        "algo.warm_start.epochs=1",
        "eval.episodes=1",
        "eval.baselines=[local]",
        "progress_bar=false",
        f"hydra.run.dir={run}",
    ]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if p.returncode not in (0, CRASH_EXIT_CODE):
        raise AssertionError(f"train.py failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p.returncode


@pytest.mark.slow
def test_killed_ddpg_training_resumes(tmp_path: Path) -> None:
    """``train.py algo=ddpg`` killed between a checkpoint's replay buffer and its state goes
    on from the checkpoint before; the warm start is not redone, and the run adds up."""
    run = tmp_path / "run"
    assert _train(run, "checkpoint.replay:2") == CRASH_EXIT_CODE
    assert _train(run, None) == 0
    s = json.loads((run / "summary.json").read_text())
    assert s["total_timesteps"] == 240 and s["resumed_from"] == 80
    assert [g["from_step"] for g in s["segments"]] == [0, 80]
    assert s["warm_start"]["samples"] == 8  # 4 slots x 2 copies, from the first segment
    assert (run / "policy" / "policy.onnx").is_file()
