"""Link catalogue, trace loader and link processes (edgesplit.cost_models.links)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from edgesplit.cost_models import make_synthetic_traces as mst
from edgesplit.cost_models.links import (
    FLOOR_MBPS,
    SCHEMA,
    LinkClass,
    LinkError,
    LinkProcess,
    MarkovParams,
    TraceError,
    TraceParams,
    WiredParams,
    load_links,
    load_trace,
    markov_calibration,
    stationary_stats,
    transition_matrix,
)

SHARED_TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"
CATALOGUE = Path(__file__).resolve().parents[1] / "cost_models" / "data" / "links.json"
EXPECTED = {
    "hsdpa_3g": "markov",
    "lte": "markov",
    "nr_5g": "markov",
    "wifi": "markov",
    "wired_backhaul": "wired",
    "trace_synthetic_3g": "trace",
}


@pytest.fixture(scope="module")
def links():
    return load_links()


def markov_names() -> list[str]:
    return [n for n, k in EXPECTED.items() if k == "markov"]


def run(proc: LinkProcess, rng: np.random.Generator, steps: int) -> np.ndarray:
    """Reset, then step; return the rates ``[steps + 1, *shape]``."""
    out = [proc.reset(rng.random((*proc.shape, proc.n_reset_uniforms)))]
    for _ in range(steps):
        out.append(proc.step(rng.random((*proc.shape, proc.n_step_uniforms))))
    return np.array(out)


# --------------------------------------------------------------------------------------
# catalogue
# --------------------------------------------------------------------------------------
def test_catalogue_has_the_contract_classes(links):
    assert set(EXPECTED) <= set(links.names())
    for name, kind in EXPECTED.items():
        lc = links[name]
        assert name in links
        assert lc.name == name and lc.kind == kind
        assert lc.rtt_s > 0 and lc.mean_mbps > 0 and lc.sd_mbps >= 0
        for f in ("rtt_s", "mean_mbps", "sd_mbps"):
            assert lc.sources[f].strip()
    raw = json.loads(CATALOGUE.read_text())
    assert raw["schema"] == SCHEMA and raw["schema_version"] == 1
    with pytest.raises(KeyError, match="unknown link class"):
        links["satellite"]


def test_every_number_in_the_file_has_a_source():
    raw = json.loads(CATALOGUE.read_text())
    for name, c in raw["classes"].items():
        numbers = [k for k, v in c.items() if isinstance(v, (int, float))]
        numbers += [f"params.{k}" for k, v in c["params"].items() if isinstance(v, (int, float))]
        for k in numbers:
            assert c["sources"].get(k, "").strip(), f"{name}.{k} has no source"


def test_markov_calibration_is_exact(links):
    for name in markov_names():
        lc = links[name]
        st = stationary_stats(lc)
        assert st.mean_mbps == pytest.approx(lc.mean_mbps, rel=1e-9)
        assert st.sd_mbps == pytest.approx(lc.sd_mbps, rel=1e-6)
        cal = markov_calibration(lc)
        assert np.all(np.diff(cal.levels_mbps) > 0)
        assert cal.state_probs.sum() == pytest.approx(1.0)
        if lc.sources["mean_mbps"].startswith("modelled"):
            # mean and SD derived from a published median through a log-normal law
            # (docs/links.md): the generator's median stays near the published one
            assert lc.median_mbps is not None
            assert st.median_mbps == pytest.approx(lc.median_mbps, rel=0.10)


def test_transition_matrix_is_slot_consistent(links):
    lc = links["lte"]
    p1, p2, p3 = (transition_matrix(lc, s) for s in (0.1, 0.25, 0.35))
    assert np.allclose(p1.sum(axis=1), 1.0)
    assert np.allclose(p2 @ transition_matrix(lc, 0.1), p3)
    pi = markov_calibration(lc).state_probs
    assert np.allclose(pi @ p1, pi)
    # mean time in a state equals dwell_s
    stay = np.diag(transition_matrix(lc, 1e-3))
    assert 1e-3 / (1.0 - stay) == pytest.approx(np.full(stay.size, lc.params.dwell_s), rel=1e-3)


def _absolute_copy() -> dict:
    raw = json.loads(CATALOGUE.read_text())
    tr = raw["classes"]["trace_synthetic_3g"]["params"]
    tr["traces"] = [str((CATALOGUE.parent / t).resolve()) for t in tr["traces"]]
    return raw


def _write(tmp_path: Path, raw: dict | str) -> Path:
    p = tmp_path / "links.json"
    p.write_text(raw if isinstance(raw, str) else json.dumps(raw))
    return p


def test_catalogue_with_absolute_trace_paths_loads(tmp_path):
    cat = load_links(_write(tmp_path, _absolute_copy()))
    assert cat.names() == load_links().names()
    assert cat.path == tmp_path / "links.json"


def _keys(path: str | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(path.split(".")) if isinstance(path, str) else path


def _set(path: str | tuple[str, ...], value):
    *head, last = _keys(path)

    def f(raw):
        d = raw
        for k in head:
            d = d[k]
        d[last] = value

    return f


def _drop(path: str | tuple[str, ...]):
    *head, last = _keys(path)

    def f(raw):
        d = raw
        for k in head:
            d = d[k]
        del d[last]

    return f


BROKEN = [  # (id, mutation, field named in the error, value named in the error)
    ("unknown top key", _set("colour", "blue"), "colour", "'blue'"),
    ("wrong schema", _set("schema", "other"), "schema", "'other'"),
    ("wrong version", _set("schema_version", 2), "schema_version", "2"),
    ("unknown class key", _set("classes.lte.latency", 1), "classes.lte.latency", "1"),
    ("missing rtt", _drop("classes.lte.rtt_s"), "classes.lte.rtt_s", "None"),
    ("negative rtt", _set("classes.wifi.rtt_s", -0.01), "classes.wifi.rtt_s", "-0.01"),
    ("text mean", _set("classes.lte.mean_mbps", "fast"), "classes.lte.mean_mbps", "'fast'"),
    ("bool sd", _set("classes.lte.sd_mbps", True), "classes.lte.sd_mbps", "True"),
    ("unknown kind", _set("classes.lte.kind", "satellite"), "classes.lte.kind", "'satellite'"),
    ("unknown param", _set("classes.lte.params.speed", 3), "classes.lte.params.speed", "3"),
    ("one state", _set("classes.lte.params.n_states", 1), "classes.lte.params.n_states", "1"),
    (
        "share > 1",
        _set("classes.nr_5g.params.state_share", 1.5),
        "classes.nr_5g.params.state_share",
        "1.5",
    ),
    (
        "zero dwell",
        _set("classes.hsdpa_3g.params.dwell_s", 0),
        "classes.hsdpa_3g.params.dwell_s",
        "0",
    ),
    (
        "no source",
        _drop(("classes", "lte", "sources", "params.dwell_s")),
        "classes.lte.sources.params.dwell_s",
        "None",
    ),
    (
        "source for nothing",
        _set("classes.lte.sources.bandwidth", "x"),
        "classes.lte.sources.bandwidth",
        "'x'",
    ),
    ("empty source", _set("classes.lte.sources.rtt_s", " "), "classes.lte.sources.rtt_s", "' '"),
    (
        "missing trace",
        _set("classes.trace_synthetic_3g.params.traces", ["nope.tsv"]),
        "classes.trace_synthetic_3g.params.traces[0]",
        "'nope.tsv'",
    ),
    (
        "zero scale",
        _set("classes.trace_synthetic_3g.params.scale", 0),
        "classes.trace_synthetic_3g.params.scale",
        "0",
    ),
    (
        "zero wired rate",
        _set("classes.wired_backhaul.params.rate_mbps", 0),
        "classes.wired_backhaul.params.rate_mbps",
        "0",
    ),
    ("no classes", _set("classes", {}), "classes", "{}"),
]


@pytest.mark.parametrize(
    ("mutate", "field", "value"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_catalogue_names_file_field_value(tmp_path, mutate, field, value):
    raw = _absolute_copy()
    mutate(raw)
    p = _write(tmp_path, raw)
    with pytest.raises(LinkError) as ei:
        load_links(p)
    msg = str(ei.value)
    assert str(p) in msg and f"'{field}'" in msg and value in msg, msg
    assert ei.value.field == field and ei.value.path == str(p)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"schema": 1, "schema": 2}', "<json>"),
        ("{not json", "<json>"),
    ],
)
def test_catalogue_json_errors(tmp_path, text, field):
    p = _write(tmp_path, text)
    with pytest.raises(LinkError) as ei:
        load_links(p)
    assert ei.value.field == field and str(p) in str(ei.value)


def test_missing_catalogue_file(tmp_path):
    with pytest.raises(LinkError, match="no such file"):
        load_links(tmp_path / "absent.json")


def test_link_class_built_in_code_is_validated():
    ok = dict(
        name="x",
        kind="wired",
        rtt_s=0.01,
        mean_mbps=10.0,
        sd_mbps=0.0,
        sources={},
        params=WiredParams(rate_mbps=10.0),
    )
    assert LinkClass(**ok).params.rate_mbps == 10.0
    with pytest.raises(LinkError, match="needs MarkovParams"):
        LinkClass(**{**ok, "kind": "markov"})
    with pytest.raises(LinkError, match="n_states"):
        LinkClass(
            **{
                **ok,
                "kind": "markov",
                "sd_mbps": 1.0,
                "params": MarkovParams(n_states=1, dwell_s=1.0, state_share=0.5, noise_tau_s=1.0),
            }
        )


# --------------------------------------------------------------------------------------
# traces
# --------------------------------------------------------------------------------------
@pytest.mark.skipif(not SHARED_TRACES.is_dir(), reason="../shared/data/traces not present")
def test_shared_pensieve_traces_load_with_the_readme_statistics():
    files = sorted(p for p in SHARED_TRACES.iterdir() if p.is_file() and p.name != "README.md")
    assert len(files) > 100
    rates = []
    for f in files:
        tr = load_trace(f)
        assert tr.n_samples >= 2 and np.all(np.diff(tr.times_s) > 0)
        rates.append(tr.rates_mbps)
    v = np.concatenate(rates)
    # README: mean 1.30 Mbps, SD 0.99, median 1.07 over the folder
    assert v.mean() == pytest.approx(1.30, abs=0.02)
    assert v.std() == pytest.approx(0.99, abs=0.03)
    assert np.median(v) == pytest.approx(1.07, abs=0.03)


def test_trace_formats_and_semantics(tmp_path):
    p = tmp_path / "t.log"
    p.write_text("# comment\n0 5\n\n1.0\t0\n2.0   2.5\r\n3 7\n")  # space, tab, CRLF, blank
    tr = load_trace(p)
    assert tr.times_s.tolist() == [0, 1, 2, 3] and tr.rates_mbps.tolist() == [5, 0, 2.5, 7]
    assert tr.period_s == pytest.approx(4.0)
    assert tr.value_at([0.0, 0.99, 1.0, 3.5, 4.0, 9.2]).tolist() == [5, 5, 0, 7, 5, 0]
    assert tr.mean_mbps == pytest.approx((5 + 0 + 2.5 + 7) / 4)
    assert tr.resample(0.5).tolist() == [5, 5, 0, 0, 2.5, 2.5, 7, 7]
    with pytest.raises(ValueError):
        tr.rates_mbps[0] = 1.0  # read-only


BROKEN_TRACES = [  # (id, content, line, value)
    ("unsorted", "0 1\n2 1\n1 1\n", 3, "'1'"),
    ("repeated time", "0 1\n1 1\n1 2\n", 3, "'1'"),
    ("negative rate", "0 1\n1 -0.5\n", 2, "'-0.5'"),
    ("text rate", "0 1\n1 fast\n", 2, "'fast'"),
    ("text time", "zero 1\n1 1\n", 1, "'zero'"),
    ("nan rate", "0 1\n1 nan\n", 2, "'nan'"),
    ("one column", "0 1\n1\n", 2, "'1'"),
    ("three columns", "0 1\n1 2 3\n", 2, "'1 2 3'"),
    ("empty", "", 1, "''"),
    ("one sample", "0 1\n", 2, "''"),
]


@pytest.mark.parametrize(
    ("content", "line", "value"), [b[1:] for b in BROKEN_TRACES], ids=[b[0] for b in BROKEN_TRACES]
)
def test_broken_trace_names_file_line_value(tmp_path, content, line, value):
    p = tmp_path / "bad.tsv"
    p.write_text(content)
    with pytest.raises(TraceError) as ei:
        load_trace(p)
    msg = str(ei.value)
    assert str(p) in msg and f"line {line}" in msg and value in msg, msg
    assert ei.value.line == line


def test_shipped_synthetic_traces_are_reproducible(tmp_path, links):
    shipped = sorted((CATALOGUE.parent / "traces").glob("*.tsv"))
    assert 3 <= len(shipped) <= 5
    written = mst.write(tmp_path)
    assert [p.name for p in written] == [p.name for p in shipped]
    for a, b in zip(written, shipped, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert load_trace(b).n_samples <= 500
    lc = links["trace_synthetic_3g"]
    st = stationary_stats(lc, slot_s=1.0)
    assert st.mean_mbps == pytest.approx(lc.mean_mbps, rel=0.02)
    assert st.sd_mbps == pytest.approx(lc.sd_mbps, rel=0.02)


# --------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("slot_s", [0.1, 1.0])
@pytest.mark.parametrize("name", markov_names())
def test_markov_long_run_mean_and_sd_match_the_class(links, name, slot_s):
    lc = links[name]
    proc = LinkProcess(lc, slot_s, (1024, 4))
    steps = round(120 / slot_s)  # 4 state correlation times past the reset
    r = run(proc, np.random.default_rng(7), steps=steps)[:: max(1, round(2 / slot_s))]
    assert r.mean() == pytest.approx(lc.mean_mbps, rel=0.10)
    assert r.std() == pytest.approx(lc.sd_mbps, rel=0.10)
    # tighter, against the analytic law (sampling error here is below 1%)
    st = stationary_stats(lc)
    assert r.mean() == pytest.approx(st.mean_mbps, rel=0.03)
    assert r.std() == pytest.approx(st.sd_mbps, rel=0.05)
    assert np.median(r) == pytest.approx(st.median_mbps, rel=0.03)


def test_markov_autocorrelation_follows_dwell_and_noise_time(links):
    lc = links["hsdpa_3g"]
    slot = 0.5
    proc = LinkProcess(lc, slot, (4096,))
    logr = np.log(run(proc, np.random.default_rng(3), steps=200))
    cal = markov_calibration(lc)
    v_state = float(np.var(np.log(cal.levels_mbps)))
    s2 = cal.noise_sigma**2
    x = logr - logr.mean()
    for lag_s in (0.5, 5.0, 30.0):
        h = round(lag_s / slot)
        emp = float(np.mean(x[:-h] * x[h:]) / np.mean(x * x))
        rho_state = math.exp(-cal.switch_rate_hz * lag_s)
        rho_noise = math.exp(-lag_s / lc.params.noise_tau_s)
        ana = (v_state * rho_state + s2 * rho_noise) / (v_state + s2)
        assert emp == pytest.approx(ana, abs=0.05), (lag_s, emp, ana)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_rates_positive_finite_and_deterministic(links, name):
    lc = links[name]
    a, b = LinkProcess(lc, 0.1, (8, 5)), LinkProcess(lc, 0.1, (8, 5))
    ra = run(a, np.random.default_rng(11), steps=50)
    rb = run(b, np.random.default_rng(11), steps=50)
    assert ra.dtype == np.float64 and ra.shape == (51, 8, 5)
    assert np.all(np.isfinite(ra)) and np.all(ra >= FLOOR_MBPS)
    np.testing.assert_array_equal(ra, rb)
    if lc.kind != "wired":
        assert not np.array_equal(ra, run(a, np.random.default_rng(12), steps=50))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_batch_equals_links_stepped_one_by_one(links, name):
    lc = links[name]
    rng = np.random.default_rng(5)
    batch = LinkProcess(lc, 0.2, (6, 3))
    singles = [LinkProcess(lc, 0.2, (1, 3)) for _ in range(6)]
    u = rng.random((6, 3, batch.n_reset_uniforms))
    rb = batch.reset(u)
    rs = [p.reset(u[i : i + 1]) for i, p in enumerate(singles)]
    np.testing.assert_array_equal(rb, np.concatenate(rs))
    for _ in range(20):
        u = rng.random((6, 3, batch.n_step_uniforms))
        rb = batch.step(u)
        rs = [p.step(u[i : i + 1]) for i, p in enumerate(singles)]
        np.testing.assert_array_equal(rb, np.concatenate(rs))


@pytest.mark.parametrize("name", ["lte", "trace_synthetic_3g", "wired_backhaul"])
def test_reset_with_mask_touches_only_masked_rows(links, name):
    lc = links[name]
    rng = np.random.default_rng(9)
    a, b = LinkProcess(lc, 0.1, (5, 4)), LinkProcess(lc, 0.1, (5, 4))
    u0 = rng.random((5, 4, a.n_reset_uniforms))
    a.reset(u0)
    b.reset(u0)
    for _ in range(30):
        u = rng.random((5, 4, a.n_step_uniforms))
        a.step(u)
        b.step(u)
    mask = np.array([True, False, True, False, False])
    u1 = rng.random((5, 4, a.n_reset_uniforms))
    before = a.rates.copy()
    ra = a.reset(u1, mask=mask)
    fresh = LinkProcess(lc, 0.1, (5, 4))
    rf = fresh.reset(u1)
    np.testing.assert_array_equal(ra[~mask], before[~mask])
    np.testing.assert_array_equal(ra[mask], rf[mask])
    for _ in range(10):  # unmasked rows go on as if nothing happened; masked as if fresh
        u = rng.random((5, 4, a.n_step_uniforms))
        ra, rb, rf = a.step(u), b.step(u), fresh.step(u)
        np.testing.assert_array_equal(ra[~mask], rb[~mask])
        np.testing.assert_array_equal(ra[mask], rf[mask])


def test_returned_rates_are_read_only_and_never_rewritten(links):
    proc = LinkProcess(links["lte"], 0.1, (3, 2))
    rng = np.random.default_rng(0)
    r0 = proc.reset(rng.random((3, 2, 2)))
    keep = r0.copy()
    r1 = proc.step(rng.random((3, 2, 2)))
    np.testing.assert_array_equal(r0, keep)
    assert r1 is proc.rates
    with pytest.raises(ValueError):
        r1[0, 0] = 1.0


def _trace_class(tmp_path: Path, tables: list[list[float]], scale: float) -> LinkClass:
    files = []
    for i, rates in enumerate(tables):
        f = tmp_path / f"tr{i}.tsv"
        f.write_text("".join(f"{t}\t{r}\n" for t, r in enumerate(rates)))
        files.append(f)
    return LinkClass(
        name="t",
        kind="trace",
        rtt_s=0.05,
        mean_mbps=1.0,
        sd_mbps=1.0,
        sources={},
        params=TraceParams(traces=tuple(files), scale=scale),
    )


def test_trace_process_follows_the_trace_and_wraps(tmp_path):
    lc = _trace_class(tmp_path, [[5, 0, 2, 7], [1, 1, 1, 1, 1, 1]], scale=2.0)
    proc = LinkProcess(lc, 1.0, (2,))
    assert (proc.n_reset_uniforms, proc.n_step_uniforms) == (2, 0)
    # row 0: trace 0 from offset 2; row 1: trace 1
    r = [proc.reset(np.array([[0.1, 0.5], [0.9, 0.0]]))]
    r += [proc.step(np.zeros((2, 0))) for _ in range(5)]
    r = np.array(r)
    assert r[:, 0].tolist() == [4.0, 14.0, 10.0, FLOOR_MBPS, 4.0, 14.0]  # 0 Mbps -> floor
    assert r[:, 1].tolist() == [2.0] * 6
    # half-second slots: each sample holds for two slots
    half = LinkProcess(lc, 0.5, (1,))
    h = [half.reset(np.array([[0.0, 0.0]]))] + [half.step(None) for _ in range(9)]
    assert np.concatenate(h).tolist() == [10, 10, FLOOR_MBPS, FLOOR_MBPS, 4, 4, 14, 14, 10, 10]


def test_trace_table_and_bound_positions_replay_the_trace(tmp_path):
    """The table a compiled step reads replays what ``step`` gives: moving a bound position
    by ``next`` and reading ``rates`` there is the process's own step, wrap and floor
    included; the process then steps in the caller's array."""
    lc = _trace_class(tmp_path, [[5, 0, 2, 7], [1, 3, 1]], scale=2.0)
    proc, twin = LinkProcess(lc, 1.0, (2, 3)), LinkProcess(lc, 1.0, (2, 3))
    u = np.random.default_rng(3).random((2, 3, 2))
    proc.reset(u)
    twin.reset(u)
    tab = proc.trace_table
    assert tab.rates.tolist() == [10.0, FLOOR_MBPS, 4.0, 14.0, 2.0, 6.0, 2.0]
    assert tab.next.tolist() == [1, 2, 3, 0, 5, 6, 4]  # each trace wraps to its own start
    assert not tab.rates.flags.writeable and not tab.next.flags.writeable
    mine = np.full((2, 3), -1, dtype=np.intp)
    proc.bind_state(cur=mine)
    np.testing.assert_array_equal(mine, twin.trace_position)
    for _ in range(9):  # the caller moves the links
        mine[...] = tab.next[mine]
        np.testing.assert_array_equal(proc.rates, twin.step(None))
        np.testing.assert_array_equal(tab.rates[mine], twin.rates)
    for _ in range(3):  # and the process steps in the caller's array
        np.testing.assert_array_equal(proc.step(None), twin.step(None))
        np.testing.assert_array_equal(mine, twin.trace_position)
    mask = np.array([False, True])
    proc.reset(u[::-1], mask=mask)
    twin.reset(u[::-1], mask=mask)
    np.testing.assert_array_equal(mine, twin.trace_position)


