"""Device classes: what a device can compute, how fast, and what it draws.

A *device class* stands for one kind of hardware running one software stack (a Raspberry
Pi 4 running ncnn, a T4 running PyTorch, ...). The catalogue
(``edgesplit/cost_models/data/devices.json``, documented in ``docs/devices.md``) gives each
class a source for every number. There are two kinds:

* **measured** classes (``x86_cpu_1t``, and whatever a user profiles with
  ``python -m edgesplit.cost_models.profile``): node latencies are the medians recorded in
  each network profile; a profile without a measurement for the class is an error.
* **modelled** classes (``rpi4``, ``jetson_nano``, ``jetson_orin_nano``, ``edge_t4``,
  ``cloud_a100``): node latencies come from a roofline,

  .. math::

     t_i = \\max\\left(\\frac{F_i}{P\\,\\eta_c}, \\frac{B_i}{W\\,\\eta_m}\\right) + o,
     \\qquad B_i = (\\text{param} + \\text{input} + \\text{output bytes})_i \\cdot s,

  with ``F_i`` the node's FLOPs, ``P`` the peak FLOP rate, ``W`` the memory bandwidth,
  ``eta_c``/``eta_m`` the compute and memory efficiencies, ``o`` a fixed per-node overhead,
  and ``s`` the class's bytes per element over 4 (profiles count float32; a float16 stack
  moves half the bytes). ``eta_c`` and ``o`` are calibrated so that whole-network latencies
  meet published figures (:mod:`edgesplit.cost_models.calibrate`).
* **per-candidate** classes (``x86_cpu_1t_ort``, ``x86_cpu_1t_torch``, and whatever a user
  measures with ``python -m edgesplit.cost_models.profile_candidates``): each kept
  candidate's head and tail timed as whole graphs on the runtime's engine, stored in a
  profile's ``candidate_measurements`` and read with
  :meth:`~edgesplit.cost_models.network.NetworkProfile.candidate_latency`. They have no
  per-node latencies (:func:`node_latency` refuses them). The catalogue entry names the
  ``base`` class the engine ran on and inherits every other field from it (tier,
  precision, peak, bandwidth, powers), each with the base's source; the base also chooses
  which candidates are kept where the class runs heads (``edgesplit.sim.tables``).

>>> cat = load_devices()
>>> "rpi4" in cat and cat["x86_cpu_1t"].kind
'measured'
>>> cat["edge_t4"].tier, cat["jetson_nano"].precision
('edge', 'fp16')
>>> ort = cat["x86_cpu_1t_ort"]
>>> ort.kind, ort.base, ort.p_active_w == cat["x86_cpu_1t"].p_active_w
('per_candidate', 'x86_cpu_1t', True)
"""

from __future__ import annotations

import functools
import json
import math
import re
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from edgesplit.cost_models.errors import FieldError
from edgesplit.cost_models.frozen import FrozenMap

__all__ = [
    "BYTES_PER_ELEMENT",
    "KINDS",
    "METRICS",
    "NUMERIC_FIELDS",
    "ROLES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TIERS",
    "CalibrationPoint",
    "DeviceCatalogue",
    "DeviceClass",
    "DeviceError",
    "candidate_rule_class",
    "default_catalogue_path",
    "load_devices",
    "node_arrays",
    "node_latency",
    "parse_devices",
    "roofline_latency",
]

SCHEMA = "edgesplit.device-catalogue"
"""Value of the catalogue's ``schema`` field."""

SCHEMA_VERSION = 1
"""The catalogue schema version this module reads."""

