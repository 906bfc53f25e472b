"""The compiled step of :class:`~edgesplit.sim.core.Core` (numba backend).

One call advances every environment of a batch by one slot: it decodes the actions, resolves
the slot, carries the backlogs over, moves the queues, draws the arrivals, steps the Markov
and trace links (wired links keep their constant rate), encodes the next observation and
writes the next slot's action masks (multidiscrete, batteries included).
It is the same arithmetic, in the same order, as the numpy methods of
:class:`~edgesplit.sim.core.Core` (:meth:`~Core.resolve`, :meth:`~Core.step`,
:meth:`~Core._arrive`, :meth:`LinkBank.step <edgesplit.cost_models.links.LinkBank.step>`,
:func:`~edgesplit.sim.encoding.encode_devices`, :meth:`~Core.masks`), which stay the
reference:
``tests/test_backends.py`` checks the two against each other step by step on every shipped
scenario. State, queues and decisions come out identical; float results
agree to the last few bits (``exp`` is libm's here and numpy's SIMD one there, and the team
reward sums devices in order where numpy sums pairwise).

The loop over environments and devices is compiled: no Python runs per device or per
environment. Everything static is packed into one int64 array and the whole state into
another (layouts :data:`STATIC` and :data:`STATE`; the core's state arrays are views of it),
because each array argument of a numba call costs about 0.15 us of dispatch: with thirty
arguments, dispatch was most of a one-environment step.

This module imports numba; :mod:`edgesplit.sim.core` imports it only when the numba backend
is chosen (the default when numba is installed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba as nb
import numpy as np

from edgesplit.cost_models.links import FLOOR_MBPS, LinkProcess

from .rng import K_TIME, M1, M2, U32
from .state import State

if TYPE_CHECKING:
    from .core import Core
from .schema import (
    CHOICE_FLOAT_COLUMNS,
    CHOICE_INT_COLUMNS,
    DECISION_FIELDS,
    DECISION_KINDS,
    MIN_WEIGHT,
    ROW,
    packed_shapes,
)

__all__ = ["IP", "STATE", "STATIC", "KernelArgs", "SharedStatics", "step_kernel"]

# int scalars at the head of the static array ``st``
IP = (
    "E",  # environments
    "N",  # devices
    "J",  # targets
    "M",  # access points
    "A",  # applications
    "S",  # split candidates
    "Q",  # queue capacity
    "KMAX",  # arrival counts per slot (thresholds per device)
    "W",  # words per slot of the generator
    "LM",  # markov links
    "L",  # links
    "WS",  # words per link step
    "HORIZON",
    "D",  # observation length
    "OBS",  # 1: write the next observation
    "KTAB",  # rows of the choice tables
    "R",  # rows of the static observation table
    "MEASURED",  # 1: the scheduler knows the measured link rates (an EWMA), 0: the true ones
    "REPORTED",  # 1: it knows the backlogs the servers reported a slot ago, 0: the true ones
    "BURSTY",  # 1: some device's arrivals come in bursts (phases switch)
    "KALT",  # rows of the choice tables before their full-offload copy (0: no batteries)
)
# Everything the step reads or changes lives in two int64 arrays: ``st`` (static) and ``sv``
# (state). Each part has a kind: "f" float64, "i" int64, "u" uint64 (all 8 bytes, reached by
# a view), "f4" float32 (packed two per word). After the scalars, ``st`` holds (start, count)
# of every static part and then of every state part; the parts follow. Two array arguments
# instead of thirty: each argument of a numba call costs about 0.15 us to dispatch, which was
# most of a one-environment step.
STATIC = (
    ("fp", "f"),  # float scalars, see FP
    ("p_tx", "f"),
    ("levels", "f"),
    ("m_lev", "f"),
    ("m_pswitch", "f"),
    ("m_kop", "f"),
    ("m_rho", "f"),
    ("m_innov", "f"),
    ("ntable", "f"),
    ("row_dl", "f"),
    ("ftab", "f"),
    ("nvec", "i"),
    ("n_valid", "i"),
    ("reach", "i"),
    ("link_n", "i"),
    ("link_m", "i"),
    ("mcols", "i"),
    ("m_k", "i"),
    ("m_row", "i"),
    ("itab", "i"),
    ("arr_thr", "u"),
    ("app_thr", "u"),
    ("arr_hit", "u"),
    ("phase_thr", "u"),
    ("off_phase", "u"),
    ("off_slot", "u"),
    ("off_extra", "u"),
    ("rows", "f4"),
    ("capacity", "f"),
    ("harvest", "f"),
    ("budget", "f"),
    # the action masks of the next slot (multidiscrete view): each static-table row's mask
    # [R, K] (1: allowed), and each row's head energies [R, S] (0 where no battery limits
    # them), which the device's charge must cover (Core.affordable)
    ("mask_rows", "i"),
    ("head_e", "f"),
    # trace links: every trace class's replay table, concatenated (LinkProcess.trace_table),
    # and, per trace link, its bank column, its class's offset in the table, and where its
    # position lives in the state part "t_cur" (class by class, each [E, links of the class]:
    # environment e's at t_pos + e * t_stride)
    ("t_rates", "f"),
    ("t_next", "i"),
    ("t_cols", "i"),
    ("t_off", "i"),
    ("t_pos", "i"),
    ("t_stride", "i"),
)
# the core's State (every field, its kind from its dtype), then the Markov links' state and
# every link's rate, which the link bank keeps
STATE = (
    *((k, v.dtype.kind) for k, v in State.zeros(1, 1, 1, 1, 1).arrays().items()),
    ("m_state", "i"),
    ("m_loglev", "f"),
    ("m_x", "f"),
    ("lrates", "f"),
    ("t_cur", "i"),
)
# float scalars (the static part "fp")
FP = (
    "w_l",
    "w_e",
    "w_m",
    "w_i",
    "w_d",
    "slot_s",
    "lat_scale",
    "rate_scale",
    "floor",
    "min_w",
    "ewma_w",
    "w_b",
    "e_scale",
)
# the packed results' rows and the choice tables' columns, by name (numba freezes these
# module-level integers into the compiled code)
(
    RF_LATENCY,
    RF_HEAD,
    RF_TRANSFER,
    RF_RTT,
    RF_TAIL,
    RF_WORK,
    RF_WAIT,
    RF_ENERGY,
    RF_COST,
    RF_BW,
    RF_CPU,
    RF_REWARD,
    RF_NEXT_WAIT,
) = (
    ROW[k][1]
    for k in (
        "latency_s",
        "head_s",
        "transfer_s",
        "rtt_s",
        "tail_s",
        "tail_work_s",
        "wait_s",
        "energy_j",
        "cost",
        "bw_weight",
        "cpu_weight",
        "team_reward",
        "next_wait",
    )
)
RI_APP, RI_SPLIT, RI_TARGET, RI_DROPPED, RI_NEXT_APP, RI_NEXT_ROW = (
    ROW[k][1] for k in ("app", "split", "target", "dropped", "next_app", "next_row")
)
RB_HAS, RB_INFEASIBLE, RB_MISS, RB_NEXT_HAS = (
    ROW[k][1] for k in ("has_task", "infeasible", "deadline_miss", "next_has")
)
(
    C_HEAD,
    C_MBITS,
    C_OFF,
    C_NOTOFF,
    C_WORK,
    C_BH,
    C_RTT,
    C_INF,
    C_EHEAD,
    C_DL,
) = (
    CHOICE_FLOAT_COLUMNS.index(k)
    for k in (
        "head_s",
        "mbits",
        "off",
        "not_off",
        "work_s",
        "backhaul_s",
        "rtt_s",
        "infeasible",
        "head_energy_j",
        "deadline_s",
    )
)
C_SPLIT, C_TARGET, C_AP = (CHOICE_INT_COLUMNS.index(k) for k in ("split", "target", "ap"))
N_CF, N_CI = len(CHOICE_FLOAT_COLUMNS), len(CHOICE_INT_COLUMNS)
D_SPLIT, D_TARGET, D_BW, D_CPU = (
    [f.name for f in DECISION_FIELDS].index(k)
    for k in ("split", "target", "bw_weight", "cpu_weight")
)
N_DEC = len(DECISION_FIELDS)
KIND_CANDIDATE, KIND_TARGET, KIND_LEVEL = (DECISION_KINDS.index(k) for k in DECISION_KINDS)
#: each decision field's kind, as an index into DECISION_KINDS
FIELD_KINDS = tuple(DECISION_KINDS.index(f.kind) for f in DECISION_FIELDS)

_NIP = len(IP)
#: position in ``st`` of each part's (start, count)
HEAD = {k: _NIP + 2 * i for i, (k, _) in enumerate(STATIC + STATE)}
N_HEAD = _NIP + 2 * len(STATIC + STATE)


# constants the compiled code sees as globals (frozen at compile time)
I_E, I_N, I_J, I_M, I_A, I_S, I_Q, I_KMAX, I_W, I_LM, I_L, I_WS, I_HOR, I_D, I_OBS = range(15)
I_KTAB, I_R, I_MEASURED, I_REPORTED, I_BURSTY, I_KALT = 15, 16, 17, 18, 19, 20
assert IP.index("KTAB") == I_KTAB and IP.index("R") == I_R and IP.index("OBS") == I_OBS
assert IP.index("MEASURED") == I_MEASURED and IP.index("REPORTED") == I_REPORTED
assert IP.index("BURSTY") == I_BURSTY and IP.index("KALT") == I_KALT
# positions in ``st`` of each static part's (start, count), by name
H_FP = HEAD["fp"]
H_PTX = HEAD["p_tx"]
H_LEV = HEAD["levels"]
H_MLEV = HEAD["m_lev"]
H_MPS = HEAD["m_pswitch"]
H_MKOP = HEAD["m_kop"]
H_MRHO = HEAD["m_rho"]
H_MINN = HEAD["m_innov"]
H_NTAB = HEAD["ntable"]
H_ROWDL = HEAD["row_dl"]
H_FTAB = HEAD["ftab"]
H_NVEC = HEAD["nvec"]
H_NVALID = HEAD["n_valid"]
H_REACH = HEAD["reach"]
H_LINKN = HEAD["link_n"]
H_LINKM = HEAD["link_m"]
H_MCOLS = HEAD["mcols"]
H_MK = HEAD["m_k"]
H_MROW = HEAD["m_row"]
H_ITAB = HEAD["itab"]
H_ARRTHR = HEAD["arr_thr"]
H_APPTHR = HEAD["app_thr"]
H_ARRHIT = HEAD["arr_hit"]
H_PHASETHR = HEAD["phase_thr"]
H_OFFPHASE = HEAD["off_phase"]
H_OFFSLOT = HEAD["off_slot"]
H_OFFEXTRA = HEAD["off_extra"]
H_ROWS = HEAD["rows"]
H_CAP = HEAD["capacity"]
H_HARV = HEAD["harvest"]
H_BUDGET = HEAD["budget"]
H_MASKROWS = HEAD["mask_rows"]
H_HEADE = HEAD["head_e"]
H_TRATES = HEAD["t_rates"]
H_TNEXT = HEAD["t_next"]
H_TCOLS = HEAD["t_cols"]
H_TOFF = HEAD["t_off"]
H_TPOS = HEAD["t_pos"]
H_TSTRIDE = HEAD["t_stride"]
H_TCUR = HEAD["t_cur"]
H_CHARGE = HEAD["charge"]
H_DEBT = HEAD["energy_debt"]
(
    H_MKEY,
    H_T,
    H_QAPP,
    H_QARR,
    H_QHEAD,
    H_QLEN,
    H_MSTATE,
    H_DEVB,
    H_SRVB,
    H_RATES,
    H_MLOGLEV,
    H_MX,
    H_LRATES,
    H_RSEEN,
    H_SSEEN,
    H_PHASE,
) = (
    HEAD[k]
    for k in (
        "mixed_key",
        "t",
        "qapp",
        "qarr",
        "qhead",
        "qlen",
        "m_state",
        "dev_backlog",
        "srv_backlog",
        "rates",
        "m_loglev",
        "m_x",
        "lrates",
        "rates_seen",
        "srv_seen",
        "phase",
    )
)
F_WL, F_WE, F_WM, F_WI, F_WD, F_SLOT, F_LS, F_RS, F_FLOOR, F_MINW, F_EWMA, F_WB, F_ESC = range(
    len(FP)
)


def _jit(fn):
    """``numba.njit`` with the on-disk cache where there is somewhere to write it (beside
    this file, or numba's user cache directory); without one (a read-only install and no
    writable home), compile once per process instead of failing."""
    opts = {"nogil": True, "error_model": "numpy"}
    try:
        return nb.njit(cache=True, **opts)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return nb.njit(cache=False, **opts)(fn)


@nb.njit(inline="always")
def _fin(z):
    z ^= z >> np.uint64(30)
    z *= M1
    z ^= z >> np.uint64(27)
    z *= M2
    z ^= z >> np.uint64(31)
    return z


@nb.njit(inline="always")
def _i(buf, st, h):
    o = st[h]
    return buf[o : o + st[h + 1]]


@nb.njit(inline="always")
def _f(buf, st, h):
    o = st[h]
    return buf[o : o + st[h + 1]].view(np.float64)


@nb.njit(inline="always")
def _u(buf, st, h):
    o = st[h]
    return buf[o : o + st[h + 1]].view(np.uint64)


@nb.njit(inline="always")
def _f4(buf, st, h):
    o, n = st[h], st[h + 1]
    return buf[o : o + (n + 1) // 2].view(np.float32)[:n]


@_jit
def validate(mode, act_i, act_f, st):
    """Check raw actions (mode 1: multidiscrete ``[E, N, 4]`` int64, mode 2: continuous
    ``[E, N, J + 3]`` float64): -1 if all are valid, else the flat index of the first bad
    environment-device pair (the numpy decoder then raises the error that names it)."""
    if mode == 1:
        e_n, n_n = act_i.shape[0], act_i.shape[1]
        nvec = _i(st, st, H_NVEC)
        for e in range(e_n):
            for i in range(n_n):
                for k in range(N_DEC):
                    v = act_i[e, i, k]
                    if v < 0 or v >= nvec[k]:
                        return e * n_n + i
    elif mode == 2:
        e_n, n_n, c_n = act_f.shape
        for e in range(e_n):
            for i in range(n_n):
                for k in range(c_n):
                    v = act_f[e, i, k]
                    if not np.isfinite(v) or v < -1.0 - 1e-6 or v > 1.0 + 1e-6:
                        return e * n_n + i
    return -1


# --- the step, one compiled function per job, each named after its numpy twin ------------


@nb.njit(inline="always")
def decode(mode, e, act_i, act_f, p_oi, levels, n_valid, reach, fs, sj, k_tab, kk, dv, of):
    """Twin of :func:`edgesplit.sim.encoding.decode`, for environment ``e``, field by field
    of :data:`~edgesplit.sim.schema.DECISION_FIELDS` (by kind: a candidate, a target, a
    level): actions (or decisions, mode 0) to the devices' decisions ``dv`` ``[N, fields]``
    and their rows ``kk`` in the choice tables; the applied weights go to their result
    rows."""
    n_n = kk.shape[0]
    j_n = reach.shape[0] // n_n
    min_w = fs[F_MINW]
    mw = (1.0 - min_w) * 0.5
    for i in range(n_n):
        c = 0  # the continuous view's column
        for f in range(N_DEC):
            kind = FIELD_KINDS[f]
            if mode == 0:
                v = act_f[e, i, f]
            elif mode == 1:
                x = act_i[e, i, f]
                v = levels[x] if kind == KIND_LEVEL else np.float64(x)
            elif kind == KIND_CANDIDATE:  # a fraction of the task's valid candidates
                a0 = min(max(act_f[e, i, c], -1.0), 1.0)
                nv = n_valid[p_oi[RI_NEXT_APP, e, i]]
                v = np.float64(min(np.int64(0.5 * (a0 + 1.0) * nv), nv - 1))
                c += 1
            elif kind == KIND_TARGET:  # one logit per target, argmax over reachable ones
                best = -np.inf
                tgt = 0
                for j in range(j_n):
                    if reach[i * j_n + j] != 0:
                        lg = min(max(act_f[e, i, c + j], -1.0), 1.0)
                        if lg > best:
                            best = lg
                            tgt = j
                v = np.float64(tgt)
                c += j_n
            else:  # a weight in [MIN_WEIGHT, 1]
                v = min_w + mw * (min(max(act_f[e, i, c], -1.0), 1.0) + 1.0)
                c += 1
            dv[i, f] = v
        k = (
            p_oi[RI_NEXT_ROW, e, i] * sj
            + np.int64(dv[i, D_SPLIT]) * j_n
            + np.int64(dv[i, D_TARGET])
        )
        kk[i] = min(max(k, 0), k_tab - 1)
        of[RF_BW, e, i] = dv[i, D_BW]
        of[RF_CPU, e, i] = dv[i, D_CPU]


@nb.njit(inline="always")
def gate(e, kk, ftab, kalt, cap, charge):
    """Twin of the battery gate in ``Core._outcome``: a head whose compute energy exceeds
    the device's charge is replaced by its full-offload row (``kalt`` rows on)."""
    for i in range(kk.shape[0]):
        if cap[i] > 0 and ftab[kk[i], C_EHEAD] > charge[e, i]:
            kk[i] += kalt