def test_deep_copy_of_a_trace_process_shares_only_its_tables(tmp_path):
    import copy

    proc = LinkProcess(_trace_class(tmp_path, [[5, 0, 2, 7], [1, 3, 1]], scale=2.0), 1.0, (4,))
    proc.reset(np.random.default_rng(0).random((4, 2)))
    twin = copy.deepcopy(proc)
    assert twin.trace_table.rates is proc.trace_table.rates  # read-only: shared
    assert not np.shares_memory(twin.trace_position, proc.trace_position)
    for _ in range(5):  # the copy moves on its own, from the same place
        np.testing.assert_array_equal(twin.step(None), proc.step(None))
    twin.step(None)
    assert not np.array_equal(twin.trace_position, proc.trace_position)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((2, 3)), "cur.*dtype float64"),
        (np.zeros((3, 2), dtype=np.intp), r"cur.*shape \(3, 2\)"),
        (np.zeros((2, 6), dtype=np.intp)[:, ::2], "cur.*not C-contiguous"),
    ],
)
def test_trace_bind_state_rejects_bad_storage_naming_it(tmp_path, bad, match):
    proc = LinkProcess(_trace_class(tmp_path, [[1, 2]], scale=1.0), 1.0, (2, 3))
    proc.reset(np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match=match):
        proc.bind_state(cur=bad)


