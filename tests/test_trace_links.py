"""Trace-driven links of a scenario: the ``traces`` directory and its ``trace_links``.

The shipped ``trace_driven`` scenario replays the package's synthetic traces; a scenario
pointed at ``../shared/data/traces`` (the public HSDPA logs, beside the repository; CI's
clean clone may lack them) must make the environment see the traces' rates.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgesplit.cost_models.links import (
    FLOOR_MBPS,
    default_trace_dir,
    load_trace,
    set_stats,
    trace_files,
)
from edgesplit.envs.vector_env import SplitOffloadVectorEnv
from edgesplit.sim.core import Core
from edgesplit.sim.scenario import ScenarioError, load_scenario
from edgesplit.sim.schema import Decisions
from edgesplit.sim.tables import build


def _scenario(**changes) -> dict:
    d = load_scenario("trace_driven").to_dict()
    d.update(changes)
    return d


def _grids(paths, slot_s: float, scale: float) -> list[np.ndarray]:
    """Each trace on the slot grid, as docs/links.md specifies the replay."""
    return [np.maximum(load_trace(p).resample(slot_s) * scale, FLOOR_MBPS) for p in paths]


def _trace_of(seq: np.ndarray, grids: list[np.ndarray]) -> tuple[int, int] | None:
    """(trace, start slot) of a trace whose slots, from that start and wrapping, are exactly
    ``seq``; None when no trace replays it."""
    t = np.arange(seq.size)
    for j, g in enumerate(grids):
        for p in np.flatnonzero(g == seq[0]):
            if np.array_equal(g.take((p + t) % g.size), seq):
                return j, int(p)
    return None


# ---------------------------------------------------------------------------- the scenario


def test_shipped_trace_driven_replays_the_package_traces() -> None:
    sc = load_scenario("trace_driven")
    (tl,) = sc.trace_links
    assert sc.traces is None and tl.files is None
    assert [Path(p) for p in tl.paths] == trace_files(default_trace_dir())
    assert len(tl.paths) == 4
    ta, ph = build(sc)
    lc = ph.link_pairs[tl.name][0]
    assert lc.kind == "trace" and lc.rtt_s == tl.rtt_s
    # measured over the files, as the catalogue states for the same four traces
    assert lc.mean_mbps == pytest.approx(1.273, abs=5e-4)
    assert lc.sd_mbps == pytest.approx(1.094, abs=5e-4)
    assert ta.rate_scale_mbps == pytest.approx(lc.mean_mbps)
    assert load_scenario(sc.to_dict()).trace_links == sc.trace_links  # round trip


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_env_rates_replay_the_package_traces(backend: str) -> None:
    """Every link's rate, slot after slot, is one of the traces from some start slot; the
    trace and the start are drawn from the episode's key (the same key, the same rates)."""
    sc = load_scenario("trace_driven")
    grids = _grids(sc.trace_links[0].paths, sc.slot_s, sc.trace_links[0].scale)
    e, slots = 8, 120
    runs = []
    for _ in range(2):
        core = Core(sc, e, backend=backend)
        core.reset(np.arange(e, dtype=np.uint64) + np.uint64(5))
        dec = Decisions.filled((e, sc.n_devices))
        rates = [core.state.rates[:, :, 0].copy()]
        for _ in range(slots - 1):
            core.step(dec)
            rates.append(core.state.rates[:, :, 0].copy())
        runs.append(np.stack(rates, axis=-1))  # [E, N, T]
    np.testing.assert_array_equal(runs[0], runs[1])
    picks = [_trace_of(seq, grids) for seq in runs[0].reshape(-1, slots)]
    assert None not in picks
    assert len({j for j, _ in picks}) == len(grids)  # 48 links: every trace is used
    assert len({p for _, p in picks}) > 40  # and started at different slots


