"""A PPO run resumed from a checkpoint saved before the fused Adam was the shared policy's
default goes on with the fused kernel (``Optimizer.load_state_dict`` restores the saved
groups' ``fused: None``); runs whose optimiser kwargs chose otherwise keep their choice,
and current checkpoints resume as before. The old-style checkpoint is made by saving with
the groups' ``fused`` off, as ``torch.optim.Adam``'s default leaves it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.optim.adam as adam_module
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from stable_baselines3 import PPO

from edgesplit.agents.config import register_configs
from edgesplit.agents.sb3_vec import NativeVecEnv
from edgesplit.agents.shared_policy import SharedSplitPolicy
from edgesplit.agents.training import train

CONFIGS = str(Path(__file__).resolve().parents[1] / "configs")

TINY = [
    "algo=ppo", "env=single", "env.max_cycles=20", "n_envs=1", "algo.n_envs=null",
    "eval.episodes=1", "eval.baselines=[local]", "total_timesteps=64", "checkpoint_every=32",
    "algo.kwargs.n_steps=32", "algo.kwargs.batch_size=32", "algo.kwargs.n_epochs=1",
    "algo.kwargs.policy_kwargs.hidden=8", "algo.warm_start.slots=4",
    "algo.warm_start.epochs=1", "progress_bar=false",
]  # fmt: skip


def _cfg(overrides: list[str]) -> dict:
    """``train.py``'s composed config with ``overrides``, as a plain dict."""
    register_configs()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)


def _old_style(monkeypatch: pytest.MonkeyPatch) -> None:
    """Policies built from now on have the groups' ``fused`` off, as before the default."""
    build = SharedSplitPolicy._build

    def old_build(self, lr_schedule) -> None:
        build(self, lr_schedule)
        for group in self.optimizer.param_groups:
            group["fused"] = None

    monkeypatch.setattr(SharedSplitPolicy, "_build", old_build)


@pytest.fixture
def kernels(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Calls of Adam's fused kernel and of its per-tensor and foreach loops."""
    calls = {"fused": 0, "loop": 0}
    for name, key in (
        ("_fused_adam", "fused"),
        ("_single_tensor_adam", "loop"),
        ("_multi_tensor_adam", "loop"),
    ):
        fn = getattr(adam_module, name)

        def counted(*a, _fn=fn, _key=key, **k):
            calls[_key] += 1
            return _fn(*a, **k)

        monkeypatch.setattr(adam_module, name, counted)
    return calls


def test_a_run_resumed_from_an_old_checkpoint_uses_the_fused_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernels: dict[str, int]
) -> None:
    torch.set_num_threads(1)
    cfg = _cfg(TINY)
    run = tmp_path / "run"
    with monkeypatch.context() as old:
        _old_style(old)
        train(cfg, run)
    assert kernels["fused"] == 0 and kernels["loop"] > 0  # the old-style segment
    kernels.update(fused=0, loop=0)
    cfg["total_timesteps"] = 128
    assert train(cfg, run)["resumed_from"] == 64
    assert kernels["fused"] > 0 and kernels["loop"] == 0
    # a checkpoint saved with the fused kernel resumes with it, as before
    kernels.update(fused=0, loop=0)
    cfg["total_timesteps"] = 192
    assert train(cfg, run)["resumed_from"] == 128
    assert kernels["fused"] > 0 and kernels["loop"] == 0


def _ppo(optimizer_kwargs: dict | None = None) -> PPO:
    venv = NativeVecEnv({"scenario": "single", "max_cycles": 16}, n_envs=2, seed=0)
    pk: dict = {"scenario": "single", "hidden": 8}
    if optimizer_kwargs is not None:
        pk["optimizer_kwargs"] = optimizer_kwargs
    return PPO(SharedSplitPolicy, venv, n_steps=16, batch_size=32, n_epochs=1,
               policy_kwargs=pk, seed=0, device="cpu")  # fmt: skip


def test_the_resumed_update_is_the_per_tensor_one_to_rounding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    with monkeypatch.context() as old:
        _old_style(old)
        model = _ppo()
        model.learn(64)  # Adam's moments and step counts exist
    assert {g["fused"] for g in model.policy.optimizer.param_groups} == {None}
    model.save(tmp_path / "old.zip")
    back = PPO.load(tmp_path / "old.zip", device="cpu")
    opt = back.policy.optimizer
    assert all(g["fused"] is True and g["foreach"] is None for g in opt.param_groups)
    # the loaded moments, and one step from them, as the per-tensor Adam takes it
    loop_policy = copy.deepcopy(back.policy)
    loop = loop_policy.optimizer
    for g in loop.param_groups:
        g["fused"], g["foreach"] = False, False
    for k, v in opt.state_dict()["state"].items():
        for name in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(v[name], loop.state_dict()["state"][k][name])
    for policy in (back.policy, loop_policy):
        for p in policy.parameters():
            p.grad = torch.full_like(p, 0.01) * torch.arange(p.numel()).reshape(p.shape).sin()
        policy.optimizer.step()
    for (name, p), q in zip(back.policy.named_parameters(), loop_policy.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("kwargs", [{"fused": False}, {"foreach": False}, {"foreach": True}])
def test_optimiser_kwargs_that_choose_keep_their_choice_on_resume(
    tmp_path: Path, kwargs: dict
) -> None:
    model = _ppo(kwargs)
    model.save(tmp_path / "m.zip")
    back = PPO.load(tmp_path / "m.zip", device="cpu")
    for g in back.policy.optimizer.param_groups:
        assert not g["fused"]
        assert g["foreach"] == kwargs.get("foreach", g["foreach"])