def test_trace_api_refuses_other_kinds(links):
    proc = LinkProcess(links["wired_backhaul"], 0.1, (2,))
    for call in (
        lambda: proc.trace_table,
        lambda: proc.trace_position,
        lambda: proc.bind_state(cur=np.zeros(2, dtype=np.intp)),
    ):
        with pytest.raises(ValueError, match="'wired_backhaul' is a 'wired' link, not a trace"):
            call()


def test_wired_is_constant_and_takes_no_uniforms(links):
    lc = links["wired_backhaul"]
    proc = LinkProcess(lc, 0.1, (2, 3))
    assert (proc.n_reset_uniforms, proc.n_step_uniforms) == (0, 0)
    assert np.all(proc.reset(np.zeros((2, 3, 0))) == lc.params.rate_mbps)
    assert np.all(proc.step(None) == lc.params.rate_mbps)
    assert stationary_stats(lc).mean_mbps == lc.mean_mbps == lc.params.rate_mbps


def test_process_argument_errors(links):
    proc = LinkProcess(links["lte"], 0.1, (3, 2))
    with pytest.raises(RuntimeError, match="reset"):
        proc.step(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="shape"):
        proc.reset(np.zeros((3, 2, 1)))
    with pytest.raises(RuntimeError, match="first reset"):
        proc.reset(np.zeros((3, 2, 2)), mask=np.array([True, False, True]))
    proc.reset(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="mask"):
        proc.reset(np.zeros((3, 2, 2)), mask=np.array([1, 0, 1]))
    with pytest.raises(ValueError, match="slot_s"):
        LinkProcess(links["lte"], 0.0, (3,))
    with pytest.raises(ValueError, match="shape"):
        LinkProcess(links["lte"], 0.1, (0, 2))


