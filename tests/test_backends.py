"""The compiled (numba) step against the numpy reference, step by step.

The numpy methods of :class:`~edgesplit.sim.core.Core` are the specification; the numba
kernel must reproduce them: the same state, queues, decisions and observations bit for bit,
and the same float results up to a few ulps (``exp`` and the order of the reward sum differ).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from backend_checks import assert_same_fields
from battery_scenarios import mixed_batteries  # tests/battery_scenarios.py

from edgesplit.envs.common import MaskTable
from edgesplit.envs.gym_env import SplitOffloadEnv
from edgesplit.envs.vector_env import SplitOffloadVectorEnv
from edgesplit.sim import core as core_mod
from edgesplit.sim.core import Core
from edgesplit.sim.encoding import ActionError
from edgesplit.sim.scenario import available_scenarios, load_scenario
from edgesplit.sim.schema import DECISION_FIELDS, ROW, Decisions, empty_packed
from edgesplit.sim.state import State

pytest.importorskip("numba")

# every State field but the link rates and what is measured of them (exp differs in the last
# bits: compared with a tolerance), and the energy that transfers over those rates spend
RATES = ("rates", "rates_seen")
ENERGY = ("charge", "energy_debt")
STATE = tuple(n for n in State.names() if n not in RATES + ENERGY)


def _crowded() -> dict:
    """``dense`` with short queues and bursts: drops and multi-task arrivals every episode."""
    d = load_scenario("dense").to_dict()
    d["queue_capacity"] = 2
    for g in d["devices"]:
        g["arrival_rate_hz"] = 25.0
    return d


def _traced() -> dict:
    """``default`` with some links replayed from traces (stepped by the kernel too)."""
    d = load_scenario("default").to_dict()
    d["devices"][0]["links"] = {k: "trace_synthetic_3g" for k in d["devices"][0]["links"]}
    return d


def _all_traced() -> dict:
    """``default`` with every link replayed from traces: no Markov link at all."""
    d = load_scenario("default").to_dict()
    for g in d["devices"]:
        g["links"] = dict.fromkeys(g["links"], "trace_synthetic_3g")
    return d


def _mixed_links() -> dict:
    """``default`` with links of every kind: Markov, the catalogue's trace class, a trace
    class of the scenario's own (one file, half the rates) and a wired link, the trace links
    of each class spread over devices (their tables and positions laid end to end in the
    compiled step)."""
    d = load_scenario("default").to_dict()
    d["trace_links"] = {"slow_3g": {"files": "synthetic_3g_1.tsv", "rtt_s": 0.08, "scale": 0.5}}
    d["devices"][0]["links"] = {"edge0": "trace_synthetic_3g", "edge1": "wired_backhaul"}
    d["devices"][1]["links"] = {"edge0": "wifi", "edge1": "slow_3g"}
    d["devices"][2]["links"] = {"edge0": "slow_3g", "edge1": "trace_synthetic_3g"}
    return d


def _tiny_queue() -> dict:
    """``single`` (no cloud) with a one-task queue and bursts: drops nearly every slot."""
    d = load_scenario("single").to_dict()
    d["queue_capacity"] = 1
    d["devices"][0]["arrival_rate_hz"] = 30.0
    return d


def _idle_devices() -> dict:
    """``default`` where one group of devices never gets a task (arrival rate 0)."""
    d = load_scenario("default").to_dict()
    d["devices"][0]["arrival_rate_hz"] = 0.0
    return d


def _bursty() -> dict:
    """``default`` with on/off bursts of arrivals on some devices (a burst's rate is high
    enough to drop tasks), one group never bursting, one with a zero rate between bursts."""
    d = load_scenario("default").to_dict()
    d["devices"][0]["bursts"] = {"on_rate_hz": 30.0, "mean_on_s": 0.5, "mean_off_s": 1.0}
    d["devices"][2]["arrival_rate_hz"] = 0.0
    d["devices"][2]["bursts"] = {"on_rate_hz": 8.0, "mean_on_s": 0.3, "mean_off_s": 0.4}
    return d


def _ewma_traced() -> dict:
    """``default`` measuring rates by an EWMA, with true server backlogs and some trace
    links."""
    d = _traced()
    d["information"] = {"link_rate": "measured", "ewma_weight": 0.3, "server_backlog": "true"}
    return d


def _privileged_bursty() -> dict:
    """``bursty`` with v0's information (the true rates and backlogs)."""
    d = _bursty()
    d["information"] = {"link_rate": "true", "server_backlog": "true"}
    return d


