"""The batched simulator core: the one model of EdgeSplit's dynamics.

State is arrays over (environments, devices) and (environments, targets). The methods below
are the reference: a step is a fixed sequence of numpy operations with no Python loop over
devices or environments. By default (``backend="auto"``, numba installed) a step runs as one
compiled call of :mod:`edgesplit.sim.kernel`, the same arithmetic in the same order,
checked against these methods by ``tests/test_backends.py``. Every face (Gymnasium env,
VectorEnv, PettingZoo) is a thin view of a :class:`Core`.

System model (slot ``t`` of length ``slot_s``), for each device ``i`` with a pending task of
application ``a`` and decision ``(split s, target j, bandwidth weight wb, compute weight wc)``:

.. code-block:: text

    head    = H[i, a, s]                                   device compute, seconds
    wait_q  = (t - arrival slot) * slot_s                  time queued on the device
    wait_d  = Qd[i];   Qd[i] <- max(0, Qd[i] + head - slot_s)
    share_b = wb / sum(wb of tasks sent through the same access point this slot)
    tx      = bytes[a, s] * 8 / (share_b * rate[i, ap(j)])  wireless transfer
            (+ bytes * 8 / backhaul rate for the cloud)
    share_c = wc / sum(wc of tasks with tail work on j this slot)
    tail    = T[a, s, j] / share_c
    wait_s  = max(0, Qs[j] - (wait_d + head + tx));  Qs[j] <- max(0, Qs[j] + sum T - slot_s)
    latency = wait_q + wait_d + head + tx + rtt (+ backhaul rtt) + wait_s + tail
    energy  = P_active[i] * head + P_tx[i] * wireless transfer time
    Z'      = max(0, Z[i] + energy - B[i] * slot_s)            energy-budget deficit
    cost    = w_l * latency / deadline + w_e * energy / E_ref + w_m * [latency > deadline]
              + w_inf * [a masked choice was taken] + w_b * Z' / E_ref

The last candidate of a network runs it whole on the device: nothing is sent, there is no tail.
A masked (infeasible) choice is replaced before it acts, a split past the network's candidates
by all-local and an unreachable target by the home edge, and costs ``infeasible_penalty``.

Batteries (a device group's ``battery``): a head whose compute energy ``P_active[i] * head``
exceeds the device's charge ``C[i]`` cannot run; the choice is masked and, if taken, replaced
by full offload (candidate 0, which computes nothing on the device) to the chosen target,
costing ``infeasible_penalty``. After the slot ``C[i] <- min(cap[i], max(0, C[i] - energy) +
harvest_w[i] * slot_s)`` and ``Z[i] <- Z'`` (the Lyapunov virtual queue of a long-term power
budget ``B[i]``; ``Z`` stays 0 without one). The radio is not gated: its energy is drained
down to 0 and an empty device still sends (the charge counts energy above the cut-off at
which a device stops heavy compute; the radio lives on what is below it).

Arrivals: a Poisson number of tasks per device per slot (mean ``rate * slot_s``), each of an
application drawn from the device's mix; they join the device's queue and become pending at
the next slot; one task per device is decided per slot; tasks that find the queue full are
dropped (``drop_penalty`` each). With ``bursts`` on a device group the rate is modulated by an
on/off phase: ``on_rate_hz`` in a burst, ``arrival_rate_hz`` between bursts; after each slot's
arrivals a burst ends with probability ``1 - exp(-slot_s / mean_on_s)`` and starts with
``1 - exp(-slot_s / mean_off_s)``; an episode starts in a burst with the stationary
probability of that chain.

What the scheduler knows (the scenario's ``information``; environment v1 by default): the
observation carries ``rates_seen``, each link's rate measured over the slot just over
(``rates_seen <- w * rate(t) + (1 - w) * rates_seen``, ``w = ewma_weight``, updated after the
slot resolves and before the links move), and ``srv_seen``, the servers' backlogs at the start
of the previous slot. With ``link_rate: true`` / ``server_backlog: true`` (v0) they are the
true current values. ``resolve(known=True)`` judges decisions on them; the dynamics always
use the true ones.

Randomness: the counter-based generator of :mod:`edgesplit.sim.rng`. Each environment's key
is drawn from its own seeded ``numpy`` generator at reset; every random number of a slot is a
hash of the pre-mixed key, the slot, a stream id and the element's index. A slot draws one
block of 64-bit words per environment (one per device for its arrivals, one per link for its
step); each word gives two 32-bit uniforms. The applications of the second and later tasks
arriving at a device in one slot (rare) are hashed individually.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from edgesplit.cost_models.links import LinkBank

from . import rng
from .encoding import ActionError, Tables, action_masks, decode, encode_devices
from .estimates import AloneOutcome, alone_outcome
from .scenario import Scenario
from .schema import (
    CF,
    CHOICE_FLOAT_COLUMNS,
    CHOICE_INT_COLUMNS,
    CI,
    DECISION_FIELDS,
    ROW,
    Decisions,
    Packed,
    StepResult,
    empty_packed,
    pack_result,
    unpack_result,
)
from .state import State
from .tables import Physics, build

if TYPE_CHECKING:
    from .kernel import KernelArgs, SharedStatics

__all__ = ["BACKENDS", "Core", "row_masks"]

BACKENDS = ("auto", "numba", "numpy")


@cache
def _numba_problem() -> str | None:
    """Why the compiled step cannot be used here (None: it can)."""
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed"
    try:  # installed but unusable (built for another numpy, no cache directory, ...)
        from . import kernel  # noqa: F401
    except Exception as e:  # pragma: no cover - depends on the installation
        return f"the numba kernel failed to load ({type(e).__name__}: {e})"
    return None


def _numba_available() -> bool:
    return _numba_problem() is None


def row_masks(tables: Tables, action_type: str) -> np.ndarray:
    """``[N * (A + 1), K]`` the action masks of a discrete view (``"multidiscrete"`` or
    ``"discrete"``, see :func:`~edgesplit.sim.encoding.action_masks`) for every row of the
    static tables, ``device * (A + 1) + (app, or A for no task)`` (:meth:`Core.pending_rows`),
    before any battery masks a head: the masks of a slot are a gather of these rows.

    >>> from edgesplit.sim.scenario import load_scenario
    >>> from edgesplit.sim.tables import build
    >>> ta, _ = build(load_scenario("single"))
    >>> m = row_masks(ta, "multidiscrete")
    >>> m.shape == (ta.n_devices * (ta.n_apps + 1), int(ta.nvec.sum())), bool(m[-1].all())
    (True, True)
    """
    n, a = tables.n_devices, tables.n_apps
    # as a batch of A + 1 "environments": row a has app a pending everywhere (a = A: none)
    has = np.broadcast_to((np.arange(a + 1) < a)[:, None], (a + 1, n))
    app = np.broadcast_to(np.minimum(np.arange(a + 1), a - 1)[:, None], (a + 1, n))
    m = action_masks(tables, app, has, action_type)
    return np.ascontiguousarray(m.transpose(1, 0, 2)).reshape(n * (a + 1), -1)


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a`` itself if read-only, else a read-only view of it."""
    if not a.flags.writeable:
        return a
    v = a.view()
    v.flags.writeable = False
    return v


