"""Observation encoder and action decoder: pure numpy, shared by the environment and the
scheduler, so that what a policy saw in training is exactly what it sees in production.

This module imports nothing but numpy (no gymnasium, torch or pettingzoo). Everything it needs
is in :class:`Tables`, plain arrays that a policy manifest can carry (:meth:`Tables.to_dict`).

Per-device observation (all entries in [0, 1], float32), in this order:

========================  ==========  ===============================================
block                     size        meaning
========================  ==========  ===============================================
has_task                  1           1 if the device has a pending task this slot
app                       A           one-hot application of the pending task
wait                      1           w / (w + deadline): time the task has waited
queue                     1           pending tasks / queue capacity
candidates                S * (3+J)   per split candidate: valid, head latency on this
                                      device, bytes sent, tail latency on each target
                                      (x / (x + scale) with the scenario's fixed scales)
device_backlog            1           Qd / (Qd + latency scale)
link_rates                M           r / (r + rate scale) to each access point (0: none)
reachable                 J           1 if the target can be reached from this device
server_backlog            J           Qs / (Qs + latency scale) of each target
time                      1           slot / horizon
battery                   1           charge / capacity of the device's battery (1 for
                                      a mains-powered device: never short of energy)
energy_debt               1           Z / (Z + energy scale): the device's energy-budget
                                      deficit (virtual queue, 0 without a budget)
========================  ==========  ===============================================

A device without a battery reads 1.0 in ``battery`` rather than a separate flag: what a
policy must know is whether a head can be paid for, and a mains-powered device always can,
as a full battery can; the masks (:func:`action_masks`) say which heads the charge affords.

Unbounded physical quantities use the squashing ``x / (x + scale)`` with scales fixed by the
scenario, so there are no running statistics to ship and the bounds hold by construction.

Decisions per device are ``(split, target, bandwidth level, compute level)``; three views:

* ``multidiscrete``: ``[S, J, L, L]`` per device;
* ``discrete``: one index ``((split * J + target) * L + bw) * L + cpu`` in ``S * J * L * L``;
* ``continuous``: ``J + 3`` values in [-1, 1]: the split as a fraction of the task's valid
  candidates, one logit per target (argmax over reachable ones), and the two weights
  mapped to [0.05, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import schema
from .schema import MIN_WEIGHT, Decisions

__all__ = [
    "ACTION_TYPES",
    "ActionError",
    "Tables",
    "action_masks",
    "affordable_splits",
    "decode",
    "decode_device",
    "encode_actions",
    "encode_devices",
    "idle_action",
    "sequential_observation",
]

ACTION_TYPES = ("discrete", "multidiscrete", "continuous")


class ActionError(ValueError):
    """An action is malformed or out of range; the message names the device and the value."""


@dataclass
class Tables:
    """Static cost tables of one scenario (numpy only).

    Shapes: N devices, A applications, S split candidates (padded), J targets, M access
    points (= edge servers; the cloud is reached through the home access point).
    """

    device_names: list[str]
    app_names: list[str]
    target_names: list[str]
    access_point_names: list[str]  # the edge servers' access points (M)
    candidate_names: list[list[str]]  # per app, the kept candidates' names
    weight_levels: np.ndarray  # [L]
    head_s: np.ndarray  # [N, A, S] head latency on each device's class
    tail_s: np.ndarray  # [A, S, J] tail latency on each target's class (full share)
    bytes_: np.ndarray  # [A, S] bytes sent at each candidate (0 for all-local)
    valid: np.ndarray  # [A, S] bool
    n_valid: np.ndarray  # [A] int
    deadline_s: np.ndarray  # [A]
    reachable: np.ndarray  # [N, J] bool
    home: np.ndarray  # [N] int, index of the home access point
    ap_of_target: np.ndarray  # [N, J] int, access point used to reach each target
    queue_capacity: int
    horizon: int
    latency_scale_s: float
    bytes_scale: float
    rate_scale_mbps: float
    battery_j: np.ndarray | None = None  # [N] battery capacity (0: mains-powered; None: all)
    p_active_w: np.ndarray | None = None  # [N] compute power of each device (head energy)
    energy_scale_j: float = 1.0  # squashing scale of the energy-budget deficit

    def __post_init__(self) -> None:
        n_dev = np.shape(self.head_s)[0]
        if self.battery_j is None:
            self.battery_j = np.zeros(n_dev)
        if self.p_active_w is None:
            self.p_active_w = np.zeros(n_dev)
        self.battery_j = np.asarray(self.battery_j, dtype=np.float64)
        self.p_active_w = np.asarray(self.p_active_w, dtype=np.float64)
        self.energy_scale_j = float(self.energy_scale_j)
        self.weight_levels = np.asarray(self.weight_levels, dtype=np.float64)
        for name in ("head_s", "tail_s", "bytes_", "deadline_s"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        self.valid = np.asarray(self.valid, dtype=bool)
        self.reachable = np.asarray(self.reachable, dtype=bool)
        self.n_valid = np.asarray(self.n_valid, dtype=np.int64)
        self.home = np.asarray(self.home, dtype=np.int64)
        self.ap_of_target = np.asarray(self.ap_of_target, dtype=np.int64)
        _n, a, s = self.head_s.shape
        j = len(self.target_names)
        if self.tail_s.shape != (a, s, j) or self.bytes_.shape != (a, s):
            raise ValueError(
                f"tables: shapes disagree: head {self.head_s.shape}, tail {self.tail_s.shape}, "
                f"bytes {self.bytes_.shape}"
            )
        #: [N * (A + 1), D] float32: the static part of a device's observation per
        #: (device, app or none) row (see :meth:`_static_rows`)
        self.static_rows = self._static_rows()
        #: [N * (A + 1)] the deadline of each static row's app (1 for no task)
        self.row_deadlines = self._row_deadlines()
        #: per-device MultiDiscrete sizes (:meth:`action_nvec`)
        self.nvec = self.action_nvec()

    # sizes -------------------------------------------------------------------------
    @property
    def n_devices(self) -> int:
        return self.head_s.shape[0]

    @property
    def n_apps(self) -> int:
        return self.head_s.shape[1]

    @property
    def n_candidates(self) -> int:
        return self.head_s.shape[2]

    @property
    def n_targets(self) -> int:
        return len(self.target_names)

    @property
    def n_aps(self) -> int:
        return len(self.access_point_names)

    @property
    def n_levels(self) -> int:
        return len(self.weight_levels)

    @property
    def obs_dim(self) -> int:
        """Length of one device's observation."""
        a, s, j, m = self.n_apps, self.n_candidates, self.n_targets, self.n_aps
        return 1 + a + 2 + s * (3 + j) + 1 + m + j + j + 1 + 2

    def observation_layout(self) -> list[tuple[str, int]]:
        """The blocks of one device's observation, in order, with their sizes (they sum to
        :attr:`obs_dim`; the table in this module's docstring says what each holds).

        >>> from edgesplit.sim.scenario import load_scenario
        >>> from edgesplit.sim.tables import build
        >>> t, _ = build(load_scenario("single"))
        >>> sum(size for _, size in t.observation_layout()) == t.obs_dim
        True
        """
        a, s, j, m = self.n_apps, self.n_candidates, self.n_targets, self.n_aps
        return [
            ("has_task", 1),
            ("app", a),
            ("wait", 1),
            ("queue", 1),
            ("candidates", s * (3 + j)),
            ("device_backlog", 1),
            ("link_rates", m),
            ("reachable", j),
            ("server_backlog", j),
            ("time", 1),
            ("battery", 1),
            ("energy_debt", 1),
        ]

    @property
    def has_batteries(self) -> bool:
        """Some device runs on a battery (its charge can mask heads)."""
        return bool((self.battery_j > 0).any())

    @property
    def head_energy_j(self) -> np.ndarray:
        """``[N, A, S]`` the device energy of each head (compute power x head latency)."""
        return self.p_active_w[:, None, None] * self.head_s

    def action_nvec(self) -> np.ndarray:
        """Per-device MultiDiscrete sizes, one per decision field (``[S, J, L, L]``)."""
        return schema.action_nvec(self.n_candidates, self.n_targets, self.n_levels)

    @property
    def n_discrete(self) -> int:
        """Size of a device's one-index (Discrete) action."""
        return schema.discrete_size(self.n_candidates, self.n_targets, self.n_levels)

    @property
    def continuous_width(self) -> int:
        """Width of a device's continuous action (``J + 3``)."""
        return schema.continuous_width(self.n_targets)

    # static observation blocks ----------------------------------------------------
    def _static_blocks(self) -> np.ndarray:
        """[N, A, S*(3+J)] candidate block of the observation, one per (device, app)."""
        ls, bs = self.latency_scale_s, self.bytes_scale
        n, a, s, j = self.n_devices, self.n_apps, self.n_candidates, self.n_targets
        out = np.zeros((n, a, s, 3 + j), dtype=np.float64)
        out[..., 0] = self.valid[None]
        out[..., 1] = self.head_s / (self.head_s + ls)
        out[..., 2] = (self.bytes_ / (self.bytes_ + bs))[None]
        out[..., 3:] = (self.tail_s / (self.tail_s + ls))[None]
        out *= self.valid[None, :, :, None]
        return out.reshape(n, a, s * (3 + j))

    def _static_rows(self) -> np.ndarray:
        """[N * (A + 1), D] float32: the parts of a device's observation that depend only on
        the device and its pending task's app, row ``n * (A + 1) + a`` (``a = A``: no task),
        with zeros in the columns that change from slot to slot."""
        n, a, d = self.n_devices, self.n_apps, self.obs_dim
        out = np.zeros((n, a + 1, d), dtype=np.float32)
        out[:, :a, 0] = 1.0
        out[:, :a, 1 : 1 + a] = np.eye(a)
        i = 1 + a + 2
        block = self.n_candidates * (3 + self.n_targets)
        out[:, :a, i : i + block] = self._static_blocks()
        i += block + 1 + self.n_aps
        out[:, :, i : i + self.n_targets] = self.reachable[:, None, :]
        return out.reshape(n * (a + 1), d)

    def _row_deadlines(self) -> np.ndarray:
        """[N * (A + 1)] deadline of each static row's app (1 for no task)."""
        dl = np.append(self.deadline_s, 1.0)
        return np.tile(dl, self.n_devices)

    # serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists and numbers) for a policy manifest."""
        out: dict[str, Any] = {}
        for k in self.__dataclass_fields__:
            v = getattr(self, k)
            out[k] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tables:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        missing = known - set(d)
        if unknown or missing:
            raise ValueError(f"tables: unknown keys {sorted(unknown)}, missing {sorted(missing)}")
        return cls(**d)


