"""Speed benchmark of the environment against a yardstick measured in the same run.

``python -m benchmarks.run [--seconds 3] [--write]`` measures, on one thread:

* Gymnasium ``CartPole-v1`` steps/s (``gym.make``, default wrappers) — the yardstick;
* ``edgesplit/SplitOffload-v1`` steps/s on ``default`` (joint, multidiscrete, ``gym.make``);
* the native VectorEnv with 1024 environments on ``default``: device-decisions/s
  (environments x devices per second);
* the same two on the numpy backend (the reference implementation, what runs without numba).

Actions are sampled before timing, the same way for every env, so that sampling costs do not
enter the comparison. Targets (issue 3): the single env at >= 35% of CartPole's steps/s, the
VectorEnv at >= 5,000,000 device-decisions/s. ``--write`` appends the result to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.machine import cpu_name

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np

import edgesplit.envs  # noqa: F401


def _numba_version() -> str:
    try:
        import numba
    except ImportError:
        return ", no numba"
    return f", numba {numba.__version__}"


def steps_per_second(
    env: gym.Env, seconds: float, seed: int = 0, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Steps/s of ``env`` over its best 1024-step block in ``seconds`` (of wall time), each
    block timed by ``clock`` (``time.process_time``: this process's CPU time, for a machine
    that other jobs keep busy)."""
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(4096)]
    env.reset(seed=seed)
    for a in actions[:64]:  # warm-up: a compiled backend may still be loading or compiling
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    env.reset(seed=seed)
    n, best = 0, 0.0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:  # repeated blocks; keep the best block (least noise)
        t0 = clock()
        for a in actions[:1024]:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
        dt_ = clock() - t0
        best = max(best, 1024 / dt_)
        n += 1024
    return best


def vector_decisions_per_second(
    num_envs: int, seconds: float, backend: str = "auto", scenario: str = "default"
) -> tuple[float, float]:
    envs = gym.make_vec(
        "edgesplit/SplitOffload-v1", num_envs=num_envs, scenario=scenario, backend=backend
    )
    n_dev = envs.unwrapped.core.n_devices
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(16)]
    envs.reset(seed=0)
    envs.step(actions[0])  # warm-up (see steps_per_second)
    best = 0.0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        for a in actions:
            envs.step(a)
        best = max(best, len(actions) / (time.perf_counter() - t0))
    return best * num_envs * n_dev, best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--num-envs", type=int, default=1024)
    p.add_argument("--write", action="store_true", help="append to BENCHMARKS.md")
    a = p.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    cart = steps_per_second(gym.make("CartPole-v1"), a.seconds)
    ours = steps_per_second(gym.make("edgesplit/SplitOffload-v1", scenario="default"), a.seconds)
    seq = steps_per_second(
        gym.make("edgesplit/SplitOffload-v1", scenario="default", decision_mode="sequential"),
        a.seconds,
    )
    vec, vsteps = vector_decisions_per_second(a.num_envs, a.seconds)
    np_single = steps_per_second(
        gym.make("edgesplit/SplitOffload-v1", scenario="default", backend="numpy"), a.seconds
    )
    np_vec, np_vsteps = vector_decisions_per_second(a.num_envs, a.seconds, backend="numpy")
    backend = gym.make("edgesplit/SplitOffload-v1").unwrapped.core.backend
    rows = [
        ("CartPole-v1 steps/s (yardstick)", f"{cart:,.0f}", ""),
        (
            "SplitOffload-v1 default, joint: steps/s",
            f"{ours:,.0f}",
            f"{100 * ours / cart:.0f}% of CartPole (target >= 35%)",
        ),
        (
            "SplitOffload-v1 default, sequential: steps/s",
            f"{seq:,.0f}",
            f"{100 * seq / cart:.0f}% of CartPole",
        ),
        (
            f"VectorEnv x{a.num_envs} default: device-decisions/s",
            f"{vec:,.0f}",
            f"{vsteps:,.0f} batched steps/s (target >= 5,000,000)",
        ),
        (
            "numpy backend: SplitOffload-v1 default, joint: steps/s",
            f"{np_single:,.0f}",
            f"{100 * np_single / cart:.0f}% of CartPole (reference implementation)",
        ),
        (
            f"numpy backend: VectorEnv x{a.num_envs}: device-decisions/s",
            f"{np_vec:,.0f}",
            f"{np_vsteps:,.0f} batched steps/s",
        ),
    ]
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        f"### {when}\n\nMachine: {cpu_name()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, gymnasium {gym.__version__}"
        f"{_numba_version()}; default backend {backend}; "
        "one thread; best 1024-step block over "
        f"{a.seconds:g} s each.\n\n| measure | value | note |\n|---|---:|---|\n"
    )
    table = head + "".join(f"| {r[0]} | {r[1]} | {r[2]} |\n" for r in rows)
    print(table)
    if a.write:
        path = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
        if not path.exists():
            path.write_text(
                "# Benchmarks\n\nWritten by `python -m benchmarks.run --write` "
                "(`make bench`). Speed targets are checked here, against a yardstick measured "
                "in the same run, not in timed unit tests.\n\n"
            )
        with path.open("a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
