"""The Gymnasium face of the EdgeSplit simulator: a centralised env (joint or sequential
decisions). The native VectorEnv is :mod:`edgesplit.envs.vector_env`."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from edgesplit.sim.core import Core
from edgesplit.sim.encoding import ActionError, decode_device
from edgesplit.sim.scenario import Scenario
from edgesplit.sim.schema import Packed, StepResult, unpack_result
from edgesplit.sim.sequential import SequentialTurns

from .common import (
    MaskTable,
    device_action_space,
    env_arguments,
    info_from_packed,
    joint_spaces,
    resolve_options,
    team_reward,
)
from .render import RENDER_MODES, check_render_mode, render_rgb, render_slot

__all__ = ["SplitOffloadEnv"]


class SplitOffloadEnv(gym.Env):
    """Joint DNN partitioning, task offloading and resource allocation at the edge.

    ## Description

    ``N`` end devices produce DNN inference tasks (AlexNet, VGG16, ResNet18/50, MobileNetV2,
    or any profiled network). Each slot (default 100 ms), every device with a pending task
    chooses where to **split** the network (the prefix runs on the device), which **target**
    runs the rest (an edge server, or the cloud through the home access point and a wired
    backhaul) and its **bandwidth and compute weights**: tasks sharing an access point split
    its rate, tasks sharing a server split its compute, in proportion to their weights. Work
    not done within a slot carries over as backlog. Costs come from profiled cost models:
    per-layer latency measured on a real CPU or modelled by a calibrated roofline for
    Raspberry Pi 4, Jetson Nano/Orin, T4 and A100 classes, the bytes that cross each cut,
    and Markov-modulated or trace-driven wireless links. The system model is documented in
    :mod:`edgesplit.sim.core`; scenarios in :mod:`edgesplit.sim.scenario`.

    ## Action Space

    ``decision_mode="joint"`` (one step decides every device):

    * ``action_type="multidiscrete"`` (default): ``MultiDiscrete([S, J, L, L] * N)``, per device
      the split candidate, the target, the bandwidth level and the compute level;
    * ``action_type="continuous"``: ``Box(-1, 1, (N * (J + 3),))``, per device the split as a
      fraction of its task's candidates, ``J`` target logits (argmax) and the two weights.

    ``decision_mode="sequential"`` (one device per step; the slot resolves after the last
    device with a pending task): ``Discrete(S * J * L * L)`` (default), or the per-device
    multidiscrete or continuous spaces. ``S`` = ``costs.max_candidates``, ``J`` = edge
    servers (+ cloud), ``L`` = ``len(weight_levels)``.

    Infeasible choices (a split index past the network's candidates, an unreachable target)
    are masked: :meth:`action_masks` (for sb3-contrib's MaskablePPO) and ``info["action_mask"]``.
    A masked choice taken anyway is replaced (all-local, home edge) and penalised. An action
    outside the space raises :class:`~edgesplit.sim.encoding.ActionError` naming the device.

    ## Observation Space

    ``Box(0, 1, float32)``. Joint: the ``N`` per-device blocks of
    :mod:`edgesplit.sim.encoding` concatenated (``N * D``). Sequential: the current
    device's block, a one-hot of the device, and what this slot has already claimed
    (tasks per access point / N, tail work per target, squashed).

    | block | size | meaning |
    |---|---|---|
    | has_task | 1 | the device has a pending task |
    | app | A | one-hot application |
    | wait, queue | 2 | waiting time / deadline (squashed), queue occupancy |
    | candidates | S * (3 + J) | valid, head latency, bytes, tail latency per target |
    | device backlog | 1 | squashed seconds |
    | link rates | M | squashed Mbps to each access point |
    | reachable | J | target reachable |
    | server backlog | J | squashed seconds |
    | time | 1 | slot / horizon |

    ## Rewards

    Minus the mean over devices of each task's cost
    ``w_l * latency / deadline + w_e * energy / E_ref + w_m * [miss] + w_inf * [masked]``,
    minus ``drop_penalty`` per task dropped at a full queue (weights in the scenario's
    ``reward``). In sequential mode the slot's reward comes on the step that resolves it.

    ## Starting State

    Empty queues and backlogs, link states drawn from each link class's process, and the
    first slot's arrivals. All randomness comes from the generator seeded by ``reset(seed)``.

    ## Episode End

    Never terminated. Truncated after ``horizon`` slots (``max_cycles`` overrides it).

    ## Arguments

    * ``scenario``: a shipped name (``"default"``, ``"single"``, ``"dense"``,
      ``"three_tier"``), a YAML/JSON path or a dict. In its place, a mapping of these
      arguments (an env config, as RLlib passes it: ``SplitOffloadEnv({"scenario": "single"})``).
    * ``decision_mode``: ``"joint"`` or ``"sequential"``.
    * ``action_type``: ``None`` (the mode's default), ``"discrete"``, ``"multidiscrete"`` or
      ``"continuous"``.
    * ``max_cycles``: override the scenario's horizon.
    * ``render_mode``: ``None``, ``"ansi"`` (text) or ``"rgb_array"`` (a small picture of the
      slot, ``uint8 [H, 320, 3]``, for video recorders; see
      :func:`~edgesplit.envs.render.render_rgb`).
    * ``backend``: the simulator's step, ``"auto"`` (compiled with numba when it is
      installed, else numpy), ``"numba"`` or ``"numpy"``: same dynamics (see
      :class:`~edgesplit.sim.core.Core`).
    * ``information``: ``None`` (the scenario's ``information``: by default the measured
      rates and reported backlogs), ``"privileged"`` (the true ones: v0), or a mapping of
      :class:`~edgesplit.sim.scenario.InformationSpec` fields.

    >>> import gymnasium as gym
    >>> import edgesplit.envs
    >>> env = gym.make("edgesplit/SplitOffload-v1", scenario="single")
    >>> obs, info = env.reset(seed=0)
    >>> env.observation_space.contains(obs)
    True
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> bool(terminated), float(reward) <= 0.0, sorted(info)[:3]
    (False, True, ['action_mask', 'app', 'bw_weight'])

    ## Version History

    * v1: what a real scheduler knows. The observation's link rates are the rates each device
      measured over the last slot (an EWMA where the scenario's ``information.ewma_weight``
      is below 1), and the server backlogs are those the servers reported a slot ago, not
      the true values of the slot being decided (``information`` in the scenario). The
      dynamics and rewards are unchanged.
    * v0: initial release; the observation carries the true link rates and server backlogs
      of the slot being decided (still registered, ``information="privileged"``).
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 10}

    def __init__(
        self,
        scenario: str | Path | Mapping[str, Any] | Scenario = "default",
        decision_mode: str = "joint",
        action_type: str | None = None,
        max_cycles: int | None = None,
        render_mode: str | None = None,
        backend: str = "auto",
        information: str | Mapping[str, Any] | None = None,
    ) -> None:
        kw = env_arguments(
            scenario,
            {
                "decision_mode": decision_mode,
                "action_type": action_type,
                "max_cycles": max_cycles,
                "render_mode": render_mode,
                "backend": backend,
                "information": information,
            },
            _DEFAULTS,
        )
        decision_mode, action_type = kw["decision_mode"], kw["action_type"]
        max_cycles, render_mode, backend = kw["max_cycles"], kw["render_mode"], kw["backend"]
        scenario, information = kw["scenario"], kw["information"]
        sc, at = resolve_options(scenario, decision_mode, action_type, max_cycles, information)
        check_render_mode(render_mode)
        self.scenario = sc
        self.decision_mode = decision_mode
        self.action_type = at
        self.render_mode = render_mode
        self.core = Core(sc, 1, backend=backend)
        ta = self.core.tables
        n, d = ta.n_devices, ta.obs_dim
        self._n = n
        self._horizon = sc.horizon
        if decision_mode == "joint":
            self.action_space, self.observation_space = joint_spaces(ta, at)
        else:
            self.action_space = device_action_space(ta, at)
            self.observation_space = spaces.Box(
                0.0, 1.0, (d + n + ta.n_aps + ta.n_targets,), np.float32
            )
        self._obs_buf = np.zeros((1, n, d), dtype=np.float32)
        self._last: Packed | None = None
        mask_view = "discrete" if at == "discrete" else "multidiscrete"
        self._mask_table = MaskTable(ta, mask_view) if at != "continuous" else None
        # sequential mode: the slot's turns
        self._turns = SequentialTurns(ta, np.zeros(n, bool), np.zeros(n, np.int64))
        self._acc_reward = 0.0
        self._done = False

    # helpers ---------------------------------------------------------------------------
    def _device_obs(self) -> np.ndarray:
        return self.core.observe(out=self._obs_buf)

    def _mask_now(self) -> np.ndarray:
        if self._mask_table is None:
            return np.ones(1, dtype=bool)
        if self.decision_mode == "joint":  # multidiscrete: the core's masks (fresh)
            return self.core.masks(0).reshape(-1)
        m = self._mask_table.take(self.core.pending_rows()[0], self.core.affordable(0))
        return m[self._turns.device]

    def action_masks(self) -> np.ndarray:
        """Boolean mask of allowed actions (sb3-contrib MaskablePPO's convention).

        Joint multidiscrete: the per-dimension masks of every device, concatenated.
        Sequential discrete: one flag per action of the current device.
        """
        if self.action_type == "continuous":
            raise NotImplementedError("continuous actions are decoded to feasible choices")
        return self._mask_now()

    def _start_slot(self) -> None:
        """Sequential mode: the turns of the devices with a pending task; skip empty slots."""
        core = self.core
        while True:
            has, app = core.pending()
            self._turns = SequentialTurns(core.tables, has[0], app[0])
            if not self._turns.done:
                return
            if core.truncated[0]:
                # the episode ran out while nobody had a task: one last (ignored) decision
                # lets the agent see the truncation
                self._turns.order = np.zeros(1, dtype=np.int64)
                return
            # nobody to decide: the slot passes
            packed = core.step_packed(self._turns.decisions)
            self._acc_reward += float(team_reward(packed)[0])
            self._last = packed

    def _obs(self) -> np.ndarray:
        if self.decision_mode == "joint":
            return self.core.observe().reshape(-1)  # a fresh array
        return self._turns.observation(self._device_obs()[0])

    # API -------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        key = self.np_random.integers(0, 2**63, dtype=np.int64)
        self.core.reset(np.array([key], dtype=np.uint64))
        self._last = None
        self._acc_reward = 0.0
        self._done = False
        if self.decision_mode == "sequential":
            self._start_slot()
        return self._obs(), {"action_mask": self._mask_now()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        core = self.core
        if self._done:
            raise RuntimeError("step() called after the episode was truncated: call reset()")
        if self.decision_mode == "joint":
            a = np.asarray(action)
            shape = (1, self._n, -1) if self.action_type != "discrete" else (1, self._n)
            try:
                a = a.reshape(shape)
            except ValueError as e:
                raise ActionError(
                    f"action: shape {np.shape(action)} does not fit {self.action_space}"
                ) from e
            packed = core.step_action_packed(a, self.action_type)
            self._last = packed
            truncated = bool(core.t[0] >= self._horizon)
            self._done = truncated
            info = info_from_packed(packed, 0)
            info["action_mask"] = self._mask_now()
            reward = float(team_reward(packed)[0])
            return core.observe().reshape(-1), reward, False, truncated, info
        else:
            _has, app = core.pending()
            turns = self._turns
            dev = turns.device
            a = np.asarray(action)
            a1 = a.reshape(1, 1, *a.shape) if a.ndim else a.reshape(1, 1)
            turns.record(
                decode_device(core.tables, a1, self.action_type, app[:, dev : dev + 1], dev)
            )
            if not turns.done:
                return self._obs(), 0.0, False, False, {"action_mask": self._mask_now()}
            if core.truncated[0]:  # the ignored last decision of an empty final stretch
                packed = core.pack(core.resolve(turns.decisions))
            else:
                packed = core.step_packed(turns.decisions)
            reward = float(team_reward(packed)[0])
            if not core.truncated[0]:
                self._start_slot()
            reward += self._acc_reward
            self._acc_reward = 0.0
        self._last = packed
        truncated = bool(core.truncated[0])
        self._done = truncated
        info = info_from_packed(packed, 0)
        info["action_mask"] = self._mask_now()
        return self._obs(), reward, False, truncated, info

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "ansi":
            return render_slot(self.core, _as_result(self._last), 0)
        if self.render_mode == "rgb_array":
            return render_rgb(self.core, _as_result(self._last), 0)
        return None


_DEFAULTS = {
    k: p.default
    for k, p in inspect.signature(SplitOffloadEnv.__init__).parameters.items()
    if k != "self"
}


def _as_result(last: Packed | None) -> StepResult | None:
    return None if last is None else unpack_result(last)
