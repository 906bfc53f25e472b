"""Decision quality of every agent on every shipped scenario: RESULTS.md.

``python -m benchmarks.quality [--algos ppo ...] [--scenarios default ...] [--seeds 0 1 2]
[--episodes 20] [--set key=value ...]`` trains each (algorithm, scenario, seed) with the
shipped configs through ``train.py``'s own code (:func:`edgesplit.agents.training.train`,
run directories under ``runs/quality/``), evaluates each on the held-out episodes (seeds
100000..100000 + episodes - 1) beside every baseline, and writes RESULTS.md: per scenario,
each learned agent's mean over its training seeds with a 95% confidence interval (Student's
t over seeds) and each baseline's mean over the episodes with its interval, with cost,
latency, deadline misses, energy and drops, training time and steps.

It runs in parts: each (algorithm, scenario) row is stored in
``benchmarks/results/quality.json`` with the date and machine it ran on, and the page is
rebuilt from every stored row; a run directory that already holds a finished run is reused
(``--fresh`` retrains). ``--set`` passes Hydra overrides to every run (a smaller budget:
``--set total_timesteps=20000``); rows run with overrides say so. ``--label NAME`` keeps
such a variant apart (its own row, ``ppo (NAME)``, and run directories): the discount
comparison of the foresight scenarios is ``--algos ppo --scenarios bursty --set
algo.kwargs.gamma=0.0 --label gamma0``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

from benchmarks.machine import machine

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STORE = REPO / "benchmarks" / "results" / "quality.json"
PAGE = REPO / "RESULTS.md"
RUNS = REPO / "runs" / "quality"
SCENARIOS = ["default", "dense", "three_tier", "bursty", "battery", "trace_driven"]
ALGOS = ["ppo", "maskable_ppo", "maddpg", "ddpg", "dqn", "ddqn"]
METRICS = ("cost_per_slot", "latency_ms", "miss_rate", "energy_mj", "drops")


def _t975(df: int) -> float:
    """Student's t quantile 0.975 (the table for small df, 1.96 beyond)."""
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}
    table.update({9: 2.262, 10: 2.228, 15: 2.131, 19: 2.093, 20: 2.086, 30: 2.042})
    if df in table:
        return table[df]
    return 1.96 if df > 30 else table[min(k for k in table if k >= df)]