def test_link_bank_equals_per_class_processes() -> None:
    """A mixed bank gives bit-for-bit the rates of one LinkProcess per class, masked
    resets included."""
    from edgesplit.cost_models.links import LinkBank

    cat = load_links()
    names = ["lte", "wifi", "nr_5g", "hsdpa_3g", "trace_synthetic_3g", "wired_backhaul", "lte"]
    classes = [cat[n] for n in names]
    e, slot = 5, 0.1
    bank = LinkBank(classes, slot, (e, len(classes)))
    procs = [LinkProcess(c, slot, (e, 1)) for c in classes]
    rng = np.random.default_rng(3)

    def feed(u: np.ndarray, reset: bool, mask: np.ndarray | None = None) -> None:
        got = bank.reset(u, mask=mask) if reset else bank.step(u)
        for i, p in enumerate(procs):
            k = p.n_reset_uniforms if reset else p.n_step_uniforms
            ui = u[:, i : i + 1, :k]
            want = p.reset(ui, mask=mask) if reset else p.step(ui)
            np.testing.assert_array_equal(got[:, i], np.asarray(want)[:, 0], err_msg=names[i])

    feed(rng.random((e, len(classes), bank.n_reset_uniforms)), True)
    for t in range(60):
        feed(
            rng.random((e, len(classes), max(bank.n_step_uniforms, 1)))[
                ..., : bank.n_step_uniforms
            ],
            False,
        )
        if t % 20 == 19:
            mask = rng.random(e) < 0.5
            feed(rng.random((e, len(classes), bank.n_reset_uniforms)), True, mask)


