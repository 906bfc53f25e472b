"""Scenarios: typed, validated descriptions of an edge system that fix an environment's spaces.

A scenario is a YAML (or JSON) file, or a plain dict, with the keys below. Every key is
checked: an unknown key, a wrong type or an out-of-range value raises
:class:`ScenarioError` naming the field (as a dotted path) and the value. Shipped scenarios
live in ``edgesplit/sim/scenarios/`` and are found by name (``"default"``, ``"single"``,
``"dense"``, ``"three_tier"``, ``"bursty"``, ``"trace_driven"``, ``"battery"``), so they
work from an installed wheel. A device group may have ``bursts`` (:class:`BurstSpec`) and a
``battery`` (:class:`BatterySpec`: capacity, initial charge, harvesting, an energy budget).

The ``information`` section (:class:`InformationSpec`) says what a scheduler knows when it
decides: by default the link rates each device measured over the last slot and the server
backlogs reported one slot ago, as a real scheduler would (environment v1).

Units are in the field names or comments: seconds (``_s``), hertz (``_hz``), joules
(``_j``), megabits per second (``_mbps``).

Trace-driven links: ``trace_links`` names link classes that replay throughput traces
(``time_s<TAB>Mbps`` files, the Pensieve format) from the directory ``traces`` (absent: the
synthetic traces shipped in the package; a relative path is resolved against the scenario
file's folder, or the working directory for a scenario given as a dict), so that a scenario
can be pointed at measured traces such as the public HSDPA logs. A device's ``links`` name
such a class like any catalogue class (:class:`TraceLinkSpec`; the shipped
``trace_driven`` scenario is an example).

A practitioner's own board and network drop in without touching the package: profile the
network on the board (``python -m edgesplit.cost_models.profile ... --device-class my_board``),
add ``my_board`` to a copy of the device catalogue, and point the scenario at both
(``network: my_net.json`` in an application, ``device_catalogue: my_devices.json``; relative
paths are resolved against the scenario file's folder).

Example
-------
>>> from edgesplit.sim.scenario import load_scenario
>>> sc = load_scenario("single")
>>> sc.name, len(sc.devices), [s.name for s in sc.servers], sc.cloud is None
('single', 1, ['edge0'], True)
>>> load_scenario({"name": "x", "bogus": 1})
Traceback (most recent call last):
...
edgesplit.sim.scenario.ScenarioError: scenario 'x': unknown key 'bogus' (known: ...)
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgesplit.cost_models.links.traces import (
    TraceDirError,
    TraceError,
    cached_trace,
    default_trace_dir,
    trace_files,
)

if TYPE_CHECKING:
    from edgesplit.cost_models.links import LinkClass

__all__ = [
    "PRIVILEGED_INFORMATION",
    "AppSpec",
    "BatterySpec",
    "BurstSpec",
    "CloudSpec",
    "CostSpec",
    "DeviceSpec",
    "InformationSpec",
    "RewardSpec",
    "Scenario",
    "ScenarioError",
    "ServerSpec",
    "TraceLinkSpec",
    "available_scenarios",
    "load_scenario",
]

WIRE_BYTES = {"float32": 4.0, "float16": 2.0, "int8": 1.0}


class ScenarioError(ValueError):
    """A scenario is malformed; the message names the source, the field and the value."""


@dataclass(frozen=True)
class AppSpec:
    """An application: a network and its deadline."""

    name: str
    network: str
    deadline_s: float  # [s] end-to-end latency target of one inference


@dataclass(frozen=True)
class ServerSpec:
    """An edge server, co-located with a wireless access point of the same name."""

    name: str
    device_class: str


@dataclass(frozen=True)
class CloudSpec:
    """The cloud: reached through a device's home access point and a wired backhaul."""

    device_class: str = "cloud_a100"
    backhaul: str = "wired_backhaul"


@dataclass(frozen=True)
class BurstSpec:
    """Bursty arrivals: a two-state Markov-modulated Poisson process (on/off). While a burst
    is on, tasks arrive at ``on_rate_hz``; between bursts at the device's ``arrival_rate_hz``.
    Bursts and the gaps between them last exponentially distributed times of means
    ``mean_on_s`` and ``mean_off_s`` (switching is checked once per slot)."""

    on_rate_hz: float  # [1/s]
    mean_on_s: float  # [s]
    mean_off_s: float  # [s]


