"""Typed configs of ``train.py`` and ``evaluate.py``: dataclass schemas registered with
Hydra's ConfigStore, and range checks run before anything heavy starts.

Hydra merges every YAML file and every command-line override into these schemas, so a value
of the wrong type fails at composition with the key named (``total_timesteps=abc``: "Value
'abc' of type 'str' could not be converted to Integer ... full_key: total_timesteps").
:func:`check_train_config` and :func:`check_evaluate_config` then check ranges and names, and
:func:`check_algo_kwargs` checks ``algo.kwargs`` against the algorithm's own constructor (its
parameter names and type annotations), so every algorithm is checked without a schema of its
own. Every error is a :class:`ConfigError` that names the key and the value.

This module imports neither torch nor the RL libraries (only :func:`check_algo_kwargs`
imports the algorithm's class), so the checks run in a second.

>>> check_train_config({"seed": 0, "threads": 1, "total_timesteps": -5, "n_envs": 1,
...     "checkpoint_every": 10, "eval": {"episodes": 1, "first_seed": 0, "baselines": []},
...     "algo": {"name": "ppo"}, "env": {"max_cycles": None}}, algo_kwargs=False)
Traceback (most recent call last):
...
edgesplit.agents.config.ConfigError: total_timesteps=-5: must be an integer >= 1
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = [
    "AlgoConfig",
    "ConfigError",
    "EnvConfig",
    "EvalConfig",
    "EvaluateConfig",
    "LoggerConfig",
    "TrainConfig",
    "check_algo_kwargs",
    "check_evaluate_config",
    "check_train_config",
    "register_configs",
]

# OmegaConf reads the dataclass fields' annotations: Optional[...] rather than `X | None`,
# which OmegaConf 2.3 does not read on Python 3.10.
# ruff: noqa: UP045


WANDB_MODES = ("offline", "online", "disabled")


class ConfigError(ValueError):
    """A config value out of range or of the wrong kind; the message names the key and the
    value (``key=value: what is wrong``)."""


@dataclass
class AlgoConfig:
    """``configs/algo/<name>.yaml``: which agent, and its constructor's keyword arguments."""

    name: str = "???"  # a key of edgesplit.agents.registry.AGENTS
    policy: str = "MlpPolicy"  # SB3 policy name (MADDPG builds its own networks: "none")
    action_noise_sigma: Optional[float] = None  # Gaussian exploration noise on [-1, 1] actions
    kwargs: dict[str, Any] = field(default_factory=dict)  # the algorithm's constructor
    # parallel copies for this algorithm (None: the run's n_envs)
    n_envs: Optional[int] = None
    # behaviour cloning before RL (edgesplit.agents.warm_start.behaviour_clone's keywords:
    # teacher, slots, epochs, batch_size, learning_rate); empty: none
    warm_start: dict[str, Any] = field(default_factory=dict)
    # SB3 agents: scale the training rewards by the running spread of the discounted return
    # (SB3's VecNormalize, rewards only), so a long discount's large returns do not swamp
    # the policy's share of the clipped gradient; evaluation sees the true costs
    normalize_reward: bool = False


@dataclass
class EnvConfig:
    """``configs/env/<scenario>.yaml``."""

    scenario: str = "default"  # a shipped scenario name or a path to a YAML/JSON scenario
    max_cycles: Optional[int] = None  # override the scenario's horizon [slots]


@dataclass
class LoggerConfig:
    """``configs/logger/*.yaml``: TensorBoard always; W&B mirrors it when ``wandb``."""

    wandb: bool = False
    project: str = "edgesplit"
    mode: str = "offline"  # one of WANDB_MODES


#: the rules every learned policy is compared with: the fair ones decide on what the policy
#: knows; oracle_privileged knows the slot's true rates, clairvoyant the episode's future
DEFAULT_BASELINES = (
    "local",
    "offload",
    "random",
    "neurosurgeon",
    "greedy",
    "oracle",
    "oracle_privileged",
    "clairvoyant",
)


@dataclass
class EvalConfig:
    """The comparison with the baselines at the end of training."""

    episodes: int = 10  # held-out episodes
    first_seed: int = 100000  # held-out seeds: first_seed .. first_seed + episodes - 1
    baselines: list[str] = field(default_factory=lambda: list(DEFAULT_BASELINES))