@nb.njit(inline="always")
def resolve(e, kk, dv, ftab, itab, p_tx, fs, rates, dev_b, srv_b, p_of, p_oi, p_ob, out, bud):
    """Twin of :meth:`Core.resolve <edgesplit.sim.core.Core.resolve>`, for environment
    ``e``: the shares of access points and targets, then each device's latency, energy and
    cost (before drops; with the energy budget's deficit, ``bud`` = (deficits, budgets per
    slot)) into the result rows."""
    of, oi, ob = out
    debt, budget = bud
    n_n, m_n, j_n = kk.shape[0], rates.shape[2], srv_b.shape[1]
    tot_b = np.zeros(m_n)
    tot_c = np.zeros(j_n)
    wb_v = np.empty(n_n)
    for i in range(n_n):
        k = kk[i]
        wb = of[RF_BW, e, i] * ftab[k, C_OFF]
        wb_v[i] = wb
        tot_b[itab[k, C_AP]] += wb
        work = ftab[k, C_WORK]
        tot_c[itab[k, C_TARGET]] += dv[i, D_CPU] * (1.0 if work > 0 else 0.0)
    w_l, w_e, w_m, w_i = fs[F_WL], fs[F_WE], fs[F_WM], fs[F_WI]
    for i in range(n_n):
        k = kk[i]
        has = p_ob[RB_NEXT_HAS, e, i]
        tgt = itab[k, C_TARGET]
        ap = itab[k, C_AP]
        air = ftab[k, C_MBITS] * tot_b[ap] / ((wb_v[i] + ftab[k, C_NOTOFF]) * rates[e, i, ap])
        transfer = air + ftab[k, C_BH]
        work = ftab[k, C_WORK]
        busy = work > 0
        tail = work * tot_c[tgt] / (dv[i, D_CPU] if busy else 1.0)
        head = ftab[k, C_HEAD]
        wait_d = dev_b[e, i] * (1.0 if has else 0.0)
        ready = wait_d + head + transfer
        wait_s = max(srv_b[e, tgt] - ready, 0.0) * (1.0 if busy else 0.0)
        rtt = ftab[k, C_RTT]
        wait_q = p_of[RF_NEXT_WAIT, e, i]
        latency = wait_q + ready + rtt + wait_s + tail
        energy = ftab[k, C_EHEAD] + p_tx[i] * air
        dl = ftab[k, C_DL]
        miss = latency > dl
        inf = ftab[k, C_INF] > 0
        cost = (
            w_l * latency / dl
            + w_e * energy
            + w_m * (1.0 if miss else 0.0)
            + w_i * (1.0 if inf else 0.0)
        )
        cost = cost + fs[F_WB] * max(debt[e, i] + energy - budget[i], 0.0)
        of[RF_LATENCY, e, i] = latency
        of[RF_HEAD, e, i] = head
        of[RF_TRANSFER, e, i] = transfer
        of[RF_RTT, e, i] = rtt
        of[RF_TAIL, e, i] = tail
        of[RF_WORK, e, i] = work
        of[RF_WAIT, e, i] = wait_q + wait_d + wait_s
        of[RF_ENERGY, e, i] = energy
        of[RF_COST, e, i] = cost
        oi[RI_APP, e, i] = p_oi[RI_NEXT_APP, e, i]
        oi[RI_SPLIT, e, i] = itab[k, C_SPLIT]
        oi[RI_TARGET, e, i] = tgt
        oi[RI_DROPPED, e, i] = 0
        ob[RB_HAS, e, i] = has
        ob[RB_INFEASIBLE, e, i] = inf
        ob[RB_MISS, e, i] = miss