# --------------------------------------------------------------------------------------
# the package layout (issue 7: links.py split into one module per job)
# --------------------------------------------------------------------------------------
# every public name of the single-file module before the split
PUBLIC_BEFORE_SPLIT = {
    "FLOOR_MBPS",
    "KINDS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "LinkBank",
    "LinkCatalogue",
    "LinkClass",
    "LinkError",
    "LinkProcess",
    "MarkovCalibration",
    "MarkovParams",
    "StationaryStats",
    "Trace",
    "TraceError",
    "TraceParams",
    "WiredParams",
    "load_links",
    "load_trace",
    "markov_calibration",
    "stationary_stats",
    "transition_matrix",
}
# added since: directories of traces, for the scenarios' trace-driven links
PUBLIC_ADDED = {
    "TraceDirError",
    "default_trace_dir",
    "set_stats",
    "trace_files",
    "trace_link_class",
}


def test_split_package_keeps_every_public_name() -> None:
    import importlib

    import edgesplit.cost_models.links as pkg

    assert set(pkg.__all__) == PUBLIC_BEFORE_SPLIT | PUBLIC_ADDED
    for name in PUBLIC_BEFORE_SPLIT | PUBLIC_ADDED:
        obj = getattr(pkg, name)
        home = getattr(obj, "__module__", None)
        if home is not None and home.startswith("edgesplit.cost_models.links."):
            # the package re-exports the object of its home module, not a copy
            assert getattr(importlib.import_module(home), name) is obj


