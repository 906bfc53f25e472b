"""The Markov-modulated generator solved from a class's figures, and the long-run statistics
of every kind of link class.

A ``"markov"`` class's hidden state ``k`` (one of ``n_states``) sets a level ``m_k``; on top
of it a log-normal factor ``exp(x - s^2/2)`` whose log ``x`` is an Ornstein-Uhlenbeck
process. :func:`markov_calibration` solves the levels and ``s`` from the class's mean, SD and
``state_share`` so that the long-run mean and SD equal the class's figures;
:func:`transition_matrix` is the exact per-slot transition matrix of the state;
:func:`stationary_stats` gives the long-run mean, SD and median of any class.
:func:`normal_table` is the table of equiprobable normal draws the link processes use.

>>> from edgesplit.cost_models.links import load_links
>>> lte = load_links()["lte"]
>>> st = stationary_stats(lte)
>>> round(st.mean_mbps, 6) == lte.mean_mbps, round(st.sd_mbps, 6) == lte.sd_mbps
(True, True)
>>> transition_matrix(lte, 0.1).sum(axis=1).round(12).tolist()
[1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from edgesplit.cost_models.links.catalogue import (
    FLOOR_MBPS,
    LinkClass,
    MarkovParams,
    TraceParams,
    WiredParams,
)
from edgesplit.cost_models.links.traces import readonly

__all__ = [
    "MarkovCalibration",
    "StationaryStats",
    "markov_calibration",
    "normal_table",
    "stationary_stats",
    "transition_matrix",
]

_NORMAL_TABLE_BITS = 14  # 16384 equiprobable bins for the normal draws


def _norm_ppf(p: np.ndarray) -> np.ndarray:
    """Inverse standard normal CDF (Acklam's rational approximation, rel. error < 1.2e-9)."""
    a = (
        -3.969683028665376e01,
        2.209460984245205e02,
        -2.759285104469687e02,
        1.383577518672690e02,
        -3.066479806614716e01,
        2.506628277459239e00,
    )
    b = (
        -5.447609879822406e01,
        1.615858368580409e02,
        -1.556989798598866e02,
        6.680131188771972e01,
        -1.328068155288572e01,
    )
    c = (
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e00,
        -2.549732539343734e00,
        4.374664141464968e00,
        2.938163982698783e00,
    )
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    p = np.asarray(p, dtype=np.float64)
    out = np.empty_like(p)
    lo, hi = p < 0.02425, p > 1 - 0.02425
    mid = ~(lo | hi)
    q = p[mid] - 0.5
    r = q * q
    out[mid] = ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (
        ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1
    )
    for sel, sign, pp in ((lo, 1.0, p[lo]), (hi, -1.0, 1 - p[hi])):
        q = np.sqrt(-2 * np.log(pp))
        out[sel] = (
            sign
            * (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
            / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        )
    return out


def _norm_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


@functools.cache
def normal_table() -> np.ndarray:
    """Standard normal draws by table: entry i is E[Z | Z in the i-th of N equiprobable bins].

    Rescaled to unit variance, so the draw ``table[floor(u * N)]`` of a uniform ``u`` has
    mean 0 and variance 1 exactly, and tails cut at about 3.9 SD.
    """
    n = 1 << _NORMAL_TABLE_BITS
    edges = np.concatenate(([-np.inf], _norm_ppf(np.arange(1, n) / n), [np.inf]))
    pdf = np.where(np.isfinite(edges), _norm_pdf(np.where(np.isfinite(edges), edges, 0)), 0.0)
    z = n * (pdf[:-1] - pdf[1:])
    z -= z.mean()
    z /= np.sqrt(np.mean(z * z))
    return readonly(z)


@dataclass(frozen=True)
class MarkovCalibration:
    """The solved generator of a ``"markov"`` class.

    Attributes
    ----------
    levels_mbps : numpy.ndarray
        Mean rate in each state, ``[n_states]``, ascending.
    state_probs : numpy.ndarray
        Stationary probability of each state (uniform).
    noise_sigma : float
        Standard deviation ``s`` of the log of the fast factor.
    switch_rate_hz : float
        Rate at which the state is redrawn from ``state_probs``.
    """

    levels_mbps: np.ndarray
    state_probs: np.ndarray
    noise_sigma: float
    switch_rate_hz: float


@functools.lru_cache(maxsize=256)
def _calibrate(mean: float, sd: float, k: int, share: float, dwell_s: float) -> MarkovCalibration:
    cv2 = (sd / mean) ** 2
    var_log = math.log1p(cv2)  # log-variance of a log-normal with this mean and SD
    sigma = math.sqrt((1.0 - share) * var_log)
    z = _norm_ppf((np.arange(k) + 0.5) / k)
    z = (z - z.mean()) / z.std()

    def cv2_of(a: float) -> float:
        e = np.exp(a * z)
        return math.exp(sigma * sigma) * float(np.mean(e * e)) / float(np.mean(e)) ** 2 - 1.0

    lo, hi = 0.0, 1.0
    if share > 0:
        while cv2_of(hi) < cv2:
            hi *= 2.0
            if hi > 1e3:
                raise ValueError(f"cannot reach CV {math.sqrt(cv2):.3g} with {k} states")
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if cv2_of(mid) < cv2 else (lo, mid)
    a = 0.5 * (lo + hi) if share > 0 else 0.0
    e = np.exp(a * z)
    levels = mean * e / e.mean()
    return MarkovCalibration(
        levels_mbps=readonly(levels),
        state_probs=readonly(np.full(k, 1.0 / k)),
        noise_sigma=sigma,
        switch_rate_hz=k / ((k - 1) * dwell_s),
    )


def markov_calibration(link: LinkClass) -> MarkovCalibration:
    """Solve the generator of a ``"markov"`` class from its mean, SD and parameters.

    The log-variance of a log-normal with the class's mean and SD, ``v = ln(1 + CV^2)``,
    is split into ``state_share * v`` for the states and the rest for the fast factor
    (``noise_sigma^2 = (1 - state_share) v``). The state levels are
    ``m_k = c * exp(a * z_k)`` with ``z_k`` the standardised normal quantiles at
    ``(k + 1/2) / K``; ``a`` is solved so that the mixture's SD is exactly ``sd_mbps``
    and ``c`` so that its mean is exactly ``mean_mbps``.

    Parameters
    ----------
    link : LinkClass
        A ``"markov"`` class.

    Returns
    -------
    MarkovCalibration
        Levels, state probabilities, ``noise_sigma`` and the state's redraw rate (cached).
    """
    p = link.params
    if not isinstance(p, MarkovParams):
        raise TypeError(f"link class {link.name!r} is {link.kind!r}, not 'markov'")
    return _calibrate(link.mean_mbps, link.sd_mbps, p.n_states, p.state_share, p.dwell_s)


def transition_matrix(link: LinkClass, slot_s: float) -> np.ndarray:
    """Per-slot state transition matrix of a ``"markov"`` class.

    ``P = exp(-lam * slot_s) I + (1 - exp(-lam * slot_s)) 1 pi^T``, the exact
    ``expm(Q * slot_s)`` of a generator that redraws the state from ``pi`` at rate
    ``lam``; hence ``P(a) @ P(b) == P(a + b)`` for any slot lengths.

    Parameters
    ----------
    link : LinkClass
        A ``"markov"`` class.
    slot_s : float
        Slot length in seconds.

    Returns
    -------
    numpy.ndarray
        ``[n_states, n_states]``, rows summing to 1: ``P[i, j]`` = Pr(next state j | i).
    """
    cal = markov_calibration(link)
    stay = math.exp(-cal.switch_rate_hz * slot_s)
    k = cal.levels_mbps.size
    return stay * np.eye(k) + (1.0 - stay) * np.outer(np.ones(k), cal.state_probs)


@dataclass(frozen=True)
class StationaryStats:
    """Long-run statistics of a link class's rate, in Mbps."""

    mean_mbps: float
    sd_mbps: float
    median_mbps: float


def stationary_stats(link: LinkClass, slot_s: float = 1.0) -> StationaryStats:
    """Long-run mean, SD and median of the rate a :class:`LinkProcess` of this class gives.

    Analytic for ``"markov"`` (a mixture of log-normals, ignoring the 0.01 Mbps floor)
    and ``"wired"``; for ``"trace"``, exact over the traces resampled to ``slot_s`` (each
    trace equally likely, each slot of it equally likely), floor and scale included.

    Parameters
    ----------
    link : LinkClass
        Any class.
    slot_s : float, optional
        Slot length in seconds (matters for ``"trace"`` only).

    Returns
    -------
    StationaryStats
    """
    if isinstance(link.params, WiredParams):
        r = link.params.rate_mbps
        return StationaryStats(r, 0.0, r)
    if isinstance(link.params, TraceParams):
        parts = [
            np.maximum(t.resample(slot_s) * link.params.scale, FLOOR_MBPS)
            for t in link.load_traces()
        ]
        w = np.concatenate([np.full(x.size, 1.0 / x.size) for x in parts])
        v = np.concatenate(parts)
        m = float(np.average(v, weights=w))
        order = np.argsort(v, kind="stable")
        cw = np.cumsum(w[order]) / w.sum()
        med = float(v[order][np.searchsorted(cw, 0.5)])
        return StationaryStats(m, float(np.sqrt(np.average((v - m) ** 2, weights=w))), med)
    cal = markov_calibration(link)
    s, pi, lv = cal.noise_sigma, cal.state_probs, cal.levels_mbps
    mean = float(pi @ lv)
    second = float(pi @ (lv * lv)) * math.exp(s * s)
    sd = math.sqrt(max(second - mean * mean, 0.0))
    # median of sum_k pi_k LogNormal(ln m_k - s^2/2, s^2), by bisection on the CDF
    mu = np.log(lv) - 0.5 * s * s

    def cdf(x: float) -> float:
        if s == 0:
            return float(pi @ (lv <= x))
        zz = (math.log(x) - mu) / (s * math.sqrt(2.0))
        return float(pi @ (0.5 * (1.0 + np.vectorize(math.erf)(zz))))

    lo, hi = float(lv.min()) * math.exp(-10 * s - 1), float(lv.max()) * math.exp(10 * s + 1)
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if cdf(mid) < 0.5 else (lo, mid)
    return StationaryStats(mean, sd, math.sqrt(lo * hi))
