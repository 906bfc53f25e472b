"""MADDPG's training speed, end to end, against the environment's own rate in the same run.

``python -m benchmarks.train_speed_maddpg [--scenario default] [--steps 40000]
[--set KEY=VALUE ...] [--write]`` measures, on one thread (torch and OpenMP), with the
shipped config (``configs/algo/maddpg.yaml``, with the scenario's
``configs/tuned/maddpg_<scenario>.yaml`` on top where there is one, and ``--set``'s changes
to MADDPG's arguments on top of that, e.g. ``--set actor=estimates rounds=2``):

* the yardstick: random masked actions (uniform over each device's allowed choices, drawn
  with numpy) through the same native VectorEnv MADDPG collects from (``n_envs`` copies,
  same-step autoreset): environment steps/s;
* MADDPG's ``learn`` (collection, the ``greedy`` labels of the cloning phase, replay and
  updates: everything a training run does but checkpoints and evaluation) in the
  behaviour-cloning phase, in the MADDPG (actor-critic) phase after it, and, where the
  cloning term decays (``bc_decay``), in that phase once the term is gone (no more
  ``greedy`` labels: most of the shipped actor-critic phase): environment steps/s of each,
  after a warm-up past ``learning_starts``.

As in a training run, torch uses one thread and glibc's allocator keeps freed large tensors
for reuse (:func:`edgesplit.agents.allocator.keep_freed_memory`, which
:func:`edgesplit.agents.training.train` sets before it builds anything); the table says
whether the setting was taken (sections of BENCHMARKS.md whose header does not say so ran
without it).

Target (issue 9): MADDPG >= 2,000 environment steps/s on this 2-core machine. The machine is
shared, so the yardstick is printed beside it; ``--write`` appends the table to
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import math
import os
import platform
import time
from pathlib import Path

from benchmarks.machine import cpu_name, publish

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
import yaml

from edgesplit.agents.allocator import keep_freed_memory
from edgesplit.agents.maddpg import MADDPG
from edgesplit.envs.split_offload_v1 import parallel_env
from edgesplit.envs.vector_env import SplitOffloadVectorEnv

ROOT = Path(__file__).resolve().parents[1]


def shipped_kwargs(scenario: str = "default") -> dict:
    """The ``kwargs`` of ``configs/algo/maddpg.yaml``, with the algorithm's ``n_envs`` (set
    beside them since one ``n_envs`` serves every agent: ``agents/config.py``) and the
    scenario's tuned ``algo.kwargs`` (``configs/tuned/maddpg_<scenario>.yaml``) on top."""
    cfg = yaml.safe_load((ROOT / "configs" / "algo" / "maddpg.yaml").read_text())
    kw = {**cfg["kwargs"], "n_envs": int(cfg["n_envs"])}
    tuned = ROOT / "configs" / "tuned" / f"maddpg_{scenario}.yaml"
    if tuned.is_file():
        algo = (yaml.safe_load(tuned.read_text()) or {}).get("algo") or {}
        kw.update(algo.get("kwargs") or {})
        if "n_envs" in algo:
            kw["n_envs"] = int(algo["n_envs"])
    return kw


def with_overrides(kwargs: dict, overrides: list[str]) -> dict:
    """``kwargs`` with each ``key=value`` of ``overrides`` set (the value read as YAML); a
    key that is not an argument of :class:`MADDPG` is an error naming it.

    >>> with_overrides({"batch_size": 512}, ["actor=estimates", "rounds=2"])
    {'batch_size': 512, 'actor': 'estimates', 'rounds': 2}
    """
    params = set(inspect.signature(MADDPG).parameters) - {"env", "tensorboard_log"}
    out = dict(kwargs)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set: {item!r} is not KEY=VALUE")
        if key not in params:
            raise ValueError(f"--set: {key!r} is not an argument of MADDPG")
        out[key] = yaml.safe_load(value)
    return out


