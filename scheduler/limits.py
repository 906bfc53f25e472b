"""The service's limits (a module of their own: the CLI reads the defaults without importing
the server, whose dependencies are the ``scheduler`` extra).

>>> Limits(max_body=4096).max_depth
32
>>> Limits(backlog=5)
Traceback (most recent call last):
...
ValueError: limits.backlog: expected at least 128, got 5
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["MAX_BODY", "Limits"]

MAX_BODY = 1 << 20  # bytes


@dataclass(frozen=True)
class Limits:
    """What one request and one server may take (see the module docstring)."""

    max_body: int = MAX_BODY  # bytes of a request body
    max_depth: int = 32  # nesting of a request body (a snapshot nests 5 deep)
    request_timeout_s: float = 10.0  # for a request to arrive whole (headers and body)
    keep_alive_s: int = 5  # an idle keep-alive connection is closed after this
    max_connections: int = 512  # open at once, per worker
    backlog: int = 2048  # listen backlog (the kernel caps it at net.core.somaxconn)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"limits.{f.name}: expected a positive number, got {v!r}")
        if self.backlog < 128:
            raise ValueError(f"limits.backlog: expected at least 128, got {self.backlog}")