KINDS = ("measured", "modelled", "per_candidate")
TIERS = ("device", "edge", "cloud")
BYTES_PER_ELEMENT: Mapping[str, float] = MappingProxyType(
    {"fp32": 4.0, "tf32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0}
)
"""Bytes one tensor element occupies under each precision (TF32 is stored as float32)."""

METRICS = ("latency_ms", "throughput_ips")
"""Calibration metrics: batch latency in ms, or images per second at a large batch."""

ROLES = ("fit", "check")
"""A calibration point either enters the fit or is only reported beside it."""

NUMERIC_FIELDS = (
    "peak_flops",
    "mem_bw",
    "compute_eff",
    "memory_eff",
    "node_overhead_s",
    "p_active_w",
    "p_idle_w",
    "p_tx_w",
)
"""Numeric fields of a device class; each needs an entry in ``sources``."""

_CLASS_KEYS = ("kind", "tier", "precision", "description", *NUMERIC_FIELDS, "sources")
_CLASS_OPTIONAL = ("calibration",)
_PER_CANDIDATE_KEYS = ("kind", "base", "description", "sources")  # the rest is the base's
_TOP_KEYS = ("schema", "schema_version", "description", "classes")
_POINT_KEYS = ("network", "batch", "metric", "value", "framework", "precision", "role", "source")
_POINT_OPTIONAL = ("note",)
_SOURCE_KEYS = frozenset((*NUMERIC_FIELDS, "kind", "tier", "precision"))
_NAME = re.compile(r"[a-z][a-z0-9_]*")  # with fullmatch: "rpi4\n" is refused


class DeviceError(FieldError):
    """A device catalogue is malformed, or a device class cannot serve a request.

    Parameters
    ----------
    file
        The catalogue's path (or, for a lookup error, what was looked up).
    field
        Dotted path of the offending field, e.g. ``classes.rpi4.peak_flops``.
    value
        The offending value.
    problem
        What is wrong with it.
    """


@dataclass(frozen=True)
class CalibrationPoint:
    """A published whole-network figure that a device class is calibrated against.

    Attributes
    ----------
    network
        Shipped network name (``resnet50``, ...), as :func:`edgesplit.cost_models.network.
        load_network` knows it.
    batch
        Batch size of the published figure.
    metric
        ``"latency_ms"`` (mean or median latency of one batch, milliseconds) or
        ``"throughput_ips"`` (images per second at that batch; used at large batches, where it
        pins the compute efficiency).
    value
        The published number, in the metric's unit.
    framework
        Runtime and version that produced it (e.g. ``PyTorch (NGC 21.03)``).
    precision
        Arithmetic precision of the published run (``fp32``, ``tf32``, ``fp16``, ...).
    role
        ``"fit"`` (enters the calibration) or ``"check"`` (only reported: another stack or
        setup, shown for context).
    source
        Citation: document, table, commit or URL.
    note
        Anything a reader needs to compare like with like (optional).
    """

    network: str
    batch: int
    metric: str
    value: float
    framework: str
    precision: str
    role: str
    source: str
    note: str = ""

    @property
    def published_ms_per_batch(self) -> float:
        """The figure as milliseconds per batch (throughputs are converted)."""
        if self.metric == "latency_ms":
            return self.value
        return 1e3 * self.batch / self.value


@dataclass(frozen=True)
class DeviceClass:
    """One device class of the catalogue (immutable).

    Attributes
    ----------
    name
        Catalogue key, e.g. ``rpi4``.
    kind
        ``"measured"`` (node latencies from profiles), ``"modelled"`` (roofline) or
        ``"per_candidate"`` (heads and tails timed whole, from profiles'
        ``candidate_measurements``; no node latencies).
    tier
        ``"device"``, ``"edge"`` or ``"cloud"``: where such hardware sits.
    peak_flops
        Peak FLOP rate at :attr:`precision`, FLOP/s.
    mem_bw
        Peak memory bandwidth, bytes/s.
    compute_eff
        Fraction of :attr:`peak_flops` that compute-bound nodes reach, in (0, 1].
    memory_eff
        Fraction of :attr:`mem_bw` that memory-bound nodes reach, in (0, 1].
    node_overhead_s
        Fixed cost added to every node (kernel launch, framework dispatch), seconds.
    p_active_w
        Power drawn while computing, watts.
    p_idle_w
        Power drawn while idle, watts.
    p_tx_w
        Power drawn while the device's radio transmits, watts (0 for wired servers).
    sources
        Field name -> citation, or ``"modelled: how"`` (read-only mapping).
    precision
        Number format of the class's software stack (``fp32``, ``tf32``, ``fp16``, ...);
        it scales the bytes a node moves relative to the profiles' float32 counts.
    description
        What hardware and software stack the class stands for.
    calibration
        Published whole-network figures behind :attr:`compute_eff` and
        :attr:`node_overhead_s`.
    base
        For a per-candidate class, the measured or modelled class whose hardware its engine
        ran on: every field above but ``kind`` and ``description`` is the base's (its
        sources say so), and the simulator keeps the candidates the base keeps. ``""``
        for the other kinds.
    """

    name: str
    kind: str
    tier: str
    peak_flops: float
    mem_bw: float
    compute_eff: float
    memory_eff: float
    node_overhead_s: float
    p_active_w: float
    p_idle_w: float
    p_tx_w: float
    sources: Mapping[str, str]
    precision: str = "fp32"
    description: str = ""
    calibration: tuple[CalibrationPoint, ...] = field(default=(), repr=False)
    base: str = ""

    @property
    def bytes_scale(self) -> float:
        """Bytes moved per float32 byte counted in a profile (``0.5`` for float16)."""
        return BYTES_PER_ELEMENT[self.precision] / 4.0


class DeviceCatalogue(Mapping[str, DeviceClass]):
    """The device classes of a catalogue file, by name (a read-only mapping).

    Parameters
    ----------
    classes
        The classes, in catalogue order.
    path
        The file they were read from.
    description
        The catalogue's own description.
    """

    def __init__(
        self, classes: Sequence[DeviceClass], path: Path | None = None, description: str = ""
    ) -> None:
        self._classes = {c.name: c for c in classes}
        self.path = path
        self.description = description

    def __getitem__(self, name: str) -> DeviceClass:
        try:
            return self._classes[name]
        except KeyError:
            raise KeyError(
                f"no device class {name!r} in {self.path or 'the catalogue'} "
                f"(available: {', '.join(self._classes)})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def names(self) -> list[str]:
        """Class names in catalogue order."""
        return list(self._classes)

    def __repr__(self) -> str:
        return f"DeviceCatalogue({self.names()!r}, path={str(self.path)!r})"


# ----------------------------------------------------------------------------- parsing


class _Checker:
    """Builds :class:`DeviceError` for one file."""

    def __init__(self, file: str | Path) -> None:
        self.file = str(file)

    def fail(self, path: str, value: Any, problem: str) -> DeviceError:
        return DeviceError(self.file, path, value, problem)

    def obj(self, value: Any, path: str, required: Sequence[str], optional: Sequence[str] = ()):
        if not isinstance(value, Mapping):
            raise self.fail(path, value, "expected a JSON object")
        unknown = [k for k in value if k not in required and k not in optional]
        if unknown:
            raise self.fail(
                f"{path}.{unknown[0]}" if path else unknown[0],
                value[unknown[0]],
                f"unknown key (allowed: {', '.join((*required, *optional))})",
            )
        missing = [k for k in required if k not in value]
        if missing:
            raise self.fail(path or "(document)", sorted(value), f"missing key {missing[0]!r}")
        return value

    def string(self, value: Any, path: str, choices: Sequence[str] | None = None) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, value, "expected a non-empty string")
        if choices is not None and value not in choices:
            raise self.fail(path, value, f"expected one of {', '.join(choices)}")
        return value

    def number(
        self, value: Any, path: str, *, low: float = -math.inf, high: float = math.inf,
        low_open: bool = False,
    ) -> float:  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, value, "expected a number")
        x = float(value)
        if not math.isfinite(x):
            raise self.fail(path, value, "expected a finite number")
        if x < low or (low_open and x == low) or x > high:
            lo = "(" if low_open else "["
            raise self.fail(path, value, f"out of range {lo}{low:g}, {high:g}]")
        return x


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_devices(doc: Any, file: str | Path = "<catalogue>") -> DeviceCatalogue:
    """Validate a parsed catalogue document and build the catalogue.

    Parameters
    ----------
    doc
        The JSON document (as :func:`json.load` returns it).
    file
        Name used in error messages.

    Returns
    -------
    DeviceCatalogue

    Raises
    ------
    DeviceError
        Naming the file, the field and the value, on the first problem found.
    """
    ck = _Checker(file)
    ck.obj(doc, "", _TOP_KEYS)
    if doc["schema"] != SCHEMA:
        raise ck.fail("schema", doc["schema"], f"expected {SCHEMA!r}")
    version = doc["schema_version"]
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise ck.fail("schema_version", version, f"this reader understands {SCHEMA_VERSION}")
    description = ck.string(doc["description"], "description")
    raw = doc["classes"]
    if not isinstance(raw, Mapping) or not raw:
        raise ck.fail("classes", raw, "expected a non-empty JSON object of device classes")
    own = {
        name: _parse_class(ck, name, spec)
        for name, spec in raw.items()
        if not (isinstance(spec, Mapping) and spec.get("kind") == "per_candidate")
    }
    classes = [
        own[name] if name in own else _parse_per_candidate(ck, name, spec, own)
        for name, spec in raw.items()
    ]
    path = Path(file) if not str(file).startswith("<") else None
    return DeviceCatalogue(classes, path=path, description=description)