def _batteries() -> dict:
    """The mixed batteries, their budgets weighed more (the deficit matters every slot)."""
    d = mixed_batteries()
    d["reward"]["budget_weight"] = 0.3
    return d


_MADE = {
    "batteries": _batteries,
    "ewma_traced": _ewma_traced,
    "privileged_bursty": _privileged_bursty,
    "bursty": _bursty,
    "crowded": _crowded,
    "traced": _traced,
    "all_traced": _all_traced,
    "mixed_links": _mixed_links,
    "tiny_queue": _tiny_queue,
    "idle_devices": _idle_devices,
}
SCENARIOS = [*available_scenarios(), *_MADE]


def _scenario(name: str):
    return load_scenario(_MADE[name]()) if name in _MADE else load_scenario(name)


def _random_action(rng, ta, e: int, kind: str) -> np.ndarray:
    n = ta.n_devices
    if kind == "multidiscrete":
        return rng.integers(0, ta.nvec, size=(e, n, len(ta.nvec)))
    if kind == "discrete":
        return rng.integers(0, int(np.prod(ta.action_nvec())), size=(e, n))
    return rng.uniform(-1.0, 1.0, size=(e, n, ta.continuous_width))


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("num_envs", [1, 5])
def test_numba_step_matches_numpy(name: str, num_envs: int) -> None:
    sc = _scenario(name)
    ref = Core(sc, num_envs, backend="numpy")
    fast = Core(sc, num_envs, backend="numba")
    assert (ref.backend, fast.backend) == ("numpy", "numba")
    keys = (np.arange(num_envs, dtype=np.uint64) + np.uint64(7)) * np.uint64(0x9E3779B9)
    ref.reset(keys)
    fast.reset(keys)
    rng = np.random.default_rng(1)
    ta = ref.tables
    drops = multi = switches = empty = gated = owed = 0
    for step in range(240):
        where = f"{name}, E={num_envs}, step {step}"
        np.testing.assert_array_equal(fast.observe(), ref.observe(), err_msg=where)
        # the compiled step's masks (batteries included) against the numpy gather
        np.testing.assert_array_equal(fast.masks(), ref.masks(), err_msg=where)
        for a, b in zip(ref.pending(), fast.pending(), strict=True):
            np.testing.assert_array_equal(b, a, err_msg=where)
        kind = ("multidiscrete", "continuous", "discrete")[step % 3]
        act = _random_action(rng, ta, num_envs, kind)
        qlen, phase = ref.qlen.copy(), ref.state.phase.copy()
        ra = ref.step_action(act, kind)
        rb = fast.step_action(act, kind)
        assert_same_fields(ra, rb, ra.__dataclass_fields__, where)
        for s in STATE:
            np.testing.assert_array_equal(
                getattr(fast.state, s), getattr(ref.state, s), err_msg=where
            )
        for r in RATES:
            np.testing.assert_allclose(
                getattr(fast.state, r), getattr(ref.state, r), rtol=1e-13, err_msg=where
            )
        for r in ENERGY:
            np.testing.assert_allclose(
                getattr(fast.state, r), getattr(ref.state, r), rtol=1e-12, atol=1e-14, err_msg=where
            )
        np.testing.assert_allclose(fast._bank.rates, ref._bank.rates, rtol=1e-13, err_msg=where)
        drops += int(ra.dropped.sum())
        bat = ref.physics.capacity_j > 0  # ran empty: nothing left but this slot's harvest
        empty += int((ref.state.charge[:, bat] == ref.physics.harvest_j[bat]).sum())
        gated += int((ra.infeasible & (ra.split == 0) & ra.has_task).sum())
        owed += int((ref.state.energy_debt > 0).sum())
        switches += int((ref.state.phase != phase).sum())
        multi += int((ref.qlen - (qlen - ra.has_task) > 1).sum())
        if step % 60 == 59:  # restart some environments mid-run (VectorEnv autoreset)
            mask = rng.random(num_envs) < 0.5
            mask[0] = True
            new = keys + np.uint64(step)
            ref.reset(new, mask)
            fast.reset(new, mask)
    if name in ("crowded", "tiny_queue", "bursty"):  # the rare paths were exercised
        assert drops > 0, drops
    if name.endswith("bursty"):  # bursts started and ended, on both backends alike
        assert switches > 20, switches
    else:
        assert switches == 0 and not ref.state.phase.any()
    if name == "crowded":
        assert multi > 0, multi
    if name in ("batteries", "battery"):  # batteries ran empty, heads were replaced, and
        assert empty > 0 and gated > 0 and owed > 0, (empty, gated, owed)  # budgets owed
    if name == "idle_devices":  # the idle devices never had a task
        assert ref.qlen[:, 0].max() == 0
    if name.endswith("traced") or name in ("trace_driven", "mixed_links"):
        assert len(np.unique(ref.rates)) > ref.rates.size // 4  # trace links move on both


