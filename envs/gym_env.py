"""Gymnasium faces of the EdgeSplit core: a centralised env and a native VectorEnv."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv

from edgesplit.sim.core import Core
from edgesplit.sim.encoding import (
    ActionError,
    Decisions,
    action_masks,
    decode_device,
    sequential_observation,
)
from edgesplit.sim.scenario import Scenario, load_scenario
from edgesplit.sim.schema import ROW, Packed, StepResult

from .render import render_slot

__all__ = ["SplitOffloadEnv", "SplitOffloadVectorEnv"]

DECISION_MODES = ("joint", "sequential")
_DEFAULT_ACTION = {"joint": "multidiscrete", "sequential": "discrete"}
_ALLOWED = {
    "joint": ("multidiscrete", "continuous"),
    "sequential": ("discrete", "multidiscrete", "continuous"),
}


def _resolve(
    scenario: str | Path | Mapping[str, Any] | Scenario,
    decision_mode: str,
    action_type: str | None,
    max_cycles: int | None,
) -> tuple[Scenario, str]:
    sc = load_scenario(scenario)
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
    at = action_type or _DEFAULT_ACTION[decision_mode]
    if at not in _ALLOWED[decision_mode]:
        raise ValueError(
            f"action_type: {at!r} is not available with decision_mode={decision_mode!r} "
            f"(choose from {_ALLOWED[decision_mode]})"
        )
    return sc, at


def _device_action_space(core: Core, action_type: str) -> spaces.Space:
    ta = core.tables
    if action_type == "discrete":
        return spaces.Discrete(ta.n_discrete)
    if action_type == "multidiscrete":
        return spaces.MultiDiscrete(ta.action_nvec())
    return spaces.Box(-1.0, 1.0, shape=(ta.continuous_width,), dtype=np.float32)


def _mask_table(ta: Any, action_type: str) -> np.ndarray:
    """Per-device action masks of every ``(device, app or none)`` row (see
    :func:`~edgesplit.sim.encoding.encode_devices`), ``[N * (A + 1), K]``."""
    n, a = ta.n_devices, ta.n_apps
    # as a batch of A + 1 "environments": row a has app a pending everywhere (a = A: none)
    has = np.broadcast_to((np.arange(a + 1) < a)[:, None], (a + 1, n))
    app = np.broadcast_to(np.minimum(np.arange(a + 1), a - 1)[:, None], (a + 1, n))
    m = action_masks(ta, app, has, action_type)
    return np.ascontiguousarray(m.transpose(1, 0, 2)).reshape(n * (a + 1), -1)


def _joint_spaces(core: Core, action_type: str) -> tuple[spaces.Space, spaces.Box]:
    """Action and observation spaces of one joint decision over every device."""
    ta = core.tables
    n = ta.n_devices
    if action_type == "multidiscrete":
        act: spaces.Space = spaces.MultiDiscrete(np.tile(ta.action_nvec(), n))
    else:
        act = spaces.Box(-1.0, 1.0, (n * ta.continuous_width,), np.float32)
    return act, spaces.Box(0.0, 1.0, (n * ta.obs_dim,), np.float32)


def _masks(core: Core, action_type: str) -> np.ndarray:
    """Per-device action masks ``[E, N, K]`` for the discrete views (True: allowed)."""
    tabs = core.__dict__.setdefault("_mask_tables", {})
    tab = tabs.get(action_type)
    if tab is None:
        tab = tabs[action_type] = _mask_table(core.tables, action_type)
    return tab.take(core._pending().row, axis=0)


_INFO_KEYS = (
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
# (info key, packed array, row)
_INFO_ROWS = tuple((key, *ROW[key]) for key in _INFO_KEYS)
_REWARD = ROW["team_reward"]


def _info_packed(p: Packed, e: int | None = None) -> dict[str, Any]:
    """The step info from a packed result (views of it), of environment ``e`` or all."""
    if e is None:
        return {key: p[a][r] for key, a, r in _INFO_ROWS}
    return {key: p[a][r, e] for key, a, r in _INFO_ROWS}


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
      ``"three_tier"``), a YAML/JSON path or a dict.
    * ``decision_mode``: ``"joint"`` or ``"sequential"``.
    * ``action_type``: ``None`` (the mode's default), ``"discrete"``, ``"multidiscrete"`` or
      ``"continuous"``.
    * ``max_cycles``: override the scenario's horizon.
    * ``render_mode``: ``None`` or ``"ansi"``.
    * ``backend``: the simulator's step, ``"auto"`` (compiled with numba when it is
      installed, else numpy), ``"numba"`` or ``"numpy"``: same dynamics (see
      :class:`~edgesplit.sim.core.Core`).

    >>> import gymnasium as gym
    >>> import edgesplit.envs
    >>> env = gym.make("edgesplit/SplitOffload-v0", scenario="single")
    >>> obs, info = env.reset(seed=0)
    >>> env.observation_space.contains(obs)
    True
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> bool(terminated), float(reward) <= 0.0, sorted(info)[:3]
    (False, True, ['action_mask', 'app', 'bw_weight'])

    ## Version History

    * v0: initial release.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 10}

    def __init__(
        self,
        scenario: str | Path | Mapping[str, Any] | Scenario = "default",
        decision_mode: str = "joint",
        action_type: str | None = None,
        max_cycles: int | None = None,
        render_mode: str | None = None,
        backend: str = "auto",
    ) -> None:
        sc, at = _resolve(scenario, decision_mode, action_type, max_cycles)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: {render_mode!r} is not one of ['ansi', None]")
        self.scenario = sc
        self.decision_mode = decision_mode
        self.action_type = at
        self.render_mode = render_mode
        self.core = Core(sc, 1, backend=backend)
        ta = self.core.tables
        n, d = ta.n_devices, ta.obs_dim
        self._n = n
        self._horizon = sc.horizon
        dev_space = _device_action_space(self.core, at)
        if decision_mode == "joint":
            self.action_space, self.observation_space = _joint_spaces(self.core, at)
        else:
            self.action_space = dev_space
            self.observation_space = spaces.Box(
                0.0, 1.0, (d + n + ta.n_aps + ta.n_targets,), np.float32
            )
        self._obs_buf = np.zeros((1, n, d), dtype=np.float32)
        self._last: Packed | None = None
        self._joint_masks: np.ndarray | None = None
        # sequential mode: decisions collected this slot
        self._order: np.ndarray = np.zeros(0, dtype=np.int64)
        self._k = 0
        self._pending = self._empty_decisions()
        self._acc_reward = 0.0
        self._done = False

    # helpers ---------------------------------------------------------------------------
    def _empty_decisions(self) -> Decisions:
        n = self._n
        return Decisions(
            np.zeros((1, n), np.int64),
            self.core.tables.home[None].copy(),
            np.ones((1, n)),
            np.ones((1, n)),
        )

    def _device_obs(self) -> np.ndarray:
        return self.core.observe(out=self._obs_buf)

    def _seq_obs(self) -> np.ndarray:
        dev = self._order[self._k] if self._k < len(self._order) else 0
        _has, app = self.core.pending()
        p = self._pending
        return sequential_observation(
            self.core.tables,
            self._device_obs()[0, dev],
            dev,
            self._order[: self._k],
            app[0],
            p.split[0],
            p.target[0],
        )

    def _mask_now(self) -> np.ndarray:
        if self.decision_mode == "joint":  # one gather of the cached per-row table
            tab = self._joint_masks
            if tab is None:
                tab = self._joint_masks = _mask_table(self.core.tables, "multidiscrete")
            return tab[self.core._pending().row[0]].reshape(-1)
        m = _masks(
            self.core, "multidiscrete" if self.action_type == "multidiscrete" else "discrete"
        )[0]
        dev = self._order[self._k] if self._k < len(self._order) else 0
        return m[dev]

    def action_masks(self) -> np.ndarray:
        """Boolean mask of allowed actions (sb3-contrib MaskablePPO's convention).

        Joint multidiscrete: the per-dimension masks of every device, concatenated.
        Sequential discrete: one flag per action of the current device.
        """
        if self.action_type == "continuous":
            raise NotImplementedError("continuous actions are decoded to feasible choices")
        return self._mask_now()

    def _start_slot(self) -> None:
        """Sequential mode: order the devices with a pending task; skip empty slots."""
        while True:
            has, _ = self.core.pending()
            self._order = np.flatnonzero(has[0])
            self._k = 0
            self._pending = self._empty_decisions()
            if len(self._order):
                return
            if self.core.truncated[0]:
                # the episode ran out while nobody had a task: one last (ignored) decision
                # lets the agent see the truncation
                self._order = np.zeros(1, dtype=np.int64)
                return
            packed = self.core.step_packed(self._pending)  # nobody to decide: the slot passes
            self._acc_reward += float(packed[_REWARD[0]][_REWARD[1], 0, 0])
            self._last = packed

    def _obs(self) -> np.ndarray:
        if self.decision_mode == "joint":
            return self.core.observe().reshape(-1)  # a fresh array
        return self._seq_obs()

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
            info = _info_packed(packed, 0)
            info["action_mask"] = self._mask_now()
            reward = float(packed[_REWARD[0]][_REWARD[1], 0, 0])
            return core.observe().reshape(-1), reward, False, truncated, info
        else:
            _has, app = core.pending()
            dev = int(self._order[self._k])
            a = np.asarray(action)
            a1 = a.reshape(1, 1, *a.shape) if a.ndim else a.reshape(1, 1)
            dec = decode_device(core.tables, a1, self.action_type, app[:, dev : dev + 1], dev)
            p = self._pending
            p.split[0, dev] = dec.split[0, 0]
            p.target[0, dev] = dec.target[0, 0]
            p.bw_weight[0, dev] = dec.bw_weight[0, 0]
            p.cpu_weight[0, dev] = dec.cpu_weight[0, 0]
            self._k += 1
            if self._k < len(self._order):
                return self._obs(), 0.0, False, False, {"action_mask": self._mask_now()}
            if core.truncated[0]:  # the ignored last decision of an empty final stretch
                packed = core.pack(core.resolve(p))
            else:
                packed = core.step_packed(p)
            reward = float(packed[_REWARD[0]][_REWARD[1], 0, 0])
            if not core.truncated[0]:
                self._start_slot()
            reward += self._acc_reward
            self._acc_reward = 0.0
        self._last = packed
        truncated = bool(core.truncated[0])
        self._done = truncated
        info = _info_packed(packed, 0)
        info["action_mask"] = self._mask_now()
        return self._obs(), reward, False, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return render_slot(self.core, _as_result(self.core, self._last), 0)


def _as_result(core: Core, last: Packed | None) -> StepResult | None:
    return None if last is None else core.result_of(last)


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
    >>> envs = gym.make_vec("edgesplit/SplitOffload-v0", num_envs=4, scenario="single")
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
    ) -> None:
        if decision_mode != "joint":
            raise ValueError(
                f"decision_mode: {decision_mode!r}: the native VectorEnv supports 'joint' only; "
                "use gymnasium.make_vec(..., vectorization_mode='sync') for sequential"
            )
        sc, at = _resolve(scenario, decision_mode, action_type, max_cycles)
        self.scenario = sc
        self.action_type = at
        self.render_mode = render_mode
        self.num_envs = int(num_envs)
        self.core = Core(sc, self.num_envs, backend=backend)
        ta = self.core.tables
        n, d = ta.n_devices, ta.obs_dim
        self._n = n
        self.single_action_space, self.single_observation_space = _joint_spaces(self.core, at)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )
        self._obs_buf = np.zeros((self.num_envs, n, d), dtype=np.float32)
        self._rngs: list[np.random.Generator] = []
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._last: Packed | None = None

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
        if self.action_type == "continuous":
            return np.ones((self.num_envs, 1), dtype=bool)
        return _masks(self.core, "multidiscrete").reshape(self.num_envs, -1)

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
        rewards = packed[_REWARD[0]][_REWARD[1], :, 0].copy()
        truncated = core.truncated.copy()
        if ar.any():
            core.reset(self._keys(ar), ar)
            rewards[ar] = 0.0
            truncated[ar] = False
        self._autoreset = truncated.copy()
        self._last = packed
        obs = core.observe().reshape(e, -1)  # a fresh array
        info = _info_packed(packed)
        if ar.any():
            for k, v in info.items():
                info[k] = v.copy() if isinstance(v, np.ndarray) else v
        info["action_mask"] = self._masks()
        info["autoreset"] = ar.copy()
        return obs, rewards, np.zeros(e, dtype=bool), truncated, info

    def render(self) -> tuple[str, ...] | None:
        if self.render_mode != "ansi":
            return None
        last = _as_result(self.core, self._last)
        return tuple(render_slot(self.core, last, i) for i in range(self.num_envs))