def _commit() -> str:
    """The checkout's commit (what the row's runs trained with, when run from a clean tree)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def _compose(overrides: list[str]) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from edgesplit.agents.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def run_one(
    algo: str,
    scenario: str,
    seed: int,
    episodes: int,
    extra: list[str],
    fresh: bool,
    label: str = "",
    baselines: bool = True,
) -> dict[str, Any]:
    """Train and evaluate one run (or read the finished run's summary). Without
    ``baselines`` the run evaluates only all-local beside the agent: the page takes the
    baselines from the first seed's run, on the same held-out episodes (the clairvoyant
    alone takes minutes per seed on ``dense``)."""
    from edgesplit.agents.training import train

    run_dir = RUNS / (
        f"{algo}-{scenario}-{label}-seed{seed}" if label else f"{algo}-{scenario}-seed{seed}"
    )
    done = run_dir / "summary.json"
    if fresh:
        shutil.rmtree(run_dir, ignore_errors=True)
    elif done.is_file():
        s = json.loads(done.read_text())
        if len(s["eval_seeds"]) == episodes:
            return s
    cfg = _compose(
        [
            f"algo={algo}",
            f"env={scenario}",
            f"seed={seed}",
            f"eval.episodes={episodes}",
            "eval.first_seed=100000",
            "progress_bar=false",
            *([] if baselines else ["eval.baselines=[local]"]),
            *extra,
        ]
    )
    return train(cfg, run_dir)


def _row(summaries: list[dict[str, Any]], name: str) -> dict[str, float]:
    """Mean and 95% interval of a learned policy over its training seeds."""
    out: dict[str, float] = {}
    for m in METRICS:
        v = np.array([next(r[m] for r in s["eval"] if r["policy"] == name) for s in summaries])
        out[m] = float(v.mean())
        out[f"{m}_ci"] = (
            float(_t975(len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
        )
    out["per_seed"] = [  # type: ignore[assignment]
        next(r["cost_per_slot"] for r in s["eval"] if r["policy"] == name) for s in summaries
    ]
    return out


@contextlib.contextmanager
def store_lock() -> Any:
    """Hold an exclusive lock on the results store while it is read, changed and written,
    so that two quality runs finishing together do not lose one another's rows."""
    STORE.parent.mkdir(parents=True, exist_ok=True)
    with open(STORE.with_suffix(".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def record(
    algo: str,
    scenario: str,
    summaries: list[dict[str, Any]],
    extra: list[str],
    label: str = "",
) -> None:
    """Store one (algorithm, scenario) row (``algo (label)`` for a labelled variant) and
    the baselines of its evaluation."""
    store = json.loads(STORE.read_text()) if STORE.is_file() else {}
    first = summaries[0]
    n = len(first["eval_seeds"])
    baselines = {
        r["policy"]: {
            **{m: r[m] for m in METRICS},
            "cost_per_slot_ci": _t975(n - 1) * r["cost_se"],
        }
        for r in first["eval"]
        if r["policy"] != algo
    }
    store.setdefault(scenario, {"baselines": {}, "agents": {}})
    # the same held-out episodes give the same baselines: keep those other rows ran too
    store[scenario]["baselines"].update(baselines)
    store[scenario]["episodes"] = n
    store[scenario]["agents"][f"{algo} ({label})" if label else algo] = {
        **_row(summaries, algo),
        "seeds": [s["seed"] for s in summaries],
        "steps": first["total_timesteps"],
        "train_seconds": [s["train_seconds"] for s in summaries],
        "warm_start_seconds": [s.get("warm_start", {}).get("seconds", 0.0) for s in summaries],
        "overrides": extra,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load": round(os.getloadavg()[2], 1),
        "commit": _commit(),
    }
    STORE.parent.mkdir(parents=True, exist_ok=True)
    STORE.write_text(json.dumps(store, indent=1))


def _versus(r: dict[str, Any], base: dict[str, Any], name: str) -> str:
    """A learned row's cost against baseline ``name`` on the same episodes: the mean over
    seeds of the relative difference, and the seeds' range."""
    if name not in base:
        return ""
    d = [100 * (c / base[name]["cost_per_slot"] - 1) for c in r["per_seed"]]
    return f"{np.mean(d):+.1f}% ({min(d):+.1f}..{max(d):+.1f})"


def page() -> str:
    """RESULTS.md from every stored row."""
    store = json.loads(STORE.read_text()) if STORE.is_file() else {}
    out = [
        "# Decision quality on held-out episodes\n",
        "Written by `python -m benchmarks.quality` (see its docstring); do not edit by hand.",
        "Cost per device-slot, lower is better. Learned agents: mean over training seeds with",
        "the 95% interval (Student's t over seeds) and each seed's figure; baselines: mean",
        "over the held-out episodes with the 95% interval over episodes. `oracle_privileged`",
        "and `clairvoyant` know what no deployed scheduler knows (the slot's true rates, the",
        "episode's future): references, not competitors. Latency and energy are per task.",
        "`vs neurosurgeon` and `vs greedy`: the learned agent's cost against the rule's on the",
        "same episodes, mean over seeds (and the seeds' range). `train s` counts the warm",
        "start and is wall-clock time; `run` gives the machine and its load average (15 min)",
        "when the row was recorded (a shared machine trains slower). `vs oracle`: against",
        "the myopic oracle that decides on the same information as the agent (issue 9's",
        "yardstick on the foresight scenarios).\n",
    ]
    for sc in [s for s in SCENARIOS if s in store] + [s for s in store if s not in SCENARIOS]:
        entry = store[sc]
        out.append(f"## {sc} ({entry['episodes']} held-out episodes, seeds 100000+)\n")
        out.append(
            "| policy | cost | ± 95% | vs neurosurgeon | vs greedy | vs oracle | latency ms | "
            "miss % | energy mJ | drops | per seed | steps | train s | run |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|")
        base = entry["baselines"]
        for algo, r in entry["agents"].items():
            seeds = ", ".join(f"{c:.4f}" for c in r["per_seed"])
            secs = np.mean(np.array(r["train_seconds"]) + np.array(r["warm_start_seconds"]))
            note = f"{r['date']}, commit {r.get('commit', '?')}, {r['machine']}, "
            note += f"load {r.get('load', '?')}"
            if r["overrides"]:
                note += f", `{' '.join(r['overrides'])}`"
            out.append(
                f"| **{algo}** | {r['cost_per_slot']:.4f} | {r['cost_per_slot_ci']:.4f} | "
                f"{_versus(r, base, 'neurosurgeon')} | {_versus(r, base, 'greedy')} | "
                f"{_versus(r, base, 'oracle')} | "
                f"{r['latency_ms']:.1f} | {100 * r['miss_rate']:.1f} | {r['energy_mj']:.1f} | "
                f"{r['drops']:.1f} | {seeds} | {r['steps']} | {secs:.0f} | {note} |"
            )
        for name, b in sorted(entry["baselines"].items(), key=lambda kv: kv[1]["cost_per_slot"]):
            out.append(
                f"| {name} | {b['cost_per_slot']:.4f} | {b['cost_per_slot_ci']:.4f} | | | | "
                f"{b['latency_ms']:.1f} | {100 * b['miss_rate']:.1f} | {b['energy_mj']:.1f} | "
                f"{b['drops']:.1f} | | | | |"
            )
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algos", nargs="+", default=ALGOS)
    ap.add_argument("--scenarios", nargs="+", default=SCENARIOS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", dest="extra")
    ap.add_argument("--fresh", action="store_true", help="retrain finished runs")
    ap.add_argument("--label", default="", help="a variant's name (its own row and runs)")
    a = ap.parse_args(argv)
    if a.label and not a.label.replace("_", "").replace("-", "").isalnum():
        ap.error(f"--label: {a.label!r} must be letters, digits, '-' or '_'")
    for sc in a.scenarios:
        for algo in a.algos:
            runs = [
                run_one(algo, sc, s, a.episodes, a.extra, a.fresh, a.label, s == a.seeds[0])
                for s in a.seeds
            ]
            with store_lock():  # several quality runs may finish side by side
                record(algo, sc, runs, a.extra, a.label)
                PAGE.write_text(page())
                name = f"{algo} ({a.label})" if a.label else algo
                # read back under the lock: another run's write_text truncates first
                r = json.loads(STORE.read_text())[sc]["agents"][name]
            print(f"{name} on {sc}: {r['cost_per_slot']:.4f} ± {r['cost_per_slot_ci']:.4f}")


if __name__ == "__main__":
    main()
