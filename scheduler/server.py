"""The scheduler as an HTTP service (standard library only).

=======  ===============  ==================================================================
method   path             answer
=======  ===============  ==================================================================
POST     ``/v1/decide``   the decisions for a snapshot (:mod:`edgesplit.scheduler.decide`)
GET      ``/v1/policy``   which policy is loaded and what it decides for
GET      ``/healthz``     ``{"status": "ok"}``
=======  ===============  ==================================================================

Bound to 127.0.0.1 unless told otherwise. Every request is validated: a body must be JSON
with ``Content-Type: application/json`` and at most ``max_body`` bytes (413 beyond it); a
malformed snapshot is answered 400 with ``{"error": ..., "field": ..., "value": ...}``
naming the field and the value; an unknown path 404, a wrong method 405. Nothing in a
request can make the server read files or unpickle anything.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .decide import RequestError, Scheduler

__all__ = ["MAX_BODY", "make_server", "serve"]

MAX_BODY = 1 << 20  # bytes
log = logging.getLogger("edgesplit.scheduler")


def _handler(scheduler: Scheduler, max_body: int) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()  # one onnxruntime session: answer one decision at a time

    class Handler(BaseHTTPRequestHandler):
        server_version = "edgesplit-scheduler/1"
        protocol_version = "HTTP/1.1"
        timeout = 30  # seconds a connection may idle, or under-send its body
        # headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK held every answer ~40 ms (benchmarks/scheduler.py)
        disable_nagle_algorithm = True

        def log_message(self, fmt: str, *args: Any) -> None:  # to logging, not stderr
            log.info("%s %s", self.address_string(), fmt % args)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, allow_nan=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, msg: str, **extra: Any) -> None:
            # the body may not have been read: never parse its rest as the next request
            self.close_connection = True
            self._send(status, {"error": msg, **extra})

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, {"status": "ok"})
            elif self.path == "/v1/policy":
                self._send(200, scheduler.policy.describe())
            elif self.path == "/v1/decide":
                self._error(405, "use POST for /v1/decide")
            else:
                self._error(404, f"no such path: {self.path}")

        def do_POST(self) -> None:
            if self.path != "/v1/decide":
                if self.path in ("/healthz", "/v1/policy"):
                    self._error(405, f"use GET for {self.path}")
                else:
                    self._error(404, f"no such path: {self.path}")
                return
            ctype = self.headers.get("Content-Type", "")
            if ctype.split(";")[0].strip().lower() != "application/json":
                self._error(415, f"Content-Type must be application/json, got {ctype!r}")
                return
            length = self.headers.get("Content-Length")
            if length is None or not re.fullmatch(r"[0-9]{1,12}", length):
                self._error(411, f"a Content-Length is required, got {length!r}")
                return
            n = int(length)
            if n > max_body:
                self.close_connection = True
                self._error(413, f"body of {n} bytes is over the limit of {max_body}")
                return
            raw = self.rfile.read(n)
            try:
                req = json.loads(raw, parse_constant=_reject_constant)
            except (UnicodeDecodeError, ValueError) as e:
                self._error(400, f"body is not valid JSON: {e}")
                return
            try:
                with lock:
                    answer = scheduler.decide(req)
            except RequestError as e:
                value = e.value if _jsonable(e.value) else repr(e.value)
                self._error(400, str(e), field=e.field, value=value)
                return
            except Exception as e:  # pragma: no cover - a bug: say so, keep serving
                log.exception("decide failed")
                self._error(500, f"internal error: {type(e).__name__}: {e}")
                return
            self._send(200, answer)

        def do_PUT(self) -> None:
            self._error(405, "method not allowed")

        do_DELETE = do_PATCH = do_PUT

    return Handler


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not valid JSON")


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def make_server(
    scheduler: Scheduler, host: str = "127.0.0.1", port: int = 8080, max_body: int = MAX_BODY
) -> ThreadingHTTPServer:
    """A server for ``scheduler`` (not started; ``port=0`` picks a free port)."""
    return ThreadingHTTPServer((host, port), _handler(scheduler, max_body))


def serve(
    scheduler: Scheduler, host: str = "127.0.0.1", port: int = 8080, max_body: int = MAX_BODY
) -> None:
    """Run the service until interrupted."""
    httpd = make_server(scheduler, host, port, max_body)
    log.warning(
        "serving %s policy (sha256 %s...) on http://%s:%d",
        scheduler.policy.algorithm,
        scheduler.policy.sha256[:12],
        *httpd.server_address[:2],
    )
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    finally:
        httpd.server_close()
