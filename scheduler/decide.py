"""Turn a snapshot of the live system into decisions, through the environment's own encoder.

A request (JSON object)::

    {
      "slot": 12,                                   # optional, default 0 (the time feature)
      "devices": {
        "pi_0": {"task": {"app": "resnet18", "waited_s": 0.02},   # or null: nothing pending
                 "queue_length": 1,                 # pending tasks, this one included
                 "backlog_s": 0.0,                  # work queued on the device
                 "link_mbps": {"edge0": 18.5, "edge1": 40.2},    # measured rates
                 "charge_j": 120.0,                 # battery charge: required for a device
                                                    # with a battery, refused for the others
                 "energy_debt_j": 0.0},             # optional (default 0): the device's
                                                    # energy-budget deficit (virtual queue)
        ...                                         # every device the policy knows
      },
      "server_backlog_s": {"edge0": 0.03, "edge1": 0.0, "cloud": 0.0}
    }

The answer names, per device, the split candidate, the target, the two weights and the
``offload_target`` (where the raw input goes if the device's battery cannot pay for the head:
the simulator's full offload, to the policy's target output even beside a local split), and
where each came from: ``"policy"``, or ``"neurosurgeon"`` (the fallback: the split and
target minimising this task's own latency at the measured rates, blind to the others) with a
``note`` saying why: an application the policy was not trained on (its profile is loaded by
network name), or an error of the policy itself. Bad requests raise :class:`RequestError`
naming the field and the value; nothing is half-decided.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

import numpy as np

from edgesplit.sim.core import Core
from edgesplit.sim.encoding import (
    action_masks,
    decode,
    decode_device,
    encode_devices,
)
from edgesplit.sim.scenario import load_scenario
from edgesplit.sim.schema import Decisions
from edgesplit.sim.sequential import SequentialTurns

from .errors import RequestError
from .policy import LoadedPolicy

__all__ = ["RequestError", "Scheduler"]

MAX_DEVICES = 4096


def _number(x: Any, field: str, *, low: float = 0.0) -> float:
    if (type(x) is float or type(x) is int) and low <= x < 1e300:  # the common case, fast
        return float(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise RequestError(field, x, "expected a finite number")
    try:
        ok = math.isfinite(x) and abs(x) < 1e300
    except OverflowError:  # an integer too large for a float
        ok = False
    if not ok:
        raise RequestError(field, x, "expected a finite number")
    if x < low:
        raise RequestError(field, x, f"must be >= {low:g}")
    return float(x)


def _integer(x: Any, field: str, low: int, high: int | None = None) -> int:
    if isinstance(x, float) and math.isfinite(x) and x.is_integer():
        x = int(x)  # JSON has one number type: 2.0 is the integer 2 (as in JSON Schema)
    if isinstance(x, bool) or not isinstance(x, int):
        raise RequestError(field, x, "expected an integer")
    if x < low or (high is not None and x > high):
        raise RequestError(field, x, f"must be in [{low}, {high if high is not None else 'inf'}]")
    return int(x)


def _object(x: Any, field: str) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise RequestError(field, x, "expected an object")
    return x


def _keys(d: dict[str, Any], field: str, allowed: set[str], required: set[str]) -> None:
    keys = d.keys()
    if keys <= allowed and required <= keys:  # the common case, fast
        return
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise RequestError(
            f"{field}.{unknown[0]}", d[unknown[0]], f"unknown field (allowed: {sorted(allowed)})"
        )
    missing = sorted(required - set(d))
    if missing:
        raise RequestError(f"{field}.{missing[0]}", None, "required field missing")


class Scheduler:
    """Decisions for snapshots of the live system from a :class:`LoadedPolicy`.

    >>> # see tests/test_scheduler.py for a policy exported from a trained model
    """

    def __init__(self, policy: LoadedPolicy) -> None:
        self.policy = policy
        ta = self.tables = policy.tables
        self._dev_index = {d: i for i, d in enumerate(ta.device_names)}
        self._app_index = {a: i for i, a in enumerate(ta.app_names)}
        self._ap_index = {a: i for i, a in enumerate(ta.access_point_names)}
        self._tgt_index = {t: i for i, t in enumerate(ta.target_names)}
        # the policy's scenario as a hashable key for the cache of built tables
        self._scenario_key = json.dumps(policy.manifest["scenario"], sort_keys=True)

    # -- parsing -----------------------------------------------------------------------
    def _parse(self, req: Any) -> dict[str, Any]:
        ta = self.tables
        req = _object(req, "(request)")
        _keys(req, "(request)", {"slot", "devices", "server_backlog_s"}, {"devices"})
        slot = _integer(req.get("slot", 0), "slot", 0)
        devs = _object(req["devices"], "devices")
        if len(devs) > MAX_DEVICES:
            raise RequestError("devices", len(devs), f"at most {MAX_DEVICES} devices")
        for name in devs:
            if name not in self._dev_index:
                raise RequestError(
                    f"devices.{name}", devs[name], f"unknown device (policy's: {ta.device_names})"
                )
        missing = [d for d in ta.device_names if d not in devs]
        if missing:
            raise RequestError(
                f"devices.{missing[0]}", None, "every device of the policy must be given"
            )
        n, m, j = ta.n_devices, ta.n_aps, ta.n_targets
        has = np.zeros((1, n), dtype=bool)
        app = np.zeros((1, n), dtype=np.int64)
        wait = np.zeros((1, n))
        qlen = np.zeros((1, n), dtype=np.int64)
        backlog = np.zeros((1, n))
        rates = np.zeros((1, n, m))
        charge = np.zeros((1, n))
        debt = np.zeros((1, n))
        foreign: dict[int, str] = {}  # device -> application the policy was not trained on
        for name, d in devs.items():
            i = self._dev_index[name]
            f = f"devices.{name}"
            d = _object(d, f)
            cap = float(ta.battery_j[i])
            _keys(
                d,
                f,
                {"task", "queue_length", "backlog_s", "link_mbps", "charge_j", "energy_debt_j"},
                {"task", "link_mbps", "charge_j"} if cap > 0 else {"task", "link_mbps"},
            )
            if "charge_j" in d:
                if cap <= 0:
                    raise RequestError(
                        f"{f}.charge_j", d["charge_j"], "this device has no battery in the policy"
                    )
                charge[0, i] = _number(d["charge_j"], f"{f}.charge_j")
                if charge[0, i] > cap:
                    raise RequestError(
                        f"{f}.charge_j", d["charge_j"], f"must be <= the capacity {cap:g} J"
                    )
            debt[0, i] = _number(d.get("energy_debt_j", 0.0), f"{f}.energy_debt_j")
            task = d["task"]
            if task is not None:
                task = _object(task, f"{f}.task")
                _keys(task, f"{f}.task", {"app", "waited_s"}, {"app"})
                a = task["app"]
                if not isinstance(a, str) or not a:
                    raise RequestError(f"{f}.task.app", a, "expected an application name")
                w = _number(task.get("waited_s", 0.0), f"{f}.task.waited_s")
                if a in self._app_index:
                    has[0, i], app[0, i], wait[0, i] = True, self._app_index[a], w
                else:
                    foreign[i] = a
            q_default = 1 if task is not None else 0
            qlen[0, i] = _integer(
                d.get("queue_length", q_default), f"{f}.queue_length", 0, ta.queue_capacity
            )
            if task is not None and qlen[0, i] == 0:
                raise RequestError(f"{f}.queue_length", 0, "a device with a task has at least 1")
            backlog[0, i] = _number(d.get("backlog_s", 0.0), f"{f}.backlog_s")
            links = _object(d["link_mbps"], f"{f}.link_mbps")
            for ap, r in links.items():
                if ap not in self._ap_index:
                    raise RequestError(
                        f"{f}.link_mbps.{ap}",
                        r,
                        f"unknown access point (policy's: {ta.access_point_names})",
                    )
                mi = self._ap_index[ap]
                if not ta.reachable[i, mi]:
                    raise RequestError(
                        f"{f}.link_mbps.{ap}", r, "this device has no link to it in the policy"
                    )
                rates[0, i, mi] = _number(r, f"{f}.link_mbps.{ap}")
            for mi, ap in enumerate(ta.access_point_names):
                if ta.reachable[i, mi] and ap not in links:
                    raise RequestError(
                        f"{f}.link_mbps.{ap}",
                        None,
                        "the rate of every link of the device is needed",
                    )
        srv = np.zeros((1, j))
        sb = _object(req.get("server_backlog_s", {}), "server_backlog_s")
        for t, v in sb.items():
            if t not in self._tgt_index:
                raise RequestError(
                    f"server_backlog_s.{t}", v, f"unknown target (policy's: {ta.target_names})"
                )
            srv[0, self._tgt_index[t]] = _number(v, f"server_backlog_s.{t}")
        return {
            "slot": slot,
            "has": has,
            "app": app,
            "wait": wait,
            "qlen": qlen,
            "backlog": backlog,
            "rates": rates,
            "srv": srv,
            "charge": charge,
            "debt": debt,
            "foreign": foreign,
        }

    # -- deciding ----------------------------------------------------------------------
    def observation(self, request: Any) -> np.ndarray:
        """The per-device observations ``[N, D]`` the policy is given for ``request``: the
        environment's own encoder (:func:`~edgesplit.sim.encoding.encode_devices`)."""
        return self._encode(self._parse(request))[0]

    def _encode(self, s: dict[str, Any]) -> np.ndarray:
        ta = self.tables
        t = np.array([min(s["slot"], ta.horizon)])
        return encode_devices(
            ta,
            s["has"],
            s["app"],
            s["wait"],
            s["qlen"],
            s["backlog"],
            s["rates"],
            s["srv"],
            t,
            charge_j=s["charge"],
            debt_j=s["debt"],
        )

    def decide(self, request: Any) -> dict[str, Any]:
        """The decisions for one snapshot (see the module docstring for both formats)."""
        s = self._parse(request)
        ta, pol = self.tables, self.policy
        obs = self._encode(s)
        note = None
        try:
            dec = self._policy_decisions(obs, s)
            source = "policy"
        except Exception as e:  # the policy could not answer: fall back, and say so
            dec, source = None, "neurosurgeon"
            note = f"policy failed ({type(e).__name__}: {e}); Neurosurgeon rule used"
        out = []
        for i, name in enumerate(ta.device_names):
            if i in s["foreign"]:
                out.append(self._foreign(name, i, s["foreign"][i], s))
                continue
            if not s["has"][0, i]:
                out.append({"device": name, "task": False})
                continue
            a = int(s["app"][0, i])
            if dec is None:
                try:
                    sp, tg = _neurosurgeon(self._rule_core(None), i, a, s)
                    entry = self._entry(name, a, sp, tg, 1.0, 1.0, source)
                except Exception as e:  # no cost models to reason with: run it locally
                    last = int(ta.n_valid[a]) - 1
                    entry = self._entry(name, a, last, int(ta.home[i]), 1.0, 1.0, "local")
                    entry["note"] = f"{note}; Neurosurgeon unavailable ({e})"
                    out.append(entry)
                    continue
                entry["note"] = note
            else:
                entry = self._entry(
                    name,
                    a,
                    int(dec.split[0, i]),
                    int(dec.target[0, i]),
                    float(dec.bw_weight[0, i]),
                    float(dec.cpu_weight[0, i]),
                    "policy",
                )
            out.append(entry)
        return {
            "policy": {"algorithm": pol.algorithm, "sha256": pol.sha256},
            "decisions": out,
            "fallback": note,
        }

    def _entry(
        self, dev: str, a: int, split: int, target: int, bw: float, cpu: float, source: str
    ) -> dict[str, Any]:
        ta = self.tables
        # what the simulator applies: a split past the candidates runs all-local, an
        # unreachable target becomes the home edge
        i = self._dev_index[dev]
        last = int(ta.n_valid[a]) - 1
        split = min(split, last)
        if not ta.reachable[i, target]:
            target = int(ta.home[i])
        local = split == last
        return {
            "device": dev,
            "task": True,
            "app": ta.app_names[a],
            "split": ta.candidate_names[a][split],
            "split_index": split,
            "runs_locally": local,
            "target": None if local else ta.target_names[target],
            # where the simulator sends the raw input when the battery cannot pay for the
            # head (its full offload): the policy's target output, even for a local split
            "offload_target": ta.target_names[target],
            "bandwidth_weight": bw,
            "compute_weight": cpu,
            "source": source,
        }

    def _policy_decisions(self, obs: np.ndarray, s: dict[str, Any]) -> Decisions:
        ta, pol = self.tables, self.policy
        has, app = s["has"], s["app"]
        # the environment's masks (used only by policies trained with them)
        masks = action_masks(ta, app, has, pol.action_type, s["charge"]) if pol.uses_mask else None
        if pol.decision_mode == "joint":
            flat = obs.reshape(1, -1)
            act = pol.act(flat, None if masks is None else masks.reshape(1, -1))
            a = act.reshape(1, ta.n_devices, -1)
            return decode(ta, a, pol.action_type, app)
        # sequential: the environment's protocol, one device at a time, each seeing what the
        # earlier ones claimed
        turns = SequentialTurns(ta, has[0], app[0])
        while not turns.done:
            dev = turns.device
            act = pol.act(turns.observation(obs[0])[None], None if masks is None else masks[:, dev])
            a1 = act.reshape((1, 1, *act.shape[1:]))
            turns.record(decode_device(ta, a1, pol.action_type, app[:, dev : dev + 1], dev))
        return turns.decisions

    # -- fallbacks ---------------------------------------------------------------------
    def _rule_core(self, extra_network: str | None) -> Core:
        return _core_cached(self._scenario_key, extra_network)

    def _foreign(self, dev: str, i: int, app: str, s: dict[str, Any]) -> dict[str, Any]:
        """A task of an application the policy was not trained on: Neurosurgeon on tables
        built for it from its shipped profile (looked up by network name; nothing else, so
        that a request can never make the scheduler read a file of its choosing)."""
        from edgesplit.cost_models.network import available_networks

        try:
            if app not in available_networks():
                raise LookupError("no shipped profile of that name")
            core = self._rule_core(app)
        except Exception as e:
            return {
                "device": dev,
                "task": True,
                "app": app,
                "split": None,
                "split_index": None,
                "runs_locally": True,
                "target": None,
                "offload_target": None,
                "bandwidth_weight": 1.0,
                "compute_weight": 1.0,
                "source": "local",
                "note": f"application {app!r} is unknown to the policy and has no shipped "
                f"profile ({type(e).__name__}); run it whole on the device",
            }
        ta = core.tables
        a = ta.app_names.index(app)
        sp, tg = _neurosurgeon(core, i, a, s)
        last = int(ta.n_valid[a]) - 1
        return {
            "device": dev,
            "task": True,
            "app": app,
            "split": ta.candidate_names[a][sp],
            "split_index": sp,
            "runs_locally": sp == last,
            "target": None if sp == last else ta.target_names[tg],
            "offload_target": ta.target_names[tg],
            "bandwidth_weight": 1.0,
            "compute_weight": 1.0,
            "source": "neurosurgeon",
            "note": f"application {app!r} is not one the policy was trained on; "
            "Neurosurgeon rule on its profile",
        }


