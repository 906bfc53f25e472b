"""Network profiles: nodes, split candidates and measured latencies of one network.

A profile is a JSON file (schema ``edgesplit.network-profile``, version 1 or 2; documented
field by field in ``docs/profiles.md``) written by the profiler
(:mod:`edgesplit.cost_models.profile`). It holds the nodes of the network's ``torch.fx``
graph in topological order, every topological-prefix split candidate with the values that
cross its cut, and, per measured device class, each node's latency percentiles with the
provenance of the measurement. Version 2 adds ``candidate_measurements``: classes measured
per candidate, each kept candidate's head and tail timed as whole graphs on a named engine
(:mod:`edgesplit.cost_models.profile_candidates`), read directly by
:meth:`NetworkProfile.candidate_latency` instead of summed node times.

Everything is validated on load; a bad file raises :class:`ProfileError`, whose message
names the file, the field (a JSON path such as ``nodes[3].flops``) and the value.

>>> from edgesplit.cost_models.network import load_network
>>> p = load_network("resnet18")
>>> p.name, p.input_shape, p.candidates[0].kind, p.candidates[-1].kind
('resnet18', (1, 3, 224, 224), 'input', 'output')
>>> head, tail = p.split_latency(p.measurements["x86_cpu_1t"].median_s)
>>> bool(head[0] == 0 and tail[-1] == 0)
True
>>> int(p.candidate_bytes()[0])  # the raw image as uint8
150528
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgesplit.cost_models.errors import FieldError
from edgesplit.cost_models.frozen import FrozenMap

__all__ = [
    "CANDIDATE_ENGINES",
    "CANDIDATE_KINDS",
    "INPUT",
    "PROFILES_PACKAGE",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "Candidate",
    "CandidateLatency",
    "CandidateMeasurement",
    "Measurement",
    "NetworkProfile",
    "Node",
    "ProfileError",
    "available_networks",
    "crossing_values",
    "load_network",
    "parse_profile",
    "schema_version_for",
]

SCHEMA = "edgesplit.network-profile"
"""Value of a profile's top-level ``schema`` field."""
SCHEMA_VERSION = 2
"""The newest schema version this module reads (it reads :data:`SCHEMA_VERSIONS`)."""
SCHEMA_VERSIONS = (1, 2)
"""Versions read: 1 (node measurements only) and 2 (adds ``candidate_measurements``). A
writer writes the lowest version that holds its content (:func:`schema_version_for`)."""
CANDIDATE_ENGINES = ("onnxruntime", "torch")
"""Engines a per-candidate measurement may name (the runtime's engines)."""
INPUT = "input"
"""Name of the network input wherever a node or cut refers to it."""
CANDIDATE_KINDS = ("input", "intermediate", "output")
"""Kinds of split candidate: send the input, an intermediate cut, or the result."""
PROFILES_PACKAGE = "edgesplit.cost_models.profiles"
"""Package holding the shipped profiles, one ``NAME.json`` per network."""

_FLOAT32_BYTES = 4
_CLASS_NAME = re.compile(r"[A-Za-z0-9_.\-]+")  # with fullmatch: "x86\n" is refused


class _Missing:
    def __repr__(self) -> str:
        return "nothing (field missing)"


_MISSING: Any = _Missing()


class ProfileError(FieldError):
    """A network profile is malformed.

    Parameters
    ----------
    file
        The profile's path (or the name asked for).
    field
        JSON path of the offending field, e.g. ``nodes[3].flops``.
    value
        The offending value.
    problem
        What is wrong with it.
    """


