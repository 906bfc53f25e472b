"""Link classes and their catalogue: what kinds of link exist, with the published figures
each matches and where every number comes from.

A *link class* (:class:`LinkClass`) is one kind of link (mean and standard deviation of the
rate in Mbps, a round-trip time) with the parameters of its generator (:class:`MarkovParams`,
:class:`TraceParams` or :class:`WiredParams`). :func:`load_links` reads and validates a
catalogue file, by default the shipped ``cost_models/data/links.json``; a malformed file or
class raises :class:`LinkError` naming the file, the field and the value.

>>> cat = load_links()
>>> lte = cat["lte"]
>>> lte.kind, lte.params.n_states, "lte" in cat
('markov', 4, True)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edgesplit.cost_models.frozen import FrozenMap
from edgesplit.cost_models.links.traces import Trace, cached_trace, set_stats

__all__ = [
    "FLOOR_MBPS",
    "KINDS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "LinkCatalogue",
    "LinkClass",
    "LinkError",
    "MarkovParams",
    "TraceParams",
    "WiredParams",
    "is_number",
    "load_links",
    "trace_link_class",
]

#: Smallest rate a link process returns, in Mbps.
FLOOR_MBPS = 0.01
#: ``"schema"`` value of a link catalogue file.
SCHEMA = "edgesplit.link-catalogue"
#: ``"schema_version"`` this module reads.
SCHEMA_VERSION = 1

#: The kinds of link class.
KINDS = ("markov", "trace", "wired")
_MAX_STATES = 16


class LinkError(ValueError):
    """A link catalogue (or a link class) that is malformed.

    Attributes
    ----------
    path : str
        The catalogue file (``"<LinkClass>"`` for a class built in code).
    field : str
        Dotted path of the offending field, e.g. ``"classes.lte.rtt_s"``.
    value : object
        The offending value.
    """

    def __init__(self, path: str | os.PathLike[str], field: str, value: Any, problem: str):
        self.path = str(path)
        self.field = field
        self.value = value
        self.problem = problem
        super().__init__(f"{self.path}: field '{field}' = {value!r}: {problem}")


@dataclass(frozen=True)
class MarkovParams:
    """Parameters of a ``"markov"`` class (see the module docstring).

    Attributes
    ----------
    n_states : int
        Number of hidden states (2 to 16).
    dwell_s : float
        Mean time spent in a state, in seconds.
    state_share : float
        Share, in [0, 1], of the rate's log-variance carried by the slow state; the rest
        is the fast log-normal factor.
    noise_tau_s : float
        Correlation time of the fast factor's log, in seconds.
    """

    n_states: int
    dwell_s: float
    state_share: float
    noise_tau_s: float


@dataclass(frozen=True)
class TraceParams:
    """Parameters of a ``"trace"`` class.

    Attributes
    ----------
    traces : tuple of Path
        The trace files (absolute).
    scale : float
        Factor applied to every trace rate (e.g. to let 3G traces stand for a faster link).
    """

    traces: tuple[Path, ...]
    scale: float = 1.0


@dataclass(frozen=True)
class WiredParams:
    """Parameters of a ``"wired"`` class.

    Attributes
    ----------
    rate_mbps : float
        The constant rate in Mbps.
    """

    rate_mbps: float


_PARAM_TYPES: dict[str, type] = {
    "markov": MarkovParams,
    "trace": TraceParams,
    "wired": WiredParams,
}


@dataclass(frozen=True)
class LinkClass:
    """One kind of link, with the published figures it matches.

    Attributes
    ----------
    name : str
        Class name, e.g. ``"lte"``.
    kind : str
        ``"markov"``, ``"trace"`` or ``"wired"``.
    rtt_s : float
        Round-trip time in seconds.
    mean_mbps : float
        Long-run mean rate in Mbps that the class matches.
    sd_mbps : float
        Long-run standard deviation of the rate in Mbps (0 for a wired link).
    sources : Mapping[str, str]
        For each number (``"rtt_s"``, ``"mean_mbps"``, ``"params.dwell_s"``, ...) its
        citation, or ``"modelled: <how chosen>"``.
    params : MarkovParams or TraceParams or WiredParams
        The kind's parameters.
    description : str
        One line on what the class stands for.
    median_mbps : float or None
        The published median, where the source gives one.
    """

    name: str
    kind: str
    rtt_s: float
    mean_mbps: float
    sd_mbps: float
    sources: Mapping[str, str]
    params: MarkovParams | TraceParams | WiredParams
    description: str = ""
    median_mbps: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", FrozenMap(self.sources))
        where = "<LinkClass>"

        def bad(f: str, v: Any, problem: str) -> LinkError:
            return LinkError(where, f"{self.name}.{f}", v, problem)

        if self.kind not in KINDS:
            raise bad("kind", self.kind, f"unknown kind (kinds: {', '.join(KINDS)})")
        if not isinstance(self.params, _PARAM_TYPES[self.kind]):
            raise bad(
                "params",
                self.params,
                f"a {self.kind} class needs {_PARAM_TYPES[self.kind].__name__}",
            )
        for f in ("rtt_s", "mean_mbps", "sd_mbps"):
            v = getattr(self, f)
            if not is_number(v) or v < 0:
                raise bad(f, v, "expected a finite number >= 0")
        if self.mean_mbps <= 0:
            raise bad("mean_mbps", self.mean_mbps, "expected a number > 0")
        if self.median_mbps is not None and not (
            is_number(self.median_mbps) and self.median_mbps > 0
        ):
            raise bad("median_mbps", self.median_mbps, "expected a number > 0")
        p = self.params
        if isinstance(p, MarkovParams):
            if self.sd_mbps <= 0:
                raise bad("sd_mbps", self.sd_mbps, "a markov class needs sd_mbps > 0")
            if (
                isinstance(p.n_states, bool)
                or not isinstance(p.n_states, int)
                or not (2 <= p.n_states <= _MAX_STATES)
            ):
                raise bad("params.n_states", p.n_states, f"expected an integer 2..{_MAX_STATES}")
            for f in ("dwell_s", "noise_tau_s"):
                v = getattr(p, f)
                if not is_number(v) or v <= 0:
                    raise bad(f"params.{f}", v, "expected a number > 0")
            if not is_number(p.state_share) or not 0 <= p.state_share <= 1:
                raise bad("params.state_share", p.state_share, "expected a number in [0, 1]")
        elif isinstance(p, TraceParams):
            if not p.traces:
                raise bad("params.traces", p.traces, "expected at least one trace file")
            if not is_number(p.scale) or p.scale <= 0:
                raise bad("params.scale", p.scale, "expected a number > 0")
        elif isinstance(p, WiredParams):
            if not is_number(p.rate_mbps) or p.rate_mbps <= 0:
                raise bad("params.rate_mbps", p.rate_mbps, "expected a number > 0")

    def __hash__(self) -> int:  # ``sources`` is a mapping: hash the identifying fields
        return hash((self.name, self.kind, self.rtt_s, self.mean_mbps, self.sd_mbps, self.params))

    def load_traces(self) -> list[Trace]:
        """The traces of a ``"trace"`` class (cached; raises :class:`TraceError`)."""
        if not isinstance(self.params, TraceParams):
            raise TypeError(f"link class {self.name!r} is {self.kind!r}, not 'trace'")
        return [cached_trace(Path(t)) for t in self.params.traces]


def trace_link_class(
    name: str,
    files: list[Path] | tuple[Path, ...],
    *,
    rtt_s: float,
    scale: float = 1.0,
    sources: Mapping[str, str] | None = None,
    description: str = "",
) -> LinkClass:
    """A ``"trace"`` class replaying these files, its mean and SD measured over them.

    The mean and SD are those of the rate a link of the class sees in the long run: each
    trace equally likely, time-weighted within itself (:func:`~edgesplit.cost_models.links
    .traces.set_stats`), times ``scale``.

    Parameters
    ----------
    name : str
        The class name.
    files : list of Path
        The trace files (read and cached; a malformed file raises
        :class:`~edgesplit.cost_models.links.TraceError` naming the file and the line).
    rtt_s : float
        Round-trip time in seconds.
    scale : float
        Factor applied to every rate.
    sources : Mapping[str, str], optional
        Citations for ``rtt_s`` and ``params.scale`` (and anything else); the measured
        ``mean_mbps``, ``sd_mbps`` and the ``params.traces`` entry are filled in.
    description : str
        One line on what the class stands for.

    Raises
    ------
    LinkError
        A bad ``rtt_s`` or ``scale``, no files, or files whose rates are all 0 (naming the
        field).

    >>> from edgesplit.cost_models.links.traces import default_trace_dir, trace_files
    >>> lc = trace_link_class("synth", trace_files(default_trace_dir()), rtt_s=0.08)
    >>> lc.kind, round(lc.mean_mbps, 3), round(lc.sd_mbps, 3)
    ('trace', 1.273, 1.094)
    """
    if not files:
        raise LinkError("<LinkClass>", f"{name}.params.traces", [], "expected at least one file")
    for f, v in (("rtt_s", rtt_s), ("params.scale", scale)):
        if not is_number(v) or v < 0 or (f == "params.scale" and v == 0):
            raise LinkError("<LinkClass>", f"{name}.{f}", v, "expected a finite number > 0")
    traces = [cached_trace(Path(f)) for f in files]
    mean, sd = set_stats(traces)
    if not mean > 0:
        raise LinkError(
            "<LinkClass>", f"{name}.params.traces", str(Path(files[0]).parent), "every rate is 0"
        )
    folders = sorted({str(Path(f).parent) for f in files})
    src = {
        "mean_mbps": f"measured: time-weighted mean over the {len(files)} trace files, each "
        f"equally likely, times scale {scale:g}",
        "sd_mbps": f"measured: time-weighted SD over the same {len(files)} files, times scale",
        "params.traces": f"{len(files)} files of {', '.join(folders)}",
        **(sources or {}),
    }
    return LinkClass(
        name=name,
        kind="trace",
        rtt_s=float(rtt_s),
        mean_mbps=mean * scale,
        sd_mbps=sd * scale,
        sources=src,
        params=TraceParams(traces=tuple(Path(f) for f in files), scale=float(scale)),
        description=description,
    )


def is_number(v: Any) -> bool:
    """True for a finite ``int`` or ``float`` (not a ``bool``)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class LinkCatalogue(Mapping[str, LinkClass]):
    """The link classes of a catalogue file, by name (``catalogue["lte"]``, ``in``).

    Attributes
    ----------
    path : Path
        The file it was read from.
    description : str
        The file's description.
    """

    def __init__(self, classes: Mapping[str, LinkClass], path: Path, description: str = ""):
        self._classes = dict(classes)
        self.path = path
        self.description = description

    def __getitem__(self, name: str) -> LinkClass:
        try:
            return self._classes[name]
        except KeyError:
            raise KeyError(
                f"unknown link class {name!r} (catalogue {self.path}: {', '.join(self._classes)})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def names(self) -> list[str]:
        """Class names, in file order."""
        return list(self._classes)

    def __repr__(self) -> str:
        return f"LinkCatalogue({self.path}, classes={self.names()})"

    def with_classes(self, classes: list[LinkClass] | tuple[LinkClass, ...]) -> LinkCatalogue:
        """A new catalogue: this one's classes and ``classes`` (this one is unchanged).

        Raises
        ------
        LinkError
            A class whose name the catalogue already has (field ``classes.<name>``).

        >>> cat = load_links()
        >>> more = cat.with_classes([trace_link_class("mine", [cat.path.parent /
        ...     "traces" / "synthetic_3g_0.tsv"], rtt_s=0.05)])
        >>> "mine" in more, "mine" in cat, len(more) == len(cat) + 1
        (True, False, True)
        """
        out = dict(self._classes)
        for lc in classes:
            if lc.name in out:
                raise LinkError(self.path, f"classes.{lc.name}", lc.name, "already a class")
            out[lc.name] = lc
        return LinkCatalogue(out, self.path, self.description)


_TOP_REQUIRED = {"schema", "schema_version", "classes"}
_TOP_OPTIONAL = {"description"}
_CLASS_REQUIRED = {"kind", "rtt_s", "mean_mbps", "sd_mbps", "params", "sources"}
_CLASS_OPTIONAL = {"description", "median_mbps"}
_PARAMS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (required, optional)
    "markov": ({"n_states", "dwell_s", "state_share", "noise_tau_s"}, set()),
    "trace": ({"traces"}, {"scale"}),
    "wired": ({"rate_mbps"}, set()),
}


