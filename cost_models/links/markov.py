"""The Markov-modulated link step, written once.

A ``"markov"`` link's rate is ``m[k] * exp(x - s^2/2)``: a hidden state ``k`` redrawn from
its stationary law (uniform) with probability ``p_switch`` each slot, and the log ``x`` of a
fast factor stepped as an exact Ornstein-Uhlenbeck process (see
:mod:`edgesplit.cost_models.links` and ``docs/links.md``). This module holds that step for
any batch of links, each with its own class:

- :class:`MarkovStatics`: the per-link constants, solved once from the link classes and the
  slot length (:meth:`MarkovStatics.of`);
- :func:`markov_reset` and :func:`markov_step`: the reset and the step, on state arrays the
  caller owns (``state``, ``loglev``, ``x``), updated in place.

:class:`~edgesplit.cost_models.links.LinkProcess` (one class) and
:class:`~edgesplit.cost_models.links.LinkBank` (its Markov columns, any mix of classes) both
call these two functions; the compiled step of ``sim/kernel.py`` is the same arithmetic in
the same order, link by link, on the arrays of :meth:`LinkBank.markov_statics
<edgesplit.cost_models.links.LinkBank.markov_statics>`.

The last axis of every array is the link (length :attr:`MarkovStatics.n_links`, or 1 for
constants shared by every link); the leading axes are the batch.

>>> import numpy as np
>>> from edgesplit.cost_models.links import load_links
>>> cat = load_links()
>>> ms = MarkovStatics.of([cat["lte"], cat["wifi"]], slot_s=0.1)
>>> ms.n_links, ms.n_states.tolist(), ms.log_levels.shape
(2, [4, 4], (8,))
>>> state = np.zeros((3, 2), dtype=np.intp)
>>> loglev, x, ibuf = np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 2), dtype=np.intp)
>>> rng = np.random.default_rng(0)
>>> r0 = markov_reset(ms, rng.random((3, 2, 2)), state, loglev, x)
>>> r1 = markov_step(ms, rng.random((3, 2, 2)), state, loglev, x, ibuf)
>>> r1.shape, bool((r1 > 0).all()), bool(np.array_equal(r1, np.exp(x + loglev)))
((3, 2), True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgesplit.cost_models.links.calibration import markov_calibration, normal_table
from edgesplit.cost_models.links.catalogue import LinkClass, MarkovParams
from edgesplit.cost_models.links.traces import readonly

__all__ = [
    "N_RESET_UNIFORMS",
    "N_STEP_UNIFORMS",
    "MarkovStatics",
    "markov_reset",
    "markov_step",
]

#: Uniforms per link that a reset takes (the state, the fast factor).
N_RESET_UNIFORMS = 2
#: Uniforms per link that a step takes (the state's redraw, the fast factor's innovation).
N_STEP_UNIFORMS = 2


@dataclass(frozen=True, eq=False)
class MarkovStatics:
    """The constants of the Markov step, one entry per link (all arrays read-only).

    Attributes
    ----------
    n_states : numpy.ndarray
        ``[L]`` intp: number of states ``K`` of each link's class.
    log_levels : numpy.ndarray
        ``[L * kmax]`` float64: ``ln m[k] - s^2/2`` of each state, link ``r``'s states from
        ``row[r]`` (a class with fewer than ``kmax`` states repeats its last level).
    row : numpy.ndarray
        ``[L]`` intp: ``r * kmax``, where link ``r``'s levels start in ``log_levels``.
    p_switch : numpy.ndarray
        ``[L]`` float64: probability that the state is redrawn in a slot.
    k_over_p : numpy.ndarray
        ``[L]`` float64: ``K / p_switch`` (a uniform ``u < p_switch`` picks state
        ``floor(u * K / p_switch)``).
    rho : numpy.ndarray
        ``[L]`` float64: per-slot correlation of the fast factor's log.
    sigma : numpy.ndarray
        ``[L]`` float64: stationary SD ``s`` of the fast factor's log.
    innov : numpy.ndarray
        ``[L]`` float64: SD of its per-slot innovation, ``s * sqrt(1 - rho^2)``.
    table : numpy.ndarray
        ``[T]`` float64: the equiprobable standard normal draws
        (:func:`~edgesplit.cost_models.links.calibration.normal_table`); a uniform ``u``
        draws ``table[floor(u * T)]``.
    """

    n_states: np.ndarray
    log_levels: np.ndarray
    row: np.ndarray
    p_switch: np.ndarray
    k_over_p: np.ndarray
    rho: np.ndarray
    sigma: np.ndarray
    innov: np.ndarray
    table: np.ndarray

    @property
    def n_links(self) -> int:
        """Number of links ``L``."""
        return int(self.n_states.size)

    @property
    def kmax(self) -> int:
        """Largest number of states over the links (0 for no links)."""
        return int(self.n_states.max()) if self.n_states.size else 0

    @property
    def n_table(self) -> float:
        """Size ``T`` of the normal table, as a float (the scale of a uniform's index)."""
        return float(self.table.size)

    @classmethod
    def of(cls, links: Sequence[LinkClass], slot_s: float) -> MarkovStatics:
        """The constants of links of these ``"markov"`` classes, at this slot length.

        Parameters
        ----------
        links : sequence of LinkClass
            The class of each link (``"markov"`` only; may be empty).
        slot_s : float
            Slot length in seconds.

        Raises
        ------
        TypeError
            A class that is not ``"markov"``.
        """
        per_class: dict[LinkClass, tuple[int, np.ndarray, float, float, float, float]] = {}
        for lc in links:
            if lc not in per_class:
                per_class[lc] = _class_constants(lc, float(slot_s))
        rows = [per_class[lc] for lc in links]
        kmax = max((r[0] for r in rows), default=0)
        lev = np.zeros((len(rows), kmax))
        for i, (k, log_levels, *_) in enumerate(rows):
            lev[i, :k] = log_levels
            lev[i, k:] = log_levels[-1]
        k_arr = np.array([r[0] for r in rows], dtype=np.intp)
        p_switch = np.array([r[2] for r in rows], dtype=np.float64)
        return cls(
            n_states=readonly(k_arr),
            log_levels=readonly(lev.reshape(-1)),
            row=readonly(np.arange(len(rows), dtype=np.intp) * kmax),
            p_switch=readonly(p_switch),
            k_over_p=readonly(np.array([r[0] / r[2] for r in rows], dtype=np.float64)),
            rho=readonly(np.array([r[3] for r in rows], dtype=np.float64)),
            sigma=readonly(np.array([r[4] for r in rows], dtype=np.float64)),
            innov=readonly(np.array([r[5] for r in rows], dtype=np.float64)),
            table=normal_table(),
        )


def _class_constants(
    link: LinkClass, slot_s: float
) -> tuple[int, np.ndarray, float, float, float, float]:
    """``(K, log_levels, p_switch, rho, sigma, innov)`` of one ``"markov"`` class."""
    p = link.params
    if not isinstance(p, MarkovParams):
        raise TypeError(f"link class {link.name!r} is {link.kind!r}, not 'markov'")
    cal = markov_calibration(link)
    k = cal.levels_mbps.size
    log_levels = np.log(cal.levels_mbps) - 0.5 * cal.noise_sigma**2
    p_switch = -math.expm1(-cal.switch_rate_hz * slot_s)
    rho = math.exp(-slot_s / p.noise_tau_s)
    sigma = cal.noise_sigma
    innov = cal.noise_sigma * math.sqrt(max(0.0, 1.0 - rho**2))
    return k, log_levels, p_switch, rho, sigma, innov


def markov_reset(
    ms: MarkovStatics,
    u: np.ndarray,
    state: np.ndarray,
    loglev: np.ndarray,
    x: np.ndarray,
    rows: slice | np.ndarray = slice(None),
) -> np.ndarray:
    """Draw links from their stationary law; return the rates (no floor), a new array.

    Parameters
    ----------
    ms : MarkovStatics
        The links' constants.
    u : numpy.ndarray
        ``[..., L, >= 2]`` uniforms in [0, 1): ``u[..., 0]`` picks the state,
        ``u[..., 1]`` the fast factor (further entries are ignored).
    state, loglev, x : numpy.ndarray
        ``[..., L]`` the state (intp), the log level of the state (float64) and the log of
        the fast factor (float64); the selected rows are rewritten in place.
    rows : slice or numpy.ndarray of bool, optional
        The rows (first axis) to draw; the others keep their state.

    Returns
    -------
    numpy.ndarray
        ``exp(x + loglev)`` over every row, ``[..., L]``.
    """
    uu = u[rows]
    st = np.minimum((uu[..., 0] * ms.n_states).astype(np.intp), ms.n_states - 1)
    state[rows] = st
    loglev[rows] = ms.log_levels.take(ms.row + st)
    zi = (uu[..., 1] * ms.n_table).astype(np.intp)
    x[rows] = ms.sigma * ms.table.take(zi, mode="clip")
    return np.exp(x + loglev)


def markov_step(
    ms: MarkovStatics,
    u: np.ndarray,
    state: np.ndarray,
    loglev: np.ndarray,
    x: np.ndarray,
    ibuf: np.ndarray,
) -> np.ndarray:
    """Advance links by one slot; return the new rates (no floor), a new array.

    The state is redrawn where ``u[..., 0] < p_switch`` (given a redraw,
    ``u[..., 0] / p_switch`` is itself uniform on [0, 1) and picks the new state); the fast
    factor's log takes an exact Ornstein-Uhlenbeck step, ``x <- rho x + innov z`` with ``z``
    the normal draw of ``u[..., 1]``.

    Parameters
    ----------
    ms : MarkovStatics
        The links' constants.
    u : numpy.ndarray
        ``[..., L, >= 2]`` uniforms in [0, 1) (further entries are ignored).
    state, loglev, x : numpy.ndarray
        ``[..., L]``, C-contiguous, updated in place (as :func:`markov_reset`).
    ibuf : numpy.ndarray
        ``[..., L]`` intp scratch space (overwritten).

    Returns
    -------
    numpy.ndarray
        ``exp(x + loglev)``, ``[..., L]``.
    """
    u0 = u[..., 0]
    hit = np.flatnonzero(u0 < ms.p_switch)
    if hit.size:
        rr = hit % ms.n_states.size  # the link of each hit (C order: the last axis is fastest)
        st = np.minimum(
            (u0.reshape(-1)[hit] * ms.k_over_p[rr]).astype(np.intp), ms.n_states[rr] - 1
        )
        state.reshape(-1)[hit] = st  # C-contiguous: reshape is a view
        loglev.reshape(-1)[hit] = ms.log_levels.take(ms.row[rr] + st)
    # fast factor: exact Ornstein-Uhlenbeck step of its log
    np.multiply(u[..., 1], ms.n_table, out=ibuf, casting="unsafe")
    z = ms.table.take(ibuf, mode="clip")
    z *= ms.innov
    x *= ms.rho
    x += z
    np.add(x, loglev, out=z)
    return np.exp(z, out=z)
