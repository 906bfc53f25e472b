"""Training speed of DQN and DDQN (``agents/dqn_masked.py``) against the environment's own
rate, measured in the same run, on one torch thread.

``python -m benchmarks.train_speed_dqn [--decisions 100000] [--scenario default] [--write]``
measures, in decisions (steps of the sequential face) per second:

* yardstick 1: the sequential Gymnasium face (``decision_mode="sequential"``, one env,
  ``gym.make``), random allowed actions: what SB3's DQN stepped;
* yardstick 2: the batched sequential face that DQN trains on
  (:class:`~edgesplit.agents.dqn_masked.SequentialBatch`, the shipped config's ``n_envs``),
  random allowed actions, no network;
* DQN and DDQN end to end with the shipped config (``configs/algo/dqn.yaml``, which DDQN
  shares): acting with the network, epsilon exploration, replay and gradient steps, timed
  after the start (the warm start, which acts with the greedy baseline, and
  ``learning_starts``), whose own rate is printed apart.

Target (issue 9): DQN and DDQN >= 5,000 decisions/s end to end. ``--write`` appends the
result to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

from benchmarks.machine import cpu_name, publish

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np
import torch
from omegaconf import OmegaConf

import edgesplit.envs  # noqa: F401  (registers the env ids)
from edgesplit.agents.ddqn import MaskedDDQN
from edgesplit.agents.dqn_masked import MaskedDQN, SequentialBatch
from edgesplit.envs.gym_env import SplitOffloadEnv

ROOT = Path(__file__).resolve().parents[1]
TARGET = 5_000  # [decisions/s] end to end, issue 9


def shipped_kwargs() -> dict:
    """``algo.kwargs`` of ``configs/algo/dqn.yaml`` (DDQN's are the same)."""
    return OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "algo" / "dqn.yaml"))["kwargs"]


def gym_face_rate(scenario: str, seconds: float) -> float:
    """Decisions/s of the sequential Gymnasium face with random allowed actions (the best
    block of 1,024)."""
    env = gym.make("edgesplit/SplitOffload-v1", scenario=scenario, decision_mode="sequential")
    rng = np.random.default_rng(0)
    _, info = env.reset(seed=0)
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        for _ in range(1024):
            m = info["action_mask"]
            a = int(np.where(m, rng.random(m.shape), -1.0).argmax())
            _, _, term, trunc, info = env.step(a)
            if term or trunc:
                _, info = env.reset()
        best = max(best, 1024 / (time.perf_counter() - t0))
    return best


def batched_face_rate(scenario: str, n_envs: int, seconds: float) -> float:
    """Decisions/s of the batched sequential face with random allowed actions (the best
    block of 20 slots)."""
    env = SplitOffloadEnv(scenario, decision_mode="sequential")
    batch = SequentialBatch(env.scenario, n_envs, seed=0)
    rng = np.random.default_rng(0)
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        n, t0 = 0, time.perf_counter()
        for _ in range(20):
            for i in range(batch.n_devices):
                m = batch.masks(i)
                batch.observation(i)  # built, as the learner builds it
                batch.record(i, np.where(m, rng.random(m.shape), -1.0).argmax(axis=1))
                n += int(batch.has[:, i].sum())
            batch.finish_slot()
        best = max(best, n / (time.perf_counter() - t0))
    return best


def training_rate(
    cls: type[MaskedDQN], scenario: str, decisions: int, block: int = 10_000
) -> tuple[float, float, float, int]:
    """``cls`` learning with the shipped config: decisions/s over its start (the warm start
    on the greedy baseline's decisions and the decisions before ``learning_starts``); then,
    over ``decisions`` more (acting, exploring, gradient steps) timed in blocks of
    ``block``, the best block's and the overall decisions/s, and the gradient steps taken."""
    env = SplitOffloadEnv(scenario, decision_mode="sequential")
    model = cls("MlpPolicy", env, seed=0, **shipped_kwargs())
    hp = model.hparams
    t0 = time.perf_counter()
    model.learn(max(hp["learning_starts"], hp["warm_start_steps"]) + 1)
    start_rate = model.num_timesteps / (time.perf_counter() - t0)
    n0, u0, t_all = model.num_timesteps, model.n_updates, time.perf_counter()
    best = 0.0
    while model.num_timesteps - n0 < decisions:
        n1, t1 = model.num_timesteps, time.perf_counter()
        model.learn(block)
        best = max(best, (model.num_timesteps - n1) / (time.perf_counter() - t1))
    overall = (model.num_timesteps - n0) / (time.perf_counter() - t_all)
    return start_rate, best, overall, model.n_updates - u0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decisions", type=int, default=100_000, help="timed decisions per learner")
    ap.add_argument("--seconds", type=float, default=3.0, help="per yardstick")
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--write", action="store_true", help="append the result to BENCHMARKS.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    kw = shipped_kwargs()
    gym_rate = gym_face_rate(args.scenario, args.seconds)
    batch_rate = batched_face_rate(args.scenario, int(kw["n_envs"]), args.seconds)
    dqn0, dqn, dqn_all, dqn_upd = training_rate(MaskedDQN, args.scenario, args.decisions)
    ddqn0, ddqn, ddqn_all, ddqn_upd = training_rate(MaskedDDQN, args.scenario, args.decisions)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### DQN/DDQN training speed, {when}",
        "",
        f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} on 1 thread; "
        f"scenario `{args.scenario}`, the shipped `configs/algo/dqn.yaml` (n_envs "
        f"{kw['n_envs']}, batch {kw['batch_size']}, {kw.get('gradient_steps', 1)} gradient "
        f"step(s) every {kw['train_freq']} decisions); {args.decisions:,} timed decisions each.",
        "",
        "Best block (of 1,024 decisions, 20 slots, 10,000 decisions), as `benchmarks/run.py` "
        "keeps the best block on this shared machine; the learners' overall rate beside it.",
        "",
        "| what | decisions/s (best block) | overall |",
        "|---|---:|---:|",
        f"| yardstick: sequential Gymnasium face, random allowed actions | {gym_rate:,.0f} | |",
        f"| yardstick: batched sequential face x{kw['n_envs']}, random allowed actions "
        f"| {batch_rate:,.0f} | |",
        f"| DQN start: warm start on greedy's decisions, learning_starts | | {dqn0:,.0f} |",
        f"| DQN end to end ({dqn_upd:,} gradient steps) | {dqn:,.0f} | {dqn_all:,.0f} |",
        f"| DDQN start: warm start on greedy's decisions, learning_starts | | {ddqn0:,.0f} |",
        f"| DDQN end to end ({ddqn_upd:,} gradient steps) | {ddqn:,.0f} | {ddqn_all:,.0f} |",
        "",
        f"Target >= {TARGET:,} decisions/s end to end (best block): DQN "
        f"{'met' if dqn >= TARGET else 'NOT met'}, DDQN {'met' if ddqn >= TARGET else 'NOT met'}; "
        f"overall: DQN {'met' if dqn_all >= TARGET else 'NOT met'}, DDQN "
        f"{'met' if ddqn_all >= TARGET else 'NOT met'}.",
        "",
    ]
    publish("\n".join(lines), args.write)


if __name__ == "__main__":
    main()
