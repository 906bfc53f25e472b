"""The compiled step of :class:`~edgesplit.envs.core.Core` (numba backend).

One call advances every environment of a batch by one slot: it decodes the actions, resolves
the slot, carries the backlogs over, moves the queues, draws the arrivals, steps the Markov
links, and encodes the next observation. It is the same arithmetic, in the same order, as the
numpy methods of :class:`~edgesplit.envs.core.Core` (:meth:`~Core.resolve`,
:meth:`~Core.step`, :meth:`~Core._arrive`, :meth:`LinkBank.step
<edgesplit.cost_models.links.LinkBank.step>`, :func:`~edgesplit.envs.encoding.encode_devices`),
which stay the reference: ``tests/test_backends.py`` checks the two against each other step by
step on every shipped scenario. State, queues and decisions come out identical; float results
agree to the last few bits (``exp`` is libm's here and numpy's SIMD one there, and the team
reward sums devices in order where numpy sums pairwise).

The loop over environments and devices is compiled: no Python runs per device or per
environment. Everything static is packed into a few flat arrays (see
:class:`~edgesplit.envs.core.Core`'s ``_kernel_args``) because each array argument of a numba
call costs about 80 ns of dispatch, which matters at one environment.

This module imports numba; :mod:`edgesplit.envs.core` imports it only when the numba backend
is chosen (the default when numba is installed).
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["IP", "OFFSETS", "step_kernel"]

# int scalars at the head of ``si``
IP = (
    "N",  # devices
    "J",  # targets
    "M",  # access points
    "A",  # applications
    "S",  # split candidates
    "Q",  # queue capacity
    "KMAX",  # arrival counts per slot (thresholds per device)
    "W",  # words per slot of the generator
    "LM",  # markov links
    "WS",  # words per link step
    "HORIZON",
    "D",  # observation length
    "OBS",  # 1: write the next observation
    "KTAB",  # rows of the choice tables
)
# offsets (start, end) into the packed arrays, in the order they are packed (the int array
# ``si`` starts with the scalars of ``IP`` and the offsets, the float array ``fs`` with those
# of ``FP``)
OFFSETS = {
    "f": ("p_tx", "levels", "m_lev", "m_pswitch", "m_kop", "m_rho", "m_innov", "ntable", "row_dl"),
    "i": ("nvec", "n_valid", "reach", "link_n", "link_m", "mcols", "m_k", "m_row"),
    "u": ("arr_thr", "app_thr", "arr_hit", "off_slot", "off_extra"),
}
# float scalars at the head of ``fs``
FP = ("w_l", "w_e", "w_m", "w_i", "w_d", "slot_s", "lat_scale", "rate_scale", "floor", "min_w")
# rows of the packed results: float64, int64 and bool ``[rows, E, N]``; the first rows are
# :class:`~edgesplit.envs.core.StepResult` fields, the last ones the next slot's pending view
# (and the team reward, at column 0 of its row)
RF = (
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
    "next_wait",
    "team_reward",
)
RI = ("app", "split", "target", "dropped", "next_app", "next_row")
RB = ("has_task", "infeasible", "deadline_miss", "next_has")
R_WAIT, R_REWARD = RF.index("next_wait"), RF.index("team_reward")
R_APP, R_ROW = RI.index("next_app"), RI.index("next_row")
R_HAS = RB.index("next_has")

_I = {k: i for i, k in enumerate(IP)}
_NIP = len(IP)
_OFF_F = {k: _NIP + 2 * i for i, k in enumerate(OFFSETS["f"])}
_OFF_I = {k: _NIP + 2 * (len(OFFSETS["f"]) + i) for i, k in enumerate(OFFSETS["i"])}
_OFF_U = {
    k: _NIP + 2 * (len(OFFSETS["f"]) + len(OFFSETS["i"]) + i) for i, k in enumerate(OFFSETS["u"])
}
_F = {k: i for i, k in enumerate(FP)}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_K_T = np.uint64(0xD6E8FEB86659FD93)
_U32 = 1.0 / 4294967296.0

# choice-table columns (as in core)
_F_HEAD, _F_MBITS, _F_OFF, _F_NOTOFF, _F_WORK, _F_BH, _F_RTT, _F_INF, _F_EHEAD, _F_DL = range(10)
_I_SPLIT, _I_TARGET, _I_AP, _I_NM = range(4)

# constants the compiled code sees as globals (frozen at compile time)
I_N, I_J, I_M, I_A, I_S, I_Q = (_I[k] for k in ("N", "J", "M", "A", "S", "Q"))
I_KMAX, I_W, I_LM, I_WS, I_HOR, I_D, I_OBS, I_KTAB = (
    _I[k] for k in ("KMAX", "W", "LM", "WS", "HORIZON", "D", "OBS", "KTAB")
)
O_PTX, O_LEV, O_MLEV, O_MPS, O_MKOP, O_MRHO, O_MINN, O_NTAB, O_ROWDL = (
    _OFF_F[k] for k in OFFSETS["f"]
)
O_NVEC, O_NVALID, O_REACH, O_LINKN, O_LINKM, O_MCOLS, O_MK, O_MROW = (
    _OFF_I[k] for k in OFFSETS["i"]
)
O_ARRTHR, O_APPTHR, O_ARRHIT, O_OFFSLOT, O_OFFEXTRA = (_OFF_U[k] for k in OFFSETS["u"])
F_WL, F_WE, F_WM, F_WI, F_WD, F_SLOT, F_LS, F_RS, F_FLOOR, F_MINW = range(len(FP))


@nb.njit(inline="always")
def _fin(z):
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


@nb.njit(cache=True, nogil=True, error_model="numpy")
def validate(mode, act_i, act_f, si):
    """Check raw actions (mode 1: multidiscrete ``[E, N, 4]`` int64, mode 2: continuous
    ``[E, N, J + 3]`` float64): -1 if all are valid, else the flat index of the first bad
    environment-device pair (the numpy decoder then raises the error that names it)."""
    if mode == 1:
        e_n, n_n = act_i.shape[0], act_i.shape[1]
        nvec = si[si[O_NVEC] : si[O_NVEC + 1]]
        for e in range(e_n):
            for i in range(n_n):
                for k in range(4):
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


@nb.njit(cache=True, nogil=True, error_model="numpy")
def step_kernel(
    mode,
    act_i,
    act_f,
    dec_i,
    dec_f,
    fs,
    si,
    us,
    ftab,
    itab,
    rows_tab,
    mkey,
    t,
    qapp,
    qarr,
    qhead,
    qlen,
    dev_b,
    srv_b,
    rates,
    m_state,
    m_loglev,
    m_x,
    lrates,
    p_has,
    p_ai,
    p_wait,
    of,
    oi,
    ob,
    obs,
):
    """Advance every environment by one slot (see the module docstring).

    ``mode`` 0: decisions given in ``dec_i`` (split, target) and ``dec_f`` (bandwidth and
    compute weights), ``[2, E, N]`` each; 1: multidiscrete actions ``act_i``; 2: continuous
    actions ``act_f``. Returns 0, or, when an action is invalid, 1 + the flat index of the
    first bad (environment, device) pair, before changing anything. ``p_has``, ``p_ai`` (app
    and static row, ``[2, E, N]``) and ``p_wait`` are the current slot's pending view. The
    state arrays are updated in place; ``lrates`` (every link's rate, ``[E, L]``) must hold
    the current rates on entry (only the Markov links are stepped here). Results go to the
    packed ``of`` (float64), ``oi`` (int64) and ``ob`` (bool) arrays, rows as named by
    :data:`RF`, :data:`RI` and :data:`RB` (the next slot's pending view included), and the
    next observation to ``obs`` when ``si[OBS]``.
    """
    if mode != 0:
        bad = validate(mode, act_i, act_f, si)
        if bad >= 0:
            return bad + 1
    e_n = mkey.shape[0]
    n_n, j_n, m_n, a_n, s_n, q_n = si[I_N], si[I_J], si[I_M], si[I_A], si[I_S], si[I_Q]
    kmax, w_n, lm_n, ws_n, d_n, k_tab = (
        si[I_KMAX],
        si[I_W],
        si[I_LM],
        si[I_WS],
        si[I_D],
        si[I_KTAB],
    )
    horizon = si[I_HOR]
    write_obs = si[I_OBS] != 0
    sj = s_n * j_n
    w_l, w_e, w_m, w_i, w_d = fs[F_WL], fs[F_WE], fs[F_WM], fs[F_WI], fs[F_WD]
    slot_s, ls, rs, floor, min_w = fs[F_SLOT], fs[F_LS], fs[F_RS], fs[F_FLOOR], fs[F_MINW]
    p_tx = fs[si[O_PTX] : si[O_PTX + 1]]
    levels = fs[si[O_LEV] : si[O_LEV + 1]]
    m_lev = fs[si[O_MLEV] : si[O_MLEV + 1]]
    m_ps = fs[si[O_MPS] : si[O_MPS + 1]]
    m_kop = fs[si[O_MKOP] : si[O_MKOP + 1]]
    m_rho = fs[si[O_MRHO] : si[O_MRHO + 1]]
    m_innov = fs[si[O_MINN] : si[O_MINN + 1]]
    ntable = fs[si[O_NTAB] : si[O_NTAB + 1]]
    row_dl = fs[si[O_ROWDL] : si[O_ROWDL + 1]]
    n_valid = si[si[O_NVALID] : si[O_NVALID + 1]]
    reach = si[si[O_REACH] : si[O_REACH + 1]]
    link_n = si[si[O_LINKN] : si[O_LINKN + 1]]
    link_m = si[si[O_LINKM] : si[O_LINKM + 1]]
    mcols = si[si[O_MCOLS] : si[O_MCOLS + 1]]
    m_k = si[si[O_MK] : si[O_MK + 1]]
    m_row = si[si[O_MROW] : si[O_MROW + 1]]
    arr_thr = us[si[O_ARRTHR] : si[O_ARRTHR + 1]]
    app_thr = us[si[O_APPTHR] : si[O_APPTHR + 1]]
    arr_hit = us[si[O_ARRHIT] : si[O_ARRHIT + 1]]
    off_slot = us[si[O_OFFSLOT] : si[O_OFFSLOT + 1]]
    off_extra = us[si[O_OFFEXTRA] : si[O_OFFEXTRA + 1]]
    ntab = float(ntable.shape[0])
    n_l = lrates.shape[1]
    mw = (1.0 - min_w) * 0.5
    tot_b = np.zeros(m_n)
    tot_c = np.zeros(j_n)
    load = np.zeros(j_n)
    words = np.empty(w_n, dtype=np.uint64)
    kk = np.empty(n_n, dtype=np.int64)
    cpu_v = np.empty(n_n)
    wb_v = np.empty(n_n)
    wc_v = np.empty(n_n)
    lo32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    for e in range(e_n):
        # decisions -> rows of the choice tables
        for i in range(n_n):
            if mode == 0:
                spl = dec_i[0, e, i]
                tgt = dec_i[1, e, i]
                bw = dec_f[0, e, i]
                cpu = dec_f[1, e, i]
            elif mode == 1:
                spl = act_i[e, i, 0]
                tgt = act_i[e, i, 1]
                bw = levels[act_i[e, i, 2]]
                cpu = levels[act_i[e, i, 3]]
            else:
                a0 = min(max(act_f[e, i, 0], -1.0), 1.0)
                nv = n_valid[p_ai[0, e, i]]
                spl = min(np.int64(0.5 * (a0 + 1.0) * nv), nv - 1)
                tgt = 0
                best = -np.inf
                for j in range(j_n):
                    if reach[i * j_n + j] != 0:
                        v = min(max(act_f[e, i, 1 + j], -1.0), 1.0)
                        if v > best:
                            best = v
                            tgt = j
                bw = min_w + mw * (min(max(act_f[e, i, 1 + j_n], -1.0), 1.0) + 1.0)
                cpu = min_w + mw * (min(max(act_f[e, i, 2 + j_n], -1.0), 1.0) + 1.0)
            k = p_ai[1, e, i] * sj + spl * j_n + tgt
            kk[i] = min(max(k, 0), k_tab - 1)
            cpu_v[i] = cpu
            of[9, e, i] = bw
            of[10, e, i] = cpu
        # sharing of access points and targets
        for m in range(m_n):
            tot_b[m] = 0.0
        for j in range(j_n):
            tot_c[j] = 0.0
            load[j] = 0.0
        for i in range(n_n):
            k = kk[i]
            wb = of[9, e, i] * ftab[k, _F_OFF]
            wb_v[i] = wb
            tot_b[itab[k, _I_AP]] += wb
            work = ftab[k, _F_WORK]
            wc = cpu_v[i] * (1.0 if work > 0 else 0.0)
            wc_v[i] = wc
            tot_c[itab[k, _I_TARGET]] += wc
        cost_sum = 0.0
        for i in range(n_n):
            k = kk[i]
            has = p_has[e, i]
            tgt = itab[k, _I_TARGET]
            rate = rates[e, i, itab[k, _I_AP]]
            air = (
                ftab[k, _F_MBITS] * tot_b[itab[k, _I_AP]] / ((wb_v[i] + ftab[k, _F_NOTOFF]) * rate)
            )
            transfer = air + ftab[k, _F_BH]
            work = ftab[k, _F_WORK]
            busy = work > 0
            tail = work * tot_c[tgt] / (cpu_v[i] if busy else 1.0)
            head = ftab[k, _F_HEAD]
            wait_d = dev_b[e, i] * (1.0 if has else 0.0)
            ready = wait_d + head + transfer
            wait_s = max(srv_b[e, tgt] - ready, 0.0) * (1.0 if busy else 0.0)
            rtt = ftab[k, _F_RTT]
            wait_q = p_wait[e, i]
            latency = wait_q + ready + rtt + wait_s + tail
            energy = ftab[k, _F_EHEAD] + p_tx[i] * air
            dl = ftab[k, _F_DL]
            miss = latency > dl
            inf = ftab[k, _F_INF] > 0
            cost = (
                w_l * latency / dl
                + w_e * energy
                + w_m * (1.0 if miss else 0.0)
                + w_i * (1.0 if inf else 0.0)
            )
            of[0, e, i] = latency
            of[1, e, i] = head
            of[2, e, i] = transfer
            of[3, e, i] = rtt
            of[4, e, i] = tail
            of[5, e, i] = work
            of[6, e, i] = wait_q + wait_d + wait_s
            of[7, e, i] = energy
            of[8, e, i] = cost
            oi[0, e, i] = p_ai[0, e, i]
            oi[1, e, i] = itab[k, _I_SPLIT]
            oi[2, e, i] = tgt
            oi[3, e, i] = 0
            ob[0, e, i] = has
            ob[1, e, i] = inf
            ob[2, e, i] = miss
            # backlogs carry over; the decided task leaves the queue
            dev_b[e, i] = max(dev_b[e, i] + head - slot_s, 0.0)
            load[tgt] += work
            if has:
                qhead[e, i] = (qhead[e, i] + 1) % q_n
                qlen[e, i] -= 1
        for j in range(j_n):
            srv_b[e, j] = max(srv_b[e, j] + load[j] - slot_s, 0.0)
        # this slot's generator words
        base = mkey[e] + np.uint64(t[e] + 1) * _K_T
        for w in range(w_n):
            words[w] = _fin(base + off_slot[w])
        # arrivals
        tn = t[e] + 1
        for i in range(n_n):
            w = words[i]
            if w >= arr_hit[i]:
                u = w >> s32
                count = 0
                for c in range(kmax):
                    if arr_thr[i * kmax + c] <= u:
                        count += 1
                ql = qlen[e, i]
                acc = min(count, q_n - ql)
                if count > acc:
                    oi[3, e, i] = count - acc
                    of[8, e, i] += w_d * (count - acc)
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
        for i in range(n_n):
            cost_sum += of[8, e, i]
        of[R_REWARD, e, 0] = -cost_sum / n_n
        t[e] = tn
        # links move on to the next slot
        for r in range(lm_n):
            col = mcols[r]
            wi = n_n + col * ws_n
            wd = words[wi]
            u0 = np.float64(np.uint32(wd & lo32)) * _U32
            u1 = np.float64(np.uint32(wd >> s32)) * _U32
            if u0 < m_ps[r]:
                st = min(np.int64(u0 * m_kop[r]), m_k[r] - 1)
                m_state[e, r] = st
                m_loglev[e, r] = m_lev[m_row[r] + st]
            zi = np.int64(u1 * ntab)
            zi = min(max(zi, 0), ntable.shape[0] - 1)
            x = m_x[e, r] * m_rho[r] + ntable[zi] * m_innov[r]
            m_x[e, r] = x
            lrates[e, col] = max(np.exp(x + m_loglev[e, r]), floor)
        for col in range(n_l):
            rates[e, link_n[col], link_m[col]] = lrates[e, col]
        # the next slot's pending tasks and observation
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
            ob[R_HAS, e, i] = has
            oi[R_APP, e, i] = app
            oi[R_ROW, e, i] = row
            of[R_WAIT, e, i] = wq
            if write_obs:
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
    return 0
