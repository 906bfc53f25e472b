"""The MADDPG speed benchmark trains under the allocator setting ``train()`` applies
(:func:`edgesplit.agents.allocator.keep_freed_memory`), set before anything is built or
timed, and says in its table whether the setting was taken."""

from __future__ import annotations

import pytest

from benchmarks import train_speed_maddpg as bench


def test_the_benchmark_sets_the_allocator_before_it_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    published: list[str] = []
    monkeypatch.setattr(bench, "keep_freed_memory", lambda: calls.append("allocator") or True)

    def env_rate(*a, **k) -> tuple[float, float]:
        calls.append("env")
        return 1000.0, 2000.0

    def rates(*a, **k) -> dict[str, tuple[float, float]]:
        calls.append("maddpg")
        return {"MADDPG phase": (500.0, 1000.0)}

    monkeypatch.setattr(bench, "random_masked_rate", env_rate)
    monkeypatch.setattr(bench, "maddpg_rates", rates)
    monkeypatch.setattr(bench, "publish", lambda section, write: published.append(section))
    bench.main(["--steps", "64"])
    assert calls == ["allocator", "env", "maddpg"]
    assert "glibc allocator setting of `train()` taken" in published[0]