def encode_devices(
    tables: Tables,
    has_task: np.ndarray,
    app: np.ndarray,
    wait_s: np.ndarray,
    qlen: np.ndarray,
    device_backlog_s: np.ndarray,
    rates_mbps: np.ndarray,
    server_backlog_s: np.ndarray,
    t: np.ndarray,
    out: np.ndarray | None = None,
    rows: np.ndarray | None = None,
    charge_j: np.ndarray | None = None,
    debt_j: np.ndarray | None = None,
) -> np.ndarray:
    """Encode a batch of system snapshots into per-device observations.

    Parameters
    ----------
    has_task, app, wait_s, qlen, device_backlog_s:
        arrays ``[E, N]`` (``app`` is any valid index where ``has_task`` is false).
    rates_mbps:
        ``[E, N, M]`` link rate of each device to each access point (0 where none).
    server_backlog_s:
        ``[E, J]``.
    t:
        ``[E]`` current slot.
    out:
        optional ``[E, N, D]`` float32 array to write into (C-contiguous).
    rows:
        optional ``[E, N]`` ``n * (A + 1) + (app if has_task else A)``, when the caller
        has it already (the simulator does).
    charge_j, debt_j:
        optional ``[E, N]`` battery charge and energy-budget deficit (joules); without
        them every battery reads full and every deficit 0. Ignored for mains-powered
        devices (``battery`` reads 1).

    Returns
    -------
    ndarray ``[E, N, D]`` float32, every entry in [0, 1].
    """
    e, n = has_task.shape
    ta = tables
    a_n, s_n, j_n, m_n = ta.n_apps, ta.n_candidates, ta.n_targets, ta.n_aps
    if rows is None:
        rows = np.arange(n) * (a_n + 1) + np.where(has_task, app, a_n)
    if out is None:
        out = np.empty((e, n, ta.obs_dim), dtype=np.float32)
    # has_task, app one-hot, candidate blocks, reachable: one gather of static rows
    ta.static_rows.take(rows, axis=0, out=out, mode="clip")
    ls = ta.latency_scale_s
    i = 1 + a_n
    w = wait_s / (wait_s + ta.row_deadlines.take(rows))
    np.multiply(has_task, w, out=out[:, :, i])
    np.divide(qlen, ta.queue_capacity, out=out[:, :, i + 1])
    i += 2 + s_n * (3 + j_n)
    np.divide(device_backlog_s, device_backlog_s + ls, out=out[:, :, i])
    i += 1
    np.divide(rates_mbps, rates_mbps + ta.rate_scale_mbps, out=out[:, :, i : i + m_n])
    i += m_n + j_n
    out[:, :, i : i + j_n] = (server_backlog_s / (server_backlog_s + ls))[:, None, :]
    i += j_n
    out[:, :, i] = (t / ta.horizon)[:, None]
    i += 1
    bat = ta.battery_j > 0
    if charge_j is None:
        out[:, :, i] = 1.0
    else:
        out[:, :, i] = np.where(bat, charge_j / np.where(bat, ta.battery_j, 1.0), 1.0)
    i += 1
    if debt_j is None:
        out[:, :, i] = 0.0
    else:
        np.divide(debt_j, debt_j + ta.energy_scale_j, out=out[:, :, i])
    return out


