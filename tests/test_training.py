"""Agents train on the environment through the same code path as ``train.py``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from edgesplit.agents.config import register_configs
from edgesplit.agents.ddqn import DDQN
from edgesplit.agents.evaluate_run import evaluate_run
from edgesplit.agents.registry import AGENTS, SB3
from edgesplit.agents.training import train

REPO = Path(__file__).resolve().parents[1]
CONFIGS = str(REPO / "configs")
register_configs()  # the typed schemas config.yaml and evaluate.yaml start from


def _cfg(overrides: list[str]) -> dict:
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("algo", sorted(AGENTS))
@pytest.mark.parametrize("env", ["default", "single", "dense", "three_tier"])
def test_every_config_composes(algo: str, env: str) -> None:
    cfg = _cfg([f"algo={algo}", f"env={env}"])
    assert cfg["algo"]["name"] == algo and cfg["env"]["scenario"] == env


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(ConfigCompositionException):
        _cfg(["total_timestep=10"])
    with pytest.raises(ConfigCompositionException):
        _cfg(["algo=sarsa"])


@pytest.mark.parametrize("algo", sorted(AGENTS))
def test_each_agent_trains_checkpoints_and_evaluates(algo: str, tmp_path: Path) -> None:
    cfg = _cfg(
        [
            f"algo={algo}",
            "env=single",
            "env.max_cycles=20",
            "total_timesteps=300",
            "checkpoint_every=100",
            "n_envs=2",
            "algo.n_envs=null",
            "eval.episodes=2",
            "eval.baselines=[local,neurosurgeon]",
        ]
    )
    if "learning_starts" in cfg["algo"]["kwargs"]:
        cfg["algo"]["kwargs"]["learning_starts"] = 50
    if "n_envs" in cfg["algo"]["kwargs"]:  # MADDPG's own copies: episodes end in the budget
        cfg["algo"]["kwargs"]["n_envs"] = 2
    if "n_steps" in cfg["algo"]["kwargs"]:
        cfg["algo"]["kwargs"]["n_steps"] = 64
        cfg["algo"]["kwargs"]["batch_size"] = 64
    s = train(cfg, tmp_path)
    assert s["total_timesteps"] >= 300 and s["resumed_from"] == 0
    ext = "zip" if AGENTS[algo].agent_path == SB3 else "pt"  # SB3's own format, or torch's
    for f in (f"model/model.{ext}", "eval.csv", "eval.md", "summary.json"):
        assert (tmp_path / f).is_file(), f
    (ckpt,) = (tmp_path / "checkpoints").iterdir()  # one complete checkpoint, nothing else
    assert ckpt.name.endswith(f"-step-{s['total_timesteps']}")
    for f in (f"model.{ext}", "state.json"):
        assert (ckpt / f).is_file(), f
    assert any(p.name.startswith("replay_buffer") for p in ckpt.iterdir()) == (
        not AGENTS[algo].on_policy
    )
    for f in ("policy.onnx", "policy.json"):  # the exported policy, with the run's summary
        assert (tmp_path / "policy" / f).is_file(), f
    manifest = json.loads((tmp_path / "policy" / "policy.json").read_text())
    assert manifest["algorithm"] == algo and manifest["training"]["eval"] == s["eval"]
    assert {r["policy"] for r in s["eval"]} == {algo, "local", "neurosurgeon"}
    assert all(np.isfinite(r["cost_per_slot"]) for r in s["eval"])
    assert any((tmp_path / "tb").rglob("events.out.tfevents.*"))
    # a second run with a larger budget resumes from the checkpoint
    cfg["total_timesteps"] = 400
    s2 = train(cfg, tmp_path)
    assert s2["resumed_from"] >= 300 and s2["total_timesteps"] >= 400
    # evaluate.py's body reloads the final model, whatever the agent
    md = evaluate_run(tmp_path, episodes=2, first_seed=100000, baselines=["local"])
    assert f"| {algo} |" in md.read_text()
    # with its figures, drawn from measured data
    for fig in ("latency_cdf.png", "choices.png", "learning_curve.png"):
        assert (md.parent / fig).stat().st_size > 5000, fig
        assert f"({fig})" in md.read_text()


def test_ddqn_target_uses_online_argmax_and_target_values() -> None:
    torch.manual_seed(0)
    model = DDQN("MlpPolicy", gym.make("CartPole-v1"), learning_starts=0, seed=0)
    model.learn(200)
    data = model.replay_buffer.sample(32)
    with torch.no_grad():  # make online and target networks disagree
        for p in model.q_net_target.parameters():
            p.add_(0.5 * torch.randn_like(p))
        a_online = model.q_net(data.next_observations).argmax(1, keepdim=True)
        q_t = model.q_net_target(data.next_observations)
        expected = data.rewards + (1 - data.dones) * model.gamma * q_t.gather(1, a_online)
        vanilla = data.rewards + (1 - data.dones) * model.gamma * q_t.max(1, keepdim=True)[0]
    got = model.td_target(data)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, vanilla)  # the double-Q target is not DQN's


def test_train_and_evaluate_cli(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "train.py",
        "algo=ppo",
        "env=single",
        "env.max_cycles=10",
        "total_timesteps=128",
        "n_envs=1",
        "algo.n_envs=null",
        "algo.kwargs.n_steps=64",
        "algo.kwargs.batch_size=64",
        "eval.episodes=2",
        "eval.baselines=[local]",
        f"hydra.run.dir={run}",
    ]
    done = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True, timeout=300)
    # the progress bar (stderr) reached the budget
    assert "ppo on single" in done.stderr and "128/128" in done.stderr, done.stderr[-500:]
    assert json.loads((run / "summary.json").read_text())["algo"] == "ppo"
    assert (run / ".hydra" / "config.yaml").is_file()
    out = subprocess.run(
        [sys.executable, "evaluate.py", f"run={run}", "episodes=2", "baselines=[local]"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "| ppo |" in out.stdout and (run / "evaluate" / "eval.md").is_file()


def test_adding_an_algorithm_is_one_entry_and_one_config(tmp_path: Path, monkeypatch) -> None:
    """docs/agents.md's walk-through, done: SB3's A2C added with one registry entry and one
    config file (its class is SB3's own, so no module of ours) trains, checkpoints,
    resumes, evaluates and exports with nothing else changed."""
    import shutil

    from edgesplit.agents.config import check_train_config
    from edgesplit.agents.registry import AgentSpec

    monkeypatch.setitem(
        AGENTS,
        "a2c",
        AgentSpec("a2c", "stable_baselines3:A2C", "joint", "multidiscrete", on_policy=True),
    )
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    (configs / "algo" / "a2c.yaml").write_text(
        "name: a2c\npolicy: MlpPolicy\nkwargs:\n  n_steps: 16\n  gamma: 0.5\n"
        "  policy_kwargs:\n    net_arch: [16]\n"
    )
    overrides = [
        "algo=a2c",
        "env=single",
        "env.max_cycles=20",
        "total_timesteps=64",
        "checkpoint_every=32",
        "n_envs=1",
        "eval.episodes=1",
        "eval.baselines=[local]",
    ]
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    check_train_config(cfg)
    run = tmp_path / "run"
    s = train(cfg, run)
    assert s["algo"] == "a2c" and s["total_timesteps"] == 64
    assert json.loads((run / "policy" / "policy.json").read_text())["algorithm"] == "a2c"
    cfg["total_timesteps"] = 96
    assert train(cfg, run)["resumed_from"] == 64
    md = evaluate_run(run, episodes=1, first_seed=100000, baselines=["local"])
    assert "| a2c |" in md.read_text()


def test_evaluate_run_refuses_a_run_without_a_model(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(
        json.dumps({"algo": "ppo", "env_kwargs": {"scenario": "single"}})
    )
    with pytest.raises(FileNotFoundError, match=r"no final model.*model\.zip"):
        evaluate_run(tmp_path, episodes=1, first_seed=0, baselines=["local"])
