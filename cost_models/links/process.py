"""Link processes: links stepped slot by slot from caller-supplied uniforms.

A :class:`LinkProcess` steps a batch of independent links of one class; a :class:`LinkBank`
steps links of several classes as one batch, with the same rates as one process per class
fed the same uniforms (the simulator uses a bank). Neither owns a random generator: every
random choice is made from arrays of uniforms in ``[0, 1)`` that the caller supplies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edgesplit.cost_models.links.calibration import markov_calibration, normal_table
from edgesplit.cost_models.links.catalogue import (
    FLOOR_MBPS,
    LinkClass,
    MarkovParams,
    TraceParams,
    WiredParams,
    is_number,
)
from edgesplit.cost_models.links.traces import readonly

__all__ = ["LinkBank", "LinkProcess"]


def _check_uniforms(u: np.ndarray | None, want: tuple[int, ...], what: str) -> np.ndarray:
    """``u`` as float64 of shape ``want`` (``None`` stands for an empty last axis)."""
    if u is None:
        if want[-1] == 0:
            return np.zeros(want)
        raise ValueError(f"{what}: expected uniforms of shape {want}, got None")
    u = np.asarray(u, dtype=np.float64)
    if u.shape != want:
        raise ValueError(f"{what}: expected uniforms of shape {want}, got {u.shape}")
    return u


def _reset_rows(
    mask: np.ndarray | None, n_rows: int, *, first: bool, who: str
) -> slice | np.ndarray:
    """The rows a ``reset(u, mask)`` re-draws: all, or those where ``mask`` is true."""
    if mask is None:
        return slice(None)
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape != (n_rows,):
        raise ValueError(
            f"reset: mask must be a bool array of shape ({n_rows},), got {mask.dtype} {mask.shape}"
        )
    if first and not mask.all():
        raise RuntimeError(f"{who}: the first reset() must cover every row")
    return mask


class LinkProcess:
    """A batch of independent links of one class, stepped slot by slot.

    Randomness enters only through the arrays of uniforms in ``[0, 1)`` passed to
    :meth:`reset` and :meth:`step` (values outside are clipped into range); the process
    owns no generator and touches no global random state.

    Parameters
    ----------
    link : LinkClass
        The class.
    slot_s : float
        Slot length in seconds.
    shape : tuple of int
        Shape of the batch, e.g. ``(n_envs, n_links)``; ``shape[0]`` is what
        ``reset(..., mask=...)`` selects over.

    Attributes
    ----------
    n_reset_uniforms : int
        Uniforms per link that :meth:`reset` takes (markov 2, trace 2, wired 0).
    n_step_uniforms : int
        Uniforms per link that :meth:`step` takes (markov 2, trace 0, wired 0).
    rates : numpy.ndarray
        The current rates, float64 Mbps, ``shape``; read-only (each call returns a new
        array; earlier arrays are never modified).
    """

    def __init__(self, link: LinkClass, slot_s: float, shape: Sequence[int] | int):
        if not (is_number(slot_s) and slot_s > 0):
            raise ValueError(f"slot_s must be a positive number, got {slot_s!r}")
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        shp = tuple(int(s) for s in shape)
        if not shp or any(s < 1 for s in shp):
            raise ValueError(f"shape must be a non-empty tuple of positive ints, got {shape!r}")
        self.link = link
        self.slot_s = float(slot_s)
        self.shape: tuple[int, ...] = shp
        self._rates: np.ndarray | None = None
        p = link.params
        if isinstance(p, MarkovParams):
            self.n_reset_uniforms, self.n_step_uniforms = 2, 2
            cal = markov_calibration(link)
            self._k = cal.levels_mbps.size
            self._log_levels = np.log(cal.levels_mbps) - 0.5 * cal.noise_sigma**2
            self._p_switch = -math.expm1(-cal.switch_rate_hz * self.slot_s)
            self._rho = math.exp(-self.slot_s / p.noise_tau_s)
            self._sigma = cal.noise_sigma
            self._innov = cal.noise_sigma * math.sqrt(max(0.0, 1.0 - self._rho**2))
            self._table = normal_table()
            self._ntab = float(self._table.size)
            self._innov_table = self._table * self._innov  # innovations of the OU step
            self._state = np.zeros(shp, dtype=np.intp)
            self._loglev = np.zeros(shp)  # log level of the current state (minus s^2/2)
            self._x = np.zeros(shp)  # log of the fast factor
            self._ibuf = np.zeros(shp, dtype=np.intp)
        elif isinstance(p, TraceParams):
            self.n_reset_uniforms, self.n_step_uniforms = 2, 0
            grids = [
                np.maximum(t.resample(self.slot_s) * p.scale, FLOOR_MBPS)
                for t in link.load_traces()
            ]
            self._flat = readonly(np.concatenate(grids))
            self._lens = np.array([g.size for g in grids], dtype=np.intp)
            self._starts = np.concatenate(([0], np.cumsum(self._lens)[:-1])).astype(np.intp)
            self._trace_idx = np.zeros(shp, dtype=np.intp)
            self._base = np.zeros(shp, dtype=np.intp)
            self._len = np.ones(shp, dtype=np.intp)
            self._pos = np.zeros(shp, dtype=np.intp)
        else:
            assert isinstance(p, WiredParams)
            self.n_reset_uniforms, self.n_step_uniforms = 0, 0
            self._const = max(float(p.rate_mbps), FLOOR_MBPS)

    # -- helpers ------------------------------------------------------------------------
    @property
    def rates(self) -> np.ndarray:
        """Current rates (float64 Mbps, read-only); ``reset`` must have been called."""
        if self._rates is None:
            raise RuntimeError("LinkProcess: call reset() first")
        return self._rates

    def _check(self, u: np.ndarray | None, n: int, what: str) -> np.ndarray:
        return _check_uniforms(u, (*self.shape, n), what)

    def __repr__(self) -> str:
        return f"LinkProcess({self.link.name!r}, slot_s={self.slot_s}, shape={self.shape})"

    # -- reset --------------------------------------------------------------------------
    def reset(self, u: np.ndarray | None, mask: np.ndarray | None = None) -> np.ndarray:
        """(Re)initialise links from their stationary law and return the rates.

        Parameters
        ----------
        u : numpy.ndarray
            Uniforms in [0, 1), shape ``(*shape, n_reset_uniforms)`` (``None`` allowed
            when ``n_reset_uniforms == 0``).
        mask : numpy.ndarray of bool, optional
            Over ``shape[0]``: reinitialise only these rows (their uniforms are read from
            the same rows of ``u``); the other rows keep their state and rates.

        Returns
        -------
        numpy.ndarray
            The rates of the current slot, float64 Mbps, ``shape``.
        """
        u = self._check(u, self.n_reset_uniforms, "reset")
        rows = _reset_rows(mask, self.shape[0], first=self._rates is None, who="LinkProcess")
        p = self.link.params
        if isinstance(p, MarkovParams):
            uu = u[rows]
            st = np.minimum((uu[..., 0] * self._k).astype(np.intp), self._k - 1)
            self._state[rows] = st
            self._loglev[rows] = self._log_levels[st]
            zi = (uu[..., 1] * self._ntab).astype(np.intp)
            self._x[rows] = self._sigma * self._table.take(zi, mode="clip")
            out = np.exp(self._x + self._loglev)
        elif isinstance(p, TraceParams):
            uu = u[rows]
            n = self._lens.size
            j = np.clip((uu[..., 0] * n).astype(np.intp), 0, n - 1)
            ln = self._lens[j]
            pos = np.minimum((uu[..., 1] * ln).astype(np.intp), ln - 1)
            self._trace_idx[rows] = j
            self._base[rows] = self._starts[j]
            self._len[rows] = ln
            self._pos[rows] = np.maximum(pos, 0)
            out = self._flat.take(self._base + self._pos)
        else:
            out = np.full(self.shape, self._const)
        np.maximum(out, FLOOR_MBPS, out=out)
        self._rates = readonly(out)
        return self._rates

    # -- step ---------------------------------------------------------------------------
    def step(self, u: np.ndarray | None) -> np.ndarray:
        """Advance every link by one slot and return the new rates.

        Parameters
        ----------
        u : numpy.ndarray
            Uniforms in [0, 1), shape ``(*shape, n_step_uniforms)`` (an empty last axis,
            or ``None``, when ``n_step_uniforms == 0``).

        Returns
        -------
        numpy.ndarray
            The rates of the next slot, float64 Mbps (>= ``FLOOR_MBPS``), ``shape``.
        """
        if self._rates is None:
            raise RuntimeError("LinkProcess: call reset() first")
        u = self._check(u, self.n_step_uniforms, "step")
        p = self.link.params
        if isinstance(p, MarkovParams):
            uf = u.reshape(-1, 2)
            # state: redrawn with probability p_switch; given a redraw, u0 / p_switch is
            # itself uniform on [0, 1) and picks the new state
            hit = np.flatnonzero(uf[:, 0] < self._p_switch)
            if hit.size:
                st = np.minimum(
                    (uf[hit, 0] * (self._k / self._p_switch)).astype(np.intp), self._k - 1
                )
                self._state.reshape(-1)[hit] = st  # C-contiguous: reshape is a view
                self._loglev.reshape(-1)[hit] = self._log_levels[st]
            # fast factor: exact Ornstein-Uhlenbeck step of its log
            np.multiply(u[..., 1], self._ntab, out=self._ibuf, casting="unsafe")
            z = self._innov_table.take(self._ibuf, mode="clip")
            self._x *= self._rho
            self._x += z
            np.add(self._x, self._loglev, out=z)
            out = np.exp(z, out=z)
            if out.min() < FLOOR_MBPS:  # rare: cheaper to test than to clamp every slot
                np.maximum(out, FLOOR_MBPS, out=out)
        elif isinstance(p, TraceParams):
            self._pos += 1
            np.subtract(self._pos, self._len, out=self._pos, where=self._pos >= self._len)
            out = self._flat.take(self._base + self._pos)
        else:
            out = np.full(self.shape, self._const)
        self._rates = readonly(out)
        return self._rates


class LinkBank:
    """Links of several classes stepped as one batch.

    Link ``l`` (the last axis of ``shape``) is of class ``links[l]``. Each link takes the
    uniforms its class's :class:`LinkProcess` would take, from the first entries of its row of
    ``u`` (the last axis of ``u`` is the largest count over the classes), and gives the same
    rates as that process fed the same uniforms. All ``"markov"`` links, whatever their class,
    are stepped together with per-link parameters, so a bank costs a handful of array
    operations per slot however many classes it mixes; ``"trace"`` classes keep one
    :class:`LinkProcess` each and ``"wired"`` links are constant.

    Parameters
    ----------
    links : sequence of LinkClass
        The class of each link, ``len(links) == shape[-1]``.
    slot_s : float
        Slot length in seconds.
    shape : tuple of int
        Shape of the batch, e.g. ``(n_envs, n_links)``; ``shape[0]`` is what
        ``reset(..., mask=...)`` selects over.

    Attributes
    ----------
    n_reset_uniforms, n_step_uniforms : int
        Uniforms per link that :meth:`reset` and :meth:`step` take (the largest over the
        classes; a link reads the first ones its class needs).
    rates : numpy.ndarray
        The current rates, float64 Mbps, ``shape``; read-only, as for :class:`LinkProcess`.

    >>> import numpy as np
    >>> from edgesplit.cost_models.links import LinkBank, load_links
    >>> cat = load_links()
    >>> bank = LinkBank([cat["lte"], cat["wifi"], cat["nr_5g"]], slot_s=0.1, shape=(4, 3))
    >>> rng = np.random.default_rng(0)
    >>> r0 = bank.reset(rng.random((4, 3, bank.n_reset_uniforms)))
    >>> bank.step(rng.random((4, 3, bank.n_step_uniforms))).shape
    (4, 3)
    """

    def __init__(self, links: Sequence[LinkClass], slot_s: float, shape: Sequence[int] | int):
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        shp = tuple(int(s) for s in shape)
        links = list(links)
        if not shp or len(links) != shp[-1]:
            raise ValueError(
                f"LinkBank: {len(links)} link classes for shape {shape!r} (need shape[-1])"
            )
        # LinkProcess validates slot_s and shape; one per class (they also give the
        # per-class constants of the fused markov step)
        by_class: dict[LinkClass, list[int]] = {}
        for i, lc in enumerate(links):
            by_class.setdefault(lc, []).append(i)
        self.link_classes = links
        self.slot_s = float(slot_s)
        self.shape: tuple[int, ...] = shp
        self._rates: np.ndarray | None = None
        self._procs = {
            lc: LinkProcess(lc, slot_s, (*shp[:-1], len(cols))) for lc, cols in by_class.items()
        }
        self.n_reset_uniforms = max(p.n_reset_uniforms for p in self._procs.values())
        self.n_step_uniforms = max(p.n_step_uniforms for p in self._procs.values())
        n_l = shp[-1]
        # markov links: one fused process with per-link constants
        mcols = [i for i, lc in enumerate(links) if isinstance(lc.params, MarkovParams)]
        self._mcols: slice | np.ndarray = (
            slice(None) if len(mcols) == n_l else np.array(mcols, dtype=np.intp)
        )
        self._has_markov = bool(mcols)
        if mcols:
            procs = [self._procs[links[i]] for i in mcols]
            kmax = max(p._k for p in procs)
            lev = np.zeros((len(mcols), kmax))
            for r, p in enumerate(procs):
                lev[r, : p._k] = p._log_levels
                lev[r, p._k :] = p._log_levels[-1]
            self._m_k = np.array([p._k for p in procs], dtype=np.intp)
            self._m_kf = self._m_k.astype(np.float64)
            self._m_log_levels = lev.reshape(-1)  # [Lm * kmax], row r at r * kmax
            self._m_row = np.arange(len(mcols), dtype=np.intp) * kmax
            self._m_p_switch = np.array([p._p_switch for p in procs])
            self._m_k_over_p = np.array([p._k / p._p_switch for p in procs])
            self._m_rho = np.array([p._rho for p in procs])
            self._m_sigma = np.array([p._sigma for p in procs])
            self._m_innov = np.array([p._innov for p in procs])
            self._table = normal_table()
            self._ntab = float(self._table.size)
            mshape = (*shp[:-1], len(mcols))
            self._m_row_b = np.broadcast_to(self._m_row, mshape)
            self._m_state = np.zeros(mshape, dtype=np.intp)
            self._m_loglev = np.zeros(mshape)
            self._m_x = np.zeros(mshape)
            self._m_ibuf = np.zeros(mshape, dtype=np.intp)
        # other classes: their own process over their columns
        self._others = [
            (self._procs[lc], np.array(cols, dtype=np.intp))
            for lc, cols in by_class.items()
            if not isinstance(lc.params, MarkovParams)
        ]

    @property
    def rates(self) -> np.ndarray:
        """Current rates (float64 Mbps, read-only); ``reset`` must have been called."""
        if self._rates is None:
            raise RuntimeError("LinkBank: call reset() first")
        return self._rates

    def __repr__(self) -> str:
        names = sorted({lc.name for lc in self.link_classes})
        return f"LinkBank({names}, slot_s={self.slot_s}, shape={self.shape})"

    def _check(self, u: np.ndarray | None, n: int, what: str) -> np.ndarray:
        return _check_uniforms(u, (*self.shape, n), what)

    def reset(self, u: np.ndarray | None, mask: np.ndarray | None = None) -> np.ndarray:
        """(Re)initialise links from their stationary law; as :meth:`LinkProcess.reset`."""
        u = self._check(u, self.n_reset_uniforms, "reset")
        rows = _reset_rows(mask, self.shape[0], first=self._rates is None, who="LinkBank")
        out = np.empty(self.shape) if self._rates is None else self._rates.copy()
        if self._has_markov:
            uu = u[..., self._mcols, :][rows]
            st = np.minimum((uu[..., 0] * self._m_kf).astype(np.intp), self._m_k - 1)
            self._m_state[rows] = st
            self._m_loglev[rows] = self._m_log_levels.take(self._m_row_b[rows] + st)
            zi = (uu[..., 1] * self._ntab).astype(np.intp)
            self._m_x[rows] = self._m_sigma * self._table.take(zi, mode="clip")
            out[..., self._mcols] = np.exp(self._m_x + self._m_loglev)
        for proc, cols in self._others:
            uc = u[..., cols, : proc.n_reset_uniforms]
            out[..., cols] = proc.reset(uc, mask=mask)
        np.maximum(out, FLOOR_MBPS, out=out)
        self._rates = readonly(out)
        return self._rates

    def step(self, u: np.ndarray | None) -> np.ndarray:
        """Advance every link by one slot and return the new rates; as
        :meth:`LinkProcess.step`."""
        if self._rates is None:
            raise RuntimeError("LinkBank: call reset() first")
        u = self._check(u, self.n_step_uniforms, "step")
        if not self._has_markov:
            out = np.empty(self.shape)
        else:
            um = u if isinstance(self._mcols, slice) else u[..., self._mcols, :]
            u0 = um[..., 0]
            hit = np.flatnonzero(u0 < self._m_p_switch)
            if hit.size:
                rr = hit % self._m_k.size
                st = np.minimum(
                    (u0.reshape(-1)[hit] * self._m_k_over_p[rr]).astype(np.intp),
                    self._m_k[rr] - 1,
                )
                self._m_state.reshape(-1)[hit] = st
                self._m_loglev.reshape(-1)[hit] = self._m_log_levels.take(self._m_row[rr] + st)
            # fast factor: exact Ornstein-Uhlenbeck step of its log
            np.multiply(um[..., 1], self._ntab, out=self._m_ibuf, casting="unsafe")
            z = self._table.take(self._m_ibuf, mode="clip")
            z *= self._m_innov
            self._m_x *= self._m_rho
            self._m_x += z
            np.add(self._m_x, self._m_loglev, out=z)
            if isinstance(self._mcols, slice):
                out = np.exp(z, out=z)
            else:
                out = np.empty(self.shape)
                out[..., self._mcols] = np.exp(z)
        for proc, cols in self._others:
            uc = u[..., cols, : proc.n_step_uniforms]
            out[..., cols] = proc.step(uc)
        if out.min() < FLOOR_MBPS:  # rare: cheaper to test than to clamp every slot
            np.maximum(out, FLOOR_MBPS, out=out)
        self._rates = readonly(out)
        return self._rates