@dataclass(frozen=True)
class TraceLinkSpec:
    """A link class that replays throughput traces from the scenario's ``traces`` directory.

    Each link of the class picks one of the class's files at every episode's reset, each
    equally likely, and a start offset, uniform over the trace; it then advances one slot
    per step, wrapping at the trace's end (the catalogue's ``"trace"`` kind, see
    :mod:`edgesplit.cost_models.links`). The picks are drawn from the episode's key, so an
    episode is the same whatever the backend, the batch or the order of the environments.
    To give a group of devices its own traces, define a class per group with its own
    ``files``.

    In a scenario file::

        traces: ../traces            # a directory; absent: the package's synthetic traces
        trace_links:
          commute_3g: {files: ["bus.*", "tram.*"], rtt_s: 0.08, scale: 1.0}
        devices:
          - {name: phone, links: {edge0: commute_3g}, ...}

    Attributes
    ----------
    name : str
        The class name (letters, digits and ``_``; not a name of the link catalogue).
    rtt_s : float
        Round-trip time of the link in seconds (traces record throughput only).
    scale : float
        Factor applied to every rate (e.g. to let 3G traces stand for a faster link).
    files : tuple of str or None
        File names or glob patterns (``*``, ``?``, ``[...]``) inside the directory; a file
        is used when it matches any. ``None``: every trace file of the directory (all its
        files but hidden ones, ``README*`` and ``*.md``).
    paths : tuple of str
        The matching files, absolute, sorted by name (filled in by :func:`load_scenario`).
    """

    name: str
    rtt_s: float  # [s]
    scale: float = 1.0
    files: tuple[str, ...] | None = None
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatterySpec:
    """A battery-powered device: a charge that the energy of its tasks drains, optional
    harvesting, and an optional long-term energy budget.

    Each slot the device's charge drops by the energy its decided task spent (head compute
    and radio transmit, the ``energy_j`` of the step), never below 0, then rises by
    ``harvest_w * slot_s``, never above ``capacity_j``. A head whose compute energy exceeds
    the charge cannot run: such splits are masked (full offload, candidate 0, computes
    nothing on the device and is always feasible). ``initial_charge_j`` is one value or a
    ``[low, high]`` range drawn uniformly at each reset.

    ``budget_w`` (optional) is a long-term average power budget, enforced in the Lyapunov
    style by a virtual energy-deficit queue ``Z <- max(0, Z + energy - budget_w * slot_s)``
    whose level costs ``reward.budget_weight * Z / reward.energy_ref_j`` every slot.
    """

    capacity_j: float  # [J]
    initial_charge_j: tuple[float, float]  # [J] drawn uniformly in [low, high] at reset
    harvest_w: float = 0.0  # [W] recharge while the device runs (0: none)
    budget_w: float | None = None  # [W] long-term average power budget (None: none)


@dataclass(frozen=True)
class DeviceSpec:
    """One end device (groups with ``count`` are expanded to several of these)."""

    name: str
    device_class: str
    home: str  # home edge server / access point
    links: dict[str, str]  # access point (server name) -> link class
    arrival_rate_hz: float  # [1/s] Poisson task arrivals (between bursts, with ``bursts``)
    apps: dict[str, float]  # application name -> relative frequency
    bursts: BurstSpec | None = None  # on/off modulation of the arrival rate
    battery: BatterySpec | None = None  # None: mains-powered (no charge, no budget)


@dataclass(frozen=True)
class RewardSpec:
    """Weights of the per-task cost; reward = -cost.

    cost = latency_weight * latency / deadline + energy_weight * energy / energy_ref_j
           + miss_penalty * [latency > deadline] + infeasible_penalty * [masked choice]
           + budget_weight * Z / energy_ref_j    (devices with an energy budget, see
                                                  :class:`BatterySpec`)
    and every dropped task (queue overflow) costs ``drop_penalty``.
    """

    latency_weight: float = 1.0
    energy_weight: float = 0.1
    energy_ref_j: float = 1.0  # [J]
    miss_penalty: float = 1.0
    drop_penalty: float = 2.0
    infeasible_penalty: float = 1.0
    team_weight: float = 1.0  # PettingZoo: share of the team term in each agent's reward
    budget_weight: float = 0.1  # cost per slot of each energy_ref_j of energy-budget deficit