class _Pending:
    """The pending task of every device at the current slot (computed once per slot)."""

    __slots__ = ("_kbase", "_sj", "app0", "has", "row", "wait")

    @classmethod
    def of(cls, has: np.ndarray, app0: np.ndarray, row: np.ndarray, wait: np.ndarray, sj: int):
        """The view from arrays the compiled step computed. The next compiled step reads
        them: whatever hands them out (:meth:`Core.pending`, :meth:`Core.resolve`) hands out
        read-only views."""
        p = cls.__new__(cls)
        p.has, p.app0, p.row, p.wait, p._sj, p._kbase = has, app0, row, wait, sj, None
        return p

    @property
    def kbase(self) -> np.ndarray:
        """First row of each device's choices in the static tables."""
        if self._kbase is None:
            self._kbase = self.row * self._sj
        return self._kbase

    def __init__(self, core: Core) -> None:
        ta = core.tables
        a_n = ta.n_apps
        st = core.state
        self.has = has = st.qlen > 0
        hidx = core._qbase + st.qhead
        app = st.qapp.take(hidx)
        arr = st.qarr.take(hidx)
        self.app0 = np.where(has, app, 0)  # app, 0 where none
        app_x = np.where(has, app, a_n)  # app, A ("no task") where none
        # row of (device, app or none) in the static tables
        self.row = row = core._row_n + app_x
        self._sj, self._kbase = core._sj, None
        self.wait = np.where(has, (core.t[:, None] - arr) * core.slot_s, 0.0)
        for a in (has, self.app0, row):
            a.flags.writeable = False