@dataclass
class TrainConfig:
    """``configs/config.yaml``: one training run (see ``train.py``)."""

    algo: AlgoConfig = field(default_factory=AlgoConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 0
    threads: int = 1  # torch threads
    total_timesteps: int = 60000  # [env steps]
    n_envs: int = 4  # parallel copies, where the algorithm config sets no algo.n_envs
    checkpoint_every: int = 20000  # [env steps]
    resume: bool = True  # continue from the run directory's checkpoint if there is one
    progress_bar: bool = True  # a progress bar on stderr while training (tqdm)
    eval: EvalConfig = field(default_factory=EvalConfig)


@dataclass
class EvaluateConfig:
    """``configs/evaluate.yaml``: ``python evaluate.py run=<dir>``."""

    run: str = "???"  # a run directory written by train.py
    episodes: int = 20  # held-out episodes
    first_seed: int = 200000  # held-out seeds: first_seed .. first_seed + episodes - 1
    baselines: list[str] = field(default_factory=lambda: list(DEFAULT_BASELINES))


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (``train_schema``, ``evaluate_schema``);
    ``configs/config.yaml`` and ``configs/evaluate.yaml`` name them first in their defaults."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)


def _get(cfg: Mapping[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"{key}: missing")
        node = node[part]
    return node


def _int_at_least(cfg: Mapping[str, Any], key: str, low: int) -> None:
    v = _get(cfg, key)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ConfigError(f"{key}={v!r}: must be an integer >= {low}")


def _baselines(cfg: Mapping[str, Any], key: str) -> None:
    from .baselines import BASELINES

    names = _get(cfg, key)
    if isinstance(names, str) or not isinstance(names, collections.abc.Sequence):
        raise ConfigError(f"{key}={names!r}: must be a list of baseline names")
    for i, nm in enumerate(names):
        if nm not in BASELINES:
            raise ConfigError(f"{key}[{i}]={nm!r}: not one of {sorted(BASELINES)}")


#: behaviour_clone's keywords a config may set besides ``teacher``: integers >= 1, and the
#: learning rate (a number > 0)
WARM_START_INTS = ("slots", "epochs", "batch_size")


def _warm_start(cfg: Mapping[str, Any]) -> None:
    from .baselines import BASELINES
    from .registry import AGENTS

    ws = _get(cfg, "algo").get("warm_start") or {}
    for key, v in ws.items():
        if key == "teacher":
            if v not in BASELINES:
                raise ConfigError(f"algo.warm_start.teacher={v!r}: not one of {sorted(BASELINES)}")
        elif key in WARM_START_INTS:
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"algo.warm_start.{key}={v!r}: must be an integer >= 1")
        elif key == "learning_rate":
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise ConfigError(f"algo.warm_start.{key}={v!r}: must be a number > 0")
        else:
            known = ", ".join(("teacher", *WARM_START_INTS, "learning_rate"))
            raise ConfigError(f"algo.warm_start.{key}: unknown key (known: {known})")
    spec = AGENTS[_get(cfg, "algo.name")]
    # (DDPG's split actor clones too: edgesplit.agents.ddpg_policy.clone_actor_critic)
    ddpg_split = _get(cfg, "algo").get("policy") == "SharedSplitDDPGPolicy"
    if ws and not (spec.on_policy and not spec.multi_agent) and not ddpg_split:
        raise ConfigError(
            f"algo.warm_start: {spec.name} is not an SB3 actor-critic agent (a warm start "
            "fits an actor-critic policy, or DDPG's SharedSplitDDPGPolicy)"
        )


def check_train_config(cfg: Mapping[str, Any], algo_kwargs: bool = True) -> None:
    """Raise :class:`ConfigError` (key and value named) for a value out of range in a
    composed ``train.py`` config; with ``algo_kwargs``, check them with
    :func:`check_algo_kwargs` too."""
    from .registry import AGENTS

    name = _get(cfg, "algo.name")
    if name not in AGENTS:
        raise ConfigError(f"algo.name={name!r}: not one of {sorted(AGENTS)}")
    _int_at_least(cfg, "seed", 0)
    _int_at_least(cfg, "threads", 1)
    _int_at_least(cfg, "total_timesteps", 1)
    _int_at_least(cfg, "n_envs", 1)
    _int_at_least(cfg, "checkpoint_every", 1)
    _int_at_least(cfg, "eval.episodes", 1)
    _int_at_least(cfg, "eval.first_seed", 0)
    _baselines(cfg, "eval.baselines")
    mode = (cfg.get("logger") or {}).get("mode", "offline")
    if mode not in WANDB_MODES:
        raise ConfigError(f"logger.mode={mode!r}: not one of {list(WANDB_MODES)}")
    if _get(cfg, "env.max_cycles") is not None:
        _int_at_least(cfg, "env.max_cycles", 1)
    if _get(cfg, "algo").get("n_envs") is not None:
        _int_at_least(cfg, "algo.n_envs", 1)
    _warm_start(cfg)
    from .registry import SB3

    if _get(cfg, "algo").get("normalize_reward") and AGENTS[name].agent_path != SB3:
        raise ConfigError(
            f"algo.normalize_reward=True: {name} is not a stable-baselines3 agent (its "
            "rewards are not normalised)"
        )
    sigma = _get(cfg, "algo").get("action_noise_sigma")
    if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, int | float)):
        raise ConfigError(f"algo.action_noise_sigma={sigma!r}: must be a number")
    if sigma is not None and not sigma >= 0:
        raise ConfigError(f"algo.action_noise_sigma={sigma!r}: must be >= 0")
    if algo_kwargs:
        kwargs = dict(_get(cfg, "algo").get("kwargs") or {})
        check_algo_kwargs(name, kwargs)
        if sigma is not None:  # becomes the constructor's action_noise
            params = inspect.signature(AGENTS[name].algorithm_class().__init__).parameters
            if "action_noise" not in params:
                raise ConfigError(
                    f"algo.action_noise_sigma={sigma!r}: {name} takes no action noise"
                )


