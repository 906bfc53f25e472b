"""Link classes: how fast a wireless or wired link is, slot by slot.

A *link class* (:class:`LinkClass`) is one kind of link with the published figures it
matches (mean and standard deviation of the rate in Mbps, a round-trip time) and the
parameters of its generator. The catalogue (:func:`load_links`, by default the shipped
``cost_models/data/links.json``) names them; every number there carries its source. The
figures, their sources and the generator model are written up in ``docs/links.md``.

A :class:`LinkProcess` steps a batch of independent links of one class, slot by slot.
It owns no random generator: every random choice is made from arrays of uniforms in
``[0, 1)`` that the caller supplies (the simulator derives them from a counter-based
generator keyed by each environment's seed), so a batch of links equals the same links
stepped one by one, and the same uniforms always give the same rates.

Three kinds of class:

``"markov"``
    Markov-modulated rate. A hidden state ``k`` (one of ``n_states``) sets a level
    ``m_k``; on top of it a log-normal factor ``exp(x - s^2/2)`` whose log ``x`` is an
    Ornstein-Uhlenbeck process (stationary ``N(0, s^2)``, correlation time
    ``noise_tau_s``). The state is redrawn from its stationary law (uniform over states)
    at rate ``K / ((K - 1) * dwell_s)``, so that the mean time spent in a state is
    ``dwell_s``; the per-slot transition matrix is the exact ``expm(Q * slot_s)``
    of that generator, hence right for any slot length. The levels and ``s`` are solved
    from the class's mean, SD and ``state_share`` (the share of the log-variance carried
    by the slow state) so that the long-run mean and SD equal the class's figures
    (:func:`markov_calibration`, :func:`stationary_stats`).
``"trace"``
    Replays measured or synthetic throughput traces (``time_s<TAB>Mbps`` files, the
    Pensieve format; :func:`load_trace`) multiplied by a ``scale`` factor. At reset each
    link picks a trace and a start offset; each step advances ``slot_s`` seconds,
    wrapping at the end; the rate is the trace's value at that time (a step function).
``"wired"``
    A constant rate (a wired backhaul), with its round-trip time.

Rates are float64 Mbps (10^6 bit/s) and never below :data:`FLOOR_MBPS` (0.01 Mbps): a
trace sample of 0 (an outage) becomes 0.01 Mbps, so that transfer times stay finite.

Examples
--------
>>> import numpy as np
>>> from edgesplit.cost_models.links import LinkProcess, load_links
>>> links = load_links()
>>> lte = links["lte"]
>>> proc = LinkProcess(lte, slot_s=0.1, shape=(4, 3))   # 4 environments x 3 links
>>> rng = np.random.default_rng(0)
>>> r0 = proc.reset(rng.random((4, 3, proc.n_reset_uniforms)))
>>> r1 = proc.step(rng.random((4, 3, proc.n_step_uniforms)))
>>> r1.shape, r1.dtype.name, bool((r1 > 0).all())
((4, 3), 'float64', True)
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from edgesplit.cost_models._frozen import FrozenMap

__all__ = [
    "FLOOR_MBPS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "LinkBank",
    "LinkCatalogue",
    "LinkClass",
    "LinkError",
    "LinkProcess",
    "MarkovCalibration",
    "MarkovParams",
    "StationaryStats",
    "Trace",
    "TraceError",
    "TraceParams",
    "WiredParams",
    "load_links",
    "load_trace",
    "markov_calibration",
    "stationary_stats",
    "transition_matrix",
]

#: Smallest rate a link process returns, in Mbps.
FLOOR_MBPS = 0.01
#: ``"schema"`` value of a link catalogue file.
SCHEMA = "edgesplit.link-catalogue"
#: ``"schema_version"`` this module reads.
SCHEMA_VERSION = 1

KINDS = ("markov", "trace", "wired")
_MAX_STATES = 16
_NORMAL_TABLE_BITS = 14  # 16384 equiprobable bins for the normal draws


# ---------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------
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


class TraceError(ValueError):
    """A throughput trace file that is malformed.

    Attributes
    ----------
    path : str
        The trace file.
    line : int
        1-based line number (for a file with too few samples: the line after the last).
    value : str
        The offending text (the line, or the field in it).
    """

    def __init__(self, path: str | os.PathLike[str], line: int, value: str, problem: str):
        self.path = str(path)
        self.line = line
        self.value = value
        self.problem = problem
        super().__init__(f"{self.path}, line {line}: {problem}: {value!r}")


# ---------------------------------------------------------------------------------------
# traces
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Trace:
    """A throughput trace: rate ``rates_mbps[i]`` from ``times_s[i]`` to ``times_s[i + 1]``.

    The last sample holds for the median sampling interval, so the trace repeats with
    period :attr:`period_s` (``times_s[-1] - times_s[0]`` plus that interval). Times are
    as in the file; :meth:`value_at` counts from the first sample.

    Attributes
    ----------
    path : Path
        The file it was read from.
    times_s : numpy.ndarray
        Strictly increasing sample times in seconds (read-only).
    rates_mbps : numpy.ndarray
        Non-negative rates in Mbps (read-only).
    """

    path: Path
    times_s: np.ndarray
    rates_mbps: np.ndarray

    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return int(self.times_s.size)

    @property
    def holding_s(self) -> np.ndarray:
        """How long each sample holds, in seconds (the last: the median interval)."""
        dt = np.diff(self.times_s)
        return np.append(dt, np.median(dt))

    @property
    def period_s(self) -> float:
        """Length of one pass through the trace, in seconds."""
        return float(self.holding_s.sum())

    @property
    def mean_mbps(self) -> float:
        """Time-weighted mean rate over one period."""
        return float(np.average(self.rates_mbps, weights=self.holding_s))

    @property
    def sd_mbps(self) -> float:
        """Time-weighted standard deviation of the rate over one period."""
        w = self.holding_s
        m = np.average(self.rates_mbps, weights=w)
        return float(np.sqrt(np.average((self.rates_mbps - m) ** 2, weights=w)))

    def value_at(self, t_s: float | np.ndarray) -> np.ndarray:
        """Rate at time ``t_s`` after the first sample (wrapping), in Mbps."""
        rel = self.times_s - self.times_s[0]
        t = np.mod(np.asarray(t_s, dtype=np.float64), self.period_s)
        idx = np.searchsorted(rel, t, side="right") - 1
        return self.rates_mbps[np.clip(idx, 0, self.n_samples - 1)]

    def resample(self, slot_s: float) -> np.ndarray:
        """The trace on a grid of ``slot_s``: the value at the start of each slot.

        One period becomes ``max(1, round(period_s / slot_s))`` slots (the period is
        rounded to whole slots).
        """
        if not (slot_s > 0 and math.isfinite(slot_s)):
            raise ValueError(f"slot_s must be a positive number, got {slot_s!r}")
        n = max(1, round(self.period_s / slot_s))
        return self.value_at(np.arange(n) * slot_s)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a ``time_s<TAB>Mbps`` throughput trace (the Pensieve format).

    One sample a line: time in seconds, then the rate in Mbps, separated by a tab or any
    whitespace. Blank lines and lines starting with ``#`` are skipped. The file must hold
    at least two samples, with strictly increasing times and finite, non-negative rates.

    Parameters
    ----------
    path : str or os.PathLike
        The trace file.

    Returns
    -------
    Trace

    Raises
    ------
    TraceError
        Naming the file, the line and the offending value.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceError(p, 0, str(p), "no such file") from None
    except UnicodeDecodeError as exc:
        raise TraceError(p, 1, str(exc.object[:20]), "not a UTF-8 text file") from None
    times: list[float] = []
    rates: list[float] = []
    lines = text.splitlines()
    for lineno, raw in enumerate(lines, start=1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        cols = s.split()
        if len(cols) != 2:
            raise TraceError(p, lineno, raw, f"expected 2 columns (time_s, Mbps), got {len(cols)}")
        try:
            t = float(cols[0])
        except ValueError:
            raise TraceError(p, lineno, cols[0], "time is not a number") from None
        try:
            r = float(cols[1])
        except ValueError:
            raise TraceError(p, lineno, cols[1], "rate is not a number") from None
        if not math.isfinite(t):
            raise TraceError(p, lineno, cols[0], "time is not finite")
        if not math.isfinite(r):
            raise TraceError(p, lineno, cols[1], "rate is not finite")
        if r < 0:
            raise TraceError(p, lineno, cols[1], "rate is negative")
        if times and t <= times[-1]:
            raise TraceError(
                p, lineno, cols[0], f"time does not increase (previous sample: {times[-1]!r})"
            )
        times.append(t)
        rates.append(r)
    if len(times) < 2:
        raise TraceError(
            p, len(lines) + 1, "", f"a trace needs at least 2 samples, found {len(times)}"
        )
    return Trace(
        path=p,
        times_s=_readonly(np.array(times, dtype=np.float64)),
        rates_mbps=_readonly(np.array(rates, dtype=np.float64)),
    )


@functools.lru_cache(maxsize=512)
def _load_trace_cached(path: str, mtime_ns: int, size: int) -> Trace:
    return load_trace(path)


def _trace(path: Path) -> Trace:
    try:
        st = path.stat()
    except OSError:
        return load_trace(path)  # raises TraceError naming the file
    return _load_trace_cached(str(path), st.st_mtime_ns, st.st_size)


# ---------------------------------------------------------------------------------------
# link classes
# ---------------------------------------------------------------------------------------
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
            if not _is_number(v) or v < 0:
                raise bad(f, v, "expected a finite number >= 0")
        if self.mean_mbps <= 0:
            raise bad("mean_mbps", self.mean_mbps, "expected a number > 0")
        if self.median_mbps is not None and not (
            _is_number(self.median_mbps) and self.median_mbps > 0
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
                if not _is_number(v) or v <= 0:
                    raise bad(f"params.{f}", v, "expected a number > 0")
            if not _is_number(p.state_share) or not 0 <= p.state_share <= 1:
                raise bad("params.state_share", p.state_share, "expected a number in [0, 1]")
        elif isinstance(p, TraceParams):
            if not p.traces:
                raise bad("params.traces", p.traces, "expected at least one trace file")
            if not _is_number(p.scale) or p.scale <= 0:
                raise bad("params.scale", p.scale, "expected a number > 0")
        elif isinstance(p, WiredParams):
            if not _is_number(p.rate_mbps) or p.rate_mbps <= 0:
                raise bad("params.rate_mbps", p.rate_mbps, "expected a number > 0")

    def __hash__(self) -> int:  # ``sources`` is a mapping: hash the identifying fields
        return hash((self.name, self.kind, self.rtt_s, self.mean_mbps, self.sd_mbps, self.params))

    def load_traces(self) -> list[Trace]:
        """The traces of a ``"trace"`` class (cached; raises :class:`TraceError`)."""
        if not isinstance(self.params, TraceParams):
            raise TypeError(f"link class {self.name!r} is {self.kind!r}, not 'trace'")
        return [_trace(Path(t)) for t in self.params.traces]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ---------------------------------------------------------------------------------------
# catalogue
# ---------------------------------------------------------------------------------------
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
        if not _is_number(v) or (v <= low if strict else v < low):
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
        numeric += [f"params.{k}" for k, v in pr.items() if _is_number(v)]
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


# ---------------------------------------------------------------------------------------
# markov generator: calibration and analytic moments
# ---------------------------------------------------------------------------------------
def _norm_ppf(p: np.ndarray) -> np.ndarray:
    """Inverse standard normal CDF (Acklam's rational approximation, rel. error < 1.2e-9)."""
    a = (
        -3.969683028665376e01,
        2.209460984245205e02,
        -2.759285104469687e02,
        1.383577518672690e02,
        -3.066479806614716e01,
        2.506628277459239e00,
    )
    b = (
        -5.447609879822406e01,
        1.615858368580409e02,
        -1.556989798598866e02,
        6.680131188771972e01,
        -1.328068155288572e01,
    )
    c = (
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e00,
        -2.549732539343734e00,
        4.374664141464968e00,
        2.938163982698783e00,
    )
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    p = np.asarray(p, dtype=np.float64)
    out = np.empty_like(p)
    lo, hi = p < 0.02425, p > 1 - 0.02425
    mid = ~(lo | hi)
    q = p[mid] - 0.5
    r = q * q
    out[mid] = ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (
        ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1
    )
    for sel, sign, pp in ((lo, 1.0, p[lo]), (hi, -1.0, 1 - p[hi])):
        q = np.sqrt(-2 * np.log(pp))
        out[sel] = (
            sign
            * (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
            / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        )
    return out


def _norm_pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


@functools.cache
def _normal_table() -> np.ndarray:
    """Standard normal draws by table: entry i is E[Z | Z in the i-th of N equiprobable bins].

    Rescaled to unit variance, so the draw ``table[floor(u * N)]`` of a uniform ``u`` has
    mean 0 and variance 1 exactly, and tails cut at about 3.9 SD.
    """
    n = 1 << _NORMAL_TABLE_BITS
    edges = np.concatenate(([-np.inf], _norm_ppf(np.arange(1, n) / n), [np.inf]))
    pdf = np.where(np.isfinite(edges), _norm_pdf(np.where(np.isfinite(edges), edges, 0)), 0.0)
    z = n * (pdf[:-1] - pdf[1:])
    z -= z.mean()
    z /= np.sqrt(np.mean(z * z))
    return _readonly(z)


@dataclass(frozen=True)
class MarkovCalibration:
    """The solved generator of a ``"markov"`` class.

    Attributes
    ----------
    levels_mbps : numpy.ndarray
        Mean rate in each state, ``[n_states]``, ascending.
    state_probs : numpy.ndarray
        Stationary probability of each state (uniform).
    noise_sigma : float
        Standard deviation ``s`` of the log of the fast factor.
    switch_rate_hz : float
        Rate at which the state is redrawn from ``state_probs``.
    """

    levels_mbps: np.ndarray
    state_probs: np.ndarray
    noise_sigma: float
    switch_rate_hz: float


@functools.lru_cache(maxsize=256)
def _calibrate(mean: float, sd: float, k: int, share: float, dwell_s: float) -> MarkovCalibration:
    cv2 = (sd / mean) ** 2
    var_log = math.log1p(cv2)  # log-variance of a log-normal with this mean and SD
    sigma = math.sqrt((1.0 - share) * var_log)
    z = _norm_ppf((np.arange(k) + 0.5) / k)
    z = (z - z.mean()) / z.std()

    def cv2_of(a: float) -> float:
        e = np.exp(a * z)
        return math.exp(sigma * sigma) * float(np.mean(e * e)) / float(np.mean(e)) ** 2 - 1.0

    lo, hi = 0.0, 1.0
    if share > 0:
        while cv2_of(hi) < cv2:
            hi *= 2.0
            if hi > 1e3:
                raise ValueError(f"cannot reach CV {math.sqrt(cv2):.3g} with {k} states")
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if cv2_of(mid) < cv2 else (lo, mid)
    a = 0.5 * (lo + hi) if share > 0 else 0.0
    e = np.exp(a * z)
    levels = mean * e / e.mean()
    return MarkovCalibration(
        levels_mbps=_readonly(levels),
        state_probs=_readonly(np.full(k, 1.0 / k)),
        noise_sigma=sigma,
        switch_rate_hz=k / ((k - 1) * dwell_s),
    )


def markov_calibration(link: LinkClass) -> MarkovCalibration:
    """Solve the generator of a ``"markov"`` class from its mean, SD and parameters.

    The log-variance of a log-normal with the class's mean and SD, ``v = ln(1 + CV^2)``,
    is split into ``state_share * v`` for the states and the rest for the fast factor
    (``noise_sigma^2 = (1 - state_share) v``). The state levels are
    ``m_k = c * exp(a * z_k)`` with ``z_k`` the standardised normal quantiles at
    ``(k + 1/2) / K``; ``a`` is solved so that the mixture's SD is exactly ``sd_mbps``
    and ``c`` so that its mean is exactly ``mean_mbps``.

    Parameters
    ----------
    link : LinkClass
        A ``"markov"`` class.

    Returns
    -------
    MarkovCalibration
        Levels, state probabilities, ``noise_sigma`` and the state's redraw rate (cached).
    """
    p = link.params
    if not isinstance(p, MarkovParams):
        raise TypeError(f"link class {link.name!r} is {link.kind!r}, not 'markov'")
    return _calibrate(link.mean_mbps, link.sd_mbps, p.n_states, p.state_share, p.dwell_s)


def transition_matrix(link: LinkClass, slot_s: float) -> np.ndarray:
    """Per-slot state transition matrix of a ``"markov"`` class.

    ``P = exp(-lam * slot_s) I + (1 - exp(-lam * slot_s)) 1 pi^T``, the exact
    ``expm(Q * slot_s)`` of a generator that redraws the state from ``pi`` at rate
    ``lam``; hence ``P(a) @ P(b) == P(a + b)`` for any slot lengths.

    Parameters
    ----------
    link : LinkClass
        A ``"markov"`` class.
    slot_s : float
        Slot length in seconds.

    Returns
    -------
    numpy.ndarray
        ``[n_states, n_states]``, rows summing to 1: ``P[i, j]`` = Pr(next state j | i).
    """
    cal = markov_calibration(link)
    stay = math.exp(-cal.switch_rate_hz * slot_s)
    k = cal.levels_mbps.size
    return stay * np.eye(k) + (1.0 - stay) * np.outer(np.ones(k), cal.state_probs)


@dataclass(frozen=True)
class StationaryStats:
    """Long-run statistics of a link class's rate, in Mbps."""

    mean_mbps: float
    sd_mbps: float
    median_mbps: float


def stationary_stats(link: LinkClass, slot_s: float = 1.0) -> StationaryStats:
    """Long-run mean, SD and median of the rate a :class:`LinkProcess` of this class gives.

    Analytic for ``"markov"`` (a mixture of log-normals, ignoring the 0.01 Mbps floor)
    and ``"wired"``; for ``"trace"``, exact over the traces resampled to ``slot_s`` (each
    trace equally likely, each slot of it equally likely), floor and scale included.

    Parameters
    ----------
    link : LinkClass
        Any class.
    slot_s : float, optional
        Slot length in seconds (matters for ``"trace"`` only).

    Returns
    -------
    StationaryStats
    """
    if isinstance(link.params, WiredParams):
        r = link.params.rate_mbps
        return StationaryStats(r, 0.0, r)
    if isinstance(link.params, TraceParams):
        parts = [
            np.maximum(t.resample(slot_s) * link.params.scale, FLOOR_MBPS)
            for t in link.load_traces()
        ]
        w = np.concatenate([np.full(x.size, 1.0 / x.size) for x in parts])
        v = np.concatenate(parts)
        m = float(np.average(v, weights=w))
        order = np.argsort(v, kind="stable")
        cw = np.cumsum(w[order]) / w.sum()
        med = float(v[order][np.searchsorted(cw, 0.5)])
        return StationaryStats(m, float(np.sqrt(np.average((v - m) ** 2, weights=w))), med)
    cal = markov_calibration(link)
    s, pi, lv = cal.noise_sigma, cal.state_probs, cal.levels_mbps
    mean = float(pi @ lv)
    second = float(pi @ (lv * lv)) * math.exp(s * s)
    sd = math.sqrt(max(second - mean * mean, 0.0))
    # median of sum_k pi_k LogNormal(ln m_k - s^2/2, s^2), by bisection on the CDF
    mu = np.log(lv) - 0.5 * s * s

    def cdf(x: float) -> float:
        if s == 0:
            return float(pi @ (lv <= x))
        zz = (math.log(x) - mu) / (s * math.sqrt(2.0))
        return float(pi @ (0.5 * (1.0 + np.vectorize(math.erf)(zz))))

    lo, hi = float(lv.min()) * math.exp(-10 * s - 1), float(lv.max()) * math.exp(10 * s + 1)
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if cdf(mid) < 0.5 else (lo, mid)
    return StationaryStats(mean, sd, math.sqrt(lo * hi))


# ---------------------------------------------------------------------------------------
# the batched process
# ---------------------------------------------------------------------------------------
def _check_uniforms(u: np.ndarray | None, want: tuple[int, ...], what: str) -> np.ndarray:
    """``u`` as float64 of shape ``want`` (``None`` stands for an empty last axis)."""
    if u is None:
        if want[-1] == 0:
            return np.zeros(want)
        raise ValueError(f"{what}: expected uniforms of shape {want}, got None")
    u = np.asarray(u, dtype=np.float64)
    if u.shape != want:
        raise ValueError(f"{what}: expected uniforms of shape {want}, got {u.shape}")
    return u


def _reset_rows(
    mask: np.ndarray | None, n_rows: int, *, first: bool, who: str
) -> slice | np.ndarray:
    """The rows a ``reset(u, mask)`` re-draws: all, or those where ``mask`` is true."""
    if mask is None:
        return slice(None)
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape != (n_rows,):
        raise ValueError(
            f"reset: mask must be a bool array of shape ({n_rows},), got {mask.dtype} {mask.shape}"
        )
    if first and not mask.all():
        raise RuntimeError(f"{who}: the first reset() must cover every row")
    return mask


class LinkProcess:
    """A batch of independent links of one class, stepped slot by slot.

    Randomness enters only through the arrays of uniforms in ``[0, 1)`` passed to
    :meth:`reset` and :meth:`step` (values outside are clipped into range); the process
    owns no generator and touches no global random state.

    Parameters
    ----------
    link : LinkClass
        The class.
    slot_s : float
        Slot length in seconds.
    shape : tuple of int
        Shape of the batch, e.g. ``(n_envs, n_links)``; ``shape[0]`` is what
        ``reset(..., mask=...)`` selects over.

    Attributes
    ----------
    n_reset_uniforms : int
        Uniforms per link that :meth:`reset` takes (markov 2, trace 2, wired 0).
    n_step_uniforms : int
        Uniforms per link that :meth:`step` takes (markov 2, trace 0, wired 0).
    rates : numpy.ndarray
        The current rates, float64 Mbps, ``shape``; read-only (each call returns a new
        array; earlier arrays are never modified).
    """

    def __init__(self, link: LinkClass, slot_s: float, shape: Sequence[int] | int):
        if not (_is_number(slot_s) and slot_s > 0):
            raise ValueError(f"slot_s must be a positive number, got {slot_s!r}")
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        shp = tuple(int(s) for s in shape)
        if not shp or any(s < 1 for s in shp):
            raise ValueError(f"shape must be a non-empty tuple of positive ints, got {shape!r}")
        self.link = link
        self.slot_s = float(slot_s)
        self.shape: tuple[int, ...] = shp
        self._rates: np.ndarray | None = None
        p = link.params
        if isinstance(p, MarkovParams):
            self.n_reset_uniforms, self.n_step_uniforms = 2, 2
            cal = markov_calibration(link)
            self._k = cal.levels_mbps.size
            self._log_levels = np.log(cal.levels_mbps) - 0.5 * cal.noise_sigma**2
            self._p_switch = -math.expm1(-cal.switch_rate_hz * self.slot_s)
            self._rho = math.exp(-self.slot_s / p.noise_tau_s)
            self._sigma = cal.noise_sigma
            self._innov = cal.noise_sigma * math.sqrt(max(0.0, 1.0 - self._rho**2))
            self._table = _normal_table()
            self._ntab = float(self._table.size)
            self._innov_table = self._table * self._innov  # innovations of the OU step
            self._state = np.zeros(shp, dtype=np.intp)
            self._loglev = np.zeros(shp)  # log level of the current state (minus s^2/2)
            self._x = np.zeros(shp)  # log of the fast factor
            self._ibuf = np.zeros(shp, dtype=np.intp)
        elif isinstance(p, TraceParams):
            self.n_reset_uniforms, self.n_step_uniforms = 2, 0
            grids = [
                np.maximum(t.resample(self.slot_s) * p.scale, FLOOR_MBPS)
                for t in link.load_traces()
            ]
            self._flat = _readonly(np.concatenate(grids))
            self._lens = np.array([g.size for g in grids], dtype=np.intp)
            self._starts = np.concatenate(([0], np.cumsum(self._lens)[:-1])).astype(np.intp)
            self._trace_idx = np.zeros(shp, dtype=np.intp)
            self._base = np.zeros(shp, dtype=np.intp)
            self._len = np.ones(shp, dtype=np.intp)
            self._pos = np.zeros(shp, dtype=np.intp)
        else:
            assert isinstance(p, WiredParams)
            self.n_reset_uniforms, self.n_step_uniforms = 0, 0
            self._const = max(float(p.rate_mbps), FLOOR_MBPS)

    # -- helpers ------------------------------------------------------------------------
    @property
    def rates(self) -> np.ndarray:
        """Current rates (float64 Mbps, read-only); ``reset`` must have been called."""
        if self._rates is None:
            raise RuntimeError("LinkProcess: call reset() first")
        return self._rates

    def _check(self, u: np.ndarray | None, n: int, what: str) -> np.ndarray:
        return _check_uniforms(u, (*self.shape, n), what)

    def __repr__(self) -> str:
        return f"LinkProcess({self.link.name!r}, slot_s={self.slot_s}, shape={self.shape})"

    # -- reset --------------------------------------------------------------------------
    def reset(self, u: np.ndarray | None, mask: np.ndarray | None = None) -> np.ndarray:
        """(Re)initialise links from their stationary law and return the rates.

        Parameters
        ----------
        u : numpy.ndarray
            Uniforms in [0, 1), shape ``(*shape, n_reset_uniforms)`` (``None`` allowed
            when ``n_reset_uniforms == 0``).
        mask : numpy.ndarray of bool, optional
            Over ``shape[0]``: reinitialise only these rows (their uniforms are read from
            the same rows of ``u``); the other rows keep their state and rates.

        Returns
        -------
        numpy.ndarray
            The rates of the current slot, float64 Mbps, ``shape``.
        """
        u = self._check(u, self.n_reset_uniforms, "reset")
        rows = _reset_rows(mask, self.shape[0], first=self._rates is None, who="LinkProcess")
        p = self.link.params
        if isinstance(p, MarkovParams):
            uu = u[rows]
            st = np.minimum((uu[..., 0] * self._k).astype(np.intp), self._k - 1)
            self._state[rows] = st
            self._loglev[rows] = self._log_levels[st]
            zi = (uu[..., 1] * self._ntab).astype(np.intp)
            self._x[rows] = self._sigma * self._table.take(zi, mode="clip")
            out = np.exp(self._x + self._loglev)
        elif isinstance(p, TraceParams):
            uu = u[rows]
            n = self._lens.size
            j = np.clip((uu[..., 0] * n).astype(np.intp), 0, n - 1)
            ln = self._lens[j]
            pos = np.minimum((uu[..., 1] * ln).astype(np.intp), ln - 1)
            self._trace_idx[rows] = j
            self._base[rows] = self._starts[j]
            self._len[rows] = ln
            self._pos[rows] = np.maximum(pos, 0)
            out = self._flat.take(self._base + self._pos)
        else:
            out = np.full(self.shape, self._const)
        np.maximum(out, FLOOR_MBPS, out=out)
        self._rates = _readonly(out)
        return self._rates

    # -- step ---------------------------------------------------------------------------
    def step(self, u: np.ndarray | None) -> np.ndarray:
        """Advance every link by one slot and return the new rates.

        Parameters
        ----------
        u : numpy.ndarray
            Uniforms in [0, 1), shape ``(*shape, n_step_uniforms)`` (an empty last axis,
            or ``None``, when ``n_step_uniforms == 0``).

        Returns
        -------
        numpy.ndarray
            The rates of the next slot, float64 Mbps (>= ``FLOOR_MBPS``), ``shape``.
        """
        if self._rates is None:
            raise RuntimeError("LinkProcess: call reset() first")
        u = self._check(u, self.n_step_uniforms, "step")
        p = self.link.params
        if isinstance(p, MarkovParams):
            uf = u.reshape(-1, 2)
            # state: redrawn with probability p_switch; given a redraw, u0 / p_switch is
            # itself uniform on [0, 1) and picks the new state
            hit = np.flatnonzero(uf[:, 0] < self._p_switch)
            if hit.size:
                st = np.minimum(
                    (uf[hit, 0] * (self._k / self._p_switch)).astype(np.intp), self._k - 1
                )
                self._state.reshape(-1)[hit] = st  # C-contiguous: reshape is a view
                self._loglev.reshape(-1)[hit] = self._log_levels[st]
            # fast factor: exact Ornstein-Uhlenbeck step of its log
            np.multiply(u[..., 1], self._ntab, out=self._ibuf, casting="unsafe")
            z = self._innov_table.take(self._ibuf, mode="clip")
            self._x *= self._rho
            self._x += z
            np.add(self._x, self._loglev, out=z)
            out = np.exp(z, out=z)
            if out.min() < FLOOR_MBPS:  # rare: cheaper to test than to clamp every slot
                np.maximum(out, FLOOR_MBPS, out=out)
        elif isinstance(p, TraceParams):
            self._pos += 1
            np.subtract(self._pos, self._len, out=self._pos, where=self._pos >= self._len)
            out = self._flat.take(self._base + self._pos)
        else:
            out = np.full(self.shape, self._const)
        self._rates = _readonly(out)
        return self._rates


class LinkBank:
    """Links of several classes stepped as one batch.

    Link ``l`` (the last axis of ``shape``) is of class ``links[l]``. Each link takes the
    uniforms its class's :class:`LinkProcess` would take, from the first entries of its row of
    ``u`` (the last axis of ``u`` is the largest count over the classes), and gives the same
    rates as that process fed the same uniforms. All ``"markov"`` links, whatever their class,
    are stepped together with per-link parameters, so a bank costs a handful of array
    operations per slot however many classes it mixes; ``"trace"`` classes keep one
    :class:`LinkProcess` each and ``"wired"`` links are constant.

    Parameters
    ----------
    links : sequence of LinkClass
        The class of each link, ``len(links) == shape[-1]``.
    slot_s : float
        Slot length in seconds.
    shape : tuple of int
        Shape of the batch, e.g. ``(n_envs, n_links)``; ``shape[0]`` is what
        ``reset(..., mask=...)`` selects over.

    Attributes
    ----------
    n_reset_uniforms, n_step_uniforms : int
        Uniforms per link that :meth:`reset` and :meth:`step` take (the largest over the
        classes; a link reads the first ones its class needs).
    rates : numpy.ndarray
        The current rates, float64 Mbps, ``shape``; read-only, as for :class:`LinkProcess`.

    >>> import numpy as np
    >>> from edgesplit.cost_models.links import LinkBank, load_links
    >>> cat = load_links()
    >>> bank = LinkBank([cat["lte"], cat["wifi"], cat["nr_5g"]], slot_s=0.1, shape=(4, 3))
    >>> rng = np.random.default_rng(0)
    >>> r0 = bank.reset(rng.random((4, 3, bank.n_reset_uniforms)))
    >>> bank.step(rng.random((4, 3, bank.n_step_uniforms))).shape
    (4, 3)
    """

    def __init__(self, links: Sequence[LinkClass], slot_s: float, shape: Sequence[int] | int):
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        shp = tuple(int(s) for s in shape)
        links = list(links)
        if not shp or len(links) != shp[-1]:
            raise ValueError(
                f"LinkBank: {len(links)} link classes for shape {shape!r} (need shape[-1])"
            )
        # LinkProcess validates slot_s and shape; one per class (they also give the
        # per-class constants of the fused markov step)
        by_class: dict[LinkClass, list[int]] = {}
        for i, lc in enumerate(links):
            by_class.setdefault(lc, []).append(i)
        self.link_classes = links
        self.slot_s = float(slot_s)
        self.shape: tuple[int, ...] = shp
        self._rates: np.ndarray | None = None
        self._procs = {
            lc: LinkProcess(lc, slot_s, (*shp[:-1], len(cols))) for lc, cols in by_class.items()
        }
        self.n_reset_uniforms = max(p.n_reset_uniforms for p in self._procs.values())
        self.n_step_uniforms = max(p.n_step_uniforms for p in self._procs.values())
        n_l = shp[-1]
        # markov links: one fused process with per-link constants
        mcols = [i for i, lc in enumerate(links) if isinstance(lc.params, MarkovParams)]
        self._mcols: slice | np.ndarray = (
            slice(None) if len(mcols) == n_l else np.array(mcols, dtype=np.intp)
        )
        self._has_markov = bool(mcols)
        if mcols:
            procs = [self._procs[links[i]] for i in mcols]
            kmax = max(p._k for p in procs)
            lev = np.zeros((len(mcols), kmax))
            for r, p in enumerate(procs):
                lev[r, : p._k] = p._log_levels
                lev[r, p._k :] = p._log_levels[-1]
            self._m_k = np.array([p._k for p in procs], dtype=np.intp)
            self._m_kf = self._m_k.astype(np.float64)
            self._m_log_levels = lev.reshape(-1)  # [Lm * kmax], row r at r * kmax
            self._m_row = np.arange(len(mcols), dtype=np.intp) * kmax
            self._m_p_switch = np.array([p._p_switch for p in procs])
            self._m_k_over_p = np.array([p._k / p._p_switch for p in procs])
            self._m_rho = np.array([p._rho for p in procs])
            self._m_sigma = np.array([p._sigma for p in procs])
            self._m_innov = np.array([p._innov for p in procs])
            self._table = _normal_table()
            self._ntab = float(self._table.size)
            mshape = (*shp[:-1], len(mcols))
            self._m_row_b = np.broadcast_to(self._m_row, mshape)
            self._m_state = np.zeros(mshape, dtype=np.intp)
            self._m_loglev = np.zeros(mshape)
            self._m_x = np.zeros(mshape)
            self._m_ibuf = np.zeros(mshape, dtype=np.intp)
        # other classes: their own process over their columns
        self._others = [
            (self._procs[lc], np.array(cols, dtype=np.intp))
            for lc, cols in by_class.items()
            if not isinstance(lc.params, MarkovParams)
        ]

    @property
    def rates(self) -> np.ndarray:
        """Current rates (float64 Mbps, read-only); ``reset`` must have been called."""
        if self._rates is None:
            raise RuntimeError("LinkBank: call reset() first")
        return self._rates

    def __repr__(self) -> str:
        names = sorted({lc.name for lc in self.link_classes})
        return f"LinkBank({names}, slot_s={self.slot_s}, shape={self.shape})"

    def _check(self, u: np.ndarray | None, n: int, what: str) -> np.ndarray:
        return _check_uniforms(u, (*self.shape, n), what)

    def reset(self, u: np.ndarray | None, mask: np.ndarray | None = None) -> np.ndarray:
        """(Re)initialise links from their stationary law; as :meth:`LinkProcess.reset`."""
        u = self._check(u, self.n_reset_uniforms, "reset")
        rows = _reset_rows(mask, self.shape[0], first=self._rates is None, who="LinkBank")
        out = np.empty(self.shape) if self._rates is None else self._rates.copy()
        if self._has_markov:
            uu = u[..., self._mcols, :][rows]
            st = np.minimum((uu[..., 0] * self._m_kf).astype(np.intp), self._m_k - 1)
            self._m_state[rows] = st
            self._m_loglev[rows] = self._m_log_levels.take(self._m_row_b[rows] + st)
            zi = (uu[..., 1] * self._ntab).astype(np.intp)
            self._m_x[rows] = self._m_sigma * self._table.take(zi, mode="clip")
            out[..., self._mcols] = np.exp(self._m_x + self._m_loglev)
        for proc, cols in self._others:
            uc = u[..., cols, : proc.n_reset_uniforms]
            out[..., cols] = proc.reset(uc, mask=mask)
        np.maximum(out, FLOOR_MBPS, out=out)
        self._rates = _readonly(out)
        return self._rates

    def step(self, u: np.ndarray | None) -> np.ndarray:
        """Advance every link by one slot and return the new rates; as
        :meth:`LinkProcess.step`."""
        if self._rates is None:
            raise RuntimeError("LinkBank: call reset() first")
        u = self._check(u, self.n_step_uniforms, "step")
        if not self._has_markov:
            out = np.empty(self.shape)
        else:
            um = u if isinstance(self._mcols, slice) else u[..., self._mcols, :]
            u0 = um[..., 0]
            hit = np.flatnonzero(u0 < self._m_p_switch)
            if hit.size:
                rr = hit % self._m_k.size
                st = np.minimum(
                    (u0.reshape(-1)[hit] * self._m_k_over_p[rr]).astype(np.intp),
                    self._m_k[rr] - 1,
                )
                self._m_state.reshape(-1)[hit] = st
                self._m_loglev.reshape(-1)[hit] = self._m_log_levels.take(self._m_row[rr] + st)
            # fast factor: exact Ornstein-Uhlenbeck step of its log
            np.multiply(um[..., 1], self._ntab, out=self._m_ibuf, casting="unsafe")
            z = self._table.take(self._m_ibuf, mode="clip")
            z *= self._m_innov
            self._m_x *= self._m_rho
            self._m_x += z
            np.add(self._m_x, self._m_loglev, out=z)
            if isinstance(self._mcols, slice):
                out = np.exp(z, out=z)
            else:
                out = np.empty(self.shape)
                out[..., self._mcols] = np.exp(z)
        for proc, cols in self._others:
            uc = u[..., cols, : proc.n_step_uniforms]
            out[..., cols] = proc.step(uc)
        if out.min() < FLOOR_MBPS:  # rare: cheaper to test than to clamp every slot
            np.maximum(out, FLOOR_MBPS, out=out)
        self._rates = _readonly(out)
        return self._rates
