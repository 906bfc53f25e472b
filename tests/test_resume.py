"""Crash-safe training: ``train.py`` killed at named points (``EDGESPLIT_CRASH_AT``: an
``os._exit`` as abrupt as ``kill -9``), between the parts of a checkpoint among them, then run
again; the run must go on from a complete, consistent checkpoint, its TensorBoard curves must
never go backwards and ``summary.json`` must add up over the segments.

Each case is three short subprocesses of ``train.py`` (tiny networks, 200 steps, one-device
scenario) on PPO, DQN and MADDPG.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgesplit.agents.checkpoint import CRASH_ENV, CRASH_EXIT_CODE, CheckpointError, CheckpointStore

REPO = Path(__file__).resolve().parents[1]
COMMON = [
    "env=single",
    "env.max_cycles=20",
    "n_envs=1",
    "algo.n_envs=null",
    "eval.episodes=1",
    "eval.baselines=[local]",
]
# algo -> (overrides, total steps after learn, checkpoint steps, two crash points)
CASES = {
    "ppo": (
        [
            "total_timesteps=192",
            "checkpoint_every=64",
            "algo.kwargs.n_steps=32",
            "algo.kwargs.batch_size=32",
            "algo.kwargs.n_epochs=2",
            "algo.kwargs.policy_kwargs.hidden=8",
            "algo.warm_start.slots=4",
            "algo.warm_start.epochs=1",
        ],
        192,
        [64, 128, 192],
        # between the model and the rest of the 2nd checkpoint; during evaluation; after
        # the export, before summary.json
        ["checkpoint.model:2", "train.evaluated", "train.exported"],
    ),
    "dqn": (
        [
            "total_timesteps=200",
            "checkpoint_every=60",
            "algo.kwargs.learning_starts=50",
            "algo.kwargs.buffer_size=1000",
            "algo.kwargs.batch_size=32",
            "algo.kwargs.policy_kwargs.net_arch=[16]",
        ],
        200,
        [60, 120, 180],
        # after the replay buffer, before state.json; then after learning, before the final
        # checkpoint
        ["checkpoint.replay:2", "train.learned"],
    ),
    "maddpg": (
        [
            "total_timesteps=200",
            "checkpoint_every=60",
            "algo.kwargs.learning_starts=50",
            "algo.kwargs.buffer_size=1000",
            "algo.kwargs.batch_size=32",
            "algo.kwargs.hidden=[16]",
        ],
        200,
        [60, 120, 180],
        # everything written, not yet renamed; then renamed, the older one not yet removed
        ["checkpoint.written:2", "checkpoint.renamed:2"],
    ),
}


def _train(run: Path, algo: str, overrides: list[str], crash: str | None) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = crash
    cmd = [sys.executable, "train.py", f"algo={algo}", *COMMON, *overrides, f"hydra.run.dir={run}"]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if p.returncode not in (0, CRASH_EXIT_CODE):
        raise AssertionError(f"train.py failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p.returncode


def _replay_size(ckpt: Path) -> int | None:
    """Transitions in a checkpoint's replay buffer (None without one)."""
    if (ckpt / "replay_buffer.npz").is_file():  # MADDPG
        with np.load(ckpt / "replay_buffer.npz") as z:
            return len(z["rew"])
    if (ckpt / "replay_buffer.pkl").is_file():  # SB3 (written by SB3 itself, in our test)
        with (ckpt / "replay_buffer.pkl").open("rb") as f:
            buf = pickle.load(f)  # a file this test's own run wrote
        return buf.buffer_size if buf.full else buf.pos
    return None


def _check_checkpoints(run: Path, step_after_crash: int) -> None:
    """The newest complete checkpoint is the expected one and holds together: every file
    state.json lists is there with its sha256, and the replay buffer has exactly one
    transition per step (not a stale one from an earlier checkpoint)."""
    store = CheckpointStore(run)
    ckpt = store.latest()
    assert ckpt is not None
    state = store.read_state(ckpt)
    assert state["num_timesteps"] == step_after_crash, (ckpt, state["num_timesteps"])
    n = _replay_size(ckpt)
    assert n is None or n == step_after_crash
    segs = state["segments"]
    assert segs[0]["from_step"] == 0 and segs[-1]["to_step"] == step_after_crash


