"""Link processes: links stepped slot by slot from caller-supplied uniforms.

A :class:`LinkProcess` steps a batch of independent links of one class; a :class:`LinkBank`
steps links of several classes as one batch, with the same rates as one process per class
fed the same uniforms (the simulator uses a bank). Neither owns a random generator: every
random choice is made from arrays of uniforms in ``[0, 1)`` that the caller supplies.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from edgesplit.cost_models.links.catalogue import (
    FLOOR_MBPS,
    LinkClass,
    MarkovParams,
    TraceParams,
    WiredParams,
    is_number,
)
from edgesplit.cost_models.links.markov import (
    N_RESET_UNIFORMS,
    N_STEP_UNIFORMS,
    MarkovStatics,
    markov_reset,
    markov_step,
)
from edgesplit.cost_models.links.traces import readonly

__all__ = ["ClassColumns", "LinkBank", "LinkProcess", "MarkovState", "TraceTable"]


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


def _readonly_view(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a`` (``a`` itself stays writable)."""
    v = a.view()
    v.flags.writeable = False
    return v


def _check_storage(name: str, a: object, shape: tuple[int, ...], dtype: type) -> None:
    """Raise a ValueError naming ``name`` unless ``a`` is a writable C-contiguous array of
    this exact shape and dtype."""
    want = f"a writable C-contiguous {np.dtype(dtype).name} array of shape {shape}"
    if not isinstance(a, np.ndarray):
        raise ValueError(f"bind_state: {name} must be {want}, got {type(a).__name__}")
    problems = []
    if a.shape != shape:
        problems.append(f"shape {a.shape}")
    if a.dtype != np.dtype(dtype):
        problems.append(f"dtype {a.dtype}")
    if not a.flags.c_contiguous:
        problems.append("not C-contiguous")
    if not a.flags.writeable:
        problems.append("read-only")
    if problems:
        raise ValueError(f"bind_state: {name} must be {want}, got {', '.join(problems)}")


def _check_slot_and_shape(slot_s: float, shape: Sequence[int] | int) -> tuple[int, ...]:
    """``shape`` as a tuple of ints, after checking it and ``slot_s``."""
    if not (is_number(slot_s) and slot_s > 0):
        raise ValueError(f"slot_s must be a positive number, got {slot_s!r}")
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shp = tuple(int(s) for s in shape)
    if not shp or any(s < 1 for s in shp):
        raise ValueError(f"shape must be a non-empty tuple of positive ints, got {shape!r}")
    return shp


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