@nb.njit(inline="always")
def carry_over(e, kk, ftab, itab, slot_s, p_ob, dev_b, srv_b, qhead, qlen, q_n):
    """Twin of the start of ``Core._step_numpy``: the backlogs carry over, the decided
    tasks leave their queues."""
    load = np.zeros(srv_b.shape[1])
    for i in range(kk.shape[0]):
        k = kk[i]
        dev_b[e, i] = max(dev_b[e, i] + ftab[k, C_HEAD] - slot_s, 0.0)
        load[itab[k, C_TARGET]] += ftab[k, C_WORK]
        if p_ob[RB_NEXT_HAS, e, i]:
            qhead[e, i] = (qhead[e, i] + 1) % q_n
            qlen[e, i] -= 1
    for j in range(srv_b.shape[1]):
        srv_b[e, j] = max(srv_b[e, j] + load[j] - slot_s, 0.0)


@nb.njit(inline="always")
def drain(e, of, cap, harvest, budget, charge, debt):
    """Twin of ``Core._drain``: the batteries pay for the slot's energy and harvest; the
    energy budget's deficit queue moves."""
    for i in range(charge.shape[1]):
        en = of[RF_ENERGY, e, i]
        if cap[i] > 0:
            charge[e, i] = min(max(charge[e, i] - en, 0.0) + harvest[i], cap[i])
        else:
            charge[e, i] = 0.0
        debt[e, i] = max(debt[e, i] + en - budget[i], 0.0)


