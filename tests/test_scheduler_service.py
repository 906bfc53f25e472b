"""The scheduler's HTTP service under hostile input: fuzzed from its own OpenAPI schema,
many clients at once, slow clients, deep nesting, ambiguous framing; its metrics, its
workers and its address."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from edgesplit.agents.export import export_policy
from edgesplit.agents.registry import get_agent
from edgesplit.envs import ENV_ID
from edgesplit.scheduler import Scheduler, load_policy
from edgesplit.scheduler.__main__ import example_request
from edgesplit.scheduler.server import BackgroundServer, Limits, create_app

pytest.importorskip("onnxruntime")
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory) -> Path:
    spec = get_agent("ppo")
    env = gym.make(ENV_ID, scenario="default")
    model = spec.load_class()("MlpPolicy", env, seed=0, device="cpu", n_steps=64, batch_size=64)
    model.learn(64)
    return export_policy(model, "ppo", {"scenario": "default"}, tmp_path_factory.mktemp("p"))


@pytest.fixture(scope="module")
def sched(policy_dir: Path) -> Scheduler:
    return Scheduler(load_policy(policy_dir))


class _Client:
    """An in-process client of the ASGI app (httpx's ASGI transport on one event loop)."""

    def __init__(self, app: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

    def __call__(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.http.request(method, path, **kw))

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())
        self.loop.close()


# -- fuzzing -------------------------------------------------------------------------------
_ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2**63, 10**30, -0.0, 0.5, 1e308, -1e308, 1e299, "", "x" * 2000,
    "\ud800", "../../etc/passwd", "mobilenet_v2", [], {}, [1, [2, [3]]], {"app": None},
    {"app": "resnet18", "waited_s": -1}, {"edge0": "fast"},
]  # fmt: skip


def _deep(depth: int) -> Any:
    v: Any = 0
    for k in range(depth):
        v = [v] if k % 2 else {"a": v}
    return v