def test_link_modules_import_no_private_names() -> None:
    """No module of the package imports an underscore-prefixed name of another module."""
    import ast

    folder = Path(__file__).resolve().parents[1] / "cost_models" / "links"
    files = sorted(folder.glob("*.py"))
    assert {f.stem for f in files} >= {"__init__", "traces", "catalogue", "calibration"}
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{f.name} imports {private} from {node.module}"


def _reference_markov_rates(lc: LinkClass, slot: float, u_reset: np.ndarray, u_steps) -> list:
    """The markov process as written before issue 7 (one class, scalar constants, the
    innovations pre-scaled in the table): an independent check of the shared step."""
    from edgesplit.cost_models.links.calibration import normal_table

    cal = markov_calibration(lc)
    k = cal.levels_mbps.size
    log_levels = np.log(cal.levels_mbps) - 0.5 * cal.noise_sigma**2
    p_switch = -math.expm1(-cal.switch_rate_hz * slot)
    rho = math.exp(-slot / lc.params.noise_tau_s)
    innov = cal.noise_sigma * math.sqrt(max(0.0, 1.0 - rho**2))
    table = normal_table()
    state = np.minimum((u_reset[..., 0] * k).astype(np.intp), k - 1)
    loglev = log_levels[state]
    x = cal.noise_sigma * table.take((u_reset[..., 1] * table.size).astype(np.intp), mode="clip")
    out = [np.maximum(np.exp(x + loglev), FLOOR_MBPS)]
    for u in u_steps:
        hit = u[..., 0] < p_switch
        st = np.minimum((u[..., 0] * (k / p_switch)).astype(np.intp), k - 1)
        state = np.where(hit, st, state)
        loglev = np.where(hit, log_levels[st], loglev)
        z = (table * innov).take((u[..., 1] * float(table.size)).astype(np.intp), mode="clip")
        x = x * rho + z
        out.append(np.maximum(np.exp(x + loglev), FLOOR_MBPS))
    return out


