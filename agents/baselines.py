"""Baseline policies: the yardsticks every learned policy is reported against.

Each baseline decides, for every environment of a batched :class:`~edgesplit.sim.core.Core`,
the split, target and weights of each device's pending task (:meth:`Baseline.decide`), and
can act in any EdgeSplit Gymnasium env through :meth:`Baseline.act`. They read the
simulator's state (cost tables, link rates, backlogs): they are model-based references, not
learned agents.

============================  ==============================================================
name                          rule
============================  ==============================================================
``local``                     every task runs whole on its device (full offload where its
                              battery cannot pay for the head)
``offload``                   full offload (raw input) to the home edge server
``random``                    uniformly random among feasible (split, target, weights)
``neurosurgeon``              each task's own best (split, target) under the link rate and
                              backlogs, blind to the other devices' choices this slot
                              (Kang et al., ASPLOS 2017, extended to several targets)
``greedy``                    devices in turn, each picking the (split, target) that
                              minimises the slot's total cost given the devices before it
                              (sees contention)
``oracle``                    myopic oracle: exact search over the slot's joint (split,
                              target) when the joint space has at most ``exact_limit``
                              points, else iterated best response from the greedy start over
                              (split, target, weights) until no device can lower the slot's
                              cost
``*_privileged``              the same three rules reading the true current link rates and
                              server backlogs
``clairvoyant``               lookahead over the episode's known future (:class:`Clairvoyant`)
============================  ==============================================================

``neurosurgeon``, ``greedy`` and the exact ``oracle`` give every task equal weights (the
highest level); only the oracle's best-response stage searches the weights too.

**Information.** Every baseline says what it reads (:attr:`Baseline.privileged`). The fair
rules (``neurosurgeon``, ``greedy``, ``oracle``) judge their candidates on what a real
scheduler knows (``Core.resolve(..., known=True)``: the scenario's ``information``, by
default the link rates measured over the last slot and the server backlogs reported a slot
ago), as the policy of ``SplitOffload-v1`` observes them; the ``*_privileged`` versions read
the true rates and backlogs of the slot being decided, which no real scheduler knows, so that
the cost of not knowing them is visible in the table. ``clairvoyant`` knows more still: the
whole future of the episode. ``local``, ``offload`` and ``random`` read neither.

>>> from edgesplit.sim.core import Core
>>> from edgesplit.sim.scenario import load_scenario
>>> core = Core(load_scenario("single"), num_envs=2)
>>> core.reset(keys=[1, 2])
>>> dec = make_baseline("neurosurgeon").decide(core)
>>> dec.split.shape
(2, 1)
>>> make_baseline("oracle_privileged").privileged, make_baseline("oracle").privileged
(True, False)
"""

from __future__ import annotations

import copy
import functools
import itertools
import time
from collections.abc import Callable, Sequence

import numpy as np
from gymnasium.utils import seeding

from edgesplit.sim.core import Core
from edgesplit.sim.encoding import Tables, encode_actions
from edgesplit.sim.scenario import Scenario, load_scenario
from edgesplit.sim.schema import DECISION_FIELDS, Decisions

from .metrics import EpisodeTotals

__all__ = [
    "BASELINES",
    "Baseline",
    "Clairvoyant",
    "decisions_to_action",
    "evaluate_baselines",
    "make_baseline",
    "run_episodes",
    "seed_keys",
    "summary",
]


# --- what a baseline may read -------------------------------------------------------------


class Baseline:
    """A rule over the simulator's state.

    Subclasses implement :meth:`rule`, which judges candidate decisions with
    :meth:`~edgesplit.sim.core.Core.resolve` on what the baseline knows (:attr:`known`).

    Args:
        name: the name it is reported under.
        privileged: True when it reads the true link rates and server backlogs of the slot
            being decided (unknowable to a real scheduler); False when it reads what the
            scheduler knows (the scenario's ``information``: by default the rates measured
            over the last slot and the backlogs the servers reported a slot ago).
    """

    def __init__(self, name: str = "baseline", privileged: bool = False) -> None:
        self.name = name
        self.privileged = privileged

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, privileged={self.privileged})"

    @property
    def known(self) -> bool:
        """The ``known`` argument this baseline passes to
        :meth:`~edgesplit.sim.core.Core.resolve`: judge decisions on what the scheduler
        knows (True) or on the truth (False, privileged)."""
        return not self.privileged

    def visible_rates(self, core: Core) -> np.ndarray:
        """``[E, N, M]`` the link rates this baseline reads: the true current ones when
        privileged, else the core's measured ones (``state.rates_seen``)."""
        return core.rates if self.privileged else core.state.rates_seen

    def decide(self, core: Core) -> Decisions:
        """Decisions ``[E, N]`` for the pending tasks of every environment of ``core``."""
        return self.rule(core)

    def rule(self, core: Core) -> Decisions:  # pragma: no cover - interface
        raise NotImplementedError

    def act(self, env) -> np.ndarray:
        """The action for a Gymnasium EdgeSplit env (joint mode, any action type)."""
        base = env.unwrapped
        if getattr(base, "decision_mode", "joint") != "joint":
            raise ValueError("baselines act in decision_mode='joint' envs")
        dec = self.decide(base.core)
        return decisions_to_action(base.core.tables, dec, base.action_type)[0]