#: what the scheduler may know of a link's rate and of a server's backlog when it decides
LINK_RATE_INFO = ("measured", "true")
SERVER_BACKLOG_INFO = ("reported", "true")


@dataclass(frozen=True)
class InformationSpec:
    """What a scheduler (the policy, and the baselines that are not privileged) knows when
    it decides a slot.

    ``link_rate``: ``"measured"`` (default), the throughput the device measured on each link
    over its recent past: an exponentially weighted average of the slots' rates, weight
    ``ewma_weight`` on the last slot (1: the last slot's rate, what Neurosurgeon's
    implementations use); ``"true"``, the rate about to apply this slot (privileged: no real
    scheduler knows it; environment v0's model).
    ``server_backlog``: ``"reported"`` (default), the backlog each server reported at the start
    of the previous slot (one slot old); ``"true"``, the backlog now (v0's model).
    """

    link_rate: str = "measured"
    ewma_weight: float = 1.0
    server_backlog: str = "reported"

    @property
    def privileged(self) -> bool:
        """Both quantities are the true current ones (environment v0's information)."""
        return self.link_rate == "true" and self.server_backlog == "true"


PRIVILEGED_INFORMATION = InformationSpec(link_rate="true", server_backlog="true")


@dataclass(frozen=True)
class CostSpec:
    """How profiles become split candidates."""

    max_candidates: int = 8  # split candidates kept per network (both ends always kept)
    wire_dtype: str = "float32"  # precision of intermediate tensors on the wire
    input_compression: float = 1.0  # raw uint8 input bytes are divided by this (e.g. JPEG)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. Build with :func:`load_scenario`."""

    name: str
    description: str
    slot_s: float  # [s] slot length
    horizon: int  # [slots] episode truncation
    queue_capacity: int  # [tasks] pending tasks per device
    weight_levels: tuple[float, ...]  # discrete choices of bandwidth / compute weight
    applications: tuple[AppSpec, ...]
    servers: tuple[ServerSpec, ...]
    cloud: CloudSpec | None
    devices: tuple[DeviceSpec, ...]
    reward: RewardSpec = field(default_factory=RewardSpec)
    costs: CostSpec = field(default_factory=CostSpec)
    information: InformationSpec = field(default_factory=InformationSpec)
    device_catalogue: str | None = None  # path; None: the shipped catalogue
    link_catalogue: str | None = None  # path; None: the shipped catalogue
    traces: str | None = None  # directory of trace files; None: the package's synthetic traces
    trace_links: tuple[TraceLinkSpec, ...] = ()  # link classes replaying those traces
    source: str = "<dict>"

    @property
    def n_devices(self) -> int:
        return len(self.devices)

    @property
    def n_servers(self) -> int:
        return len(self.servers)

    @property
    def n_targets(self) -> int:
        """Edge servers, plus the cloud when there is one (the last target)."""
        return len(self.servers) + (self.cloud is not None)

    @property
    def target_names(self) -> tuple[str, ...]:
        names = tuple(s.name for s in self.servers)
        return (*names, "cloud") if self.cloud is not None else names

    def trace_link_classes(self) -> list[LinkClass]:
        """The link classes of :attr:`trace_links`, built from their files (mean and SD
        measured over them; see :func:`~edgesplit.cost_models.links.trace_link_class`)."""
        from edgesplit.cost_models.links import trace_link_class

        where = self.traces or "the package's synthetic traces"
        out = []
        for t in self.trace_links:
            pats = "every trace file" if t.files is None else ", ".join(t.files)
            out.append(
                trace_link_class(
                    t.name,
                    [Path(f) for f in t.paths],
                    rtt_s=t.rtt_s,
                    scale=t.scale,
                    sources={
                        "rtt_s": f"scenario {self.name!r}: trace_links.{t.name}.rtt_s",
                        "params.scale": f"scenario {self.name!r}: trace_links.{t.name}.scale",
                    },
                    description=f"replay of {pats} in {where} (scenario {self.name!r})",
                )
            )
        return out

    def replace(self, **changes: Any) -> Scenario:
        """A copy with top-level fields changed (validated again)."""
        d = self.to_dict()
        d.update(changes)
        return load_scenario(d)

    def to_dict(self) -> dict[str, Any]:
        """The scenario as plain data (devices expanded), loadable by :func:`load_scenario`."""
        return {
            "name": self.name,
            "description": self.description,
            "slot_s": self.slot_s,
            "horizon": self.horizon,
            "queue_capacity": self.queue_capacity,
            "weight_levels": list(self.weight_levels),
            "applications": [
                {"name": a.name, "network": a.network, "deadline_s": a.deadline_s}
                for a in self.applications
            ],
            "servers": [{"name": s.name, "device_class": s.device_class} for s in self.servers],
            "cloud": None
            if self.cloud is None
            else {"device_class": self.cloud.device_class, "backhaul": self.cloud.backhaul},
            "devices": [
                {
                    "name": d.name,
                    "device_class": d.device_class,
                    "home": d.home,
                    "links": dict(d.links),
                    "arrival_rate_hz": d.arrival_rate_hz,
                    "apps": dict(d.apps),
                    **(
                        {}
                        if d.bursts is None
                        else {
                            "bursts": {f.name: getattr(d.bursts, f.name) for f in fields(BurstSpec)}
                        }
                    ),
                    **({} if d.battery is None else {"battery": _battery_dict(d.battery)}),
                }
                for d in self.devices
            ],
            "reward": {f.name: getattr(self.reward, f.name) for f in fields(RewardSpec)},
            "costs": {f.name: getattr(self.costs, f.name) for f in fields(CostSpec)},
            "information": {
                f.name: getattr(self.information, f.name) for f in fields(InformationSpec)
            },
            "device_catalogue": self.device_catalogue,
            "link_catalogue": self.link_catalogue,
            **({} if self.traces is None else {"traces": self.traces}),
            **(
                {}
                if not self.trace_links
                else {
                    "trace_links": {
                        t.name: {
                            **({} if t.files is None else {"files": list(t.files)}),
                            "rtt_s": t.rtt_s,
                            "scale": t.scale,
                        }
                        for t in self.trace_links
                    }
                }
            ),
        }