def _scalars(folder: Path) -> dict[str, list[int]]:
    """Steps of every scalar as TensorBoard shows them (superseded points purged)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [e.step for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def _raw_points(folder: Path) -> tuple[list[tuple[str, int]], list[int]]:
    """((tag, step) of every scalar event on disk, steps of the purge markers)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    points, purges = [], []
    for f in sorted(folder.glob("events.out.tfevents.*")):
        for ev in EventFileLoader(str(f)).Load():
            if ev.HasField("summary"):
                points += [(v.tag, ev.step) for v in ev.summary.value]
            elif ev.HasField("session_log") and ev.session_log.status == 1:  # START
                purges.append(ev.step)
    return points, purges


@pytest.mark.slow
@pytest.mark.parametrize("algo", sorted(CASES))
def test_killed_training_resumes_from_a_consistent_checkpoint(algo: str, tmp_path: Path) -> None:
    overrides, total, ckpts, crashes = CASES[algo]
    crash1, crash2 = crashes[0], crashes[-1]
    run = tmp_path / "run"
    expected = {  # the newest complete checkpoint after each crash
        "checkpoint.model:2": ckpts[0],
        "checkpoint.replay:2": ckpts[0],
        "checkpoint.written:2": ckpts[0],
        "checkpoint.renamed:2": ckpts[2],
        "train.learned": ckpts[2],
        "train.evaluated": total,
        "train.exported": total,
    }

    assert _train(run, algo, overrides, crash1) == CRASH_EXIT_CODE
    _check_checkpoints(run, expected[crash1])
    first_resume = expected[crash1]
    for crash in crashes[1:]:
        assert _train(run, algo, overrides, crash) == CRASH_EXIT_CODE
        _check_checkpoints(run, expected[crash])
        assert not (run / "summary.json").exists()  # no run got that far
    assert _train(run, algo, overrides, None) == 0

    # one complete checkpoint left, at the end of training; nothing half-written
    store = CheckpointStore(run)
    assert [p.name.split("-step-")[1] for p in store.complete()] == [str(total)]
    assert not [p for p in store.root.iterdir() if p.name.endswith(".tmp")]
    _check_checkpoints(run, total)

    # summary.json adds up over the segments, which join end to end from 0 to the total
    s = json.loads((run / "summary.json").read_text())
    segs = s["segments"]
    assert s["total_timesteps"] == total
    assert segs[0]["from_step"] == 0 and segs[-1]["to_step"] == total
    assert all(a["to_step"] == b["from_step"] for a, b in itertools.pairwise(segs))
    assert all(g["to_step"] > g["from_step"] and g["train_seconds"] > 0 for g in segs)
    assert s["train_seconds"] == pytest.approx(sum(g["train_seconds"] for g in segs), abs=1e-6)
    assert segs[0]["to_step"] == first_resume  # the killed segment counts up to its checkpoint
    assert s["resumed_from"] == expected[crash2]
    manifest = json.loads((run / "policy" / "policy.json").read_text())
    assert manifest["training"]["segments"] == segs

    # TensorBoard: the killed segment had written past its checkpoint (raw files), and what
    # TensorBoard shows goes forward only, up to the end of training
    folders = {f.parent for f in (run / "tb").rglob("events.out.tfevents.*")}
    train_folders = [f for f in folders if f.name != "eval"]
    assert len(train_folders) == 1
    raw, purges = _raw_points(train_folders[0])
    assert first_resume in purges
    kept = {(t, st) for t, steps in _scalars(train_folders[0]).items() for st in steps}
    superseded = [(t, st) for t, st in raw if (t, st) not in kept] + [
        p for p in set(raw) if raw.count(p) > 1
    ]
    assert superseded  # the killed segment had written points that the resumed one redid
    assert all(st >= first_resume for _, st in superseded)
    shown = {}
    for f in folders:
        shown.update({f"{f.name}/{t}": st for t, st in _scalars(f).items()})
    assert shown
    for tag, steps in shown.items():
        assert steps == sorted(set(steps)), (tag, steps)  # strictly increasing
        assert steps[-1] <= total
    assert any("ep_rew_mean" in t for t in shown)


