"""Shared test set-up: one torch thread (fast and quiet on a shared 2-core machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

try:  # torch is optional for the environment tests
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

REPO = Path(__file__).resolve().parents[1]
SHARED_TRACES = REPO.parent / "shared" / "data" / "traces"


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    """../shared/data/traces (public reference traces), skipping when absent."""
    if not SHARED_TRACES.is_dir():
        pytest.skip("../shared/data/traces is not present")
    return SHARED_TRACES