def decisions_to_action(ta: Tables, dec: Decisions, action_type: str) -> np.ndarray:
    """Encode decisions ``[E, N]`` into joint actions ``[E, ...]`` of ``action_type`` (the
    discrete views; weights rounded to the nearest level)."""
    if action_type == "continuous":
        raise ValueError("baselines act through discrete views; use multidiscrete")
    return encode_actions(ta, dec, action_type)


# --- the rules, as functions of the core a baseline sees ----------------------------------


def _full(core: Core, split: np.ndarray, target: np.ndarray) -> Decisions:
    """Every device's split and target, at the top weight level."""
    top = core.tables.weight_levels.max()
    levels = {f.name: top for f in DECISION_FIELDS if f.kind == "level"}
    return Decisions.filled(split.shape, split=split, target=target, **levels)


def _local(core: Core) -> Decisions:
    """Every task whole on its device; where its battery cannot pay for that, full offload
    to the home edge (the rule knows the charge, as a device knows its own battery)."""
    _, app = core.pending()
    last = core.tables.n_valid[app] - 1
    aff = core.affordable()
    if aff is not None:
        last = np.where(np.take_along_axis(aff, last[..., None], -1)[..., 0], last, 0)
    return _full(core, last, np.broadcast_to(core.tables.home, app.shape))


def _grid(core: Core, with_weights: bool) -> Decisions:
    """All per-device options, as decisions ``[K]``.

    With weights, a task's bandwidth and compute weights take the same level (the levels
    are relative shares; searching them jointly multiplies the grid by L for little gain).
    """
    ta = core.tables
    lv = range(ta.n_levels) if with_weights else [ta.n_levels - 1]
    opts = list(itertools.product(range(ta.n_candidates), range(ta.n_targets), lv))
    a = np.array(opts, dtype=np.int64)
    w = ta.weight_levels[a[:, 2]]
    levels = {f.name: w.copy() for f in DECISION_FIELDS if f.kind == "level"}
    return Decisions(split=a[:, 0], target=a[:, 1], **levels)


def _best_response(
    core: Core,
    cur: Decisions,
    k: int,
    active: np.ndarray,
    opts: Decisions,
    own_only: bool = False,
    known: bool = False,
) -> tuple[Decisions, np.ndarray]:
    """Set device ``k`` to its option minimising the slot cost (of the active devices, or
    its own), in every environment where it has a task, all at once, judged on what is
    ``known`` or on the truth. Returns the new decisions and their cost ``[E]`` (``inf``
    where device ``k`` has no task)."""
    e, _n = cur.shape
    has, _ = core.pending()
    envs = np.flatnonzero(has[:, k] & active[:, k])
    out = cur.copy()
    best_cost = np.full(e, np.inf)
    if len(envs) == 0:
        return out, best_cost
    dec, c = _best_rows(core, cur[envs], k, active[envs], opts, own_only, envs, known)
    out[envs] = dec
    best_cost[envs] = c
    return out, best_cost


def _best_rows(
    core: Core,
    cur: Decisions,
    k: int,
    active: np.ndarray,
    opts: Decisions,
    own_only: bool,
    envs: np.ndarray,
    known: bool,
) -> tuple[Decisions, np.ndarray]:
    e, _n = cur.shape
    kk = opts.shape[0]
    rows = np.repeat(envs, kk)
    dec = cur.map(lambda a: np.repeat(a, kk, 0))
    dec[:, k] = opts.map(lambda a: np.tile(a, e))
    act = np.repeat(active, kk, 0)
    res = core.resolve(dec, rows=rows, active=act, known=known)
    cost = res.cost[:, k] if own_only else res.cost.sum(1)
    cost = cost.reshape(e, kk)
    best = cost.argmin(1)
    pick = np.arange(e) * kk + best
    return dec[pick], cost[np.arange(e), best]


