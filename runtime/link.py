"""An emulated link on one machine: a sender-side pacer plus a round-trip delay.

No privileges needed: the sender hands bytes to the socket no faster than the link's rate
(a token bucket, or a throughput trace), and the device adds the round-trip time, half
before its frame leaves and half after the answer arrives. On loopback the kernel adds
almost nothing, so a transfer of ``n`` bytes takes ``n * 8 / rate`` plus the delay: what
the simulator counts (``tx = bytes * 8 / rate + rtt``).

**Pacing rule** (a token bucket of ``burst_bytes``, filling at ``rate / 8`` bytes per
second): the link serialises bytes back to back at the rate, and a chunk of
:data:`CHUNK` bytes is handed to the socket ``burst_bytes`` worth of time before the link
would have delivered its last byte (by default 0: exactly then, so the receiver never has
a byte early); :meth:`Pacer.send` returns when the last byte's serialisation time has
passed. ``n`` bytes on an idle link therefore take ``n * 8 / rate`` seconds.

A trace-driven pacer follows a ``time_s<TAB>Mbps`` trace (``edgesplit.cost_models.links``'
format, looped), integrating the rate over time.

**Shared access points.** Devices behind one access point share its airtime, as in the
simulator: :class:`AccessPoint` serves the transfers in flight through it by generalised
processor sharing (each gets ``weight / sum of the weights in flight`` of the medium's time,
at its own device's rate), and a :class:`SharedPacer` is one device's link into it. A
transfer alone takes ``n * 8 / rate``; two of equal weight that overlap each go at half
their rate while they overlap, and the one left alone then goes at its full rate again.
The simulator's slot model assumes the tasks of a slot overlap for the whole of their
transfers (``tx = bytes * 8 * sum(w) / (w * rate)``) and with no other slot's; here a
finished transfer frees its share and a long one shares with the next slot's transfers, as
on a real medium, so the two can differ either way.

**Kernel-level alternative** (root on Linux; ``tbf`` works on this project's kernel,
``netem`` does not): put the server in a network namespace behind a veth pair and shape
the device's side with a token bucket filter, e.g.::

    ip netns add edge && ip link add veth0 type veth peer name veth1
    ip link set veth1 netns edge
    ip addr add 10.0.0.1/24 dev veth0 && ip link set veth0 up
    ip netns exec edge ip addr add 10.0.0.2/24 dev veth1
    ip netns exec edge ip link set veth1 up
    tc qdisc add dev veth0 root tbf rate 20mbit burst 16kb latency 400ms
    ip netns exec edge python -m edgesplit.runtime serve --parts parts/resnet18 --host 10.0.0.2

(then no pacer on the device: ``--rate-mbps 0``; tbf adds no delay, so keep ``--rtt-ms``).

>>> link = TokenBucket(rate_mbps=8.0)   # 1 MB/s
>>> round(link.schedule(500_000), 3)    # seconds until 500 kB have left
0.5
"""

from __future__ import annotations

import itertools
import math
import numbers
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "CHUNK",
    "AccessPoint",
    "Airtime",
    "EmulatedLink",
    "Pacer",
    "SharedPacer",
    "TokenBucket",
    "TracePacer",
    "check_weight",
    "gps_finish_times",
]

CHUNK = 8 * 1024
"""Bytes handed to the socket at a time by a pacer."""


