"""The batched simulator core: the one implementation of EdgeSplit's dynamics.

State is arrays over (environments, devices) and (environments, targets); a step is a
fixed sequence of numpy operations with no Python loop over devices or environments. Every
face (Gymnasium env, VectorEnv, PettingZoo) is a thin view of a :class:`Core`.

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
    cost    = w_l * latency / deadline + w_e * energy / E_ref + w_m * [latency > deadline]
              + w_inf * [a masked choice was taken]

The last candidate of a network runs it whole on the device: nothing is sent, there is no tail.
A masked (infeasible) choice is replaced before it acts, a split past the network's candidates
by all-local and an unreachable target by the home edge, and costs ``infeasible_penalty``.

Arrivals: a Poisson number of tasks per device per slot (mean ``rate * slot_s``), each of an
application drawn from the device's mix; they join the device's queue and become pending at
the next slot; one task per device is decided per slot; tasks that find the queue full are
dropped (``drop_penalty`` each).

Randomness: a counter-based generator (splitmix64 over the environment's key, its slot
counter, a stream id and the element index). Each environment's key is drawn from its own
seeded ``numpy`` generator at reset, so a batch of environments reproduces exactly the same
environments stepped one by one, whatever the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgesplit.cost_models.links import LinkProcess

from .encoding import Decisions, Tables, encode_devices
from .scenario import Scenario
from .tables import Physics, build

__all__ = ["Core", "StepResult"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_K_T = np.uint64(0xD6E8FEB86659FD93)
_K_S = np.uint64(0xA0761D6478BD642F)
_K_I = np.uint64(0xE7037ED1A0B428DB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)

# stream ids of the counter-based generator
_ARRIVALS, _APPS, _LINK_STEP, _LINK_RESET = 1, 2, 100, 200


def _splitmix(z: np.ndarray) -> np.ndarray:
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@dataclass
class StepResult:
    """Per-device physical outcome of one slot, arrays ``[E, N]``."""

    has_task: np.ndarray
    app: np.ndarray
    split: np.ndarray  # applied (after masking)
    target: np.ndarray  # applied (after masking)
    bw_weight: np.ndarray
    cpu_weight: np.ndarray
    infeasible: np.ndarray
    latency_s: np.ndarray  # 0 where no task
    head_s: np.ndarray
    transfer_s: np.ndarray  # wireless + backhaul transfer, without round trips
    rtt_s: np.ndarray
    tail_s: np.ndarray
    wait_s: np.ndarray  # queue + device backlog + server backlog
    energy_j: np.ndarray
    deadline_miss: np.ndarray
    dropped: np.ndarray  # tasks dropped at arrival this slot
    cost: np.ndarray  # per device, drops included
    team_reward: np.ndarray  # [E]


class Core:
    """Batched EdgeSplit simulator over ``num_envs`` independent environments.

    Parameters
    ----------
    scenario:
        a validated :class:`~edgesplit.envs.scenario.Scenario`.
    num_envs:
        batch size ``E``.
    """

    def __init__(
        self,
        scenario: Scenario,
        num_envs: int = 1,
        tables: tuple[Tables, Physics] | None = None,
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
        # Poisson cdf per device for k = 0..qmax-1 arrivals
        lam = ph.arrival_mean[:, None]
        k = np.arange(self._qmax_arr)[None, :]
        logfact = np.cumsum(np.log(np.maximum(k, 1)), axis=1)
        with np.errstate(divide="ignore"):
            pmf = np.exp(-lam + k * np.log(np.where(lam > 0, lam, 1.0)) - logfact)
        pmf[:, 1:] *= ph.arrival_mean[:, None] > 0
        self._arr_cdf = np.cumsum(pmf, axis=1)  # [N, K]
        self._app_cdf = ph.app_cdf
        # link processes, one per link class
        self._links = [
            (LinkProcess(lc, sc.slot_s, (e, len(ni))), ni, mi)
            for lc, ni, mi in ph.link_pairs.values()
        ]
        # state
        self.key = np.zeros(e, dtype=np.uint64)
        self.t = np.zeros(e, dtype=np.int64)
        self.qapp = np.zeros((e, n, q), dtype=np.int64)
        self.qarr = np.zeros((e, n, q), dtype=np.int64)
        self.qhead = np.zeros((e, n), dtype=np.int64)
        self.qlen = np.zeros((e, n), dtype=np.int64)
        self.dev_backlog = np.zeros((e, n))
        self.srv_backlog = np.zeros((e, ta.n_targets))
        self.rates = np.zeros((e, n, sc.n_servers))

    # randomness ------------------------------------------------------------------------
    def uniforms(self, stream: int, size: int, t: np.ndarray | None = None) -> np.ndarray:
        """``[E, size]`` uniforms in [0, 1) for ``stream`` at each environment's slot."""
        tt = (self.t if t is None else t).astype(np.uint64)
        z = (
            self.key[:, None]
            + (tt[:, None] + np.uint64(1)) * _K_T
            + np.uint64((stream * int(_K_S)) % 2**64)
            + np.arange(size, dtype=np.uint64)[None, :] * _K_I
        )
        z = _splitmix(_splitmix(z))
        return (z >> _S11).astype(np.float64) * (1.0 / 9007199254740992.0)

    # reset -----------------------------------------------------------------------------
    def reset(self, keys: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Start new episodes in the environments selected by ``mask`` (all by default)
        with the given 64-bit ``keys`` (``[E]``; entries outside ``mask`` are ignored)."""
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        keys = np.asarray(keys, dtype=np.uint64)
        self.key[mask] = keys[mask]
        self.t[mask] = 0
        self.qhead[mask] = 0
        self.qlen[mask] = 0
        self.dev_backlog[mask] = 0.0
        self.srv_backlog[mask] = 0.0
        for g, (proc, ni, mi) in enumerate(self._links):
            u = self.uniforms(_LINK_RESET + g, len(ni) * max(proc.n_reset_uniforms, 1))
            u = u.reshape(self.num_envs, len(ni), -1)[..., : proc.n_reset_uniforms]
            proc.reset(u, mask=mask)
            self.rates[:, ni, mi] = proc.rates
        # the first slot's tasks: arrivals drawn at slot -1
        t_prev = self.t.copy()
        t_prev[mask] = -1
        self._arrive(mask, t_prev)

    # arrivals --------------------------------------------------------------------------
    def _arrive(self, mask: np.ndarray | None, t: np.ndarray) -> np.ndarray:
        """Draw this slot's arrivals; returns the number dropped per device ``[E, N]``."""
        n, q, kmax = self.n_devices, self.tables.queue_capacity, self._qmax_arr
        u = self.uniforms(_ARRIVALS, n, t)  # [E, N]
        count = (u[..., None] >= self._arr_cdf[None]).sum(-1)  # [E, N] in 0..kmax
        if mask is not None:
            count = np.where(mask[:, None], count, 0)
        room = q - self.qlen
        accepted = np.minimum(count, room)
        dropped = count - accepted
        if accepted.any():
            ua = self.uniforms(_APPS, n * kmax, t).reshape(self.num_envs, n, kmax)
            apps = (ua[..., None] >= self._app_cdf[None, :, None, :]).sum(-1)  # [E, N, K]
            np.minimum(apps, self.tables.n_apps - 1, out=apps)
            for m in range(int(accepted.max())):
                sel = accepted > m
                ee, nn = np.nonzero(sel)
                pos = (self.qhead[ee, nn] + self.qlen[ee, nn] + m) % q
                self.qapp[ee, nn, pos] = apps[ee, nn, m]
                self.qarr[ee, nn, pos] = t[ee] + 1
            self.qlen += accepted
        return dropped

    # views -----------------------------------------------------------------------------
    def pending(self) -> tuple[np.ndarray, np.ndarray]:
        """``has_task`` and ``app`` (0 where none) of each device's pending task, ``[E, N]``."""
        has = self.qlen > 0
        app = np.take_along_axis(self.qapp, self.qhead[..., None], axis=2)[..., 0]
        return has, np.where(has, app, 0)

    def observe(self, out: np.ndarray | None = None) -> np.ndarray:
        """Per-device observations ``[E, N, D]`` (float32)."""
        has, app = self.pending()
        wait = self.t[:, None] - np.take_along_axis(self.qarr, self.qhead[..., None], 2)[..., 0]
        wait = np.where(has, wait * self.slot_s, 0.0)
        return encode_devices(
            self.tables,
            has,
            app,
            wait,
            self.qlen,
            self.dev_backlog,
            self.rates,
            self.srv_backlog,
            self.t,
            out=out,
        )

    # step ------------------------------------------------------------------------------
    def resolve(
        self,
        dec: Decisions,
        rows: np.ndarray | None = None,
        active: np.ndarray | None = None,
    ) -> StepResult:
        """Outcome of one slot under decisions ``[B, N]``, without changing any state.

        ``rows[b]`` is the environment whose state batch row ``b`` starts from (default: row
        ``b`` is environment ``b``), so that many candidate decisions can be judged against
        one environment at once (the oracle baselines do). ``active`` ``[B, N]`` removes
        devices from the slot (their tasks neither act nor contend). Arrivals and drops are
        not part of the outcome: :meth:`step` adds them.
        """
        ta, ph = self.tables, self.physics
        j_n, m_n = self.n_targets, self.n_aps
        has, app = self.pending()
        qarr_head = np.take_along_axis(self.qarr, self.qhead[..., None], 2)[..., 0]
        t, dev_b, srv_b, rates_all = self.t, self.dev_backlog, self.srv_backlog, self.rates
        if rows is not None:
            has, app, qarr_head = has[rows], app[rows], qarr_head[rows]
            t, dev_b, srv_b, rates_all = t[rows], dev_b[rows], srv_b[rows], rates_all[rows]
        if active is not None:
            has = has & active
        b_n = has.shape[0]
        bi = np.arange(b_n)[:, None]
        ni = self._nidx
        last = self._last_valid[app]
        split = np.asarray(dec.split)
        target = np.asarray(dec.target)
        inf_s = has & (split > last)
        split = np.where(inf_s, last, split)
        reach = ta.reachable[ni, target]
        inf_t = has & ~reach
        target = np.where(reach, target, ta.home[ni])
        off = has & (split != last)
        head = ta.head_s[ni, app, split] * has
        nbytes = ta.bytes_[app, split] * off
        ap = ta.ap_of_target[ni, target]
        # bandwidth: tasks through one access point share it in proportion to wb
        wb = np.where(off, dec.bw_weight, 0.0)
        flat = (bi * m_n + ap).ravel()
        tot_b = np.bincount(flat, weights=wb.ravel(), minlength=b_n * m_n)[flat].reshape(wb.shape)
        rate = rates_all[bi, ni, ap] * 1e6
        air = np.where(off, nbytes * 8.0 * tot_b / (np.where(off, wb, 1.0) * rate), 0.0)
        rtt = np.where(off, ph.rtt_s[ni, ap], 0.0)
        if self.has_cloud:
            cloud = off & (target == j_n - 1)
            transfer = air + np.where(cloud, nbytes * 8.0 / self._bh_rate, 0.0)
            rtt = rtt + np.where(cloud, self._bh_rtt, 0.0)
        else:
            transfer = air
        # compute: tasks with tail work on one target share it in proportion to wc
        work = ta.tail_s[app, split, target] * off
        busy = work > 0
        wc = np.where(busy, dec.cpu_weight, 0.0)
        flat_j = (bi * j_n + target).ravel()
        tot_c = np.bincount(flat_j, weights=wc.ravel(), minlength=b_n * j_n)[flat_j]
        tail = np.where(busy, work * tot_c.reshape(work.shape) / np.where(busy, wc, 1.0), 0.0)
        wait_q = np.where(has, (t[:, None] - qarr_head) * self.slot_s, 0.0)
        wait_d = dev_b * has
        wait_s = np.where(
            busy, np.maximum(0.0, srv_b[bi, target] - (wait_d + head + transfer)), 0.0
        )
        latency = wait_q + wait_d + head + transfer + rtt + wait_s + tail
        energy = ph.p_active_w[None] * head + ph.p_tx_w[None] * air
        dl = self._deadline[app]
        miss = has & (latency > dl)
        w_l, w_e, w_m, w_i, _ = self._w
        inf = inf_s | inf_t
        cost = np.where(has, w_l * latency / dl + w_e * energy + w_m * miss + w_i * inf, 0.0)
        res = StepResult(
            has_task=has,
            app=app,
            split=split,
            target=target,
            bw_weight=np.asarray(dec.bw_weight, dtype=np.float64),
            cpu_weight=np.asarray(dec.cpu_weight, dtype=np.float64),
            infeasible=inf,
            latency_s=latency,
            head_s=head,
            transfer_s=transfer,
            rtt_s=rtt,
            tail_s=tail,
            wait_s=wait_q + wait_d + wait_s,
            energy_j=energy,
            deadline_miss=miss,
            dropped=np.zeros(has.shape, dtype=np.int64),
            cost=cost,
            team_reward=-cost.sum(1) / self.n_devices,
        )
        res._work = work  # type: ignore[attr-defined]
        res._flat_j = flat_j  # type: ignore[attr-defined]
        return res

    def step(self, dec: Decisions) -> StepResult:
        """Resolve one slot for every environment with decisions ``[E, N]`` and move on."""
        e_n, j_n = self.num_envs, self.n_targets
        res = self.resolve(dec)
        has = res.has_task
        # backlogs carry over
        np.maximum(self.dev_backlog + res.head_s - self.slot_s, 0.0, out=self.dev_backlog)
        load = np.bincount(res._flat_j, weights=res._work.ravel(), minlength=e_n * j_n)  # type: ignore[attr-defined]
        np.maximum(
            self.srv_backlog + load.reshape(e_n, j_n) - self.slot_s, 0.0, out=self.srv_backlog
        )
        # the decided tasks leave the queue; this slot's arrivals join it
        self.qhead = (self.qhead + has) % self.tables.queue_capacity
        self.qlen = self.qlen - has
        dropped = self._arrive(None, self.t)
        if dropped.any():
            res.dropped = dropped
            res.cost = res.cost + self._w[4] * dropped
            res.team_reward = -res.cost.sum(1) / self.n_devices
        self.t = self.t + 1
        # links move on to the next slot
        for g, (proc, nidx, midx) in enumerate(self._links):
            k = proc.n_step_uniforms
            u = self.uniforms(_LINK_STEP + g, len(nidx) * k) if k else np.zeros((e_n, 0))
            self.rates[:, nidx, midx] = proc.step(u.reshape(e_n, len(nidx), k))
        return res

    @property
    def truncated(self) -> np.ndarray:
        """``[E]`` True where the episode reached the scenario's horizon."""
        return self.t >= self.scenario.horizon
