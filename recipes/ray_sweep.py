"""A sweep over algorithms, scenarios and seeds with Ray Tune over the training entry point
(``edgesplit.agents.training.train``, what ``train.py`` runs), one trial per combination,
in parallel: on this machine's cores, or on a Ray cluster with ``--address auto`` (the
same script). Writes one results table (Markdown and CSV) of every trial's held-out
evaluation.

Run from the checkout (the trials compose ``configs/`` with Hydra, as ``train.py`` does):
``python recipes/ray_sweep.py --algos ppo maskable_ppo --seeds 0 1 --scenarios single``.
"""

import argparse
import csv
from pathlib import Path

from ray_local import init_ray  # recipes/ray_local.py: loopback-only local Ray

p = argparse.ArgumentParser()
p.add_argument("--algos", nargs="+", default=["ppo", "maskable_ppo"])
p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
p.add_argument("--scenarios", nargs="+", default=["single"])
p.add_argument("--timesteps", type=int, default=60_000, help="training steps per trial")
p.add_argument("--eval-episodes", type=int, default=10)
p.add_argument("--out", default="sweep", help="folder for the runs and the results table")
p.add_argument("--config-dir", default=str(Path(__file__).resolve().parents[1] / "configs"))
p.add_argument("--cpus", type=int, default=2, help="local Ray's CPUs (one trial each)")
p.add_argument("--address", default=None, help="a running cluster's address (ray start)")
args = p.parse_args()
out = Path(args.out).resolve()
config_dir = str(Path(args.config_dir).resolve())

init_ray(args.address, num_cpus=args.cpus)
import ray  # noqa: E402
from ray import tune  # noqa: E402


def trial(params: dict) -> dict:
    """One training run, composed as ``train.py`` composes it, then its evaluation."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from edgesplit.agents.config import check_train_config, register_configs
    from edgesplit.agents.training import train

    register_configs()  # the typed schema `train_schema` that configs/config.yaml names first

    overrides = [
        f"algo={params['algo']}",
        f"env={params['scenario']}",
        f"seed={params['seed']}",
        f"total_timesteps={args.timesteps}",
        f"eval.episodes={args.eval_episodes}",
        "resume=false",
        "progress_bar=false",  # trials log to Ray's driver, not a terminal
    ]
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    check_train_config(cfg)  # ranges, as train.py checks them
    run_dir = out / "runs" / f"{params['algo']}-{params['scenario']}-seed{params['seed']}"
    summary = train(cfg, run_dir)
    rows = {r["policy"]: r for r in summary["eval"]}
    own = rows[summary["algo"]]
    return {
        "cost_per_slot": own["cost_per_slot"],
        "latency_ms": own["latency_ms"],
        "miss_rate": own["miss_rate"],
        "greedy_cost_per_slot": rows["greedy"]["cost_per_slot"] if "greedy" in rows else None,
        "timesteps": summary["total_timesteps"],
        "train_seconds": summary["train_seconds"],
    }


space = {
    "algo": tune.grid_search(args.algos),
    "scenario": tune.grid_search(args.scenarios),
    "seed": tune.grid_search(args.seeds),
}
tuner = tune.Tuner(
    tune.with_resources(trial, {"cpu": 1}),
    param_space=space,
    run_config=tune.RunConfig(storage_path=str(out / "tune"), name="sweep", verbose=0),
)
grid = tuner.fit()
rows = []
for res in grid:
    if res.error:
        raise RuntimeError(f"trial {res.config} failed") from res.error
    rows.append({**{k: res.config[k] for k in ("algo", "scenario", "seed")}, **res.metrics})
keys = [
    "algo",
    "scenario",
    "seed",
    "cost_per_slot",
    "latency_ms",
    "miss_rate",
    "greedy_cost_per_slot",
    "timesteps",
    "train_seconds",
]
rows.sort(key=lambda r: (r["algo"], r["scenario"], r["seed"]))
out.mkdir(parents=True, exist_ok=True)
with (out / "results.csv").open("w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
for r in rows:
    cells = [f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys]
    lines.append("| " + " | ".join(cells) + " |")
(out / "results.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"{len(rows)} trials; table in {out / 'results.md'}")
ray.shutdown()
