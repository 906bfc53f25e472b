"""Training speed of PPO with the shared policy against the environment's own rate.

``python -m benchmarks.train_speed [--scenario default] [--steps 16384] [--set KEY=VALUE ...]
[--write]`` measures, on one torch thread, in the same run:

* the yardstick: the native VectorEnv with the PPO config's ``n_envs`` copies stepped with
  actions sampled beforehand (env-steps/s, one env-step = one joint decision of a copy),
  after one untimed step (the compiled step loads or compiles on the first);
* PPO end to end with the shipped config (``configs/algo/ppo.yaml``: collection and
  updates, after one warm-up rollout; the warm start is timed apart, as it runs once), and
  how much of it the updates (SB3's ``train()``: the epochs over the rollout) took.

Both as wall-clock rates and as rates per CPU second of this process (the machine may be
shared: the CPU-second rate is what one free core would give). ``--set`` changes the
config for a variant (``--set kwargs.n_epochs=2 n_envs=128``: dotted keys of the algo
config, YAML values); the section says what was changed. ``--write`` appends the result to
BENCHMARKS.md. The issue's target is PPO >= 10,000 env-steps/s on 2 cores.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
import yaml

from benchmarks.machine import machine, publish

REPO = Path(__file__).resolve().parents[1]


def _timed(fn) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def with_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``cfg`` with each ``key.sub=value`` of ``overrides`` set (the value read as YAML);
    a key that the config does not have is an error naming it.

    >>> with_overrides({"n_envs": 64, "kwargs": {"n_epochs": 4}}, ["kwargs.n_epochs=2"])
    {'n_envs': 64, 'kwargs': {'n_epochs': 2}}
    """
    out = copy.deepcopy(cfg)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set: {item!r} is not KEY=VALUE")
        *path, last = key.split(".")
        node = out
        for part in path:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"--set: {key!r}: the PPO config has no section {part!r}")
            node = node[part]
        if last not in node:
            raise ValueError(f"--set: {key!r}: the PPO config has no key {last!r}")
        node[last] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--steps", type=int, default=16384)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="overrides")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    from edgesplit.agents.allocator import keep_freed_memory
    from edgesplit.agents.registry import get_agent

    keep_freed_memory()  # as training does (edgesplit.agents.training.train)
    from edgesplit.envs.vector_env import SplitOffloadVectorEnv

    cfg = yaml.safe_load((REPO / "configs" / "algo" / "ppo.yaml").read_text())
    cfg = with_overrides(cfg, a.overrides)
    n_envs = int(cfg["n_envs"])
    kw = {"scenario": a.scenario}

    venv = SplitOffloadVectorEnv(num_envs=n_envs, **kw)
    venv.reset(seed=0)
    venv.action_space.seed(0)
    acts = [venv.action_space.sample() for _ in range(64)]
    slots = max(1, a.steps // n_envs)
    venv.step(acts[-1])  # untimed: the compiled step's first call

    def env_only() -> None:
        for i in range(slots):
            venv.step(acts[i % 64])

    env_wall, env_cpu = _timed(env_only)
    env_steps = slots * n_envs

    t0 = time.perf_counter()
    agent = get_agent("ppo").build(cfg, kw, seed=0, n_envs=n_envs)
    build_s = time.perf_counter() - t0
    rollout = n_envs * int(cfg["kwargs"]["n_steps"])
    agent.learn(rollout, checkpoint=lambda: None, checkpoint_every=10**9)  # warm-up
    total = rollout + max(rollout, (a.steps // rollout) * rollout)
    model, update = agent.model, [0.0, 0.0]
    train = model.train

    def timed_train() -> None:  # SB3's update: every epoch over the rollout
        wall, cpu = _timed(train)
        update[0] += wall
        update[1] += cpu

    model.train = timed_train
    ppo_wall, ppo_cpu = _timed(
        lambda: agent.learn(total, checkpoint=lambda: None, checkpoint_every=10**9)
    )
    ppo_steps = total - rollout
    k = cfg["kwargs"]
    what = (
        f"n_envs {n_envs}, n_steps {k['n_steps']}, batch {k['batch_size']}, "
        f"{k['n_epochs']} epochs, policy_kwargs {k.get('policy_kwargs', {})}"
    )
    changed = f" with `--set {' '.join(a.overrides)}`" if a.overrides else ""
    lines = [
        f"## Training speed, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"`python -m benchmarks.train_speed --scenario {a.scenario}`{changed} on {machine()}, "
        f"torch {torch.__version__}, one torch thread, load average "
        f"{os.getloadavg()[0]:.1f} at the end. PPO config: {what}.",
        "",
        "| what | env-steps/s (wall) | per CPU second |",
        "|---|---:|---:|",
        f"| native VectorEnv, {n_envs} copies, random actions (yardstick) | "
        f"{env_steps / env_wall:,.0f} | {env_steps / env_cpu:,.0f} |",
        f"| PPO + shared policy end to end ({ppo_steps} steps) | {ppo_steps / ppo_wall:,.0f} | "
        f"{ppo_steps / ppo_cpu:,.0f} |",
        "",
        f"PPO runs at {100 * (ppo_steps / ppo_cpu) / (env_steps / env_cpu):.1f}% of the "
        f"environment's own rate (per CPU second); the updates took "
        f"{100 * update[1] / ppo_cpu:.0f}% of its CPU time, collection the rest. Agent build "
        f"with the warm start: {build_s:.1f} s.",
        "",
    ]
    publish("\n".join(lines), a.write)
    agent.close()


if __name__ == "__main__":
    main()
