"""A stable-baselines3 ``VecEnv`` over the native batched VectorEnv: one core steps every
copy at once, instead of SB3's ``DummyVecEnv`` looping over ``n_envs`` Python environments.

SB3's conventions, kept: an episode's end (a truncation at the horizon) resets the copy at
once and hands the last observation in ``infos[i]["terminal_observation"]`` with
``infos[i]["TimeLimit.truncated"] = True`` (so PPO bootstraps the value there), and
``infos[i]["episode"]`` holds the episode's return and length (what ``Monitor`` adds, for
``rollout/ep_rew_mean``). ``env_method("action_masks")`` gives each copy's mask, as
sb3-contrib's MaskablePPO asks for them.

>>> venv = NativeVecEnv({"scenario": "single", "max_cycles": 3}, n_envs=2, seed=0)
>>> obs = venv.reset()
>>> obs.shape == (2, venv.observation_space.shape[0])
True
>>> for _ in range(3):
...     obs, rew, done, infos = venv.step(np.zeros((2, *venv.action_space.shape), np.int64))
>>> done.tolist(), infos[0]["episode"]["l"], infos[0]["TimeLimit.truncated"]
([True, True], 3, True)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv

from edgesplit.envs.vector_env import SplitOffloadVectorEnv

__all__ = ["NativeVecEnv"]


class NativeVecEnv(VecEnv):
    """``n_envs`` copies of the joint-decision environment ``env_kwargs`` as one SB3
    ``VecEnv``; copy ``i`` is seeded with ``seed + i`` on the first reset (as SB3's
    ``make_vec_env`` seeds its copies)."""

    def __init__(self, env_kwargs: dict[str, Any], n_envs: int, seed: int | None = None) -> None:
        kw = {k: v for k, v in env_kwargs.items() if k != "decision_mode"}
        if env_kwargs.get("decision_mode", "joint") != "joint":
            raise ValueError(
                f"decision_mode: {env_kwargs['decision_mode']!r}: the native VecEnv steps joint "
                "decisions only"
            )
        self.venv = SplitOffloadVectorEnv(
            num_envs=int(n_envs), autoreset_mode=AutoresetMode.SAME_STEP, **kw
        )
        super().__init__(
            int(n_envs), self.venv.single_observation_space, self.venv.single_action_space
        )
        self._seed = seed
        self._actions: np.ndarray | None = None
        self._ret = np.zeros(self.num_envs)
        self._len = np.zeros(self.num_envs, dtype=np.int64)
        self._t0 = time.time()

    # -- VecEnv ----------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        obs, _ = self.venv.reset(seed=self._seed)
        self._seed = None  # later resets draw from the copies' generators
        self._ret[:] = 0.0
        self._len[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        obs, rew, term, trunc, info = self.venv.step(self._actions)
        done = term | trunc
        self._ret += rew
        self._len += 1
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done.any():
            final = info["final_obs"]
            now = round(time.time() - self._t0, 6)
            for i in np.flatnonzero(done):
                infos[i] = {
                    "terminal_observation": final[i],
                    "TimeLimit.truncated": bool(trunc[i] and not term[i]),
                    "episode": {"r": float(self._ret[i]), "l": int(self._len[i]), "t": now},
                }
            self._ret[done] = 0.0
            self._len[done] = 0
        return obs, rew.astype(np.float32), done, infos

    def close(self) -> None:
        self.venv.close()

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "np_random":  # each copy's generator (checkpoints save them)
            gens = self.venv.generators() or [None] * self.num_envs
            return [gens[i] for i in self._indices(indices)]
        value = getattr(self.venv, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise AttributeError(f"set_attr({attr_name!r}): the copies share one core")

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        if method_name == "action_masks":
            masks = self.venv.action_masks()
            return [masks[i] for i in self._indices(indices)]
        raise AttributeError(f"env_method({method_name!r}): not available on the native VecEnv")

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs
