"""Training runs: build (or resume) the agent a config names, learn with crash-safe
checkpoints, then hand over to evaluation and export.

``train.py`` is the Hydra front door; this module is the importable body, so tests and
notebooks run exactly what the command line runs. It talks to the agent only through the
agent protocol (:mod:`edgesplit.agents.protocol`), so it names no algorithm. The jobs live in
their own modules: the run's environment (:mod:`.run_env`), checkpoints and random-number
state (:mod:`.checkpoint`), the learning loops (:mod:`.sb3_agent`, :mod:`.maddpg`), the
comparison with the baselines (:mod:`.evaluation`) and the export (:mod:`.export`).

A run directory holds::

    .hydra/config.yaml     the resolved config (written by Hydra)
    tb/                    TensorBoard events (rollout/, train/, eval/ scalars)
    checkpoints/<k>-step-<n>/  the latest checkpoint: model, replay buffer, RNG state and
                           step counters as one unit (see .checkpoint)
    model/                 the final model, as the agent saves it (model.zip or model.pt)
    eval.csv, eval.md      the final comparison with the baselines
    policy/                the exported policy: policy.onnx + policy.json (see .export)
    summary.json           what was run and what came out, over every training segment

Running the same command again resumes from the checkpoint. What is restored: the model
(weights, optimiser states, counters), the replay buffer, Python's, numpy's and torch's
random-number states, the agent's own and its environments' generators, and the list of
training segments (steps and seconds). What is not: the episode in progress (the resumed
segment starts new episodes, drawn from the restored generators), an on-policy rollout under
way (PPO collects a fresh one) and anything learnt after the checkpoint, which is done again.
TensorBoard scalars that the interrupted segment wrote at or after the checkpoint's step are
hidden (``purge_step``), so curves never go backwards.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from edgesplit.envs import ENV_ID

from .allocator import keep_freed_memory
from .checkpoint import CheckpointStore, crash_point
from .config import check_train_config
from .evaluate_run import MODEL_DIR
from .evaluation import compare, evaluate_policy, summarise, write_tables
from .export import export_policy
from .registry import AgentSpec, get_agent
from .run_env import env_kwargs, pettingzoo_env

if TYPE_CHECKING:  # pragma: no cover
    from .protocol import Agent

__all__ = ["env_kwargs", "pettingzoo_env", "train"]

OLD_CHECKPOINTS = ("checkpoint.zip", "checkpoint.pt")  # before checkpoints/ (issue 12)


class _Segment:
    """One invocation's training: the steps it covered and the seconds it took."""

    def __init__(self, start: int) -> None:
        self.start, self.t0 = int(start), time.perf_counter()

    def record(self, step: int) -> dict[str, Any]:
        return {
            "from_step": self.start,
            "to_step": int(step),
            "train_seconds": round(time.perf_counter() - self.t0, 3),
        }


def learning_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The settings that shape what is learned (the algorithm and its hyperparameters, the
    environment, the seed, the number of environments), which a resumed run must share with
    its checkpoint; not the budget, evaluation, logging or checkpoint cadence."""
    part = {k: cfg[k] for k in ("algo", "env", "seed", "n_envs") if k in cfg}
    return json.loads(json.dumps(part, default=repr))  # JSON, as state.json holds it


def _start(
    cfg: dict[str, Any], spec: AgentSpec, kw: dict[str, Any], store: CheckpointStore, tb: Path
) -> tuple[Agent, list[dict[str, Any]]]:
    """The agent, resumed from the latest checkpoint when there is one (and ``resume``),
    with the training segments done so far."""
    seed = int(cfg["seed"])
    n_envs = int(cfg["algo"].get("n_envs") or cfg["n_envs"])
    if not cfg.get("resume", True):
        store.clear()
    store.clean()
    ckpt = store.latest()
    if ckpt is None and any((store.root.parent / f).exists() for f in OLD_CHECKPOINTS):
        warnings.warn(
            f"{store.root.parent}: a checkpoint of the earlier layout ({OLD_CHECKPOINTS}) "
            "cannot be resumed (no RNG state or segments): training starts afresh",
            stacklevel=2,
        )
    if ckpt is None:
        return spec.build(cfg["algo"], kw, seed=seed, n_envs=n_envs, tb_dir=tb), []
    agent, state = store.restore(
        ckpt,
        lambda d: spec.load(d, kw, training=True, seed=seed, n_envs=n_envs, tb_dir=tb),
        algo=spec.name,
        config=learning_config(cfg),
    )
    return agent, list(state.get("segments", []))


def _save_model(agent: Agent, out: Path) -> None:
    """The final model in ``out`` (written beside it, then put in place)."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    agent.save(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)