def _timed(fn) -> tuple[float, float]:
    """Wall and process CPU seconds of ``fn()``."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def random_masked_rate(
    scenario: str, n_envs: int, steps: int, seed: int = 0
) -> tuple[float, float]:
    """Environment steps per wall second and per CPU second of uniformly random allowed
    actions through the VectorEnv."""
    venv = SplitOffloadVectorEnv(
        num_envs=n_envs, scenario=scenario, action_type="multidiscrete", autoreset_mode="SAME_STEP"
    )
    nvec = venv.core.tables.nvec
    cuts = np.cumsum(nvec)[:-1]
    rng = np.random.default_rng(seed)
    _, info = venv.reset(seed=seed)
    n = venv.core.n_devices

    def sample(mask: np.ndarray) -> np.ndarray:
        u = np.where(mask.reshape(n_envs, n, -1), rng.random((n_envs, n, int(nvec.sum()))), -1.0)
        return np.stack([h.argmax(-1) for h in np.split(u, cuts, axis=-1)], -1).reshape(n_envs, -1)

    venv.step(sample(info["action_mask"]))  # warm-up (a compiled backend may be loading)
    _, info = venv.reset(seed=seed)
    state = {"info": info}

    def run() -> None:
        for _ in range(-(-steps // n_envs)):
            state["info"] = venv.step(sample(state["info"]["action_mask"]))[-1]

    wall, cpu = _timed(run)
    done = -(-steps // n_envs) * n_envs
    return done / wall, done / cpu


def decayed_phase_start(model: MADDPG) -> int | None:
    """The step from which ``model`` trains with the cloning term gone and no ``greedy``
    labels (:meth:`MADDPG.labels_until`), or None where its config has no such phase
    after the actor-critic phase starts (no ``bc_decay``: the term stays; ``bc_coef`` 0:
    that phase is already label-free)."""
    until = model.labels_until()
    if math.isinf(until) or until <= int(model.hparams["bc_timesteps"]):
        return None
    return int(until)


def maddpg_rates(scenario: str, steps: int, kwargs: dict) -> dict[str, tuple[float, float]]:
    """Environment steps per wall second and per CPU second of :meth:`MADDPG.learn` in the
    cloning phase (if the config has one) and in the MADDPG phase."""
    model = MADDPG(parallel_env(scenario=scenario, action_type="multidiscrete"), **kwargs)
    warm = max(int(kwargs.get("learning_starts", 0)), 2 * model.hparams["n_envs"])
    model.learn(warm)
    out = {}
    if model.num_timesteps + steps <= int(model.hparams["bc_timesteps"]):
        wall, cpu = _timed(lambda: model.learn(steps))
        out["behaviour-cloning phase"] = (steps / wall, steps / cpu)
    # the step counter decides the phase: skip to the end of the cloning phase
    model.num_timesteps = max(model.num_timesteps, int(model.hparams["bc_timesteps"]))
    model.learn(model.hparams["n_envs"])  # warm-up of the MADDPG update
    wall, cpu = _timed(lambda: model.learn(steps))
    out["MADDPG phase"] = (steps / wall, steps / cpu)
    gone = decayed_phase_start(model)
    if gone is not None:
        # past the cloning term's decay: no more labels from the greedy baseline
        model.num_timesteps = max(model.num_timesteps, gone)
        model.learn(model.hparams["n_envs"])
        wall, cpu = _timed(lambda: model.learn(steps))
        out["MADDPG phase, cloning term decayed"] = (steps / wall, steps / cpu)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="default")
    p.add_argument("--steps", type=int, default=40_000, help="environment steps per measure")
    p.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", dest="overrides",
        help="change MADDPG's arguments (e.g. actor=estimates rounds=2)",
    )  # fmt: skip
    p.add_argument("--write", action="store_true", help="append to BENCHMARKS.md")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    allocator = keep_freed_memory()  # as train() does, before anything is built
    kw = with_overrides(shipped_kwargs(a.scenario), a.overrides)
    env_rate, env_cpu = random_masked_rate(a.scenario, int(kw["n_envs"]), 20 * a.steps)
    rates = maddpg_rates(a.scenario, a.steps, kw)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    changed = f" with `--set {' '.join(a.overrides)}`" if a.overrides else ""
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        f"### {when}: MADDPG training speed (`python -m benchmarks.train_speed_maddpg`)\n\n"
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, one thread, glibc allocator setting of `train()` "
        f"{'taken' if allocator else 'not available here'}; scenario `{a.scenario}`, the shipped "
        f"config{changed} (`n_envs` {kw['n_envs']}, `batch_size` {kw['batch_size']}, "
        f"`train_freq` {kw['train_freq']}, `hidden` {kw['hidden']}, `cf_batch` "
        f"{kw.get('cf_batch')}); {a.steps:,} env steps per "
        f"MADDPG measure; load average {load:.1f} at the end (the machine is shared: per CPU "
        "s is this process's own CPU time).\n\n"
        "| measure | env steps/s | env steps per CPU s | CPU s per 1k env steps | note |\n"
        "|---|---:|---:|---:|---|\n"
    )
    rows = [
        (
            f"VectorEnv x{kw['n_envs']}, random masked actions (yardstick)",
            f"{env_rate:,.0f}",
            f"{env_cpu:,.0f}",
            f"{1000 / env_cpu:.3f}",
            "",
        )
    ]
    for phase, (wall, cpu) in rates.items():
        rows.append(
            (
                f"MADDPG learn, {phase}",
                f"{wall:,.0f}",
                f"{cpu:,.0f}",
                f"{1000 / cpu:.3f}",
                f"{100 * wall / env_rate:.1f}% of the env (target >= 2,000 env steps/s)",
            )
        )
    table = head + "".join(f"| {' | '.join(r)} |\n" for r in rows)
    publish(table, a.write)


if __name__ == "__main__":
    main()
