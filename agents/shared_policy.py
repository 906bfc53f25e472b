"""A policy shared by every device, which sees what each of its options would cost.

The joint action of ``N`` devices is ``N`` times the same decision: a ``(split, target)``
option and two weight levels. :class:`SplitOffloadNet` applies one set of weights to every
device (so it is permutation-equivariant and runs unchanged on scenarios with other device
counts) and scores every option of a device with one shared scorer, from

* the option's estimated outcome were the device alone in the slot, computed *inside the
  network from the observation* by :func:`edgesplit.sim.estimates.alone_outcome` (the same
  code the simulator's :meth:`~edgesplit.sim.core.Core.option_estimates` and Neurosurgeon
  run): head, transfer, server wait and tail time, energy, deadline miss, cost. A policy
  therefore starts from what a profile-driven rule knows, and an exported policy needs
  nothing but the observation;
* the device's own encoded observation, and a summary of every device (mean and max pooled
  encodings: the load the others bring).

Options that are not feasible (a candidate the task's network lacks, an unreachable target)
get no probability, in training and when deployed; a device with no task has one fixed
action (:func:`edgesplit.sim.encoding.idle_action`). :class:`SharedSplitPolicy` wraps the
network as a stable-baselines3 actor-critic policy (PPO). Its critic (``critic``) is
either its own encoder with a per-device value head whose mean is the value, as the team
reward is the mean of the devices' costs (``"own"``), or a value head on the actor's
pooled context (``"shared"``, what ``configs/algo/ppo.yaml`` ships: a quarter less work per
update).

Speed (issue 9): the forward runs the estimates and the option scorer only for devices
with a task and only over their feasible options (on ``default`` 23% of the devices and
14% of all options), computes ``tanh`` through ``sigmoid`` and samples by inverting the
cumulative distribution; the plain forward over every option stays for the ONNX exporter.
The update's ``evaluate_actions`` takes the distributions of the devices with a task alone
(:meth:`SplitOffloadNet.task_heads`), and the optimiser is the fused Adam (also in a run
resumed from a checkpoint saved before it was the default, unless the optimiser kwargs
chose).
``tests/test_shared_policy_reference.py`` holds the two forwards to the forward as it was
before; ``tests/test_ppo_fast_paths.py`` holds the update's faster paths (the task-only
``evaluate_actions``, the max pooling's backward) to the plain ones.

>>> import torch
>>> from edgesplit.sim.core import Core
>>> from edgesplit.sim.scenario import load_scenario
>>> core = Core(load_scenario("single"), 1)
>>> net = SplitOffloadNet.from_core(core, hidden=16)
>>> obs = torch.as_tensor(core.observe().reshape(1, -1))
>>> net.action_logits(obs).shape[1] == core.n_devices * int(core.tables.nvec.sum())
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from edgesplit.sim.core import Core
from edgesplit.sim.encoding import idle_action
from edgesplit.sim.estimates import alone_outcome
from edgesplit.sim.scenario import load_scenario
from edgesplit.sim.schema import CF, CI

__all__ = [
    "MaskableSharedSplitPolicy",
    "SharedSplitPolicy",
    "SplitDistribution",
    "SplitOffloadNet",
]

#: squashed observation entries are inverted below this bound (x / (x + s) < 1)
_Y_MAX = 1.0 - 1e-6
N_OPTION_FEATURES = 17
#: the critics :class:`SplitOffloadNet` can have (its ``critic`` argument)
CRITICS = ("own", "shared")


def _unsquash(y: torch.Tensor, scale: Any) -> torch.Tensor:
    """``x`` from the observation's ``x / (x + scale)``."""
    y = y.clamp(0.0, _Y_MAX)
    return scale * y / (1.0 - y)


class _TanhBySigmoid(torch.autograd.Function):
    """``tanh(x)`` computed as ``2 sigmoid(2x) - 1`` (within 2e-7 of it in float32), with
    tanh's own backward from the output."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(2.0 * x) * 2.0 - 1.0
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


class Tanh(nn.Tanh):
    """:class:`torch.nn.Tanh` that is faster on CPU: torch 2.13's CPU ``tanh`` took 1.7 ms
    for 6144 x 64 values at one thread, its ``sigmoid`` 0.25 ms, so this computes
    ``2 sigmoid(2x) - 1`` (the same function, within 2e-7) and tanh's backward. Traced
    for export it is plain ``tanh`` (one ONNX operator).

    >>> x = torch.linspace(-20, 20, 101)
    >>> bool((Tanh()(x) - torch.tanh(x)).abs().max() < 1e-6)
    True
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.jit.is_scripting():
            return torch.tanh(x)
        return _TanhBySigmoid.apply(x)


