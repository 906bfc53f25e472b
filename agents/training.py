"""Training runs: build the env and the agent from a config, learn with atomic checkpoints,
resume, and compare the result with every baseline on held-out episodes.

``train.py`` is the Hydra front door; this module is the importable body, so tests and
notebooks run exactly what the command line runs.

A run directory holds::

    .hydra/config.yaml     the resolved config (written by Hydra)
    tb/                    TensorBoard events (rollout/, train/, eval/ scalars)
    checkpoint.zip         the latest checkpoint (written to a temporary file, then renamed)
    replay_buffer.pkl      off-policy agents' replay buffer, beside the checkpoint
    model.zip              the final model
                           (MADDPG: checkpoint.pt, checkpoint_replay.npz, model.pt)
    eval.csv, eval.md      the final comparison with the baselines
    policy/                the exported policy: policy.onnx + policy.json (see .export)
    summary.json           what was run and what came out
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import DummyVecEnv

from edgesplit.envs import ENV_ID

from .evaluation import compare, evaluate_policy, markdown_table, policy_predictor, summarise
from .export import export_policy
from .registry import get_agent

__all__ = ["AtomicCheckpoint", "env_kwargs", "pettingzoo_env", "train"]


def env_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of the env for this run's agent (its decision mode and action view)."""
    spec = get_agent(cfg["algo"]["name"])
    kw: dict[str, Any] = {
        "scenario": cfg["env"]["scenario"],
        "decision_mode": spec.decision_mode,
        "action_type": spec.action_type,
    }
    if cfg["env"].get("max_cycles") is not None:
        kw["max_cycles"] = int(cfg["env"]["max_cycles"])
    return kw


