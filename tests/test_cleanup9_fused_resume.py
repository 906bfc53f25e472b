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
    saved = copy.deepcopy(model.policy.optimizer.state_dict())
    back = PPO.load(tmp_path / "old.zip", device="cpu")
    opt = back.policy.optimizer
    assert all(g["fused"] is True and g["foreach"] is None for g in opt.param_groups)
    # the loaded moments and step counts are the saved ones, each step count a float32
    # tensor on its parameter's device (as torch loads it into a fused group)
    params = list(back.policy.parameters())
    state = opt.state_dict()["state"]
    assert sorted(state) == sorted(saved["state"]) == list(range(len(params)))
    for k, p in enumerate(params):
        step = opt.state[p]["step"]
        assert (step.dtype, step.device) == (torch.float32, p.device)
        for name in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(state[k][name], saved["state"][k][name],
                                       rtol=0, atol=0, check_dtype=False)  # fmt: skip
    # one step from there, against the saved run's own per-tensor Adam (not a copy of the
    # loaded optimiser) given the same gradients
    loop_policy = model.policy
    assert all(not g["fused"] for g in loop_policy.optimizer.param_groups)
    before = [p.detach().clone() for p in back.policy.parameters()]
    for policy in (back.policy, loop_policy):
        for p in policy.parameters():
            p.grad = torch.full_like(p, 0.01) * torch.arange(p.numel()).reshape(p.shape).sin()
        policy.optimizer.step()
    for (name, p), q in zip(back.policy.named_parameters(), loop_policy.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7, msg=name)
    # the step moved them (the comparison is not of two no-ops)
    moved = [not torch.equal(p, b) for p, b in zip(back.policy.parameters(), before, strict=True)]
    assert any(moved)


def test_step_counts_saved_as_float64_resume_as_torch_loads_a_fused_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A per-tensor Adam keeps its step counts in the default dtype (float64 in a run under
    ``torch.set_default_dtype(torch.float64)``); the fused kernel wants float32 on the
    parameter's device. The resumed state and its next step equal those of a fused Adam
    into which torch itself loads the same state."""
    torch.set_num_threads(1)
    with monkeypatch.context() as old:
        _old_style(old)
        model = _ppo()
        model.learn(32)
    saved = copy.deepcopy(model.policy.optimizer.state_dict())
    for s in saved["state"].values():
        s["step"] = s["step"].to(torch.float64)
    back = _ppo()
    back.policy.load_state_dict(model.policy.state_dict())
    back.policy.optimizer.load_state_dict(copy.deepcopy(saved))
    # torch's own: a fused Adam over a copy of the parameters, the groups marked fused
    ref_params = [p.detach().clone().requires_grad_(True) for p in back.policy.parameters()]
    ref = torch.optim.Adam(ref_params, lr=1.0, fused=True)
    ref_sd = copy.deepcopy(saved)
    for g in ref_sd["param_groups"]:
        g["fused"], g["foreach"] = True, None
    ref.load_state_dict(ref_sd)
    for p, r in zip(back.policy.parameters(), ref_params, strict=True):
        got, want = back.policy.optimizer.state[p], ref.state[r]
        assert sorted(got) == sorted(want)
        for name in want:
            assert (got[name].dtype, got[name].device) == (want[name].dtype, want[name].device)
            assert torch.equal(got[name], want[name]), name
        g = torch.full_like(p, 0.01) * torch.arange(p.numel()).reshape(p.shape).cos()
        p.grad, r.grad = g, g.clone()
    back.policy.optimizer.step()
    ref.step()
    for p, r in zip(back.policy.parameters(), ref_params, strict=True):
        assert torch.equal(p.detach(), r.detach())


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
