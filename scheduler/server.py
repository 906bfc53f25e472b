"""The scheduler as an HTTP service: a Starlette application on uvicorn.

=======  ==================  ===============================================================
method   path                answer
=======  ==================  ===============================================================
POST     ``/v1/decide``      the decisions for a snapshot (:mod:`edgesplit.scheduler.decide`)
GET      ``/v1/policy``      which policy is loaded and what it decides for
GET      ``/healthz``        ``{"status": "ok"}``
GET      ``/metrics``        Prometheus metrics (:mod:`edgesplit.scheduler.metrics`)
GET      ``/openapi.json``   the OpenAPI 3.1 document, schemas written for the loaded policy
=======  ==================  ===============================================================

Bound to 127.0.0.1 unless told otherwise. Every error is JSON, ``{"error": ...}``; a
malformed snapshot is answered 400 with ``"field"`` and ``"value"`` naming the field and the
value. Limits (:class:`Limits`, each a flag of ``python -m edgesplit.scheduler serve``):

* **body size**: over ``max_body`` bytes, 413 (from ``Content-Length`` before anything is
  read, or while a chunked body streams in); not ``application/json``: 415;
* **nesting**: a body nested deeper than ``max_depth`` is refused 400 before it is parsed
  (:mod:`edgesplit.scheduler.safejson`); ``NaN`` and ``Infinity`` are not JSON;
* **time**: a request must arrive whole (headers and body) within ``request_timeout_s`` of
  its first byte, and a new connection must start one within as long; else it is answered
  408 and closed (one timer per request, in the protocol); an idle keep-alive connection is
  closed after ``keep_alive_s``;
* **connections**: at most ``max_connections`` open (uvicorn answers 503 beyond it), a
  listen backlog of ``backlog``; one event loop per worker, no thread per connection;
* **framing**: a request with both ``Content-Length`` and ``Transfer-Encoding`` is refused
  400 and its connection closed (request smuggling: httptools' parser refuses it already;
  h11 would let chunked win).

Nothing in a request can make the server read files or unpickle anything. ``workers > 1``
runs that many processes on one listening socket (uvicorn's supervisor); each loads the
policy and answers on its own, and ``/metrics`` adds up all of them.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import socket
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from . import safejson
from .decide import Scheduler
from .errors import RequestError
from .limits import MAX_BODY, Limits
from .metrics import Metrics
from .policy import load_policy
from .schema import openapi

__all__ = ["MAX_BODY", "BackgroundServer", "Limits", "create_app", "serve", "uvicorn_config"]

log = logging.getLogger("edgesplit.scheduler")
_ENV = "EDGESPLIT_SCHEDULER_SERVE"  # how `serve` hands its settings to worker processes
_ENDPOINTS = ("/v1/decide", "/v1/policy", "/healthz", "/metrics", "/openapi.json")


class _JSON(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate echoed from a request (``"\\ud800"`` is
    valid JSON) cannot be encoded as UTF-8, and would otherwise fail the answer."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def _error(status: int, message: str, close: bool = False, **extra: Any) -> JSONResponse:
    headers = {"Connection": "close"} if close else None
    return _JSON({"error": message, **extra}, status_code=status, headers=headers)


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


class _Guard:
    """Pure ASGI middleware in front of the app: refuses ambiguous framing, turns a failure
    outside the routes into a JSON 500, and counts every answer by endpoint and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in _ENDPOINTS else "(other)"
        status = 0

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def answer(resp: Response) -> None:
            await resp(scope, receive, send_counted)

        names = {k for k, _ in scope["headers"]}
        try:
            if b"transfer-encoding" in names and b"content-length" in names:
                await answer(
                    _error(400, "both Content-Length and Transfer-Encoding given", close=True)
                )
            else:
                await self.app(scope, receive, send_counted)
        except Exception as e:
            if status == 0:  # nothing sent yet: say what went wrong
                log.exception("request failed")
                await answer(_error(500, f"internal error: {type(e).__name__}", close=True))
            else:  # pragma: no cover - the answer was half sent: drop the connection
                raise
        finally:
            if status:
                self.metrics.count_request(endpoint, status)