@pytest.mark.parametrize("name", markov_names())
def test_markov_step_equals_the_reference_bit_for_bit(links, name):
    """LinkProcess and LinkBank share one markov step (links/markov.py); both give the rates
    of the step written out independently here, bit for bit."""
    from edgesplit.cost_models.links import LinkBank

    lc, slot, shape = links[name], 0.1, (5, 3)
    rng = np.random.default_rng(7)
    u_reset = rng.random((*shape, 2))
    u_steps = rng.random((80, *shape, 2))
    want = _reference_markov_rates(lc, slot, u_reset, u_steps)
    proc = LinkProcess(lc, slot, shape)
    got = [proc.reset(u_reset)] + [proc.step(u) for u in u_steps]
    np.testing.assert_array_equal(np.array(got), np.array(want))
    # in a bank, between columns of other kinds
    mixed = [links["wired_backhaul"], lc, lc, links["trace_synthetic_3g"], lc]
    bank = LinkBank(mixed, slot, (5, 5))
    cols = [1, 2, 4]

    def widen(u: np.ndarray) -> np.ndarray:
        w = np.zeros((5, 5, 2))
        w[:, cols] = u
        return w

    got = [bank.reset(widen(u_reset))[:, cols]]
    got += [bank.step(widen(u))[:, cols] for u in u_steps]
    np.testing.assert_array_equal(np.array(got), np.array(want))


# --------------------------------------------------------------------------------------
# LinkBank's interface for a compiled step (issue 7)
# --------------------------------------------------------------------------------------
MIXED = ["lte", "trace_synthetic_3g", "wifi", "wired_backhaul", "hsdpa_3g", "lte"]


def _bank(links, e: int = 4):
    from edgesplit.cost_models.links import LinkBank

    return LinkBank([links[n] for n in MIXED], 0.1, (e, len(MIXED)))


def test_bank_public_interface_shapes(links):
    from edgesplit.cost_models.links import LinkBank
    from edgesplit.cost_models.links.markov import MarkovStatics

    bank = _bank(links)
    assert bank.has_markov
    assert bank.markov_columns.tolist() == [0, 2, 4, 5]
    assert bank.markov_columns.dtype == np.intp and not bank.markov_columns.flags.writeable
    ms = bank.markov_statics()
    assert isinstance(ms, MarkovStatics) and ms.n_links == 4
    assert ms.n_states.tolist() == [links[MIXED[c]].params.n_states for c in (0, 2, 4, 5)]
    assert ms.log_levels.shape == (4 * ms.kmax,) and ms.row.tolist() == [0, 4, 8, 12]
    for f in ("p_switch", "k_over_p", "rho", "sigma", "innov"):
        a = getattr(ms, f)
        assert a.shape == (4,) and a.dtype == np.float64 and not a.flags.writeable, f
    # the same class gives the same constants, wherever it sits
    assert ms.innov[0] == ms.innov[3] and ms.p_switch[0] == ms.p_switch[3]
    assert (ms.p_switch > 0).all() and (ms.p_switch < 1).all() and (ms.rho < 1).all()
    with pytest.raises(AttributeError):  # frozen
        ms.rho = ms.rho  # type: ignore[misc]
    state = bank.markov_state
    assert [a.shape for a in state] == [(4, 4)] * 3
    assert state.state.dtype == np.intp and not state.x.flags.writeable
    others = {lc.process.link.name: lc.columns.tolist() for lc in bank.other_processes}
    assert others == {"trace_synthetic_3g": [1], "wired_backhaul": [3]}
    for proc, cols in bank.other_processes:
        assert proc.shape == (4, cols.size)
    # a bank without markov links: empty constants, nothing to bind
    plain = LinkBank([links["wired_backhaul"], links["trace_synthetic_3g"]], 0.1, (3, 2))
    assert not plain.has_markov and plain.markov_columns.size == 0
    assert plain.markov_statics().n_links == 0 and plain.markov_statics().kmax == 0
    assert plain.markov_state.x.shape == (3, 0)