def sequential_observation(
    tables: Tables,
    device_obs: np.ndarray,
    dev: int,
    done: np.ndarray,
    app: np.ndarray,
    split: np.ndarray,
    target: np.ndarray,
) -> np.ndarray:
    """The observation of device ``dev``'s turn in sequential decision mode (float32).

    ``device_obs`` ``[D]`` is the device's own block (:func:`encode_devices`); then a one-hot
    of the device, the tasks already sent to each access point this slot (divided by the
    number of devices) and the tail work already claimed on each target (squashed), from the
    decisions of the devices ``done`` before it (their ``app``, ``split`` and ``target``, all
    ``[N]``; a split is clipped to the app's candidates, as the simulator does).
    """
    ta = tables
    n = ta.n_devices
    onehot = np.zeros(n, np.float32)
    onehot[dev] = 1.0
    ap_load = np.zeros(ta.n_aps, np.float32)
    work = np.zeros(ta.n_targets, np.float32)
    if len(done):
        a = app[done]
        last = ta.n_valid[a] - 1
        s = np.minimum(split[done], last)
        tg = target[done]
        off = s != last
        aps = ta.ap_of_target[done, tg]
        np.add.at(ap_load, aps[off], 1.0 / n)
        np.add.at(work, tg, ta.tail_s[a, s, tg] * off)
    work = work / (work + ta.latency_scale_s)
    return np.concatenate([device_obs, onehot, ap_load, work]).astype(np.float32)