def _home_decisions(core: Core):
    from edgesplit.sim.schema import Decisions

    shape = (core.num_envs, core.n_devices)
    home = np.broadcast_to(core.tables.home, shape).copy()
    return Decisions(np.zeros(shape, np.int64), home, np.ones(shape), np.ones(shape))


def test_pending_views_are_read_only() -> None:
    """What pending() hands out is read by the next compiled step: writing to it must fail,
    as it does on the numpy backend."""
    for backend in ("numpy", "numba"):
        core = Core(load_scenario("default"), 1, backend=backend)
        core.reset(np.array([9], dtype=np.uint64))
        core.step_action(
            np.zeros((1, core.n_devices, len(core.tables.nvec)), dtype=np.int64), "multidiscrete"
        )
        has, app = core.pending()
        res = core.resolve(_home_decisions(core))
        for a in (has, app, res.has_task, res.app):
            with pytest.raises(ValueError, match="read-only"):
                a[...] = 0


def test_shallow_copy_is_independent() -> None:
    """copy.copy gives a simulator of its own: resetting and stepping the original after
    the copy leaves the copy on its trajectory, and the other way round."""
    sc = load_scenario("default")
    act = np.zeros((1, 6, len(DECISION_FIELDS)), dtype=np.int64)

    def run(core, key: int, steps: int) -> list[np.ndarray]:
        core.reset(np.array([key], dtype=np.uint64))
        return [core.step_action(act, "multidiscrete").latency_s.copy() for _ in range(steps)]

    core = Core(sc, 1, backend="numba")
    core.reset(np.array([9], dtype=np.uint64))
    other = copy.copy(core)
    mine, theirs = run(core, 11, 3), run(other, 12, 6)
    mine += [core.step_action(act, "multidiscrete").latency_s.copy() for _ in range(3)]
    for got, key in ((mine, 11), (theirs, 12)):
        want = run(Core(sc, 1, backend="numba"), key, 6)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)