def test_relative_traces_directory_resolves_against_the_scenario_file(tmp_path: Path) -> None:
    sub = tmp_path / "mine"
    sub.mkdir()
    (sub / "README.md").write_text("not a trace\n")
    (sub / "a.log").write_text("0\t2.0\n1\t4.0\n")
    (sub / "b.log").write_text("0\t1.0\n1\t1.0\n")
    (sub / "c.tsv").write_text("0\t9.0\n1\t9.0\n")
    d = _scenario(traces="mine")
    d["trace_links"] = {"up": {"files": "*.log", "rtt_s": 0.05, "scale": 2.0}}
    for g in d["devices"]:
        g["links"] = {"edge0": "up"}
    f = tmp_path / "sc.yaml"
    f.write_text(yaml.safe_dump(d))
    sc = load_scenario(f)
    assert sc.traces == str(sub.resolve())
    assert [Path(p).name for p in sc.trace_links[0].paths] == ["a.log", "b.log"]
    lc = build(sc)[1].link_pairs["up"][0]
    assert lc.mean_mbps == pytest.approx(2.0 * (3.0 + 1.0) / 2)  # each trace equally likely
    assert lc.rtt_s == 0.05
    core = Core(sc, 16, backend="numpy")
    core.reset(np.arange(16, dtype=np.uint64))
    assert set(np.unique(core.state.rates[:, :, 0])) <= {2.0, 4.0, 8.0}


# ---------------------------------------------------------------------------- bad input


def _bad_dir(tmp_path: Path, kind: str) -> Path:
    d = tmp_path / "traces"
    if kind == "missing":
        return d
    d.mkdir()
    (d / "README.md").write_text("# only documentation here\n")
    if kind == "malformed":
        (d / "ok.log").write_text("0\t1.0\n1\t2.0\n")
        (d / "bad.log").write_text("0\t1.0\n1\t2.0\n2\tfast\n")
    return d


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such directory"),
        ("empty", "holds no trace file"),
        ("malformed", r"bad\.log, line 3: rate is not a number: 'fast'"),
    ],
)
def test_bad_traces_directory_names_the_field_and_value(
    tmp_path: Path, kind: str, message: str
) -> None:
    d = _bad_dir(tmp_path, kind)
    with pytest.raises(ScenarioError, match=rf"field 'traces' = '{d}': .*{message}"):
        load_scenario(_scenario(traces=str(d)))


def test_a_file_path_as_traces_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "one.log"
    f.write_text("0\t1\n1\t2\n")
    with pytest.raises(ScenarioError, match=r"field 'traces' = .*not a directory"):
        load_scenario(_scenario(traces=str(f)))


@pytest.mark.parametrize(
    ("links", "field", "message"),
    [
        ({"x": {"files": "nope*", "rtt_s": 0.1}}, "trace_links.x.files", "matches no trace"),
        (
            {"x": {"files": ["synthetic_3g_0.tsv", "gone.tsv"], "rtt_s": 0.1}},
            "trace_links.x.files[1]",
            "matches no trace",
        ),
        ({"x": {"files": "../x.tsv", "rtt_s": 0.1}}, "trace_links.x.files", "no '/'"),
        ({"x": {"files": [], "rtt_s": 0.1}}, "trace_links.x.files", "non-empty list"),
        ({"x": {"rtt_s": -1}}, "trace_links.x.rtt_s", "must be >= 0"),
        ({"x": {"rtt_s": 0.1, "scale": 0}}, "trace_links.x.scale", "must be > 0"),
        ({"x": {"files": "*"}}, None, "missing key 'trace_links.x.rtt_s'"),
        ({"x": {"rtt_s": 0.1, "speed": 2}}, None, "unknown key 'trace_links.x.speed'"),
        ({"x-y": {"rtt_s": 0.1}}, "trace_links", "letters, digits"),
        ({}, "trace_links", "expected a mapping"),
    ],
)
def test_bad_trace_links_name_the_field(links: dict, field: str | None, message: str) -> None:
    with pytest.raises(ScenarioError, match=message) as err:
        load_scenario(_scenario(trace_links=links))
    if field is not None:
        assert f"field '{field}'" in str(err.value)


def test_traces_without_trace_links_is_refused() -> None:
    d = _scenario(traces=str(default_trace_dir()))
    del d["trace_links"]
    for g in d["devices"]:
        g["links"] = {"edge0": "lte"}
    with pytest.raises(ScenarioError, match=r"field 'traces' = .*no trace link uses it"):
        load_scenario(d)


def test_a_trace_link_may_not_shadow_a_catalogue_class() -> None:
    d = _scenario(trace_links={"lte": {"rtt_s": 0.05}})
    for g in d["devices"]:
        g["links"] = {"edge0": "lte"}
    sc = load_scenario(d)
    with pytest.raises(ScenarioError, match=r"field 'trace_links\.lte' = 'lte': already a class"):
        build(sc)