@nb.njit(inline="always")
def slot_words(base, off_slot, words):
    """Twin of ``rng.finalise(base + offsets)``: the slot's generator words."""
    for w in range(words.shape[0]):
        words[w] = _fin(base + off_slot[w])


@nb.njit(inline="always")
def arrive(e, words, base, tn, arrivals, queues, of, oi):
    """Twin of ``Core._arrive``, for environment ``e``: Poisson arrivals (at each device's
    rate of its burst phase) from the slot's words join the queues (``qarr`` = ``tn``);
    overflow is dropped at ``w_d`` each."""
    arr_hit, arr_thr, app_thr, off_extra, kmax, w_d = arrivals
    qapp, qarr, qhead, qlen, phase = queues
    n_n, q_n = qlen.shape[1], qapp.shape[2]
    a_n = app_thr.shape[0] // n_n
    lo32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    for i in range(n_n):
        w = words[i]
        r = 2 * i + phase[e, i]  # the device's arrival row: between bursts, or in one
        if w < arr_hit[r]:
            continue
        u = w >> s32
        count = 0
        for c in range(kmax):
            if arr_thr[r * kmax + c] <= u:
                count += 1
        ql = qlen[e, i]
        acc = min(count, q_n - ql)
        if count > acc:
            oi[RI_DROPPED, e, i] = count - acc
            of[RF_COST, e, i] += w_d * (count - acc)
        if acc > 0:
            qlen[e, i] = ql + acc
            for mx in range(acc):
                if mx == 0:
                    ua = w & lo32
                else:
                    ua = _fin(base + off_extra[i * kmax + mx]) >> s32
                app = 0
                for a in range(a_n):
                    if app_thr[i * a_n + a] <= ua:
                        app += 1
                app = min(app, a_n - 1)
                pos = (qhead[e, i] + ql + mx) % q_n
                qapp[e, i, pos] = app
                qarr[e, i, pos] = tn


