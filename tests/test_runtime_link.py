"""The emulated link: paced transfers take bytes * 8 / rate (within 15%), plus the delay."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from edgesplit.runtime.link import EmulatedLink, TokenBucket, TracePacer


@pytest.fixture
def loopback():
    """A connected TCP pair on 127.0.0.1 whose receiving end drains and counts bytes."""
    srv = socket.create_server(("127.0.0.1", 0))
    cli = socket.create_connection(srv.getsockname(), timeout=5)
    conn, _ = srv.accept()
    got = {"bytes": 0, "last": 0.0}

    def drain():
        while data := conn.recv(1 << 20):
            got["bytes"] += len(data)
            got["last"] = time.perf_counter()

    th = threading.Thread(target=drain, daemon=True)
    th.start()
    yield cli, got
    cli.close()
    th.join(5)
    conn.close()
    srv.close()


@pytest.mark.parametrize(("rate_mbps", "n_bytes"), [(5, 60_000), (20, 200_000), (100, 802_816)])
def test_paced_transfer_matches_bytes_over_rate(loopback, rate_mbps, n_bytes):
    cli, got = loopback
    expected = n_bytes * 8 / (rate_mbps * 1e6)
    start = time.perf_counter()
    spent = TokenBucket(rate_mbps).send(cli, b"\0" * n_bytes)
    deadline = time.time() + 5
    while got["bytes"] < n_bytes and time.time() < deadline:
        time.sleep(0.001)
    assert got["bytes"] == n_bytes
    assert spent == pytest.approx(expected, rel=0.15)
    # the receiver has the last byte no earlier than the link would have delivered it
    assert got["last"] - start >= expected


def test_round_trip_delay_is_added_half_each_way(loopback):
    cli, _ = loopback
    link = EmulatedLink.constant(20, rtt_s=0.02)
    t = time.perf_counter()
    link.send(cli, b"\0" * 25_000)  # 10 ms at 20 Mbps
    link.after_reply()
    assert time.perf_counter() - t == pytest.approx(0.03, rel=0.15)


def test_trace_pacer_integrates_the_rate():
    # 8 Mbps for 0.5 s, 16 Mbps for 0.5 s, then 0 for 0.5 s (the median interval), looped
    p = TracePacer(np.array([0.0, 0.5, 1.0]), np.array([8.0, 16.0, 0.0]))
    assert p.schedule(500_000) == pytest.approx(0.5)
    assert p.schedule(1_500_000) == pytest.approx(1.0)
    assert p.schedule(1_600_000) == pytest.approx(1.6)  # waits out the outage, wraps
    assert p.mean_mbps == pytest.approx(8.0)


def test_bad_rates_are_refused():
    with pytest.raises(ValueError, match="rate_mbps"):
        TokenBucket(0)
    with pytest.raises(ValueError, match="rtt_s"):
        EmulatedLink(None, rtt_s=-1)