def test_copies_of_a_trace_core_share_only_the_statics() -> None:
    """Deep copies and pickles of a compiled core whose links replay traces continue on the
    same trajectory, each moving its own trace positions; deep copies share the packed
    statics (the trace tables) instead of packing them again, pickles pack their own."""
    import pickle

    sc = _scenario("mixed_links")
    core = Core(sc, 3, backend="numba")
    core.reset(np.arange(3, dtype=np.uint64) + np.uint64(40))
    act = np.zeros((3, sc.n_devices, len(DECISION_FIELDS)), dtype=np.int64)
    for _ in range(4):
        core.step_action(act, "multidiscrete")
    twin, pickled = copy.deepcopy(core), pickle.loads(pickle.dumps(core))
    assert twin._k.st is core._k.st
    assert pickled._k.st is not core._k.st and np.array_equal(pickled._k.st, core._k.st)
    assert pickle.loads(pickle.dumps(core._k.shared_statics)).st is None  # packed on loading
    runs = []
    for c in (core, twin, pickled):
        rates = []
        for _ in range(30):
            c.step_action(act, "multidiscrete")
            rates.append(c.rates.copy())
        runs.append(np.stack(rates))
    np.testing.assert_array_equal(runs[1], runs[0])
    np.testing.assert_array_equal(runs[2], runs[0])
    assert len(np.unique(runs[0])) > 30  # the trace links moved
    before = core.rates.copy()
    twin.step_action(act, "multidiscrete")  # a copy's step leaves the original's links
    np.testing.assert_array_equal(core.rates, before)


def test_numba_rejects_bad_actions_before_changing_state() -> None:
    core = Core(load_scenario("default"), 2, backend="numba")
    core.reset(np.array([3, 4], dtype=np.uint64))
    before = {s: getattr(core.state, s).copy() for s in STATE}
    rates = core.rates.copy()
    obs = core.observe()
    act = np.zeros((2, core.n_devices, len(core.tables.nvec)), dtype=np.int64)
    act[1, 2, 1] = 17  # environment 1, device 2's target
    names = core.tables.device_names
    with pytest.raises(ActionError, match=rf"{names[2]}.*17"):
        core.step_action(act, "multidiscrete")
    cont = np.zeros((2, core.n_devices, core.tables.continuous_width))
    cont[0, 5, 0] = np.inf
    with pytest.raises(ActionError, match=rf"{names[5]}.*inf"):
        core.step_action(cont, "continuous")
    for s, v in before.items():
        np.testing.assert_array_equal(getattr(core.state, s), v, err_msg=s)
    np.testing.assert_array_equal(core.rates, rates)
    np.testing.assert_array_equal(core.observe(), obs)