def test_a_changed_trace_file_is_read_again(tmp_path: Path) -> None:
    """A trace fixed on disk after a failed load loads (the cache keys on the file's state)."""
    d = _bad_dir(tmp_path, "malformed")
    with pytest.raises(ScenarioError, match="line 3"):
        load_scenario(_scenario(traces=str(d)))
    (d / "bad.log").write_text("0\t1.0\n1\t2.0\n2\t3.0\n")
    assert len(load_scenario(_scenario(traces=str(d))).trace_links[0].paths) == 2


# ---------------------------------------------------------------------------- HSDPA logs


def test_env_sees_the_hsdpa_traces(shared_traces: Path, tmp_path: Path) -> None:
    """Pointed at the Norway HSDPA logs of ../shared/data/traces, the env's links replay
    them: every link's rates are a run of one log; the policy observes each slot the rate of
    the slot before; the mean over links and slots is the logs' mean (each log equally
    likely, docs/dynamics.md section 3: per-log means average 1.35 Mbps)."""
    d = _scenario(traces=str(shared_traces))
    d["trace_links"] = {"cellular_3g": {"files": "*.log", "rtt_s": 0.08}}
    sc = load_scenario(d)
    paths = sc.trace_links[0].paths
    assert len(paths) == 68  # the Norway logs, not the FCC traces_* files nor the README
    want_mean, _ = set_stats([load_trace(p) for p in paths])
    assert want_mean == pytest.approx(1.35, abs=0.01)

    e, slots = 128, sc.horizon - 1  # stop before the episodes end (no autoreset)
    env = SplitOffloadVectorEnv(num_envs=e, scenario=sc)
    ta = env.core.tables
    layout = ta.observation_layout()
    i0 = sum(size for name, size in layout[: [n for n, _ in layout].index("link_rates")])
    obs, _ = env.reset(seed=7)
    action = np.zeros(env.action_space.shape, dtype=np.int64)
    action[..., 0] = ta.n_valid.max() - 1  # all local (the links do not care)
    true, seen = [env.core.state.rates[:, :, 0].copy()], []
    for _ in range(slots - 1):
        obs, *_ = env.step(action)
        x = obs.reshape(e, ta.n_devices, ta.obs_dim)[:, :, i0].astype(np.float64)
        seen.append(ta.rate_scale_mbps * x / (1.0 - x))  # obs: r / (r + rate scale)
        true.append(env.core.state.rates[:, :, 0].copy())
    env.close()
    true_a, seen_a = np.stack(true, -1), np.stack(seen, -1)
    # what the policy observes is the rate measured over the slot before (v1's information)
    np.testing.assert_allclose(seen_a, true_a[..., :-1], rtol=1e-5)
    grids = _grids(paths, sc.slot_s, 1.0)
    picks = [_trace_of(seq, grids) for seq in true_a.reshape(-1, true_a.shape[-1])]
    assert None not in picks
    used = len({j for j, _ in picks})
    same = np.mean(true_a[..., 1:] == true_a[..., :-1])
    print(f"HSDPA: mean {true_a.mean():.4f} (logs {want_mean:.4f}), {used} logs, same {same:.3f}")
    assert used > 50  # 768 links over 68 logs: most logs are used
    assert true_a.mean() == pytest.approx(want_mean, rel=0.10)
    # memory: logs sampled about once a second hold their rate over most 0.1 s slots
    assert 0.8 < same < 0.95


def test_the_shared_traces_directory_loads_whole(shared_traces: Path, tmp_path: Path) -> None:
    """Every file of ../shared/data/traces (Norway and FCC) is a trace the scenario accepts;
    a copy with one broken line is refused naming the file and the line."""
    d = _scenario(traces=str(shared_traces))
    assert len(load_scenario(d).trace_links[0].paths) == 127
    copy = tmp_path / "copy"
    shutil.copytree(shared_traces, copy)
    victim = sorted(copy.glob("*.log"))[0]
    lines = victim.read_text().splitlines()
    lines[9] = "10.0"
    victim.chmod(0o644)  # the shared files are read-only; so is their copy
    victim.write_text("\n".join(lines) + "\n")
    with pytest.raises(ScenarioError, match=rf"{victim.name}, line 10: expected 2 columns"):
        load_scenario(_scenario(traces=str(copy)))
