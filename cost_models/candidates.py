"""Candidate compression: keep the few split candidates that matter.

A network has dozens of topological-prefix candidates (ResNet50: 176), most of them useless:
cutting after a ReLU sends the same tensor as cutting before it, a cut inside a residual block
sends two tensors, and any candidate that needs more head latency *and* more bytes than
another is never the better choice, whatever the link. :func:`compress_candidates` keeps the
non-dominated ones, caps them, and always keeps both ends.

Rule
----
1. **Dominance.** Candidate ``j`` is dominated when another candidate ``i`` has head latency
   ``<=`` on every listed device class and bytes ``<=``, with at least one strict ``<``.
   Dominated candidates are dropped. Exact duplicates (equal on every coordinate) keep only
   the lowest index, and an interior candidate equal to one of the ends is dropped.
2. **Ends.** Candidate ``0`` (send the input) and ``K - 1`` (run all locally) are always
   kept, dominated or not.
3. **Cap.** If more than ``cap`` remain, the interior ones are chosen along the front by
   farthest-point (maximin) selection, starting from the two ends: repeatedly keep the
   front candidate whose distance to the nearest kept one is largest (ties: lowest index).
   Distances are Euclidean in normalised coordinates: each class's head latency divided by
   its range over the front, and ``log10(bytes)`` divided by its range (bytes span orders of
   magnitude, and transmission time scales with them relative to the link rate). The kept
   candidates thus cover the whole front, from the cheapest head to the fewest bytes, instead
   of clustering where candidates are dense.

>>> import numpy as np
>>> head = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])      # one device class
>>> sent = np.array([150e3, 800e3, 100e3, 100e3, 4e3])
>>> compress_candidates(head, sent, cap=8).tolist()  # 1 and 3 are dominated by 0 and 2
[0, 2, 4]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from edgesplit.cost_models.devices import DeviceClass
    from edgesplit.cost_models.network import NetworkProfile

__all__ = ["KeptCandidates", "compress_candidates", "keep_candidates", "pareto_mask"]


def _as_inputs(head_s: ArrayLike, bytes_: ArrayLike) -> tuple[NDArray[np.float64], NDArray]:
    head = np.asarray(head_s, dtype=np.float64)
    if head.ndim == 1:
        head = head[None, :]
    sent = np.asarray(bytes_, dtype=np.float64)
    if head.ndim != 2 or sent.ndim != 1 or head.shape[1] != sent.shape[0]:
        raise ValueError(
            f"head_s must be (classes, K) or (K,) and bytes_ (K,); got shapes "
            f"{np.shape(head_s)} and {np.shape(bytes_)}"
        )
    if sent.size == 0:
        raise ValueError("need at least one candidate")
    if not (np.all(np.isfinite(head)) and np.all(np.isfinite(sent))):
        raise ValueError("head_s and bytes_ must be finite")
    if np.any(sent < 0) or np.any(head < 0):
        raise ValueError("head_s and bytes_ must be non-negative")
    return head, sent


def pareto_mask(head_s: ArrayLike, bytes_: ArrayLike) -> NDArray[np.bool_]:
    """Which candidates no other candidate dominates (duplicates: lowest index only).

    Parameters
    ----------
    head_s
        Head latency, shape ``(classes, K)`` or ``(K,)``.
    bytes_
        Bytes sent, shape ``(K,)``.

    Returns
    -------
    ndarray of bool
        ``True`` for the candidates on the front.

    >>> pareto_mask([0.0, 1.0, 1.0, 2.0], [10.0, 5.0, 5.0, 7.0]).tolist()
    [True, True, False, False]
    """
    head, sent = _as_inputs(head_s, bytes_)
    points = np.vstack([head, sent[None, :]])  # (D, K): every coordinate, smaller is better
    le = np.all(points[:, :, None] <= points[:, None, :], axis=0)  # le[i, j]: i <= j everywhere
    lt = np.any(points[:, :, None] < points[:, None, :], axis=0)
    dominated = np.any(le & lt, axis=0)
    k = sent.size
    equal = le & le.T
    earlier_duplicate = np.any(equal & np.tri(k, k, -1, dtype=bool).T, axis=0)
    return ~(dominated | earlier_duplicate)


def compress_candidates(head_s: ArrayLike, bytes_: ArrayLike, cap: int) -> NDArray[np.intp]:
    """Indices of the candidates worth keeping, sorted.

    Parameters
    ----------
    head_s
        Head latency of every candidate on every listed device class, shape
        ``(classes, K)`` (or ``(K,)`` for one class), seconds.
    bytes_
        Bytes each candidate sends, shape ``(K,)``.
    cap
        Most candidates to keep (at least 2: the two ends).

    Returns
    -------
    ndarray of int
        Sorted indices: ``0`` and ``K - 1`` always, plus non-dominated interior
        candidates, at most ``cap`` in all (see the module docstring for the rule).

    Raises
    ------
    ValueError
        On mismatched shapes, negative or non-finite values, or ``cap < 2``.
    """
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 2:
        raise ValueError(f"cap must be an integer >= 2 (both ends are kept), got {cap!r}")
    head, sent = _as_inputs(head_s, bytes_)
    k = sent.size
    if k <= 2:
        return np.arange(k, dtype=np.intp)
    front = pareto_mask(head, sent)
    points = np.vstack([head, sent[None, :]])
    same_as_end = np.all(points == points[:, [0]], axis=0) | np.all(
        points == points[:, [-1]], axis=0
    )
    interior = np.flatnonzero((front & ~same_as_end)[1:-1]) + 1
    if interior.size + 2 <= cap:
        return np.concatenate([[0], interior, [k - 1]]).astype(np.intp)

    # farthest-point selection along the front in normalised coordinates
    members = np.concatenate([[0], interior, [k - 1]])
    coords = np.vstack([head[:, members], np.log10(np.maximum(sent[members], 1.0))[None, :]])
    span = coords.max(axis=1, keepdims=True) - coords.min(axis=1, keepdims=True)
    coords = (coords - coords.min(axis=1, keepdims=True)) / np.where(span > 0, span, 1.0)
    chosen = [0, members.size - 1]  # positions in `members`
    dist = np.minimum(
        np.linalg.norm(coords - coords[:, [0]], axis=0),
        np.linalg.norm(coords - coords[:, [-1]], axis=0),
    )
    dist[chosen] = -np.inf
    while len(chosen) < cap:
        best = int(np.argmax(dist))  # first maximum: lowest index on ties
        chosen.append(best)
        dist = np.minimum(dist, np.linalg.norm(coords - coords[:, [best]], axis=0))
        dist[chosen] = -np.inf
    return np.sort(members[chosen]).astype(np.intp)


class KeptCandidates:
    """The candidates a network keeps for some device classes (:func:`keep_candidates`):
    ``indices`` (profile order), and, for every candidate of the profile, the head latency
    on each class (``head_s[class name]``) and the bytes sent (``bytes_``)."""

    def __init__(
        self, indices: NDArray[np.intp], head_s: dict[str, NDArray[np.float64]], bytes_: NDArray
    ) -> None:
        self.indices, self.head_s, self.bytes_ = indices, head_s, bytes_


def keep_candidates(
    profile: NetworkProfile,
    device_classes: Sequence[DeviceClass],
    wire_bytes_per_element: float,
    input_compression: float,
    cap: int,
) -> KeptCandidates:
    """The rule the simulator applies to a network (and the runtime partitions by): compress
    its candidates against the head latency on every listed device class (measured where the
    profile has the class, roofline otherwise) and the bytes each sends on the wire.

    >>> from edgesplit.cost_models.devices import load_devices
    >>> from edgesplit.cost_models.network import load_network
    >>> kept = keep_candidates(load_network("resnet18"), [load_devices()["rpi4"]], 4.0, 1.0, 8)
    >>> int(kept.indices[0]), sorted(kept.head_s)
    (0, ['rpi4'])
    """
    from edgesplit.cost_models.devices import node_latency

    classes = {c.name: c for c in device_classes}
    if not classes:
        raise ValueError("device_classes: at least one class is needed")
    names = sorted(classes)
    head = {n: profile.split_latency(node_latency(profile, classes[n]))[0] for n in names}
    sent = profile.candidate_bytes(
        wire_bytes_per_element=wire_bytes_per_element, input_compression=input_compression
    )
    keep = compress_candidates(np.stack([head[n] for n in names]), sent, cap)
    return KeptCandidates(keep, head, sent)
