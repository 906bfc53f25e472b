"""Decision rate and latency of the edge scheduler, in-process and as a service
(``python -m benchmarks.scheduler [--write]``).

Exports a PPO policy for ``default`` (untrained: the network's size, not its weights, sets
the cost), then measures, in one run:

* the yardstick: ``Scheduler.decide`` in this process on a full snapshot (every device with a
  task), one intra-op thread;
* the service as deployed: ``python -m edgesplit.scheduler serve --workers W`` (a subprocess:
  uvicorn, Starlette, httptools) on 127.0.0.1, with 1, 8 and 32 clients, each on its own
  keep-alive connection sending the same snapshot and waiting for the answer before the
  next. The clients are one asyncio process that writes pre-encoded requests and parses only
  the status line and ``Content-Length``, so that they take as little of the machine as
  possible; they share its cores with the server all the same.

A *decision* is one answered snapshot (all six devices decided at once); latency is measured
per request at the client (send to last byte of the answer). ``--write`` appends the results
to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import publish

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _in_process(sched, req: dict, seconds: float) -> tuple[float, np.ndarray]:
    """Best 100-call block's rate, and every call's latency (s)."""
    sched.decide(req)
    best, lat, end = 0.0, [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(100):
            t = time.perf_counter()
            sched.decide(req)
            lat.append(time.perf_counter() - t)
        best = max(best, 100 / (time.perf_counter() - t0))
    return best, np.array(lat)


async def _client(port: int, request: bytes, stop: float, lat: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"the service answered {head[:40]!r}")
            i = head.lower().index(b"content-length:")
            await reader.readexactly(int(head[i + 15 : head.index(b"\r\n", i)]))
            lat.append(time.perf_counter() - t0)
    finally:
        writer.close()


async def _load(port: int, request: bytes, clients: int, seconds: float) -> list[float]:
    lat: list[float] = []
    stop = time.perf_counter() + seconds
    await asyncio.gather(*(_client(port, request, stop, lat) for _ in range(clients)))
    return lat


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(policy: str, workers: int) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgesplit.scheduler", "serve", "--policy", policy,
         "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the service did not start") from None
            time.sleep(0.2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    p.add_argument("--clients", default="1,8,32")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO

    from edgesplit.agents.export import export_policy
    from edgesplit.scheduler import Scheduler, load_policy
    from edgesplit.scheduler.__main__ import example_request

    try:  # the clients' loop: uvloop where the service has it too
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = asyncio.new_event_loop

    torch.set_num_threads(1)
    env = gym.make("edgesplit/SplitOffload-v0", scenario="default")
    model = PPO("MlpPolicy", env, policy_kwargs={"net_arch": [128, 128]}, device="cpu")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        export_policy(model, "ppo", {"scenario": "default"}, d)
        sched = Scheduler(load_policy(d))
        req = example_request(sched)
        n = sched.tables.n_devices
        lib, lib_lat = _in_process(sched, req, a.seconds)
        rows.append(("`Scheduler.decide`, in-process (yardstick)", lib, lib_lat))
        body = json.dumps(req).encode()
        request = (
            b"POST /v1/decide HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        ) + body
        proc, port = _start(d, a.workers)
        try:
            for c in (int(x) for x in a.clients.split(",")):
                loop = loop_factory()
                try:
                    loop.run_until_complete(_load(port, request, c, 0.5))  # warm up
                    t0 = time.perf_counter()
                    lat = loop.run_until_complete(_load(port, request, c, a.seconds))
                    rate = len(lat) / (time.perf_counter() - t0)
                finally:
                    loop.close()
                rows.append((f"`POST /v1/decide`, {c} client(s)", rate, np.array(lat)))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    import onnxruntime
    import starlette
    import uvicorn

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    table = (
        f"### Scheduler service, {when}\n\nMachine: {cpu}, {os.cpu_count()} cores (shared; "
        f"load average {load} at the end of the run), "
        f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, uvicorn "
        f"{uvicorn.__version__}, starlette {starlette.__version__}; PPO [128, 128] on "
        f"`default` ({n} devices, every one with a task), one intra-op thread; service: "
        f"`serve --workers {a.workers}` on 127.0.0.1, each client on its own keep-alive "
        f"connection, {a.seconds:g} s per row; in-process rate: best 100-call block.\n\n"
        "| measure | decisions/s | device-decisions/s | p50 | p99 |\n|---|---:|---:|---:|---:|\n"
    )
    for name, rate, lat in rows:
        p50, p99 = np.percentile(lat, [50, 99]) * 1e3
        table += f"| {name} | {rate:,.0f} | {rate * n:,.0f} | {p50:.2f} ms | {p99:.2f} ms |\n"
    publish(table, a.write)


if __name__ == "__main__":
    main()