def _default_catalogue() -> Path:
    return Path(str(resources.files("edgesplit.cost_models.data").joinpath("links.json")))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


class _DuplicateKey(Exception):
    pass


def load_links(path: str | os.PathLike[str] | None = None) -> LinkCatalogue:
    """Read and validate a link catalogue.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A catalogue JSON file; by default the shipped ``cost_models/data/links.json``.
        Trace paths in it are relative to the file's folder (or absolute).

    Returns
    -------
    LinkCatalogue

    Raises
    ------
    LinkError
        Naming the file, the field and the value: unknown or missing keys, wrong types,
        out-of-range numbers, a number without a source, a missing trace file.
    """
    p = Path(path) if path is not None else _default_catalogue()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LinkError(p, "<file>", str(p), "no such file") from None
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise LinkError(p, "<json>", exc.args[0], "duplicate key") from None
    except json.JSONDecodeError as exc:
        raise LinkError(p, "<json>", exc.msg, f"not valid JSON (line {exc.lineno})") from None

    def fail(f: str, v: Any, problem: str) -> LinkError:
        return LinkError(p, f, v, problem)

    def keys(obj: Any, where: str, required: set[str], optional: set[str]) -> None:
        if not isinstance(obj, dict):
            raise fail(where or "<top>", obj, "expected an object")
        for k in obj:
            if k not in required | optional:
                raise fail(
                    f"{where}.{k}" if where else k,
                    obj[k],
                    f"unknown key (allowed: {', '.join(sorted(required | optional))})",
                )
        for k in sorted(required - set(obj)):
            raise fail(f"{where}.{k}" if where else k, None, "missing")

    def number(v: Any, f: str, *, low: float, strict: bool) -> float:
        if not is_number(v) or (v <= low if strict else v < low):
            raise fail(f, v, f"expected a finite number {'>' if strict else '>='} {low:g}")
        return float(v)

    def string(v: Any, f: str) -> str:
        if not isinstance(v, str):
            raise fail(f, v, "expected a string")
        return v

    keys(raw, "", _TOP_REQUIRED, _TOP_OPTIONAL)
    if raw["schema"] != SCHEMA:
        raise fail("schema", raw["schema"], f"expected {SCHEMA!r}")
    if raw["schema_version"] != SCHEMA_VERSION or isinstance(raw["schema_version"], bool):
        raise fail(
            "schema_version",
            raw["schema_version"],
            f"unsupported version (this reader: {SCHEMA_VERSION})",
        )
    description = string(raw.get("description", ""), "description")
    classes_raw = raw["classes"]
    if not isinstance(classes_raw, dict) or not classes_raw:
        raise fail("classes", classes_raw, "expected a non-empty object name -> class")

    classes: dict[str, LinkClass] = {}
    for name, c in classes_raw.items():
        w = f"classes.{name}"
        if not name or not name.replace("_", "").isalnum():
            raise fail(w, name, "class names are letters, digits and '_'")
        keys(c, w, _CLASS_REQUIRED, _CLASS_OPTIONAL)
        kind = string(c["kind"], f"{w}.kind")
        if kind not in KINDS:
            raise fail(f"{w}.kind", kind, f"unknown kind (kinds: {', '.join(KINDS)})")
        rtt = number(c["rtt_s"], f"{w}.rtt_s", low=0, strict=False)
        mean = number(c["mean_mbps"], f"{w}.mean_mbps", low=0, strict=True)
        sd = number(c["sd_mbps"], f"{w}.sd_mbps", low=0, strict=kind == "markov")
        median = None
        if "median_mbps" in c:
            median = number(c["median_mbps"], f"{w}.median_mbps", low=0, strict=True)
        desc = string(c.get("description", ""), f"{w}.description")
        req, opt = _PARAMS[kind]
        pr = c["params"]
        keys(pr, f"{w}.params", req, opt)
        params: MarkovParams | TraceParams | WiredParams
        if kind == "markov":
            ns = pr["n_states"]
            if isinstance(ns, bool) or not isinstance(ns, int) or not 2 <= ns <= _MAX_STATES:
                raise fail(f"{w}.params.n_states", ns, f"expected an integer 2..{_MAX_STATES}")
            share = number(pr["state_share"], f"{w}.params.state_share", low=0, strict=False)
            if share > 1:
                raise fail(f"{w}.params.state_share", share, "expected a number in [0, 1]")
            params = MarkovParams(
                n_states=ns,
                dwell_s=number(pr["dwell_s"], f"{w}.params.dwell_s", low=0, strict=True),
                state_share=share,
                noise_tau_s=number(
                    pr["noise_tau_s"], f"{w}.params.noise_tau_s", low=0, strict=True
                ),
            )
        elif kind == "trace":
            tr = pr["traces"]
            if not isinstance(tr, list) or not tr:
                raise fail(f"{w}.params.traces", tr, "expected a non-empty list of file paths")
            files = []
            for i, t in enumerate(tr):
                string(t, f"{w}.params.traces[{i}]")
                f = Path(t) if Path(t).is_absolute() else p.parent / t
                if not f.is_file():
                    raise fail(f"{w}.params.traces[{i}]", t, f"no such file ({f})")
                files.append(f.resolve())
            scale = number(pr.get("scale", 1.0), f"{w}.params.scale", low=0, strict=True)
            params = TraceParams(traces=tuple(files), scale=scale)
        else:
            params = WiredParams(
                rate_mbps=number(pr["rate_mbps"], f"{w}.params.rate_mbps", low=0, strict=True)
            )
        # every number carries a source; every source names a field
        src = c["sources"]
        if not isinstance(src, dict):
            raise fail(f"{w}.sources", src, "expected an object field -> citation")
        numeric = ["rtt_s", "mean_mbps", "sd_mbps"] + (["median_mbps"] if median else [])
        numeric += [f"params.{k}" for k, v in pr.items() if is_number(v)]
        known = set(numeric) | {f"params.{k}" for k in pr}
        for k, v in src.items():
            if k not in known:
                raise fail(
                    f"{w}.sources.{k}",
                    v,
                    f"source for an unknown field (fields: {', '.join(sorted(known))})",
                )
            if not isinstance(v, str) or not v.strip():
                raise fail(f"{w}.sources.{k}", v, "expected a non-empty citation string")
        for k in numeric:
            if k not in src:
                raise fail(
                    f"{w}.sources.{k}",
                    None,
                    "missing: every number needs a source or 'modelled: <how chosen>'",
                )
        try:
            classes[name] = LinkClass(
                name=name,
                kind=kind,
                rtt_s=rtt,
                mean_mbps=mean,
                sd_mbps=sd,
                sources=src,
                params=params,
                description=desc,
                median_mbps=median,
            )
        except LinkError as exc:  # cross-field checks of LinkClass itself
            raise fail(f"classes.{exc.field}", exc.value, exc.problem) from None
    return LinkCatalogue(classes, p, description)