class _AmaxOverDevices(torch.autograd.Function):
    """``x.amax(1)`` with aten's own gradient (split evenly among ties), computed from a
    float mask: aten's backward sums a bool mask as int64 and converts twice, which took
    about 1 ms of each 1024-environment minibatch on ``default``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = x.amax(1)
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        x, y = ctx.saved_tensors
        mask = (x == y[:, None]).to(grad.dtype)
        return mask * (grad / mask.sum(1))[:, None]


def amax_over_devices(x: torch.Tensor) -> torch.Tensor:
    """``x.amax(1)`` for ``x [B, N, H]``, with a faster backward (the same gradient: split
    evenly among ties); traced for export it is plain ``amax``.

    >>> x = torch.tensor([[[1.0, 2.0], [1.0, 0.0]]], requires_grad=True)
    >>> amax_over_devices(x).sum().backward()
    >>> x.grad.tolist()
    [[[0.5, 1.0], [0.5, 0.0]]]
    """
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return x.amax(1)
    return _AmaxOverDevices.apply(x)


def _mlp(sizes: list[int], last_act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if last_act or i < len(sizes) - 2:
            layers.append(Tanh())
    return nn.Sequential(*layers)


def _take(t: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """``t[i]`` for an index tensor ``i`` of any shape (``index_select``: torch's advanced
    indexing and its backward are several times slower on CPU)."""
    return t.index_select(0, i.reshape(-1)).reshape(*i.shape, *t.shape[1:])


def _features(feats: list[torch.Tensor], idx: torch.Tensor | None) -> torch.Tensor:
    """``torch.stack(feats, -1)`` (``[*L, F]``), or with ``idx`` its rows ``idx`` of the
    flattened leading dimensions (``[P, F]``, a transposed view): stacked along a new first
    dimension and indexed there, as stacking along the last one interleaves ``F`` tensors
    value by value (1.7 ms of a 1024-environment minibatch on ``default``)."""
    if idx is None:
        return torch.stack(feats, -1)
    return torch.stack(feats, 0).reshape(len(feats), -1).index_select(1, idx).t()


def _after_first(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``seq[1:](x)`` without building that slice (a new ``Sequential`` on every call)."""
    for layer in list(seq)[1:]:
        x = layer(x)
    return x


def _joint(lin: nn.Linear, h: torch.Tensor, c: torch.Tensor, env: torch.Tensor) -> torch.Tensor:
    """``lin(cat([h, c[env]], -1))`` for device rows ``h [K, H]`` and their environments'
    context ``c [B, H]``: the context's half of the product computed once per environment."""
    k = h.shape[-1]
    own = nn.functional.linear(h, lin.weight[:, :k])
    return own + _take(nn.functional.linear(c, lin.weight[:, k:], lin.bias), env)


