"""The native vectorised Gymnasium face of the EdgeSplit simulator (joint decisions)."""

from __future__ import annotations

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

from .common import MaskTable, info_from_packed, joint_spaces, resolve_options, team_reward
from .render import render_slot

__all__ = ["SplitOffloadVectorEnv"]


class SplitOffloadVectorEnv(VectorEnv):
    """Native vectorised EdgeSplit (joint decisions): one batched core for all copies.

    Same dynamics, spaces and infos as ``num_envs`` copies of :class:`SplitOffloadEnv` with
    ``decision_mode="joint"``, stepped in one batched call of the core. Autoreset follows
    ``AutoresetMode.NEXT_STEP``: the step after a truncation resets that copy (its action is
    ignored, its reward is 0). ``reset(seed=s)`` seeds copy ``i`` with ``s + i``, exactly as
    :class:`gymnasium.vector.SyncVectorEnv` does, so copy ``i`` matches a single env reset with
    ``seed=s + i`` step for step. Infos are arrays ``[num_envs, N]``. Arguments as
    :class:`SplitOffloadEnv` (``backend`` included), plus ``num_envs``.

    >>> import gymnasium as gym
    >>> import edgesplit.envs
    >>> envs = gym.make_vec("edgesplit/SplitOffload-v1", num_envs=4, scenario="single")
    >>> obs, info = envs.reset(seed=0)
    >>> obs.shape[0], envs.metadata["autoreset_mode"].name
    (4, 'NEXT_STEP')
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str | Path | Mapping[str, Any] | Scenario = "default",
        decision_mode: str = "joint",
        action_type: str | None = None,
        max_cycles: int | None = None,
        render_mode: str | None = None,
        backend: str = "auto",
        information: str | Mapping[str, Any] | None = None,
    ) -> None:
        if decision_mode != "joint":
            raise ValueError(
                f"decision_mode: {decision_mode!r}: the native VectorEnv supports 'joint' only; "
                "use gymnasium.make_vec(..., vectorization_mode='sync') for sequential"
            )
        sc, at = resolve_options(scenario, decision_mode, action_type, max_cycles, information)
        self.scenario = sc
        self.action_type = at
        self.render_mode = render_mode
        self.num_envs = int(num_envs)
        self.core = Core(sc, self.num_envs, backend=backend)
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
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._last = None
        self._mask_table = MaskTable(ta, "multidiscrete") if at != "continuous" else None

    def _keys(self, mask: np.ndarray) -> np.ndarray:
        keys = np.zeros(self.num_envs, dtype=np.uint64)
        for i in np.flatnonzero(mask):
            keys[i] = self._rngs[i].integers(0, 2**63, dtype=np.int64)
        return keys

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        e = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * e
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(e)]
        else:
            seeds = list(seed)
            if len(seeds) != e:
                raise ValueError(f"seed: expected {e} seeds, got {len(seeds)}")
        if seeds[0] is not None or not self._rngs:
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        mask = np.ones(e, dtype=bool)
        self.core.reset(self._keys(mask), mask)
        self._autoreset[:] = False
        self._last = None
        obs = self.core.observe().reshape(e, -1)  # a fresh array
        return obs, {"action_mask": self._masks()}

    def _masks(self) -> np.ndarray:
        if self._mask_table is None:
            return np.ones((self.num_envs, 1), dtype=bool)
        return self._mask_table.take(self.core.pending_rows()).reshape(self.num_envs, -1)

    def action_masks(self) -> np.ndarray:
        """``[num_envs, ...]`` masks, as :meth:`SplitOffloadEnv.action_masks`."""
        return self._masks()

    def step(self, actions: Any):
        e, core = self.num_envs, self.core
        a = np.asarray(actions)
        try:
            a = a.reshape(e, self._n, -1)
        except ValueError as err:
            raise ActionError(
                f"actions: shape {np.shape(actions)} does not fit {self.action_space}"
            ) from err
        ar = self._autoreset
        if ar.any():  # ignored actions of copies about to reset: make them valid
            a = a.copy()
            a[ar] = 0
        packed = core.step_action_packed(a, self.action_type)
        rewards = team_reward(packed).copy()
        truncated = core.truncated.copy()
        if ar.any():
            core.reset(self._keys(ar), ar)
            rewards[ar] = 0.0
            truncated[ar] = False
        self._autoreset = truncated.copy()
        self._last = packed
        obs = core.observe().reshape(e, -1)  # a fresh array
        info = info_from_packed(packed)
        if ar.any():
            for k, v in info.items():
                info[k] = v.copy() if isinstance(v, np.ndarray) else v
        info["action_mask"] = self._masks()
        info["autoreset"] = ar.copy()
        return obs, rewards, np.zeros(e, dtype=bool), truncated, info

    def render(self) -> tuple[str, ...] | None:
        if self.render_mode != "ansi":
            return None
        last = None if self._last is None else unpack_result(self._last)
        return tuple(render_slot(self.core, last, i) for i in range(self.num_envs))