def _parse_class(ck: _Checker, name: Any, spec: Any) -> DeviceClass:
    p = f"classes.{name}"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ck.fail(p, name, "class names are lower-case letters, digits and underscores")
    ck.obj(spec, p, _CLASS_KEYS, _CLASS_OPTIONAL)
    kind = ck.string(spec["kind"], f"{p}.kind", KINDS)
    tier = ck.string(spec["tier"], f"{p}.tier", TIERS)
    precision = ck.string(spec["precision"], f"{p}.precision", tuple(BYTES_PER_ELEMENT))
    description = ck.string(spec["description"], f"{p}.description")
    num = {
        "peak_flops": ck.number(spec["peak_flops"], f"{p}.peak_flops", low=0, low_open=True),
        "mem_bw": ck.number(spec["mem_bw"], f"{p}.mem_bw", low=0, low_open=True),
        "compute_eff": ck.number(
            spec["compute_eff"], f"{p}.compute_eff", low=0, high=1, low_open=True
        ),
        "memory_eff": ck.number(
            spec["memory_eff"], f"{p}.memory_eff", low=0, high=1, low_open=True
        ),
        "node_overhead_s": ck.number(
            spec["node_overhead_s"], f"{p}.node_overhead_s", low=0, high=1.0
        ),
        "p_active_w": ck.number(spec["p_active_w"], f"{p}.p_active_w", low=0),
        "p_idle_w": ck.number(spec["p_idle_w"], f"{p}.p_idle_w", low=0),
        "p_tx_w": ck.number(spec["p_tx_w"], f"{p}.p_tx_w", low=0),
    }
    if num["p_idle_w"] > num["p_active_w"]:
        raise ck.fail(f"{p}.p_idle_w", spec["p_idle_w"], "idle power exceeds active power")
    sources = spec["sources"]
    if not isinstance(sources, Mapping):
        raise ck.fail(f"{p}.sources", sources, "expected a JSON object: field -> citation")
    for key, text in sources.items():
        if key not in _SOURCE_KEYS:
            raise ck.fail(f"{p}.sources.{key}", text, "not a field of a device class")
        ck.string(text, f"{p}.sources.{key}")
    for key in NUMERIC_FIELDS:
        if key not in sources:
            raise ck.fail(f"{p}.sources", sorted(sources), f"no source for {key!r}")
    points = tuple(
        _parse_point(ck, f"{p}.calibration[{i}]", raw)
        for i, raw in enumerate(_list(ck, spec.get("calibration", []), f"{p}.calibration"))
    )
    if kind == "modelled" and not points:
        raise ck.fail(
            f"{p}.calibration", [], "a modelled class needs at least one published figure"
        )
    if not any(pt.role == "fit" for pt in points) and kind == "modelled":
        for key in ("compute_eff", "node_overhead_s"):
            if sources[key].lstrip().lower().startswith("fitted"):
                raise ck.fail(
                    f"{p}.sources.{key}", sources[key],
                    "says 'fitted' but the class has no 'fit' calibration point",
                )  # fmt: skip
    return DeviceClass(
        name=name,
        kind=kind,
        tier=tier,
        sources=FrozenMap(sources),
        precision=precision,
        description=description,
        calibration=points,
        **num,
    )