@dataclass(frozen=True)
class Node:
    """One node of the network's graph, in topological order.

    Attributes
    ----------
    name
        Unique name (the torch.fx node name, e.g. ``layer1_0_conv1``).
    op
        What it computes: ``conv2d``, ``relu``, ``add``, ``linear``, ...
    inputs
        Names of the producers it reads (``"input"`` for the network input).
    flops
        Floating-point operations (``torch.utils.flop_counter``: 2 x MACs for conv and
        linear layers, 0 for element-wise and pooling operations).
    param_bytes
        Bytes of the parameters and buffers it reads.
    input_bytes
        Bytes of the values it reads, as float32.
    output_bytes
        Bytes of the value it writes, as float32 (``4 * output_numel``).
    output_numel
        Elements of the value it writes.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    flops: int
    param_bytes: int
    input_bytes: int
    output_bytes: int
    output_numel: int


@dataclass(frozen=True)
class Candidate:
    """A split candidate: the first ``n_head`` nodes run on the device, the rest remotely.

    Attributes
    ----------
    index
        Position in the profile's candidate list.
    name
        Last node of the head, ``"input"`` for index 0.
    n_head
        How many nodes (in the profile's topological order) run on the device.
    cut
        Names of every value that crosses the cut (``"input"`` for the network input).
    cut_numel
        Elements sent: the sum of the cut values' sizes.
    kind
        ``"input"`` (send the raw input), ``"intermediate"`` or ``"output"`` (run all
        locally, send the result).
    """

    index: int
    name: str
    n_head: int
    cut: tuple[str, ...]
    cut_numel: int
    kind: str


@dataclass(frozen=True, eq=False)
class Measurement:
    """Measured latencies of every node on one device class.

    Attributes
    ----------
    device_class
        Name of the device class, e.g. ``x86_cpu_1t``.
    median_s, p10_s, p90_s
        Per-node latency percentiles over the profiling rounds, seconds (read-only arrays
        in node order).
    whole_p10_s, whole_p50_s, whole_p90_s
        Whole-network latency percentiles, seconds.
    provenance
        How, where and when it was measured (read-only mapping; see ``docs/profiles.md``).
    """

    device_class: str
    median_s: NDArray[np.float64]
    p10_s: NDArray[np.float64]
    p90_s: NDArray[np.float64]
    whole_p10_s: float
    whole_p50_s: float
    whole_p90_s: float
    provenance: Mapping[str, Any]

    @property
    def sum_over_whole(self) -> float:
        """Summed node medians over the whole-network median (1.0 is a perfect match)."""
        return float(self.median_s.sum() / self.whole_p50_s) if self.whole_p50_s else math.nan

    @property
    def whole_spread(self) -> float:
        """``(p90 - p10) / p50`` of the whole network: the run-to-run spread."""
        if not self.whole_p50_s:
            return math.nan
        return (self.whole_p90_s - self.whole_p10_s) / self.whole_p50_s


@dataclass(frozen=True, eq=False)
class CandidateMeasurement:
    """Head and tail of some candidates timed as whole graphs on one engine (schema 2).

    A per-candidate class has no per-node latencies: an engine such as onnxruntime fuses
    nodes (convolution, batch norm and ReLU become one kernel), and a head run as one graph
    costs what it costs, not the sum of its nodes run alone.

    Attributes
    ----------
    device_class
        Name of the class, e.g. ``x86_cpu_1t_ort``.
    engine
        The engine that ran them (one of :data:`CANDIDATE_ENGINES`).
    indices
        Profile candidate indices measured, strictly increasing.
    head_median_s, head_p10_s, head_p90_s
        Head latency percentiles per listed candidate, seconds (0 for candidate 0, which
        has no head).
    tail_median_s, tail_p10_s, tail_p90_s
        Tail latency percentiles per listed candidate, seconds (0 for the last candidate,
        which has no tail).
    provenance
        How, where and when it was measured (read-only mapping; see ``docs/profiles.md``).
    head_cpu_median_s, tail_cpu_median_s
        Optional: median thread CPU time of the same heads and tails (what they cost
        without the time a shared machine's other work held the core), seconds, or
        ``None``.
    """

    device_class: str
    engine: str
    indices: tuple[int, ...]
    head_median_s: NDArray[np.float64]
    head_p10_s: NDArray[np.float64]
    head_p90_s: NDArray[np.float64]
    tail_median_s: NDArray[np.float64]
    tail_p10_s: NDArray[np.float64]
    tail_p90_s: NDArray[np.float64]
    provenance: Mapping[str, Any]
    head_cpu_median_s: NDArray[np.float64] | None = None
    tail_cpu_median_s: NDArray[np.float64] | None = None


@dataclass(frozen=True, eq=False)
class CandidateLatency:
    """Head and tail seconds of the candidates one class covers
    (:meth:`NetworkProfile.candidate_latency`).

    Attributes
    ----------
    device_class
        The class.
    indices
        Candidate indices covered: every candidate for a per-node class, the measured ones
        for a per-candidate class.
    head_s, tail_s
        Seconds, one entry per index.
    per_candidate
        ``True`` when read directly from a per-candidate measurement, ``False`` when summed
        from per-node medians.
    engine
        The engine the class measured (``"torch"`` for per-node classes: the profiler runs
        torch eager).
    """

    device_class: str
    indices: tuple[int, ...]
    head_s: NDArray[np.float64]
    tail_s: NDArray[np.float64]
    per_candidate: bool
    engine: str

    def at(self, index: int) -> tuple[float, float]:
        """``(head_s, tail_s)`` of candidate ``index``; ``KeyError`` naming it if uncovered."""
        try:
            j = self.indices.index(index)
        except ValueError:
            raise KeyError(
                f"candidate {index} is not measured in class {self.device_class!r} "
                f"(measured: {list(self.indices)})"
            ) from None
        return float(self.head_s[j]), float(self.tail_s[j])


@dataclass(frozen=True, eq=False)
class NetworkProfile:
    """A network's graph, split candidates and measurements (see the module docstring).

    Attributes
    ----------
    name
        Network name, e.g. ``resnet18``.
    input_shape
        Shape of the profiled input, batch included.
    input_numel, output_numel
        Elements of the input and of the result.
    macs
        Multiply-accumulates of one inference (half the summed node FLOPs).
    params
        Number of parameters.
    nodes
        Nodes in topological order.
    candidates
        Split candidates, by increasing ``n_head``; the first sends the input, the last the
        result.
    measurements
        Device class name -> :class:`Measurement` (read-only mapping).
    candidate_measurements
        Device class name -> :class:`CandidateMeasurement` (read-only mapping; empty in a
        version 1 file). A class is in at most one of the two mappings.
    source
        Where the network came from (e.g. ``edgesplit.cost_models.zoo:resnet18``).
    path
        File it was loaded from, if any.
    """

    name: str
    input_shape: tuple[int, ...]
    input_numel: int
    output_numel: int
    macs: int
    params: int
    nodes: tuple[Node, ...]
    candidates: tuple[Candidate, ...]
    measurements: Mapping[str, Measurement]
    source: str = ""
    path: Path | None = field(default=None, repr=False)
    candidate_measurements: Mapping[str, CandidateMeasurement] = field(
        default_factory=lambda: FrozenMap({})
    )

    def candidate_latency(self, device_class: str) -> CandidateLatency:
        """Head and tail seconds of every candidate ``device_class`` covers.

        A per-candidate class (``candidate_measurements``) gives its measured candidates'
        heads and tails as they were timed, whole; a per-node class (``measurements``) gives
        every candidate, head and tail summed from node medians (:meth:`split_latency`).

        Raises
        ------
        ProfileError
            If the profile has no measurement of that class (naming the classes it has).

        >>> p = load_network("resnet18")
        >>> lat = p.candidate_latency("x86_cpu_1t")
        >>> lat.per_candidate, len(lat.indices) == len(p.candidates), lat.at(0)[0]
        (False, True, 0.0)
        """
        pc = self.candidate_measurements.get(device_class)
        if pc is not None:
            return CandidateLatency(device_class, pc.indices, pc.head_median_s,
                                    pc.tail_median_s, True, pc.engine)  # fmt: skip
        m = self.measurements.get(device_class)
        if m is None:
            raise ProfileError(
                self.path or self.name,
                f"measurements.{device_class}",
                _MISSING,
                f"profile {self.name!r} has no measurement of class {device_class!r} (per "
                f"node: {sorted(self.measurements)}; per candidate: "
                f"{sorted(self.candidate_measurements)})",
            )
        head, tail = self.split_latency(m.median_s)
        for a in (head, tail):
            a.setflags(write=False)
        return CandidateLatency(device_class, tuple(range(len(self.candidates))), head, tail,
                                False, "torch")  # fmt: skip

    def split_latency(
        self, node_latency_s: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Head and tail latency of every candidate.

        Parameters
        ----------
        node_latency_s
            Latency of each node, seconds, shape ``(..., len(nodes))`` (leading axes, e.g.
            device classes, broadcast).

        Returns
        -------
        head_s, tail_s
            Arrays of shape ``(..., len(candidates))``: the summed latency of the nodes
            before and after each cut. ``head_s[..., 0] == 0``, ``tail_s[..., -1] == 0`` and
            ``head_s + tail_s`` equals the summed node latency (up to rounding).

        Raises
        ------
        ValueError
            If the last axis does not have one entry per node.
        """
        lat = np.asarray(node_latency_s, dtype=np.float64)
        if lat.ndim == 0 or lat.shape[-1] != len(self.nodes):
            raise ValueError(
                f"{self.name}: node_latency_s must have {len(self.nodes)} entries on its last "
                f"axis, got shape {lat.shape}"
            )
        zeros = np.zeros((*lat.shape[:-1], 1))
        cumulative = np.concatenate([zeros, np.cumsum(lat, axis=-1)], axis=-1)
        n_head = np.fromiter((c.n_head for c in self.candidates), dtype=np.intp)
        head = cumulative[..., n_head]
        tail = cumulative[..., -1:] - head
        return head, tail

    def candidate_bytes(
        self,
        wire_bytes_per_element: float = 4.0,
        input_bytes_per_element: float = 1.0,
        input_compression: float = 1.0,
    ) -> NDArray[np.float64]:
        """Bytes sent for each candidate, counted as they would travel.

        Parameters
        ----------
        wire_bytes_per_element
            Precision of an intermediate cut on the wire: 4 (float32), 2 (float16), 1 (int8).
        input_bytes_per_element
            Precision of the raw input: 1 for a camera image as uint8.
        input_compression
            Compression ratio of the raw input (e.g. 10 for a JPEG at 10:1); 1 sends it raw.

        Returns
        -------
        ndarray
            One value per candidate: the input (``input_numel * input_bytes_per_element /
            input_compression``), an intermediate cut at wire precision, the result as
            float32.

        Raises
        ------
        ValueError
            If an argument is not a positive finite number.
        """
        for arg, value in (
            ("wire_bytes_per_element", wire_bytes_per_element),
            ("input_bytes_per_element", input_bytes_per_element),
            ("input_compression", input_compression),
        ):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{arg} must be a positive finite number, got {value!r}")
        out = np.empty(len(self.candidates))
        for i, c in enumerate(self.candidates):
            if c.kind == "input":
                out[i] = c.cut_numel * input_bytes_per_element / input_compression
            elif c.kind == "output":
                out[i] = c.cut_numel * _FLOAT32_BYTES
            else:
                out[i] = c.cut_numel * wire_bytes_per_element
        return out


# ----------------------------------------------------------------------------- validation


class _Checker:
    """Field-by-field validation that names the file, the JSON path and the value."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, path: str, value: Any, problem: str) -> ProfileError:
        return ProfileError(self.file, path, value, problem)

    def obj(
        self,
        value: Any,
        path: str,
        required: Sequence[str],
        optional: Sequence[str] = (),
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path or "(document)", value, "must be a JSON object")
        allowed = (*required, *optional)
        for key in value:
            if key not in allowed:
                raise self.fail(
                    _join(path, key), value[key], f"unknown key (allowed: {', '.join(allowed)})"
                )
        for key in required:
            if key not in value:
                raise self.fail(_join(path, key), _MISSING, "required field is missing")
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, value, "must be a non-empty string")
        return value

    def integer(self, value: Any, path: str, minimum: int = 0) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(path, value, "must be an integer")
        if value < minimum:
            raise self.fail(path, value, f"must be >= {minimum}")
        return value

    def number(self, value: Any, path: str, positive: bool = False) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise self.fail(path, value, "must be a number")
        if not math.isfinite(value):
            raise self.fail(path, value, "must be finite")
        if value < 0 or (positive and value == 0):
            raise self.fail(path, value, "must be > 0" if positive else "must be >= 0")
        return float(value)

    def array(self, value: Any, path: str, length: int) -> NDArray[np.float64]:
        if not isinstance(value, list):
            raise self.fail(path, value, "must be a list of numbers")
        if len(value) != length:
            raise self.fail(
                path, f"{len(value)} entries", f"must have one entry per node ({length})"
            )
        arr = np.array([self.number(v, f"{path}[{i}]") for i, v in enumerate(value)])
        arr.setflags(write=False)
        return arr


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return FrozenMap({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


_TOP_KEYS = (
    "schema", "schema_version", "name", "source", "input_shape", "macs", "params", "nodes",
    "candidates", "measurements",
)  # fmt: skip
_TOP_OPTIONAL = ("candidate_measurements",)  # schema 2
_CANDIDATE_MEASUREMENT_KEYS = (
    "engine", "candidates", "head_median_s", "head_p10_s", "head_p90_s", "tail_median_s",
    "tail_p10_s", "tail_p90_s", "provenance",
)  # fmt: skip
_CANDIDATE_MEASUREMENT_OPTIONAL = ("head_cpu_median_s", "tail_cpu_median_s")
_CANDIDATE_PROVENANCE_KEYS = (
    "tool", "model", "hardware", "software", "date", "threads", "warmup", "rounds",
)  # fmt: skip
_CANDIDATE_PROVENANCE_OPTIONAL = ("load_average_1m", "notes", "engine_options")
_NODE_KEYS = (
    "name", "op", "inputs", "flops", "param_bytes", "input_bytes", "output_bytes",
    "output_numel",
)  # fmt: skip
_CANDIDATE_KEYS = ("index", "name", "n_head", "cut", "cut_numel", "kind")
_MEASUREMENT_KEYS = (
    "median_s", "p10_s", "p90_s", "whole_p10_s", "whole_p50_s", "whole_p90_s", "provenance",
)  # fmt: skip
_PROVENANCE_KEYS = (
    "tool", "model", "hardware", "software", "date", "threads", "warmup", "rounds",
    "sum_over_whole", "whole_spread",
)  # fmt: skip
_PROVENANCE_OPTIONAL = ("load_average_1m", "notes")
_HARDWARE_KEYS = ("cpu", "machine", "logical_cpus")
_HARDWARE_OPTIONAL = ("os", "accelerator")


def parse_profile(doc: Any, file: str | Path = "<profile>") -> NetworkProfile:
    """Validate a decoded profile document and build the :class:`NetworkProfile`.

    Parameters
    ----------
    doc
        The decoded JSON document.
    file
        Name used in error messages (the file it came from).

    Returns
    -------
    NetworkProfile

    Raises
    ------
    ProfileError
        On the first field that breaks the schema, naming the file, field and value.
    """
    ck = _Checker(str(file))
    top = ck.obj(doc, "", _TOP_KEYS, _TOP_OPTIONAL)
    if top["schema"] != SCHEMA:
        raise ck.fail("schema", top["schema"], f"must be {SCHEMA!r}")
    version = top["schema_version"]
    if isinstance(version, bool) or version not in SCHEMA_VERSIONS:
        raise ck.fail(
            "schema_version",
            version,
            f"unsupported version (this reader reads {', '.join(map(str, SCHEMA_VERSIONS))})",
        )
    if "candidate_measurements" in top and version < 2:
        raise ck.fail(
            "candidate_measurements",
            sorted(top["candidate_measurements"])
            if isinstance(top["candidate_measurements"], dict)
            else top["candidate_measurements"],
            "needs schema_version 2 (this file says 1)",
        )
    name = ck.string(top["name"], "name")
    source = ck.string(top["source"], "source")

    shape = top["input_shape"]
    if not isinstance(shape, list) or not shape:
        raise ck.fail("input_shape", shape, "must be a non-empty list of positive integers")
    input_shape = tuple(ck.integer(s, f"input_shape[{i}]", 1) for i, s in enumerate(shape))
    input_numel = math.prod(input_shape)

    nodes = _parse_nodes(ck, top["nodes"], input_numel)
    macs = ck.integer(top["macs"], "macs")
    expected_macs = sum(n.flops for n in nodes) // 2
    if macs != expected_macs:
        raise ck.fail("macs", macs, f"must be half the summed node flops ({expected_macs})")
    params = ck.integer(top["params"], "params")
    candidates = _parse_candidates(ck, top["candidates"], nodes, input_numel)
    measurements = _parse_measurements(ck, top["measurements"], len(nodes))
    per_candidate = _parse_candidate_measurements(
        ck, top.get("candidate_measurements", {}), candidates, measurements
    )
    return NetworkProfile(
        name=name,
        input_shape=input_shape,
        input_numel=input_numel,
        output_numel=candidates[-1].cut_numel,
        macs=macs,
        params=params,
        nodes=nodes,
        candidates=candidates,
        measurements=measurements,
        source=source,
        path=Path(file) if isinstance(file, Path) else None,
        candidate_measurements=per_candidate,
    )


def schema_version_for(doc: Mapping[str, Any]) -> int:
    """The lowest schema version that holds ``doc``'s content: 2 with
    ``candidate_measurements``, else 1 (so node-only profiles stay readable by version-1
    readers).

    >>> schema_version_for({"measurements": {}}), schema_version_for({"candidate_measurements": {}})
    (1, 2)
    """
    return 2 if "candidate_measurements" in doc else 1


def _parse_nodes(ck: _Checker, raw: Any, input_numel: int) -> tuple[Node, ...]:
    if not isinstance(raw, list) or not raw:
        raise ck.fail("nodes", raw, "must be a non-empty list of node objects")
    numel: dict[str, int] = {INPUT: input_numel}
    nodes: list[Node] = []
    for i, item in enumerate(raw):
        p = f"nodes[{i}]"
        d = ck.obj(item, p, _NODE_KEYS)
        name = ck.string(d["name"], f"{p}.name")
        if name in numel:
            problem = "is reserved for the network input" if name == INPUT else "is a duplicate"
            raise ck.fail(f"{p}.name", name, f"node name {problem}")
        op = ck.string(d["op"], f"{p}.op")
        inputs = d["inputs"]
        if not isinstance(inputs, list):
            raise ck.fail(f"{p}.inputs", inputs, "must be a list of producer names")
        for j, src in enumerate(inputs):
            if not isinstance(src, str) or src not in numel:
                raise ck.fail(
                    f"{p}.inputs[{j}]",
                    src,
                    "must name the input or an earlier node (nodes are in topological order)",
                )
            if src in inputs[:j]:
                raise ck.fail(f"{p}.inputs[{j}]", src, "is listed twice")
        flops = ck.integer(d["flops"], f"{p}.flops")
        param_bytes = ck.integer(d["param_bytes"], f"{p}.param_bytes")
        input_bytes = ck.integer(d["input_bytes"], f"{p}.input_bytes")
        output_bytes = ck.integer(d["output_bytes"], f"{p}.output_bytes")
        output_numel = ck.integer(d["output_numel"], f"{p}.output_numel")
        expected_in = _FLOAT32_BYTES * sum(numel[s] for s in inputs)
        if input_bytes != expected_in:
            raise ck.fail(
                f"{p}.input_bytes", input_bytes, f"must be 4 x its inputs' elements ({expected_in})"
            )
        if output_bytes != _FLOAT32_BYTES * output_numel:
            raise ck.fail(
                f"{p}.output_bytes",
                output_bytes,
                f"must be 4 x output_numel ({_FLOAT32_BYTES * output_numel})",
            )
        numel[name] = output_numel
        nodes.append(
            Node(name, op, tuple(inputs), flops, param_bytes, input_bytes, output_bytes,
                 output_numel)
        )  # fmt: skip
    return tuple(nodes)


def _parse_candidates(
    ck: _Checker, raw: Any, nodes: tuple[Node, ...], input_numel: int
) -> tuple[Candidate, ...]:
    # deferred: graph imports this module for Node and Candidate

    n = len(nodes)
    if not isinstance(raw, list) or len(raw) < 2:
        raise ck.fail("candidates", raw, "must be a list of at least two candidate objects")
    numel = {INPUT: input_numel, **{nd.name: nd.output_numel for nd in nodes}}
    parsed: list[Candidate] = []
    previous = -1
    for i, item in enumerate(raw):
        p = f"candidates[{i}]"
        d = ck.obj(item, p, _CANDIDATE_KEYS)
        index = ck.integer(d["index"], f"{p}.index")
        if index != i:
            raise ck.fail(f"{p}.index", index, f"must equal the position in the list ({i})")
        n_head = ck.integer(d["n_head"], f"{p}.n_head")
        first, last = i == 0, i == len(raw) - 1
        if first and n_head != 0:
            raise ck.fail(f"{p}.n_head", n_head, "the first candidate must have n_head 0")
        if last and n_head != n:
            raise ck.fail(f"{p}.n_head", n_head, f"the last candidate must have n_head {n}")
        if n_head <= previous or n_head > n:
            raise ck.fail(
                f"{p}.n_head", n_head, f"must increase strictly, from 0 to len(nodes) ({n})"
            )
        previous = n_head
        kind = d["kind"]
        expected_kind = "input" if first else ("output" if last else "intermediate")
        if kind != expected_kind:
            raise ck.fail(f"{p}.kind", kind, f"must be {expected_kind!r} at this position")
        name = ck.string(d["name"], f"{p}.name")
        expected_name = INPUT if n_head == 0 else nodes[n_head - 1].name
        if name != expected_name:
            raise ck.fail(f"{p}.name", name, f"must name the last head node ({expected_name!r})")
        cut = d["cut"]
        if not isinstance(cut, list) or not cut:
            raise ck.fail(f"{p}.cut", cut, "must be a non-empty list of value names")
        for j, v in enumerate(cut):
            if not isinstance(v, str) or v not in numel:
                raise ck.fail(f"{p}.cut[{j}]", v, "must name the input or a node")
            if v in cut[:j]:
                raise ck.fail(f"{p}.cut[{j}]", v, "is listed twice")
        cut_numel = ck.integer(d["cut_numel"], f"{p}.cut_numel")
        expected_numel = sum(numel[v] for v in cut)
        if cut_numel != expected_numel:
            raise ck.fail(
                f"{p}.cut_numel", cut_numel, f"must be the cut values' elements ({expected_numel})"
            )
        parsed.append(Candidate(index, name, n_head, tuple(cut), cut_numel, kind))

    # every cut must be exactly the values crossing it, given the graph and the result
    crossing = crossing_values(nodes, parsed[-1].cut)
    for c in parsed[:-1]:
        expected = crossing[c.n_head]
        if set(c.cut) != set(expected):
            raise ck.fail(
                f"candidates[{c.index}].cut",
                list(c.cut),
                f"must be the values crossing the cut after {c.n_head} nodes ({expected})",
            )
    return tuple(parsed)


def _parse_measurements(ck: _Checker, raw: Any, n_nodes: int) -> Mapping[str, Measurement]:
    if not isinstance(raw, dict):
        raise ck.fail("measurements", raw, "must be an object: device class -> measurement")
    out: dict[str, Measurement] = {}
    for cls, item in raw.items():
        p = f"measurements.{cls}"
        if not _CLASS_NAME.fullmatch(cls):
            raise ck.fail(p, cls, "device class names use letters, digits, '_', '.', '-'")
        d = ck.obj(item, p, _MEASUREMENT_KEYS)
        median = ck.array(d["median_s"], f"{p}.median_s", n_nodes)
        p10 = ck.array(d["p10_s"], f"{p}.p10_s", n_nodes)
        p90 = ck.array(d["p90_s"], f"{p}.p90_s", n_nodes)
        for lo_name, lo, hi_name, hi in (("p10_s", p10, "median_s", median),
                                         ("median_s", median, "p90_s", p90)):  # fmt: skip
            bad = np.flatnonzero(lo > hi)
            if bad.size:
                j = int(bad[0])
                raise ck.fail(
                    f"{p}.{lo_name}[{j}]", float(lo[j]), f"must not exceed {hi_name}[{j}] ({hi[j]})"
                )
        w10 = ck.number(d["whole_p10_s"], f"{p}.whole_p10_s")
        w50 = ck.number(d["whole_p50_s"], f"{p}.whole_p50_s", positive=True)
        w90 = ck.number(d["whole_p90_s"], f"{p}.whole_p90_s")
        if w10 > w50:
            raise ck.fail(f"{p}.whole_p10_s", w10, f"must not exceed whole_p50_s ({w50})")
        if w50 > w90:
            raise ck.fail(f"{p}.whole_p90_s", w90, f"must not be below whole_p50_s ({w50})")
        prov = _parse_provenance(ck, d["provenance"], f"{p}.provenance")
        m = Measurement(cls, median, p10, p90, w10, w50, w90, _freeze(prov))
        for key, actual in (("sum_over_whole", m.sum_over_whole),
                            ("whole_spread", m.whole_spread)):  # fmt: skip
            recorded = prov[key]
            if not math.isclose(recorded, actual, rel_tol=0.01, abs_tol=1e-3):
                raise ck.fail(
                    f"{p}.provenance.{key}",
                    recorded,
                    f"does not match the measurement ({actual:.4g})",
                )
        out[cls] = m
    return FrozenMap(out)


def _parse_candidate_measurements(
    ck: _Checker,
    raw: Any,
    candidates: tuple[Candidate, ...],
    node_classes: Mapping[str, Measurement],
) -> Mapping[str, CandidateMeasurement]:
    if not isinstance(raw, dict):
        raise ck.fail(
            "candidate_measurements", raw, "must be an object: device class -> measurement"
        )
    last = len(candidates) - 1
    out: dict[str, CandidateMeasurement] = {}
    for cls, item in raw.items():
        p = f"candidate_measurements.{cls}"
        if not _CLASS_NAME.fullmatch(cls):
            raise ck.fail(p, cls, "device class names use letters, digits, '_', '.', '-'")
        if cls in node_classes:
            raise ck.fail(
                p, cls, "is also measured per node (measurements): a class is one or the other"
            )
        d = ck.obj(item, p, _CANDIDATE_MEASUREMENT_KEYS, _CANDIDATE_MEASUREMENT_OPTIONAL)
        if ("head_cpu_median_s" in d) != ("tail_cpu_median_s" in d):
            key = "tail_cpu_median_s" if "head_cpu_median_s" in d else "head_cpu_median_s"
            raise ck.fail(f"{p}.{key}", _MISSING, "head and tail CPU medians come together")
        engine = d["engine"]
        if engine not in CANDIDATE_ENGINES:
            raise ck.fail(f"{p}.engine", engine, f"must be one of {list(CANDIDATE_ENGINES)}")
        idx = d["candidates"]
        if not isinstance(idx, list) or not idx:
            raise ck.fail(f"{p}.candidates", idx, "must be a non-empty list of candidate indices")
        previous = -1
        for j, k in enumerate(idx):
            ck.integer(k, f"{p}.candidates[{j}]")
            if k > last:
                raise ck.fail(f"{p}.candidates[{j}]", k, f"no such candidate (0..{last})")
            if k <= previous:
                raise ck.fail(f"{p}.candidates[{j}]", k, "indices must increase strictly")
            previous = k
        arrays = {}
        for key in (*_CANDIDATE_MEASUREMENT_KEYS[2:8], *_CANDIDATE_MEASUREMENT_OPTIONAL):
            if key not in d:
                continue
            raw_arr = d[key]
            if not isinstance(raw_arr, list):
                raise ck.fail(f"{p}.{key}", raw_arr, "must be a list of numbers")
            if len(raw_arr) != len(idx):
                raise ck.fail(
                    f"{p}.{key}",
                    f"{len(raw_arr)} entries",
                    f"must have one entry per listed candidate ({len(idx)})",
                )
            arr = np.array([ck.number(v, f"{p}.{key}[{j}]") for j, v in enumerate(raw_arr)])
            arr.setflags(write=False)
            arrays[key] = arr
        for part in ("head", "tail"):
            lo, mid, hi = (arrays[f"{part}_{q}_s"] for q in ("p10", "median", "p90"))
            pairs = (
                (f"{part}_p10_s", lo, f"{part}_median_s", mid),
                (f"{part}_median_s", mid, f"{part}_p90_s", hi),
            )
            for lo_name, a, hi_name, b in pairs:
                bad = np.flatnonzero(a > b)
                if bad.size:
                    j = int(bad[0])
                    raise ck.fail(
                        f"{p}.{lo_name}[{j}]",
                        float(a[j]),
                        f"must not exceed {hi_name}[{j}] ({b[j]})",
                    )
        for j, k in enumerate(idx):
            for part, has_none in (("head", k == 0), ("tail", k == last)):
                med = float(arrays[f"{part}_median_s"][j])
                if has_none and med != 0:
                    raise ck.fail(
                        f"{p}.{part}_median_s[{j}]",
                        med,
                        f"candidate {k} has no {part}: must be 0",
                    )
                if not has_none and med <= 0:
                    raise ck.fail(f"{p}.{part}_median_s[{j}]", med, "must be > 0")
                cpu = arrays.get(f"{part}_cpu_median_s")
                if has_none and cpu is not None and cpu[j] != 0:
                    raise ck.fail(
                        f"{p}.{part}_cpu_median_s[{j}]",
                        float(cpu[j]),
                        f"candidate {k} has no {part}: must be 0",
                    )
        prov = ck.obj(d["provenance"], f"{p}.provenance", _CANDIDATE_PROVENANCE_KEYS,
                      _CANDIDATE_PROVENANCE_OPTIONAL)  # fmt: skip
        _check_provenance_common(ck, prov, f"{p}.provenance")
        opts = prov.get("engine_options", {})
        if not isinstance(opts, dict) or not all(
            isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in opts.values()
        ):
            raise ck.fail(
                f"{p}.provenance.engine_options", opts, "must be an object of name -> str or number"
            )
        out[cls] = CandidateMeasurement(
            cls, engine, tuple(int(k) for k in idx),
            *(arrays[key] for key in _CANDIDATE_MEASUREMENT_KEYS[2:8]), _freeze(prov),
            arrays.get("head_cpu_median_s"), arrays.get("tail_cpu_median_s"),
        )  # fmt: skip
    return FrozenMap(out)


def _parse_provenance(ck: _Checker, raw: Any, p: str) -> dict[str, Any]:
    d = ck.obj(raw, p, _PROVENANCE_KEYS, _PROVENANCE_OPTIONAL)
    _check_provenance_common(ck, d, p)
    ck.number(d["sum_over_whole"], f"{p}.sum_over_whole", positive=True)
    ck.number(d["whole_spread"], f"{p}.whole_spread")
    return d


def _check_provenance_common(ck: _Checker, d: dict[str, Any], p: str) -> None:
    ck.string(d["tool"], f"{p}.tool")
    ck.string(d["model"], f"{p}.model")
    hw = ck.obj(d["hardware"], f"{p}.hardware", _HARDWARE_KEYS, _HARDWARE_OPTIONAL)
    ck.string(hw["cpu"], f"{p}.hardware.cpu")
    ck.string(hw["machine"], f"{p}.hardware.machine")
    ck.integer(hw["logical_cpus"], f"{p}.hardware.logical_cpus", 1)
    for key in _HARDWARE_OPTIONAL:
        if key in hw:
            ck.string(hw[key], f"{p}.hardware.{key}")
    sw = d["software"]
    if not isinstance(sw, dict) or "python" not in sw:
        raise ck.fail(
            f"{p}.software", sw, "must be an object of package -> version, python included"
        )
    for key, version in sw.items():
        ck.string(version, f"{p}.software.{key}")
    date = ck.string(d["date"], f"{p}.date")
    try:
        _dt.datetime.fromisoformat(date.replace("Z", "+00:00"))
    except ValueError:
        raise ck.fail(f"{p}.date", date, "must be an ISO 8601 date-time") from None
    ck.integer(d["threads"], f"{p}.threads", 1)
    ck.integer(d["warmup"], f"{p}.warmup", 0)
    ck.integer(d["rounds"], f"{p}.rounds", 1)
    if "load_average_1m" in d:
        ck.number(d["load_average_1m"], f"{p}.load_average_1m")
    if "notes" in d and not isinstance(d["notes"], str):
        raise ck.fail(f"{p}.notes", d["notes"], "must be a string")


# ----------------------------------------------------------------------------- loading


def _profiles_dir() -> Path:
    return Path(str(resources.files(PROFILES_PACKAGE)))


def available_networks() -> list[str]:
    """Names of the shipped network profiles, sorted.

    >>> "resnet50" in available_networks()
    True
    """
    return sorted(p.stem for p in _profiles_dir().glob("*.json"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class _DuplicateKeyError(ValueError):
    pass


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


@functools.lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int, size: int) -> NetworkProfile:
    del mtime_ns, size  # cache keys only: an edited file is read again
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(
                f, parse_constant=_reject_constant, object_pairs_hook=_reject_duplicates
            )
    except json.JSONDecodeError as e:
        raise ProfileError(path, "(document)", f"line {e.lineno} column {e.colno}", e.msg) from e
    except _DuplicateKeyError as e:
        raise ProfileError(path, str(e), str(e), "key appears twice in one object") from e
    except ValueError as e:
        raise ProfileError(path, "(document)", str(e).split()[0], "not valid JSON") from e
    return parse_profile(doc, Path(path))


def load_network(name_or_path: str | Path) -> NetworkProfile:
    """Load and validate a network profile (cached while the file is unchanged).

    Parameters
    ----------
    name_or_path
        A shipped network name (see :func:`available_networks`) or the path of a profile
        file (anything with a path separator or a ``.json`` suffix).

    Returns
    -------
    NetworkProfile
        Immutable; the same object is returned while the file is unchanged.

    Raises
    ------
    ProfileError
        If the name is not shipped or the file breaks the schema.
    FileNotFoundError
        If a path does not exist.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or "\\" in text or text.endswith(".json"):
        path = Path(name_or_path).expanduser().resolve()
    else:
        path = _profiles_dir() / f"{text}.json"
        if not path.is_file():
            raise ProfileError(
                path, "name", text,
                f"no shipped profile of that name (available: {', '.join(available_networks())})",
            )  # fmt: skip
    st = path.stat()
    return _load_cached(str(path), st.st_mtime_ns, st.st_size)


def crossing_values(nodes: Sequence[Node], result: Sequence[str]) -> list[list[str]]:
    """Names of the values crossing each prefix cut ``k = 0..len(nodes)``.

    Parameters
    ----------
    nodes
        Nodes in topological order (their ``inputs`` name producers or ``"input"``).
    result
        Names of the values the network returns.

    Returns
    -------
    list of list of str
        For each ``k``, the values produced before node ``k`` (the input first) that a node
        at position ``>= k`` reads or that the network returns, in production order.

    >>> a = Node("a", "conv2d", ("input",), 0, 0, 0, 0, 1)
    >>> b = Node("b", "conv2d", ("a",), 0, 0, 0, 0, 1)
    >>> c = Node("c", "add", ("a", "b"), 0, 0, 0, 0, 1)
    >>> crossing_values([a, b, c], ["c"])
    [['input'], ['a'], ['a', 'b'], ['c']]
    """
    order = [INPUT, *(n.name for n in nodes)]
    position = {name: i for i, name in enumerate(order)}  # input at 0, node j at j + 1
    n = len(nodes)
    last_use = dict.fromkeys(order, -1)  # last consuming node index; n + 1 for the result
    for j, node in enumerate(nodes):
        for p in node.inputs:
            last_use[p] = max(last_use[p], j)
    for r in result:
        last_use[r] = n + 1
    cuts: list[list[str]] = []
    for k in range(n + 1):
        # produced in the head: position <= k; consumed in the tail: last use >= k
        cuts.append([v for v in order if position[v] <= k and last_use[v] >= k])
    return cuts
