"""PettingZoo face: one agent per end device, over the same batched core."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from edgesplit.sim.core import Core
from edgesplit.sim.encoding import ActionError
from edgesplit.sim.scenario import Scenario
from edgesplit.sim.schema import StepResult

from .common import MaskTable, device_action_space, env_arguments, resolve_options
from .render import RENDER_MODES, check_render_mode, render_rgb, render_slot

__all__ = ["SplitOffloadParallelEnv"]


class SplitOffloadParallelEnv(ParallelEnv):
    """Multi-agent EdgeSplit: each end device is an agent choosing its own task's split,
    target and weights; the slot resolves when all agents have acted.

    ## Agents

    One per device of the scenario, in its order: ``agent_0 .. agent_{N-1}``. The ids
    follow PettingZoo's ``name_index`` convention so that libraries grouping agents by name
    (TorchRL's ``PettingZooWrapper``, BenchMARL) put them in one group, ``agent``, for one
    shared policy (a group named ``device`` would clash with the ``device`` attribute of
    TorchRL's ``Composite`` specs). Which device an agent is stays in :attr:`agent_devices`
    (the scenario's device names, e.g. ``pi_0``, the names a scheduler's requests use) and
    :attr:`agent_device_classes`, and in every step's infos (``device``, ``device_class``;
    the reset infos hold the action mask alone, as TorchRL builds its info specs from them
    and a string has no tensor form). All agents act every step; a device without a pending
    task has its action ignored.

    ## Action Space (per agent)

    ``action_type="discrete"`` (default): ``Discrete(S * J * L * L)``;
    ``"multidiscrete"``: ``MultiDiscrete([S, J, L, L])``; ``"continuous"``:
    ``Box(-1, 1, (J + 3,))`` (for MADDPG-style actors). Masks of feasible choices are in
    ``infos[agent]["action_mask"]`` (discrete views): an int8 array, flat for the
    multidiscrete view (the four per-dimension masks concatenated, as TorchRL reads it; the
    space's ``sample(mask)`` takes it, see
    :class:`~edgesplit.envs.common.FlatMaskMultiDiscrete`).

    ## Observation Space (per agent)

    ``Box(0, 1, (D,), float32)``: the device's block of :mod:`edgesplit.sim.encoding`.
    ``state()`` is the concatenation of every device's block (``N * D``), for centralised
    critics.

    ## Rewards

    Agent ``i`` gets ``team_weight * team + (1 - team_weight) * own_i`` where ``own_i`` is
    minus its task's cost (and drops) and ``team`` the mean of ``own`` over all agents
    (``reward.team_weight`` of the scenario; 1 = fully cooperative).

    ## Episode End

    Never terminated; every agent is truncated after ``horizon`` slots (``max_cycles``).

    ## Arguments

    ``scenario``, ``action_type``, ``max_cycles``, ``render_mode`` (``"ansi"`` or
    ``"rgb_array"``), ``backend``, as for :class:`~edgesplit.envs.gym_env.SplitOffloadEnv` (a
    config mapping of them in place of ``scenario`` too).

    >>> from edgesplit.envs import split_offload_v1
    >>> env = split_offload_v1.parallel_env(scenario="single", max_cycles=5)
    >>> obs, infos = env.reset(seed=0)
    >>> env.agents, env.state().shape == env.state_space.shape
    (['agent_0'], True)
    >>> split_offload_v1.parallel_env(scenario="default").agent_devices["agent_2"]
    'nano_0'
    >>> actions = {a: env.action_space(a).sample() for a in env.agents}
    >>> obs, rewards, terminations, truncations, infos = env.step(actions)

    ## Version History

    * v1: agents observe what a real scheduler knows (the measured link rates and the
      reported server backlogs; the scenario's ``information``).
    * v0: initial release; agents observe the true rates and backlogs
      (:mod:`~edgesplit.envs.split_offload_v0`, ``information="privileged"``).
    """

    metadata = {
        "render_modes": list(RENDER_MODES),
        "name": "split_offload_v1",
        "is_parallelizable": True,
    }

    def __init__(
        self,
        scenario: str | Path | Mapping[str, Any] | Scenario = "default",
        action_type: str | None = "discrete",
        max_cycles: int | None = None,
        render_mode: str | None = None,
        backend: str = "auto",
        information: str | Mapping[str, Any] | None = None,
    ) -> None:
        kw = env_arguments(
            scenario,
            {
                "action_type": action_type,
                "max_cycles": max_cycles,
                "render_mode": render_mode,
                "backend": backend,
                "information": information,
            },
            _DEFAULTS,
        )
        sc, at = resolve_options(
            kw["scenario"], "sequential", kw["action_type"], kw["max_cycles"], kw["information"]
        )
        self.scenario = sc
        self.action_type = at
        self.render_mode = check_render_mode(kw["render_mode"])
        self.core = Core(sc, 1, backend=kw["backend"])
        ta = self.core.tables
        self.possible_agents = [f"agent_{i}" for i in range(ta.n_devices)]
        #: agent id -> the scenario's device name (``agent_2`` -> ``nano_0``)
        self.agent_devices = dict(zip(self.possible_agents, ta.device_names, strict=True))
        #: agent id -> the device's class (``rpi4``, ``jetson_nano``, ...)
        self.agent_device_classes = {
            a: d.device_class for a, d in zip(self.possible_agents, sc.devices, strict=True)
        }
        self.agents: list[str] = []
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        self._act_space = device_action_space(self.core.tables, at)
        self._mask_table = MaskTable(self.core.tables, at) if at != "continuous" else None
        self._obs_space = spaces.Box(0.0, 1.0, (ta.obs_dim,), np.float32)
        self.observation_spaces = dict.fromkeys(self.possible_agents, self._obs_space)
        self.action_spaces = dict.fromkeys(self.possible_agents, self._act_space)
        self.state_space = spaces.Box(0.0, 1.0, (ta.n_devices * ta.obs_dim,), np.float32)
        self._obs = np.zeros((1, ta.n_devices, ta.obs_dim), dtype=np.float32)
        self._rng, _ = seeding.np_random(None)
        self._last: StepResult | None = None
        tw = sc.reward.team_weight
        self._tw = tw

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Space:
        return self._act_space

    def state(self) -> np.ndarray:
        return self._obs.reshape(-1).copy()

    def _observations(self) -> dict[str, np.ndarray]:
        self.core.observe(out=self._obs)
        return {
            a: self._obs[0, i].copy()
            for i, a in enumerate(self.possible_agents)
            if a in self.agents
        }

    def _agent_masks(self) -> np.ndarray | None:
        """``[N, K]`` int8 per-agent masks: one flag per action for ``Discrete``, the
        per-dimension masks (split, target, bw, cpu) concatenated for ``MultiDiscrete``;
        ``None`` for the continuous view."""
        if self.action_type == "continuous":
            return None
        return self._mask_table.take(self.core.pending_rows()[0], self.core.affordable(0)).astype(
            np.int8
        )

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        if seed is not None:
            self._rng, _ = seeding.np_random(seed)
        key = self._rng.integers(0, 2**63, dtype=np.int64)
        self.core.reset(np.array([key], dtype=np.uint64))
        self.agents = list(self.possible_agents)
        self._last = None
        masks = self._agent_masks()
        infos = {
            a: ({"action_mask": masks[i]} if masks is not None else {})
            for i, a in enumerate(self.agents)
        }
        return self._observations(), infos

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("step() called after the episode ended: call reset()")
        core = self.core
        missing = [a for a in self.agents if a not in actions]
        unknown = [a for a in actions if a not in self._index]
        if missing or unknown:
            raise ActionError(f"actions: missing agents {missing}, unknown agents {unknown}")
        per = [np.asarray(actions[a]) for a in self.possible_agents]
        try:
            arr = np.stack(per)[None]
        except ValueError as e:
            raise ActionError(
                f"actions: agents' actions differ in shape: {[p.shape for p in per]}"
            ) from e
        res = core.step_action(arr, self.action_type)
        self._last = res
        own = -res.cost[0]
        team = float(res.team_reward[0])
        r = self._tw * team + (1.0 - self._tw) * own
        trunc = bool(core.truncated[0])
        obs = self._observations()
        masks = self._agent_masks()
        rewards, terms, truncs, infos = {}, {}, {}, {}
        for i, a in enumerate(self.possible_agents):
            rewards[a] = float(r[i])
            terms[a] = False
            truncs[a] = trunc
            info = {
                "has_task": bool(res.has_task[0, i]),
                "latency_s": float(res.latency_s[0, i]),
                "energy_j": float(res.energy_j[0, i]),
                "deadline_miss": bool(res.deadline_miss[0, i]),
                "dropped": int(res.dropped[0, i]),
                "infeasible": bool(res.infeasible[0, i]),
                "split": int(res.split[0, i]),
                "target": int(res.target[0, i]),
                "device": self.agent_devices[a],
                "device_class": self.agent_device_classes[a],
            }
            if masks is not None:
                info["action_mask"] = masks[i]
            infos[a] = info
        if trunc:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "ansi":
            return render_slot(self.core, self._last, 0)
        if self.render_mode == "rgb_array":
            return render_rgb(self.core, self._last, 0)
        return None

    def close(self) -> None:
        pass


_DEFAULTS = {
    k: p.default
    for k, p in inspect.signature(SplitOffloadParallelEnv.__init__).parameters.items()
    if k != "self"
}