def test_a_changed_checkpoint_file_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints" / "00000001-step-10"
    ckpt.mkdir(parents=True)
    (ckpt / "model.pt").write_bytes(b"weights")
    import hashlib

    digest = hashlib.sha256(b"weights").hexdigest()
    state = {"format": "edgesplit-checkpoint", "version": 1, "num_timesteps": 10}
    state["files"] = {"model.pt": {"bytes": 7, "sha256": digest}}
    (ckpt / "state.json").write_text(json.dumps(state))
    (tmp_path / "checkpoints" / "00000002-step-20.tmp").mkdir()  # unfinished: never latest
    store = CheckpointStore(tmp_path)
    assert store.latest() == ckpt and store.read_state(ckpt)["num_timesteps"] == 10
    (ckpt / "model.pt").write_bytes(b"weightz")
    with pytest.raises(CheckpointError, match=r"model\.pt.*sha256"):
        store.read_state(ckpt)
    (ckpt / "model.pt").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        store.read_state(ckpt)
    store.clean()
    assert [p.name for p in store.root.iterdir()] == [ckpt.name]
    (ckpt / "model.pt").write_bytes(b"weights")
    with pytest.raises(CheckpointError, match=r"'algo' = None, this run's is 'ppo'"):
        store.restore(ckpt, lambda d: pytest.fail("loaded"), algo="ppo")


def test_resume_restores_every_generator(tmp_path: Path) -> None:
    """What a checkpoint restores: the global generators draw on as they would have, the
    SB3 action space's generator is the saved one, and each training env starts its next
    episode from its saved generator (one draw on), not from the run's seed."""
    import random

    import torch

    from edgesplit.agents.checkpoint import global_rng_state, set_global_rng_state
    from edgesplit.agents.registry import get_agent

    spec = get_agent("ddpg")  # an SB3 off-policy agent (DQN's own: tests/test_dqn.py)
    kw = {"scenario": "single", "decision_mode": "joint", "action_type": "continuous"}
    kw["max_cycles"] = 10
    algo = {"policy": "MlpPolicy", "kwargs": {"learning_starts": 10, "buffer_size": 500}}
    agent = spec.build(algo, kw, seed=3, n_envs=2)
    agent.learn(40, checkpoint=lambda: None, checkpoint_every=100)
    agent.save(tmp_path)
    saved, glob = agent.rng_state(), global_rng_state()
    expect = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    back = spec.load(tmp_path, kw, training=True, seed=3, n_envs=2)  # reseeds everything
    back.set_rng_state(saved)
    set_global_rng_state(glob)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expect  # noqa: NPY002
    assert back.model.action_space.np_random.bit_generator.state == saved["action_space"]
    for g, s in zip(back.venv.get_attr("np_random"), saved["envs"], strict=True):
        ref = np.random.Generator(np.random.PCG64())
        ref.bit_generator.state = s
        ref.integers(0, 2**63, dtype=np.int64)  # the reset that starts the next episode
        assert g.bit_generator.state == ref.bit_generator.state
    assert saved["envs"][0] != saved["envs"][1]
    agent.close()
    back.close()


def test_resuming_with_other_learning_settings_is_refused(tmp_path: Path) -> None:
    """A rerun of a run directory whose checkpoint was trained with another learning rate
    (or scenario, seed, number of envs) would silently keep the old one: it is refused,
    naming the key and both values; the budget may change."""
    run = tmp_path / "run"
    few = ["total_timesteps=128", "checkpoint_every=64", "algo.kwargs.n_steps=64"]
    assert _train(run, "ppo", few, None) == 0
    more = [*few[1:], "total_timesteps=256"]
    assert _train(run, "ppo", more, None) == 0  # a larger budget resumes
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "train.py", "algo=ppo", *COMMON, *more, "total_timesteps=320",
           "algo.kwargs.learning_rate=0.01", f"hydra.run.dir={run}"]  # fmt: skip
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    assert "algo.kwargs.learning_rate = 0.0003" in p.stderr and "0.01" in p.stderr, p.stderr[-800:]
