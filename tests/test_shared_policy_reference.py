"""The shared policy's fast forward against the plain one it replaced.

:class:`~edgesplit.agents.shared_policy.SplitOffloadNet` scores only the devices with a task
and only their feasible options (its *compact* path, what PPO trains with); the reference
below is its forward as it was before (commit ab13c28): every option of every device, with
fixed shapes. Both must give the same distributions, values and gradients, on simulator
states and on arbitrary observations, with masked options, devices without tasks, and the
battery scenario's charge gates and budgeted estimates. The network's own dense path (what
the ONNX exporter traces) is checked against the reference too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from edgesplit.agents.baselines import make_baseline
from edgesplit.agents.shared_policy import SplitDistribution, SplitOffloadNet
from edgesplit.sim.core import Core
from edgesplit.sim.estimates import alone_outcome
from edgesplit.sim.scenario import load_scenario
from edgesplit.sim.schema import CF

# -- the reference: SplitOffloadNet.forward before the compact path (kept verbatim but for
# -- `self` becoming `net`)


def _unsquash(y: torch.Tensor, scale: Any) -> torch.Tensor:
    y = y.clamp(0.0, 1.0 - 1e-6)
    return scale * y / (1.0 - y)


def _block(net: SplitOffloadNet, x: torch.Tensor, name: str) -> torch.Tensor:
    i, size = net.at[name]
    return x[..., i : i + size]


def _budgeted(net: SplitOffloadNet, out: Any, debt: torch.Tensor) -> Any:
    if net.batteries:
        deficit = (debt[..., None] + out.energy_j - net.budget_j[:, None]).clamp_min(0.0)
        out.cost = out.cost + net.w_budget * deficit
    return out


def _crowded(net: SplitOffloadNet, basis: tuple, n_t: torch.Tensor, n_ap: torch.Tensor) -> Any:
    f, _row, wait_q, dev_b, rate, srv_opt, debt = basis
    out = alone_outcome(
        f,
        wait_q[..., None],
        dev_b[..., None],
        rate / (1.0 + n_ap),
        srv_opt,
        net.p_tx[None, :, None],
        net.weights,
        tail_factor=1.0 + n_t,
    )
    return _budgeted(net, out, debt)


def _parse(net: SplitOffloadNet, obs: torch.Tensor) -> tuple:
    x = obs.float().reshape(obs.shape[0], net.n, net.d)
    has = _block(net, x, "has_task")[..., 0] > 0.5
    app = _block(net, x, "app").argmax(-1)
    row = net.row_base + torch.where(has, app, torch.full_like(app, net.a))
    f = net.f_tab[row]
    dl = f[..., 0, CF.deadline_s]
    wait_q = _unsquash(_block(net, x, "wait")[..., 0], dl) * has
    dev_b = _unsquash(_block(net, x, "device_backlog")[..., 0], net.ls) * has
    rates = _unsquash(_block(net, x, "link_rates"), net.rs)
    srv = _unsquash(_block(net, x, "server_backlog"), net.ls)
    rate = torch.gather(rates, 2, net.ap_of[row]).clamp_min(1e-6)
    srv_opt = torch.gather(srv, 2, net.target_of[row])
    est = alone_outcome(
        f, wait_q[..., None], dev_b[..., None], rate, srv_opt, net.p_tx[None, :, None], net.weights
    )
    feasible = (f[..., CF.infeasible] < 0.5) & net.canonical[row] & has[..., None]
    if net.batteries:
        charge = _block(net, x, "battery")[..., 0] * net.cap_j
        gate = (net.cap_j > 0)[:, None] & (
            f[..., CF.head_energy_j] > charge[..., None] * (1.0 - 1e-5)
        )
        feasible = feasible & ~gate
        debt = _unsquash(_block(net, x, "energy_debt")[..., 0], net.es)
    else:
        debt = torch.zeros_like(wait_q)
    est = _budgeted(net, est, debt)
    first = torch.zeros_like(feasible)
    first[..., 0] = True
    feasible = feasible | (first & ~has[..., None])
    cost = torch.nan_to_num(est.cost, nan=1e3, posinf=1e3)
    pick = torch.where(feasible, cost, torch.full_like(cost, 1e4)).argmin(-1, keepdim=True)
    busy = torch.gather(net.busy_of[row], 2, pick)[..., 0] & has
    sends = torch.gather(net.off_of[row], 2, pick)[..., 0] & has
    tgt = torch.gather(net.target_of[row], 2, pick)
    ap = torch.gather(net.ap_of[row], 2, pick)
    on_t = (tgt == torch.arange(net.j)) & busy[..., None]
    on_ap = (ap == torch.arange(net.m)) & sends[..., None]
    others_t = on_t.sum(1, keepdim=True) - on_t.long()
    others_ap = on_ap.sum(1, keepdim=True) - on_ap.long()
    n_t = torch.gather(others_t, 2, net.target_of[row]).float()
    n_ap = torch.gather(others_ap, 2, net.ap_of[row]).float()
    basis = (f, row, wait_q, dev_b, rate, srv_opt, debt)
    crowd = _crowded(net, basis, n_t, n_ap)
    return x, has, (est, crowd, n_t, n_ap, basis), feasible


def _next_round(net, logits, has, feasible, basis) -> torch.Tensor:
    row = basis[1]
    p = torch.softmax(logits, -1) * has[..., None]
    on_t = p[..., None] * net.t_onehot[row]
    on_ap = p[..., None] * net.ap_onehot[row]
    load_t = on_t.sum(2)
    load_ap = on_ap.sum(2)
    others_t = load_t.sum(1, keepdim=True) - load_t
    others_ap = load_ap.sum(1, keepdim=True) - load_ap
    n_t = torch.gather(others_t, 2, net.target_of[row])
    n_ap = torch.gather(others_ap, 2, net.ap_of[row])
    crowd = _crowded(net, basis, n_t, n_ap)
    c = torch.nan_to_num(crowd.cost, nan=1e3, posinf=1e3).clamp(0.0, 1e3)
    best = torch.where(feasible, c, torch.full_like(c, 1e3)).amin(-1, keepdim=True)
    feats = [torch.log1p(c), torch.log1p((c - best).clamp_min(0.0)), n_t / net.n]
    return torch.stack([*feats, n_ap / net.n], -1)


def _option_features(net, estimates, feasible) -> torch.Tensor:
    est, crowd, n_t, n_ap, _basis = estimates
    dl = est.deadline_s

    def bounded(c):
        c = torch.nan_to_num(c, nan=1e3, posinf=1e3).clamp(0.0, 1e3)
        b = torch.where(feasible, c, torch.full_like(c, 1e3)).amin(-1, keepdim=True)
        return c, b

    cost, best = bounded(est.cost)
    c_cost, c_best = bounded(crowd.cost)

    def rel(t):
        return torch.log1p(torch.nan_to_num(t / dl, nan=1e3, posinf=1e3).clamp(0.0, 1e3))

    w_e = net.weights[1]
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
        n_t / net.n,
        n_ap / net.n,
    ]
    return torch.stack(feats, -1)


def _seq(seq: torch.nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``seq(x)`` with torch's own ``tanh`` (the network's :class:`Tanh` computes it
    another way)."""
    for layer in seq:
        x = torch.tanh(x) if isinstance(layer, torch.nn.Tanh) else layer(x)
    return x