class SplitOffloadNet(nn.Module):
    """Shared per-device actor and critic over the flat joint observation ``[B, N * D]``.

    Built from a core's static tables (:meth:`from_core`); ``hidden`` is the width of every
    layer. :meth:`forward` returns the option logits ``[B, N, S * J]`` (masked with
    ``-inf``), the two level heads ``[B, N, L]`` each and the value ``[B]``.
    """

    def __init__(
        self,
        *,
        n_devices: int,
        n_apps: int,
        n_candidates: int,
        n_targets: int,
        n_aps: int,
        n_levels: int,
        layout: list[tuple[str, int]],
        choice_f: np.ndarray,
        choice_i: np.ndarray,
        p_tx_w: np.ndarray,
        weights: tuple[float, ...],
        latency_scale_s: float,
        rate_scale_mbps: float,
        home: np.ndarray,
        hidden: int = 64,
        rounds: int = 1,
        critic: str = "own",
        capacity_j: np.ndarray | None = None,
        budget_j: np.ndarray | None = None,
        budget_weight: float = 0.0,
        energy_scale_j: float = 1.0,
    ) -> None:
        super().__init__()
        self.n, self.a, self.s, self.j = n_devices, n_apps, n_candidates, n_targets
        self.m, self.levels = n_aps, n_levels
        self.sj = n_candidates * n_targets
        self.d = sum(size for _, size in layout)
        self.weights = tuple(float(w) for w in weights)
        self.ls, self.rs = float(latency_scale_s), float(rate_scale_mbps)
        at, i = {}, 0
        for name, size in layout:
            at[name] = (i, size)
            i += size
        self.at = at
        rows = n_devices * (n_apps + 1)
        # the tables as chosen (with batteries the core appends the rows it substitutes for
        # a head the charge cannot pay for: not ours)
        f = np.asarray(choice_f, dtype=np.float32)[: rows * self.sj].reshape(rows, self.sj, -1)
        ci = np.asarray(choice_i, dtype=np.int64)[: rows * self.sj].reshape(rows, self.sj, -1)
        dev = np.repeat(np.arange(n_devices), n_apps + 1)[:, None]
        self.register_buffer("f_tab", torch.as_tensor(f))
        self.register_buffer("ap_of", torch.as_tensor(ci[..., CI.device_ap] - dev * n_aps))
        self.register_buffer("target_of", torch.as_tensor(ci[..., CI.target]))
        self.register_buffer("row_base", torch.arange(n_devices) * (n_apps + 1))
        self.register_buffer("p_tx", torch.as_tensor(np.asarray(p_tx_w, np.float32)))
        # batteries (not saved: rebuilt from the scenario, so older checkpoints load): a
        # head the charge cannot pay for is masked, and the energy budget's deficit costs
        cap = np.zeros(n_devices) if capacity_j is None else np.asarray(capacity_j, float)
        self.batteries = bool((cap > 0).any())
        bud = np.full(n_devices, np.inf) if budget_j is None else np.asarray(budget_j, float)
        self.register_buffer("cap_j", torch.as_tensor(cap, dtype=torch.float32), persistent=False)
        self.register_buffer(  # no budget: a deficit that never comes (finite for ONNX)
            "budget_j",
            torch.as_tensor(np.minimum(bud, 1e9), dtype=torch.float32),
            persistent=False,
        )
        self.w_budget, self.es = float(budget_weight), float(energy_scale_j)
        # an all-local split runs nothing on the target: one option stands for all of them
        # (the home target), so equal choices do not split the probability
        off = f[..., CF.off] > 0.5
        home = np.repeat(np.asarray(home), n_apps + 1)[:, None]
        self.register_buffer("canonical", torch.as_tensor(off | (ci[..., CI.target] == home)))
        self.register_buffer("off_of", torch.as_tensor(off))
        self.register_buffer("busy_of", torch.as_tensor(f[..., CF.work_s] > 0))
        # which target gets tail work, which access point carries bytes, per option
        t_hot = (ci[..., CI.target, None] == np.arange(n_targets)) & (f[..., CF.work_s, None] > 0)
        ap_local = ci[..., CI.device_ap] - dev * n_aps
        ap_hot = (ap_local[..., None] == np.arange(n_aps)) & off[..., None]
        self.register_buffer("t_onehot", torch.as_tensor(t_hot.astype(np.float32)))
        self.register_buffer("ap_onehot", torch.as_tensor(ap_hot.astype(np.float32)))
        h = int(hidden)
        # actor: device encoder, pooled context, option scorer, level heads
        self.enc = _mlp([self.d, h, h])
        self.ctx = _mlp([2 * h, h])
        # the option scorer: option features and the device's context meet in one small
        # layer (an option-by-option MLP over the whole context costs 20x the compute), with
        # ReLUs (tanh over every option took a quarter of the training time)
        h2 = max(16, h // 2)
        self.opt_proj = nn.Linear(N_OPTION_FEATURES, h2)
        self.dev_proj = nn.Linear(2 * h, h2)
        self.score = nn.Sequential(nn.Linear(h2, h2), nn.ReLU(), nn.Linear(h2, 1))
        # further rounds: each option re-scored under the load of the policy's own choices
        self.rounds = int(rounds)
        if self.rounds < 1:
            raise ValueError(f"rounds: expected an integer >= 1, got {rounds!r}")
        self.round_proj = nn.ModuleList(nn.Linear(4, h2) for _ in range(self.rounds - 1))
        self.round_dev = nn.ModuleList(nn.Linear(2 * h, h2) for _ in range(self.rounds - 1))
        self.round_score = nn.ModuleList(
            nn.Sequential(nn.Linear(h2, h2), nn.ReLU(), nn.Linear(h2, 1))
            for _ in range(self.rounds - 1)
        )
        self.level_head = _mlp([2 * h, h, 2 * n_levels], last_act=False)
        # how strongly the estimated cost alone steers the first policy (learned)
        self.log_beta = nn.Parameter(torch.tensor(float(np.log(30.0))))
        # critic: its own encoder and a per-device value ("own"), or a value read from the
        # actor's pooled context ("shared": no second encoder over every device)
        if critic not in CRITICS:
            raise ValueError(f"critic: expected one of {CRITICS}, got {critic!r}")
        self.critic = critic
        if critic == "own":
            self.v_enc = _mlp([self.d, h, h])
            self.v_ctx = _mlp([2 * h, h])
            self.v_head = _mlp([2 * h, h, 1], last_act=False)
        else:
            self.v_head = _mlp([h, h, 1], last_act=False)
        # a device with no task: one fixed action, of probability 1 (option o = split * J
        # + target, and a level per weight)
        split, target, bw, cpu = (int(v) for v in idle_action(n_levels))
        self.idle_option, self.idle_bw, self.idle_cpu = split * n_targets + target, bw, cpu
        #: score only the devices with a task and their feasible options (see forward)
        self.compact = True

    @classmethod
    def from_core(
        cls, core: Core, hidden: int = 64, rounds: int = 1, critic: str = "own"
    ) -> SplitOffloadNet:
        """The network for ``core``'s scenario (its static tables only)."""
        ta = core.tables
        st = core.kernel_statics()
        return cls(
            n_devices=ta.n_devices,
            n_apps=ta.n_apps,
            n_candidates=ta.n_candidates,
            n_targets=ta.n_targets,
            n_aps=ta.n_aps,
            n_levels=ta.n_levels,
            layout=ta.observation_layout(),
            choice_f=np.asarray(st["choice_f"]),
            choice_i=np.asarray(st["choice_i"]),
            p_tx_w=core.physics.p_tx_w,
            weights=tuple(st["weights"]),  # type: ignore[arg-type]
            latency_scale_s=float(ta.latency_scale_s),
            rate_scale_mbps=float(ta.rate_scale_mbps),
            home=np.asarray(ta.home),
            hidden=hidden,
            rounds=rounds,
            critic=critic,
            capacity_j=core.physics.capacity_j,
            budget_j=np.asarray(st["budget_j"]),
            budget_weight=float(st["budget_weight"]),  # type: ignore[arg-type]
            energy_scale_j=float(ta.energy_scale_j),
        )

    # -- the observation, read back ------------------------------------------------------
    def _block(self, x: torch.Tensor, name: str) -> torch.Tensor:
        i, size = self.at[name]
        return x[..., i : i + size]

    def parse(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Any, torch.Tensor]:
        """Per-device observations ``[B, N, D]``, ``has_task [B, N]``, each option's
        estimated outcome alone (``[B, N, S * J]`` tensors) and the feasibility mask."""
        x = obs.float().reshape(obs.shape[0], self.n, self.d)
        has = self._block(x, "has_task")[..., 0] > 0.5
        app = self._block(x, "app").argmax(-1)
        row = self.row_base + torch.where(has, app, torch.full_like(app, self.a))

        def others(load: torch.Tensor) -> torch.Tensor:  # [B, N, X]: the other devices'
            return load.sum(1, keepdim=True) - load

        statics = (self.p_tx, self.cap_j, self.budget_j)
        estimates, feasible = self._options(x, has, row, statics, others)
        return x, has, estimates, feasible

    def _options(
        self,
        x: torch.Tensor,
        has: torch.Tensor | None,
        row: torch.Tensor,
        statics: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        others: Any,
    ) -> tuple[Any, torch.Tensor]:
        """Each option's estimates and feasibility for device rows of any leading shape
        ``L``: observations ``x [*L, D]``, ``has [*L]`` (``None``: every row has a task),
        table rows ``row [*L]``, the rows' radio power, battery capacity and energy budget
        (``statics``, each broadcastable to ``L``), and ``others``, which maps each row's
        load ``[*L, X]`` to the other devices' of the same environment."""
        p_tx, cap_j, budget_j = statics
        f = _take(self.f_tab, row)  # [*L, SJ, F]
        dl = f[..., 0, CF.deadline_s]
        wait_q = _unsquash(self._block(x, "wait")[..., 0], dl)
        dev_b = _unsquash(self._block(x, "device_backlog")[..., 0], self.ls)
        if has is not None:
            wait_q, dev_b = wait_q * has, dev_b * has
        rates = _unsquash(self._block(x, "link_rates"), self.rs)  # [*L, M]
        srv = _unsquash(self._block(x, "server_backlog"), self.ls)  # [*L, J]
        ap_of, target_of = _take(self.ap_of, row), _take(self.target_of, row)
        rate = torch.gather(rates, -1, ap_of).clamp_min(1e-6)
        srv_opt = torch.gather(srv, -1, target_of)
        p_tx = p_tx[..., None]
        est = alone_outcome(
            f, wait_q[..., None], dev_b[..., None], rate, srv_opt, p_tx, self.weights
        )
        feasible = (f[..., CF.infeasible] < 0.5) & _take(self.canonical, row)
        if has is not None:
            feasible = feasible & has[..., None]
        if self.batteries:  # as Core.option_estimates: the charge gates, the deficit costs
            charge = self._block(x, "battery")[..., 0] * cap_j  # [*L]
            # a hair conservative: the observation's float32 must not afford an unaffordable head
            gate = (cap_j > 0)[..., None] & (
                f[..., CF.head_energy_j] > charge[..., None] * (1.0 - 1e-5)
            )
            feasible = feasible & ~gate
            debt = _unsquash(self._block(x, "energy_debt")[..., 0], self.es)
        else:
            debt = torch.zeros_like(wait_q)
        est = self._budgeted(est, debt, budget_j)
        if has is not None:  # a device with no task: its one fixed option
            idle = torch.zeros_like(feasible)
            idle[..., self.idle_option] = True
            feasible = feasible | (idle & ~has[..., None])  # (onnxruntime: no bool Where)
        # contention: how many other devices' cheapest-alone options use this option's
        # target (with tail work) and access point (sending), and the estimate with them
        cost = torch.nan_to_num(est.cost, nan=1e3, posinf=1e3)
        pick = torch.where(feasible, cost, torch.full_like(cost, 1e4)).argmin(-1, keepdim=True)
        busy = torch.gather(_take(self.busy_of, row), -1, pick)[..., 0]
        sends = torch.gather(_take(self.off_of, row), -1, pick)[..., 0]
        if has is not None:
            busy, sends = busy & has, sends & has
        tgt = torch.gather(target_of, -1, pick)  # [*L, 1]
        ap = torch.gather(ap_of, -1, pick)
        on_t = (tgt == torch.arange(self.j, device=x.device)) & busy[..., None]
        on_ap = (ap == torch.arange(self.m, device=x.device)) & sends[..., None]
        n_t = torch.gather(others(on_t.float()), -1, target_of)
        n_ap = torch.gather(others(on_ap.float()), -1, ap_of)
        # what later rounds re-estimate
        basis = (f, row, wait_q, dev_b, rate, srv_opt, debt, p_tx, budget_j, others)
        crowd = self._crowded(basis, n_t, n_ap)
        return (est, crowd, n_t, n_ap, basis), feasible

    def _crowded(self, basis: tuple, n_t: torch.Tensor, n_ap: torch.Tensor) -> Any:
        """Each option's outcome when ``n_t`` other tasks share its target's compute and
        ``n_ap`` its access point's bandwidth (equal shares)."""
        f, _row, wait_q, dev_b, rate, srv_opt, debt, p_tx, budget_j, _others = basis
        out = alone_outcome(
            f,
            wait_q[..., None],
            dev_b[..., None],
            rate / (1.0 + n_ap),
            srv_opt,
            p_tx,
            self.weights,
            tail_factor=1.0 + n_t,
        )
        return self._budgeted(out, debt, budget_j)

    def _budgeted(self, out: Any, debt: torch.Tensor, budget_j: torch.Tensor) -> Any:
        """``out`` with the energy budget's deficit after this slot costed, as the reward
        counts it (nothing without batteries)."""
        if self.batteries:
            deficit = (debt[..., None] + out.energy_j - budget_j[..., None]).clamp_min(0.0)
            out.cost = out.cost + self.w_budget * deficit
        return out

    def _next_round(
        self,
        logits: torch.Tensor,
        has: torch.Tensor | None,
        feasible: torch.Tensor,
        basis: tuple,
        idx: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[*L, SJ, 4]`` features of each option under the load the *policy's own*
        choice probabilities put on each target and access point (the other devices'
        expected counts there, and the estimate with them): a second look, as a best
        response to the first. With ``idx``: only the options ``idx`` of the flattened
        ``[*L, SJ]``, as ``[P, 4]``."""
        row, others = basis[1], basis[-1]
        p = torch.softmax(logits, -1)  # [*L, SJ]
        if has is not None:
            p = p * has[..., None]
        load_t = (p[..., None] * _take(self.t_onehot, row)).sum(-2)  # [*L, J]
        load_ap = (p[..., None] * _take(self.ap_onehot, row)).sum(-2)  # [*L, M]
        n_t = torch.gather(others(load_t), -1, _take(self.target_of, row))
        n_ap = torch.gather(others(load_ap), -1, _take(self.ap_of, row))
        crowd = self._crowded(basis, n_t, n_ap)
        c = torch.nan_to_num(crowd.cost, nan=1e3, posinf=1e3).clamp(0.0, 1e3)
        best = torch.where(feasible, c, torch.full_like(c, 1e3)).amin(-1, keepdim=True)
        feats = [torch.log1p(c), torch.log1p((c - best).clamp_min(0.0)), n_t / self.n]
        return _features([*feats, n_ap / self.n], idx)

    def option_features(
        self, estimates: Any, feasible: torch.Tensor, idx: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[*L, S * J, N_OPTION_FEATURES]`` bounded features of each option; with ``idx``
        only the options ``idx`` of the flattened ``[*L, S * J]``, as ``[P, F]``."""
        est, crowd, n_t, n_ap, _basis = estimates
        dl = est.deadline_s

        def bounded(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            c = torch.nan_to_num(c, nan=1e3, posinf=1e3).clamp(0.0, 1e3)
            b = torch.where(feasible, c, torch.full_like(c, 1e3)).amin(-1, keepdim=True)
            return c, b

        cost, best = bounded(est.cost)
        c_cost, c_best = bounded(crowd.cost)

        def rel(t: torch.Tensor) -> torch.Tensor:
            return torch.log1p(torch.nan_to_num(t / dl, nan=1e3, posinf=1e3).clamp(0.0, 1e3))

        w_e = self.weights[1]
        feats = [
            torch.log1p(cost),
            torch.log1p((cost - best).clamp_min(0.0)),
            rel(est.latency_s),
            rel(est.head_s),
            rel(est.transfer_s),
            rel(est.server_wait_s),
            rel(est.tail_s),
            rel(est.rtt_s),
            torch.log1p(torch.nan_to_num(w_e * est.energy_j, posinf=1e3).clamp(0.0, 1e3)),
            est.miss.float(),
            est.infeasible,
            (cost <= best + 1e-6).float(),
            torch.log1p(c_cost),
            torch.log1p((c_cost - c_best).clamp_min(0.0)),
            rel(crowd.latency_s),
            n_t / self.n,
            n_ap / self.n,
        ]
        return _features(feats, idx)

    @staticmethod
    def _pool(h: torch.Tensor) -> torch.Tensor:
        return torch.cat([h.mean(1), amax_over_devices(h)], -1)

    def forward(
        self, obs: torch.Tensor, value: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Option logits ``[B, N, SJ]``, bandwidth and compute level logits ``[B, N, L]``,
        the value ``[B]`` (zeros with ``value=False``: the critic's half is not run) and
        ``has_task [B, N]``.

        Two equivalent paths: the *compact* one (the default) estimates and scores only the
        devices with a task, and runs the option scorer only over their feasible options
        (on ``default`` about 14% of all options); the *dense* one computes every option
        of every device with fixed shapes (what the ONNX exporter traces, and with
        ``compact = False``). They give the same distributions; only where a device has
        no task do the logits of its one action differ (0 on the compact path)."""
        if self.compact and not torch.jit.is_tracing():
            return self._forward_compact(obs, value)
        return self._forward_dense(obs, value)

    def _heads(
        self, x: torch.Tensor, value: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The device encodings ``[B, N, h]``, their pooled context ``[B, h]`` and the
        value ``[B]`` (zeros without ``value``)."""
        h = self.enc(x)
        c = self.ctx(self._pool(h))
        if not value:
            return h, c, x.new_zeros(x.shape[0])
        return h, c, self.v_head(c)[:, 0] if self.critic == "shared" else self._value(x)

    def _value(self, x: torch.Tensor) -> torch.Tensor:
        """The value ``[B]`` of per-device observations ``x [B, N, D]``."""
        if self.critic == "shared":
            return self._heads(x)[2]
        hv = self.v_enc(x)
        cv = self.v_ctx(self._pool(hv))
        b, n = x.shape[:2]
        if torch.jit.is_tracing():
            v = self.v_head(torch.cat([hv, cv[:, None, :].expand_as(hv)], -1))
        else:  # the environment's half of the first layer once per environment
            env = torch.arange(b, device=x.device).repeat_interleave(n)
            pre = _joint(self.v_head[0], hv.reshape(b * n, hv.shape[-1]), cv, env)
            v = _after_first(self.v_head, pre).reshape(b, n, 1)
        return v[..., 0].mean(1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """The value ``[B]`` alone (the critic does not look at the options)."""
        return self._value(obs.float().reshape(obs.shape[0], self.n, self.d))

    def _forward_dense(
        self, obs: torch.Tensor, value: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x, has, est, feasible = self.parse(obs)
        h, c, value = self._heads(x, value)
        hc = torch.cat([h, c[:, None, :].expand_as(h)], -1)
        of = self.option_features(est, feasible)
        z = torch.relu(self.opt_proj(of) + self.dev_proj(hc)[:, :, None, :])
        prior = -self.log_beta.exp() * of[..., 1]  # cost above the device's cheapest option
        opt = self.score(z)[..., 0] + prior
        opt = opt.masked_fill(~feasible, float("-inf"))
        for r in range(self.rounds - 1):  # best responses to the policy's own first look
            nf = self._next_round(opt, has, feasible, est[-1])
            z2 = torch.relu(self.round_proj[r](nf) + self.round_dev[r](hc)[:, :, None, :])
            opt = opt + self.round_score[r](z2)[..., 0]
        lv = self.level_head(hc)
        idle = torch.zeros(2, self.levels, dtype=torch.bool, device=obs.device)
        idle[0, self.idle_bw] = idle[1, self.idle_cpu] = True
        # no task: the idle action's levels only
        bw = lv[..., : self.levels].masked_fill(~(has[..., None] | idle[0]), float("-inf"))
        cpu = lv[..., self.levels :].masked_fill(~(has[..., None] | idle[1]), float("-inf"))
        return opt, bw, cpu, value, has

    def _forward_compact(
        self, obs: torch.Tensor, value: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, sj = obs.shape[0], self.n, self.sj
        opt, lv, value, has, sel = self.task_heads(obs, value)
        # every device: a device with no task has the idle action's option and levels
        idle = torch.full((b * n, sj), float("-inf"), device=obs.device)
        idle[:, self.idle_option] = 0.0
        opt = idle.index_copy(0, sel, opt).reshape(b, n, sj)
        idle_lv = torch.full((b * n, 2 * self.levels), float("-inf"), device=obs.device)
        idle_lv[:, self.idle_bw] = idle_lv[:, self.levels + self.idle_cpu] = 0.0
        lv = idle_lv.index_copy(0, sel, lv).reshape(b, n, 2 * self.levels)
        return opt, lv[..., : self.levels], lv[..., self.levels :], value, has

    def task_heads(
        self, obs: torch.Tensor, value: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The compact forward's outputs for the ``K`` devices with a task only: option
        logits ``[K, SJ]``, level logits ``[K, 2L]`` (bandwidth, then compute), the value
        ``[B]``, ``has_task [B, N]`` and the devices' flat indices ``sel [K]`` into
        ``B * N`` (ascending). A device with no task has one action, of probability 1."""
        b, n, sj = obs.shape[0], self.n, self.sj
        x = obs.float().reshape(b, n, self.d)
        has = self._block(x, "has_task")[..., 0] > 0.5
        h, c, value = self._heads(x, value)
        sel = has.reshape(-1).nonzero()[:, 0]  # the K devices with a task
        env, dev = sel // n, sel % n
        xs = _take(x.reshape(b * n, self.d), sel)  # [K, D]
        row = _take(self.row_base, dev) + self._block(xs, "app").argmax(-1)

        def others(load: torch.Tensor) -> torch.Tensor:  # [K, X]: the other devices'
            total = load.new_zeros(b, load.shape[-1]).index_add(0, env, load)
            return _take(total, env) - load

        statics = (_take(self.p_tx, dev), _take(self.cap_j, dev), _take(self.budget_j, dev))
        est, feasible = self._options(xs, None, row, statics, others)
        # the scorer over the feasible options only ([P] of them, each of device k_of)
        idx = feasible.reshape(-1).nonzero()[:, 0]
        k_of = idx // sj
        of = self.option_features(est, feasible, idx)  # [P, F]
        hs = _take(h.reshape(b * n, h.shape[-1]), sel)  # [K, h] (explicit: b may be 0)
        z = torch.relu(self.opt_proj(of) + _take(_joint(self.dev_proj, hs, c, env), k_of))
        score = self.score(z)[:, 0] - self.log_beta.exp() * of[:, 1]
        none = torch.full((sel.shape[0] * sj,), float("-inf"), device=obs.device)
        opt = none.index_copy(0, idx, score).reshape(-1, sj)
        for r in range(self.rounds - 1):  # best responses to the policy's own first look
            nf = self._next_round(opt, None, feasible, est[-1], idx)  # [P, 4]
            dev_r = _joint(self.round_dev[r], hs, c, env)
            z2 = torch.relu(self.round_proj[r](nf) + _take(dev_r, k_of))
            score = score + self.round_score[r](z2)[:, 0]
            opt = none.index_copy(0, idx, score).reshape(-1, sj)
        lv = _after_first(self.level_head, _joint(self.level_head[0], hs, c, env))  # [K, 2L]
        return opt, lv, value, has, sel

    def action_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """Per-dimension logits ``[B, N * (S + J + 2L)]`` whose argmax per dimension is the
        policy's most likely action: the split dimension carries each split's best option
        and the target dimension the targets of the best split (what the exporter's
        per-dimension argmax reads; the value is not computed)."""
        opt, bw, cpu, _v, _has = self.forward(obs, value=False)
        b = opt.shape[0]
        grid = opt.reshape(b, self.n, self.s, self.j)
        split_logits = grid.amax(-1)
        best = split_logits.argmax(-1, keepdim=True)  # [B, N, 1]
        idx = best[..., None].expand(b, self.n, 1, self.j)
        target_logits = torch.gather(grid, 2, idx)[:, :, 0, :]
        per_dev = torch.cat([split_logits, target_logits, bw, cpu], -1)
        return per_dev.reshape(b, -1)


class SplitDistribution:
    """The joint action's distribution: per device, a categorical over the ``S * J``
    options and one over each weight level; ``actions`` are the env's MultiDiscrete
    ``[B, N * 4]`` (split, target, bandwidth level, compute level).

    The categoricals of ``torch.distributions`` with their argument checks left out (three
    of them per batch cost more than the rest of acting on 64 copies): normalised
    log-probabilities ``opt [B, N, S * J]`` and ``levels [B, N, 2, L]``."""

    def __init__(self, opt: torch.Tensor, bw: torch.Tensor, cpu: torch.Tensor, j: int) -> None:
        self.j = j
        self.opt = torch.log_softmax(opt, -1)
        self.levels = torch.log_softmax(torch.stack([bw, cpu], -2), -1)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        a = actions.long().reshape(actions.shape[0], -1, 4)
        lp = torch.gather(self.opt, -1, (a[..., 0] * self.j + a[..., 1])[..., None])[..., 0]
        lv = torch.gather(self.levels, -1, a[..., 2:, None])[..., 0]  # [B, N, 2]
        return (lp + lv.sum(-1)).sum(1)

    @staticmethod
    def _entropy(logp: torch.Tensor) -> torch.Tensor:
        return -(logp.exp() * logp.clamp_min(torch.finfo(logp.dtype).min)).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self._entropy(self.opt) + self._entropy(self.levels).sum(-1)).sum(1)

    @staticmethod
    def _sample(logp: torch.Tensor) -> torch.Tensor:
        """One draw per row by inverting the cumulative distribution (``multinomial`` took
        8x as long on these small rows): the first option whose cumulative probability
        passes a uniform draw, which is never an option of probability 0."""
        c = logp.exp().cumsum(-1)
        u = torch.rand(c.shape[:-1], dtype=c.dtype, device=c.device)[..., None] * c[..., -1:]
        return (c <= u).sum(-1).clamp_max(logp.shape[-1] - 1)

    def get_actions(self, deterministic: bool = False) -> torch.Tensor:
        if deterministic:
            o, lv = self.opt.argmax(-1), self.levels.argmax(-1)
        else:
            o, lv = self._sample(self.opt), self._sample(self.levels)
        a = torch.stack([o // self.j, o % self.j, lv[..., 0], lv[..., 1]], -1)
        return a.reshape(a.shape[0], -1)


def _fused_again(optimizer: torch.optim.Optimizer) -> None:
    """Put a loaded Adam back on the fused kernel (a ``load_state_dict`` post-hook).

    ``Optimizer.load_state_dict`` restores the saved groups' flags, so a checkpoint saved
    before the fused Adam was the default (``fused: None``) would resume on the per-tensor
    loop. Only registered where the policy chose the kernel itself (its
    ``optimizer_kwargs`` name neither ``fused`` nor ``foreach``). Each ``step`` count moves
    to its parameter's device as float32, as ``load_state_dict`` does for a fused group.
    """
    for group in optimizer.param_groups:
        if group.get("fused"):
            continue
        group["fused"], group["foreach"] = True, None  # as Adam(fused=True) makes a group
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if torch.is_tensor(state.get("step")):
                state["step"] = state["step"].to(device=p.device, dtype=torch.float32)


class _SharedSplit:
    """What :class:`SharedSplitPolicy` and :class:`MaskableSharedSplitPolicy` share: the
    network, its distribution and SB3's policy methods (``action_masks``, where given,
    take away what the environment forbids on top of the network's own feasibility)."""

    net: SplitOffloadNet

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Any,
        scenario: Any = "default",
        hidden: int = 64,
        rounds: int = 1,
        critic: str = "own",
        **kwargs: Any,
    ) -> None:
        # _build (called by the parent's __init__) needs these
        self._scenario, self._hidden, self._rounds = scenario, int(hidden), int(rounds)
        self._critic = critic
        kwargs.pop("net_arch", None)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)  # type: ignore[call-arg]

    def _build(self, lr_schedule: Any) -> None:
        core = Core(load_scenario(self._scenario), 1, backend="numpy")
        self.net = SplitOffloadNet.from_core(
            core, hidden=self._hidden, rounds=self._rounds, critic=self._critic
        )
        n_obs = int(np.prod(self.observation_space.shape))  # type: ignore[attr-defined]
        if n_obs != self.net.n * self.net.d:
            raise ValueError(
                f"scenario: {self._scenario!r} has observations of {self.net.n * self.net.d} "
                f"values, the environment {n_obs}"
            )
        kw = dict(self.optimizer_kwargs)  # type: ignore[attr-defined]
        fused = self.optimizer_class is torch.optim.Adam and not {"fused", "foreach"} & set(kw)  # type: ignore[attr-defined]
        if fused:
            # the fused kernel: one call for every tensor (0.15 ms a step on default
            # against 0.68 ms for the per-tensor loop; the same update to float rounding)
            kw["fused"] = True
        self.optimizer = self.optimizer_class(  # type: ignore[attr-defined]
            self.parameters(),  # type: ignore[attr-defined]
            lr=lr_schedule(1),
            **kw,
        )
        if fused:  # and still after a resume from a checkpoint saved without it
            self.optimizer.register_load_state_dict_post_hook(_fused_again)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update(scenario=self._scenario, hidden=self._hidden, rounds=self._rounds)
        data.update(critic=self._critic)
        return data

    def _dist(
        self, obs: torch.Tensor, action_masks: Any = None
    ) -> tuple[SplitDistribution, torch.Tensor]:
        opt, bw, cpu, value, has = self.net(obs)
        if action_masks is not None:  # the env's flat masks [B, N * (S + J + 2L)]
            net = self.net
            m = torch.as_tensor(action_masks, device=opt.device).reshape(
                opt.shape[0], net.n, net.s + net.j + 2 * net.levels
            )
            m = m.bool() | ~has[..., None]  # a device with no task keeps its fixed action
            sj = (m[..., : net.s, None] & m[..., net.s : net.s + net.j][..., None, :]).flatten(2)
            lv = m[..., net.s + net.j :]
            opt = opt.masked_fill(~sj, float("-inf"))
            bw = bw.masked_fill(~lv[..., : net.levels], float("-inf"))
            cpu = cpu.masked_fill(~lv[..., net.levels :], float("-inf"))
        return SplitDistribution(opt, bw, cpu, self.net.j), value

    def forward(self, obs: torch.Tensor, deterministic: bool = False, action_masks: Any = None):
        dist, value = self._dist(obs, action_masks)
        actions = dist.get_actions(deterministic)
        return actions, value[:, None], dist.log_prob(actions)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor, action_masks: Any = None):
        if action_masks is None and self.net.compact:  # only the devices with a task
            return self._evaluate_tasks(obs, actions)
        dist, value = self._dist(obs, action_masks)
        return value[:, None], dist.log_prob(actions), dist.entropy()

    def _evaluate_tasks(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`evaluate_actions` from the distributions of the devices with a task alone
        (:meth:`SplitOffloadNet.task_heads`): a device with no task has one action, of
        log-probability and entropy 0, so the sums are the same numbers (the one action is
        what the policy and the warm start's teacher give such a device; any other would
        be impossible, -inf, on the full distribution). Saves the log-softmax over every
        device and the scatter into the full logits (the update's minibatches)."""
        net = self.net
        opt, lv, value, _has, sel = net.task_heads(obs)
        b = obs.shape[0]
        env = sel // net.n
        a = actions.reshape(b * net.n, -1).index_select(0, sel)  # [K, 4]
        levels = lv.reshape(-1, 1, 2, net.levels)
        dist = SplitDistribution(opt[:, None], levels[..., 0, :], levels[..., 1, :], net.j)
        logp = value.new_zeros(b).index_add(0, env, dist.log_prob(a))
        entropy = value.new_zeros(b).index_add(0, env, dist.entropy())
        return value[:, None], logp, entropy

    def get_distribution(self, obs: torch.Tensor, action_masks: Any = None) -> SplitDistribution:
        return self._dist(obs, action_masks)[0]

    def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net.value(obs)[:, None]

    def _predict(
        self, observation: torch.Tensor, deterministic: bool = False, action_masks: Any = None
    ) -> torch.Tensor:
        return self._dist(observation, action_masks)[0].get_actions(deterministic)

    def action_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """See :meth:`SplitOffloadNet.action_logits` (what export traces)."""
        return self.net.action_logits(obs)


class SharedSplitPolicy(_SharedSplit, ActorCriticPolicy):  # type: ignore[misc]
    """:class:`SplitOffloadNet` as a stable-baselines3 actor-critic policy (for PPO).

    ``scenario`` (a shipped name, a path or a mapping) gives the static tables; ``hidden``
    the layer width; ``rounds`` how many looks the policy takes (2: a second look at each
    option under the load its own first choices bring). Set ``policy: SharedSplitPolicy``
    in an algorithm config; the agent fills in the scenario.
    """


class MaskableSharedSplitPolicy(_SharedSplit, MaskableActorCriticPolicy):  # type: ignore[misc]
    """:class:`SharedSplitPolicy` for sb3-contrib's MaskablePPO: the environment's action
    masks apply on top of the network's own (``policy: SharedSplitPolicy`` with
    ``algo=maskable_ppo`` picks it)."""
