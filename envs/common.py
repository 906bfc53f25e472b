"""What the Gymnasium and PettingZoo faces share: arguments, spaces, masks and infos.

Both faces are thin views of one :class:`~edgesplit.sim.core.Core`; this module holds the
pieces each of them needs, so that neither face is built on the other's internals.

>>> from edgesplit.sim.core import Core
>>> sc, at = resolve_options("single", "joint", None, None)
>>> core = Core(sc, 1)
>>> act, obs = joint_spaces(core.tables, at)
>>> act.nvec.tolist() == core.tables.nvec.tolist(), obs.shape == (core.tables.obs_dim,)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from edgesplit.sim.core import row_masks
from edgesplit.sim.encoding import Tables
from edgesplit.sim.scenario import Scenario, load_scenario
from edgesplit.sim.schema import ROW, Packed

__all__ = [
    "ALLOWED_ACTION_TYPES",
    "DECISION_MODES",
    "INFO_KEYS",
    "FlatMaskMultiDiscrete",
    "MaskTable",
    "device_action_space",
    "env_arguments",
    "info_from_packed",
    "joint_spaces",
    "resolve_options",
    "team_reward",
]

DECISION_MODES = ("joint", "sequential")
DEFAULT_ACTION_TYPE = {"joint": "multidiscrete", "sequential": "discrete"}
#: the action views each decision mode offers (a per-device view in sequential mode and in
#: the PettingZoo face, whose agents each decide for one device)
ALLOWED_ACTION_TYPES = {
    "joint": ("multidiscrete", "continuous"),
    "sequential": ("discrete", "multidiscrete", "continuous"),
}


def resolve_options(
    scenario: str | Path | Mapping[str, Any] | Scenario,
    decision_mode: str,
    action_type: str | None,
    max_cycles: int | None,
    information: str | Mapping[str, Any] | None = None,
) -> tuple[Scenario, str]:
    """The validated scenario (its horizon overridden by ``max_cycles``, its information
    model by ``information``: ``"privileged"`` for the true rates and backlogs, environment
    v0's model, or a mapping of :class:`~edgesplit.sim.scenario.InformationSpec` fields that
    override the scenario's) and
    action type; a clear error naming the argument otherwise."""
    sc = load_scenario(scenario)
    if information is not None:
        if information == "privileged":
            information = {"link_rate": "true", "server_backlog": "true"}
        if not isinstance(information, Mapping):
            raise ValueError(
                f"information: expected 'privileged' or a mapping of InformationSpec fields, "
                f"got {information!r}"
            )
        # the fields given override the scenario's, the others stay
        sc = sc.replace(information={**sc.to_dict()["information"], **information})
    if max_cycles is not None:
        if (
            isinstance(max_cycles, bool)
            or not isinstance(max_cycles, (int, np.integer))
            or max_cycles < 1
        ):
            raise ValueError(f"max_cycles: expected a positive integer, got {max_cycles!r}")
        sc = sc.replace(horizon=int(max_cycles))
    if decision_mode not in DECISION_MODES:
        raise ValueError(f"decision_mode: {decision_mode!r} is not one of {DECISION_MODES}")
    at = action_type or DEFAULT_ACTION_TYPE[decision_mode]
    if at not in ALLOWED_ACTION_TYPES[decision_mode]:
        raise ValueError(
            f"action_type: {at!r} is not available with decision_mode={decision_mode!r} "
            f"(choose from {ALLOWED_ACTION_TYPES[decision_mode]})"
        )
    return sc, at


def env_arguments(first: Any, given: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A face's arguments, where the first positional argument ``first`` is either the
    scenario or an env config mapping of the face's arguments (RLlib calls
    ``env_cls(env_config)``; a scenario mapping is told apart by its keys, as it always has
    ``applications`` and never ``scenario``).

    ``given`` holds the other arguments as passed and ``defaults`` every argument's default.

    >>> d = {"scenario": "default", "max_cycles": None}
    >>> env_arguments({"scenario": "single", "max_cycles": 5}, {"max_cycles": None}, d)
    {'scenario': 'single', 'max_cycles': 5}
    >>> env_arguments("single", {"max_cycles": 5}, d)
    {'scenario': 'single', 'max_cycles': 5}
    """
    if not isinstance(first, Mapping) or "applications" in first:  # a scenario
        return {"scenario": first, **given}
    keys = set(first)
    if not keys <= set(defaults):
        if keys & (set(defaults) - {"scenario"}) or "scenario" in keys:
            raise ValueError(
                f"env_config: unknown keys {sorted(keys - set(defaults))} "
                f"(an env config takes {sorted(defaults)})"
            )
        return {"scenario": first, **given}  # a scenario as a mapping
    both = sorted(k for k, v in given.items() if k in keys and v != defaults[k])
    if both:
        raise ValueError(f"env_config: {both} given both in the config mapping and as arguments")
    out = {"scenario": defaults["scenario"], **given}
    out.update(first)
    return out


class FlatMaskMultiDiscrete(spaces.MultiDiscrete):
    """A :class:`~gymnasium.spaces.MultiDiscrete` whose :meth:`sample` also takes the mask
    EdgeSplit hands out: the per-dimension masks concatenated into one flat array (the form
    of sb3-contrib's ``action_masks()`` and of TorchRL's masks), as well as Gymnasium's tuple.

    >>> sp = FlatMaskMultiDiscrete([3, 2], seed=0)
    >>> sp.sample(np.array([0, 0, 1, 1, 0], dtype=np.int8)).tolist()
    [2, 0]
    """

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        if isinstance(mask, np.ndarray) and self.nvec.ndim == 1:
            if mask.shape != (int(self.nvec.sum()),):
                raise ValueError(
                    f"mask: a flat mask needs shape ({int(self.nvec.sum())},), got {mask.shape}"
                )
            mask = tuple(np.split(mask.astype(np.int8), np.cumsum(self.nvec)[:-1]))
        return super().sample(mask=mask, probability=probability)


def device_action_space(tables: Tables, action_type: str) -> spaces.Space:
    """One device's action space in the view ``action_type`` (masks of the multidiscrete
    view are flat: see :class:`FlatMaskMultiDiscrete`)."""
    if action_type == "discrete":
        return spaces.Discrete(tables.n_discrete)
    if action_type == "multidiscrete":
        return FlatMaskMultiDiscrete(tables.nvec)
    return spaces.Box(-1.0, 1.0, shape=(tables.continuous_width,), dtype=np.float32)


def joint_spaces(tables: Tables, action_type: str) -> tuple[spaces.Space, spaces.Box]:
    """Action and observation spaces of one joint decision over every device (the
    multidiscrete view samples from the flat masks of ``info["action_mask"]``)."""
    n = tables.n_devices
    if action_type == "multidiscrete":
        act: spaces.Space = FlatMaskMultiDiscrete(np.tile(tables.nvec, n))
    else:
        act = spaces.Box(-1.0, 1.0, (n * tables.continuous_width,), np.float32)
    return act, spaces.Box(0.0, 1.0, (n * tables.obs_dim,), np.float32)


class MaskTable:
    """Per-device action masks of a discrete view for every ``(device, app or none)`` row of
    the static tables (see :attr:`Core.pending_view <edgesplit.sim.core.Core.pending_view>`),
    built once: masks for a slot are one gather. (The joint multidiscrete faces take
    :meth:`Core.masks <edgesplit.sim.core.Core.masks>`, the same gather, which the compiled
    step does itself.)"""

    def __init__(self, tables: Tables, action_type: str) -> None:
        self.table = row_masks(tables, action_type)
        self._s = tables.n_candidates
        self._discrete = action_type == "discrete"

    def take(self, rows: np.ndarray, affordable: np.ndarray | None = None) -> np.ndarray:
        """Masks ``[*rows.shape, K]`` for the static-table rows ``rows`` (True: allowed);
        ``affordable`` ``[*rows.shape, S]`` (:meth:`Core.affordable
        <edgesplit.sim.core.Core.affordable>`) also masks the splits a battery cannot pay
        for."""
        m = self.table.take(rows, axis=0)
        if affordable is not None:
            aff = affordable  # [*rows.shape, S] (a broadcast view cost a sixth of a step)
            if self._discrete:  # the split is the most significant digit
                m.reshape(*m.shape[:-1], self._s, -1)[...] &= aff[..., None]
            else:
                m[..., : self._s] &= aff
        return m


#: the per-device step infos, from the packed result (arrays ``[N]``, or ``[E, N]`` batched)
INFO_KEYS = (
    "has_task",
    "latency_s",  # 0 where has_task is False
    "energy_j",
    "deadline_miss",
    "dropped",
    "infeasible",
    "app",
    "split",
    "target",
    "bw_weight",
    "cpu_weight",
    "head_s",
    "transfer_s",
    "tail_s",
    "wait_s",
    "cost",
)
_INFO_ROWS = tuple((key, *ROW[key]) for key in INFO_KEYS)


def info_from_packed(p: Packed, e: int | None = None) -> dict[str, Any]:
    """The step info from a packed result (views of it), of environment ``e`` or all."""
    if e is None:
        return {key: p[a][r] for key, a, r in _INFO_ROWS}
    return {key: p[a][r, e] for key, a, r in _INFO_ROWS}


def team_reward(p: Packed) -> np.ndarray:
    """``[E]`` the team reward of a packed result (a view)."""
    a, r = ROW["team_reward"]
    return p[a][r, :, 0]