def _check_int(x: np.ndarray, high: np.ndarray | int, names: list[str], what: str) -> None:
    bad = (x < 0) | (x >= high)
    if bad.any():
        idx = np.argwhere(bad)[0]
        dev = names[idx[-1]] if len(idx) else "?"
        hi = high if np.isscalar(high) else np.broadcast_to(high, x.shape)[tuple(idx)]
        raise ActionError(
            f"action of device {dev!r}: {what} = {x[tuple(idx)]} out of range [0, {hi})"
        )


def _real(a: np.ndarray, names: list[str]) -> np.ndarray:
    """``a`` as a real-valued array; an :class:`ActionError` naming the device and the value
    for anything else (objects, ``None``, strings, complex numbers, integers too large for
    64 bits)."""
    if a.dtype.kind in "iufb":
        return a
    flat = a.reshape(a.shape[0], a.shape[1], -1) if a.ndim >= 2 else a.reshape(1, -1, 1)
    for idx in np.ndindex(*flat.shape):
        v = flat[idx]
        ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
            v, (bool, np.bool_)
        )
        if ok and isinstance(v, int) and not -(2**63) <= v < 2**63:
            ok = False
        if not ok:
            dev = names[idx[1]] if idx[1] < len(names) else "?"
            text = repr(v)
            text = text if len(text) <= 40 else text[:37] + "..."
            raise ActionError(
                f"action of device {dev!r}: {text} is not a real number ({a.dtype} action)"
            )
    return a.astype(np.float64)


def _as_integers(a: np.ndarray, names: list[str]) -> np.ndarray:
    a = _real(a, names)
    if a.dtype.kind in "iu":
        return a
    bad = ~np.isfinite(a) | (a != np.round(a))
    if bad.any():
        idx = np.argwhere(bad)[0]
        dev = names[idx[1]] if a.ndim >= 2 and idx[1] < len(names) else "?"
        raise ActionError(f"action of device {dev!r}: {a[tuple(idx)]!r} is not an integer")
    return a.astype(np.int64)


