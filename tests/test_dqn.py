"""DQN and DDQN with masks (agents/dqn_masked.py): the batched sequential face is the
Gymnasium face, masked agents never choose a masked action, the TD targets run over allowed
next actions only, and training resumes from a saved agent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgesplit.agents.baselines import make_baseline
from edgesplit.agents.ddqn import MaskedDDQN
from edgesplit.agents.dqn_masked import MaskedDQN, SequentialBatch
from edgesplit.agents.registry import get_agent
from edgesplit.envs.gym_env import SplitOffloadEnv

torch.set_num_threads(1)


def _env(scenario: str, **kw) -> SplitOffloadEnv:
    return SplitOffloadEnv(scenario, decision_mode="sequential", action_type="discrete", **kw)


def _random_allowed(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    """One allowed action per row of ``masks`` ``[B, K]``, uniformly."""
    return np.where(masks, rng.random(masks.shape), -1.0).argmax(axis=1)


@pytest.mark.parametrize("scenario", ["default", "dense"])
def test_batched_face_is_the_gymnasium_face(scenario: str) -> None:
    """Copy 0 of a batch seeded ``s`` plays ``SplitOffloadEnv.reset(seed=s)``: the same
    observation and mask at every turn, the same costs at every slot, under the same
    (random, allowed) actions; copy 1 plays its own episode alongside."""
    env = _env(scenario, max_cycles=1000)
    batch = SequentialBatch(env.scenario, n_envs=2, seed=7)
    obs, info = env.reset(seed=7)
    rng = np.random.default_rng(0)
    decided = 0
    for _slot in range(40):
        for i in range(batch.n_devices):
            b_obs, b_mask = batch.observation(i), batch.masks(i)
            acts = _random_allowed(rng, b_mask)
            if batch.has[0, i]:
                np.testing.assert_array_equal(b_obs[0], obs)
                np.testing.assert_array_equal(b_mask[0], info["action_mask"])
                obs, _, _, _, info = env.step(int(acts[0]))
                decided += 1
                last_info = info
            batch.record(i, acts)
        had = batch.has[0].copy()
        cost, team, ended = batch.finish_slot()
        if had.any():  # the Gymnasium face resolved this slot on its last device's step
            np.testing.assert_allclose(cost[0], last_info["cost"], rtol=0, atol=0)
        np.testing.assert_allclose(team, -cost.mean(axis=1), rtol=1e-12)
        assert not ended.any()
    assert decided > 20  # the comparison covered many decisions


def _states(scenario: str, n_envs: int, slots: int, seed: int):
    """Observations and masks ``[B, D]``, ``[B, K]`` of every turn with a task over
    ``slots`` slots of random allowed play."""
    batch = SequentialBatch(_env(scenario).scenario, n_envs=n_envs, seed=seed)
    rng = np.random.default_rng(seed)
    obs, masks = [], []
    for _ in range(slots):
        for i in range(batch.n_devices):
            m = batch.masks(i)
            live = batch.has[:, i]
            obs.append(batch.observation(i)[live])
            masks.append(m[live])
            batch.record(i, _random_allowed(rng, m))
        batch.finish_slot()
    return np.concatenate(obs), np.concatenate(masks)


@pytest.mark.parametrize("scenario", ["default", "dense"])
@pytest.mark.parametrize("cls", [MaskedDQN, MaskedDDQN])
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_a_masked_agent_never_emits_a_masked_action(cls, scenario: str, seed: int) -> None:
    """Over random states (random networks, random episodes and random play): the greedy
    action, the exploring action at any epsilon, and the exported policy's action are always
    allowed, while the same network's unmasked argmax is not (the masks matter)."""
    import onnxruntime as ort

    from edgesplit.agents.export import export_policy

    env = _env(scenario)
    torch.manual_seed(seed)
    action = "full" if seed % 2 else "split_target"
    pk = {"dueling": True}
    model = cls("MlpPolicy", env, n_envs=8, seed=seed, action=action, policy_kwargs=pk)
    obs, masks = _states(scenario, n_envs=16, slots=6, seed=seed)
    red = model.reduced_masks(masks)
    assert not red.all()  # some actions are masked in these states
    # make the network favour, everywhere, an action masked in one of the states
    row, k = np.argwhere(~red)[np.random.default_rng(seed).integers((~red).sum())]
    with torch.no_grad():
        model.q_net.head.bias[k] += 1e3
    a, _ = model.predict(obs, action_masks=masks)
    assert masks[np.arange(len(a)), a].all()
    for eps in (0.0, 0.3, 1.0):
        r = model.act(obs, red, eps)
        assert red[np.arange(len(r)), r].all() and masks[np.arange(len(r)), model.index[r]].all()
    # without the masks it would choose that masked action
    unmasked, _ = model.predict(obs)
    assert not masks[row, unmasked[row]] and (unmasked == model.index[k]).all()
    # the exported graph takes the mask and gives the same allowed actions
    spec = get_agent("ddqn" if cls is MaskedDDQN else "dqn")
    agent = spec.agent_class()(spec, model)
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = export_policy(agent, spec.name, {"scenario": scenario}, d)
        sess = ort.InferenceSession(str(out / "policy.onnx"), providers=["CPUExecutionProvider"])
        assert [i.name for i in sess.get_inputs()] == ["obs", "action_mask"]
        (onnx_a,) = sess.run(None, {"obs": obs, "action_mask": masks})
    np.testing.assert_array_equal(onnx_a, a)


