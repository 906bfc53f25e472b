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

import math
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["CHUNK", "EmulatedLink", "Pacer", "TokenBucket", "TracePacer"]

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

    def send(self, sock: socket.socket, data: bytes) -> float:
        """Send ``data`` paced; returns the seconds spent (from the first byte offered to
        the moment the last chunk's serialisation time has passed)."""
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

    def send(self, sock: socket.socket, data: bytes) -> float:
        """Wait half the round trip, then send ``data`` paced; returns the pacing seconds."""
        if self.rtt_s:
            time.sleep(self.rtt_s / 2)
        if self.pacer is None:
            t = time.perf_counter()
            sock.sendall(data)
            return time.perf_counter() - t
        return self.pacer.send(sock, data)

    def after_reply(self) -> None:
        """The answer's half of the round trip."""
        if self.rtt_s:
            time.sleep(self.rtt_s / 2)


def _sleep_until(t: float, clock: Callable[[], float]) -> None:
    # release times are absolute, so a sleep's overshoot (~0.1 ms on Linux) never adds up
    left = t - clock()
    if left > 0:
        time.sleep(left)