def _parse_per_candidate(
    ck: _Checker, name: Any, spec: Any, own: Mapping[str, DeviceClass]
) -> DeviceClass:
    """A per-candidate class: its own kind, base, description and source of the kind; every
    other field, with its source, from the base (a measured or modelled class)."""
    p = f"classes.{name}"
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ck.fail(p, name, "class names are lower-case letters, digits and underscores")
    ck.obj(spec, p, _PER_CANDIDATE_KEYS)
    base_name = ck.string(spec["base"], f"{p}.base")
    if base_name not in own:
        raise ck.fail(
            f"{p}.base", base_name,
            "not a measured or modelled class of this catalogue (a per-candidate class "
            f"inherits its powers and speed fields from it; classes: {', '.join(own)})",
        )  # fmt: skip
    description = ck.string(spec["description"], f"{p}.description")
    sources = spec["sources"]
    if not isinstance(sources, Mapping):
        raise ck.fail(f"{p}.sources", sources, "expected a JSON object: field -> citation")
    for key, text in sources.items():
        if key != "kind":
            raise ck.fail(
                f"{p}.sources.{key}", text,
                f"a per-candidate class sources only its 'kind' (how it was measured); "
                f"{key!r} is inherited from its base {base_name!r} with the base's source",
            )  # fmt: skip
        ck.string(text, f"{p}.sources.{key}")
    if "kind" not in sources:
        raise ck.fail(f"{p}.sources", sorted(sources), "no source for 'kind' (how measured)")
    base = own[base_name]
    inherited = {k: f"inherited from {base_name}: {v}" for k, v in base.sources.items()}
    return replace(
        base,
        name=name,
        kind="per_candidate",
        description=description,
        sources=FrozenMap({**inherited, "kind": sources["kind"]}),
        calibration=(),
        base=base_name,
    )