@pytest.mark.parametrize("double", [False, True])
def test_the_target_runs_over_allowed_next_actions_only(double: bool) -> None:
    """DQN: ``r + gamma * max over allowed a' of Q_target(s', a')``; Double DQN: the online
    network's allowed argmax, evaluated by the target network. Masked next actions with the
    largest values change neither."""
    env = _env("default")
    model = MaskedDQN("MlpPolicy", env, gamma=0.9, double=double, seed=0, n_envs=4)
    torch.manual_seed(1)
    with torch.no_grad():  # online and target networks disagree
        for p in model.q_target.parameters():
            p.add_(0.5 * torch.randn_like(p))
    b, k = 64, len(model.index)
    nobs = torch.rand(b, model.observation_space.shape[0])
    rew, done = torch.rand(b), (torch.rand(b) < 0.2).float()
    with torch.no_grad():
        q_on, q_t = model.q_net(nobs), model.q_target(nobs)
    # mask out, in every row, the actions each network ranks highest
    nmask = torch.ones(b, k, dtype=torch.bool)
    nmask.scatter_(1, q_on.topk(3, dim=1).indices, False)
    nmask.scatter_(1, q_t.topk(3, dim=1).indices, False)
    got = model.td_target(rew, nobs, nmask, done)
    if double:
        a = q_on.masked_fill(~nmask, -np.inf).argmax(1, keepdim=True)
        nq = q_t.gather(1, a).squeeze(1)
    else:
        nq = q_t.masked_fill(~nmask, -np.inf).max(1).values
    torch.testing.assert_close(got, rew + 0.9 * (1 - done) * nq)
    unmasked = rew + 0.9 * (1 - done) * q_t.max(1).values
    live = done == 0  # where the next state counts, the masked best actions were left out
    assert live.sum() > 10 and ((got - unmasked).abs() > 1e-6)[live].all()
    assert model.hparams["double"] is double and MaskedDDQN("MlpPolicy", env).hparams["double"]


