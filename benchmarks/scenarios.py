"""The environment's speed targets on every shipped scenario, CartPole-v1 beside them.

``python -m benchmarks.scenarios [--seconds 3] [--scenario NAME ...] [--backend auto]
[--num-envs 1024] [--clock wall|process] [--write]`` measures, on one thread, with the method of
:mod:`benchmarks.run`: Gymnasium ``CartPole-v1`` steps/s (the yardstick, measured before and
after the scenarios; the better of the two counts, as each measure keeps its best block);
``edgesplit/SplitOffload-v1`` steps/s on each scenario (joint, multidiscrete, ``gym.make``);
and the native VectorEnv's device-decisions/s on each (``--num-envs 0``: skipped). Issue 8
asks issue 3's targets (a single env at >= 35% of CartPole's steps/s, the VectorEnv x1024 at
>= 5,000,000 device-decisions/s, both measured there on ``default``) to hold on every
scenario. ``--clock process`` times each block of the single envs by this process's CPU time
instead of wall time: on a machine that other jobs keep busy, a block of a slower env is
more often cut by the scheduler than one of CartPole, which biases the wall-clock ratio
against it. ``--write`` appends the table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np

import edgesplit.envs  # noqa: F401
from benchmarks.machine import machine, publish
from benchmarks.run import steps_per_second, vector_decisions_per_second
from edgesplit.sim.scenario import available_scenarios

TARGET = 0.35  # of CartPole-v1's steps/s (issue 3)
VEC_TARGET = 5_000_000  # device-decisions/s of the VectorEnv x1024 (issue 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--scenario", action="append", help="(repeatable) default: every one")
    p.add_argument("--backend", default="auto", choices=("auto", "numba", "numpy"))
    p.add_argument("--num-envs", type=int, default=1024, help="VectorEnv size (0: skip)")
    p.add_argument("--clock", default="wall", choices=("wall", "process"), help="block timer")
    p.add_argument("--write", action="store_true", help="append to BENCHMARKS.md")
    a = p.parse_args()
    names = a.scenario or list(available_scenarios())
    clock = time.perf_counter if a.clock == "wall" else time.process_time
    cart0 = steps_per_second(gym.make("CartPole-v1"), a.seconds, clock=clock)
    ours, vec = {}, {}
    for name in names:
        env = gym.make("edgesplit/SplitOffload-v1", scenario=name, backend=a.backend)
        ours[name] = steps_per_second(env, a.seconds, clock=clock)
        if a.num_envs:
            vec[name] = vector_decisions_per_second(a.num_envs, a.seconds, a.backend, name)[0]
        print(f"{name}: {ours[name]:,.0f} steps/s, VectorEnv {vec.get(name, 0):,.0f}", flush=True)
    cart1 = steps_per_second(gym.make("CartPole-v1"), a.seconds, clock=clock)
    cart = max(cart0, cart1)
    backend = gym.make("edgesplit/SplitOffload-v1").unwrapped.core.backend
    backend = backend if a.backend == "auto" else a.backend
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = [
        f"| CartPole-v1 steps/s (yardstick) | {cart:,.0f} | before {cart0:,.0f}, "
        f"after {cart1:,.0f} |\n"
    ]
    for name, v in ours.items():
        met = "met" if v >= TARGET * cart else "**not met**"
        rows.append(
            f"| SplitOffload-v1 {name}, joint: steps/s | {v:,.0f} | "
            f"{100 * v / cart:.0f}% of CartPole ({met}; target >= {100 * TARGET:.0f}%) |\n"
        )
    for name, v in vec.items():
        met = "met" if v >= VEC_TARGET else "**not met**"
        rows.append(
            f"| VectorEnv x{a.num_envs} {name}: device-decisions/s | {v:,.0f} | "
            f"{met} (target >= {VEC_TARGET:,}) |\n"
        )
    table = (
        f"### {when}: the env speed targets by scenario (`python -m benchmarks.scenarios`)\n\n"
        f"Machine: {machine()} (shared; load average {load} at the end), Python "
        f"{platform.python_version()}, numpy {np.__version__}, gymnasium {gym.__version__}; "
        f"backend {backend}; one thread; best 1024-step block over {a.seconds:g} s each, "
        f"single envs' blocks timed by {'wall' if a.clock == 'wall' else 'process CPU'} "
        "time.\n\n"
        "| measure | value | note |\n|---|---:|---|\n" + "".join(rows)
    )
    publish(table, a.write)


if __name__ == "__main__":
    main()
