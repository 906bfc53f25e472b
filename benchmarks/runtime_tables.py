"""Markdown tables from the runtime's JSON reports (issue 10), as docs/runtime.md prints them.

``validate`` reports (``benchmarks/runtime_validate.sh`` writes ``ENGINE_NETWORK_RATE.json``)
become one row per run; ``demo`` reports (``benchmarks/runtime_demo.sh`` writes
``demo_*.json``) one row per rule and run, with the rankings compared::

    python -m benchmarks.runtime_tables validate DIR [--bar 0.10]
    python -m benchmarks.runtime_tables demo DIR [--bar 0.15]

Every figure is read from the reports; nothing is recomputed except the summary counts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

NETWORK_ORDER = ("resnet18", "mobilenet_v2", "alexnet", "resnet50", "vgg16")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * abs(x):.1f}%"


def _load(paths: Sequence[Path]) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        if p.stat().st_size == 0:  # a run still writing, or one that failed: said, not hidden
            print(f"{p}: empty, left out", file=sys.stderr)
            continue
        try:
            out.append(json.loads(p.read_text()) | {"_file": p.name})
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: not a JSON report ({e})") from e
    return out


def validate_table(reports: Sequence[dict[str, Any]], bar: float = 0.10) -> str:
    """One row per ``validate`` run, then how many runs meet ``bar`` per engine."""

    def key(r: dict[str, Any]) -> tuple:
        n = r["network"]
        return (NETWORK_ORDER.index(n) if n in NETWORK_ORDER else 99, n, r["engine"],
                r["rate_mbps"])  # fmt: skip

    rows = [
        "| network | engine (class) | Mbps | e2e (headline) | head | transfer | tail "
        "| e2e, CPU against the profile's CPU | load (1 min) | time (UTC) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    per_engine: dict[str, list[float]] = {}
    for r in sorted(reports, key=key):
        c = r["median_abs_rel_error_components"]
        cpu = r.get("median_abs_rel_error_cpu_vs_cpu") or {}
        per_engine.setdefault(r["engine"], []).append(r["median_abs_rel_error"])
        rows.append(
            f"| {r['network']} | {r['engine']} (`{r['device_class']}`) | {r['rate_mbps']:g} "
            f"| {_pct(r['median_abs_rel_error'])} | {_pct(c.get('head_s'))} "
            f"| {_pct(c.get('transfer_s'))} | {_pct(c.get('tail_s'))} "
            f"| {_pct(cpu.get('end_to_end_s'))} | {r['load_average_1m']:.1f} "
            f"| {r['date'][11:16]} |"
        )
    rows.append("")
    for e, errs in per_engine.items():
        ok = sum(x <= bar for x in errs)
        rows.append(
            f"* {e}: end-to-end within {bar:.0%} in {ok} of {len(errs)} runs; median "
            f"{100 * statistics.median(errs):.1f}%, worst {100 * max(errs):.1f}%"
        )
    return "\n".join(rows)


def demo_table(reports: Sequence[dict[str, Any]], bar: float = 0.15) -> str:
    """Per rule and run: measured / slotted simulator / cost-model replay, then the rankings,
    counted per decision clock (a report from before the clock existed: ``arrival``)."""
    rows = [
        "| policy | seed | tasks | rule | p50 ms | sim p50 error | mean ms | p90 ms "
        "| deadline misses | offloaded p50 ms | task by task, sim / replay | clock "
        "| from decision: p50 ms, task by task |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    counts: dict[str, list[int]] = {}  # clock -> within, rule-runs, agree mean, agree p50, runs

    def trio(r: dict[str, Any], stat: str, scale: float = 1e3, fmt: str = ".0f") -> str:
        vals = (r[s][stat] for s in ("measured", "slotted_sim", "cost_model_replay"))
        return " / ".join(f"{v * scale:{fmt}}" for v in vals)

    for rep in reports:
        pol = Path(rep.get("policy", rep["_file"])).parent.name or rep["_file"]
        clock = rep.get("clock", "arrival")
        c = counts.setdefault(clock, [0, 0, 0, 0, 0])
        for rule, r in rep["rules"].items():
            err = r["slotted_sim"]["p50_s"] / r["measured"]["p50_s"] - 1
            c[0] += abs(err) <= bar
            c[1] += 1
            off = r["offloaded"]["p50_s"]
            sides = ("measured", "slotted_sim", "cost_model_replay")
            off_s = " / ".join("-" if off[s] is None else f"{off[s] * 1e3:.0f}" for s in sides)
            mare = r["median_abs_rel_error"]
            fd = r.get("from_decision")
            fd_s = (
                f"{fd['p50_s']['measured'] * 1e3:.0f} / {fd['p50_s']['slotted_sim'] * 1e3:.0f}, "
                f"{_pct(fd['median_abs_rel_error'])}"
                if fd
                else "-"
            )
            if r.get("decision_slots_agree") is False:  # not the replay's tasks and slots
                fd_s += ", decision slots differ"
            rows.append(
                f"| {pol} | {rep['seed']} | {rep['tasks']} | {rule} | {trio(r, 'p50_s')} "
                f"| {err:+.0%} | {trio(r, 'mean_s')} | {trio(r, 'p90_s')} "
                f"| {trio(r, 'deadline_miss_rate', 100, '.1f')} % | {off_s} "
                f"| {_pct(mare.get('slotted_sim'))} / {_pct(mare.get('cost_model_replay'))} "
                f"| {clock} | {fd_s} |"
            )
        rk = rep["ranking_by_mean_latency"]
        c[2] += rk["measured"] == rk["slotted_sim"]
        rk = rep["ranking_by_p50"]
        c[3] += rk["measured"] == rk["slotted_sim"]
        c[4] += 1
    rows.append("")
    for clock, (within, n_rules, agree_mean, agree_p50, n) in counts.items():
        rows += [
            f"* {clock} clock: slotted simulator's p50 within {bar:.0%} of the measured one: "
            f"{within} of {n_rules} rule-runs",
            f"* {clock} clock: ranking of the rules by mean latency, simulator against "
            f"measured: the same in {agree_mean} of {n} runs; by p50: {agree_p50} of {n}",
        ]
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.runtime_tables", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("kind", choices=("validate", "demo"))
    ap.add_argument("dir", type=Path)
    ap.add_argument("--bar", type=float, help="the issue's bar (default 0.10 / 0.15)")
    args = ap.parse_args(argv)
    if args.bar is not None and not 0.0 <= args.bar < float("inf"):  # NaN fails too
        ap.error(f"--bar = {args.bar!r}: expected a fraction >= 0 (0.10 is 10%)")
    if args.kind == "validate":
        files = [p for p in sorted(args.dir.glob("*_*_*.json")) if not p.name.startswith("demo")]
    else:
        files = sorted(args.dir.glob("demo_*.json"))
    reports = _load(files)
    if not reports:  # none, or every one empty (said above)
        print(f"dir: no {args.kind} reports in {args.dir}", file=sys.stderr)
        return 2
    if args.kind == "validate":  # --bar 0 is a bar: only None takes the default
        table = validate_table(reports, 0.10 if args.bar is None else args.bar)
    else:
        table = demo_table(reports, 0.15 if args.bar is None else args.bar)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