def _battery_dict(b: BatterySpec) -> dict[str, Any]:
    lo, hi = b.initial_charge_j
    return {
        "capacity_j": b.capacity_j,
        "initial_charge_j": lo if lo == hi else [lo, hi],
        "harvest_w": b.harvest_w,
        "budget_w": b.budget_w,
    }


# --------------------------------------------------------------------------- validation


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, value: Any, why: str) -> ScenarioError:
        return ScenarioError(f"scenario {self.source}: field '{path}' = {value!r}: {why}")

    def keys(self, d: Any, path: str, required: set[str], optional: set[str]) -> None:
        if not isinstance(d, Mapping):
            raise self.fail(path, d, "expected a mapping")
        for k in d:
            if k not in required | optional:
                where = f"'{path}.{k}'" if path else f"'{k}'"
                known = ", ".join(sorted(required | optional))
                raise ScenarioError(f"scenario {self.source}: unknown key {where} (known: {known})")
        for k in sorted(required):
            if k not in d:
                raise ScenarioError(f"scenario {self.source}: missing key '{_join(path, k)}'")

    def number(
        self,
        v: Any,
        path: str,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        integer: bool = False,
    ) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(path, v, "expected a number")
        if not math.isfinite(v):
            raise self.fail(path, v, "expected a finite number")
        if integer and (not float(v).is_integer()):
            raise self.fail(path, v, "expected an integer")
        if low is not None and (v < low or (low_open and v == low)):
            raise self.fail(path, v, f"must be {'>' if low_open else '>='} {low}")
        if high is not None and v > high:
            raise self.fail(path, v, f"must be <= {high}")
        return int(v) if integer else float(v)

    def nonempty_list(self, v: Any, path: str, what: str = "expected a non-empty list") -> list:
        if not isinstance(v, (list, tuple)) or not v:
            raise self.fail(path, v, what)
        return list(v)

    def string(self, v: Any, path: str) -> str:
        if not isinstance(v, str) or not v:
            raise self.fail(path, v, "expected a non-empty string")
        return v


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _build(raw: Mapping[str, Any], source: str, base: Path | None = None) -> Scenario:
    ck = _Checker(source)
    if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
        nm = raw["name"]
        ck.source = f"'{nm}'" if source == "<dict>" else f"'{nm}' ({source})"
    ck.keys(
        raw,
        "",
        {"name", "applications", "servers", "devices"},
        {
            "description",
            "slot_s",
            "horizon",
            "queue_capacity",
            "weight_levels",
            "cloud",
            "reward",
            "costs",
            "information",
            "device_catalogue",
            "link_catalogue",
            "traces",
            "trace_links",
        },
    )
    name = ck.string(raw["name"], "name")
    desc = raw.get("description", "")
    if not isinstance(desc, str):
        raise ck.fail("description", desc, "expected a string")
    slot_s = ck.number(raw.get("slot_s", 0.1), "slot_s", low=0.0, low_open=True, high=10.0)
    horizon = ck.number(raw.get("horizon", 200), "horizon", low=1, integer=True)
    qcap = ck.number(raw.get("queue_capacity", 4), "queue_capacity", low=1, high=64, integer=True)
    levels_raw = raw.get("weight_levels", [0.25, 0.5, 1.0])
    levels_raw = ck.nonempty_list(levels_raw, "weight_levels")
    levels = tuple(
        ck.number(v, f"weight_levels[{i}]", low=0.0, low_open=True, high=1.0)
        for i, v in enumerate(levels_raw)
    )

    # applications
    apps_raw = ck.nonempty_list(raw["applications"], "applications")
    apps: list[AppSpec] = []
    for i, a in enumerate(apps_raw):
        p = f"applications[{i}]"
        ck.keys(a, p, {"network", "deadline_s"}, {"name"})
        net = ck.string(a["network"], f"{p}.network")
        aname = ck.string(a.get("name", net), f"{p}.name")
        dl = ck.number(a["deadline_s"], f"{p}.deadline_s", low=0.0, low_open=True)
        apps.append(AppSpec(aname, net, dl))
    app_names = [a.name for a in apps]
    if len(set(app_names)) != len(app_names):
        raise ck.fail("applications", app_names, "application names must be unique")

    # servers
    srv_raw = ck.nonempty_list(
        raw["servers"], "servers", "expected a non-empty list of edge servers"
    )
    servers = []
    for i, s in enumerate(srv_raw):
        p = f"servers[{i}]"
        ck.keys(s, p, {"name", "device_class"}, set())
        sname = ck.string(s["name"], f"{p}.name")
        if sname == "cloud":
            raise ck.fail(f"{p}.name", sname, "'cloud' is reserved for the cloud target")
        servers.append(ServerSpec(sname, ck.string(s["device_class"], f"{p}.device_class")))
    snames = [s.name for s in servers]
    if len(set(snames)) != len(snames):
        raise ck.fail("servers", snames, "server names must be unique")

    cloud_raw = raw.get("cloud")
    cloud = None
    if cloud_raw is not None:
        ck.keys(cloud_raw, "cloud", set(), {"device_class", "backhaul"})
        cloud = CloudSpec(
            ck.string(cloud_raw.get("device_class", "cloud_a100"), "cloud.device_class"),
            ck.string(cloud_raw.get("backhaul", "wired_backhaul"), "cloud.backhaul"),
        )

    # devices (groups with count expand to name_0, name_1, ...)
    dev_raw = ck.nonempty_list(raw["devices"], "devices")
    devices: list[DeviceSpec] = []
    for i, d in enumerate(dev_raw):
        p = f"devices[{i}]"
        ck.keys(
            d,
            p,
            {"name", "device_class", "home", "links", "arrival_rate_hz", "apps"},
            {"count", "bursts", "battery"},
        )
        count = ck.number(d.get("count", 1), f"{p}.count", low=1, high=256, integer=True)
        dname = ck.string(d["name"], f"{p}.name")
        dclass = ck.string(d["device_class"], f"{p}.device_class")
        home = ck.string(d["home"], f"{p}.home")
        if home not in snames:
            raise ck.fail(f"{p}.home", home, f"not a server (servers: {snames})")
        links = d["links"]
        if not isinstance(links, Mapping) or not links:
            raise ck.fail(f"{p}.links", links, "expected a mapping server -> link class")
        for ap, lc in links.items():
            if ap not in snames:
                raise ck.fail(f"{p}.links", ap, f"not a server (servers: {snames})")
            ck.string(lc, f"{p}.links.{ap}")
        if home not in links:
            raise ck.fail(f"{p}.links", dict(links), f"no link to the home server {home!r}")
        rate = ck.number(d["arrival_rate_hz"], f"{p}.arrival_rate_hz", low=0.0)
        bursts = None
        if d.get("bursts") is not None:
            b = d["bursts"]
            ck.keys(b, f"{p}.bursts", {f.name for f in fields(BurstSpec)}, set())
            bursts = BurstSpec(
                on_rate_hz=ck.number(b["on_rate_hz"], f"{p}.bursts.on_rate_hz", low=0.0),
                mean_on_s=ck.number(
                    b["mean_on_s"], f"{p}.bursts.mean_on_s", low=0.0, low_open=True
                ),
                mean_off_s=ck.number(
                    b["mean_off_s"], f"{p}.bursts.mean_off_s", low=0.0, low_open=True
                ),
            )
        battery = None
        if d.get("battery") is not None:
            battery = _battery(ck, d["battery"], f"{p}.battery")
        mix = d["apps"]
        if isinstance(mix, (list, tuple)):
            mix = dict.fromkeys(mix, 1.0)
        if not isinstance(mix, Mapping) or not mix:
            raise ck.fail(f"{p}.apps", mix, "expected a mapping application -> weight")
        for an, w in mix.items():
            if an not in app_names:
                raise ck.fail(f"{p}.apps", an, f"not an application (applications: {app_names})")
            ck.number(w, f"{p}.apps.{an}", low=0.0, low_open=True)
        for k in range(count):
            devices.append(
                DeviceSpec(
                    name=f"{dname}_{k}" if count > 1 else dname,
                    device_class=dclass,
                    home=home,
                    links=dict(links),
                    arrival_rate_hz=rate,
                    apps={str(k2): float(v) for k2, v in mix.items()},
                    bursts=bursts,
                    battery=battery,
                )
            )
    dnames = [d.name for d in devices]
    if len(set(dnames)) != len(dnames):
        raise ck.fail("devices", dnames, "device names must be unique")

    # reward and costs
    rew_raw = raw.get("reward", {}) or {}
    known = {f.name for f in fields(RewardSpec)}
    ck.keys(rew_raw, "reward", set(), known)
    rew_vals = {}
    for k, v in rew_raw.items():
        if k == "energy_ref_j":
            rew_vals[k] = ck.number(v, f"reward.{k}", low=0.0, low_open=True)
        elif k == "team_weight":
            rew_vals[k] = ck.number(v, f"reward.{k}", low=0.0, high=1.0)
        else:
            rew_vals[k] = ck.number(v, f"reward.{k}", low=0.0)
    reward = RewardSpec(**rew_vals)

    cost_raw = raw.get("costs", {}) or {}
    ck.keys(cost_raw, "costs", set(), {f.name for f in fields(CostSpec)})
    cvals: dict[str, Any] = {}
    if "max_candidates" in cost_raw:
        cvals["max_candidates"] = ck.number(
            cost_raw["max_candidates"], "costs.max_candidates", low=2, high=64, integer=True
        )
    if "wire_dtype" in cost_raw:
        wd = cost_raw["wire_dtype"]
        if wd not in WIRE_BYTES:
            raise ck.fail("costs.wire_dtype", wd, f"expected one of {sorted(WIRE_BYTES)}")
        cvals["wire_dtype"] = wd
    if "input_compression" in cost_raw:
        cvals["input_compression"] = ck.number(
            cost_raw["input_compression"], "costs.input_compression", low=1.0
        )
    costs = CostSpec(**cvals)

    info_raw = raw.get("information", {}) or {}
    ck.keys(info_raw, "information", set(), {f.name for f in fields(InformationSpec)})
    ivals: dict[str, Any] = {}
    for key, allowed in (("link_rate", LINK_RATE_INFO), ("server_backlog", SERVER_BACKLOG_INFO)):
        if key in info_raw:
            if info_raw[key] not in allowed:
                raise ck.fail(f"information.{key}", info_raw[key], f"expected one of {allowed}")
            ivals[key] = info_raw[key]
    if "ewma_weight" in info_raw:
        ivals["ewma_weight"] = ck.number(
            info_raw["ewma_weight"], "information.ewma_weight", low=0.0, low_open=True, high=1.0
        )
    information = InformationSpec(**ivals)
    if information.link_rate == "true" and information.ewma_weight != 1.0:
        raise ck.fail(
            "information.ewma_weight",
            information.ewma_weight,
            "only measured link rates are averaged (link_rate is 'true')",
        )

    def path_field(key: str) -> str | None:
        v = raw.get(key)
        if v is None:
            return None
        pth = Path(ck.string(v, key))
        if base is not None and not pth.is_absolute():
            pth = base / pth
        if not pth.is_file():
            raise ck.fail(key, v, f"no such file ({pth})")
        return str(pth)

    def network_path(v: str) -> str:
        # a network is a shipped name or a profile path (relative to the scenario file)
        if base is not None and v.endswith(".json") and not Path(v).is_absolute():
            return str(base / v)
        return v

    apps = [AppSpec(a.name, network_path(a.network), a.deadline_s) for a in apps]
    traces_dir, trace_links = _trace_links(ck, raw, base)

    return Scenario(
        name=name,
        description=desc,
        slot_s=slot_s,
        horizon=horizon,
        queue_capacity=qcap,
        weight_levels=levels,
        applications=tuple(apps),
        servers=tuple(servers),
        cloud=cloud,
        devices=tuple(devices),
        reward=reward,
        costs=costs,
        information=information,
        device_catalogue=path_field("device_catalogue"),
        link_catalogue=path_field("link_catalogue"),
        traces=traces_dir,
        trace_links=trace_links,
        source=source,
    )