@nb.njit(inline="always")
def markov_step(e, words, markov, m_state, m_loglev, m_x, lrates):
    """Twin of :func:`edgesplit.cost_models.links.markov.markov_step`, for environment
    ``e``: each Markov link may switch state and its fast factor moves (an AR(1) in logs)."""
    mcols, m_ps, m_kop, m_k, m_row, m_lev, m_rho, m_innov, ntable, floor, n_n, ws_n = markov
    lo32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    ntab = float(ntable.shape[0])
    for r in range(mcols.shape[0]):
        col = mcols[r]
        wd = words[n_n + col * ws_n]
        u0 = np.float64(np.uint32(wd & lo32)) * U32
        u1 = np.float64(np.uint32(wd >> s32)) * U32
        if u0 < m_ps[r]:
            s = min(np.int64(u0 * m_kop[r]), m_k[r] - 1)
            m_state[e, r] = s
            m_loglev[e, r] = m_lev[m_row[r] + s]
        zi = min(max(np.int64(u1 * ntab), 0), ntable.shape[0] - 1)
        x = m_x[e, r] * m_rho[r] + ntable[zi] * m_innov[r]
        m_x[e, r] = x
        lrates[e, col] = max(np.exp(x + m_loglev[e, r]), floor)


@nb.njit(inline="always")
def trace_step(e, trace, t_cur, lrates):
    """Twin of :meth:`LinkProcess.step <edgesplit.cost_models.links.LinkProcess.step>` for
    ``"trace"`` classes, for environment ``e``: each trace link moves one slot on (wrapping
    at its trace's end) and takes that slot's rate."""
    t_rates, t_next, t_cols, t_off, t_pos, t_stride = trace
    for r in range(t_cols.shape[0]):
        p = t_pos[r] + e * t_stride[r]
        o = t_off[r]
        c = t_next[o + t_cur[p]]
        t_cur[p] = c
        lrates[e, t_cols[r]] = t_rates[o + c]


@nb.njit(inline="always")
def pending_and_observe(e, tn, fs, encoder, queues, dev_b, srv_b, rates, out, obs, energy):
    """Twin of ``Core._pending`` and :func:`edgesplit.sim.encoding.encode_devices`, for
    environment ``e``: the next slot's pending task of each device (the packed ``next_*``
    rows) and, when ``write_obs``, its observation."""
    rows_tab, row_dl, s_n, horizon, write_obs = encoder
    qapp, qarr, qhead, qlen, _phase = queues
    cap, charge, debt = energy
    of, oi, ob = out
    n_n, q_n = qlen.shape[1], qapp.shape[2]
    m_n, j_n = rates.shape[2], srv_b.shape[1]
    a_n = rows_tab.shape[0] // n_n - 1
    d_n = rows_tab.shape[1]
    slot_s, ls, rs = fs[F_SLOT], fs[F_LS], fs[F_RS]
    for i in range(n_n):
        has = qlen[e, i] > 0
        h = qhead[e, i]
        if has:
            app = qapp[e, i, h]
            row = i * (a_n + 1) + app
            wq = (tn - qarr[e, i, h]) * slot_s
        else:
            app = 0
            row = i * (a_n + 1) + a_n
            wq = 0.0
        ob[RB_NEXT_HAS, e, i] = has
        oi[RI_NEXT_APP, e, i] = app
        oi[RI_NEXT_ROW, e, i] = row
        of[RF_NEXT_WAIT, e, i] = wq
        if not write_obs:
            continue
        o = obs[e, i]
        src = rows_tab[row]
        for c in range(d_n):
            o[c] = src[c]
        c = 1 + a_n
        o[c] = np.float32((1.0 if has else 0.0) * (wq / (wq + row_dl[row])))
        o[c + 1] = np.float32(qlen[e, i] / q_n)
        c += 2 + s_n * (3 + j_n)
        db = dev_b[e, i]
        o[c] = np.float32(db / (db + ls))
        c += 1
        for m in range(m_n):
            r_ = rates[e, i, m]
            o[c + m] = np.float32(r_ / (r_ + rs))
        c += m_n + j_n
        for j in range(j_n):
            sb = srv_b[e, j]
            o[c + j] = np.float32(sb / (sb + ls))
        c += j_n
        o[c] = np.float32(tn / horizon)
        o[c + 1] = np.float32(charge[e, i] / cap[i]) if cap[i] > 0 else np.float32(1.0)
        dt = debt[e, i]
        o[c + 2] = np.float32(dt / (dt + fs[F_ESC]))


@nb.njit(inline="always")
def action_masks(oi, masking, charge, mask):
    """Twin of :meth:`Core.masks <edgesplit.sim.core.Core.masks>` (numpy: a gather of the
    static rows' masks, the splits ANDed with :meth:`Core.affordable
    <edgesplit.sim.core.Core.affordable>`): every device's multidiscrete mask for its
    pending task (static-table row ``oi[next_row]``) into ``mask`` ``[E, N, K]``.

    A pass of its own after the loop over environments: written per device inside that
    loop (in ``pending_and_observe``), it made the whole step about 95 ns per device slower
    (1024 environments of ``battery``: 1,315 us a step against 728 us without masks; 0.6 us
    for one environment), far more than its own work (called alone, the pass takes 13 us for
    1024 environments of ``default``, 28 us of ``battery``). After the loop, a step of 1024
    environments takes 10-15 ns per device more than one without masks (noisy: measured on
    a busy machine), as a call of its own (not inlined) somewhat more."""
    mask_rows, head_e, kalt = masking
    e_n, n_n, k_n = mask.shape
    s_n = head_e.shape[1]
    for e in range(e_n):
        for i in range(n_n):
            row = oi[RI_NEXT_ROW, e, i]
            for k in range(k_n):
                mask[e, i, k] = mask_rows[row, k] != 0
            if kalt:  # a head the charge cannot pay for (the same compare as numpy's)
                c = charge[e, i]
                for s in range(s_n):
                    if not (head_e[row, s] <= c):
                        mask[e, i, s] = False