@lru_cache(maxsize=32)
def _core_cached(scenario_json: str, extra_network: str | None) -> Core:
    """The environment's simulator for the policy's scenario (plus one application, by
    network name), built from the installed cost models on the numpy backend (cached): the
    fallback rule judges requests with the environment's own latency model."""
    d = json.loads(scenario_json)
    if extra_network is not None:
        d["applications"] = [
            *d["applications"],
            {"name": extra_network, "network": extra_network, "deadline_s": 1.0},
        ]
    return Core(load_scenario(d), 1, backend="numpy")


def _neurosurgeon(core: Core, i: int, a: int, s: dict[str, Any]) -> tuple[int, int]:
    """The split and target minimising the cost of device ``i``'s task of app ``a`` alone
    (Neurosurgeon, ASPLOS 2017: blind to the other devices; the objective is the scenario's
    task cost, latency over deadline plus energy and miss terms, as the ``neurosurgeon``
    baseline uses), at the measured rates and reported backlogs of the snapshot ``s``, by the
    environment's model (:meth:`~edgesplit.sim.core.Core.resolve_snapshot`)."""
    ta = core.tables
    opts = [
        (sp, j)
        for sp in range(int(ta.n_valid[a]))
        for j in range(ta.n_targets)
        if ta.reachable[i, j]
    ]
    b, n = len(opts), ta.n_devices
    dec = Decisions.filled((b, n), home=ta.home[None])
    dec.split[:, i] = [o[0] for o in opts]
    dec.target[:, i] = [o[1] for o in opts]
    alone = np.zeros((b, n), dtype=bool)
    alone[:, i] = True
    app = np.zeros((b, n), dtype=np.int64)
    app[:, i] = a

    def rep(x: np.ndarray) -> np.ndarray:
        return np.repeat(x, b, axis=0)

    with np.errstate(divide="ignore"):  # a measured rate of 0: that link is never chosen
        res = core.resolve_snapshot(
            dec,
            alone,
            app,
            rep(s["wait"]),
            rep(s["backlog"]),
            rep(s["srv"]),
            rep(s["rates"]),
            charge_j=rep(s["charge"]),
            debt_j=rep(s["debt"]),
        )
    return opts[int(np.argmin(res.cost[:, i]))]
