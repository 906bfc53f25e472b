"""Rendering of a slot: text (``render_mode="ansi"``) and a small picture
(``render_mode="rgb_array"``, drawn with numpy alone, for video recorders).

>>> from edgesplit.sim.core import Core
>>> from edgesplit.sim.scenario import load_scenario
>>> core = Core(load_scenario("single"), 1)
>>> frame = render_rgb(core, None, 0)
>>> frame.dtype.name, frame.shape[2], frame.shape[0] % 16, frame.shape[1] % 16
('uint8', 3, 0, 0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgesplit.sim.core import Core
    from edgesplit.sim.schema import StepResult

__all__ = ["RENDER_MODES", "check_render_mode", "render_rgb", "render_slot"]

#: the render modes every face offers
RENDER_MODES = ("ansi", "rgb_array")


def check_render_mode(render_mode: str | None) -> str | None:
    """``render_mode`` if it is one of :data:`RENDER_MODES` or ``None``; a clear error
    naming the argument otherwise."""
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode: {render_mode!r} is not one of {[*RENDER_MODES, None]}")
    return render_mode


def render_slot(core: Core, res: StepResult | None, e: int = 0) -> str:
    """A readable summary of environment ``e``: the last slot's decisions and outcomes,
    then the current backlogs, link rates and batteries."""
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
    bat = ta.battery_j > 0
    if bat.any():  # battery-powered devices: charge (and budget deficit, where owed)
        st = core.state
        lines.append(
            "battery J: "
            + "; ".join(
                f"{d}: {st.charge[e, i]:.1f}/{ta.battery_j[i]:g}"
                + (f" owes {st.energy_debt[e, i]:.1f}" if st.energy_debt[e, i] > 0 else "")
                for i, d in enumerate(ta.device_names)
                if bat[i]
            )
        )
    return "\n".join(lines)


# the picture -----------------------------------------------------------------------------
_W = 320  # frame width (a multiple of 16, as video encoders want)
_ROW = 12  # height of a device's row
_GAP = 2
_BG = (24, 24, 28)
_IDLE = (70, 70, 78)
_LOCAL = (150, 150, 150)
_MET = (60, 190, 90)
_MISS = (220, 60, 50)
_FLAG = (230, 80, 230)
_SPLIT = (240, 160, 40)
_LINK = (70, 190, 220)
_CLOCK = (90, 120, 230)
# one colour per target (edge servers, then the cloud), cycling where there are more
_TARGETS = np.array(
    [(230, 200, 60), (90, 160, 240), (200, 110, 220), (120, 220, 200), (240, 130, 100)],
    dtype=np.uint8,
)


def _bar(img: np.ndarray, y: int, x0: int, x1: int, frac: float, colour, h: int = _ROW) -> None:
    """Fill ``[y, y + h) x [x0, x0 + frac * (x1 - x0))`` with ``colour``."""
    w = round(float(np.clip(frac, 0.0, 1.0)) * (x1 - x0))
    img[y : y + h, x0 : x0 + w] = colour


def render_rgb(core: Core, res: StepResult | None, e: int = 0) -> np.ndarray:
    """A small picture of environment ``e`` (``uint8 [H, 320, 3]``, ``H`` a multiple of 16).

    From the top: the slot clock (share of the horizon gone); one row per device: a square
    (light: a task this slot), the split (how much of the network ran on the device), the
    target's colour (grey: all local), latency over the deadline (green: met, red: missed,
    the deadline at mid-bar) with a magenta tick for a masked choice or a drop, and the
    link rates to each access point; at the bottom, each target's backlog in its colour.
    """
    ta = core.tables
    n, j = ta.n_devices, ta.n_targets
    h = 8 + _GAP + n * (_ROW + _GAP) + _GAP + _ROW + _GAP
    h = -(-h // 16) * 16
    img = np.empty((h, _W, 3), dtype=np.uint8)
    img[:] = _BG
    _bar(img, 0, 0, _W, float(core.t[e]) / max(core.scenario.horizon, 1), _CLOCK, h=8)
    rates = np.asarray(core.rates[e], dtype=np.float64)  # [N, M] Mbps
    m = rates.shape[1]
    y = 8 + _GAP
    for i in range(n):
        task = res is not None and bool(res.has_task[e, i])
        img[y : y + _ROW, 0:_ROW] = (235, 235, 235) if task else _IDLE
        if task:
            a = int(res.app[e, i])
            s = int(res.split[e, i])
            nv = max(int(ta.n_valid[a]) - 1, 1)
            _bar(img, y, 16, 96, s / nv, _SPLIT)
            local = s == int(ta.n_valid[a]) - 1
            colour = _LOCAL if local else _TARGETS[int(res.target[e, i]) % len(_TARGETS)]
            img[y : y + _ROW, 100:116] = colour
            ratio = float(res.latency_s[e, i]) / float(ta.deadline_s[a])
            met = not bool(res.deadline_miss[e, i])
            _bar(img, y, 120, 232, ratio / 2.0, _MET if met else _MISS)
            img[y : y + _ROW, 176] = (255, 255, 255)  # the deadline
            if bool(res.infeasible[e, i]) or int(res.dropped[e, i]) > 0:
                img[y : y + _ROW, 234:238] = _FLAG
        # link rates, squashed: 1 - exp(-r / 50 Mbps), one thin bar per access point
        sub = max(_ROW // max(m, 1), 1)
        for k in range(m):
            frac = 1.0 - float(np.exp(-rates[i, k] / 50.0))
            _bar(img, y + k * sub, 244, _W, frac, _LINK, h=max(sub - 1, 1))
        y += _ROW + _GAP
    # target backlogs, squashed: 1 - exp(-b / 0.1 s)
    y += _GAP
    width = (_W - 4) // max(j, 1)
    for k in range(j):
        frac = 1.0 - float(np.exp(-float(core.srv_backlog[e][k]) / 0.1))
        x0 = 2 + k * width
        img[y : y + _ROW, x0 : x0 + width - 2] = _IDLE
        _bar(img, y, x0, x0 + width - 2, frac, _TARGETS[k % len(_TARGETS)])
    return img
