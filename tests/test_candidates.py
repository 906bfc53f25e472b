"""Candidate compression: dominance, the cap, both ends, spread along the front."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgesplit.cost_models.candidates import compress_candidates, pareto_mask
from edgesplit.cost_models.network import load_network

torch.set_num_threads(1)


def strictly_dominated(head: np.ndarray, sent: np.ndarray, j: int) -> bool:
    """Brute force: does any candidate beat ``j`` weakly everywhere and strictly somewhere?"""
    for i in range(sent.size):
        le = np.all(head[:, i] <= head[:, j]) and sent[i] <= sent[j]
        lt = np.any(head[:, i] < head[:, j]) or sent[i] < sent[j]
        if le and lt:
            return True
    return False


def test_drops_dominated_and_keeps_ends() -> None:
    head = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    sent = np.array([150.0, 800.0, 100.0, 100.0, 4.0, 50.0])
    # 1 (more of both than 0), 3 (equal bytes, slower than 2) and 5 (slower and bigger
    # than 4) are dominated; 5 is the last candidate and is kept anyway
    assert compress_candidates(head, sent, cap=10).tolist() == [0, 2, 4, 5]


def test_cap_keeps_both_ends() -> None:
    k = 30
    head = np.linspace(0, 1, k)
    sent = np.linspace(1000, 10, k)  # every candidate on the front
    for cap in range(2, k + 3):
        kept = compress_candidates(head, sent, cap)
        assert kept[0] == 0 and kept[-1] == k - 1
        assert len(kept) == min(cap, k)
        assert np.all(np.diff(kept) > 0)


def test_cap_spreads_along_the_front() -> None:
    """Dense candidates in one region do not crowd out the rest of the front."""
    head = np.concatenate([np.linspace(0.0, 0.01, 40), np.linspace(0.5, 1.0, 5)])
    sent = np.logspace(6, 3, head.size)
    kept = compress_candidates(head, sent, cap=6)
    assert kept.size == 6
    assert np.any(kept >= 40), "the sparse, slow end of the front is represented"
    assert np.any((kept > 0) & (kept < 40)), "and the dense, fast end"


def test_every_class_counts() -> None:
    """A candidate slower on one class but faster on another is not dominated."""
    head = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 1.0, 3.0]])
    sent = np.array([100.0, 50.0, 50.0, 1.0])
    assert compress_candidates(head, sent, cap=10).tolist() == [0, 1, 2, 3]
    assert compress_candidates(head[0], sent, cap=10).tolist() == [0, 1, 3]


def test_duplicates_keep_the_lowest_index() -> None:
    assert pareto_mask([0.0, 1.0, 1.0, 2.0], [9.0, 5.0, 5.0, 1.0]).tolist() == [
        True, True, False, True,
    ]  # fmt: skip


def test_tiny_inputs() -> None:
    assert compress_candidates([0.0], [5.0], cap=2).tolist() == [0]
    assert compress_candidates([0.0, 1.0], [5.0, 9.0], cap=2).tolist() == [0, 1]


@pytest.mark.parametrize(
    ("head", "sent", "cap", "match"),
    [
        ([0.0, 1.0], [1.0, 2.0], 1, "cap"),
        ([0.0, 1.0], [1.0, 2.0], 2.5, "cap"),
        ([0.0, 1.0], [1.0], 4, "shapes"),
        ([0.0, np.nan], [1.0, 2.0], 4, "finite"),
        ([0.0, 1.0], [1.0, -2.0], 4, "non-negative"),
    ],
)
def test_bad_arguments(head: list[float], sent: list[float], cap: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        compress_candidates(head, sent, cap)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2", "vgg16", "alexnet"])
def test_shipped_profiles_compress(name: str) -> None:
    profile = load_network(name)
    head, _ = profile.split_latency(profile.measurements["x86_cpu_1t"].median_s)
    sent = profile.candidate_bytes()
    kept = compress_candidates(head, sent, cap=8)
    k = len(profile.candidates)
    assert kept[0] == 0 and kept[-1] == k - 1 and 2 <= kept.size <= 8
    for j in kept[1:-1]:
        assert not strictly_dominated(head[None, :], sent, int(j))


@st.composite
def problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    k = draw(st.integers(1, 40))
    c = draw(st.integers(1, 3))
    # small integer grids make ties and duplicates common
    steps = draw(hnp.arrays(np.int64, (c, k), elements=st.integers(0, 4)))
    if draw(st.booleans()):
        head = np.cumsum(steps, axis=1).astype(float)  # head latency grows along the graph
        head[:, 0] = 0.0
    else:
        head = steps.astype(float)
    sent = draw(hnp.arrays(np.int64, (k,), elements=st.integers(0, 12))).astype(float)
    cap = draw(st.integers(2, 12))
    return head, sent, cap


@settings(max_examples=300, deadline=None)
@given(problems())
def test_compression_properties(problem: tuple[np.ndarray, np.ndarray, int]) -> None:
    head, sent, cap = problem
    k = sent.size
    kept = compress_candidates(head, sent, cap)
    assert kept.dtype.kind == "i"
    assert np.all(np.diff(kept) > 0) and kept[0] == 0 and kept[-1] == k - 1
    assert kept.size <= max(cap, 1) and kept.size == len(set(kept.tolist()))
    interior = [int(j) for j in kept if 0 < j < k - 1]
    for j in interior:
        assert not strictly_dominated(head, sent, j), j
    points = {(*head[:, j], sent[j]) for j in interior}
    assert len(points) == len(interior), "no two kept interior candidates are duplicates"
    # every non-dominated point is represented when the cap allows it
    ends = {(*head[:, 0], sent[0]), (*head[:, -1], sent[-1])}
    front = {
        (*head[:, j], sent[j]) for j in range(1, k - 1) if not strictly_dominated(head, sent, j)
    } - ends
    assert not points & ends, "an interior candidate equal to an end is redundant"
    if len(front) + 2 <= cap:
        assert points == front
    else:
        assert kept.size == cap