def _list(ck: _Checker, value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ck.fail(path, value, "expected a JSON array")
    return value


def _parse_point(ck: _Checker, p: str, raw: Any) -> CalibrationPoint:
    ck.obj(raw, p, _POINT_KEYS, _POINT_OPTIONAL)
    batch = raw["batch"]
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ck.fail(f"{p}.batch", batch, "expected a positive integer")
    return CalibrationPoint(
        network=ck.string(raw["network"], f"{p}.network"),
        batch=batch,
        metric=ck.string(raw["metric"], f"{p}.metric", METRICS),
        value=ck.number(raw["value"], f"{p}.value", low=0, low_open=True),
        framework=ck.string(raw["framework"], f"{p}.framework"),
        precision=ck.string(raw["precision"], f"{p}.precision", tuple(BYTES_PER_ELEMENT)),
        role=ck.string(raw["role"], f"{p}.role", ROLES),
        source=ck.string(raw["source"], f"{p}.source"),
        note=ck.string(raw["note"], f"{p}.note") if "note" in raw else "",
    )


def default_catalogue_path() -> Path:
    """Path of the shipped catalogue, ``edgesplit/cost_models/data/devices.json``."""
    return Path(str(resources.files("edgesplit.cost_models.data"))) / "devices.json"


def load_devices(path: str | Path | None = None) -> DeviceCatalogue:
    """Load and validate a device catalogue.

    Parameters
    ----------
    path
        A catalogue file; the shipped one when ``None``.

    Returns
    -------
    DeviceCatalogue
        ``catalogue[name]`` -> :class:`DeviceClass`; ``names()``; ``name in catalogue``.
        The same (immutable) object is returned while the file is unchanged.

    Raises
    ------
    DeviceError
        If the file is not valid JSON or breaks the schema (the message names the file, the
        field and the value).
    FileNotFoundError
        If ``path`` does not exist.
    """
    file = default_catalogue_path() if path is None else Path(path).expanduser()
    st = file.stat()
    return _load_cached(str(file), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _load_cached(file: str, mtime_ns: int, size: int) -> DeviceCatalogue:
    del mtime_ns, size  # cache keys only: an edited file is read again
    with open(file, encoding="utf-8") as f:
        text = f.read()
    try:
        doc = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except _DuplicateKey as e:
        raise DeviceError(file, "(document)", e.key, "duplicate key") from e
    except json.JSONDecodeError as e:
        raise DeviceError(file, "(document)", f"line {e.lineno} column {e.colno}", e.msg) from e
    except ValueError as e:
        raise DeviceError(file, "(document)", str(e).split()[0], "not valid JSON") from e
    return parse_devices(doc, Path(file))


def candidate_rule_class(catalogue: DeviceCatalogue, name: str) -> DeviceClass:
    """The class that stands for ``name`` when a network's candidates are kept.

    A per-candidate class has no per-node latencies to compress candidates with; it stands
    as its ``base``, the rule ``profile_candidates`` chose its measured candidates by. Any
    other class stands as itself. The simulator's tables and the runtime's partitioner both
    apply it, so they keep the same candidates.

    >>> cat = load_devices()
    >>> candidate_rule_class(cat, "x86_cpu_1t_ort").name, candidate_rule_class(cat, "rpi4").name
    ('x86_cpu_1t', 'rpi4')
    """
    device = catalogue[name]
    return catalogue[device.base] if device.kind == "per_candidate" else device


# ----------------------------------------------------------------------------- latency


class _NodeLike(Protocol):
    flops: float
    param_bytes: float
    input_bytes: float
    output_bytes: float


class _ProfileLike(Protocol):
    name: str
    nodes: Sequence[_NodeLike]
    measurements: Mapping[str, Any]


_ARRAY_CACHE: weakref.WeakKeyDictionary[Any, tuple[NDArray[np.float64], NDArray[np.float64]]]
_ARRAY_CACHE = weakref.WeakKeyDictionary()


def node_arrays(profile: _ProfileLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-node FLOPs and float32 bytes moved (parameters + inputs + outputs).

    Parameters
    ----------
    profile
        A :class:`~edgesplit.cost_models.network.NetworkProfile` (or any object with
        ``nodes`` carrying ``flops``, ``param_bytes``, ``input_bytes``, ``output_bytes``).

    Returns
    -------
    flops, bytes_fp32
        Read-only float64 arrays in node order.
    """
    try:
        return _ARRAY_CACHE[profile]
    except (KeyError, TypeError):
        pass
    nodes = profile.nodes
    n = len(nodes)
    flops = np.fromiter((nd.flops for nd in nodes), dtype=np.float64, count=n)
    moved = np.fromiter(
        (nd.param_bytes + nd.input_bytes + nd.output_bytes for nd in nodes),
        dtype=np.float64,
        count=n,
    )
    flops.flags.writeable = False
    moved.flags.writeable = False
    try:
        _ARRAY_CACHE[profile] = (flops, moved)
    except TypeError:  # not weak-referenceable: recompute next time
        pass
    return flops, moved


def roofline_latency(profile: _ProfileLike, device: DeviceClass) -> NDArray[np.float64]:
    """Roofline latency of every node on ``device``, ignoring any measurement.

    ``max(flops / (peak_flops * compute_eff), bytes * s / (mem_bw * memory_eff))
    + node_overhead_s``, with ``s = device.bytes_scale``.

    Parameters
    ----------
    profile
        The network profile.
    device
        The device class (its kind is ignored).

    Returns
    -------
    ndarray
        Seconds per node, float64, in node order.
    """
    flops, moved = node_arrays(profile)
    compute = flops / (device.peak_flops * device.compute_eff)
    memory = moved * (device.bytes_scale / (device.mem_bw * device.memory_eff))
    return np.maximum(compute, memory) + device.node_overhead_s


def node_latency(profile: _ProfileLike, device: DeviceClass) -> NDArray[np.float64]:
    """Latency of every node of ``profile`` on ``device``, seconds.

    The measured per-node medians where the profile has a measurement for the class;
    otherwise, for a modelled class, the roofline (:func:`roofline_latency`).

    Parameters
    ----------
    profile
        The network profile.
    device
        The device class.

    Returns
    -------
    ndarray
        Seconds per node, float64, in the profile's node order (a new array).

    Raises
    ------
    DeviceError
        If ``device`` is a measured class and the profile has no measurement for it, or
        ``device`` is measured per candidate (no per-node latencies exist then), whether
        or not the profile holds its measurement (the field names
        ``candidate_measurements.CLASS``).
    """
    measured = profile.measurements.get(device.name)
    if measured is not None:
        return np.array(measured.median_s, dtype=np.float64)
    if device.name in getattr(profile, "candidate_measurements", {}):
        raise DeviceError(
            getattr(profile, "path", None) or profile.name,
            f"candidate_measurements.{device.name}",
            device.name,
            f"class {device.name!r} is measured per candidate (heads and tails as whole "
            "graphs): per-node latencies do not exist for it; read its heads and tails with "
            "NetworkProfile.candidate_latency",
        )
    if device.kind == "per_candidate":
        raise DeviceError(
            getattr(profile, "path", None) or profile.name,
            f"candidate_measurements.{device.name}",
            sorted(getattr(profile, "candidate_measurements", {})),
            f"class {device.name!r} is measured per candidate and profile {profile.name!r} "
            "has no measurement of it (nor are there per-node latencies of such a class); "
            "measure it with `python -m edgesplit.cost_models.profile_candidates "
            f"{profile.name} --engine ENGINE --device-class {device.name} --out FILE`",
        )
    if device.kind == "measured":
        raise DeviceError(
            getattr(profile, "path", None) or profile.name,
            f"measurements.{device.name}",
            sorted(profile.measurements),
            f"profile {profile.name!r} has no measurement for measured device class "
            f"{device.name!r}; profile the network on that hardware with "
            f"`python -m edgesplit.cost_models.profile ... --device-class {device.name}` "
            "or use a modelled class",
        )
    return roofline_latency(profile, device)
