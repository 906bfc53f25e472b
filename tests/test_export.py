"""Exported policies: the ONNX graph gives the trained policy's actions, the manifest is
complete and pickle-free."""

from __future__ import annotations

import hashlib
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from edgesplit.agents.export import FORMAT_VERSION, PolicyModule, export_policy
from edgesplit.agents.registry import AGENTS, get_agent
from edgesplit.envs import ENV_ID
from edgesplit.sim.encoding import Tables

ort = pytest.importorskip("onnxruntime")


def _model(algo: str, scenario: str):
    spec = get_agent(algo)
    env = gym.make(
        ENV_ID, scenario=scenario, decision_mode=spec.decision_mode, action_type=spec.action_type
    )
    if spec.multi_agent:  # MADDPG learns on the PettingZoo face, acts on the joint view
        from edgesplit.agents.maddpg import MADDPG
        from edgesplit.envs.split_offload_v0 import parallel_env

        pz = parallel_env(scenario=scenario, action_type=spec.action_type, max_cycles=20)
        model = MADDPG(pz, learning_starts=16, batch_size=16, seed=0)
        model.learn(48)
        return model, env
    kwargs = {"learning_starts": 0} if not spec.on_policy else {"n_steps": 64, "batch_size": 64}
    model = spec.load_class()("MlpPolicy", env, seed=0, device="cpu", **kwargs)
    # one short update, so the weights are not the initial ones
    model.learn(64 if spec.on_policy else 32)
    return model, env


def _rollout(env: gym.Env, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    obs, info = env.reset(seed=3)
    env.action_space.seed(3)
    o, m = [obs], [info["action_mask"]]
    for _ in range(n - 1):
        obs, _, _, trunc, info = env.step(env.action_space.sample())
        if trunc:
            obs, info = env.reset()
        o.append(obs)
        m.append(info["action_mask"])
    masks = np.array(m) if env.unwrapped.action_type != "continuous" else None
    return np.array(o, dtype=np.float32), masks


def _agent(algo: str, model):
    """The agent protocol around a library model (what training hands to the exporter)."""
    spec = get_agent(algo)
    return spec.agent_class()(spec, model)


@pytest.mark.parametrize("algo", sorted(AGENTS))
def test_onnx_matches_the_trained_policy(algo: str, tmp_path) -> None:
    scenario = "default"
    model, env = _model(algo, scenario)
    agent = _agent(algo, model)
    out = export_policy(agent, algo, {"scenario": scenario}, tmp_path, summary={"note": "t"})
    man = json.loads((out / "policy.json").read_text())
    sess = ort.InferenceSession(str(out / "policy.onnx"), providers=["CPUExecutionProvider"])
    obs, masks = _rollout(env, 64)
    spec = get_agent(algo)
    feeds = {"obs": obs}
    if spec.masked:
        feeds["action_mask"] = masks
    else:
        masks = None  # trained without masks: deployed without them
    (onnx_act,) = sess.run(None, feeds)
    assert [i.name for i in sess.get_inputs()] == man["onnx"]["inputs"]
    # the same function in torch
    kind = man["action_type"]
    module = PolicyModule(
        agent.policy_module(),
        kind,
        np.array(man["action"]["nvec"]) if man["action"]["nvec"] else None,
    )
    with torch.no_grad():
        t_obs = torch.as_tensor(obs)
        ref = module(t_obs, torch.as_tensor(masks) if masks is not None else None).numpy()
    if kind == "continuous":
        np.testing.assert_allclose(onnx_act, ref, atol=1e-5)
    else:
        np.testing.assert_array_equal(onnx_act, ref)
    # and the library's own deterministic prediction (with masks where it takes them)
    if spec.masked:
        pred, _ = model.predict(obs, deterministic=True, action_masks=masks)
    else:
        pred, _ = model.predict(obs, deterministic=True)
    if kind == "continuous":
        np.testing.assert_allclose(onnx_act, pred, atol=1e-5)
    else:  # the deployed policy is exactly the evaluated one
        np.testing.assert_array_equal(onnx_act, pred)
    # which is what evaluation asks the agent protocol for
    evaluated = agent.predict(obs, np.asarray(masks) if masks is not None else None)
    if kind == "continuous":
        np.testing.assert_allclose(onnx_act, evaluated, atol=1e-5)
    else:
        np.testing.assert_array_equal(onnx_act, evaluated)


def test_manifest_is_complete_and_pickle_free(tmp_path) -> None:
    model, env = _model("ppo", "default")
    # a bare library model is accepted too, and wrapped in the agent protocol
    out = export_policy(model, "ppo", {"scenario": "default"}, tmp_path, summary={"seed": 0})
    assert sorted(p.name for p in out.iterdir()) == ["policy.json", "policy.onnx"]
    man = json.loads((out / "policy.json").read_text())
    assert man["format"] == "edgesplit-policy" and man["format_version"] == FORMAT_VERSION
    assert (man["algorithm"], man["env_id"], man["decision_mode"]) == ("ppo", ENV_ID, "joint")
    assert man["onnx"]["sha256"] == hashlib.sha256((out / "policy.onnx").read_bytes()).hexdigest()
    assert man["scenario"]["name"] == "default" and man["training"] == {"seed": 0}
    ta = Tables.from_dict(man["tables"])
    ref = env.unwrapped.core.tables
    for k in ("head_s", "tail_s", "bytes_", "valid", "reachable", "deadline_s"):
        np.testing.assert_array_equal(getattr(ta, k), getattr(ref, k), err_msg=k)
    assert ta.candidate_names == ref.candidate_names
    assert sum(s for _, s in man["observation"]["device_layout"]) == ref.obs_dim
    assert man["observation"]["dim"] == env.observation_space.shape[0]
    blob = (out / "policy.onnx").read_bytes() + (out / "policy.json").read_bytes()
    assert b"pickle" not in blob.lower() and b"\x80\x04\x95" not in blob  # no pickle stream


def test_export_refuses_a_model_for_another_scenario(tmp_path) -> None:
    model, _ = _model("ppo", "single")
    with pytest.raises(ValueError, match=r"model.observation_space.*'default'"):
        export_policy(_agent("ppo", model), "ppo", {"scenario": "default"}, tmp_path)
    with pytest.raises(ValueError, match="algo: 'dqn'"):
        export_policy(_agent("ppo", model), "dqn", {"scenario": "single"}, tmp_path)