def test_replay_links_each_decision_to_its_successor() -> None:
    """A decision's successor row is the next decision of the same copy: its observation
    is the one that copy was asked next, and the episode's last decisions are terminal."""
    env = _env("single", max_cycles=12)
    model = MaskedDQN(
        "MlpPolicy", env, n_envs=3, learning_starts=10**9, warm_start_steps=40, seed=0
    )
    model.learn(120)
    buf = model.buffer
    n = buf.size
    # every stored action was allowed, the warm start's (greedy's) and the agent's own
    assert buf.mask[np.arange(n), buf.act[:n]].all()
    assert buf.expert[:40].all() and not buf.expert[n - 40 : n].any()
    assert n == model.num_timesteps and n >= 120
    done, ok, nxt = buf.done[:n], buf.ok[:n], buf.nxt[:n]
    assert done.sum() >= 3 * (model.num_timesteps // 40)  # episodes ended and were cut
    linked = nxt >= 0
    assert ok[linked | done].all() and not (linked & done).any()
    assert (nxt[linked] > np.flatnonzero(linked)).all()  # the successor came later
    # one device: a copy's next decision sees the next slot (time moves on by one slot
    # or more, never backwards within an episode)
    layout = model.tables.observation_layout()
    names = [name for name, _ in layout]
    at = sum(size for _, size in layout[: names.index("time")])
    t = buf.obs[:n, at]  # the time feature of the device block
    assert (t[nxt[linked]] > t[linked]).all()


def test_agent_saves_loads_and_resumes(tmp_path: Path) -> None:
    """The agent protocol: save, load (with the replay buffer), the same greedy actions, and
    learning goes on from the saved counters with the restored generators."""
    spec = get_agent("ddqn")
    kw = {"scenario": "single", "decision_mode": "sequential", "action_type": "discrete"}
    kw["max_cycles"] = 20
    algo = {"kwargs": {"n_envs": 4, "learning_starts": 20, "batch_size": 16, "gamma": 0.5}}
    agent = spec.build(algo, kw, seed=3)
    calls: list[int] = []
    agent.learn(200, checkpoint=lambda: calls.append(agent.num_timesteps), checkpoint_every=50)
    assert agent.num_timesteps >= 200 and len(calls) >= 3 and agent.model.n_updates > 0
    agent.save(tmp_path)
    assert agent.save_replay_buffer(tmp_path)
    rng = agent.rng_state()
    back = spec.load(tmp_path, kw, training=True, seed=3)
    back.set_rng_state(rng)
    assert back.num_timesteps == agent.num_timesteps
    assert back.model.n_updates == agent.model.n_updates and back.model.hparams["double"]
    assert back.model.buffer.size == agent.model.buffer.size
    np.testing.assert_array_equal(back.model.buffer.rew[:50], agent.model.buffer.rew[:50])
    obs, masks = _states("single", n_envs=4, slots=20, seed=1)
    np.testing.assert_array_equal(back.predict(obs, masks), agent.predict(obs, masks))
    assert back.model.rng.bit_generator.state == agent.model.rng.bit_generator.state
    before = back.num_timesteps
    back.learn(before + 100, checkpoint=lambda: None, checkpoint_every=1000)
    assert back.num_timesteps >= before + 100
    with pytest.raises(ValueError, match="reward: 'mine'"):
        spec.build({"kwargs": {"reward": "mine"}}, kw, seed=0)
    with pytest.raises(ValueError, match="decision_mode='joint'"):
        MaskedDQN("MlpPolicy", SplitOffloadEnv("single"))


def test_the_warm_start_follows_its_teacher() -> None:
    """With ``warm_start_teacher`` the warm start's decisions are that baseline's, its
    weights projected to the top levels the reduced action has; an unknown teacher is
    refused by name."""
    env = _env("bursty", max_cycles=20)
    model = MaskedDQN(
        "MlpPolicy", env, n_envs=2, learning_starts=10**9, warm_start_steps=60,
        warm_start_teacher="clairvoyant", seed=0,
    )  # fmt: skip
    batch = model._ensure_batch()
    taught = model._teacher_actions(batch)
    teacher = make_baseline("clairvoyant").decide(batch.core)
    j = model.tables.n_targets  # a reduced action is split * J + target
    split, target = taught // j, taught % j
    has = batch.has
    assert has.any()
    np.testing.assert_array_equal(split[has], teacher.split[has])
    np.testing.assert_array_equal(target[has], teacher.target[has])
    model.learn(60)
    assert model.buffer.expert[: model.num_timesteps].all()
    with pytest.raises(ValueError, match="warm_start_teacher: 'sage'"):
        MaskedDQN("MlpPolicy", env, warm_start_teacher="sage")