def _pool(h: torch.Tensor) -> torch.Tensor:
    return torch.cat([h.mean(1), h.amax(1)], -1)


def reference_forward(net: SplitOffloadNet, obs: torch.Tensor) -> tuple:
    x, has, est, feasible = _parse(net, obs)
    h = _seq(net.enc, x)
    c = _seq(net.ctx, _pool(h))[:, None, :].expand_as(h)
    hc = torch.cat([h, c], -1)
    of = _option_features(net, est, feasible)
    z = torch.relu(net.opt_proj(of) + net.dev_proj(hc)[:, :, None, :])
    prior = -net.log_beta.exp() * of[..., 1]
    opt = net.score(z)[..., 0] + prior
    opt = opt.masked_fill(~feasible, float("-inf"))
    for r in range(net.rounds - 1):
        nf = _next_round(net, opt, has, feasible, est[-1])
        z2 = torch.relu(net.round_proj[r](nf) + net.round_dev[r](hc)[:, :, None, :])
        opt = opt + net.round_score[r](z2)[..., 0]
    lv = _seq(net.level_head, hc)
    top = torch.zeros(net.levels, dtype=torch.bool)
    top[-1] = True
    lmask = has[..., None] | top
    bw = lv[..., : net.levels].masked_fill(~lmask, float("-inf"))
    cpu = lv[..., net.levels :].masked_fill(~lmask, float("-inf"))
    hv = _seq(net.v_enc, x)
    cv = _seq(net.v_ctx, _pool(hv))[:, None, :].expand_as(hv)
    value = _seq(net.v_head, torch.cat([hv, cv], -1))[..., 0].mean(1)
    return opt, bw, cpu, value, has


# -- the comparison