def create_app(
    scheduler: Scheduler, limits: Limits | None = None, metrics: Metrics | None = None
) -> ASGIApp:
    """The service's ASGI application for ``scheduler`` (run it with uvicorn, or call it
    in-process, e.g. with ``httpx.ASGITransport``)."""
    lim = limits or Limits()
    met = metrics or Metrics()
    policy = scheduler.policy
    doc = openapi(
        scheduler.tables,
        policy.describe(),
        {
            "max_body": lim.max_body,
            "max_depth": lim.max_depth,
            "request_timeout_s": lim.request_timeout_s,
        },
    )

    async def decide(request: Request) -> Response:
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            return _error(415, f"Content-Type must be application/json, got {ctype!r}", True)
        length = request.headers.get("content-length")
        if (
            length is not None
            and length.isascii()
            and length.isdigit()
            and int(length) > lim.max_body
        ):
            return _error(
                413, f"body of {int(length)} bytes is over the limit of {lim.max_body}", True
            )
        chunks, size = [], 0
        try:  # the protocol's deadline bounds how long this may take
            async for chunk in request.stream():
                size += len(chunk)
                if size > lim.max_body:
                    return _error(413, f"body is over the limit of {lim.max_body} bytes", True)
                chunks.append(chunk)
        except ClientDisconnect:  # gone (or cut off by the deadline): nobody to answer
            return Response(status_code=499)
        try:
            req = safejson.loads(b"".join(chunks), max_depth=lim.max_depth)
        except safejson.JSONError as e:
            return _error(400, f"body is not accepted: {e}")
        t0 = time.perf_counter()
        try:
            ans = scheduler.decide(req)
        except RequestError as e:
            value = e.value if _jsonable(e.value) else repr(e.value)
            return _error(400, str(e), field=e.field, value=value)
        met.record_answer(ans, time.perf_counter() - t0)
        return _JSON(ans)

    async def policy_info(request: Request) -> Response:
        return _JSON(policy.describe())

    async def healthz(request: Request) -> Response:
        return _JSON({"status": "ok"})

    async def metrics_page(request: Request) -> Response:
        body, ctype = met.exposition()
        return Response(body, media_type=ctype)

    async def openapi_page(request: Request) -> Response:
        return _JSON(doc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = request.url.path
        if exc.status_code == 404:
            return _error(404, f"no such path: {path}", True)
        if exc.status_code == 405:
            allow = (exc.headers or {}).get("Allow", "")
            use = allow.replace("HEAD, ", "").replace(", HEAD", "")
            return _error(405, f"use {use} for {path}", True)
        return _error(exc.status_code, str(exc.detail), True)

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("request failed: %s: %s", type(exc).__name__, exc)  # a bug: say so
        return _error(500, f"internal error: {type(exc).__name__}", True)

    app = Starlette(
        routes=[
            Route("/v1/decide", decide, methods=["POST"]),
            Route("/v1/policy", policy_info, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_page, methods=["GET"]),
            Route("/openapi.json", openapi_page, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
    return _Guard(app, met)


# -- uvicorn ---------------------------------------------------------------------------------
_TIMEOUT_BODY = json.dumps({"error": "the request did not arrive in time"}).encode()
_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY)
)


class _RequestDeadline:
    """Mixed into uvicorn's HTTP protocols: each request must arrive whole (headers and
    body) within ``request_timeout_s`` of its first byte, and a new connection must start one
    within as long; else the connection is answered 408 (where the app has not answered yet)
    and closed. uvicorn alone bounds only idle keep-alive connections, so a client sending
    one byte at a time would otherwise hold its connection for ever. One timer per request:
    far cheaper than a cancel scope around the app's reads."""

    _deadline: asyncio.TimerHandle | None = None
    _got_data = False

    def _arm(self) -> None:
        limit = getattr(self.config, "edgesplit_request_timeout_s", None)  # type: ignore[attr-defined]
        if limit:
            self._deadline = self.loop.call_later(limit, self._expired)  # type: ignore[attr-defined]

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        cycle = self.cycle  # type: ignore[attr-defined]
        active = cycle is not None and not cycle.response_complete
        if active and not cycle.more_body:
            return  # the request is in and being answered
        transport = self.transport  # type: ignore[attr-defined]
        if transport.is_closing():
            return
        if (active and not cycle.response_started) or (not active and self._got_data):
            transport.write(_TIMEOUT_408)
        transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._got_data = True
        if self._deadline is None:  # the first bytes of a new request
            self._arm()
        super().data_received(data)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        self._disarm()  # the keep-alive time-out watches the idle connection now
        self._got_data = False
        super().on_response_complete()  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]


class H11DeadlineProtocol(_RequestDeadline, H11Protocol):
    """uvicorn's h11 protocol with the request deadline."""


try:  # httptools is the faster parser, and refuses ambiguous framing itself
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpToolsDeadlineProtocol(_RequestDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol with the request deadline."""

    _PROTOCOLS: dict[str, type] = {"httptools": HttpToolsDeadlineProtocol}
except ImportError:  # pragma: no cover - httptools not installed
    _PROTOCOLS = {}
_PROTOCOLS["h11"] = H11DeadlineProtocol


def uvicorn_config(
    app: ASGIApp | str,
    host: str = "127.0.0.1",
    port: int = 8080,
    limits: Limits | None = None,
    *,
    workers: int = 1,
    http: str = "auto",
    log_level: str = "warning",
) -> uvicorn.Config:
    """uvicorn's configuration for the service: ``app`` (or, with ``workers > 1``, the
    import string of an app factory), the limits, and the protocol with the header
    deadline (``http``: "httptools", "h11" or "auto", httptools where installed)."""
    lim = limits or Limits()
    name = next(iter(_PROTOCOLS)) if http == "auto" else http
    if name not in _PROTOCOLS:
        raise ValueError(f"http: expected one of {['auto', *_PROTOCOLS]}, got {http!r}")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=workers,
        factory=isinstance(app, str),
        http=_PROTOCOLS[name],  # type: ignore[arg-type]
        ws="none",
        lifespan="off",
        backlog=lim.backlog,
        limit_concurrency=lim.max_connections,
        timeout_keep_alive=lim.keep_alive_s,
        h11_max_incomplete_event_size=64 * 1024,  # request line and headers
        access_log=False,
        log_level=log_level,
        server_header=False,
    )
    config.edgesplit_request_timeout_s = lim.request_timeout_s  # type: ignore[attr-defined]
    return config


def app_from_environment() -> ASGIApp:
    """The app of one worker process of :func:`serve` (uvicorn's factory, settings from
    the environment)."""
    s = json.loads(os.environ[_ENV])
    sched = Scheduler(load_policy(s["policy"], threads=s["threads"]))
    return create_app(sched, Limits(**s["limits"]))


def serve(
    policy_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    limits: Limits | None = None,
    *,
    workers: int = 1,
    threads: int = 1,
    http: str = "auto",
) -> None:
    """Run the service for the policy in ``policy_dir`` until interrupted (``workers``
    processes, each with ``threads`` onnxruntime intra-op threads)."""
    lim = limits or Limits()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a positive integer, got {workers!r}")
    sched = Scheduler(load_policy(policy_dir, threads=threads))  # refuse a bad policy early
    log.warning(
        "serving %s policy (digest %s...) on http://%s:%d with %d worker(s)",
        sched.policy.algorithm,
        sched.policy.digest[:12],
        host,
        port,
        workers,
    )
    if workers == 1:
        uvicorn.Server(uvicorn_config(create_app(sched, lim), host, port, lim, http=http)).run()
        return
    from uvicorn.supervisors import Multiprocess

    settings = {
        "policy": str(Path(policy_dir).resolve()),
        "threads": threads,
        "limits": asdict(lim),
    }
    saved = {k: os.environ.get(k) for k in ("PROMETHEUS_MULTIPROC_DIR", _ENV)}
    with tempfile.TemporaryDirectory(prefix="edgesplit-metrics-") as d:
        try:
            # set before the workers start (and import prometheus_client): they share counters
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = d
            os.environ[_ENV] = json.dumps(settings)
            config = uvicorn_config(
                "edgesplit.scheduler.server:app_from_environment",
                host,
                port,
                lim,
                workers=workers,
                http=http,
            )
            sock = config.bind_socket()
            # older uvicorn releases also take the function each worker runs
            extra = {"target": uvicorn.Server(config).run}
            if "target" not in inspect.signature(Multiprocess).parameters:
                extra = {}
            Multiprocess(config, sockets=[sock], **extra).run()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class BackgroundServer:
    """The service on a real uvicorn in a background thread, on 127.0.0.1 and a free port
    (tests and benchmarks). A context manager; ``url`` is its address.

    >>> # with BackgroundServer(create_app(sched)) as srv: httpx.get(srv.url + "/healthz")
    """

    def __init__(self, app: ASGIApp, limits: Limits | None = None, http: str = "auto") -> None:
        self.limits = limits or Limits()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(self.limits.backlog)
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn_config(app, "127.0.0.1", self.port, self.limits, http=http)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the scheduler service did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