def check_evaluate_config(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` (key and value named) for a value out of range in a
    composed ``evaluate.py`` config."""
    _int_at_least(cfg, "episodes", 1)
    _int_at_least(cfg, "first_seed", 0)
    _baselines(cfg, "baselines")
    run = _get(cfg, "run")
    if not isinstance(run, str) or not run:
        raise ConfigError(f"run={run!r}: must be a run directory")


def _accepts(value: Any, hint: Any) -> bool:
    """Whether ``value`` (from YAML or the command line) fits the annotation ``hint``; an
    annotation it cannot judge accepts."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (bool, str):
        return isinstance(value, hint)
    if origin is collections.abc.Callable or hint is collections.abc.Callable:
        return callable(value)
    if origin in (list, tuple, collections.abc.Sequence):
        return isinstance(value, list | tuple)
    if origin in (dict, collections.abc.Mapping) or hint in (dict, Mapping):
        return isinstance(value, Mapping)
    if origin is type:
        return isinstance(value, type)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def check_algo_kwargs(algo: str, kwargs: Mapping[str, Any]) -> None:
    """Check ``algo.kwargs`` against the constructor of ``algo``'s algorithm class: every key
    must be one of its parameters and every value must fit the parameter's annotation
    (``algo.kwargs.learning_rate='abc'`` fails: the annotation is a float or a schedule).

    >>> check_algo_kwargs("ppo", {"learning_rate": "abc"})
    Traceback (most recent call last):
    ...
    edgesplit.agents.config.ConfigError: algo.kwargs.learning_rate='abc': expected float | ...
    """
    from .registry import get_agent

    cls = get_agent(algo).algorithm_class()
    fn = cls.__init__
    sig = inspect.signature(fn)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    for key, value in kwargs.items():
        full = f"algo.kwargs.{key}"
        p = sig.parameters.get(key)
        if p is None or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            if takes_any:
                continue
            raise ConfigError(f"{full}={value!r}: {cls.__name__} has no parameter {key!r}")
        hint: Any = p.annotation
        if isinstance(hint, str):  # postponed annotations: evaluate those that resolve
            try:
                hint = eval(hint, vars(inspect.getmodule(fn)))
            except Exception:  # a name only imported for type checking: cannot judge
                hint = Any
        if not _accepts(value, hint):
            shown = hint if isinstance(hint, str) else str(hint).replace("typing.", "")
            shown = shown.replace("<class '", "").replace("'>", "")
            raise ConfigError(f"{full}={value!r}: expected {shown}")