def _observations(scenario: str, e: int = 16, slots: int = 8, seed: int = 3) -> torch.Tensor:
    """Simulator states a few slots into ``e`` episodes (random decisions: backlogs build
    up, batteries drain), stacked with arbitrary observations: uniform noise with a random
    half of the devices given a task and a one-hot application."""
    core = Core(load_scenario(scenario), e)
    core.reset(np.arange(seed, seed + e, dtype=np.uint64))
    rule = make_baseline("random")
    obs = []
    for _ in range(slots):
        core.step(rule.decide(core))
        obs.append(torch.as_tensor(core.observe().reshape(e, -1)))
    net = SplitOffloadNet.from_core(core, hidden=8)
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(4 * e, net.n, net.d, generator=g)
    for name, fill in (("has_task", None), ("app", None)):
        i, size = net.at[name]
        if name == "has_task":
            noise[..., i] = (torch.rand(4 * e, net.n, generator=g) < 0.5).float()
        else:
            app = torch.randint(0, size, (4 * e, net.n), generator=g)
            noise[..., i : i + size] = torch.nn.functional.one_hot(app, size).float()
        del fill
    return torch.cat([*obs, noise.reshape(4 * e, -1)])


def _outputs(net: SplitOffloadNet, out: tuple, actions: torch.Tensor) -> dict[str, torch.Tensor]:
    """What training reads from a forward: log-probabilities, entropies, values, and the
    normalised logits (where a device has a task)."""
    opt, bw, cpu, value, has = out
    dist = SplitDistribution(opt, bw, cpu, net.j)
    return {
        "log_prob": dist.log_prob(actions),
        "entropy": dist.entropy(),
        "value": value,
        "opt": torch.log_softmax(opt, -1)[has],
        "bw": torch.log_softmax(bw, -1)[has],
        "cpu": torch.log_softmax(cpu, -1)[has],
        "has": has,
    }


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    for k in a:
        fin = torch.isfinite(a[k]) if a[k].is_floating_point() else None
        if fin is not None:  # masked options: -inf in both, at the same places
            assert torch.equal(fin, torch.isfinite(b[k])), k
            torch.testing.assert_close(a[k][fin], b[k][fin], rtol=1e-5, atol=1e-5, msg=k)
        else:
            assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize(
    ("scenario", "rounds"),
    [("default", 2), ("default", 1), ("dense", 2), ("battery", 2), ("battery", 3), ("bursty", 2)],
)
def test_the_fast_forward_is_the_reference(scenario: str, rounds: int) -> None:
    torch.manual_seed(rounds)
    obs = _observations(scenario)
    core = Core(load_scenario(scenario), 1)
    net = SplitOffloadNet.from_core(core, hidden=16, rounds=rounds)
    with torch.no_grad():  # a trained-looking prior: options apart by their estimates
        net.log_beta.fill_(1.0)
    with torch.no_grad():
        ref = reference_forward(net, obs)
        actions = SplitDistribution(*ref[:3], net.j).get_actions()
    assert ref[4].any() and (~ref[4]).any()  # devices with and without a task
    feasible = torch.isfinite(ref[0])[ref[4]]
    assert (~feasible).any()  # masked options among those of devices with a task
    want = _outputs(net, ref, actions)
    for compact in (True, False):
        net.compact = compact
        with torch.no_grad():
            _close(want, _outputs(net, net(obs), actions))
    net.compact = True
    with torch.no_grad():  # the critic alone (what PPO's bootstrapping asks for)
        torch.testing.assert_close(net.value(obs), ref[3], rtol=1e-5, atol=1e-6)

    def grads(fwd) -> list[torch.Tensor]:  # a PPO-like loss through every head
        net.zero_grad()
        o = _outputs(net, fwd(obs), actions)
        (o["log_prob"].mean() + o["entropy"].mean() + o["value"].square().mean()).backward()
        return [p.grad.clone() for p in net.parameters()]

    for a, b in zip(grads(lambda o: reference_forward(net, o)), grads(net), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_the_budgeted_estimates_are_exercised() -> None:
    """On ``battery`` the charge gates some heads and the budget's deficit costs: the
    reference comparison above covers both (the compact path's per-device statics)."""
    obs = _observations("battery")
    net = SplitOffloadNet.from_core(Core(load_scenario("battery"), 1), hidden=8)
    assert net.batteries and net.w_budget > 0
    _x, has, est, feasible = net.parse(obs)
    plain = alone_outcome(*_plain_inputs(net, obs))
    deficit = (est[0].cost - plain.cost)[has[..., None] & feasible]
    assert (deficit > 0).any()


def _plain_inputs(net: SplitOffloadNet, obs: torch.Tensor) -> tuple:
    """``alone_outcome``'s inputs for ``obs`` without the budget (as the reference parses)."""
    _x, _has, (_est, _crowd, _nt, _nap, basis), _f = _parse(net, obs)
    f, _row, wait_q, dev_b, rate, srv_opt, _debt = basis
    return (
        f,
        wait_q[..., None],
        dev_b[..., None],
        rate,
        srv_opt,
        net.p_tx[None, :, None],
        net.weights,
    )


class _ReferenceDistribution:
    """:class:`SplitDistribution` as it was: three ``torch.distributions.Categorical``."""

    def __init__(self, opt, bw, cpu, j: int) -> None:
        self.j = j
        self.opt = torch.distributions.Categorical(logits=opt)
        self.bw = torch.distributions.Categorical(logits=bw)
        self.cpu = torch.distributions.Categorical(logits=cpu)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        a = actions.long().reshape(actions.shape[0], -1, 4)
        lp = self.opt.log_prob(a[..., 0] * self.j + a[..., 1])
        lp = lp + self.bw.log_prob(a[..., 2]) + self.cpu.log_prob(a[..., 3])
        return lp.sum(1)

    def entropy(self) -> torch.Tensor:
        return (self.opt.entropy() + self.bw.entropy() + self.cpu.entropy()).sum(1)

    def mode(self) -> torch.Tensor:
        o, b, c = self.opt.probs.argmax(-1), self.bw.probs.argmax(-1), self.cpu.probs.argmax(-1)
        return torch.stack([o // self.j, o % self.j, b, c], -1).reshape(o.shape[0], -1)


def test_the_distribution_is_torchs_categoricals() -> None:
    torch.manual_seed(5)
    obs = _observations("default", e=8)
    net = SplitOffloadNet.from_core(Core(load_scenario("default"), 1), hidden=16, rounds=2)
    with torch.no_grad():
        out = net(obs)
    mine, ref = SplitDistribution(*out[:3], net.j), _ReferenceDistribution(*out[:3], net.j)
    assert torch.equal(mine.get_actions(deterministic=True), ref.mode())
    torch.testing.assert_close(mine.entropy(), ref.entropy(), rtol=1e-5, atol=1e-5)
    draws = torch.stack([mine.get_actions() for _ in range(64)])  # [64, B, N * 4]
    for a in draws:  # a sample never takes a masked option; its log-probability is torch's
        lp = mine.log_prob(a)
        assert torch.isfinite(lp).all()
        torch.testing.assert_close(lp, ref.log_prob(a), rtol=1e-5, atol=1e-5)
    # and sampling follows the probabilities: each device's most likely option is drawn
    # about as often as its probability says (64 draws per device, 3 standard errors)
    b, n = out[0].shape[:2]
    first = draws.reshape(64, b, n, 4)
    top = ref.opt.probs.argmax(-1)  # [B, N]
    hit = ((first[..., 0] * net.j + first[..., 1]) == top).float().mean(0)
    p = ref.opt.probs.amax(-1)
    se = (p * (1 - p) / 64).sqrt()
    assert ((hit - p).abs() <= 3 * se + 1e-6).float().mean() > 0.95


def test_sampling_follows_the_probabilities_and_never_takes_a_masked_option() -> None:
    torch.manual_seed(11)
    logits = torch.tensor(
        [[0.0, float("-inf"), 1.0, -2.0, float("-inf")], [float("-inf")] * 4 + [3.0]]
    )
    draws = 20000
    x = SplitDistribution._sample(torch.log_softmax(logits, -1).repeat(draws, 1))
    x = x.reshape(draws, 2)
    p = torch.softmax(logits, -1)
    for row in range(2):
        freq = torch.bincount(x[:, row], minlength=5).double() / draws
        se = (p[row] * (1 - p[row]) / draws).sqrt()
        assert (freq[p[row] == 0] == 0).all()
        assert ((freq - p[row]).abs() <= 4 * se + 1e-12).all(), (freq, p[row])


def test_an_empty_batch_gives_empty_outputs() -> None:
    """No observations (``B = 0``): empty outputs on both paths, as before the compact
    forward (its ``reshape(b * n, -1)`` of nothing was ambiguous and raised)."""
    net = SplitOffloadNet.from_core(Core(load_scenario("default"), 1), hidden=8)
    obs = torch.zeros(0, net.n * net.d)
    for compact in (True, False):
        net.compact = compact
        with torch.no_grad():
            opt, bw, cpu, value, has = net(obs)
        assert opt.shape == (0, net.n, net.sj) and bw.shape == cpu.shape == (0, net.n, net.levels)
        assert value.shape == (0,) and has.shape == (0, net.n)
    assert net.value(obs).shape == (0,)
