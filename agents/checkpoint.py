"""Crash-safe checkpoints of a training run: model, replay buffer, random-number state and
step counters written as one unit.

A checkpoint is a directory ``<run>/checkpoints/<k>-step-<n>/`` (the k-th checkpoint of the
run, at environment step n) holding::

    model.zip | model.pt      the agent's weights, optimiser states and counters
    replay_buffer.*           off-policy agents' replay buffer
    state.json                step count, training segments, every RNG state, and the size
                              and sha256 of each file above (written last)

It is written under ``<k>-step-<n>.tmp/`` and renamed to ``<k>-step-<n>/`` in one atomic rename
(after the files and the folder are fsynced), so a crash at any point leaves either the whole
new checkpoint or none of it: :meth:`CheckpointStore.latest` only ever sees complete ones.
Older checkpoints are removed after the rename; a crash before that leaves two, and the newest
(highest k) wins.
Unfinished ``.tmp`` folders are removed when training starts again.

The random-number state is Python's ``random``, numpy's global generator, torch's CPU
generator, and the agent's own (:meth:`~edgesplit.agents.protocol.Agent.rng_state`: SB3's
action-space and environment generators, MADDPG's generator).

For the crash tests, :func:`crash_point` ends the process (``os._exit``) at a named point when
the environment variable ``EDGESPLIT_CRASH_AT`` names it (``point`` or ``point:k``, the k-th
time the point is reached); unset, it does nothing.

>>> import tempfile
>>> store = CheckpointStore(tempfile.mkdtemp())
>>> store.latest() is None
True
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from edgesplit.scheduler.policy import file_sha256

if TYPE_CHECKING:  # pragma: no cover
    from .protocol import Agent

__all__ = [
    "CRASH_ENV",
    "CRASH_EXIT_CODE",
    "CheckpointError",
    "CheckpointStore",
    "crash_point",
    "global_rng_state",
    "set_global_rng_state",
]

CRASH_ENV = "EDGESPLIT_CRASH_AT"
CRASH_EXIT_CODE = 87
FORMAT = "edgesplit-checkpoint"
VERSION = 1
_reached: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """End the process at once (``os._exit``, no clean-up, as a ``kill -9`` would) if
    ``$EDGESPLIT_CRASH_AT`` is ``name`` or ``name:k`` and this is the k-th time ``name`` is
    reached in this process; otherwise do nothing."""
    want = os.environ.get(CRASH_ENV)
    if not want:
        return
    point, _, k = want.partition(":")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] == (int(k) if k else 1):
        os._exit(CRASH_EXIT_CODE)


class CheckpointError(RuntimeError):
    """A checkpoint that does not hold together (a file missing or changed since written)."""


def global_rng_state() -> dict[str, Any]:
    """Python's, numpy's (global) and torch's (CPU) random-number states, as JSON values."""
    version, internal, gauss = random.getstate()
    # the legacy global generator is the one SB3's replay buffers sample from
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`global_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    keys = np.asarray(keys, dtype=np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))  # noqa: NPY002
    raw = np.frombuffer(base64.b64decode(state["torch"]), dtype=np.uint8).copy()
    torch.set_rng_state(torch.from_numpy(raw))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointStore:
    """The checkpoints of one run directory (``<run>/checkpoints``)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.root = Path(run_dir) / "checkpoints"

    def _entries(self) -> list[tuple[int, Path]]:
        if not self.root.is_dir():
            return []
        out = []
        for p in self.root.iterdir():
            k, sep, _ = p.name.partition("-step-")
            if sep and k.isdigit() and p.is_dir():
                out.append((int(k), p))
        return sorted(out)

    def complete(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        return [p for _, p in self._entries() if not p.name.endswith(".tmp")]

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or None."""
        done = self.complete()
        return done[-1] if done else None

    def clean(self) -> None:
        """Remove unfinished (``.tmp``) checkpoints and every complete one but the newest."""
        if not self.root.is_dir():
            return
        for p in self.root.iterdir():
            if p.name.endswith(".tmp"):
                shutil.rmtree(p, ignore_errors=True)
        for p in self.complete()[:-1]:
            shutil.rmtree(p, ignore_errors=True)

    def clear(self) -> None:
        """Remove every checkpoint (a run started afresh with ``resume=false``)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def save(self, agent: Agent, extra: dict[str, Any]) -> Path:
        """Write ``agent`` (model, replay buffer, RNG states, step count) and ``extra`` (JSON
        values: the training segments) as one checkpoint; returns its directory."""
        step = agent.num_timesteps
        entries = self._entries()
        k = entries[-1][0] + 1 if entries else 1
        final = self.root / f"{k:08d}-step-{step}"
        tmp = final.with_name(final.name + ".tmp")
        tmp.mkdir(parents=True)
        agent.save(tmp)
        crash_point("checkpoint.model")
        agent.save_replay_buffer(tmp)
        crash_point("checkpoint.replay")
        files = {}
        for p in sorted(tmp.iterdir()):
            _fsync(p)
            files[p.name] = {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
        state = {
            "format": FORMAT,
            "version": VERSION,
            "algo": agent.spec.name,
            "num_timesteps": step,
            "files": files,
            "rng": {"global": global_rng_state(), "agent": agent.rng_state()},
            **extra,
        }
        (tmp / "state.json").write_text(json.dumps(state))
        _fsync(tmp / "state.json")
        _fsync(tmp)
        crash_point("checkpoint.written")
        os.rename(tmp, final)  # the one step that publishes the checkpoint
        _fsync(self.root)
        crash_point("checkpoint.renamed")
        for p in self.complete():
            if p != final:
                shutil.rmtree(p, ignore_errors=True)
        return final

    @staticmethod
    def read_state(ckpt: Path) -> dict[str, Any]:
        """``state.json`` of ``ckpt``, after checking every file it lists (size and sha256)."""
        try:
            state = json.loads((ckpt / "state.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{ckpt}: state.json unreadable: {e}") from e
        if state.get("format") != FORMAT or state.get("version") != VERSION:
            raise CheckpointError(
                f"{ckpt}/state.json: field 'format'/'version' = "
                f"{state.get('format')!r}/{state.get('version')!r}: expected {FORMAT!r}/{VERSION}"
            )
        for name, meta in state["files"].items():
            p = ckpt / name
            if not p.is_file():
                raise CheckpointError(f"{ckpt}: file {name!r} listed in state.json is missing")
            if p.stat().st_size != meta["bytes"] or file_sha256(p) != meta["sha256"]:
                raise CheckpointError(f"{ckpt}: file {name!r} differs from state.json's sha256")
        return state

    def restore(
        self,
        ckpt: Path,
        load: Callable[[Path], Agent],
        algo: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> tuple[Agent, dict[str, Any]]:
        """Load the agent from ``ckpt`` (``load(ckpt)``), check its algorithm (``algo``), the
        settings that shape learning (``config``, as saved under ``"config"``) and step
        count against the checkpoint's, and restore every RNG state; returns the agent and
        ``state.json``."""
        state = self.read_state(ckpt)
        if algo is not None and state.get("algo") != algo:
            raise CheckpointError(
                f"{ckpt}: state.json's 'algo' = {state.get('algo')!r}, this run's is {algo!r} "
                "(another run's directory? resume=false starts afresh)"
            )
        if config is not None and "config" in state:
            diff = first_difference(state["config"], config)
            if diff is not None:
                key, was, now = diff
                raise CheckpointError(
                    f"{ckpt}: the checkpoint was trained with {key} = {was!r}, this run asks "
                    f"for {now!r}: resuming would keep the old setting (resume=false starts "
                    "afresh, or use another run directory)"
                )
        agent = load(ckpt)
        if agent.num_timesteps != int(state["num_timesteps"]):
            raise CheckpointError(
                f"{ckpt}: the model is at step {agent.num_timesteps}, state.json's "
                f"'num_timesteps' = {state['num_timesteps']}"
            )
        agent.set_rng_state(state["rng"]["agent"])
        set_global_rng_state(state["rng"]["global"])  # after loading, which reseeds them
        return agent, state


def first_difference(a: Any, b: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """The first (dotted key, a's value, b's value) where two JSON values differ, or None.

    >>> first_difference({"algo": {"kwargs": {"lr": 1}}}, {"algo": {"kwargs": {"lr": 2}}})
    ('algo.kwargs.lr', 1, 2)
    """
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            sub = f"{key}.{k}" if key else str(k)
            if k not in a or k not in b:
                return sub, a.get(k), b.get(k)
            d = first_difference(a[k], b[k], sub)
            if d is not None:
                return d
        return None
    return None if a == b else (key or "(config)", a, b)