@nb.njit(inline="always")
def switch_phases(e, base, phase_thr, off_phase, phase):
    """Twin of ``Core._switch_phases``: bursts start and end, one 32-bit uniform per device
    of the slot's generator."""
    lo32 = np.uint64(0xFFFFFFFF)
    for i in range(phase.shape[1]):
        u = _fin(base + off_phase[i]) & lo32
        thr = phase_thr[3 * i + 1] if phase[e, i] == 1 else phase_thr[3 * i]
        if u < thr:
            phase[e, i] ^= 1


@nb.njit(inline="always")
def report_backlogs(e, srv_b, srv_seen):
    """Twin of the backlog report in ``Core._step_numpy``: what the scheduler will know of
    the servers' backlogs (copied before the carry-over when they report a slot late)."""
    for j in range(srv_b.shape[1]):
        srv_seen[e, j] = srv_b[e, j]


@nb.njit(inline="always")
def measure_rates(e, w, rates, rates_seen):
    """Twin of the rate measurement in ``Core._step_numpy``: each link's measured rate, an
    EWMA (weight ``w`` on the slot just over) of the rates the device saw."""
    for i in range(rates.shape[1]):
        for m in range(rates.shape[2]):
            rates_seen[e, i, m] = w * rates[e, i, m] + (1.0 - w) * rates_seen[e, i, m]


@_jit
def step_kernel(mode, act_i, act_f, st, sv, p_of, p_oi, p_ob, of, oi, ob, obs, mask):
    """Advance every environment by one slot (see the module docstring).

    ``mode`` 0: decisions given in ``act_f[..., :4]`` (the fields of
    :data:`~edgesplit.sim.schema.DECISION_FIELDS`); 1: multidiscrete actions ``act_i``
    ``[E, N, 4]``; 2: continuous actions ``act_f`` ``[E, N, J + 3]``. Returns 0, or, when an
    action is invalid, 1 + the flat index of the first bad (environment, device) pair, before
    changing anything. ``st`` and ``sv`` are the static and state arrays (see :data:`STATIC`
    and :data:`STATE`); the state is updated in place (``lrates``, every link's rate, must
    hold the current rates on entry: wired links keep theirs). ``p_of``,
    ``p_oi``, ``p_ob`` are the previous packed results, whose ``next_*`` rows are the current
    slot's pending view. Results go to the packed ``of`` (float64), ``oi`` (int64) and ``ob``
    (bool) arrays (rows: :data:`~edgesplit.sim.schema.PACKED_ROWS`), and the next observation
    to ``obs`` when ``st[OBS]``; the next slot's multidiscrete action masks (batteries
    included) to ``mask`` ``[E, N, K]`` (bool).
    """
    if mode != 0:
        bad = validate(mode, act_i, act_f, st)
        if bad >= 0:
            return bad + 1
    e_n, n_n, j_n = st[I_E], st[I_N], st[I_J]
    s_n, q_n, kmax, lm_n, k_tab = st[I_S], st[I_Q], st[I_KMAX], st[I_LM], st[I_KTAB]
    write_obs = st[I_OBS] != 0
    fs = _f(st, st, H_FP)
    ftab = _f(st, st, H_FTAB).reshape(k_tab, N_CF)
    itab = _i(st, st, H_ITAB).reshape(k_tab, N_CI)
    p_tx = _f(st, st, H_PTX)
    levels = _f(st, st, H_LEV)
    n_valid = _i(st, st, H_NVALID)
    reach = _i(st, st, H_REACH)
    link_n = _i(st, st, H_LINKN)
    link_m = _i(st, st, H_LINKM)
    off_slot = _u(st, st, H_OFFSLOT)
    rows_tab = _f4(st, st, H_ROWS).reshape(st[I_R], st[I_D])
    mkey = _u(sv, st, H_MKEY)
    t = _i(sv, st, H_T)
    qapp = _i(sv, st, H_QAPP).reshape(e_n, n_n, q_n)
    qarr = _i(sv, st, H_QARR).reshape(e_n, n_n, q_n)
    qhead = _i(sv, st, H_QHEAD).reshape(e_n, n_n)
    qlen = _i(sv, st, H_QLEN).reshape(e_n, n_n)
    dev_b = _f(sv, st, H_DEVB).reshape(e_n, n_n)
    srv_b = _f(sv, st, H_SRVB).reshape(e_n, j_n)
    rates = _f(sv, st, H_RATES).reshape(e_n, n_n, st[I_M])
    m_state = _i(sv, st, H_MSTATE).reshape(e_n, lm_n)
    m_loglev = _f(sv, st, H_MLOGLEV).reshape(e_n, lm_n)
    m_x = _f(sv, st, H_MX).reshape(e_n, lm_n)
    lrates = _f(sv, st, H_LRATES).reshape(e_n, st[I_L])
    rates_seen = _f(sv, st, H_RSEEN).reshape(e_n, n_n, st[I_M])
    srv_seen = _f(sv, st, H_SSEEN).reshape(e_n, j_n)
    charge = _f(sv, st, H_CHARGE).reshape(e_n, n_n)
    debt = _f(sv, st, H_DEBT).reshape(e_n, n_n)
    cap, harvest, budget = _f(st, st, H_CAP), _f(st, st, H_HARV), _f(st, st, H_BUDGET)
    kalt = st[I_KALT]
    bud = (debt, budget)
    energy = (cap, charge, debt)
    measured, reported = st[I_MEASURED] != 0, st[I_REPORTED] != 0
    words = np.empty(st[I_W], dtype=np.uint64)
    kk = np.empty(n_n, dtype=np.int64)
    dv = np.empty((n_n, N_DEC))
    sj = s_n * j_n
    # the arrival process's and the Markov links' constants, each as one tuple
    arrivals = (
        _u(st, st, H_ARRHIT),
        _u(st, st, H_ARRTHR),
        _u(st, st, H_APPTHR),
        _u(st, st, H_OFFEXTRA),
        kmax,
        fs[F_WD],
    )
    markov = (
        _i(st, st, H_MCOLS),
        _f(st, st, H_MPS),
        _f(st, st, H_MKOP),
        _i(st, st, H_MK),
        _i(st, st, H_MROW),
        _f(st, st, H_MLEV),
        _f(st, st, H_MRHO),
        _f(st, st, H_MINN),
        _f(st, st, H_NTAB),
        fs[F_FLOOR],
        n_n,
        st[I_WS],
    )
    trace = (
        _f(st, st, H_TRATES),
        _i(st, st, H_TNEXT),
        _i(st, st, H_TCOLS),
        _i(st, st, H_TOFF),
        _i(st, st, H_TPOS),
        _i(st, st, H_TSTRIDE),
    )
    has_trace = st[H_TCOLS + 1] > 0
    t_cur = _i(sv, st, H_TCUR)
    phase = _i(sv, st, H_PHASE).reshape(e_n, n_n)
    queues = (qapp, qarr, qhead, qlen, phase)
    phase_thr, off_phase = _u(st, st, H_PHASETHR), _u(st, st, H_OFFPHASE)
    bursty = st[I_BURSTY] != 0
    encoder = (rows_tab, _f(st, st, H_ROWDL), s_n, st[I_HOR], write_obs)
    masking = (
        _i(st, st, H_MASKROWS).reshape(st[I_R], mask.shape[2]),
        _f(st, st, H_HEADE).reshape(st[I_R], s_n),
        kalt,
    )
    out = (of, oi, ob)
    for e in range(e_n):
        decode(mode, e, act_i, act_f, p_oi, levels, n_valid, reach, fs, sj, k_tab, kk, dv, of)
        if kalt:
            gate(e, kk, ftab, kalt, cap, charge)
        resolve(e, kk, dv, ftab, itab, p_tx, fs, rates, dev_b, srv_b, p_of, p_oi, p_ob, out, bud)
        if reported:  # the servers report their backlog at the slot's start
            report_backlogs(e, srv_b, srv_seen)
        carry_over(e, kk, ftab, itab, fs[F_SLOT], p_ob, dev_b, srv_b, qhead, qlen, q_n)
        if not reported:
            report_backlogs(e, srv_b, srv_seen)
        drain(e, of, cap, harvest, budget, charge, debt)
        base = mkey[e] + np.uint64(t[e] + 1) * K_TIME
        slot_words(base, off_slot, words)
        tn = t[e] + 1
        arrive(e, words, base, tn, arrivals, queues, of, oi)
        if bursty:
            switch_phases(e, base, phase_thr, off_phase, phase)
        cost_sum = 0.0
        for i in range(n_n):
            cost_sum += of[RF_COST, e, i]
        of[RF_REWARD, e, 0] = -cost_sum / n_n
        t[e] = tn
        # the devices measured this slot's rates; the links move on to the next slot
        if measured:
            measure_rates(e, fs[F_EWMA], rates, rates_seen)
        markov_step(e, words, markov, m_state, m_loglev, m_x, lrates)
        if has_trace:
            trace_step(e, trace, t_cur, lrates)
        for col in range(st[I_L]):
            rates[e, link_n[col], link_m[col]] = lrates[e, col]
        if not measured:
            measure_rates(e, 1.0, rates, rates_seen)
        pending_and_observe(
            e, tn, fs, encoder, queues, dev_b, srv_seen, rates_seen, out, obs, energy
        )
    action_masks(oi, masking, charge, mask)
    return 0