class Pacer:
    """Base of the pacers: :meth:`send` writes bytes to a socket at the link's pace."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self._lock = threading.Lock()

    def schedule(self, n_bytes: int) -> float:
        """Seconds the pacer needs to let ``n_bytes`` out of an idle link (no sleeping)."""
        raise NotImplementedError

    def _release_times(self, sizes: list[int], start: float) -> list[float]:
        raise NotImplementedError

    def send(self, sock: socket.socket, data: bytes, weight: float = 1.0) -> float:
        """Send ``data`` paced; returns the seconds spent (from the first byte offered to
        the moment the last chunk's serialisation time has passed). ``weight`` is the
        transfer's share of a shared medium (:class:`SharedPacer`); a link of its own has
        no one to share with, so it only checks it."""
        check_weight(weight)
        view = memoryview(data)
        sizes = [min(CHUNK, len(data) - i) for i in range(0, len(data), CHUNK)] or [0]
        with self._lock:  # one transfer at a time on a link
            start = self.clock()
            times = self._release_times(sizes, start)
            offset = 0
            for size, (leave, _done) in zip(sizes, times, strict=True):
                _sleep_until(leave, self.clock)
                sock.sendall(view[offset : offset + size])
                offset += size
            _sleep_until(times[-1][1], self.clock)
            return self.clock() - start


class TokenBucket(Pacer):
    """A constant-rate pacer: a token bucket of ``burst_bytes`` at ``rate_mbps``.

    Parameters
    ----------
    rate_mbps
        Link rate, Mbps (10^6 bit/s).
    burst_bytes
        Bucket depth; the default (0) hands each chunk to the socket when the link would
        have delivered its last byte, so nothing reaches the receiver early.
    """

    def __init__(
        self,
        rate_mbps: float,
        burst_bytes: int = 0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(clock)
        if not (isinstance(rate_mbps, (int, float)) and math.isfinite(rate_mbps) and rate_mbps > 0):
            raise ValueError(f"rate_mbps must be a positive number, got {rate_mbps!r}")
        if burst_bytes < 0:
            raise ValueError(f"burst_bytes must be >= 0, got {burst_bytes!r}")
        self.rate_mbps = float(rate_mbps)
        self.burst = int(burst_bytes)
        self._busy = -math.inf

    def schedule(self, n_bytes: int) -> float:
        """Seconds to send ``n_bytes`` on an idle link: ``n_bytes * 8 / rate``."""
        return n_bytes * 8 / (self.rate_mbps * 1e6)

    def _release_times(self, sizes: list[int], start: float) -> list[tuple[float, float]]:
        bps = self.rate_mbps * 1e6 / 8
        busy = max(start, self._busy)  # when the link has serialised what went before
        ahead = self.burst / bps  # the bucket lets a chunk out this much early
        out = []
        for size in sizes:
            busy += size / bps
            leave = max(start, busy - ahead)  # no byte arrives before the link delivers it
            out.append((leave, busy))
        self._busy = busy
        return out


class TracePacer(Pacer):
    """A pacer following a throughput trace (Mbps over time, looped from ``offset_s``).

    Parameters
    ----------
    times_s, rates_mbps
        The trace: rate ``rates_mbps[i]`` from ``times_s[i]`` to ``times_s[i + 1]`` (the
        last holds for the median interval), as :class:`edgesplit.cost_models.links.Trace`.
    offset_s
        Where in the trace the link starts at its first use.
    """

    def __init__(
        self,
        times_s: np.ndarray,
        rates_mbps: np.ndarray,
        offset_s: float = 0.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(clock)
        t = np.asarray(times_s, dtype=np.float64)
        r = np.asarray(rates_mbps, dtype=np.float64)
        if t.ndim != 1 or t.shape != r.shape or t.size < 2 or np.any(np.diff(t) <= 0):
            raise ValueError("times_s must be increasing and match rates_mbps (>= 2 samples)")
        if np.any(r < 0) or not np.any(r > 0):
            raise ValueError("rates_mbps must be >= 0 with at least one positive rate")
        hold = np.append(np.diff(t), np.median(np.diff(t)))
        self._start_t = t - t[0]
        self._hold = hold
        self._bytes_per_s = r * 1e6 / 8
        self.period_s = float(hold.sum())
        self._per_period = float((self._bytes_per_s * hold).sum())
        self.offset_s = float(offset_s)
        self._t0: float | None = None

    @classmethod
    def from_file(cls, path: str | Path, offset_s: float = 0.0) -> TracePacer:
        """A pacer over a trace file (``edgesplit.cost_models.links.load_trace``)."""
        from edgesplit.cost_models.links import load_trace

        tr = load_trace(path)
        return cls(tr.times_s, tr.rates_mbps, offset_s)

    @property
    def mean_mbps(self) -> float:
        """Time-weighted mean rate of the trace."""
        return self._per_period * 8 / 1e6 / self.period_s

    def _advance(self, t_trace: float, n_bytes: float) -> float:
        """Trace time at which ``n_bytes`` have left when sending starts at ``t_trace``."""
        periods = math.floor(n_bytes / self._per_period) if n_bytes > self._per_period else 0
        n_bytes -= periods * self._per_period
        t = t_trace + periods * self.period_s
        while n_bytes > 1e-9:
            phase = t % self.period_s
            i = int(np.searchsorted(self._start_t, phase, side="right") - 1)
            left = self._start_t[i] + self._hold[i] - phase
            can = self._bytes_per_s[i] * left
            if can >= n_bytes:
                return t + n_bytes / self._bytes_per_s[i]
            n_bytes -= can
            t += left
        return t

    def schedule(self, n_bytes: int) -> float:
        """Seconds to send ``n_bytes`` starting at the trace's offset."""
        return self._advance(self.offset_s, n_bytes) - self.offset_s

    def _release_times(self, sizes: list[int], start: float) -> list[tuple[float, float]]:
        if self._t0 is None:
            self._t0 = start - self.offset_s  # wall time of trace time 0
        t = start - self._t0
        out = []
        for size in sizes:
            done = self._advance(t, size)
            out.append((t + self._t0, done + self._t0))
            t = done
        return out


class Airtime:
    """Generalised processor sharing of one medium's time, on an explicit clock.

    Each transfer in flight is served airtime at ``weight / W`` seconds per second, ``W``
    the sum of the weights in flight; a transfer of ``n`` bytes at its own device's rate
    ``r`` (bytes/s) needs ``n / r`` seconds of airtime. :class:`AccessPoint` drives it with
    the wall clock; :func:`gps_finish_times` with the events of a schedule.

    >>> air = Airtime(now=0.0)
    >>> a, b = air.join(1.0, now=0.0), air.join(3.0, now=0.0)
    >>> air.advance(1.0)
    >>> air.served(a), air.served(b)
    (0.25, 0.75)
    >>> air.time_to_serve(b, 1.0)   # b needs 0.25 s more of airtime, at 3/4 of the medium
    0.3333333333333333
    """

    def __init__(self, now: float = 0.0) -> None:
        self._t = float(now)
        self._flows: dict[int, list[float]] = {}  # id -> [weight, airtime served]
        self._ids = itertools.count()
        self._w = 0.0

    @property
    def in_flight(self) -> int:
        """Transfers in flight."""
        return len(self._flows)

    def advance(self, now: float) -> None:
        """Serve the transfers in flight up to ``now`` (an earlier ``now`` does nothing)."""
        dt = now - self._t
        if dt <= 0:
            return
        if self._w > 0:
            for f in self._flows.values():
                f[1] += dt * f[0] / self._w
        self._t = now

    def join(self, weight: float, now: float) -> int:
        """A transfer of ``weight`` starts at ``now``; returns its id."""
        check_weight(weight)
        self.advance(now)
        fid = next(self._ids)
        self._flows[fid] = [float(weight), 0.0]
        self._w += float(weight)
        return fid

    def leave(self, fid: int, now: float) -> None:
        """Transfer ``fid`` ends at ``now``."""
        self.advance(now)
        w, _ = self._flows.pop(fid)
        self._w = self._w - w if self._flows else 0.0

    def served(self, fid: int) -> float:
        """Airtime (s) transfer ``fid`` has been served."""
        return self._flows[fid][1]

    def time_to_serve(self, fid: int, need: float) -> float:
        """Seconds until ``fid`` has been served ``need`` of airtime, were nobody to join or
        leave meanwhile (<= 0: already)."""
        w, got = self._flows[fid]
        return (need - got) * self._w / w


def gps_finish_times(
    starts_s: Sequence[float], airtime_s: Sequence[float], weights: Sequence[float]
) -> np.ndarray:
    """When each transfer ends on a medium shared by :class:`Airtime` (the fluid model the
    live :class:`AccessPoint` follows): transfer ``i`` starts at ``starts_s[i]`` and needs
    ``airtime_s[i]`` seconds of the medium (bytes over its own rate).

    >>> gps_finish_times([0.0, 0.0], [1.0, 1.0], [1.0, 3.0])   # b at 3/4, then a alone
    array([2.        , 1.33333333])
    """
    st = np.asarray(starts_s, dtype=np.float64)
    need = np.asarray(airtime_s, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if not (st.shape == need.shape == w.shape and st.ndim == 1):
        raise ValueError("starts_s, airtime_s and weights must be 1-D of one length")
    if np.any(need < 0) or not np.all(np.isfinite(st)) or not np.all(np.isfinite(need)):
        raise ValueError("starts_s must be finite and airtime_s finite and >= 0")
    order = list(np.argsort(st, kind="stable"))
    t = float(st.min()) if st.size else 0.0
    air = Airtime(now=t)
    flows: dict[int, int] = {}  # flow id -> transfer index
    done = np.full(st.shape, np.nan)
    while order or flows:
        nxt = float(st[order[0]]) if order else math.inf
        fin, who = math.inf, None
        for fid, i in flows.items():
            left = air.time_to_serve(fid, float(need[i]))
            if t + left < fin:
                fin, who = t + left, fid
        if who is not None and fin <= nxt:
            air.advance(fin)
            t = fin
            done[flows.pop(who)] = fin
            air.leave(who, fin)
        else:
            i = order.pop(0)
            t = max(t, nxt)
            flows[air.join(float(w[i]), t)] = i
    return done


class AccessPoint:
    """One access point's airtime, shared live between the transfers through it
    (:class:`Airtime` on the wall clock; thread-safe): each device's :class:`SharedPacer`
    calls into it.

    Parameters
    ----------
    name
        The access point's name (for messages).
    """

    def __init__(self, name: str = "ap", clock: Callable[[], float] = time.perf_counter) -> None:
        self.name = name
        self.clock = clock
        self._air = Airtime(now=clock())
        self._cond = threading.Condition()

    @property
    def in_flight(self) -> int:
        """Transfers in flight through this access point."""
        with self._cond:
            return self._air.in_flight

    def join(self, weight: float) -> int:
        """A transfer of ``weight`` starts now; the others' shares shrink."""
        with self._cond:
            fid = self._air.join(weight, self.clock())
            self._cond.notify_all()
            return fid

    def leave(self, fid: int) -> None:
        """Transfer ``fid`` ends now; the others' shares grow."""
        with self._cond:
            self._air.leave(fid, self.clock())
            self._cond.notify_all()

    def wait_served(self, fid: int, need: float) -> None:
        """Block until transfer ``fid`` has been served ``need`` seconds of airtime."""
        with self._cond:
            while True:
                self._air.advance(self.clock())
                left = self._air.time_to_serve(fid, need)
                if left <= 1e-9:
                    return
                self._cond.wait(left)  # woken early when a transfer joins or leaves


class SharedPacer(Pacer):
    """A device's link into a shared :class:`AccessPoint`, at the device's own rate.

    Parameters
    ----------
    access_point
        The medium it shares.
    rate_mbps
        The device's rate when it has the medium to itself, Mbps.
    """

    def __init__(self, access_point: AccessPoint, rate_mbps: float) -> None:
        super().__init__(access_point.clock)
        if not (isinstance(rate_mbps, (int, float)) and math.isfinite(rate_mbps) and rate_mbps > 0):
            raise ValueError(f"rate_mbps must be a positive number, got {rate_mbps!r}")
        self.access_point = access_point
        self.rate_mbps = float(rate_mbps)
        self._mine = threading.local()  # each sending thread's own last airtime

    def schedule(self, n_bytes: int) -> float:
        """Seconds to send ``n_bytes`` with the access point to itself."""
        return n_bytes * 8 / (self.rate_mbps * 1e6)

    def send(self, sock: socket.socket, data: bytes, weight: float = 1.0) -> float:
        """Send ``data`` with a ``weight`` share of the access point's airtime while other
        transfers are in flight; a chunk leaves when its last byte's airtime is served."""
        check_weight(weight)
        bps = self.rate_mbps * 1e6 / 8
        view = memoryview(data)
        ap = self.access_point
        with self._lock:  # one transfer at a time on a device's link
            start = self.clock()
            fid = ap.join(weight)
            need = 0.0
            try:
                for offset in range(0, len(data), CHUNK):
                    size = min(CHUNK, len(data) - offset)
                    need += size / bps
                    ap.wait_served(fid, need)
                    sock.sendall(view[offset : offset + size])
            finally:
                ap.leave(fid)
            self._mine.airtime_s = need
            return self.clock() - start

    @property
    def last_airtime_s(self) -> float | None:
        """Seconds of the medium the calling thread's last transfer was served: its bytes
        over the device's own rate, what the device's radio reports as its link rate (the
        wall time it took includes the waits for the other devices' shares). Per thread, so
        that a device's overlapping tasks each read their own."""
        return getattr(self._mine, "airtime_s", None)


class EmulatedLink:
    """A pacer (``None``: unpaced) and a round-trip delay: what a device sends through.

    Parameters
    ----------
    pacer
        :class:`TokenBucket`, :class:`TracePacer` or ``None`` (a real network).
    rtt_s
        Round-trip delay added by the device: half before the frame leaves, half after the
        answer arrives.
    """

    def __init__(self, pacer: Pacer | None = None, rtt_s: float = 0.0) -> None:
        if not (math.isfinite(rtt_s) and rtt_s >= 0):
            raise ValueError(f"rtt_s must be >= 0, got {rtt_s!r}")
        self.pacer = pacer
        self.rtt_s = float(rtt_s)

    @classmethod
    def constant(cls, rate_mbps: float | None, rtt_s: float = 0.0) -> EmulatedLink:
        """A token-bucket link (``rate_mbps`` ``None`` or 0: unpaced)."""
        return cls(TokenBucket(rate_mbps) if rate_mbps else None, rtt_s)

    def send(self, sock: socket.socket, data: bytes, weight: float = 1.0) -> float:
        """Wait half the round trip, then send ``data`` paced (``weight``: its share of a
        shared access point, :class:`SharedPacer`); returns the pacing seconds."""
        check_weight(weight)
        if self.rtt_s:
            time.sleep(self.rtt_s / 2)
        if self.pacer is None:
            t = time.perf_counter()
            sock.sendall(data)
            return time.perf_counter() - t
        return self.pacer.send(sock, data, weight)

    @property
    def last_link_s(self) -> float | None:
        """Seconds the last transfer kept this device's own link busy: the airtime served
        through a shared access point (:attr:`SharedPacer.last_airtime_s`), else ``None``
        (the wall time of the transfer is then the measure)."""
        return getattr(self.pacer, "last_airtime_s", None)

    def after_reply(self) -> None:
        """The answer's half of the round trip."""
        if self.rtt_s:
            time.sleep(self.rtt_s / 2)


def check_weight(weight: float, name: str = "weight") -> None:
    """Refuse a share ``weight`` that is not a positive finite real number (a bool is not),
    naming the field ``name`` and the value."""
    ok = isinstance(weight, numbers.Real) and not isinstance(weight, bool)
    if not (ok and math.isfinite(weight) and weight > 0):
        raise ValueError(f"{name}: {weight!r} is not a positive number")


def _sleep_until(t: float, clock: Callable[[], float]) -> None:
    # release times are absolute, so a sleep's overshoot (~0.1 ms on Linux) never adds up
    left = t - clock()
    if left > 0:
        time.sleep(left)