def test_bind_state_keeps_values_and_the_bank_steps_in_the_bound_storage(links):
    e, n_l = 4, len(MIXED)
    bank, twin = _bank(links, e), _bank(links, e)
    rng = np.random.default_rng(5)
    for b in (bank, twin):
        b.reset(np.random.default_rng(1).random((e, n_l, 2)))
    for _ in range(7):
        u = rng.random((e, n_l, 2))
        bank.step(u)
        twin.step(u)
    before = [a.copy() for a in bank.markov_state]
    rates_before = bank.rates.copy()
    # the caller's storage: views of one int64 buffer, as the compiled step lays it out
    lm = bank.markov_columns.size
    buf = np.full(3 * e * lm + e * n_l, -1, dtype=np.int64)
    m_state = buf[: e * lm].reshape(e, lm)
    m_loglev = buf[e * lm : 2 * e * lm].view(np.float64).reshape(e, lm)
    m_x = buf[2 * e * lm : 3 * e * lm].view(np.float64).reshape(e, lm)
    rates = buf[3 * e * lm :].view(np.float64).reshape(e, n_l)
    bank.bind_state(m_state=m_state, m_loglev=m_loglev, m_x=m_x, rates=rates)
    for got, want in zip((m_state, m_loglev, m_x), before, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(rates, rates_before)
    np.testing.assert_array_equal(bank.rates, rates_before)
    assert not bank.rates.flags.writeable and np.shares_memory(bank.rates, rates)
    for a, mine in zip(bank.markov_state, (m_state, m_loglev, m_x), strict=True):
        assert np.shares_memory(a, mine)
    # stepping and masked resets now happen in the caller's arrays, with the same results
    for t in range(30):
        if t % 10 == 9:
            u, mask = rng.random((e, n_l, 2)), rng.random(e) < 0.5
            got, want = bank.reset(u, mask=mask), twin.reset(u, mask=mask)
        else:
            u = rng.random((e, n_l, 2))
            got, want = bank.step(u), twin.step(u)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(rates, want)
        assert np.shares_memory(got, rates) and not got.flags.writeable
        for mine, ref in zip((m_state, m_loglev, m_x), twin.markov_state, strict=True):
            np.testing.assert_array_equal(mine, ref)
    # what the caller writes in place is what the bank steps from
    twin_x = np.empty_like(m_x)
    twin.bind_state(m_x=twin_x)
    m_x[...] = 0.0
    twin_x[...] = 0.0
    u = rng.random((e, n_l, 2))
    np.testing.assert_array_equal(bank.step(u), twin.step(u))


def test_bind_state_before_the_first_reset(links):
    bank, twin = _bank(links, 2), _bank(links, 2)
    rates = np.full((2, len(MIXED)), -1.0)
    bank.bind_state(rates=rates)
    with pytest.raises(RuntimeError, match="reset"):
        _ = bank.rates
    u = np.random.default_rng(2).random((2, len(MIXED), 2))
    np.testing.assert_array_equal(bank.reset(u), twin.reset(u))
    np.testing.assert_array_equal(rates, twin.rates)


@pytest.mark.parametrize(
    ("arg", "bad", "match"),
    [
        ("m_state", np.zeros((4, 4)), "m_state.*dtype float64"),
        ("m_x", np.zeros((4, 3)), r"m_x.*shape \(4, 3\)"),
        ("m_loglev", np.zeros((4, 8))[:, ::2], "m_loglev.*not C-contiguous"),
        ("rates", np.zeros((4, 6)).view(), "rates"),  # made read-only below
        ("rates", [[0.0] * 6] * 4, "rates.*got list"),
    ],
)
def test_bind_state_rejects_bad_storage_naming_it(links, arg, bad, match):
    bank = _bank(links)
    bank.reset(np.zeros((4, len(MIXED), 2)))
    if isinstance(bad, np.ndarray) and arg == "rates":
        bad.flags.writeable = False
        match = "rates.*read-only"
    keep = bank.rates.copy(), [a.copy() for a in bank.markov_state]
    # a valid array beside the bad one
    good = (
        {"m_state": np.zeros((4, 4), dtype=np.intp)} if arg == "m_x" else {"m_x": np.zeros((4, 4))}
    )
    with pytest.raises(ValueError, match=match):
        bank.bind_state(**good, **{arg: bad})
    # nothing was moved: the valid array given beside the bad one was not adopted
    for g in good.values():
        assert not g.any()
    for a, b in zip(bank.markov_state, keep[1], strict=True):
        assert not any(np.shares_memory(a, g) for g in good.values())
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(bank.rates, keep[0])
