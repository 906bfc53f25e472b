"""The native vectorised Gymnasium face of the EdgeSplit simulator (joint decisions)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv

from edgesplit.sim.core import Core
from edgesplit.sim.encoding import ActionError
from edgesplit.sim.scenario import Scenario
from edgesplit.sim.schema import unpack_result

from .common import (
    INFO_KEYS,
    env_arguments,
    info_from_packed,
    joint_spaces,
    resolve_options,
    team_reward,
)
from .render import RENDER_MODES, check_render_mode, render_rgb, render_slot

__all__ = ["SplitOffloadVectorEnv", "autoreset_mode_of"]


def autoreset_mode_of(value: AutoresetMode | str) -> AutoresetMode:
    """An :class:`~gymnasium.vector.AutoresetMode` from itself, its value (``"SameStep"``)
    or its name (``"SAME_STEP"``, any case); a clear error naming the argument otherwise.

    >>> autoreset_mode_of("same_step").name
    'SAME_STEP'
    """
    if isinstance(value, AutoresetMode):
        return value
    if isinstance(value, str):
        for mode in AutoresetMode:
            if value in (mode.value, mode.name) or value.upper() == mode.name:
                return mode
    raise ValueError(f"autoreset_mode: {value!r} is not one of {[m.name for m in AutoresetMode]}")


class SplitOffloadVectorEnv(VectorEnv):
    """Native vectorised EdgeSplit (joint decisions): one batched core for all copies.

    Same dynamics, spaces and infos as ``num_envs`` copies of :class:`SplitOffloadEnv` with
    ``decision_mode="joint"``, stepped in one batched call of the core, and the same results
    as :class:`gymnasium.vector.SyncVectorEnv` over them in each autoreset mode:

    * ``AutoresetMode.NEXT_STEP`` (default): the step after an episode's end resets that
      copy (its action is ignored, its reward is 0, its flags False);
    * ``AutoresetMode.SAME_STEP``: the step that ends an episode resets the copy at once and
      returns the new episode's first observation; the last observation and infos are in
      ``info["final_obs"]`` and ``info["final_info"]`` (masks ``_final_obs``, ``_final_info``);
    * ``AutoresetMode.DISABLED``: nothing resets by itself; call
      ``reset(options={"reset_mask": done})`` before stepping a copy whose episode ended.

    The mode is an argument: ``gym.make_vec(ID, n, autoreset_mode=AutoresetMode.SAME_STEP)``
    (Gymnasium passes a custom VectorEnv its arguments as keywords and refuses
    ``vector_kwargs``, which are for its own Sync and Async VectorEnvs), and is in
    ``metadata["autoreset_mode"]`` and the ``autoreset_mode`` attribute.

    Infos follow Gymnasium's vector convention: each key's array has a boolean ``_key``
    beside it telling which copies it holds. A copy that reset on this step (NEXT_STEP) or
    whose episode ended and reset (SAME_STEP) holds no step infos (``_latency_s`` False,
    values zeroed): they would describe a step that did not happen, or one of the ended
    episode, which is in ``final_info``. Infos are arrays ``[num_envs, N]``.

    ``reset(seed=s)`` seeds copy ``i`` with ``s + i``, exactly as
    :class:`gymnasium.vector.SyncVectorEnv` does, so copy ``i`` matches a single env reset
    with ``seed=s + i`` step for step. Arguments as :class:`SplitOffloadEnv` (``backend``
    included, a config mapping in place of ``scenario`` too), plus ``num_envs`` and
    ``autoreset_mode``.

    >>> import gymnasium as gym
    >>> import edgesplit.envs
    >>> envs = gym.make_vec("edgesplit/SplitOffload-v1", num_envs=4, scenario="single")
    >>> obs, info = envs.reset(seed=0)
    >>> obs.shape[0], envs.metadata["autoreset_mode"].name
    (4, 'NEXT_STEP')
    >>> envs = gym.make_vec(
    ...     "edgesplit/SplitOffload-v1", num_envs=2, scenario="single", autoreset_mode="SAME_STEP"
    ... )
    >>> envs.autoreset_mode.name
    'SAME_STEP'
    """

    metadata = {"render_modes": list(RENDER_MODES), "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str | Path | Mapping[str, Any] | Scenario = "default",
        decision_mode: str = "joint",
        action_type: str | None = None,
        max_cycles: int | None = None,
        render_mode: str | None = None,
        backend: str = "auto",
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        information: str | Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(num_envs, Mapping):  # RLlib-style: the config mapping alone
            scenario, num_envs = num_envs, 1
        kw = env_arguments(
            scenario,
            {
                "num_envs": num_envs,
                "decision_mode": decision_mode,
                "action_type": action_type,
                "max_cycles": max_cycles,
                "render_mode": render_mode,
                "backend": backend,
                "autoreset_mode": autoreset_mode,
                "information": information,
            },
            _DEFAULTS,
        )
        if kw["decision_mode"] != "joint":
            raise ValueError(
                f"decision_mode: {kw['decision_mode']!r}: the native VectorEnv supports 'joint' "
                "only; use gymnasium.make_vec(..., vectorization_mode='sync') for sequential"
            )
        if isinstance(kw["num_envs"], bool) or not isinstance(kw["num_envs"], (int, np.integer)):
            raise ValueError(f"num_envs: expected a positive integer, got {kw['num_envs']!r}")
        if kw["num_envs"] < 1:
            raise ValueError(f"num_envs: expected a positive integer, got {kw['num_envs']!r}")
        sc, at = resolve_options(
            kw["scenario"], "joint", kw["action_type"], kw["max_cycles"], kw["information"]
        )
        self.scenario = sc
        self.action_type = at
        self.render_mode = check_render_mode(kw["render_mode"])
        self.autoreset_mode = autoreset_mode_of(kw["autoreset_mode"])
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.num_envs = int(kw["num_envs"])
        self.core = Core(sc, self.num_envs, backend=kw["backend"])
        ta = self.core.tables
        n, d = ta.n_devices, ta.obs_dim
        self._n = n
        self.single_action_space, self.single_observation_space = joint_spaces(ta, at)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )
        self._obs_buf = np.zeros((self.num_envs, n, d), dtype=np.float32)
        self._rngs: list[np.random.Generator] = []
        # copies whose episode ended on the last step (to reset now in NEXT_STEP mode; to be
        # reset by the user in DISABLED mode)
        self._ended = np.zeros(self.num_envs, dtype=bool)
        self._last = None
        self._masked = at != "continuous"  # multidiscrete: the core's masks

    def _keys(self, mask: np.ndarray) -> np.ndarray:
        keys = np.zeros(self.num_envs, dtype=np.uint64)
        for i in np.flatnonzero(mask):
            keys[i] = self._rngs[i].integers(0, 2**63, dtype=np.int64)
        return keys

    def _reset_mask(self, options: dict[str, Any] | None) -> np.ndarray:
        """``options["reset_mask"]`` checked as Gymnasium's vector envs check it; all True
        without it."""
        e = self.num_envs
        if options is None or "reset_mask" not in options:
            return np.ones(e, dtype=bool)
        m = options["reset_mask"]
        if not isinstance(m, np.ndarray):
            raise TypeError(f"options['reset_mask']: expected a numpy array, got {type(m)}")
        if m.shape != (e,) or m.dtype != np.bool_:
            raise ValueError(
                f"options['reset_mask']: expected a bool array of shape ({e},), "
                f"got {m.dtype} {m.shape}"
            )
        if not m.any():
            raise ValueError(f"options['reset_mask']: no copy to reset in {m}")
        return m.copy()

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every copy, or those of ``options["reset_mask"]`` (a bool array
        ``[num_envs]``, as Gymnasium's vector envs take it; the others go on)."""
        e = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * e
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(e)]
        else:
            seeds = list(seed)
            if len(seeds) != e:
                raise ValueError(f"seed: expected {e} seeds, got {len(seeds)}")
        mask = self._reset_mask(options)
        if not self._rngs:
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        else:
            for i in np.flatnonzero(mask):
                if seeds[i] is not None:
                    self._rngs[i] = seeding.np_random(seeds[i])[0]
        self.core.reset(self._keys(mask), mask)
        self._ended[mask] = False
        self._last = None
        obs = self.core.observe().reshape(e, -1)  # a fresh array
        info = {"action_mask": self._masks(), "_action_mask": mask}
        return obs, info

    def generators(self) -> list[np.random.Generator]:
        """Each copy's generator (it draws the copy's episode keys), live: a checkpoint
        saves and restores their states. Empty before the first reset."""
        return list(self._rngs)

    def _masks(self) -> np.ndarray:
        if not self._masked:
            return np.ones((self.num_envs, 1), dtype=bool)
        return self.core.masks().reshape(self.num_envs, -1)  # multidiscrete, fresh

    def action_masks(self) -> np.ndarray:
        """``[num_envs, ...]`` masks, as :meth:`SplitOffloadEnv.action_masks`."""
        return self._masks()

    def step(self, actions: Any):
        e, core, mode = self.num_envs, self.core, self.autoreset_mode
        a = np.asarray(actions)
        try:
            a = a.reshape(e, self._n, -1)
        except ValueError as err:
            raise ActionError(
                f"actions: shape {np.shape(actions)} does not fit {self.action_space}"
            ) from err
        ended = self._ended
        if mode == AutoresetMode.DISABLED and ended.any():
            raise RuntimeError(
                f"step(): copies {np.flatnonzero(ended).tolist()} ended their episode; with "
                "autoreset_mode=DISABLED call reset(options={'reset_mask': ...}) first"
            )
        resetting = ended if mode == AutoresetMode.NEXT_STEP else np.zeros(e, dtype=bool)
        if resetting.any():  # ignored actions of copies about to reset: make them valid
            a = a.copy()
            a[resetting] = 0
        packed = core.step_action_packed(a, self.action_type)
        rewards = team_reward(packed).copy()
        truncated = core.truncated.copy()
        terminated = np.zeros(e, dtype=bool)
        self._last = packed
        info = info_from_packed(packed)
        # no step infos for a copy that resets on this step (Gymnasium's `_key` masks)
        holds = ~resetting
        final: dict[str, Any] | None = None
        if mode == AutoresetMode.SAME_STEP and truncated.any():
            done = truncated
            final_obs = np.full(e, None, dtype=object)
            last_obs = core.observe().reshape(e, -1)
            last_masks = self._masks()
            final_info: dict[str, Any] = {}
            for k, v in info.items():
                final_info[k] = _keep(done, v)
                final_info[f"_{k}"] = done.copy()
            final_info["action_mask"] = np.where(done[:, None], last_masks, False)
            final_info["_action_mask"] = done.copy()
            for i in np.flatnonzero(done):
                final_obs[i] = last_obs[i]
            final = {"final_obs": final_obs, "_final_obs": done.copy()}
            final.update({"final_info": final_info, "_final_info": done.copy()})
            core.reset(self._keys(done), done)
            holds = ~done
        if resetting.any():
            core.reset(self._keys(resetting), resetting)
            rewards[resetting] = 0.0
            truncated[resetting] = False
        self._ended = truncated.copy() if mode != AutoresetMode.SAME_STEP else np.zeros(e, bool)
        obs = core.observe().reshape(e, -1)  # a fresh array
        if not holds.all():
            info = {k: _keep(holds, v) for k, v in info.items()}
        for k in INFO_KEYS:
            info[f"_{k}"] = holds.copy()
        info["action_mask"] = self._masks()
        info["_action_mask"] = np.ones(e, dtype=bool)
        if mode == AutoresetMode.NEXT_STEP:
            info["autoreset"] = resetting.copy()
            info["_autoreset"] = np.ones(e, dtype=bool)
        if final is not None:
            info.update(final)
        return obs, rewards, terminated, truncated, info

    def render(self) -> tuple[str, ...] | tuple[np.ndarray, ...] | None:
        """One rendering per copy (as :class:`gymnasium.vector.SyncVectorEnv` returns them):
        text for ``"ansi"``, a ``uint8 [H, W, 3]`` picture for ``"rgb_array"``."""
        if self.render_mode not in RENDER_MODES:
            return None
        last = None if self._last is None else unpack_result(self._last)
        draw = render_slot if self.render_mode == "ansi" else render_rgb
        return tuple(draw(self.core, last, i) for i in range(self.num_envs))


def _keep(rows: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``v [E, ...]`` with the copies outside ``rows [E]`` zeroed, its dtype kept."""
    return np.where(rows.reshape(-1, *([1] * (v.ndim - 1))), v, np.zeros((), v.dtype))


_DEFAULTS = {
    k: p.default
    for k, p in inspect.signature(SplitOffloadVectorEnv.__init__).parameters.items()
    if k != "self"
}