_DTYPES = {"f": np.float64, "i": np.int64, "u": np.uint64, "f4": np.float32}


class KernelArgs:
    """The arguments of :func:`step_kernel` for one :class:`~edgesplit.sim.core.Core`.

    Packs :meth:`Core.kernel_statics() <edgesplit.sim.core.Core.kernel_statics>` into the
    static array ``st`` and lays the state out in ``sv`` (layouts :data:`STATIC` and
    :data:`STATE`): the core's :class:`~edgesplit.sim.state.State` arrays and the link bank's
    Markov state become views into ``sv``, values kept, so that the compiled step takes the
    whole state as one argument and the numpy methods keep working on the same arrays.

    ``shared``: the packed statics of the core this one is a deep copy of
    (:attr:`shared_statics`), used as they are instead of packed again (the trace tables
    make them large, and a simulator that looks ahead copies itself every slot)."""

    def __init__(self, core: Core, shared: SharedStatics | None = None) -> None:
        cs = core.kernel_statics()
        ta, bank = cs["tables"], cs["bank"]
        e, n = core.num_envs, ta.n_devices
        i64 = np.int64
        empty_f, empty_i = np.zeros(0), np.zeros(0, dtype=i64)
        markov = bank is not None and bank.has_markov
        n_l = len(bank.link_classes) if bank is not None else 0
        mcols = bank.markov_columns.astype(i64) if markov else empty_i
        ms = bank.markov_statics() if markov else None
        lm = len(mcols)
        # trace classes: their tables one after the other, their positions class by class
        t_rates, t_next, t_cols, t_off, t_pos, t_stride = [], [], [], [], [], []
        traces: list[tuple[LinkProcess, int, int]] = []  # (process, start in t_cur, size)
        off = pos = 0
        for proc, cols in bank.other_processes if bank is not None else ():
            if proc.link.kind != "trace":
                continue  # wired: a constant rate, set at reset
            tab = proc.trace_table
            t_rates.append(tab.rates)
            t_next.append(tab.next)
            t_cols += cols.tolist()
            t_off += [off] * cols.size
            t_pos += [pos + k for k in range(cols.size)]
            t_stride += [cols.size] * cols.size
            traces.append((proc, pos, e * cols.size))
            off += tab.rates.size
            pos += e * cols.size
        state = core.state
        state_shapes = {k: v.shape for k, v in state.arrays().items()}
        state_shapes.update(
            m_state=(e, lm), m_loglev=(e, lm), m_x=(e, lm), lrates=(e, n_l), t_cur=(pos,)
        )
        if shared is not None and shared.fits(e, n, n_l):  # else: packed again
            # a deep copy of the core: the same statics, already packed
            self.st = shared.st
            state_parts = {
                name: (int(self.st[HEAD[name]]), int(self.st[HEAD[name] + 1]), kind)
                for name, kind in STATE
            }
            spos = sum(size for _, size, _ in state_parts.values())
        else:
            fp = [
                *cs["weights"],
                cs["slot_s"],
                ta.latency_scale_s,
                ta.rate_scale_mbps,
                FLOOR_MBPS,
                MIN_WEIGHT,
                cs["ewma_weight"],
                cs["budget_weight"],
                ta.energy_scale_j,
            ]
            static = {
                "fp": fp,
                "p_tx": cs["p_tx"],
                "levels": ta.weight_levels,
                "m_lev": ms.log_levels if ms else empty_f,
                "m_pswitch": ms.p_switch if ms else empty_f,
                "m_kop": ms.k_over_p if ms else empty_f,
                "m_rho": ms.rho if ms else empty_f,
                "m_innov": ms.innov if ms else empty_f,
                "ntable": ms.table if ms else np.zeros(1),
                "row_dl": ta.row_deadlines,
                "ftab": cs["choice_f"],
                "nvec": ta.nvec,
                "n_valid": ta.n_valid,
                "reach": ta.reachable.astype(i64),
                "link_n": cs["link_n"],
                "link_m": cs["link_m"],
                "mcols": mcols,
                "m_k": ms.n_states if ms else empty_i,
                "m_row": ms.row if ms else empty_i,
                "itab": cs["choice_i"],
                "arr_thr": cs["arr_thr"],
                "app_thr": cs["app_thr"],
                "arr_hit": cs["arr_hit"],
                "phase_thr": cs["phase_thr"],
                "off_phase": cs["off_phase"],
                "off_slot": cs["off_slot"],
                "off_extra": cs["off_extra"],
                "rows": ta.static_rows,
                "capacity": cs["capacity_j"],
                "harvest": cs["harvest_j"],
                "budget": cs["budget_j"],
                "mask_rows": cs["mask_rows"],
                "head_e": cs["head_e_rows"],
                "t_rates": np.concatenate(t_rates) if t_rates else empty_f,
                "t_next": np.concatenate(t_next) if t_next else empty_i,
                "t_cols": np.array(t_cols, dtype=i64),
                "t_off": np.array(t_off, dtype=i64),
                "t_pos": np.array(t_pos, dtype=i64),
                "t_stride": np.array(t_stride, dtype=i64),
            }
            scalars = {
                "E": e,
                "N": n,
                "J": ta.n_targets,
                "M": ta.n_aps,
                "A": ta.n_apps,
                "S": ta.n_candidates,
                "Q": ta.queue_capacity,
                "KMAX": cs["kmax"],
                "W": cs["slot_words"],
                "LM": lm,
                "L": n_l,
                "WS": cs["step_words_per_link"],
                "HORIZON": cs["horizon"],
                "D": ta.obs_dim,
                "OBS": 1,
                "KTAB": cs["choice_f"].shape[0],
                "R": ta.static_rows.shape[0],
                "MEASURED": int(cs["measured_rates"]),
                "REPORTED": int(cs["reported_backlogs"]),
                "BURSTY": int(cs["bursty"]),
                "KALT": int(cs["kalt"]),
            }
            head = [scalars[k] for k in IP]
            words: list[np.ndarray] = []
            pos = N_HEAD
            for name, kind in STATIC:
                v = np.ascontiguousarray(static[name], dtype=_DTYPES[kind]).ravel()
                if kind == "f4" and v.size % 2:
                    v = np.append(v, np.float32(0))
                head += [pos, np.size(static[name])]
                words.append(v.view(i64))
                pos += words[-1].size
            # the state: its own array, laid out the same way
            spos, state_parts = 0, {}
            for name, kind in STATE:
                size = int(np.prod(state_shapes[name]))
                head += [spos, size]
                state_parts[name] = (spos, size, kind)
                spos += size
            self.st = np.concatenate([np.array(head, dtype=i64), *words])
            assert self.st.size == pos
        self.sv = np.zeros(spos, dtype=i64)

        def view(name: str) -> np.ndarray:
            o, size, kind = state_parts[name]
            return self.sv[o : o + size].view(_DTYPES[kind]).reshape(state_shapes[name])

        # the core's (and the bank's) state arrays become views of ``sv``, values kept
        for name, arr in state.arrays().items():
            v = view(name)
            v[...] = arr
            setattr(state, name, v)
        self.lrates = view("lrates")
        if bank is not None:  # the bank keeps its state in ``sv`` from now on
            links = {"rates": self.lrates}
            if markov:
                links.update(m_state=view("m_state"), m_loglev=view("m_loglev"), m_x=view("m_x"))
            bank.bind_state(**links)
        t_cur = view("t_cur")
        for proc, start, size in traces:  # and each trace class its positions
            proc.bind_state(cur=t_cur[start : start + size].reshape(proc.shape))
        self.dummy_ai = np.zeros((e, n, len(ta.nvec)), dtype=i64)
        self.dummy_af = np.zeros((e, n, ta.continuous_width))
        self.obs_shape = (e, n, ta.obs_dim)
        self.mask_shape = (e, n, int(ta.nvec.sum()))
        self.shape = (e, n)
        self.f_shape, self.i_shape, self.b_shape = packed_shapes(e, n)
        self.fn = step_kernel

    @property
    def shared_statics(self) -> SharedStatics:
        """``st``, for the deep copies of this core (see :class:`SharedStatics`)."""
        return SharedStatics(self.st)


class SharedStatics:
    """A packed static array, shared by a core and its deep copies: ``copy.deepcopy``
    returns it as it is (the compiled step never writes ``st``). A pickle leaves it out
    (``st`` is None after loading): the loaded core packs its own, as large pickles of the
    trace tables would slow down sending environments to worker processes.

    Parameters
    ----------
    st : numpy.ndarray or None
        The packed static array of a :class:`KernelArgs`.
    """

    __slots__ = ("st",)

    def __init__(self, st: np.ndarray | None) -> None:
        self.st = st

    def __deepcopy__(self, memo: dict) -> SharedStatics:
        return self

    def __reduce__(self) -> tuple:
        return (SharedStatics, (None,))

    def fits(self, e: int, n: int, n_links: int) -> bool:
        """Whether there are statics, laid out for ``e`` environments of ``n`` devices and
        ``n_links`` links."""
        st = self.st
        return st is not None and bool(st[I_E] == e and st[I_N] == n and st[I_L] == n_links)
