"""Throughput traces: the ``time_s<TAB>Mbps`` files (the Pensieve format) that ``"trace"``
link classes replay.

:func:`load_trace` reads and checks one file (a :class:`TraceError` names the file, the line
and the value); :func:`cached_trace` is the same, cached by path, modification time and size,
as the link classes use it.

>>> import tempfile, pathlib
>>> f = pathlib.Path(tempfile.mkdtemp()) / "t.tsv"
>>> _ = f.write_text("0\\t5.0\\n1\\t1.0\\n2\\t3.0\\n")
>>> tr = load_trace(f)
>>> tr.n_samples, tr.period_s, tr.mean_mbps
(3, 3.0, 3.0)
>>> tr.resample(0.5).tolist()
[5.0, 5.0, 1.0, 1.0, 3.0, 3.0]

:func:`trace_files` lists the traces of a directory (by default the package's synthetic
traces, :func:`default_trace_dir`), optionally by name or glob pattern, and
:func:`set_stats` gives the mean and SD of a set of traces each equally likely, as a
``"trace"`` link class replays them:

>>> [p.name for p in trace_files(f.parent)]
['t.tsv']
>>> [p.name for p in trace_files(default_trace_dir(), ["synthetic_3g_[01].tsv"])]
['synthetic_3g_0.tsv', 'synthetic_3g_1.tsv']
>>> set_stats([tr])
(3.0, 1.632993161855452)
"""

from __future__ import annotations

import fnmatch
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Trace",
    "TraceDirError",
    "TraceError",
    "cached_trace",
    "default_trace_dir",
    "load_trace",
    "readonly",
    "set_stats",
    "trace_files",
]


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


def readonly(a: np.ndarray) -> np.ndarray:
    """Mark ``a`` read-only (in place) and return it."""
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
        times_s=readonly(np.array(times, dtype=np.float64)),
        rates_mbps=readonly(np.array(rates, dtype=np.float64)),
    )


@functools.lru_cache(maxsize=512)
def _load_trace_cached(path: str, mtime_ns: int, size: int) -> Trace:
    return load_trace(path)


def cached_trace(path: Path) -> Trace:
    """:func:`load_trace`, cached by path, modification time and size (a changed file is
    read again)."""
    try:
        st = path.stat()
    except OSError:
        return load_trace(path)  # raises TraceError naming the file
    return _load_trace_cached(str(path), st.st_mtime_ns, st.st_size)


class TraceDirError(ValueError):
    """A directory of traces that cannot serve: missing, empty, or a pattern that matches
    no file in it.

    Attributes
    ----------
    directory : str
        The directory.
    pattern : str or None
        The name or glob pattern that matched nothing (``None``: the directory itself is
        the problem).
    problem : str
        What is wrong.
    """

    def __init__(self, directory: str | os.PathLike[str], pattern: str | None, problem: str):
        self.directory = str(directory)
        self.pattern = pattern
        self.problem = problem
        what = self.directory if pattern is None else f"{self.directory}, pattern {pattern!r}"
        super().__init__(f"{what}: {problem}")


def default_trace_dir() -> Path:
    """The package's synthetic traces, ``cost_models/data/traces`` (four 400 s files drawn
    by ``python -m edgesplit.cost_models.make_synthetic_traces``)."""
    return Path(__file__).resolve().parent.parent / "data" / "traces"


def _is_trace_name(name: str) -> bool:
    """Whether a directory listing counts this file name as a trace: not hidden, not a
    README, not Markdown (the documentation that sits beside traces)."""
    low = name.lower()
    return not (low.startswith((".", "readme")) or low.endswith(".md"))


def trace_files(
    directory: str | os.PathLike[str], patterns: list[str] | tuple[str, ...] | None = None
) -> list[Path]:
    """The trace files of a directory, sorted by name.

    The traces of a directory are its regular files, except hidden files, ``README*`` and
    ``*.md``. Each pattern is a file name or a glob pattern (``fnmatch``: ``*``, ``?``,
    ``[...]``) over those names; subdirectories are not searched.

    Parameters
    ----------
    directory : str or os.PathLike
        The directory.
    patterns : list of str, optional
        Keep only the files that match at least one pattern (``None``: every trace file).

    Returns
    -------
    list of Path
        Absolute paths, sorted by name, each once.

    Raises
    ------
    TraceDirError
        The directory does not exist, holds no trace file, or a pattern matches none.
    """
    d = Path(directory)
    if not d.is_dir():
        raise TraceDirError(d, None, "no such directory")
    names = sorted(p.name for p in d.iterdir() if p.is_file() and _is_trace_name(p.name))
    if not names:
        raise TraceDirError(d, None, "holds no trace file (README*, *.md and hidden files skipped)")
    if patterns is None:
        return [(d / n).resolve() for n in names]
    keep: set[str] = set()
    for pat in patterns:
        hit = fnmatch.filter(names, pat)
        if not hit:
            raise TraceDirError(d, pat, f"matches no trace file ({len(names)} in the directory)")
        keep.update(hit)
    return [(d / n).resolve() for n in sorted(keep)]


def set_stats(traces: list[Trace] | tuple[Trace, ...]) -> tuple[float, float]:
    """Mean and SD (Mbps) of the rate of a set of traces, each equally likely and
    time-weighted within itself: the long-run figures of a ``"trace"`` link that picks one
    trace uniformly and starts it at a uniform offset.

    Raises
    ------
    ValueError
        An empty set.
    """
    if not traces:
        raise ValueError("set_stats: no traces")
    w = np.concatenate([t.holding_s / t.period_s for t in traces])
    v = np.concatenate([t.rates_mbps for t in traces])
    m = float(np.average(v, weights=w))
    return m, float(np.sqrt(np.average((v - m) ** 2, weights=w)))