def _report(
    cfg: dict[str, Any],
    spec: AgentSpec,
    agent: Agent,
    kw: dict[str, Any],
    run_dir: Path,
    segments: list[dict[str, Any]],
    resumed_from: int,
) -> dict[str, Any]:
    """The comparison with the baselines on held-out episodes, the exported policy and
    ``summary.json``; returns the summary."""
    first, n_eval = int(cfg["eval"]["first_seed"]), int(cfg["eval"]["episodes"])
    seeds = list(range(first, first + n_eval))
    learned = evaluate_policy(agent.predict, kw, seeds)
    crash_point("train.evaluated")
    results = compare({spec.name: learned}, kw, seeds, cfg["eval"]["baselines"])
    rows = summarise(results)
    title = (
        f"{spec.name} on {kw['scenario']}: {n_eval} held-out episodes "
        f"(seeds {first}..{first + n_eval - 1})"
    )
    write_tables(rows, run_dir, title)
    summary = {
        "algo": spec.name,
        "scenario": kw["scenario"],
        "env_id": ENV_ID,
        "env_kwargs": kw,
        "seed": int(cfg["seed"]),
        "total_timesteps": agent.num_timesteps,
        "resumed_from": resumed_from,
        "train_seconds": round(sum(s["train_seconds"] for s in segments), 3),
        "segments": segments,
        # behaviour cloning before training (agents/warm_start.py), if the config has one
        "warm_start": getattr(agent, "warm_start", None) or {},
        "eval_seeds": seeds,
        "eval": rows,
    }
    # the deployable policy: ONNX + manifest (no pickle), with this summary inside
    export_policy(agent, spec.name, kw, run_dir / "policy", summary=dict(summary))
    crash_point("train.exported")
    summary["policy_dir"] = "policy"
    tmp = run_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, run_dir / "summary.json")
    from torch.utils.tensorboard import SummaryWriter

    step = agent.num_timesteps
    with SummaryWriter(str(run_dir / "tb" / "eval"), purge_step=step) as tb:
        for r in rows:
            tb.add_scalar(f"eval/{r['policy']}/cost_per_slot", r["cost_per_slot"], step)
            tb.add_scalar(f"eval/{r['policy']}/miss_rate", r["miss_rate"], step)
    return summary


def train(cfg: dict[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """Train (or resume) one run and evaluate it; returns the run's summary.

    ``cfg`` is a composed ``train.py`` config as a plain dict; it is checked first
    (:func:`edgesplit.agents.config.check_train_config`: a
    :class:`~edgesplit.agents.config.ConfigError` naming the key and the value).
    """
    check_train_config(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(cfg.get("threads", 1)))
    keep_freed_memory()  # glibc: reuse freed large tensors instead of faulting in new pages
    spec = get_agent(cfg["algo"]["name"])
    kw = env_kwargs(cfg)
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
    store = CheckpointStore(run_dir)
    agent, segments = _start(cfg, spec, kw, store, run_dir / "tb")
    resumed_from = agent.num_timesteps
    segment = _Segment(resumed_from)

    def checkpoint() -> None:
        store.save(
            agent,
            {
                "segments": [*segments, segment.record(agent.num_timesteps)],
                "config": learning_config(cfg),
            },
        )

    total = int(cfg["total_timesteps"])
    # a progress bar on stderr (tqdm), from where a resumed run starts
    with tqdm(
        total=total,
        initial=min(resumed_from, total),
        desc=f"{spec.name} on {kw['scenario']}",
        unit="step",
        disable=not cfg.get("progress_bar", True),
        dynamic_ncols=True,
    ) as bar:

        def progress(n: int) -> None:
            bar.update(min(n, total) - bar.n)

        agent.learn(total, checkpoint, int(cfg["checkpoint_every"]), progress)
        progress(agent.num_timesteps)
    if agent.num_timesteps > resumed_from:
        segments.append(segment.record(agent.num_timesteps))
    crash_point("train.learned")
    if agent.num_timesteps > resumed_from:  # else the checkpoint it resumed from is current
        store.save(agent, {"segments": segments, "config": learning_config(cfg)})
    _save_model(agent, run_dir / MODEL_DIR)
    summary = _report(cfg, spec, agent, kw, run_dir, segments, resumed_from)
    if wandb_run is not None:
        for r in summary["eval"]:
            wandb_run.summary[f"eval/{r['policy']}/cost_per_slot"] = r["cost_per_slot"]
        wandb_run.finish()
    agent.close()
    return summary
