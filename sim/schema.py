"""One schema for a decision and for a step result (numpy only; a leaf module).

A **decision** is what each device chooses each slot. :data:`DECISION_FIELDS` lists its
fields, each with a *kind* that says how an action encodes it:

=============  ===========  ====================  =====================================
field          kind         multidiscrete size    continuous width (values in [-1, 1])
=============  ===========  ====================  =====================================
``split``      candidate    ``S``                 1: a fraction of the task's candidates
``target``     target       ``J``                 ``J``: one logit per target (argmax)
``bw_weight``  level        ``L``                 1: a weight in [MIN_WEIGHT, 1]
``cpu_weight`` level        ``L``                 1: a weight in [MIN_WEIGHT, 1]
=============  ===========  ====================  =====================================

Action widths (:func:`action_nvec`, :func:`continuous_width`), the discrete index
(:func:`discrete_size`), packing for the compiled step (:meth:`Decisions.as_array`) and
copying derive from this list, so a new decision (a transmit power, say) is one entry here,
its physics, and the places that genuinely decide.

A **step result** (:class:`StepResult`) is the per-device physical outcome of one slot. The
compiled step writes it into three packed arrays (float64, int64, bool) whose rows are
:data:`PACKED_ROWS`: the result's fields, grouped by dtype in field order, then the next
slot's pending view (``next_*``). :data:`ROW` maps every name to ``(array, row)``; nothing
reads a row by number.

The static per-choice tables of the core have named columns too (:data:`CHOICE_FLOAT_COLUMNS`,
:data:`CHOICE_INT_COLUMNS`).

>>> action_nvec(n_candidates=5, n_targets=3, n_levels=2).tolist()
[5, 3, 2, 2]
>>> continuous_width(n_targets=3)
6
>>> d = Decisions.filled((1, 2), home=np.array([[1, 0]]))
>>> d.as_array().shape, d[0, 1].target.item()
((1, 2, 4), 0)
>>> ROW["latency_s"][0], ROW["split"][0], ROW["has_task"][0]
(0, 1, 2)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

__all__ = [
    "CF",
    "CHOICE_FLOAT_COLUMNS",
    "CHOICE_INT_COLUMNS",
    "CI",
    "DECISION_FIELDS",
    "DECISION_KINDS",
    "MIN_WEIGHT",
    "NEXT_ROWS",
    "PACKED_ROWS",
    "ROW",
    "DecisionField",
    "Decisions",
    "Packed",
    "StepResult",
    "action_nvec",
    "columns",
    "continuous_width",
    "discrete_size",
    "empty_packed",
    "pack_result",
    "packed_shapes",
    "unpack_result",
]

MIN_WEIGHT = 0.05  # continuous weights map to [MIN_WEIGHT, 1]

#: how an action encodes a field: an index among the task's split candidates, an index among
#: the targets, or a weight level
DECISION_KINDS = ("candidate", "target", "level")


@dataclass(frozen=True)
class DecisionField:
    """One field of a decision: its name, its kind (:data:`DECISION_KINDS`), its dtype, and
    the value a device takes when nothing decides it (``"home"``: the device's home edge)."""

    name: str
    kind: str
    dtype: type
    default: float | str
    doc: str


DECISION_FIELDS: tuple[DecisionField, ...] = (
    DecisionField("split", "candidate", np.int64, 0, "index among the app's padded candidates"),
    DecisionField("target", "target", np.int64, "home", "edge server (or the cloud, last)"),
    DecisionField("bw_weight", "level", np.float64, 1.0, "weight in the access point's bandwidth"),
    DecisionField("cpu_weight", "level", np.float64, 1.0, "weight in the target's compute"),
)
_FIELD_NAMES = tuple(f.name for f in DECISION_FIELDS)


def _kind_size(kind: str, n_candidates: int, n_targets: int, n_levels: int) -> int:
    return {"candidate": n_candidates, "target": n_targets, "level": n_levels}[kind]


def action_nvec(n_candidates: int, n_targets: int, n_levels: int) -> np.ndarray:
    """Per-device MultiDiscrete sizes, one per decision field."""
    sizes = [_kind_size(f.kind, n_candidates, n_targets, n_levels) for f in DECISION_FIELDS]
    return np.array(sizes, dtype=np.int64)


def discrete_size(n_candidates: int, n_targets: int, n_levels: int) -> int:
    """Size of the one-index (Discrete) view: the product of :func:`action_nvec`."""
    return int(np.prod(action_nvec(n_candidates, n_targets, n_levels)))


def continuous_width(n_targets: int) -> int:
    """Per-device width of the continuous view (a target is ``J`` logits, the rest one)."""
    return sum(n_targets if f.kind == "target" else 1 for f in DECISION_FIELDS)


@dataclass
class Decisions:
    """Decisions for a batch: one array per field of :data:`DECISION_FIELDS`, all of one
    shape (``[E, N]`` for the core)."""

    split: np.ndarray  # int, index among the app's padded candidates
    target: np.ndarray  # int
    bw_weight: np.ndarray  # float in (0, 1]
    cpu_weight: np.ndarray  # float in (0, 1]

    @classmethod
    def filled(cls, shape: tuple[int, ...], home: Any = 0, **values: Any) -> Decisions:
        """Decisions of ``shape``, each field broadcast from the value given, else from its
        default (``home``: the devices' home edges, for the fields whose default it is)."""
        unknown = set(values) - set(_FIELD_NAMES)
        if unknown:
            raise TypeError(f"Decisions.filled: unknown fields {sorted(unknown)}")
        out = {}
        for f in DECISION_FIELDS:
            v = values.get(f.name, home if f.default == "home" else f.default)
            out[f.name] = np.array(np.broadcast_to(v, shape), f.dtype)
        return cls(**out)

    @classmethod
    def from_fields(cls, values: Any) -> Decisions:
        """From a sequence of arrays in field order."""
        return cls(*values)

    def fields(self) -> tuple[np.ndarray, ...]:
        """The arrays, in field order."""
        return tuple(getattr(self, n) for n in _FIELD_NAMES)

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> Decisions:
        """A new :class:`Decisions` with ``fn`` applied to every field."""
        return Decisions(*(fn(a) for a in self.fields()))

    def copy(self) -> Decisions:
        return self.map(np.copy)

    def __getitem__(self, idx: Any) -> Decisions:
        return self.map(lambda a: a[idx])

    def __setitem__(self, idx: Any, other: Decisions) -> None:
        for a, b in zip(self.fields(), other.fields(), strict=True):
            a[idx] = b

    @staticmethod
    def where(cond: np.ndarray, a: Decisions, b: Decisions) -> Decisions:
        """Field by field ``np.where(cond, a, b)``."""
        return Decisions(
            *(np.where(cond, x, y) for x, y in zip(a.fields(), b.fields(), strict=True))
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return np.shape(self.split)

    def as_array(self, out: np.ndarray | None = None) -> np.ndarray:
        """The fields stacked on a last axis, float64 ``[..., len(DECISION_FIELDS)]`` (the
        compiled step's packing)."""
        if out is None:
            out = np.empty((*self.shape, len(DECISION_FIELDS)))
        for k, a in enumerate(self.fields()):
            out[..., k] = a
        return out


assert tuple(f.name for f in dataclasses.fields(Decisions)) == _FIELD_NAMES, (
    "Decisions' attributes must be DECISION_FIELDS, in order"
)


# --- the step result --------------------------------------------------------------------


@dataclass
class StepResult:
    """Per-device physical outcome of one slot, arrays ``[E, N]`` (``team_reward``: ``[E]``)."""

    latency_s: np.ndarray  # 0 where no task
    head_s: np.ndarray  # device compute
    transfer_s: np.ndarray  # wireless + backhaul transfer, without round trips
    rtt_s: np.ndarray  # round trips
    tail_s: np.ndarray  # tail compute at the share the task got
    tail_work_s: np.ndarray  # the tail's work at a full share of the target (0 if none)
    wait_s: np.ndarray  # queue + device backlog + server backlog
    energy_j: np.ndarray  # device energy
    cost: np.ndarray  # per device, drops included
    bw_weight: np.ndarray  # applied
    cpu_weight: np.ndarray  # applied
    team_reward: np.ndarray  # [E] minus the mean cost over devices
    app: np.ndarray  # application of the decided task
    split: np.ndarray  # applied (after masking)
    target: np.ndarray  # applied (after masking)
    dropped: np.ndarray  # tasks dropped at arrival this slot
    has_task: np.ndarray  # a task was decided
    infeasible: np.ndarray  # a masked choice was taken
    deadline_miss: np.ndarray  # latency over the deadline


#: the packed array of each field other than float64: "i" int64, "b" bool
_RESULT_KIND = {
    **dict.fromkeys(("app", "split", "target", "dropped"), "i"),
    **dict.fromkeys(("has_task", "infeasible", "deadline_miss"), "b"),
}
_PER_ENV = ("team_reward",)  # [E], packed as column 0 of its row


#: rows after the result's own, per packed array: the next slot's pending view, which the
#: compiled step computes as it finishes a slot
NEXT_ROWS = {"f": ("next_wait",), "i": ("next_app", "next_row"), "b": ("next_has",)}
_KINDS = ("f", "i", "b")
_DTYPES = {"f": np.float64, "i": np.int64, "b": np.bool_}
_RESULT_FIELDS = dataclasses.fields(StepResult)

#: rows of the packed float64, int64 and bool arrays ``[rows, E, N]``
PACKED_ROWS: tuple[tuple[str, ...], ...] = tuple(
    tuple(f.name for f in _RESULT_FIELDS if _RESULT_KIND.get(f.name, "f") == k) + NEXT_ROWS[k]
    for k in _KINDS
)
#: name -> (packed array, row)
ROW: dict[str, tuple[int, int]] = {
    name: (a, r) for a, rows in enumerate(PACKED_ROWS) for r, name in enumerate(rows)
}
Packed = tuple[np.ndarray, np.ndarray, np.ndarray]


def packed_shapes(e: int, n: int) -> tuple[tuple[int, int, int], ...]:
    """Shapes of the three packed arrays for ``e`` environments of ``n`` devices."""
    return tuple((len(rows), e, n) for rows in PACKED_ROWS)


def empty_packed(e: int, n: int) -> Packed:
    """Three zeroed packed arrays."""
    return tuple(  # type: ignore[return-value]
        np.zeros(s, dtype=_DTYPES[k]) for s, k in zip(packed_shapes(e, n), _KINDS, strict=True)
    )


def unpack_result(packed: Packed) -> StepResult:
    """The :class:`StepResult` of a packed result (views, no copies)."""
    out = {}
    for f in _RESULT_FIELDS:
        a, r = ROW[f.name]
        out[f.name] = packed[a][r, :, 0] if f.name in _PER_ENV else packed[a][r]
    return StepResult(**out)


def pack_result(res: StepResult) -> Packed:
    """A :class:`StepResult` in the packed layout (copies; the inverse of
    :func:`unpack_result`, the ``next_*`` rows left zero)."""
    e, n = res.cost.shape
    packed = empty_packed(e, n)
    for f in _RESULT_FIELDS:
        a, r = ROW[f.name]
        if f.name in _PER_ENV:
            packed[a][r, :, 0] = getattr(res, f.name)
        else:
            packed[a][r] = getattr(res, f.name)
    return packed


# --- the core's static per-choice tables -----------------------------------------------

#: float columns of the per-choice table, by ``(device, app or none, split, target)``
CHOICE_FLOAT_COLUMNS = (
    "head_s",  # device compute
    "mbits",  # megabits sent over the air (0: all-local)
    "off",  # 1 if offloaded
    "not_off",  # 1 - off
    "work_s",  # tail work at a full share of the target
    "backhaul_s",  # wired backhaul transfer (cloud)
    "rtt_s",  # round trips
    "infeasible",  # 1 if a masked choice was taken (and replaced)
    "head_energy_j",  # device energy of the head
    "deadline_s",  # the task's deadline (1 where no task)
)
#: int columns: the applied split and target, the access point used, device * M + ap
CHOICE_INT_COLUMNS = ("split", "target", "ap", "device_ap")


def columns(names: tuple[str, ...]) -> SimpleNamespace:
    """Attribute access to the positions of ``names`` (``columns(("a", "b")).b == 1``)."""
    return SimpleNamespace(**{n: i for i, n in enumerate(names)})


#: positions of the choice tables' columns: ``CF.head_s``, ``CI.target``, ...
CF, CI = columns(CHOICE_FLOAT_COLUMNS), columns(CHOICE_INT_COLUMNS)
