"""The results store of ``benchmarks.quality`` is locked while a run records its row, so
that quality runs finishing side by side keep one another's rows."""

from __future__ import annotations

import contextlib
import fcntl
import json
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


def test_store_lock_excludes_other_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "results" / "quality.json"
    monkeypatch.setattr(quality, "STORE", store)
    lock = store.with_suffix(".lock")
    with quality.store_lock():
        assert lock.is_file()
        assert _try_lock(lock) == "held"
    assert _try_lock(lock) == "free"


def test_store_lock_is_released_when_the_body_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quality, "STORE", tmp_path / "quality.json")
    with pytest.raises(RuntimeError), quality.store_lock():
        raise RuntimeError("a failed record")
    with open(tmp_path / "quality.lock", "w") as f:  # would block forever if still held
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_the_printed_row_is_read_under_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``main`` reads its row back for the summary line while it holds the lock: another
    run's ``write_text`` (truncate, then write) cannot hand it half a file."""
    held = [False]

    class Store(type(Path())):  # type: ignore[misc]
        def read_text(self, *args, **kwargs):  # type: ignore[override]
            assert held[0], "the results store was read without its lock"
            return super().read_text(*args, **kwargs)

    @contextlib.contextmanager
    def lock():
        held[0] = True
        try:
            yield
        finally:
            held[0] = False

    store = Store(tmp_path / "quality.json")
    row = {"cost_per_slot": 0.1, "cost_per_slot_ci": 0.01}
    monkeypatch.setattr(quality, "STORE", store)
    monkeypatch.setattr(quality, "PAGE", tmp_path / "RESULTS.md")
    monkeypatch.setattr(quality, "store_lock", lock)
    monkeypatch.setattr(quality, "run_one", lambda *a, **k: {})
    monkeypatch.setattr(quality, "page", lambda: "")
    monkeypatch.setattr(
        quality,
        "record",
        lambda algo, sc, *a, **k: Path(store).write_text(json.dumps({sc: {"agents": {algo: row}}})),
    )
    quality.main(["--algos", "ppo", "--scenarios", "default", "--seeds", "0"])
    assert "ppo on default: 0.1000" in capsys.readouterr().out