class TraceTable(NamedTuple):
    """The replay table of a ``"trace"`` class (see :attr:`LinkProcess.trace_table`).

    Attributes
    ----------
    rates : numpy.ndarray
        ``[F]`` float64 (read-only): every trace of the class on the slot grid, scaled and
        floored at ``FLOOR_MBPS``, concatenated.
    next : numpy.ndarray
        ``[F]`` intp (read-only): the slot after each slot of ``rates`` (the last slot of a
        trace: its first), so that a link at slot ``c`` moves to ``next[c]`` and its rate is
        ``rates[next[c]]``.
    """

    rates: np.ndarray
    next: np.ndarray


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

    Notes
    -----
    A compiled step (``sim/kernel.py``) moves trace links itself: it reads
    :attr:`trace_table` and keeps the links' positions (:attr:`trace_position`) in its own
    array, given to :meth:`bind_state`.
    """

    def __init__(self, link: LinkClass, slot_s: float, shape: Sequence[int] | int):
        shp = _check_slot_and_shape(slot_s, shape)
        self.link = link
        self.slot_s = float(slot_s)
        self.shape: tuple[int, ...] = shp
        self._rates: np.ndarray | None = None
        self._bound = False  # trace positions kept in the caller's array (bind_state)
        p = link.params
        if isinstance(p, MarkovParams):
            self.n_reset_uniforms, self.n_step_uniforms = N_RESET_UNIFORMS, N_STEP_UNIFORMS
            # the constants of one link, shared by every link of the batch (broadcast)
            self._ms = MarkovStatics.of([link], self.slot_s)
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
            self._lens = readonly(np.array([g.size for g in grids], dtype=np.intp))
            starts = np.concatenate(([0], np.cumsum(self._lens)[:-1])).astype(np.intp)
            self._starts = readonly(starts)
            # the slot after each slot of the concatenated grids (the last of a trace: its
            # first), so that a step is two look-ups
            nxt = np.arange(1, self._flat.size + 1, dtype=np.intp)
            nxt[self._starts + self._lens - 1] = self._starts
            self._next = readonly(nxt)
            self._trace_idx = np.zeros(shp, dtype=np.intp)  # the trace of each link
            self._cur = np.zeros(shp, dtype=np.intp)  # its current slot, in _flat
        else:
            assert isinstance(p, WiredParams)
            self.n_reset_uniforms, self.n_step_uniforms = 0, 0
            self._const = max(float(p.rate_mbps), FLOOR_MBPS)

    # -- helpers ------------------------------------------------------------------------
    #: the read-only tables of a trace class (never written once built): a deep copy of the
    #: process shares them, since a simulator that looks ahead copies itself often
    _SHARED = ("_flat", "_next", "_lens", "_starts")

    def __deepcopy__(self, memo: dict) -> LinkProcess:
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            setattr(new, k, v if k in self._SHARED else copy.deepcopy(v, memo))
        return new

    @property
    def rates(self) -> np.ndarray:
        """Current rates (float64 Mbps, read-only); ``reset`` must have been called."""
        if self._rates is None:
            raise RuntimeError("LinkProcess: call reset() first")
        if self._bound:  # whoever moves the bound positions may have moved them since
            return readonly(self._flat.take(self._cur))
        return self._rates

    def _check(self, u: np.ndarray | None, n: int, what: str) -> np.ndarray:
        return _check_uniforms(u, (*self.shape, n), what)

    # -- what a compiled step needs -----------------------------------------------------
    def _require_trace(self, what: str) -> None:
        if not isinstance(self.link.params, TraceParams):
            kind = self.link.kind
            raise ValueError(f"{what}: {self.link.name!r} is a {kind!r} link, not a trace")

    @property
    def trace_table(self) -> TraceTable:
        """The replay table of a ``"trace"`` class: a link at position ``c`` (an index into
        ``rates``) moves to ``next[c]`` each step and its rate is ``rates[c]``.

        Raises
        ------
        ValueError
            For a class that is not a trace.

        >>> from edgesplit.cost_models.links import LinkProcess, load_links
        >>> proc = LinkProcess(load_links()["trace_synthetic_3g"], slot_s=0.1, shape=(2, 3))
        >>> tab = proc.trace_table
        >>> tab.rates.shape == tab.next.shape, bool(tab.rates.min() > 0)
        (True, True)
        """
        self._require_trace("trace_table")
        return TraceTable(self._flat, self._next)

    @property
    def trace_position(self) -> np.ndarray:
        """``shape`` intp (a read-only view): each trace link's position in
        :attr:`trace_table`, its current slot."""
        self._require_trace("trace_position")
        return _readonly_view(self._cur)

    def bind_state(self, *, cur: np.ndarray) -> None:
        """Keep a trace class's positions in the caller's array from now on, values kept.

        ``cur`` (intp, ``shape``, writable and C-contiguous) receives the current positions
        (:attr:`trace_position`); :meth:`reset` and :meth:`step` then work in it, and a
        caller that moves it (a compiled step does) moves the links: :attr:`rates` reads
        the rates at the bound positions.

        Raises
        ------
        ValueError
            For a class that is not a trace, or naming ``cur`` and what it got.

        >>> import numpy as np
        >>> from edgesplit.cost_models.links import LinkProcess, load_links
        >>> proc = LinkProcess(load_links()["trace_synthetic_3g"], slot_s=0.1, shape=(2,))
        >>> r0 = proc.reset(np.array([[0.1, 0.5], [0.9, 0.5]]))
        >>> mine = np.zeros(2, dtype=np.intp)
        >>> proc.bind_state(cur=mine)
        >>> nxt = proc.trace_table.next
        >>> mine[:] = nxt[mine]  # moved by the caller
        >>> bool(np.array_equal(proc.rates, proc.trace_table.rates[mine]))
        True
        """
        self._require_trace("bind_state")
        _check_storage("cur", cur, self.shape, np.intp)
        cur[...] = self._cur
        self._cur = cur
        self._bound = True

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
            out = markov_reset(self._ms, u, self._state, self._loglev, self._x, rows)
        elif isinstance(p, TraceParams):
            uu = u[rows]
            n = self._lens.size
            j = np.clip((uu[..., 0] * n).astype(np.intp), 0, n - 1)
            ln = self._lens[j]
            pos = np.minimum((uu[..., 1] * ln).astype(np.intp), ln - 1)
            self._trace_idx[rows] = j
            self._cur[rows] = self._starts[j] + np.maximum(pos, 0)
            out = self._flat.take(self._cur)
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
        if u is not None or self.n_step_uniforms:
            u = self._check(u, self.n_step_uniforms, "step")
        p = self.link.params
        if isinstance(p, MarkovParams):
            out = markov_step(self._ms, u, self._state, self._loglev, self._x, self._ibuf)
            if out.min() < FLOOR_MBPS:  # rare: cheaper to test than to clamp every slot
                np.maximum(out, FLOOR_MBPS, out=out)
        elif isinstance(p, TraceParams):
            self._next.take(self._cur, out=self._cur)  # buffered: indices and out may alias
            out = self._flat.take(self._cur)
        else:
            out = np.full(self.shape, self._const)
        self._rates = readonly(out)
        return self._rates


class ClassColumns(NamedTuple):
    """A non-Markov class of a :class:`LinkBank`: its process and the bank's columns it
    steps (``process.shape == (*bank.shape[:-1], columns.size)``)."""

    process: LinkProcess
    columns: np.ndarray


class MarkovState(NamedTuple):
    """The state of a :class:`LinkBank`'s Markov links, each ``[*shape[:-1], Lm]``.

    Attributes
    ----------
    state : numpy.ndarray
        intp: the hidden state of each link.
    loglev : numpy.ndarray
        float64: the log level of that state (minus ``s^2/2``).
    x : numpy.ndarray
        float64: the log of the fast factor.
    """

    state: np.ndarray
    loglev: np.ndarray
    x: np.ndarray


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
        The current rates, float64 Mbps, ``shape``; read-only, as for :class:`LinkProcess`
        (but see :meth:`bind_state`).

    Notes
    -----
    A compiled step (``sim/kernel.py``) steps the Markov and trace links itself, in the
    same order as :func:`~edgesplit.cost_models.links.markov.markov_step` and
    :meth:`LinkProcess.step`. What it needs is public: :attr:`markov_columns`,
    :meth:`markov_statics` (the constants), :attr:`markov_state`, :meth:`bind_state`, which
    moves the bank's state and rates into the caller's arrays, and :attr:`other_processes`
    (the trace and wired classes: a trace process hands out its
    :attr:`~LinkProcess.trace_table` and binds its positions with
    :meth:`LinkProcess.bind_state`; a wired link's rate never changes).

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
        shp = _check_slot_and_shape(slot_s, shape)
        links = list(links)
        if len(links) != shp[-1]:
            raise ValueError(
                f"LinkBank: {len(links)} link classes for shape {shape!r} (need shape[-1])"
            )
        self.link_classes = links
        self.slot_s = float(slot_s)
        self.shape: tuple[int, ...] = shp
        self._rates: np.ndarray | None = None
        n_l = shp[-1]
        # markov links: stepped together, with per-link constants
        mcols = [i for i, lc in enumerate(links) if isinstance(lc.params, MarkovParams)]
        self._mcols: slice | np.ndarray = (
            slice(None) if len(mcols) == n_l else np.array(mcols, dtype=np.intp)
        )
        self._has_markov = bool(mcols)
        self._ms = MarkovStatics.of([links[i] for i in mcols], self.slot_s)
        mshape = (*shp[:-1], len(mcols))
        self._m_state = np.zeros(mshape, dtype=np.intp)
        self._m_loglev = np.zeros(mshape)  # log level of the current state (minus s^2/2)
        self._m_x = np.zeros(mshape)  # log of the fast factor
        self._m_ibuf = np.zeros(mshape, dtype=np.intp)
        # other classes (trace, wired): one process each, over their columns
        by_class: dict[LinkClass, list[int]] = {}
        for i, lc in enumerate(links):
            if not isinstance(lc.params, MarkovParams):
                by_class.setdefault(lc, []).append(i)
        self._others: tuple[ClassColumns, ...] = tuple(
            ClassColumns(
                LinkProcess(lc, slot_s, (*shp[:-1], len(cols))),
                readonly(np.array(cols, dtype=np.intp)),
            )
            for lc, cols in by_class.items()
        )
        self._markov_columns = readonly(np.array(mcols, dtype=np.intp))
        self._rates_store: np.ndarray | None = None  # caller's storage (bind_state)
        counts = [(p.n_reset_uniforms, p.n_step_uniforms) for p, _ in self._others]
        if mcols:
            counts.append((N_RESET_UNIFORMS, N_STEP_UNIFORMS))
        self.n_reset_uniforms = max(c[0] for c in counts)
        self.n_step_uniforms = max(c[1] for c in counts)

    @property
    def rates(self) -> np.ndarray:
        """Current rates (float64 Mbps, read-only); ``reset`` must have been called."""
        if self._rates is None:
            raise RuntimeError("LinkBank: call reset() first")
        return self._rates

    # -- what a compiled step needs ---------------------------------------------------------
    @property
    def has_markov(self) -> bool:
        """Whether any link is of a ``"markov"`` class."""
        return self._has_markov

    @property
    def markov_columns(self) -> np.ndarray:
        """``[Lm]`` intp (read-only): the columns (links) of ``"markov"`` classes, in order;
        the Markov arrays (:meth:`markov_statics`, :attr:`markov_state`) follow it."""
        return self._markov_columns

    def markov_statics(self) -> MarkovStatics:
        """The constants of the Markov links, one entry per :attr:`markov_columns` entry
        (empty arrays when there are none).

        >>> from edgesplit.cost_models.links import LinkBank, load_links
        >>> cat = load_links()
        >>> bank = LinkBank([cat["lte"], cat["wired_backhaul"], cat["wifi"]], 0.1, (2, 3))
        >>> bank.markov_columns.tolist(), bank.markov_statics().p_switch.shape
        ([0, 2], (2,))
        """
        return self._ms

    @property
    def markov_state(self) -> MarkovState:
        """The Markov links' state (read-only views, ``[*shape[:-1], Lm]`` each)."""
        return MarkovState(*(_readonly_view(a) for a in (self._m_state, self._m_loglev, self._m_x)))

    @property
    def other_processes(self) -> tuple[ClassColumns, ...]:
        """The links of the other kinds: one :class:`ClassColumns` (process, columns) per
        ``"trace"`` or ``"wired"`` class, stepped by its own :class:`LinkProcess`."""
        return self._others

    def bind_state(
        self,
        *,
        m_state: np.ndarray | None = None,
        m_loglev: np.ndarray | None = None,
        m_x: np.ndarray | None = None,
        rates: np.ndarray | None = None,
    ) -> None:
        """Keep the bank's state in the caller's arrays from now on, values kept.

        Each array given receives the current values, and the bank then reads and writes
        it in place: so a compiled step that updates these arrays moves the bank on, and
        the bank's own :meth:`reset` and :meth:`step` work in them too. Arrays not given
        stay as they are.

        Parameters
        ----------
        m_state : numpy.ndarray, optional
            intp, ``[*shape[:-1], Lm]`` (``Lm = markov_columns.size``): the Markov state.
        m_loglev, m_x : numpy.ndarray, optional
            float64, same shape: the log level of the state, the log of the fast factor.
        rates : numpy.ndarray, optional
            float64, ``shape``: the rates. :attr:`rates` becomes a read-only view of it;
            :meth:`reset` and :meth:`step` write the new rates into it and return that view
            (so an array they returned earlier changes at the next call: copy it to keep
            it), and the caller may write it (a compiled step does).

        Every array must be writable and C-contiguous, with the exact dtype and shape.

        Raises
        ------
        ValueError
            Naming the argument and what it got.

        >>> import numpy as np
        >>> from edgesplit.cost_models.links import LinkBank, load_links
        >>> bank = LinkBank([load_links()["lte"]] * 2, 0.1, (3, 2))
        >>> r0 = bank.reset(np.random.default_rng(0).random((3, 2, 2))).copy()
        >>> mine = np.zeros((3, 2))
        >>> bank.bind_state(rates=mine)
        >>> bool(np.array_equal(mine, r0)), np.shares_memory(bank.rates, mine)
        (True, True)
        """
        m_shape = (*self.shape[:-1], self._markov_columns.size)
        given = {
            "m_state": (m_state, m_shape, np.intp, "_m_state"),
            "m_loglev": (m_loglev, m_shape, np.float64, "_m_loglev"),
            "m_x": (m_x, m_shape, np.float64, "_m_x"),
            "rates": (rates, self.shape, np.float64, None),
        }
        for name, (a, shp, dt, _) in given.items():  # every argument checked before any move
            if a is not None:
                _check_storage(name, a, shp, dt)
        for a, _, _, attr in given.values():
            if a is not None and attr is not None:
                a[...] = getattr(self, attr)
                setattr(self, attr, a)
        if rates is not None:
            if self._rates is not None:
                rates[...] = self._rates
                self._rates = _readonly_view(rates)
            self._rates_store = rates

    def _publish(self, out: np.ndarray) -> np.ndarray:
        """Make ``out`` the current rates (in the caller's storage, if bound)."""
        if self._rates_store is None:
            self._rates = readonly(out)
        else:
            self._rates_store[...] = out
            self._rates = _readonly_view(self._rates_store)
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
            um = u[..., self._mcols, :]
            st, lv, x = self._m_state, self._m_loglev, self._m_x
            out[..., self._mcols] = markov_reset(self._ms, um, st, lv, x, rows)
        for proc, cols in self._others:
            uc = u[..., cols, : proc.n_reset_uniforms]
            out[..., cols] = proc.reset(uc, mask=mask)
        np.maximum(out, FLOOR_MBPS, out=out)
        return self._publish(out)

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
            st, lv, x = self._m_state, self._m_loglev, self._m_x
            r = markov_step(self._ms, um, st, lv, x, self._m_ibuf)
            if isinstance(self._mcols, slice):
                out = r
            else:
                out = np.empty(self.shape)
                out[..., self._mcols] = r
        for proc, cols in self._others:
            uc = u[..., cols, : proc.n_step_uniforms]
            out[..., cols] = proc.step(uc)
        if out.min() < FLOOR_MBPS:  # rare: cheaper to test than to clamp every slot
            np.maximum(out, FLOOR_MBPS, out=out)
        return self._publish(out)
