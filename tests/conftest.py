"""Shared test set-up: one torch thread (fast and quiet on a shared 2-core machine)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

try:  # torch is optional for the environment tests
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

REPO = Path(__file__).resolve().parents[1]
SHARED_TRACES = REPO.parent / "shared" / "data" / "traces"


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    """../shared/data/traces (public reference traces), skipping when absent."""
    if not SHARED_TRACES.is_dir():
        pytest.skip("../shared/data/traces is not present")
    return SHARED_TRACES


@pytest.fixture
def drained_socket() -> Iterator[Callable[[], socket.socket]]:
    """A factory of client sockets connected on 127.0.0.1 to a peer that a thread drains
    (a link's receiving end); every socket it made is closed at the end of the test."""
    opened: list[socket.socket] = []

    def make() -> socket.socket:
        srv = socket.create_server(("127.0.0.1", 0))
        cli = socket.create_connection(srv.getsockname(), timeout=5)
        conn, _ = srv.accept()
        opened.extend((cli, conn, srv))

        def drain() -> None:
            try:
                while conn.recv(1 << 20):
                    pass
            except OSError:  # closed under it at the end of the test
                pass

        threading.Thread(target=drain, daemon=True).start()
        return cli

    yield make
    for s in opened:
        s.close()