@pytest.mark.parametrize(
    ("action_type", "scenario"),
    [("multidiscrete", "default"), ("continuous", "default"), ("multidiscrete", "battery")],
)
def test_faces_agree_across_backends(action_type: str, scenario: str) -> None:
    envs = [
        SplitOffloadEnv(scenario, action_type=action_type, backend=b) for b in ("numpy", "numba")
    ]
    outs = [e.reset(seed=11) for e in envs]
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    envs[0].action_space.seed(2)
    for _ in range(150):  # past the horizon: a reset in between
        a = envs[0].action_space.sample()
        (o0, r0, _, t0, i0), (o1, r1, _, t1, i1) = (e.step(a) for e in envs)
        np.testing.assert_array_equal(o0, o1)
        assert r1 == pytest.approx(r0, rel=1e-12, abs=1e-15)
        assert t0 == t1 and sorted(i0) == sorted(i1)
        for k in i0:
            np.testing.assert_allclose(i1[k], i0[k], rtol=1e-12, atol=1e-15, err_msg=k)
        if action_type == "multidiscrete":  # asked again: gathered again, the same
            np.testing.assert_array_equal(envs[1].action_masks(), i1["action_mask"])
        if t0:
            np.testing.assert_array_equal(envs[0].reset()[0], envs[1].reset()[0])
    vec = [SplitOffloadVectorEnv(3, scenario, backend=b) for b in ("numpy", "numba")]
    for v in vec:
        v.reset(seed=5)
    vec[0].action_space.seed(3)
    for _ in range(130):
        a = vec[0].action_space.sample()
        (o0, r0, _, t0, i0), (o1, r1, _, t1, i1) = (v.step(a) for v in vec)
        np.testing.assert_array_equal(o0, o1)
        np.testing.assert_allclose(r1, r0, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(t0, t1)
        np.testing.assert_array_equal(i0["autoreset"], i1["autoreset"])
        np.testing.assert_array_equal(i0["action_mask"], i1["action_mask"])
        np.testing.assert_array_equal(vec[1].action_masks(), i1["action_mask"])


def test_step_results_are_fresh_arrays() -> None:
    """What one step hands out is not overwritten by the next (infos may be kept)."""
    env = SplitOffloadEnv("default", backend="numba")
    env.reset(seed=0)
    obs, _, _, _, info = env.step(env.action_space.sample())
    kept_obs, kept = obs.copy(), copy.deepcopy(info)
    for _ in range(3):
        env.step(env.action_space.sample())
    np.testing.assert_array_equal(obs, kept_obs)
    for k, v in kept.items():
        np.testing.assert_array_equal(info[k], v, err_msg=k)


def test_backend_argument_is_checked_and_auto_falls_back(monkeypatch) -> None:
    sc = load_scenario("single")
    with pytest.raises(ValueError, match=r"backend.*'fortran'"):
        Core(sc, 1, backend="fortran")
    monkeypatch.setattr(core_mod, "_numba_problem", lambda: "numba is not installed")
    with pytest.warns(RuntimeWarning, match="numba is not installed.*numpy backend"):
        core = Core(sc, 1)
    assert core.backend == "numpy"
    with pytest.raises(ImportError, match="'numba' cannot be used: numba is not installed"):
        Core(sc, 1, backend="numba")


def test_kernel_compiles_without_a_cache_location() -> None:
    """A read-only install with no writable home must still compile (without the on-disk
    cache), not fail: a function numba cannot locate a cache for takes that path."""
    from edgesplit.sim.kernel import _jit

    ns: dict = {}
    exec("def f(x):\n    return x + 1\n", ns)  # defined in '<string>': no cache locator
    f = _jit(ns["f"])
    assert f(41) == 42 and not f._cache.__class__.__name__.startswith("Function")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_step_refuses_bad_decisions_before_changing_state(backend: str) -> None:
    """Core.step checks decisions as step_action checks actions: a wrong shape (the compiled
    step would read past the array) or a value outside the space names the field, the
    environment and the device, and changes nothing."""
    core = Core(load_scenario("default"), 4, backend=backend)
    core.reset(np.arange(4, dtype=np.uint64))
    before = {k: v.copy() for k, v in core.state.arrays().items()}
    good = _home_decisions(core)
    bad = [
        (Decisions.filled((1, core.n_devices)), "decisions.split: expected shape"),
        (good.copy(), r"decisions\.split\[env 2, device 'pi_1'\] = 99"),
        (good.copy(), r"decisions\.target\[env 0, device 'pi_0'\] = -3"),
        (good.copy(), r"decisions\.cpu_weight\[env 3, device 'orin_1'\] = nan"),
    ]
    bad[1][0].split[2, 1] = 99
    bad[2][0].target[0, 0] = -3
    bad[3][0].cpu_weight[3, 5] = np.nan
    for dec, match in bad:
        with pytest.raises(ActionError, match=match):
            core.step(dec)
    for k, v in core.state.arrays().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    core.step(good)  # and a valid one still steps


def _battery_running_empty() -> dict:
    """``battery`` without harvest, its charges low: batteries reach exactly 0 J."""
    d = load_scenario("battery").to_dict()
    for g in d["devices"]:
        g["battery"].update(harvest_w=0.0, initial_charge_j=[0.0, 3.0])
    return d


@pytest.mark.parametrize("name", ["battery", "battery_empty", "batteries"])
@pytest.mark.parametrize("num_envs", [1, 4])
def test_kernel_masks_match_affordable(name: str, num_envs: int) -> None:
    """The masks the compiled step writes are those the faces built before it did: the
    static rows' masks gathered by pending row, the splits ANDed with
    :meth:`Core.affordable` (its numpy gather and compare), on random states: random actions
    and, every other slot, random charges (empty, low and full batteries) to start from."""
    sc = load_scenario(_battery_running_empty()) if name == "battery_empty" else _scenario(name)
    core = Core(sc, num_envs, backend="numba")
    ref = Core(sc, num_envs, backend="numpy")
    table = MaskTable(core.tables, "multidiscrete")
    keys = np.arange(num_envs, dtype=np.uint64) + np.uint64(3)
    core.reset(keys)
    ref.reset(keys)
    rng = np.random.default_rng(5)
    ta = core.tables
    s_n, bat, cap = ta.n_candidates, core.physics.capacity_j > 0, core.physics.capacity_j
    limited = empty = 0
    for step in range(200):
        if step % 2:  # random charges: a quarter empty, a quarter low, the rest anywhere
            u = rng.random((num_envs, core.n_devices))
            c = np.where(u < 0.25, 0.0, np.where(u < 0.5, u * 4.0, u * cap))
            core.state.charge[...] = np.where(bat, c, 0.0)
            ref.state.charge[...] = core.state.charge
        act = _random_action(rng, ta, num_envs, "multidiscrete")
        core.step_action(act, "multidiscrete")
        ref.step_action(act, "multidiscrete")
        where = f"{name}, E={num_envs}, step {step}"
        kernel = core.masks()  # the first call after a compiled step: the kernel's array
        before = table.take(core.pending_rows(), core.affordable())
        np.testing.assert_array_equal(kernel, before, err_msg=where)
        np.testing.assert_array_equal(core.masks(), before, err_msg=where)  # gathered again
        np.testing.assert_array_equal(ref.masks(), before, err_msg=where)  # the numpy backend
        assert kernel is not core.masks()  # fresh arrays
        static = table.take(core.pending_rows())[..., :s_n]
        limited += int((static & ~kernel[..., :s_n]).sum())  # heads a battery could not pay
        empty += int((core.state.charge[:, bat] == 0.0).sum())
    assert limited > 0, limited
    if name == "battery_empty":
        assert empty > 0, empty


def test_kernel_mask_at_the_charge_boundary() -> None:
    """The kernel's compare is numpy's (``head energy <= charge``): a charge of exactly a
    head's energy affords it, one ulp less does not, an empty battery affords only heads
    that cost nothing."""
    from edgesplit.sim import kernel as kmod

    core = Core(load_scenario("battery"), 1, backend="numba")
    core.reset(np.array([9], dtype=np.uint64))
    table = MaskTable(core.tables, "multidiscrete")
    rows = core.pending_rows()[0]
    assert (rows % (core.tables.n_apps + 1) < core.tables.n_apps).any()  # some task pending
    head_e = core.kernel_statics()["head_e_rows"]
    masking = (
        core.kernel_statics()["mask_rows"].astype(np.int64),
        np.ascontiguousarray(head_e),
        core.kernel_statics()["kalt"],
    )
    n, s_n = core.n_devices, core.tables.n_candidates
    oi = empty_packed(1, n)[ROW["next_row"][0]]
    oi[ROW["next_row"][1], 0] = rows
    rng = np.random.default_rng(0)
    for trial in range(30):
        s = rng.integers(0, s_n, n)
        charge = head_e[rows, s]  # exactly some head's energy
        if trial % 3 == 1:
            charge = np.nextafter(charge, -np.inf)
        elif trial % 3 == 2:
            charge = np.zeros(n)
        core.state.charge[0] = np.maximum(charge, 0.0)
        mask = np.zeros((1, n, table.table.shape[1]), dtype=bool)
        kmod.action_masks(oi, masking, core.state.charge, mask)
        np.testing.assert_array_equal(mask[0], table.take(rows, core.affordable(0)))
        np.testing.assert_array_equal(mask[0], core.masks(0))
