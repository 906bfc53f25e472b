"""Baseline policies: the yardsticks every learned policy is reported against.

Each baseline decides, for every environment of a batched :class:`~edgesplit.sim.core.Core`,
the split, target and weights of each device's pending task (:meth:`Baseline.decide`), and
can act in any EdgeSplit Gymnasium env through :meth:`Baseline.act`. They read the
simulator's state (cost tables, current link rates, backlogs): they are privileged,
model-based references, not learned agents.

========================  ==================================================================
name                      rule
========================  ==================================================================
``local``                 every task runs whole on its device
``offload``               full offload (raw input) to the home edge server
``random``                uniformly random among feasible (split, target, weights)
``neurosurgeon``          each task's own best (split, target) under the current link rate
                          and backlogs, blind to the other devices' choices this slot
                          (Kang et al., ASPLOS 2017, extended to several targets)
``greedy``                devices in turn, each picking the (split, target) that minimises the
                          slot's total cost given the devices before it (sees contention)
``oracle``                myopic oracle: exact search over the slot's joint (split, target)
                          when the joint space has at most ``exact_limit`` points, else
                          iterated best response from the greedy start over (split, target,
                          weights) until no device can lower the slot's cost
========================  ==================================================================

``neurosurgeon``, ``greedy`` and the exact ``oracle`` give every task equal weights (the
highest level); only the oracle's best-response stage searches the weights too.

>>> from edgesplit.sim.core import Core
>>> from edgesplit.sim.scenario import load_scenario
>>> core = Core(load_scenario("single"), num_envs=2)
>>> core.reset(keys=[1, 2])
>>> dec = make_baseline("neurosurgeon").decide(core)
>>> dec.split.shape
(2, 1)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

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
    "decisions_to_action",
    "evaluate_baselines",
    "make_baseline",
    "run_episodes",
]


def _full(core: Core, split: np.ndarray, target: np.ndarray) -> Decisions:
    """Every device's split and target, at the top weight level."""
    top = core.tables.weight_levels.max()
    levels = {f.name: top for f in DECISION_FIELDS if f.kind == "level"}
    return Decisions.filled(split.shape, split=split, target=target, **levels)


@dataclass
class Baseline:
    """A rule over the simulator's state; subclasses implement :meth:`decide`."""

    name: str = "baseline"

    def decide(self, core: Core) -> Decisions:  # pragma: no cover - interface
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


class Local(Baseline):
    def __init__(self) -> None:
        super().__init__("local")

    def decide(self, core: Core) -> Decisions:
        _, app = core.pending()
        return _full(
            core, core.tables.n_valid[app] - 1, np.broadcast_to(core.tables.home, app.shape)
        )


class Offload(Baseline):
    def __init__(self) -> None:
        super().__init__("offload")

    def decide(self, core: Core) -> Decisions:
        _, app = core.pending()
        return _full(core, np.zeros_like(app), np.broadcast_to(core.tables.home, app.shape))


class RandomValid(Baseline):
    """Uniform over feasible choices; its own seeded generator."""

    def __init__(self, seed: int | None = 0) -> None:
        super().__init__("random")
        self.rng = np.random.default_rng(seed)

    def decide(self, core: Core) -> Decisions:
        ta = core.tables
        _, app = core.pending()
        nv = ta.n_valid[app]
        split = (self.rng.random(app.shape) * nv).astype(np.int64)
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
) -> tuple[Decisions, np.ndarray]:
    """Set device ``k`` to its option minimising the slot cost (of the active devices, or
    its own), in every environment where it has a task, all at once. Returns the new
    decisions and their cost ``[E]`` (``inf`` where device ``k`` has no task)."""
    e, _n = cur.shape
    has, _ = core.pending()
    envs = np.flatnonzero(has[:, k] & active[:, k])
    out = cur.copy()
    best_cost = np.full(e, np.inf)
    if len(envs) == 0:
        return out, best_cost
    dec, c = _best_rows(core, cur[envs], k, active[envs], opts, own_only, envs)
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
) -> tuple[Decisions, np.ndarray]:
    e, _n = cur.shape
    kk = opts.shape[0]
    rows = np.repeat(envs, kk)
    dec = cur.map(lambda a: np.repeat(a, kk, 0))
    dec[:, k] = opts.map(lambda a: np.tile(a, e))
    act = np.repeat(active, kk, 0)
    res = core.resolve(dec, rows=rows, active=act)
    cost = res.cost[:, k] if own_only else res.cost.sum(1)
    cost = cost.reshape(e, kk)
    best = cost.argmin(1)
    pick = np.arange(e) * kk + best
    return dec[pick], cost[np.arange(e), best]