def _paths(v: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(v, dict):
        for k, x in v.items():
            out += _paths(x, (*prefix, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += _paths(x, (*prefix, i))
    return out


def _mutate(req: Any, rnd: random.Random) -> tuple[bytes, dict[str, str]]:
    """One mutation of a schema-valid request: a value replaced, a key dropped or added, the
    text cut, flipped or padded, deep nesting spliced in, an odd Content-Type."""
    req = json.loads(json.dumps(req))
    path = rnd.choice(_paths(req))
    parent, key = None, None
    node = req
    for k in path:
        parent, key, node = node, k, node[k]
    kind = rnd.randrange(8)
    headers = dict(JSON)
    if kind == 0 and parent is not None:
        parent[key] = rnd.choice(_ODD_VALUES)
    elif kind == 1 and isinstance(parent, dict):
        del parent[key]
    elif kind == 2 and isinstance(node, dict):
        node[rnd.choice(["colour", "", "slot", "task", "\u00e9", "edge0"])] = rnd.choice(
            _ODD_VALUES
        )
    elif kind == 3 and parent is not None:
        parent[key] = "__deep__"  # spliced into the text below (json.dumps would recurse)
    elif kind == 4:
        headers["Content-Type"] = rnd.choice(
            ["text/plain", "application/json; charset=latin-1", "", "application/jsonx"]
        )
    body = json.dumps(req, ensure_ascii=rnd.random() < 0.5).encode("utf-8", "surrogatepass")
    depth = rnd.choice([20, 31, 32, 33, 40, 400, 5000])
    body = body.replace(b'"__deep__"', b"[" * depth + b"0" + b"]" * depth)
    if kind == 5:
        body = body[: rnd.randrange(len(body) + 1)]
    elif kind == 6:
        b = bytearray(body)
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        body = bytes(b)
    elif kind == 7:
        body = rnd.choice([b"[" * 100_000, b"NaN", b'{"devices": Infinity}', b"\xff\xfe", b""])
    return body, headers


@pytest.mark.slow
def test_fuzzed_requests_from_the_openapi_schema(sched: Scheduler) -> None:
    """At least 5,000 requests: schemathesis' schema-valid cases (every one must be answered
    200 with an answer that fits the response schema) and schema-violating ones (4xx), and
    nine mutations of each valid case. No 5xx, no failure to answer; afterwards a valid
    request gets the same answer as before."""
    app = create_app(sched, Limits(max_body=64 * 1024))
    client = _Client(app)
    good = example_request(sched)
    before = client("POST", "/v1/decide", json=good)
    assert before.status_code == 200
    doc = client("GET", "/openapi.json").json()
    answer_schema = jsonschema.Draft202012Validator(doc["components"]["schemas"]["DecideResponse"])
    answer_schema.validate(before.json())
    jsonschema.Draft202012Validator(doc["components"]["schemas"]["DecideRequest"]).validate(good)
    op = schemathesis.openapi.from_asgi("/openapi.json", app)["/v1/decide"]["POST"]
    seen: dict[str, int] = {}
    replay: list[tuple[bytes, dict[str, str]]] = []

    def check(r: httpx.Response | Any, kind: str) -> None:
        seen[kind] = seen.get(kind, 0) + 1
        assert r.status_code < 500, r.text
        body = r.json()
        if r.status_code == 200:
            answer_schema.validate(body)
        else:
            assert r.status_code in (400, 413, 415) and isinstance(body["error"], str)

    fuzz = settings(
        max_examples=500, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )

    @fuzz
    @given(case=op.as_strategy(generation_mode=GenerationMode.POSITIVE), rnd=st.randoms())
    def valid_and_mutated(case: Any, rnd: random.Random) -> None:
        r = case.call_and_validate()  # schemathesis' checks: positive data is accepted, ...
        assert r.status_code == 200, r.text
        check(r, "valid")
        for _ in range(9):
            body, headers = _mutate(case.body, rnd)
            if len(replay) < 300:
                replay.append((body, headers))
            check(client("POST", "/v1/decide", content=body, headers=headers), "mutated")

    @fuzz
    @given(case=op.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    def invalid(case: Any) -> None:
        r = case.call_and_validate()  # ... and negative data rejected with a 4xx
        check(r, "invalid")

    valid_and_mutated()
    invalid()
    # a few that are not even well-formed requests for the endpoint
    for method, path in [("GET", "/v1/decide"), ("PUT", "/v1/policy"), ("GET", "/%ff"),
                         ("DELETE", "/healthz"), ("POST", "/v1/policy")]:  # fmt: skip
        r = client(method, path)
        assert r.status_code in (404, 405) and "error" in r.json(), (method, path, r.text)
    assert sum(seen.values()) >= 5000, seen
    assert min(seen.values()) >= 400, seen
    after = client("POST", "/v1/decide", json=good)
    assert after.status_code == 200 and after.json() == before.json()
    metrics = client("GET", "/metrics").text
    assert 'endpoint="/v1/decide",status="500"' not in metrics
    client.close()

    # the same mutated bytes to a real server, on keep-alive connections: each one answered
    limits = Limits(max_body=64 * 1024)
    with BackgroundServer(create_app(sched, limits), limits) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        for body, headers in replay:
            conn.request("POST", "/v1/decide", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            assert resp.status < 500
            if resp.getheader("Connection") == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("POST", "/v1/decide", body=json.dumps(good), headers=JSON)
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read()) == before.json()
        conn.close()


# -- a real server ------------------------------------------------------------------------
def test_64_clients_connecting_at_once(sched: Scheduler) -> None:
    """64 clients connect at the same moment, three times: none refused or reset, each
    answered."""
    body = json.dumps(example_request(sched)).encode()
    expected = json.loads(json.dumps(sched.decide(example_request(sched))))
    with BackgroundServer(create_app(sched)) as srv:
        for _ in range(3):
            barrier = threading.Barrier(64)
            results: list[Any] = []

            def client(barrier: threading.Barrier = barrier, results: list = results) -> None:
                barrier.wait(timeout=30)
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
                    conn.request("POST", "/v1/decide", body=body, headers=JSON)
                    resp = conn.getresponse()
                    results.append((resp.status, json.loads(resp.read())))
                    conn.close()
                except OSError as e:  # refused, reset
                    results.append(e)

            threads = [threading.Thread(target=client) for _ in range(64)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert len(results) == 64
            assert all(r == (200, expected) for r in results), [
                r for r in results if r != (200, expected)
            ][:3]


def _raw(port: int, data: bytes, wait_s: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes (or ``wait_s`` passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
        s.sendall(data)
        out = b""
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                return out
            out += chunk
        return out + b"<still open>"


@pytest.mark.parametrize("http_impl", ["httptools", "h11"])
def test_content_length_with_transfer_encoding_is_refused(sched: Scheduler, http_impl) -> None:
    """A request with both headers is refused 400 and its connection closed: the request
    hidden in its body is never answered (httptools' parser refuses it; with h11, which
    would let chunked win, the app does)."""
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    chunked = b"0\r\n\r\n" + smuggled
    head = (
        b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(chunked)
    )
    with BackgroundServer(create_app(sched), http=http_impl) as srv:
        out = _raw(srv.port, head + chunked)
        assert out.startswith(b"HTTP/1.1 400 ") and out.count(b"HTTP/1.1") == 1, out
        assert b"<still open>" not in out
        # the other order of the two headers
        te_first = head.replace(
            b"Content-Length: %d\r\nTransfer-Encoding: chunked" % len(chunked),
            b"Transfer-Encoding: chunked\r\nContent-Length: %d" % len(chunked),
        )
        assert te_first != head
        out = _raw(srv.port, te_first + chunked)
        assert out.startswith(b"HTTP/1.1 400 ") and out.count(b"HTTP/1.1") == 1, out


@pytest.mark.parametrize("http_impl", ["httptools", "h11"])
def test_slow_clients_are_cut_off(sched: Scheduler, http_impl) -> None:
    """Headers or a body trickled one byte at a time are answered 408 and the connection
    closed once the request time-out has passed; a connection that sends nothing is closed."""
    limits = Limits(request_timeout_s=0.5)
    with BackgroundServer(create_app(sched, limits), limits, http=http_impl) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
            t0 = time.monotonic()
            for ch in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 200:
                try:
                    s.sendall(bytes([ch]))
                except OSError:
                    break
                if select.select([s], [], [], 0.02)[0]:
                    break
            got = b""
            try:
                while chunk := s.recv(4096):
                    got += chunk
            except OSError:
                pass
            assert got.startswith(b"HTTP/1.1 408 ") and b"in time" in got, got
            assert time.monotonic() - t0 < 3.0
        assert _raw(srv.port, b"", wait_s=3.0) == b""  # idle: closed, nothing said
        head = (
            b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        out = _raw(srv.port, head, wait_s=3.0)
        assert out.startswith(b"HTTP/1.1 408 ") and out.endswith(b'in time"}'), out
        # a keep-alive connection: the deadline is per request, not per connection
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        for _ in range(3):
            conn.request("GET", "/healthz")
            assert conn.getresponse().read() == b'{"status":"ok"}'
            time.sleep(0.3)  # 0.9 s in all: longer than the time-out, each request quick
        conn.close()


def test_deep_nesting_is_refused_cleanly(sched: Scheduler) -> None:
    """A body nested 100,000 deep, or 985 deep inside a field, is refused 400 (JSON error)
    before it is parsed; the service keeps answering."""
    limits = Limits()
    with BackgroundServer(create_app(sched, limits), limits) as srv:
        c = httpx.Client(base_url=srv.url, timeout=10)
        r = c.post("/v1/decide", content=b"[" * 100_000 + b"]" * 100_000, headers=JSON)
        assert r.status_code == 400 and "nested 100000 levels deep" in r.json()["error"]
        req = example_request(sched)
        req["devices"]["pi_0"]["task"]["app"] = "__deep__"
        text = json.dumps(req).replace('"__deep__"', "[" * 985 + "]" * 985)
        r = c.post("/v1/decide", content=text, headers=JSON)
        assert r.status_code == 400 and "nested" in r.json()["error"]
        req["devices"]["pi_0"]["task"]["app"] = _deep(20)  # shallow enough to parse
        r = c.post("/v1/decide", content=json.dumps(req), headers=JSON)
        assert r.status_code == 400 and r.json()["field"] == "devices.pi_0.task.app"
        assert c.get("/healthz").json() == {"status": "ok"}
        c.close()


def test_metrics_count_decisions_fallbacks_and_latency(policy_dir: Path) -> None:
    sched = Scheduler(load_policy(policy_dir))
    client = _Client(create_app(sched))
    req = example_request(sched)
    for _ in range(3):
        assert client("POST", "/v1/decide", json=req).status_code == 200
    req["devices"]["pi_1"]["task"]["app"] = "no_such_net"  # no profile: run locally
    assert client("POST", "/v1/decide", json=req).status_code == 200
    req["slot"] = -1
    assert client("POST", "/v1/decide", json=req).status_code == 400

    def broken(*a: Any, **k: Any) -> None:
        raise RuntimeError("onnx session lost")

    sched.policy.act = broken  # type: ignore[method-assign]
    assert client("POST", "/v1/decide", json=example_request(sched)).status_code == 200
    text = client("GET", "/metrics").text
    client.close()

    def value(name: str) -> float:
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        assert m, name
        return float(m.group(1))

    n = sched.tables.n_devices
    assert value('edgesplit_scheduler_decisions_total{source="policy"}') == 3 * n + n - 1
    assert value('edgesplit_scheduler_decisions_total{source="local"}') == 1
    assert value('edgesplit_scheduler_decisions_total{source="neurosurgeon"}') == n
    assert value('edgesplit_scheduler_fallbacks_total{reason="no_profile"}') == 1
    assert value('edgesplit_scheduler_fallbacks_total{reason="policy_failed"}') == 1
    assert value('edgesplit_scheduler_fallbacks_total{reason="unknown_application"}') == 0
    assert value("edgesplit_scheduler_decision_seconds_count") == 5
    assert value('edgesplit_scheduler_requests_total{endpoint="/v1/decide",status="200"}') == 5
    assert value('edgesplit_scheduler_requests_total{endpoint="/v1/decide",status="400"}') == 1


def test_openapi_document_describes_the_policy(sched: Scheduler) -> None:
    client = _Client(create_app(sched))
    doc = client("GET", "/openapi.json").json()
    client.close()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) >= {"/v1/decide", "/v1/policy", "/healthz", "/metrics"}
    req_schema = jsonschema.Draft202012Validator(doc["components"]["schemas"]["DecideRequest"])
    good = example_request(sched)
    req_schema.validate(good)
    bad = json.loads(json.dumps(good))
    bad["devices"]["ghost"] = bad["devices"]["pi_0"]
    assert not req_schema.is_valid(bad)  # the policy's devices, and no others
    bad = json.loads(json.dumps(good))
    bad["devices"]["pi_0"]["queue_length"] = 0  # a device with a task has it queued
    assert not req_schema.is_valid(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port`` (from /proc/net/tcp, state 0A)."""
    out = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if state == "0A" and int(p, 16) == port:
            out.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return out


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
def test_cli_serves_with_two_workers_on_loopback(policy_dir: Path) -> None:
    """``python -m edgesplit.scheduler serve --workers 2``: bound to 127.0.0.1 by default,
    both workers answer, ``/metrics`` adds up the workers' counts; SIGINT stops it."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgesplit.scheduler", "serve", "--policy", str(policy_dir),
         "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)
        assert _listening_addresses(port) == {"127.0.0.1"}
        sched = Scheduler(load_policy(policy_dir))
        body = example_request(sched)
        # several connections, so both workers take some
        for _ in range(40):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
                assert c.post("/v1/decide", json=body).status_code == 200
        total = 0.0
        for _ in range(5):  # whichever worker answers, the count is everyone's
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            m = re.search(r"^edgesplit_scheduler_decision_seconds_count (\S+)$", text, re.M)
            assert m
            total = float(m.group(1))
            assert total == 40
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - report, then clean up
            proc.kill()
            raise
    assert proc.returncode == 0, proc.stdout.read().decode() if proc.stdout else ""


def test_a_bug_is_answered_as_json_500(policy_dir: Path) -> None:
    """Should ``decide`` itself fail (a bug, not a bad request), the client still gets a
    JSON answer, and the failure is counted."""
    sched = Scheduler(load_policy(policy_dir))

    def boom(request: Any) -> None:
        raise KeyError("bug")

    sched.decide = boom  # type: ignore[method-assign]
    app = create_app(sched)
    client = _Client(app)
    client.http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    )
    r = client("POST", "/v1/decide", json=example_request(sched))
    assert r.status_code == 500 and r.json() == {"error": "internal error: KeyError"}
    assert 'endpoint="/v1/decide",status="500"} 1.0' in client("GET", "/metrics").text
    client.close()


def test_open_connections_are_capped(sched: Scheduler) -> None:
    """Past ``max_connections`` open connections a request is answered 503 at once (uvicorn's
    ``limit_concurrency``), not queued; once they close, requests are served again."""
    limits = Limits(max_connections=8, request_timeout_s=5.0)
    with BackgroundServer(create_app(sched, limits), limits) as srv:
        idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(8)]
        time.sleep(0.2)  # let the server take them all
        r = httpx.get(srv.url + "/healthz", timeout=5)
        assert r.status_code == 503
        for s in idle:
            s.close()
        time.sleep(0.2)
        assert httpx.get(srv.url + "/healthz", timeout=5).json() == {"status": "ok"}