def _neurosurgeon(core: Core, known: bool) -> Decisions:
    """Each device's option of least cost were it alone in the slot (whole shares, the
    server backlogs as known): :meth:`Core.option_estimates`, the first of equal ones in
    ``(split, target)`` order."""
    has, _app = core.pending()
    cost = core.option_estimates(known=known).cost
    e, n, _s, j = cost.shape
    best = cost.reshape(e, n, -1).argmin(-1)
    local = _local(core)
    split = np.where(has, best // j, local.split)
    target = np.where(has, best % j, local.target)
    return _full(core, split, target)


def _greedy(core: Core, known: bool) -> Decisions:
    _, app = core.pending()
    e, n = app.shape
    cur = _local(core)
    opts = _grid(core, with_weights=False)
    active = np.zeros((e, n), dtype=bool)
    for k in range(n):
        active[:, k] = True
        cur, _ = _best_response(core, cur, k, active, opts, known=known)
    return cur


def _oracle(core: Core, exact_limit: int, max_sweeps: int, known: bool) -> Decisions:
    _, app = core.pending()
    e, n = app.shape
    opts = _grid(core, with_weights=False)
    kk = opts.shape[0]
    if kk**n <= exact_limit:
        return _exact(core, opts, known)
    cur = _greedy(core, known)
    cost = core.resolve(cur, known=known).cost.sum(1)
    opts_w = _grid(core, with_weights=True)
    everyone = np.ones((e, n), dtype=bool)
    for _ in range(max_sweeps):
        improved = False
        for k in range(n):
            cand, c = _best_response(core, cur, k, everyone, opts_w, known=known)
            better = c < cost - 1e-12
            if better.any():
                improved = True
                cur[better] = cand[better]
                cost = np.where(better, c, cost)
        if not improved:
            break
    return cur


def _exact(core: Core, opts: Decisions, known: bool) -> Decisions:
    _, app = core.pending()
    e, n = app.shape
    kk = opts.shape[0]
    combos = np.array(list(itertools.product(range(kk), repeat=n)), dtype=np.int64)  # [C, N]
    c = len(combos)
    rows = np.repeat(np.arange(e), c)
    idx = np.tile(combos, (e, 1))
    dec = opts[idx]
    cost = core.resolve(dec, rows=rows, known=known).cost.sum(1).reshape(e, c)
    pick = np.arange(e) * c + cost.argmin(1)
    return dec[pick]


# --- the baselines ------------------------------------------------------------------------


def _suffixed(name: str, privileged: bool) -> str:
    return f"{name}_privileged" if privileged else name


class Local(Baseline):
    def __init__(self) -> None:
        super().__init__("local")

    def rule(self, core: Core) -> Decisions:
        return _local(core)


class Offload(Baseline):
    def __init__(self) -> None:
        super().__init__("offload")

    def rule(self, core: Core) -> Decisions:
        _, app = core.pending()
        return _full(core, np.zeros_like(app), np.broadcast_to(core.tables.home, app.shape))


class RandomValid(Baseline):
    """Uniform over feasible choices; its own seeded generator."""

    def __init__(self, seed: int | None = 0) -> None:
        super().__init__("random")
        self.rng = np.random.default_rng(seed)

    def rule(self, core: Core) -> Decisions:
        ta = core.tables
        _, app = core.pending()
        nv = ta.n_valid[app]
        aff = core.affordable()
        if aff is None:
            split = (self.rng.random(app.shape) * nv).astype(np.int64)
        else:  # uniform among the splits the battery can pay for
            ok = ta.valid[app] & aff
            split = np.where(ok, self.rng.random(ok.shape), -1.0).argmax(-1)
        reach = np.broadcast_to(ta.reachable[None], (*app.shape, ta.n_targets))
        score = np.where(reach, self.rng.random(reach.shape), -1.0)
        target = score.argmax(-1)
        lv = ta.weight_levels
        levels = {
            f.name: lv[self.rng.integers(0, len(lv), app.shape)]
            for f in DECISION_FIELDS
            if f.kind == "level"
        }
        return Decisions(split=split, target=target, **levels)


class Neurosurgeon(Baseline):
    def __init__(self, privileged: bool = False) -> None:
        super().__init__(_suffixed("neurosurgeon", privileged), privileged)

    def rule(self, core: Core) -> Decisions:
        return _neurosurgeon(core, self.known)


class Greedy(Baseline):
    def __init__(self, privileged: bool = False) -> None:
        super().__init__(_suffixed("greedy", privileged), privileged)

    def rule(self, core: Core) -> Decisions:
        return _greedy(core, self.known)


class Oracle(Baseline):
    """Myopic oracle (see the module table). ``exact_limit``: joint points per environment
    up to which the search is exhaustive; ``max_sweeps`` bounds the best-response stage."""

    def __init__(
        self, exact_limit: int = 4096, max_sweeps: int = 10, privileged: bool = False
    ) -> None:
        super().__init__(_suffixed("oracle", privileged), privileged)
        self.exact_limit = exact_limit
        self.max_sweeps = max_sweeps

    def rule(self, core: Core) -> Decisions:
        return _oracle(core, self.exact_limit, self.max_sweeps, self.known)


class Clairvoyant(Baseline):
    """A reference for what foresight is worth: lookahead over the episode's known future.

    The simulator is deterministic given its key, and what the future brings (arrivals,
    applications, link rates) does not depend on the decisions, so a copy of the core
    *is* the future. At every slot, for every environment:

    1. **Candidates.** The myopic oracle's joint decision, greedy's, and the ``candidates
       - 2`` cheapest single-device deviations from the oracle's (one device moved to
       another (split, target) at the top weight, the others kept), ranked by this slot's
       cost; all judged in one batched :meth:`~edgesplit.sim.core.Core.resolve`. Repeats
       (greedy agreeing with the oracle, too few deviations) are not played.
    2. **Rollouts.** Each candidate is played on a copy of the core, then the greedy rule
       (reading the true rates, as everything here does) plays the next ``horizon - 1``
       slots. A rollout's score is the total cost of its ``horizon`` slots (the episode's
       end cuts it short).
    3. The candidate with the lowest score is played (ties: the oracle's).

    It is a rollout policy in Bertsekas' sense, not a bound: nothing guarantees it beats
    greedy or the myopic oracle on every episode (the rollout's horizon is truncated and its
    base policy is myopic), and a better search (longer horizon, more candidates, a beam
    over several slots) could do better. It is privileged in the strongest sense.

    Cost per slot: one oracle and one greedy decision, one resolve of ``E * N * K`` rows
    (``K`` options per device), and for each candidate played (at most ``candidates``) a
    copy of the core, ``horizon`` steps and ``horizon - 1`` greedy decisions on ``E``
    environments: about ``candidates * horizon`` times greedy's time.

    Args:
        horizon: slots each rollout covers, the candidate's own included (``H >= 1``; 1 is
            the myopic choice among the candidates).
        candidates: joint decisions compared per slot (``k >= 2``: the oracle's, greedy's
            and ``k - 2`` deviations).
        exact_limit, max_sweeps: those of the myopic oracle that proposes candidates.

    >>> from edgesplit.sim.core import Core
    >>> from edgesplit.sim.scenario import load_scenario
    >>> core = Core(load_scenario("single"), 2); core.reset(keys=[1, 2])
    >>> Clairvoyant(horizon=2, candidates=3).decide(core).split.shape
    (2, 1)
    """

    def __init__(
        self,
        horizon: int = 4,
        candidates: int = 8,
        exact_limit: int = 4096,
        max_sweeps: int = 10,
    ) -> None:
        if int(horizon) < 1:
            raise ValueError(f"horizon: {horizon!r} must be at least 1 slot")
        if int(candidates) < 2:
            raise ValueError(f"candidates: {candidates!r} must be at least 2")
        super().__init__("clairvoyant", privileged=True)
        self.horizon = int(horizon)
        self.candidates = int(candidates)
        self.exact_limit = exact_limit
        self.max_sweeps = max_sweeps

    def rule(self, core: Core) -> Decisions:
        cands, distinct = self.propose(core)  # [E, C, N], [E, C]
        scores = self.rollout_costs(core, cands, distinct)  # [E, C]
        e = scores.shape[0]
        return cands[np.arange(e), scores.argmin(1)]

    def propose(self, core: Core) -> tuple[Decisions, np.ndarray]:
        """Candidate joint decisions ``[E, C, N]``: the oracle's, greedy's, then the
        cheapest single-device deviations from the oracle's; and ``[E, C]`` whether each
        is a distinct candidate (False: a repeat of the oracle's, which pads the list where
        greedy agrees with the oracle or there are too few deviations)."""
        best = _oracle(core, self.exact_limit, self.max_sweeps, known=False)
        greedy = _greedy(core, known=False)
        has, _ = core.pending()
        e, n = has.shape
        c = self.candidates
        out = best.map(lambda a: np.repeat(a[:, None], c, 1))
        distinct = np.zeros((e, c), dtype=bool)
        distinct[:, 0] = True
        out[:, 1] = greedy
        distinct[:, 1] = ~_same(greedy, best)
        opts = _grid(core, with_weights=False)
        kk = opts.shape[0]
        n_dev = min(c - 2, n * kk)
        if n_dev == 0:
            return out, distinct
        # every (environment, device, option): the oracle's decision with one device moved
        r = np.arange(e * n * kk)
        dev = np.tile(np.repeat(np.arange(n), kk), e)
        opt = np.tile(np.arange(kk), e * n)
        of = r // kk  # flat (environment, device) of each row
        dec = best.map(lambda a: np.repeat(a, n * kk, 0))  # [E * N * K, N]
        moved = opts[opt]
        for a, b in zip(dec.fields(), moved.fields(), strict=True):
            a[r, dev] = b
        res = core.resolve(dec, rows=np.repeat(np.arange(e), n * kk), known=False)
        unchanged = _same(best.map(lambda a: a.reshape(-1)[of]), moved)
        skip = unchanged | res.infeasible.any(1) | ~has.reshape(-1)[of]
        cost = np.where(skip, np.inf, res.cost.sum(1)).reshape(e, n * kk)
        order = np.argsort(cost, axis=1, kind="stable")[:, :n_dev]  # [E, n_dev]
        ok = np.isfinite(np.take_along_axis(cost, order, 1))
        flat = np.arange(e)[:, None] * (n * kk) + order
        picked = dec[flat.reshape(-1)].map(lambda a: a.reshape(e, n_dev, n))
        out[:, 2 : 2 + n_dev] = Decisions.where(ok[..., None], picked, out[:, 2 : 2 + n_dev])
        distinct[:, 2 : 2 + n_dev] = ok
        return out, distinct

    def rollout_costs(
        self, core: Core, cands: Decisions, distinct: np.ndarray | None = None
    ) -> np.ndarray:
        """``[E, C]`` the total cost over ``horizon`` slots of each candidate followed by
        the greedy rule, each played on a copy of ``core`` (``inf`` where ``distinct`` says
        a candidate is a repeat; a candidate repeated in every environment is not played)."""
        e, c, _n = cands.shape
        if distinct is None:
            distinct = np.ones((e, c), dtype=bool)
        scores = np.zeros((e, c))
        for i in range(c):
            if not distinct[:, i].any():
                continue
            sim = copy.deepcopy(core)
            dec = cands[:, i]
            for h in range(self.horizon):
                live = ~sim.truncated
                if not live.any():
                    break
                res = sim.step(dec)
                scores[:, i] += np.where(live, res.cost.sum(1), 0.0)
                if h + 1 < self.horizon:
                    dec = _greedy(sim, known=False)
        return np.where(distinct, scores, np.inf)


def _same(a: Decisions, b: Decisions) -> np.ndarray:
    """``[...]`` True where two decisions agree on every device and field (last axis)."""
    eq = np.ones(a.shape, dtype=bool)
    for x, y in zip(a.fields(), b.fields(), strict=True):
        eq &= x == y
    return eq if eq.ndim == 1 else eq.all(-1)


#: name -> a constructor of the baseline with no arguments
BASELINES: dict[str, Callable[[], Baseline]] = {
    "local": Local,
    "offload": Offload,
    "random": RandomValid,
    "neurosurgeon": Neurosurgeon,
    "neurosurgeon_privileged": functools.partial(Neurosurgeon, privileged=True),
    "greedy": Greedy,
    "greedy_privileged": functools.partial(Greedy, privileged=True),
    "oracle": Oracle,
    "oracle_privileged": functools.partial(Oracle, privileged=True),
    "clairvoyant": Clairvoyant,
}


def make_baseline(name: str) -> Baseline:
    """A baseline by name (``BASELINES``)."""
    if name not in BASELINES:
        raise ValueError(f"baseline: {name!r} is not one of {sorted(BASELINES)}")
    return BASELINES[name]()


def seed_keys(seeds: Sequence[int]) -> np.ndarray:
    """The core keys that ``env.reset(seed=s)`` uses, so baselines see the same episodes."""
    return np.array(
        [seeding.np_random(int(s))[0].integers(0, 2**63, dtype=np.int64) for s in seeds],
        dtype=np.uint64,
    )


def run_episodes(
    policy: Baseline, scenario: str | Scenario, seeds: Sequence[int]
) -> dict[str, np.ndarray]:
    """Run one episode per seed (batched) and return per-seed metrics."""
    sc = load_scenario(scenario)
    core = Core(sc, len(seeds))
    core.reset(seed_keys(seeds))
    e = len(seeds)
    tot = EpisodeTotals(e)
    while not core.truncated.all():
        res = core.step(policy.decide(core))
        tot.add(slice(None), **vars(res))
    return tot.metrics(sc.horizon, sc.n_devices)


def evaluate_baselines(
    scenario: str | Scenario, seeds: Sequence[int], names: Sequence[str] | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Per-seed metrics of each baseline on the same episodes; each entry also holds
    ``seconds``, the wall time of its run."""
    out = {}
    for nm in names or BASELINES:
        pol = make_baseline(nm)
        t0 = time.perf_counter()
        m = run_episodes(pol, scenario, seeds)
        m["seconds"] = np.array(time.perf_counter() - t0)
        out[nm] = m
    return out


# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def _t975(df: int) -> float:
    """Student's t 97.5% quantile (a table to 30 degrees of freedom, then the first-order
    Cornish-Fisher expansion around the normal's 1.96, within 0.003 of the exact value)."""
    if df < 1:
        return float("nan")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df)


def summary(x: np.ndarray) -> tuple[float, float, float]:
    """Mean, standard deviation (``ddof=1``) and the half-width of the 95% confidence
    interval of the mean (Student's t) of per-seed values.

    >>> m, sd, ci = summary(np.array([1.0, 2.0, 3.0]))
    >>> m, sd, round(ci, 3)
    (2.0, 1.0, 2.484)
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 2:
        return float(x.mean()), float("nan"), float("nan")
    sd = float(x.std(ddof=1))
    return float(x.mean()), sd, _t975(n - 1) * sd / float(np.sqrt(n))


def format_table(res: dict[str, dict[str, np.ndarray]], scenario: str, n_seeds: int) -> str:
    """The CLI's table: one row per baseline, then the foresight gap (clairvoyant against
    the privileged myopic oracle, paired over seeds) when both were run."""
    lines = [
        f"scenario {scenario}, {n_seeds} seeds (cost per device-slot: mean, std and 95% CI "
        "half-width over seeds; the other columns are means over seeds)",
        f"{'policy':<24}{'cost':>8}{'std':>8}{'ci95':>8}{'lat ms':>9}{'miss %':>8}"
        f"{'E mJ':>8}{'drops':>7}{'time s':>8}",
    ]
    for nm, m in res.items():
        mean, sd, ci = summary(m["cost_per_slot"])
        lines.append(
            f"{nm:<24}{mean:>8.4f}{sd:>8.4f}{ci:>8.4f}"
            f"{1e3 * m['mean_latency_s'].mean():>9.1f}{100 * m['miss_rate'].mean():>8.1f}"
            f"{1e3 * m['mean_energy_j'].mean():>8.1f}{m['drops'].mean():>7.1f}"
            f"{float(m.get('seconds', np.nan)):>8.1f}"
        )
    if "clairvoyant" in res and "oracle_privileged" in res:
        a = res["clairvoyant"]["cost_per_slot"]
        b = res["oracle_privileged"]["cost_per_slot"]
        rel = (a - b) / b
        mean, _, ci = summary(rel)
        lines.append(
            f"clairvoyant vs oracle_privileged: {100 * mean:+.2f}% +- {100 * ci:.2f}% "
            f"(paired over seeds, 95% CI); total {100 * (a.mean() / b.mean() - 1):+.2f}%"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m edgesplit.agents.baselines --scenario dense --seeds 20``: the sanity table."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--scenario", default="dense")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--names", default=",".join(BASELINES))
    a = p.parse_args(argv)
    res = evaluate_baselines(a.scenario, range(a.seeds), a.names.split(","))
    print(format_table(res, a.scenario, a.seeds))


if __name__ == "__main__":
    main()