def _trace_links(
    ck: _Checker, raw: Mapping[str, Any], base: Path | None
) -> tuple[str | None, tuple[TraceLinkSpec, ...]]:
    """The ``traces`` directory (resolved; None when absent) and the ``trace_links``, every
    file they use read and checked."""
    tr_raw = raw.get("traces")
    tl_raw = raw.get("trace_links")
    traces_dir: Path | None = None
    if tr_raw is not None:
        pth = Path(ck.string(tr_raw, "traces"))
        if base is not None and not pth.is_absolute():
            pth = base / pth
        if not pth.is_dir():
            why = "not a directory" if pth.exists() else "no such directory"
            raise ck.fail("traces", tr_raw, f"{why} ({pth})")
        traces_dir = pth.resolve()
        if not tl_raw:
            raise ck.fail(
                "traces", tr_raw, "no trace link uses it (define one under 'trace_links')"
            )
    if tl_raw is None:
        return None, ()
    if not isinstance(tl_raw, Mapping) or not tl_raw:
        raise ck.fail("trace_links", tl_raw, "expected a mapping name -> {rtt_s, files, scale}")
    directory = traces_dir if traces_dir is not None else default_trace_dir()
    shown = tr_raw if tr_raw is not None else f"(absent: {directory})"
    specs = []
    for name, t in tl_raw.items():
        p = f"trace_links.{name}"
        if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
            raise ck.fail("trace_links", name, "class names are letters, digits and '_'")
        ck.keys(t, p, {"rtt_s"}, {"files", "scale"})
        rtt = ck.number(t["rtt_s"], f"{p}.rtt_s", low=0.0)
        scale = ck.number(t.get("scale", 1.0), f"{p}.scale", low=0.0, low_open=True)
        files = t.get("files")
        pats: tuple[str, ...] | None = None
        fields_of: dict[str, str] = {}
        if isinstance(files, str):
            pats = (ck.string(files, f"{p}.files"),)
            fields_of[files] = f"{p}.files"
        elif files is not None:
            lst = ck.nonempty_list(
                files, f"{p}.files", "expected a file name or pattern, or a non-empty list"
            )
            pats = tuple(ck.string(v, f"{p}.files[{i}]") for i, v in enumerate(lst))
            for i, v in enumerate(pats):
                fields_of.setdefault(v, f"{p}.files[{i}]")
        for v in pats or ():
            if "/" in v or "\\" in v:
                raise ck.fail(fields_of[v], v, "a file name or pattern inside 'traces' (no '/')")
        try:
            paths = trace_files(directory, pats)
        except TraceDirError as e:
            if e.pattern is None:
                raise ck.fail("traces", shown, f"{e.problem} ({directory})") from None
            raise ck.fail(fields_of[e.pattern], e.pattern, f"{e.problem} in {directory}") from None
        for f in paths:
            try:
                cached_trace(f)
            except TraceError as e:
                raise ck.fail(
                    "traces",
                    shown,
                    f"malformed trace file {e.path}, line {e.line}: {e.problem}: {e.value!r}",
                ) from None
        specs.append(TraceLinkSpec(name, rtt, scale, pats, tuple(str(f) for f in paths)))
    return (None if traces_dir is None else str(traces_dir)), tuple(specs)


