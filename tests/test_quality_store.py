"""The results store of ``benchmarks.quality`` is locked while a run records its row, so
that quality runs finishing side by side keep one another's rows."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import quality


def _try_lock(path: Path) -> str:
    """Whether another process can take the lock file now (non-blocking)."""
    code = (
        "import fcntl, sys\n"
        f"f = open({str(path)!r}, 'w')\n"
        "try:\n"
        "    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "    print('free')\n"
        "except BlockingIOError:\n"
        "    print('held')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def teststore_lock_excludes_other_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "results" / "quality.json"
    monkeypatch.setattr(quality, "STORE", store)
    lock = store.with_suffix(".lock")
    with quality.store_lock():
        assert lock.is_file()
        assert _try_lock(lock) == "held"
    assert _try_lock(lock) == "free"


def teststore_lock_is_released_when_the_body_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quality, "STORE", tmp_path / "quality.json")
    with pytest.raises(RuntimeError), quality.store_lock():
        raise RuntimeError("a failed record")
    with open(tmp_path / "quality.lock", "w") as f:  # would block forever if still held
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