class Neurosurgeon(Baseline):
    def __init__(self) -> None:
        super().__init__("neurosurgeon")

    def decide(self, core: Core) -> Decisions:
        _has, app = core.pending()
        cur = Local().decide(core)
        opts = _grid(core, with_weights=False)
        e, n = app.shape
        for k in range(n):
            alone = np.zeros((e, n), dtype=bool)
            alone[:, k] = True
            best, _ = _best_response(core, cur, k, alone, opts, own_only=True)
            cur[:, k] = best[:, k]
        return cur


class Greedy(Baseline):
    def __init__(self) -> None:
        super().__init__("greedy")

    def decide(self, core: Core) -> Decisions:
        _, app = core.pending()
        e, n = app.shape
        cur = Local().decide(core)
        opts = _grid(core, with_weights=False)
        active = np.zeros((e, n), dtype=bool)
        for k in range(n):
            active[:, k] = True
            cur, _ = _best_response(core, cur, k, active, opts)
        return cur


class Oracle(Baseline):
    """Myopic oracle (see the module table). ``exact_limit``: joint points per environment
    up to which the search is exhaustive; ``max_sweeps`` bounds the best-response stage."""

    def __init__(self, exact_limit: int = 4096, max_sweeps: int = 10) -> None:
        super().__init__("oracle")
        self.exact_limit = exact_limit
        self.max_sweeps = max_sweeps

    def decide(self, core: Core) -> Decisions:
        _, app = core.pending()
        e, n = app.shape
        opts = _grid(core, with_weights=False)
        kk = opts.shape[0]
        if kk**n <= self.exact_limit:
            return self._exact(core, opts)
        cur = Greedy().decide(core)
        cost = core.resolve(cur).cost.sum(1)
        opts_w = _grid(core, with_weights=True)
        everyone = np.ones((e, n), dtype=bool)
        for _ in range(self.max_sweeps):
            improved = False
            for k in range(n):
                cand, c = _best_response(core, cur, k, everyone, opts_w)
                better = c < cost - 1e-12
                if better.any():
                    improved = True
                    cur[better] = cand[better]
                    cost = np.where(better, c, cost)
            if not improved:
                break
        return cur

    def _exact(self, core: Core, opts: Decisions) -> Decisions:
        _, app = core.pending()
        e, n = app.shape
        kk = opts.shape[0]
        combos = np.array(list(itertools.product(range(kk), repeat=n)), dtype=np.int64)  # [C, N]
        c = len(combos)
        rows = np.repeat(np.arange(e), c)
        idx = np.tile(combos, (e, 1))
        dec = opts[idx]
        cost = core.resolve(dec, rows=rows).cost.sum(1).reshape(e, c)
        pick = np.arange(e) * c + cost.argmin(1)
        return dec[pick]


BASELINES = {
    "local": Local,
    "offload": Offload,
    "random": RandomValid,
    "neurosurgeon": Neurosurgeon,
    "greedy": Greedy,
    "oracle": Oracle,
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
    """Per-seed metrics of each baseline on the same episodes."""
    return {nm: run_episodes(make_baseline(nm), scenario, seeds) for nm in (names or BASELINES)}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m edgesplit.agents.baselines --scenario dense --seeds 20``: the sanity table."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--scenario", default="dense")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--names", default=",".join(BASELINES))
    a = p.parse_args(argv)
    res = evaluate_baselines(a.scenario, range(a.seeds), a.names.split(","))
    print(f"scenario {a.scenario}, {a.seeds} seeds (mean over seeds; cost per device-slot)")
    print(f"{'policy':<14}{'cost':>8}{'+-':>7}{'lat ms':>9}{'miss %':>8}{'E mJ':>8}{'drops':>7}")
    for nm, m in res.items():
        c = m["cost_per_slot"]
        print(
            f"{nm:<14}{c.mean():>8.3f}{c.std(ddof=1) / np.sqrt(len(c)):>7.3f}"
            f"{1e3 * m['mean_latency_s'].mean():>9.1f}{100 * m['miss_rate'].mean():>8.1f}"
            f"{1e3 * m['mean_energy_j'].mean():>8.1f}{m['drops'].mean():>7.1f}"
        )


if __name__ == "__main__":
    main()