class AtomicCheckpoint(BaseCallback):
    """Every ``every`` env steps, save the model (and replay buffer) to a temporary file and
    rename it over the previous checkpoint, so a crash never leaves a torn checkpoint."""

    def __init__(self, run_dir: Path, every: int) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.every = int(every)
        self._next = self.every

    def _init_callback(self) -> None:
        self._next = (self.model.num_timesteps // self.every + 1) * self.every

    def save(self) -> None:
        tmp = self.run_dir / "checkpoint.tmp.zip"
        self.model.save(tmp)
        if hasattr(self.model, "replay_buffer") and self.model.replay_buffer is not None:
            rb_tmp = self.run_dir / "replay_buffer.tmp.pkl"
            self.model.save_replay_buffer(rb_tmp)
            os.replace(rb_tmp, self.run_dir / "replay_buffer.pkl")
        os.replace(tmp, self.run_dir / "checkpoint.zip")

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self._next:
            self.save()
            self._next += self.every
        return True


def _make_model(cfg: dict[str, Any], venv: Any, run_dir: Path) -> Any:
    spec = get_agent(cfg["algo"]["name"])
    cls = spec.load_class()
    kwargs = dict(cfg["algo"].get("kwargs") or {})
    if spec.name == "ddpg":
        n = venv.action_space.shape[0]
        sigma = float(cfg["algo"].get("action_noise_sigma", 0.1))
        kwargs["action_noise"] = NormalActionNoise(np.zeros(n), sigma * np.ones(n))
    return cls(
        cfg["algo"]["policy"],
        venv,
        seed=int(cfg["seed"]),
        tensorboard_log=str(run_dir / "tb"),
        verbose=0,
        device="cpu",
        **kwargs,
    )


def pettingzoo_env(kw: dict[str, Any]) -> Any:
    """The PettingZoo parallel face for a run's env kwargs (the decision mode belongs to
    the Gymnasium face; the PettingZoo face always decides one device per agent)."""
    from edgesplit.envs.split_offload_v0 import parallel_env

    return parallel_env(**{k: v for k, v in kw.items() if k != "decision_mode"})


def _learn_multi_agent(
    cfg: dict[str, Any], run_dir: Path, kw: dict[str, Any], seed: int
) -> tuple[Any, int, float]:
    """MADDPG on the PettingZoo face: atomic ``checkpoint.pt`` (+ replay ``.npz``), resume,
    final ``model.pt``. Returns the model, the step it resumed from and the training time."""
    from .maddpg import MADDPG

    env = pettingzoo_env(kw)
    ckpt = run_dir / "checkpoint.pt"
    tb = str(run_dir / "tb")
    resumed_from = 0
    if cfg.get("resume", True) and ckpt.exists():
        model = MADDPG.load(ckpt, env, tensorboard_log=tb)
        resumed_from = model.num_timesteps
    else:
        hp = dict(cfg["algo"].get("kwargs") or {})
        model = MADDPG(env, seed=seed, tensorboard_log=tb, **hp)
    total = int(cfg["total_timesteps"])
    t0 = time.perf_counter()
    if model.num_timesteps < total:
        model.learn(
            total - model.num_timesteps,
            checkpoint=lambda m: m.save(ckpt, replay_buffer=True),
            checkpoint_every=int(cfg["checkpoint_every"]),
        )
    train_s = time.perf_counter() - t0
    model.save(run_dir / "model.pt")
    model.save(ckpt, replay_buffer=True)
    return model, resumed_from, train_s


def train(cfg: dict[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """Train (or resume) one run and evaluate it; returns the run's summary."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(cfg.get("threads", 1)))
    spec = get_agent(cfg["algo"]["name"])
    kw = env_kwargs(cfg)
    seed = int(cfg["seed"])
    wandb_run = None
    if cfg.get("logger", {}).get("wandb"):
        import wandb

        wandb_run = wandb.init(
            project=cfg["logger"].get("project", "edgesplit"),
            mode=cfg["logger"].get("mode", "offline"),
            dir=str(run_dir),
            config=cfg,
            sync_tensorboard=True,
            name=run_dir.name,
        )
    venv = None
    if spec.multi_agent:
        model, resumed_from, train_s = _learn_multi_agent(cfg, run_dir, kw, seed)
    else:
        venv = make_vec_env(  # each copy in a Monitor: rollout/ep_rew_mean in TensorBoard
            lambda: gym.make(ENV_ID, **kw),
            n_envs=int(cfg["n_envs"]),
            seed=seed,
            vec_env_cls=DummyVecEnv,
        )
        ckpt = run_dir / "checkpoint.zip"
        resumed_from = 0
        if cfg.get("resume", True) and ckpt.exists():
            model = spec.load_class().load(ckpt, env=venv, device="cpu")
            rb = run_dir / "replay_buffer.pkl"
            if rb.exists() and hasattr(model, "load_replay_buffer"):
                model.load_replay_buffer(rb)
            resumed_from = int(model.num_timesteps)
        else:
            model = _make_model(cfg, venv, run_dir)
        total = int(cfg["total_timesteps"])
        t0 = time.perf_counter()
        if model.num_timesteps < total:
            model.learn(
                total_timesteps=total - model.num_timesteps,
                callback=AtomicCheckpoint(run_dir, int(cfg["checkpoint_every"])),
                reset_num_timesteps=resumed_from == 0,
                tb_log_name="run",
            )
        train_s = time.perf_counter() - t0
        model.save(run_dir / "model.zip")
        cb = AtomicCheckpoint(run_dir, 1)
        cb.model = model
        cb.save()

    # final comparison on held-out episodes
    first, n_eval = int(cfg["eval"]["first_seed"]), int(cfg["eval"]["episodes"])
    seeds = list(range(first, first + n_eval))

    predict = policy_predictor(model)

    learned = evaluate_policy(predict, kw, seeds)
    results = compare({spec.name: learned}, kw["scenario"], seeds, cfg["eval"]["baselines"])
    rows = summarise(results)
    with (run_dir / "eval.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    table = markdown_table(rows)
    (run_dir / "eval.md").write_text(
        f"# {spec.name} on {kw['scenario']}: {n_eval} held-out episodes (seeds {first}..)\n\n"
        + table
    )
    summary = {
        "algo": spec.name,
        "scenario": kw["scenario"],
        "env_id": ENV_ID,
        "env_kwargs": kw,
        "seed": seed,
        "total_timesteps": int(model.num_timesteps),
        "resumed_from": resumed_from,
        "train_seconds": round(train_s, 1),
        "eval_seeds": seeds,
        "eval": rows,
    }
    # the deployable policy: ONNX + manifest (no pickle), with this summary inside
    export_policy(model, spec.name, kw, run_dir / "policy", summary=dict(summary))
    summary["policy_dir"] = "policy"
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run_dir / "tb" / "eval")) as tb:
        for r in rows:
            tb.add_scalar(
                f"eval/{r['policy']}/cost_per_slot", r["cost_per_slot"], model.num_timesteps
            )
            tb.add_scalar(f"eval/{r['policy']}/miss_rate", r["miss_rate"], model.num_timesteps)
    if wandb_run is not None:
        for r in rows:
            wandb_run.summary[f"eval/{r['policy']}/cost_per_slot"] = r["cost_per_slot"]
        wandb_run.finish()
    if venv is not None:
        venv.close()
    return summary