def _battery(ck: _Checker, b: Any, p: str) -> BatterySpec:
    """A device group's ``battery`` section, every value checked."""
    ck.keys(b, p, {"capacity_j"}, {"initial_charge_j", "harvest_w", "budget_w"})
    cap = ck.number(b["capacity_j"], f"{p}.capacity_j", low=0.0, low_open=True)
    init = b.get("initial_charge_j", cap)
    if isinstance(init, (list, tuple)):
        if len(init) != 2:
            raise ck.fail(f"{p}.initial_charge_j", init, "expected a number or [low, high]")
        lo = ck.number(init[0], f"{p}.initial_charge_j[0]", low=0.0, high=cap)
        hi = ck.number(init[1], f"{p}.initial_charge_j[1]", low=lo, high=cap)
    else:
        lo = hi = ck.number(init, f"{p}.initial_charge_j", low=0.0, high=cap)
    harvest = ck.number(b.get("harvest_w", 0.0), f"{p}.harvest_w", low=0.0)
    budget = b.get("budget_w")
    if budget is not None:
        budget = ck.number(budget, f"{p}.budget_w", low=0.0, low_open=True)
    return BatterySpec(cap, (lo, hi), harvest, budget)


def available_scenarios() -> list[str]:
    """Names of the scenarios shipped in the package."""
    root = resources.files("edgesplit.sim.scenarios")
    return sorted(
        p.name.rsplit(".", 1)[0] for p in root.iterdir() if p.name.endswith((".yaml", ".json"))
    )


