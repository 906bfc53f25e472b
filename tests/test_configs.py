"""Typed configs: every bad value of ``train.py`` and ``evaluate.py`` fails at start, with
the key and the value named, and every shipped config passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from edgesplit.agents.config import (
    ConfigError,
    check_evaluate_config,
    check_train_config,
    register_configs,
)
from edgesplit.agents.registry import AGENTS

REPO = Path(__file__).resolve().parents[1]
CONFIGS = str(REPO / "configs")
register_configs()


def _error(config: str, overrides: list[str]) -> str:
    """The message of the error that composing and checking ``overrides`` raises."""
    check = check_train_config if config == "config" else check_evaluate_config
    with pytest.raises((ConfigError, ConfigCompositionException)) as info:
        with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
            cfg = compose(config, overrides=overrides)
        check(OmegaConf.to_container(cfg, resolve=True))
    e = info.value
    return f"{e} {e.__cause__ or ''}"  # Hydra's message, and OmegaConf's beneath it


# override -> what the message must name (the key, and the value as given)
TRAIN_BAD = {
    "total_timesteps=abc": ["total_timesteps", "abc"],
    "seed=abc": ["seed", "abc"],
    "n_envs=0": ["n_envs=0"],
    "checkpoint_every=0": ["checkpoint_every=0"],
    "threads=0": ["threads=0"],
    "algo.kwargs.learning_rate=abc": ["algo.kwargs.learning_rate='abc'"],
    "eval.episodes=0": ["eval.episodes=0"],
    "total_timesteps=-5": ["total_timesteps=-5"],
    "checkpoint_every=-100": ["checkpoint_every=-100"],
    "seed=-1": ["seed=-1"],
    "eval.baselines=[local,oracl]": ["eval.baselines[1]='oracl'"],
    "env.max_cycles=0": ["env.max_cycles=0"],
    "algo.kwargs.n_steps=1.5": ["algo.kwargs.n_steps=1.5"],
    "+algo.kwargs.learning_rat=0.1": ["algo.kwargs.learning_rat=0.1", "no parameter"],
    "resume=maybe": ["resume", "maybe"],
    "total_timestep=10": ["total_timestep"],  # a key that does not exist
    "logger=wandb logger.mode=offlin": ["logger.mode='offlin'"],
}


@pytest.mark.parametrize("override", sorted(TRAIN_BAD))
def test_bad_train_values_name_the_key_and_the_value(override: str) -> None:
    msg = _error("config", override.split())
    for part in TRAIN_BAD[override]:
        assert part in msg, (override, msg)


def test_algorithm_kwargs_are_checked_for_every_algorithm() -> None:
    msg = _error("config", ["algo=maddpg", "algo.kwargs.lr_actor=abc"])
    assert "algo.kwargs.lr_actor='abc'" in msg
    msg = _error("config", ["algo=dqn", "algo.kwargs.buffer_size=big"])
    assert "algo.kwargs.buffer_size='big'" in msg
    msg = _error("config", ["algo=ppo", "algo.action_noise_sigma=0.1"])
    assert "algo.action_noise_sigma=0.1" in msg and "no action noise" in msg


EVALUATE_BAD = {
    "episodes=0": ["episodes=0"],
    "episodes=abc": ["episodes", "abc"],
    "first_seed=-3": ["first_seed=-3"],
    "baselines=[nobody]": ["baselines[0]='nobody'"],
}


@pytest.mark.parametrize("override", sorted(EVALUATE_BAD))
def test_bad_evaluate_values_name_the_key_and_the_value(override: str) -> None:
    msg = _error("evaluate", ["run=somewhere", override])
    for part in EVALUATE_BAD[override]:
        assert part in msg, (override, msg)


@pytest.mark.parametrize("algo", sorted(AGENTS))
@pytest.mark.parametrize("env", sorted(p.stem for p in (REPO / "configs" / "env").glob("*.yaml")))
def test_every_shipped_config_passes(algo: str, env: str) -> None:
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = compose("config", overrides=[f"algo={algo}", f"env={env}"])
    check_train_config(OmegaConf.to_container(cfg, resolve=True))


def test_dqn_and_ddqn_share_their_hyperparameters() -> None:
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        dqn = compose("config", overrides=["algo=dqn"]).algo
        ddqn = compose("config", overrides=["algo=ddqn"]).algo
    assert (dqn.name, ddqn.name) == ("dqn", "ddqn")
    assert dqn.kwargs == ddqn.kwargs and dqn.policy == ddqn.policy
    assert not (Path(CONFIGS) / "algo" / "ddqn.yaml").read_text().count("learning_rate")


def _cli(script: str, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("override", "named"),
    [("total_timesteps=-5", "total_timesteps=-5"), ("seed=abc", "seed")],
)
def test_train_cli_fails_at_start(override: str, named: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    p = _cli("train.py", ["env=single", override, f"hydra.run.dir={run}"])
    assert p.returncode != 0
    assert named in p.stderr, p.stderr
    # nothing was trained, checkpointed, evaluated or exported
    for left in ("tb", "checkpoints", "model", "policy", "summary.json", "eval.md"):
        assert not (run / left).exists(), left


def test_evaluate_cli_fails_at_start(tmp_path: Path) -> None:
    p = _cli("evaluate.py", [f"run={tmp_path}", "episodes=0"])
    assert p.returncode != 0 and "episodes=0" in p.stderr, p.stderr
    assert not (tmp_path / "evaluate" / "eval.md").exists()


def test_train_checks_its_config_before_anything_heavy(tmp_path: Path) -> None:
    from edgesplit.agents.training import train

    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=["env=single"]), resolve=True)
    cfg["eval"]["episodes"] = 0
    with pytest.raises(ConfigError, match=r"eval\.episodes=0"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


TUNED = sorted((REPO / "configs" / "tuned").glob("*.yaml"))


@pytest.mark.parametrize("path", TUNED, ids=[p.stem for p in TUNED])
def test_each_tuned_file_names_an_algorithm_and_a_scenario_and_applies(path: Path) -> None:
    """``configs/tuned/<algo>_<env>.yaml`` is optional in the defaults list, so a misspelt
    name would be ignored without a word: each must name a shipped pair and change the
    composed config; the command line still wins over it."""
    pairs = {
        f"{a.stem}_{e.stem}": (a.stem, e.stem)
        for a in (REPO / "configs" / "algo").glob("*.yaml")
        for e in (REPO / "configs" / "env").glob("*.yaml")
    }
    assert path.stem in pairs, f"{path.name}: not <algo>_<env> of shipped configs"
    algo, env = pairs[path.stem]
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        tuned = compose("config", overrides=[f"algo={algo}", f"env={env}"])
        plain = compose("config", overrides=[f"algo={algo}", f"env={env}", "~tuned"])
        mine = compose("config", overrides=[f"algo={algo}", f"env={env}", "algo.kwargs.gamma=0.25"])
    assert OmegaConf.to_container(tuned) != OmegaConf.to_container(plain)
    assert mine.algo.kwargs.gamma == 0.25


def test_bursty_and_battery_ppo_look_ahead() -> None:
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        default = compose("config", overrides=["algo=ppo", "env=default"])
        bursty = compose("config", overrides=["algo=ppo", "env=bursty"])
        battery = compose("config", overrides=["algo=ppo", "env=battery"])
    assert default.algo.kwargs.gamma == 0.5 and default.algo.warm_start.teacher == "greedy"
    assert bursty.algo.kwargs.gamma == 0.9 and bursty.algo.warm_start.teacher == "clairvoyant"
    assert battery.algo.kwargs.gamma == 0.99 and battery.algo.normalize_reward
