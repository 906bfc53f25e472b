"""Text rendering of a slot (``render_mode="ansi"``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgesplit.sim.core import Core
    from edgesplit.sim.schema import StepResult


def render_slot(core: Core, res: StepResult | None, e: int = 0) -> str:
    """A readable summary of environment ``e``: the last slot's decisions and outcomes,
    then the current backlogs and link rates."""
    ta = core.tables
    lines = [f"slot {int(core.t[e])}/{core.scenario.horizon}  scenario {core.scenario.name}"]
    if res is not None:
        lines.append(
            f"{'device':<12}{'app':<14}{'split':<22}{'target':<9}{'lat ms':>8}"
            f"{'dl ms':>8}{'E mJ':>8}  flags"
        )
        for i, name in enumerate(ta.device_names):
            if not res.has_task[e, i]:
                lines.append(f"{name:<12}{'-':<14}")
                continue
            a = int(res.app[e, i])
            s = int(res.split[e, i])
            cand = ta.candidate_names[a][s]
            local = s == ta.n_valid[a] - 1
            tgt = "local" if local else ta.target_names[int(res.target[e, i])]
            flags = []
            if res.deadline_miss[e, i]:
                flags.append("MISS")
            if res.infeasible[e, i]:
                flags.append("MASKED")
            if res.dropped[e, i]:
                flags.append(f"DROP{int(res.dropped[e, i])}")
            lines.append(
                f"{name:<12}{ta.app_names[a]:<14}{s:>2} {cand[:19]:<19}{tgt:<9}"
                f"{1e3 * res.latency_s[e, i]:>8.1f}{1e3 * ta.deadline_s[a]:>8.0f}"
                f"{1e3 * res.energy_j[e, i]:>8.1f}  {' '.join(flags)}"
            )
    qs = ", ".join(
        f"{n}={1e3 * b:.0f}ms" for n, b in zip(ta.target_names, core.srv_backlog[e], strict=False)
    )
    lines.append(f"server backlog: {qs}")
    rates = np.round(core.rates[e], 1)
    lines.append(
        "link Mbps: "
        + "; ".join(
            f"{d}: " + "/".join(f"{r:g}" for r in rates[i]) for i, d in enumerate(ta.device_names)
        )
    )
    return "\n".join(lines)