class Core:
    """Batched EdgeSplit simulator over ``num_envs`` independent environments.

    Parameters
    ----------
    scenario:
        a validated :class:`~edgesplit.sim.scenario.Scenario`.
    num_envs:
        batch size ``E``.
    tables:
        prebuilt ``(Tables, Physics)`` of the scenario (built when omitted).
    backend:
        ``"numba"`` (the compiled step of :mod:`edgesplit.sim.kernel`), ``"numpy"`` (the
        reference implementation below) or ``"auto"`` (numba when it can be imported, else
        numpy, with a warning). Both give the same dynamics; ``tests/test_backends.py``
        checks them against each other. :meth:`resolve` (pure, used by the oracle
        baselines) and :meth:`reset` are numpy in both.
    """

    def __init__(
        self,
        scenario: Scenario,
        num_envs: int = 1,
        tables: tuple[Tables, Physics] | None = None,
        backend: str = "auto",
    ) -> None:
        self.scenario = sc = scenario
        self.num_envs = e = int(num_envs)
        self.tables, self.physics = tables if tables is not None else build(scenario)
        ta, ph = self.tables, self.physics
        n, q = ta.n_devices, ta.queue_capacity
        self.n_devices, self.n_targets, self.n_aps = n, ta.n_targets, sc.n_servers
        self.slot_s = sc.slot_s
        self.has_cloud = sc.cloud is not None
        self._eidx = np.arange(e)[:, None]
        self._nidx = np.arange(n)[None, :]
        self._qmax_arr = q + 2  # arrivals counted up to this many per slot (rest lumped)
        self._last_valid = ta.n_valid - 1  # [A]
        self._deadline = ta.deadline_s
        rw = sc.reward
        self._w = (
            rw.latency_weight,
            rw.energy_weight / rw.energy_ref_j,
            rw.miss_penalty,
            rw.infeasible_penalty,
            rw.drop_penalty,
        )
        if ph.backhaul is not None:
            self._bh_rate = ph.backhaul.mean_mbps * 1e6
            self._bh_rtt = ph.backhaul.rtt_s
        else:
            self._bh_rate, self._bh_rtt = np.inf, 0.0
        # Poisson cdf for k = 0..qmax-1 arrivals per arrival row: device n's row 2n between
        # bursts, 2n + 1 in one (the same for devices without bursts)
        lam = ph.arrival_mean.reshape(-1)[:, None]
        k = np.arange(self._qmax_arr)[None, :]
        logfact = np.cumsum(np.log(np.maximum(k, 1)), axis=1)
        with np.errstate(divide="ignore"):
            pmf = np.exp(-lam + k * np.log(np.where(lam > 0, lam, 1.0)) - logfact)
        pmf[:, 1:] *= lam > 0
        self._arr_cdf = np.cumsum(pmf, axis=1)  # [2N, K]
        self._app_cdf = ph.app_cdf
        # bursts: per-slot switching probabilities as thresholds on 32-bit uniforms
        self._bursty = bool((ph.phase_on > 0).any() or (ph.phase_start > 0).any())
        self._phase_thr = np.ceil(
            np.stack([ph.phase_on, ph.phase_off, ph.phase_start], axis=1) * 2.0**32
        ).astype(np.uint64)  # [N, 3]: start a burst, end one, begin an episode in one
        self._off_phase = rng.offsets(rng.STREAM_PHASE, np.arange(n))
        # the same cdfs as thresholds on 32-bit integer uniforms U (U / 2^32 >= c exactly
        # when U >= ceil(c * 2^32)), each device's shifted by n * 2^33 so that one sorted
        # array serves all devices: searchsorted gives n * K + (number of thresholds <= U)
        shift = np.arange(n, dtype=np.uint64)[:, None] << np.uint64(33)
        arr_shift = np.arange(2 * n, dtype=np.uint64)[:, None] << np.uint64(33)
        arr_thr = np.ceil(self._arr_cdf * 2.0**32).astype(np.uint64)
        app_thr = np.ceil(self._app_cdf * 2.0**32).astype(np.uint64)
        self._arr_thr, self._app_thr = arr_thr, app_thr
        # a slot's arrival word w of a device gives U = w >> 32 (count) and w & (2^32 - 1)
        # (app of the first task); "at least one arrival" is w >= thr0 << 32
        never = arr_thr[:, 0] >= np.uint64(2**32)  # no arrivals (rate 0)
        self._arr_hit = np.where(never, np.uint64(2**64 - 1), arr_thr[:, 0] << np.uint64(32))
        self._arr_sorted = (arr_thr + arr_shift).ravel()
        self._app_sorted = (app_thr + shift).ravel()
        self._shift = shift[:, 0]
        self._arr_shift = arr_shift[:, 0]
        self._arr_k0 = np.arange(2 * n, dtype=np.int64) * self._qmax_arr
        self._app_k0 = np.arange(n, dtype=np.int64) * ta.n_apps
        # links: every (device, access point) link of every class in one bank
        classes, ln, lm = [], [], []
        for lc, ni, mi in ph.link_pairs.values():
            classes += [lc] * len(ni)
            ln.append(ni)
            lm.append(mi)
        self._n_links = len(classes)
        if classes:
            self._bank: LinkBank | None = LinkBank(classes, sc.slot_s, (e, len(classes)))
            self._link_n = np.concatenate(ln).astype(np.intp)
            self._link_m = np.concatenate(lm).astype(np.intp)
            wr = (self._bank.n_reset_uniforms + 1) // 2  # words per link
            ws = (self._bank.n_step_uniforms + 1) // 2
        else:
            self._bank, wr, ws = None, 0, 0
        self._link_words = (wr, ws)
        # generator layout of a slot: [arrivals (N) | link steps (L * ws)], then, hashed
        # one by one, the apps of extra arrivals at index slot_words + n * kmax + m
        self._slot_words = n + len(classes) * ws
        self._off_slot = rng.offsets(rng.STREAM_SLOT, np.arange(self._slot_words))
        self._off_reset = rng.offsets(rng.STREAM_LINK_RESET, np.arange(len(classes) * wr))
        self._off_extra = rng.offsets(
            rng.STREAM_SLOT, self._slot_words + np.arange(n * self._qmax_arr)
        )
        # flat (environment, device) index -> device, environment, its arrival word
        self._dev_of = np.tile(np.arange(n, dtype=np.intp), e)
        self._env_of = np.repeat(np.arange(e, dtype=np.intp), n)
        self._word_of = self._env_of * self._slot_words + self._dev_of
        # flat indices
        a_n, s_n, j_n, m_n = ta.n_apps, ta.n_candidates, ta.n_targets, self.n_aps
        self._qbase = (np.arange(e * n, dtype=np.intp) * q).reshape(e, n)
        self._row_n = np.arange(n, dtype=np.intp) * (a_n + 1)
        self._sj = s_n * j_n
        self._bm = np.arange(e, dtype=np.intp)[:, None] * m_n
        self._bj = np.arange(e, dtype=np.intp)[:, None] * j_n
        self._bnm = np.arange(e, dtype=np.intp)[:, None] * (n * m_n)
        self._ftab, self._itab = self._choice_tables()
        # batteries: a second copy of the choice tables where every split is full offload
        # (rows of a head the charge cannot pay for), ``_kalt`` rows after the first
        self._bat = ph.capacity_j > 0  # [N]
        self._kalt = 0
        if self._bat.any():
            self._ftab, self._itab, self._kalt = self._offload_rows(self._ftab, self._itab)
        # [N * (A + 1), S] each static-table row's head energies, 0 where no battery limits
        # them (a mains-powered device, no task): affordable() is one gather and a compare
        e_rows = np.zeros((n, ta.n_apps + 1, ta.n_candidates))
        e_rows[:, : ta.n_apps] = np.where(self._bat[:, None, None], ta.head_energy_j, 0.0)
        self._head_e_rows = e_rows.reshape(n * (ta.n_apps + 1), ta.n_candidates)
        # [N * (A + 1), K] each row's multidiscrete mask before batteries (see masks())
        self._mask_rows = row_masks(ta, "multidiscrete")
        self._budget_j = ph.budget_j  # [N] per slot, inf where none
        self._w_budget = rw.budget_weight / rw.energy_ref_j
        # state
        self.state = State.zeros(e, n, q, ta.n_targets, sc.n_servers)
        info = sc.information
        self._measured_rates = info.link_rate == "measured"
        self._ewma_w = info.ewma_weight
        self._reported_backlogs = info.server_backlog == "reported"
        self._pend: _Pending | None = None
        self.backend = self._choose_backend(backend)
        self._k: KernelArgs | None = self._kernel_args() if self.backend == "numba" else None
        self._kview: Packed | None = None  # the last packed result of the compiled step
        self._kobs: np.ndarray | None = None
        self._kmask: np.ndarray | None = None  # the compiled step's masks, until handed out

    # the state's public parts, as attributes of the core
    @property
    def t(self) -> np.ndarray:
        """``[E]`` the current slot."""
        return self.state.t

    @property
    def qlen(self) -> np.ndarray:
        """``[E, N]`` tasks queued on each device (the first is pending)."""
        return self.state.qlen

    @property
    def dev_backlog(self) -> np.ndarray:
        """``[E, N]`` seconds of device work carried over."""
        return self.state.dev_backlog

    @property
    def srv_backlog(self) -> np.ndarray:
        """``[E, J]`` seconds of target work carried over."""
        return self.state.srv_backlog

    @property
    def rates(self) -> np.ndarray:
        """``[E, N, M]`` current link rates (Mbps)."""
        return self.state.rates

    # copies and pickles: the compiled step's state array is rebuilt, the state's values
    # kept; its static array (which holds the trace tables) is shared by deep copies and
    # packed again on loading a pickle
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        k = state["_k"]
        state["_k"] = None
        state["_kstatics"] = k.shared_statics if k is not None else None
        return state

    def __copy__(self) -> Core:
        # a shallow copy would share the link bank, whose state the compiled step keeps in
        # this core's arrays: a copy of a simulator is always a deep one
        return copy.deepcopy(self)

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        shared = state.pop("_kstatics", None)
        self.__dict__.update(state)
        if self.backend == "numba":
            # the state arrays were copied one by one: make them views of one array again
            self._k = self._kernel_args(shared)

    def _kernel_args(self, shared: SharedStatics | None = None) -> KernelArgs:
        from .kernel import KernelArgs  # numba is imported only for this backend

        return KernelArgs(self, shared)

    def _choose_backend(self, backend: str) -> str:
        if backend not in BACKENDS:
            raise ValueError(f"backend: {backend!r} is not one of {BACKENDS}")
        if backend == "numpy":
            return "numpy"
        bank = self._bank
        if bank is not None and any(p.n_step_uniforms for p, _ in bank.other_processes):
            # a link class the compiled step does not know how to feed
            if backend == "numba":
                raise ValueError("backend: 'numba' cannot step this scenario's link classes")
            return "numpy"
        if not _numba_available():
            why = _numba_problem() or "numba is not available"
            if backend == "numba":
                raise ImportError(f"backend: 'numba' cannot be used: {why}")
            warnings.warn(
                f"edgesplit: {why}; the simulator runs on its numpy backend "
                "(same dynamics, several times slower per step)",
                RuntimeWarning,
                stacklevel=3,
            )
            return "numpy"
        return "numba"

    def _choice_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Everything static about a device's choice, by ``(device, app or none, split,
        target)`` as chosen (before masking): float ``[K, 10]`` and int ``[K, 4]`` tables.

        App index ``A`` stands for "no pending task": nothing runs, nothing is masked, the
        split is reported as chosen. A masked split is replaced by all-local, an unreachable
        target by the home edge (for every device, as the reported target)."""
        ta, ph = self.tables, self.physics
        n_n, a_n, s_n, j_n, m_n = (
            ta.n_devices,
            ta.n_apps,
            ta.n_candidates,
            ta.n_targets,
            self.n_aps,
        )
        nn, aa, ss, jj = np.meshgrid(
            np.arange(n_n), np.arange(a_n + 1), np.arange(s_n), np.arange(j_n), indexing="ij"
        )
        task = aa < a_n
        ac = np.minimum(aa, a_n - 1)  # a valid app index to read tables with
        last = self._last_valid[ac]
        inf_s = task & (ss > last)
        split = np.where(inf_s, last, ss)
        reach = ta.reachable[nn, jj]
        target = np.where(reach, jj, ta.home[nn])
        inf_t = task & ~reach
        off = task & (split != last)
        ap = ta.ap_of_target[nn, target]
        head = ta.head_s[nn, ac, split] * task
        nbytes = ta.bytes_[ac, split] * off
        rtt = np.where(off, ph.rtt_s[nn, ap], 0.0)
        bh = np.zeros(off.shape)
        if self.has_cloud:
            cloud = off & (target == j_n - 1)
            bh = np.where(cloud, nbytes * 8.0 / self._bh_rate, 0.0)
            rtt = rtt + np.where(cloud, self._bh_rtt, 0.0)
        f = np.zeros((*off.shape, len(CHOICE_FLOAT_COLUMNS)))
        f[..., CF.head_s] = head
        f[..., CF.mbits] = nbytes * 8.0 / 1e6
        f[..., CF.off] = off
        f[..., CF.not_off] = ~off
        f[..., CF.work_s] = ta.tail_s[ac, split, target] * off
        f[..., CF.backhaul_s] = bh
        f[..., CF.rtt_s] = rtt
        f[..., CF.infeasible] = inf_s | inf_t
        f[..., CF.head_energy_j] = ph.p_active_w[nn] * head
        f[..., CF.deadline_s] = np.where(task, self._deadline[ac], 1.0)
        i = np.zeros((*off.shape, len(CHOICE_INT_COLUMNS)), dtype=np.intp)
        i[..., CI.split] = split
        i[..., CI.target] = target
        i[..., CI.ap] = ap
        i[..., CI.device_ap] = nn * m_n + ap
        return f.reshape(-1, f.shape[-1]), i.reshape(-1, i.shape[-1])

    def _offload_rows(self, f: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """The choice tables followed by their full-offload copy: row ``k + K`` is choice
        ``k`` with its split replaced by candidate 0 (same target, or the home edge where it
        is unreachable) and flagged infeasible where there is a task. Returns the tables and
        ``K``."""
        ta = self.tables
        s_n, j_n = ta.n_candidates, ta.n_targets
        k_n = f.shape[0]
        idx = np.arange(k_n).reshape(-1, s_n, j_n)
        alt = np.broadcast_to(idx[:, :1, :], idx.shape).reshape(-1)
        fa, ia = f[alt].copy(), i[alt].copy()
        task = (np.arange(k_n) // (s_n * j_n)) % (ta.n_apps + 1) < ta.n_apps
        fa[task, CF.infeasible] = 1.0
        return np.concatenate([f, fa]), np.concatenate([i, ia]), k_n

    # randomness ------------------------------------------------------------------------
    def _slot_base(self, t: np.ndarray) -> np.ndarray:
        """``[E]`` per-environment part of the generator's input at slots ``t``."""
        return rng.slot_base(self.state.mixed_key, t)

    def uniforms(self, stream: int, size: int, t: np.ndarray | None = None) -> np.ndarray:
        """``[E, size]`` uniforms in [0, 1) (53 bits) of ``stream`` at each environment's
        slot (``t``, default the current one): element ``i`` of environment ``e`` depends
        only on its key, its slot, ``stream`` and ``i``."""
        base = self._slot_base(self.state.t if t is None else np.asarray(t))
        z = rng.finalise(base[:, None] + rng.offsets(stream, np.arange(size))[None, :])
        return rng.uniform53(z)

    # reset -----------------------------------------------------------------------------
    def reset(self, keys: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Start new episodes in the environments selected by ``mask`` (all by default)
        with the given 64-bit ``keys`` (``[E]``; entries outside ``mask`` are ignored)."""
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        keys = np.asarray(keys, dtype=np.uint64)
        st = self.state
        st.reset_rows(mask)
        st.key[mask] = keys[mask]
        st.mixed_key[mask] = rng.splitmix(keys)[mask]
        # the first slot's tasks and link states: drawn at slot -1
        t_prev = np.where(mask, -1, self.state.t)
        base = self._slot_base(t_prev)
        bank = self._bank
        if bank is not None:
            u = rng.halves(rng.finalise(base[:, None] + self._off_reset[None, :]))
            u = u.reshape(self.num_envs, self._n_links, -1)[..., : bank.n_reset_uniforms]
            bank.reset(u, mask=mask)
            self.state.rates[:, self._link_n, self._link_m] = bank.rates
        # a device knows its links' first rates (measured when it associates); the servers
        # start empty, and say so
        st.rates_seen[mask] = st.rates[mask]
        if self._bursty:  # each device starts in a burst with its stationary probability
            u = rng.finalise(base[:, None] + self._off_phase[None, :]) & rng.LO32
            start = u < self._phase_thr[:, 2]
            st.phase[mask] = start[mask]
        if self._kalt:  # each battery's initial charge, uniform in its [low, high]
            lo, hi = self.physics.charge0_j[:, 0], self.physics.charge0_j[:, 1]
            u = rng.uniform53(
                rng.finalise(base[:, None] + rng.offsets(rng.STREAM_CHARGE, self._nidx[0]))
            )
            st.charge[mask] = (lo + u * (hi - lo))[mask]
        words = rng.finalise(base[:, None] + self._off_slot[None, :])
        self._arrive(mask, t_prev, words, base)
        self._pend = None
        self._kview = None
        self._kobs = None
        self._kmask = None

    # arrivals --------------------------------------------------------------------------
    def _arrive(
        self, mask: np.ndarray | None, t: np.ndarray, words: np.ndarray, base: np.ndarray
    ) -> np.ndarray | None:
        """Draw the arrivals of slots ``t`` from their generator words ``[E, slot words]``
        (``base``: the slots' generator input); returns the number dropped per device
        ``[E, N]`` (None when none)."""
        n, q = self.n_devices, self.tables.queue_capacity
        arow = 2 * self._nidx + self.state.phase  # [E, N] each device's arrival row
        hit = words[:, :n] >= self._arr_hit.take(arow)  # at least one arrival
        if mask is not None:
            hit &= mask[:, None]
        fi = np.flatnonzero(hit)  # flat (environment, device) indices
        if not fi.size:
            return None
        nn = self._dev_of.take(fi)
        rr = arow.reshape(-1).take(fi)
        w = words.reshape(-1).take(self._word_of.take(fi))
        u = (w >> np.uint64(32)) + self._arr_shift.take(rr)
        count = self._arr_sorted.searchsorted(u, "right") - self._arr_k0.take(rr)
        qlen_f = self.state.qlen.reshape(-1)
        qlen = qlen_f.take(fi)
        acc = np.minimum(count, q - qlen)
        dropped = None
        if (count > acc).any():
            dropped = np.zeros(self.num_envs * n, dtype=np.int64)
            dropped[fi] = count - acc
            dropped = dropped.reshape(self.num_envs, n)
        if acc.min() == 0:  # full queues
            keep = acc > 0
            fi, nn, w, acc, qlen = fi[keep], nn[keep], w[keep], acc[keep], qlen[keep]
            if not fi.size:
                return dropped
        qlen_f.put(fi, qlen + acc)
        u_app = w & rng.LO32
        if acc.max() > 1:  # several arrivals at a device: one hashed uniform each for m >= 1
            rep = np.repeat(np.arange(len(fi)), acc - 1)
            first = np.cumsum(acc - 1) - (acc - 1)
            mx = np.arange(len(rep)) - first[rep] + 1
            fr, nr = fi[rep], nn[rep]
            z = rng.finalise(base[fr // n] + self._off_extra[nr * self._qmax_arr + mx])
            fi, nn = np.append(fi, fr), np.append(nn, nr)
            qlen = np.append(qlen, qlen[rep] + mx)
            u_app = np.append(u_app, z >> np.uint64(32))
        apps = self._app_sorted.searchsorted(u_app + self._shift.take(nn), "right")
        apps -= self._app_k0.take(nn)
        np.minimum(apps, self.tables.n_apps - 1, out=apps)
        flat = fi * q + (self.state.qhead.reshape(-1).take(fi) + qlen) % q
        self.state.qapp.put(flat, apps)
        self.state.qarr.put(flat, (t + 1).take(fi // n))
        return dropped

    def _switch_phases(self, base: np.ndarray) -> None:
        """Bursts start and end: each device's phase for the next slot, from one 32-bit
        uniform per device of the slot's generator (``base``)."""
        st = self.state
        u = rng.finalise(base[:, None] + self._off_phase[None, :]) & rng.LO32
        thr = np.where(st.phase == 1, self._phase_thr[:, 1], self._phase_thr[:, 0])
        st.phase ^= (u < thr).astype(np.int64)

    # views -----------------------------------------------------------------------------
    def _pending(self) -> _Pending:
        p = self._pend
        if p is None:
            p = self._pend = _Pending(self)
        return p

    def pending(self) -> tuple[np.ndarray, np.ndarray]:
        """``has_task`` and ``app`` (0 where none) of each device's pending task, ``[E, N]``
        (read-only)."""
        p = self._pending()
        return _read_only(p.has), _read_only(p.app0)

    def pending_rows(self) -> np.ndarray:
        """``[E, N]`` the static-table row of each device's pending task,
        ``device * (A + 1) + (app, or A where none)`` (read-only): the key of everything static
        about it (its observation's static part, its action masks)."""
        return _read_only(self._pending().row)

    def observe(self, out: np.ndarray | None = None) -> np.ndarray:
        """Per-device observations ``[E, N, D]`` (float32); a fresh array unless ``out``."""
        ko = self._kobs
        if ko is not None:  # written by the compiled step
            if out is None:
                self._kobs = None  # handed over: the next call encodes again
                return ko
            np.copyto(out, ko)
            return out
        p = self._pending()
        return encode_devices(
            self.tables,
            p.has,
            p.app0,
            p.wait,
            self.state.qlen,
            self.state.dev_backlog,
            self.state.rates_seen,
            self.state.srv_seen,
            self.state.t,
            out=out,
            rows=p.row,
            charge_j=self.state.charge,
            debt_j=self.state.energy_debt,
        )

    def affordable(self, env: int | None = None) -> np.ndarray | None:
        """``[E, N, S]`` the splits each device's battery can pay for now (every split of a
        mains-powered device, or of one without a task), ``[N, S]`` for environment ``env``
        alone; None when no device has a battery. :meth:`masks` ANDs it into the static
        masks (the compiled step makes the same compare), as the faces' other views do."""
        if not self._kalt:
            return None
        if env is not None:  # one environment's rows only (the single-env faces)
            rows = self._pending().row[env]
            return self._head_e_rows.take(rows, axis=0) <= self.state.charge[env][:, None]
        rows = self._pending().row
        return self._head_e_rows.take(rows, axis=0) <= self.state.charge[..., None]

    def masks(self, env: int | None = None) -> np.ndarray:
        """``[E, N, K]`` the multidiscrete action masks of each device's pending task
        (``K = S + J + 2L``, True: allowed; see :func:`row_masks`), the splits a battery
        cannot pay for masked (:meth:`affordable`); ``[N, K]`` for environment ``env``
        alone. A fresh array: the compiled step writes the next slot's masks beside its
        observation, handed out by the first call after the step; other calls gather them
        from :func:`row_masks` (the numpy backend always does), the same values.

        >>> from edgesplit.sim.scenario import load_scenario
        >>> core = Core(load_scenario("battery"), 2)
        >>> core.reset(np.array([1, 2], dtype=np.uint64))
        >>> m = core.masks()
        >>> m.shape == (2, core.n_devices, int(core.tables.nvec.sum())), m.dtype.name
        (True, 'bool')
        """
        km = self._kmask
        if km is not None:  # written by the compiled step
            self._kmask = None  # handed over: the next call gathers again
            return km if env is None else km[env]
        rows = self._pending().row
        if env is not None:
            rows = rows[env]
        m = self._mask_rows.take(rows, axis=0)
        aff = self.affordable(env)
        if aff is not None:  # the split is the first field
            m[..., : self.tables.n_candidates] &= aff
        return m

    # step ------------------------------------------------------------------------------
    def resolve(
        self,
        dec: Decisions,
        rows: np.ndarray | None = None,
        active: np.ndarray | None = None,
        known: bool = False,
    ) -> StepResult:
        """Outcome of one slot under decisions ``[B, N]``, without changing any state.

        ``known``: judge it on what the scheduler knows (the measured link rates and the
        reported server backlogs, see :class:`~edgesplit.sim.scenario.InformationSpec`)
        instead of the true rates and backlogs: the outcome a fair rule *expects*.

        ``rows[b]`` is the environment whose state batch row ``b`` starts from (default: row
        ``b`` is environment ``b``), so that many candidate decisions can be judged against
        one environment at once (the oracle baselines do). ``active`` ``[B, N]`` removes
        devices from the slot (their tasks neither act nor contend). Arrivals and drops are
        not part of the outcome: :meth:`step` adds them.
        """
        p = self._pending()
        has, app, wait_q, kbase = p.has, p.app0, p.wait, p.kbase
        if self._k is not None:  # the compiled step's arrays: hand out read-only views
            has, app = _read_only(has), _read_only(app)
        st = self.state
        if known:
            dev_b, srv_b, rates = st.dev_backlog, st.srv_seen, st.rates_seen
        else:
            dev_b, srv_b, rates = st.dev_backlog, st.srv_backlog, st.rates
        charge, debt = st.charge, st.energy_debt  # known: a device reports its own battery
        if rows is not None:
            has, app, wait_q, kbase = has[rows], app[rows], wait_q[rows], kbase[rows]
            dev_b, srv_b, rates = dev_b[rows], srv_b[rows], rates[rows]
            charge, debt = charge[rows], debt[rows]
        return self._outcome(
            dec, has, app, wait_q, kbase, dev_b, srv_b, rates, active, charge=charge, debt=debt
        )

    def option_estimates(self, known: bool = True) -> AloneOutcome:
        """Each device's every ``(split, target)`` option judged alone, arrays
        ``[E, N, S, J]``: the outcome of its pending task at whole shares with no other task
        of the slot contending, on what the scheduler knows (``known``, the default: the
        measured rates and reported backlogs) or on the truth, batteries included (a head
        the charge cannot pay for runs as full offload; the energy budget's deficit costs).
        Neurosurgeon picks each device's cheapest option here; the shared policies see these
        estimates, computed from the observation (:mod:`edgesplit.sim.estimates`; there a
        head the charge cannot pay for is masked rather than replaced)."""
        p = self._pending()
        st = self.state
        dev_b, srv_b, rates = (
            (st.dev_backlog, st.srv_seen, st.rates_seen)
            if known
            else (st.dev_backlog, st.srv_backlog, st.rates)
        )
        e, n = p.has.shape
        ta = self.tables
        s_n, j_n = ta.n_candidates, ta.n_targets
        k = p.kbase[:, :, None] + np.arange(self._sj)  # [E, N, SJ]
        f = self._ftab.take(k, axis=0, mode="clip")
        if self._kalt:  # a head the battery cannot pay for runs as full offload
            gate = self._bat[:, None] & (f[..., CF.head_energy_j] > st.charge[:, :, None])
            k = np.where(gate, k + self._kalt, k)
            f = self._ftab.take(k, axis=0, mode="clip")
        ci = self._itab.take(k, axis=0, mode="clip")
        rate = np.take_along_axis(rates.reshape(e, -1), ci[..., CI.device_ap].reshape(e, -1), 1)
        srv = np.take_along_axis(srv_b, ci[..., CI.target].reshape(e, -1), 1)
        shape = (e, n, self._sj)
        out = alone_outcome(
            f,
            p.wait[:, :, None],
            (dev_b * p.has)[:, :, None],
            np.maximum(rate.reshape(shape), 1e-12),
            srv.reshape(shape),
            self.physics.p_tx_w[None, :, None],
            self._w,
        )
        if self._kalt:  # the energy budget's deficit after this slot, paid every slot
            deficit = st.energy_debt[:, :, None] + out.energy_j - self._budget_j[None, :, None]
            out.cost = out.cost + self._w_budget * np.maximum(deficit, 0.0)
        for name, v in vars(out).items():
            setattr(out, name, np.asarray(v).reshape(e, n, s_n, j_n))
        return out

    def resolve_snapshot(
        self,
        dec: Decisions,
        has_task: np.ndarray,
        app: np.ndarray,
        wait_s: np.ndarray,
        dev_backlog: np.ndarray,
        srv_backlog: np.ndarray,
        rates: np.ndarray,
        active: np.ndarray | None = None,
        charge_j: np.ndarray | None = None,
        debt_j: np.ndarray | None = None,
    ) -> StepResult:
        """:meth:`resolve` for a system snapshot given as arrays instead of this core's
        state: pending tasks ``has_task``, ``app``, their waits ``wait_s`` and the device
        backlogs ``[B, N]``, server backlogs ``[B, J]``, link rates ``[B, N, M]`` (Mbps),
        and optionally battery charges and energy-budget deficits ``[B, N]`` (joules;
        without them no head is limited by a battery and no deficit is owed). The same
        model, for a live system (the scheduler's fallback rule judges requests with it)."""
        has = np.asarray(has_task, dtype=bool)
        app = np.where(has, app, 0).astype(np.int64)
        rows = self._row_n + np.where(has, app, self.tables.n_apps)
        wait_q = np.where(has, wait_s, 0.0)
        return self._outcome(
            dec,
            has,
            app,
            wait_q,
            rows * self._sj,
            np.asarray(dev_backlog, float),
            np.asarray(srv_backlog, float),
            np.asarray(rates, float),
            active,
            charge=None if charge_j is None else np.asarray(charge_j, float),
            debt=None if debt_j is None else np.asarray(debt_j, float),
        )

    def _outcome(
        self,
        dec: Decisions,
        has: np.ndarray,
        app: np.ndarray,
        wait_q: np.ndarray,
        kbase: np.ndarray,
        dev_b: np.ndarray,
        srv_b: np.ndarray,
        rates: np.ndarray,
        active: np.ndarray | None,
        charge: np.ndarray | None = None,
        debt: np.ndarray | None = None,
    ) -> StepResult:
        """The slot's outcome from the pending tasks and the state's arrays (batch ``B``);
        ``charge`` and ``debt`` ``[B, N]``: the batteries' charges (None: no head limited)
        and the energy-budget deficits (None: no budget cost)."""
        if active is not None:
            has = has & active
            wait_q = wait_q * has
            kbase = np.where(has, kbase, (self._row_n + self.tables.n_apps) * self._sj)
        b_n, j_n, m_n = has.shape[0], self.n_targets, self.n_aps
        if b_n == self.num_envs:
            bm, bj, bnm = self._bm, self._bj, self._bnm
        else:
            bi = np.arange(b_n, dtype=np.intp)[:, None]
            bm, bj, bnm = bi * m_n, bi * j_n, bi * (self.n_devices * m_n)
        # everything static about each choice, in two gathers
        split_req = np.asarray(dec.split)
        k = kbase + split_req * j_n + dec.target
        f = self._ftab.take(k, axis=0, mode="clip")
        ci = self._itab.take(k, axis=0, mode="clip")
        if self._kalt and charge is not None:  # heads the battery cannot pay for: offload
            gate = self._bat & (f[..., CF.head_energy_j] > charge)
            if gate.any():
                k = np.where(gate, k + self._kalt, k)
                f = self._ftab.take(k, axis=0, mode="clip")
                ci = self._itab.take(k, axis=0, mode="clip")
        off = f[..., CF.off]
        target = ci[..., CI.target]
        bw = np.asarray(dec.bw_weight, dtype=np.float64)
        cpu = np.asarray(dec.cpu_weight, dtype=np.float64)
        # bandwidth: tasks through one access point share it in proportion to wb
        wb = bw * off
        flat = bm + ci[..., CI.ap]
        tot_b = np.bincount(flat.ravel(), weights=wb.ravel(), minlength=b_n * m_n).take(flat)
        rate = rates.reshape(-1).take(bnm + ci[..., CI.device_ap])
        air = f[..., CF.mbits] * tot_b / ((wb + f[..., CF.not_off]) * rate)
        transfer = air + f[..., CF.backhaul_s]
        # compute: tasks with tail work on one target share it in proportion to wc
        work = f[..., CF.work_s]
        busy = work > 0
        wc = cpu * busy
        flat_j = bj + target
        tot_c = np.bincount(flat_j.ravel(), weights=wc.ravel(), minlength=b_n * j_n).take(flat_j)
        tail = work * tot_c / np.where(busy, cpu, 1.0)
        head = f[..., CF.head_s]
        wait_d = dev_b * has
        ready = wait_d + head + transfer
        wait_s = np.maximum(srv_b.reshape(-1).take(flat_j) - ready, 0.0) * busy
        rtt = f[..., CF.rtt_s]
        latency = wait_q + ready + rtt + wait_s + tail
        energy = f[..., CF.head_energy_j] + self.physics.p_tx_w * air
        dl = f[..., CF.deadline_s]
        miss = latency > dl
        inf = f[..., CF.infeasible] > 0
        w_l, w_e, w_m, w_i, _ = self._w
        cost = w_l * latency / dl + w_e * energy + w_m * miss + w_i * inf
        if debt is not None:  # the energy budget's deficit after this slot, paid every slot
            cost = cost + self._w_budget * np.maximum(debt + energy - self._budget_j, 0.0)
        res = StepResult(
            has_task=has,
            app=app,
            split=ci[..., CI.split],
            target=target,
            bw_weight=bw,
            cpu_weight=cpu,
            infeasible=inf,
            latency_s=latency,
            head_s=head,
            transfer_s=transfer,
            rtt_s=rtt,
            tail_s=tail,
            tail_work_s=work,
            wait_s=wait_q + wait_d + wait_s,
            energy_j=energy,
            deadline_miss=miss,
            dropped=np.zeros(has.shape, dtype=np.int64),
            cost=cost,
            team_reward=-cost.sum(1) / self.n_devices,
        )
        return res

    def step(self, dec: Decisions) -> StepResult:
        """Resolve one slot for every environment with decisions ``[E, N]`` and move on.
        Raises :class:`~edgesplit.sim.encoding.ActionError` naming the field, environment,
        device and value, before any state changes, for decisions of the wrong shape or out
        of range (a split or target outside the space, a weight not finite and positive)."""
        self._check_decisions(dec)
        if self._k is None:  # numpy: the StepResult as computed, not packed and unpacked
            return self._step_numpy(dec)
        return self.result_of(self._step_packed(dec))

    def step_packed(self, dec: Decisions) -> Packed:
        """:meth:`step`, returning the packed result (see :meth:`result_of`)."""
        self._check_decisions(dec)
        return self._step_packed(dec)

    def _step_packed(self, dec: Decisions) -> Packed:
        k = self._k
        if k is None:
            return self.pack(self._step_numpy(dec))
        out = self._kstep(0, k.dummy_ai, dec.as_array())
        assert out is not None  # mode 0 validates nothing: the decisions were checked
        return out

    def _check_decisions(self, dec: Decisions) -> None:
        shape = (self.num_envs, self.n_devices)
        ta = self.tables
        size = {"candidate": ta.n_candidates, "target": ta.n_targets}
        for f, a in zip(DECISION_FIELDS, dec.fields(), strict=True):
            a = np.asarray(a)
            if a.shape != shape:
                raise ActionError(f"decisions.{f.name}: expected shape {shape}, got {a.shape}")
            if f.kind in size:
                hi = size[f.kind]
                bad = (a < 0) | (a >= hi) | (a != np.floor(a))
                want = f"an integer in [0, {hi})"
            else:
                bad = ~np.isfinite(a) | (a <= 0)
                want = "a finite weight > 0"
            if bad.any():
                e, i = np.argwhere(bad)[0]
                raise ActionError(
                    f"decisions.{f.name}[env {e}, device {ta.device_names[i]!r}] = "
                    f"{a[e, i].item()!r}: expected {want}"
                )

    def step_action(self, action: np.ndarray, action_type: str) -> StepResult:
        """Decode raw actions ``[E, N, ...]`` of ``action_type`` and step. Raises
        :class:`~edgesplit.sim.encoding.ActionError` naming the device and the value, before
        any state changes, when an action is malformed or out of range."""
        if self._k is None:
            return self._step_numpy(decode(self.tables, action, action_type, self.pending()[1]))
        return self.result_of(self.step_action_packed(action, action_type))

    def step_action_packed(self, action: np.ndarray, action_type: str) -> Packed:
        """:meth:`step_action`, returning the packed result (the compiled backend decodes
        and steps in one call)."""
        k = self._k
        if k is not None and action_type != "discrete":
            a = action
            if action_type == "multidiscrete":
                if a.shape == k.dummy_ai.shape and a.dtype.kind in "iu":
                    out = self._kstep(1, a.astype(np.int64, copy=False), k.dummy_af)
                    if out is not None:
                        return out
            elif a.shape == k.dummy_af.shape and a.dtype.kind == "f":
                out = self._kstep(2, k.dummy_ai, a.astype(np.float64, copy=False))
                if out is not None:
                    return out
        # the numpy decoder: the reference, and the one that words the errors
        return self._step_packed(decode(self.tables, action, action_type, self.pending()[1]))

    def result_of(self, packed: Packed) -> StepResult:
        """The :class:`~edgesplit.sim.schema.StepResult` of a packed result (views)."""
        return unpack_result(packed)

    def pack(self, res: StepResult) -> Packed:
        """A :class:`~edgesplit.sim.schema.StepResult` in the packed layout (copies)."""
        return pack_result(res)

    def _kstep(
        self,
        mode: int,
        act_i: np.ndarray,
        act_f: np.ndarray,
    ) -> Packed | None:
        """One compiled step; None (nothing changed) when an action is invalid."""
        k = self._k
        assert k is not None
        prev = self._kview
        if prev is None:  # after a reset: the pending view in the packed layout
            p = self._pending()
            prev = empty_packed(*k.shape)
            for name, v in (("next_wait", p.wait), ("next_app", p.app0), ("next_row", p.row)):
                prev[ROW[name][0]][ROW[name][1]] = v
            prev[ROW["next_has"][0]][ROW["next_has"][1]] = p.has
        of = np.empty(k.f_shape)
        oi = np.empty(k.i_shape, dtype=np.int64)
        ob = np.empty(k.b_shape, dtype=bool)
        obs = np.empty(k.obs_shape, dtype=np.float32)
        mask = np.empty(k.mask_shape, dtype=bool)
        rc = k.fn(mode, act_i, act_f, k.st, k.sv, *prev, of, oi, ob, obs, mask)
        if rc:
            return None
        self._kview = (of, oi, ob)
        out = (of, oi, ob)
        self._pend = _Pending.of(
            *(out[ROW[r][0]][ROW[r][1]] for r in ("next_has", "next_app", "next_row", "next_wait")),
            self._sj,
        )
        self._kobs = obs
        self._kmask = mask
        return of, oi, ob

    def _step_numpy(self, dec: Decisions) -> StepResult:
        """The reference step (numpy)."""
        e_n, st = self.num_envs, self.state
        res = self.resolve(dec)
        has = res.has_task
        if self._reported_backlogs:  # the servers report their backlog at the slot's start
            st.srv_seen[...] = st.srv_backlog
        self.carry_backlogs(res, st.dev_backlog, st.srv_backlog)
        if not self._reported_backlogs:
            st.srv_seen[...] = st.srv_backlog
        self._drain(res.energy_j)
        # the decided tasks leave the queue; this slot's arrivals join it
        st.qhead[...] = (st.qhead + has) % self.tables.queue_capacity
        st.qlen -= has
        base = self._slot_base(self.state.t)
        words = rng.finalise(base[:, None] + self._off_slot[None, :])
        dropped = self._arrive(None, self.state.t, words, base)
        if dropped is not None:
            res.dropped = dropped
            res.cost = res.cost + self._w[4] * dropped
            res.team_reward = -res.cost.sum(1) / self.n_devices
        if self._bursty:
            self._switch_phases(base)
        st.t += 1
        # the devices measured this slot's rates; the links move on to the next slot
        if self._measured_rates:
            w = self._ewma_w
            st.rates_seen[...] = w * st.rates + (1.0 - w) * st.rates_seen
        bank = self._bank
        if bank is not None:  # every link moves, trace links too (they take no uniforms)
            u = None
            if bank.n_step_uniforms:
                u = rng.halves(words[:, self.n_devices :]).reshape(e_n, self._n_links, -1)
                u = u[..., : bank.n_step_uniforms]
            bank.step(u)
            self.state.rates[:, self._link_n, self._link_m] = bank.rates
        if not self._measured_rates:
            st.rates_seen[...] = st.rates
        self._pend = None
        self._kview = None
        self._kobs = None
        self._kmask = None
        for a in (res.has_task, res.app):  # no longer shared with the pending view
            if a.base is None:
                a.flags.writeable = True
        return res

    def carry_backlogs(
        self, res: StepResult, dev_backlog: np.ndarray, srv_backlog: np.ndarray
    ) -> None:
        """Carry the device backlogs ``[B, N]`` and the target backlogs ``[B, J]`` over a
        resolved slot ``res``, in place: ``Qd <- max(0, Qd + head - slot_s)``, ``Qs[j] <-
        max(0, Qs[j] + sum of the slot's tail work on j - slot_s)``. :meth:`step` (numpy)
        moves its state with it; :func:`edgesplit.sim.replay.replay` moves its own arrays."""
        np.maximum(dev_backlog + res.head_s - self.slot_s, 0.0, out=dev_backlog)
        b_n, j_n = srv_backlog.shape
        bj = self._bj if b_n == self.num_envs else np.arange(b_n, dtype=np.intp)[:, None] * j_n
        flat_j = (bj + res.target).ravel()
        load = np.bincount(flat_j, weights=res.tail_work_s.ravel(), minlength=b_n * j_n)
        np.maximum(srv_backlog + load.reshape(b_n, j_n) - self.slot_s, 0.0, out=srv_backlog)

    def _drain(self, energy: np.ndarray) -> None:
        """The batteries pay for the slot's energy; see :meth:`drain_batteries`."""
        self.drain_batteries(energy, self.state.charge, self.state.energy_debt)

    def drain_batteries(self, energy: np.ndarray, charge: np.ndarray, debt: np.ndarray) -> None:
        """Move the battery charges and the energy-budget deficits ``[B, N]`` over one slot
        whose tasks spent ``energy`` ``[B, N]`` (joules), in place: ``C <- min(cap, max(0, C
        - energy) + harvest_w * slot_s)`` (0 without a battery), ``Z <- max(0, Z + energy -
        budget_w * slot_s)``. :meth:`step` (numpy) moves its state with it;
        :func:`edgesplit.sim.replay.replay` moves its own arrays."""
        ph = self.physics
        if self._kalt:
            left = np.maximum(charge - energy, 0.0) + ph.harvest_j
            charge[...] = np.where(self._bat, np.minimum(left, ph.capacity_j), 0.0)
        np.maximum(debt + energy - self._budget_j, 0.0, out=debt)

    def kernel_statics(self) -> dict[str, object]:
        """What the compiled step needs to know about this core besides its state: the
        reward weights and scales, the per-choice tables, the arrival and application
        thresholds, the generator's offsets and the link layout (see
        :class:`edgesplit.sim.kernel.KernelArgs`, which packs them)."""
        ta = self.tables
        return {
            "weights": self._w,  # latency, energy / E_ref, miss, infeasible, drop
            "budget_weight": self._w_budget,  # per joule of energy-budget deficit, per slot
            "capacity_j": self.physics.capacity_j,
            "harvest_j": self.physics.harvest_j,
            "budget_j": self._budget_j,
            "mask_rows": self._mask_rows,  # [N * (A + 1), K] each static row's mask
            "head_e_rows": self._head_e_rows,  # [N * (A + 1), S] heads a charge must cover
            "kalt": self._kalt,
            "slot_s": self.slot_s,
            "p_tx": self.physics.p_tx_w,
            "choice_f": self._ftab,
            "choice_i": self._itab,
            "arr_thr": self._arr_thr,
            "app_thr": self._app_thr,
            "arr_hit": self._arr_hit,
            "phase_thr": self._phase_thr,
            "off_phase": self._off_phase,
            "bursty": self._bursty,
            "off_slot": self._off_slot,
            "off_extra": self._off_extra,
            "link_n": self._link_n if self._n_links else np.zeros(0, np.int64),
            "link_m": self._link_m if self._n_links else np.zeros(0, np.int64),
            "kmax": self._qmax_arr,
            "slot_words": self._slot_words,
            "step_words_per_link": self._link_words[1],
            "horizon": self.scenario.horizon,
            "measured_rates": self._measured_rates,
            "ewma_weight": self._ewma_w,
            "reported_backlogs": self._reported_backlogs,
            "bank": self._bank,
            "tables": ta,
        }

    @property
    def truncated(self) -> np.ndarray:
        """``[E]`` True where the episode reached the scenario's horizon."""
        return self.state.t >= self.scenario.horizon
