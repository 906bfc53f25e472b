"""The server (edge or cloud): hosts tails, receives cut tensors over TCP, returns results.

``python -m edgesplit.runtime serve --parts parts/resnet18 [--parts ...] [--port 9100]``

Every connection carries frames of :mod:`edgesplit.runtime.wire`. A TASK is checked (known
application and candidate, tensor names, shapes and dtypes of the candidate's cut), queued,
run, and answered with a RESULT that also says how long it waited, how long its tail took,
and the server's backlog; a STATUS frame is answered with the backlog alone.

**Compute.** One worker thread runs the tails one at a time, first come first served, on
one intra-op thread (one core). The simulator instead shares a server's compute between the
tasks of a slot in proportion to their compute weights; the total work, and so the backlog,
is the same, but under FIFO the first task finishes earlier and the last at the same time
as under sharing (see ``docs/runtime.md``). The backlog reported is the expected run time
of the queued tasks plus what remains of the running one (each candidate's tail time is a
running mean of its measured runs, seeded by a warm-up run at start).

**Errors.** A frame that cannot be parsed (wrong magic, version or type, lengths past the
limits, a header that is not JSON) is answered with an ERROR frame and the connection is
closed (the byte stream can no longer be trusted). A well-formed TASK naming an unknown
application or candidate, or tensors of the wrong names, shapes or dtypes, is answered with
an ERROR frame naming the field and the value, and the connection stays open. A frame that
stalls half-way for ``timeout_s`` is answered with a time-out ERROR and the connection
closed. Whatever happens on one connection, the server keeps serving the others.

Bound to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import socketserver
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from .parts import Partitions, PartsError
from .wire import (
    ERROR,
    RESULT,
    STATUS,
    STATUS_REPLY,
    TASK,
    FrameError,
    decode_tensors,
    encode_tensor,
    error_header,
    pack_frame,
    read_frame,
)

__all__ = ["TailServer"]

log = logging.getLogger("edgesplit.runtime.server")


@dataclass
class _Job:
    app: str
    candidate: str
    tensors: list[np.ndarray]
    received: float
    future: Future


class TailServer:
    """A TCP server hosting the tails of one or more partition directories.

    Parameters
    ----------
    parts
        Application name -> loaded :class:`~edgesplit.runtime.parts.Partitions` (the name a
        TASK's ``app`` field uses; normally the network's name).
    engine
        ``"torch"`` (eager, one thread: what the shipped profiles measured) or
        ``"onnxruntime"`` (imports no torch).
    host, port
        Where to listen (port 0: any free port; see :attr:`address`).
    timeout_s
        How long a frame may stall half-way before the connection is dropped.
    idle_s
        How long a connection may sit idle between frames.
    max_payload
        Largest payload accepted, bytes.
    warm
        Run every hosted tail once at start (loads sessions, seeds the backlog estimate).

    >>> # see tests/test_runtime_server.py: a server on loopback, errors included
    """

    def __init__(
        self,
        parts: Mapping[str, Partitions],
        engine: str = "torch",
        host: str = "127.0.0.1",
        port: int = 0,
        timeout_s: float = 10.0,
        idle_s: float = 600.0,
        max_payload: int = 256 << 20,
        warm: bool = True,
    ) -> None:
        if not parts:
            raise ValueError("parts: the server needs at least one partition directory")
        self.parts = dict(parts)
        self.engines = {app: p.engine(engine) for app, p in self.parts.items()}
        self.engine_kind = engine
        self.timeout_s, self.idle_s, self.max_payload = timeout_s, idle_s, max_payload
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._expected: dict[tuple[str, str], float] = {}
        self._queued_work = 0.0  # expected seconds of the queued jobs
        self._running: tuple[float, float] | None = None  # (start, expected) of the running
        self.served = 0
        self.errors = 0
        if warm:
            self._warm()
        self._worker = threading.Thread(target=self._work, name="tail-worker", daemon=True)
        self._worker.start()
        self._tcp = _TCPServer((host, port), _handler(self))
        self.address: tuple[str, int] = self._tcp.server_address[:2]
        self._thread: threading.Thread | None = None

    # -- compute ------------------------------------------------------------------------
    def _warm(self) -> None:
        for app, p in self.parts.items():
            eng = self.engines[app]
            for name, c in p.candidates.items():
                if c.kind == "output":
                    continue
                eng.warm(name)
                x = [np.zeros(t.shape, np.uint8 if c.kind == "input" else np.float32)
                     for t in c.cut]  # fmt: skip
                eng.tail(name, x)  # first run: allocations, session set-up
                t = time.perf_counter()
                eng.tail(name, x)
                self._expected[(app, name)] = time.perf_counter() - t

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            key = (job.app, job.candidate)
            exp = self._expected.get(key, 0.0)
            start = time.perf_counter()
            with self._lock:
                self._queued_work = max(0.0, self._queued_work - exp)
                self._running = (start, exp)
            try:
                cpu = time.thread_time()
                out = self.engines[job.app].tail(job.candidate, job.tensors)
                done = time.perf_counter()
                cpu = time.thread_time() - cpu
                with self._lock:
                    self._expected[key] = 0.8 * exp + 0.2 * (done - start) if exp else done - start
                    self._running = None
                    self.served += 1
                job.future.set_result((out, start - job.received, done - start, cpu))
            except Exception as e:  # a tail that fails answers its task, never the worker
                with self._lock:
                    self._running = None
                job.future.set_exception(e)

    @property
    def backlog_s(self) -> float:
        """Expected seconds of work queued and running (see the module docstring)."""
        with self._lock:
            left = self._queued_work
            if self._running is not None:
                start, exp = self._running
                left += max(0.0, exp - (time.perf_counter() - start))
            return left

    def submit(self, app: str, candidate: str, tensors: list[np.ndarray]) -> Future:
        """Queue a tail; the future gives ``(output, wait_s, run_s, cpu_s)``: the seconds it
        was queued, the tail's run time, and the CPU time of the worker thread during it."""
        fut: Future = Future()
        with self._lock:
            self._queued_work += self._expected.get((app, candidate), 0.0)
        self._jobs.put(_Job(app, candidate, tensors, time.perf_counter(), fut))
        return fut

    # -- protocol -----------------------------------------------------------------------
    def handle_task(
        self, header: dict[str, Any], payload: bytearray, t_read: float | None = None
    ) -> bytes:
        """Answer one TASK frame (a RESULT, or an ERROR naming the field at fault).

        ``t_read`` is when the frame had been read whole: the reply's ``tail_s`` counts from
        it (decoding, the tail, encoding the result) less ``server_wait_s`` (queued).
        """
        t_read = time.perf_counter() if t_read is None else t_read
        task = header.get("task")
        try:
            app = header.get("app")
            if app not in self.parts:
                raise FrameError("header.app", app, f"unknown application (hosted: "
                                 f"{sorted(self.parts)})")  # fmt: skip
            cand_name = header.get("candidate")
            try:
                cand = self.parts[app].candidate(cand_name)
            except (PartsError, TypeError) as e:
                raise FrameError("header.candidate", cand_name, str(e)) from None
            if cand.kind == "output":
                raise FrameError("header.candidate", cand_name, "runs whole on the device")
            metas = header.get("tensors")
            tensors = decode_tensors(metas, payload)
            _check_cut(cand, metas, tensors)
            out, wait_s, _, cpu_s = self.submit(app, cand.name, tensors).result()
            meta, data = encode_tensor("output", np.asarray(out, dtype=np.float32), "float32")
            reply = {
                "task": task,
                "tensors": [meta],
                "server_wait_s": wait_s,
                "tail_s": time.perf_counter() - t_read - wait_s,
                "backlog_s": self.backlog_s,
                "tail_cpu_s": cpu_s,
            }
            return pack_frame(RESULT, reply, data)
        except Exception as e:  # whatever fails, the task gets an answer naming it
            self.errors += 1
            return pack_frame(ERROR, error_header(task, e))

    def status(self) -> bytes:
        """The STATUS answer: backlog, queued tasks, tasks served."""
        body = {"backlog_s": self.backlog_s, "queued": self._jobs.qsize(), "served": self.served}
        return pack_frame(STATUS_REPLY, body)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> tuple[str, int]:
        """Serve in a background thread; returns ``(host, port)``."""
        self._thread = threading.Thread(target=self._tcp.serve_forever, daemon=True)
        self._thread.start()
        return self.address

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`close` (or Ctrl-C)."""
        self._tcp.serve_forever()

    def close(self) -> None:
        """Stop accepting, finish the running tail, stop the worker."""
        self._tcp.shutdown()
        self._tcp.server_close()
        self._jobs.put(None)
        self._worker.join(30)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> TailServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_cut(cand: Any, metas: list[dict[str, Any]], tensors: list[np.ndarray]) -> None:
    names = [m.get("name") for m in metas]
    want = [t.name for t in cand.cut]
    if names != want:
        raise FrameError("header.tensors[].name", names, f"expected the cut {want}")
    for i, (t, m) in enumerate(zip(cand.cut, metas, strict=True)):
        if tuple(m["shape"]) != t.shape:
            raise FrameError(f"header.tensors[{i}].shape", m["shape"], f"expected {list(t.shape)}")
        if cand.kind == "input":
            if m["dtype"] != "uint8":
                raise FrameError(f"header.tensors[{i}].dtype", m["dtype"],
                                 "the raw input travels as uint8")  # fmt: skip
        elif m["dtype"] == "uint8":
            raise FrameError(f"header.tensors[{i}].dtype", "uint8",
                             "expected float32, float16 or int8")  # fmt: skip
    del tensors


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def _handler(server: TailServer) -> type[socketserver.BaseRequestHandler]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                try:
                    sock.settimeout(server.idle_s)
                    if not sock.recv(1, socket.MSG_PEEK):
                        return  # the peer closed between frames
                    sock.settimeout(server.timeout_s)
                    kind, header, payload = read_frame(sock, server.max_payload)
                    t_read = time.perf_counter()
                except TimeoutError:
                    server.errors += 1
                    err = FrameError("frame", None, f"timed out after {server.timeout_s} s")
                    self._reply(pack_frame(ERROR, error_header(None, err)))
                    return
                except FrameError as e:  # fatal: the stream cannot be trusted any more
                    server.errors += 1
                    self._reply(pack_frame(ERROR, error_header(None, e)))
                    return
                except (ConnectionError, OSError):
                    return
                if kind == TASK:
                    reply = server.handle_task(header, payload, t_read)
                elif kind == STATUS:
                    reply = server.status()
                else:
                    server.errors += 1
                    err = FrameError("type", kind, "a server accepts TASK and STATUS frames")
                    reply = pack_frame(ERROR, error_header(header.get("task"), err))
                if not self._reply(reply):
                    return

        def _reply(self, data: bytes) -> bool:
            try:
                self.request.sendall(data)
                return True
            except OSError:
                return False

        def finish(self) -> None:
            with contextlib.suppress(OSError):
                self.request.shutdown(socket.SHUT_RDWR)

    return Handler