def _read_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ScenarioError(f"scenario file {path}: invalid JSON: {e}") from e
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ScenarioError(f"scenario file {path}: invalid YAML: {e}") from e


def load_scenario(spec: str | Path | Mapping[str, Any] | Scenario) -> Scenario:
    """Load and validate a scenario from a shipped name, a file path, or a dict.

    Parameters
    ----------
    spec:
        ``"default"`` (or any name in :func:`available_scenarios`), a path to a ``.yaml`` or
        ``.json`` file, a mapping with the scenario's keys, or a :class:`Scenario`.

    Raises
    ------
    ScenarioError
        naming the field and the value, for any unknown key or bad value.
    """
    if isinstance(spec, Scenario):
        return spec
    if isinstance(spec, Mapping):
        return _build(copy.deepcopy(dict(spec)), "<dict>")
    if isinstance(spec, (str, Path)):
        s = str(spec)
        if s in available_scenarios():
            root = resources.files("edgesplit.sim.scenarios")
            for ext in (".yaml", ".json"):
                res = root / f"{s}{ext}"
                if res.is_file():
                    with resources.as_file(res) as p:
                        return _build(_read_file(Path(p)), f"{s}{ext}")
        path = Path(s)
        if path.is_file():
            raw = _read_file(path)
            if not isinstance(raw, Mapping):
                raise ScenarioError(f"scenario file {path}: expected a mapping at the top level")
            return _build(raw, str(path), base=path.resolve().parent)
        raise ScenarioError(
            f"scenario {s!r}: neither a shipped scenario ({available_scenarios()}) nor a file"
        )
    raise ScenarioError(f"scenario: expected a name, a path or a dict, got {type(spec).__name__}")