def _field_value(tables: Tables, kind: str, index: np.ndarray) -> np.ndarray:
    """A field's value from its index in the discrete views: the index itself, or the
    weight level for ``"level"`` fields."""
    return tables.weight_levels.take(index) if kind == "level" else index


def decode(tables: Tables, action: np.ndarray, action_type: str, app: np.ndarray) -> Decisions:
    """Decode a batch of actions ``[E, N, ...]`` into :class:`Decisions`, field by field of
    :data:`~edgesplit.sim.schema.DECISION_FIELDS` (each field's kind says how).

    ``app`` ``[E, N]`` is needed by the continuous view (its split is a fraction of the
    task's valid candidates). Malformed or out-of-range actions raise :class:`ActionError`
    naming the device and the value. Feasibility (masked choices) is not judged here.
    """
    ta = tables
    names = ta.device_names
    a = np.asarray(action)
    e, n = app.shape
    fields = schema.DECISION_FIELDS
    if action_type == "multidiscrete":
        nvec = ta.nvec
        if a.shape != (e, n, len(nvec)):
            raise ActionError(
                f"action: expected shape {(n, len(nvec))} per environment, got {a.shape}"
            )
        a = _as_integers(a, names)
        if a.min() < 0 or (a >= nvec).any():  # find the culprit for the message
            for k, f in enumerate(fields):
                _check_int(a[..., k], int(nvec[k]), names, f.name)
        return Decisions(*(_field_value(ta, f.kind, a[..., k]) for k, f in enumerate(fields)))
    if action_type == "discrete":
        if a.shape != (e, n):
            raise ActionError(f"action: expected shape {(n,)} per environment, got {a.shape}")
        a = _as_integers(a, names)
        _check_int(a, ta.n_discrete, names, "action index")
        # mixed radix, the first field most significant
        idx = []
        r = a
        for size in ta.nvec[::-1]:
            idx.append(r % size)
            r = r // size
        idx.reverse()
        return Decisions(*(_field_value(ta, f.kind, i) for f, i in zip(fields, idx, strict=True)))
    if action_type == "continuous":
        width = ta.continuous_width
        if a.shape != (e, n, width):
            raise ActionError(f"action: expected shape {(n, width)} per environment, got {a.shape}")
        a = _real(a, names).astype(np.float64, copy=False)
        bad = ~np.isfinite(a) | (a < -1.0 - 1e-6) | (a > 1.0 + 1e-6)
        if bad.any():
            idx = np.argwhere(bad)[0]
            raise ActionError(
                f"action of device {names[idx[1]]!r}: component {idx[2]} = {a[tuple(idx)]} "
                "outside [-1, 1]"
            )
        a = np.clip(a, -1.0, 1.0)
        values, c = [], 0
        for f in fields:
            if f.kind == "candidate":  # a fraction of the task's valid candidates
                nv = ta.n_valid[app]
                values.append(np.minimum((0.5 * (a[..., c] + 1.0) * nv).astype(np.int64), nv - 1))
                c += 1
            elif f.kind == "target":  # one logit per target, argmax over reachable ones
                j_n = ta.n_targets
                logits = np.where(ta.reachable[None], a[..., c : c + j_n], -np.inf)
                values.append(np.argmax(logits, axis=-1))
                c += j_n
            else:  # a weight in [MIN_WEIGHT, 1]
                values.append(MIN_WEIGHT + (1.0 - MIN_WEIGHT) * 0.5 * (a[..., c] + 1.0))
                c += 1
        return Decisions(*values)
    raise ValueError(f"action_type: {action_type!r} is not one of {ACTION_TYPES}")


def encode_actions(tables: Tables, dec: Decisions, action_type: str) -> np.ndarray:
    """The inverse of :func:`decode` for the discrete views: decisions ``[E, N]`` to joint
    actions ``[E, N * width]`` (``"multidiscrete"``) or ``[E, N]`` (``"discrete"``). Weights
    are rounded to the nearest level."""
    ta = tables
    idx = []
    for f, v in zip(schema.DECISION_FIELDS, dec.fields(), strict=True):
        if f.kind == "level":
            v = np.abs(np.asarray(v)[..., None] - ta.weight_levels).argmin(-1)
        idx.append(np.asarray(v, dtype=np.int64))
    e = dec.shape[0]
    if action_type == "multidiscrete":
        return np.stack(idx, axis=-1).reshape(e, -1)
    if action_type == "discrete":
        out = np.zeros_like(idx[0])
        for i, size in zip(idx, ta.nvec, strict=True):
            out = out * size + i
        return out
    raise ValueError(f"action_type: {action_type!r} cannot be encoded (discrete views only)")


def idle_action(n_levels: int) -> np.ndarray:
    """The ``multidiscrete`` action (one index per decision field) of a device with no
    pending task: split 0, target 0, both weights at the top of the ``n_levels`` levels.

    The core ignores such a device's decision and the masks allow it anything, so the
    agents give it this one fixed action, of probability 1 (log-probability and entropy 0):
    the shared policy's logits on every path and in the exported ONNX
    (``agents/shared_policy.py``) and the warm start's teacher actions
    (``agents/warm_start.py``).

    >>> idle_action(3).tolist()
    [0, 0, 2, 2]
    """
    by_kind = {"candidate": 0, "target": 0, "level": int(n_levels) - 1}
    return np.array([by_kind[f.kind] for f in schema.DECISION_FIELDS], dtype=np.int64)


def affordable_splits(
    tables: Tables, app: np.ndarray, has_task: np.ndarray, charge_j: np.ndarray
) -> np.ndarray:
    """``[E, N, S]`` the splits whose head the device's battery can pay for (its compute
    energy at most the charge ``charge_j`` ``[E, N]``); every split of a mains-powered
    device or of a device without a pending task. Full offload (candidate 0, no head) is
    always affordable."""
    ta = tables
    e_head = ta.head_energy_j[np.arange(ta.n_devices), app]  # [E, N, S]
    ok = e_head <= np.asarray(charge_j)[..., None]
    return ok | ~(ta.battery_j > 0)[:, None] | ~np.asarray(has_task)[..., None]


def split_target_masks(
    tables: Tables, app: np.ndarray, has_task: np.ndarray, charge_j: np.ndarray | None = None
) -> tuple:
    """Feasible splits ``[E, N, S]`` and targets ``[E, N, J]``.

    A device without a pending task may choose anything (its decision is ignored). With
    ``charge_j`` (``[E, N]``, joules), a battery-powered device's splits whose head costs
    more energy than its charge are masked (:func:`affordable_splits`).
    """
    split = tables.valid[app] | ~has_task[..., None]
    if charge_j is not None and tables.has_batteries:
        split = split & affordable_splits(tables, app, has_task, charge_j)
    target = np.broadcast_to(tables.reachable[None], (*app.shape, tables.n_targets))
    return split, target


def action_masks(
    tables: Tables,
    app: np.ndarray,
    has_task: np.ndarray,
    action_type: str,
    charge_j: np.ndarray | None = None,
) -> np.ndarray:
    """Per-device masks ``[E, N, K]`` of a discrete view (True: allowed); ``charge_j``
    ``[E, N]`` masks the heads a battery cannot pay for (:func:`split_target_masks`).

    ``"multidiscrete"``: each decision field's mask concatenated (``K = S + J + 2L``);
    ``"discrete"``: one flag per action index (``K = S * J * L * L``), the product of the
    fields' masks.
    """
    sm, tm = split_target_masks(tables, app, has_task, charge_j)
    by_kind = {
        "candidate": sm,
        "target": tm,
        "level": np.ones((*np.shape(app), tables.n_levels), dtype=bool),
    }
    masks = [by_kind[f.kind] for f in schema.DECISION_FIELDS]
    if action_type == "multidiscrete":
        return np.concatenate(masks, axis=-1)
    if action_type == "discrete":
        full = masks[0]
        for m in masks[1:]:  # mixed radix: the first field most significant
            full = (full[..., :, None] & m[..., None, :]).reshape(*full.shape[:-1], -1)
        return full
    raise ValueError(f"action_type: {action_type!r} has no masks (discrete views only)")


class _OneDevice:
    """A one-device view of :class:`Tables` for decoding (names and reachability)."""

    def __init__(self, ta: Tables, dev: int) -> None:
        self._ta = ta
        self.device_names = [ta.device_names[dev]]
        self.reachable = ta.reachable[dev : dev + 1]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ta, name)


def decode_device(
    tables: Tables, action: np.ndarray, action_type: str, app: np.ndarray, dev: int
) -> Decisions:
    """Decode device ``dev``'s action alone (``[1, 1, ...]``, sequential decisions) with
    that device's name in errors; ``app`` is ``[1, 1]``."""
    return decode(_OneDevice(tables, dev), action, action_type, app)  # type: ignore[arg-type]
