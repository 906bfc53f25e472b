"""Decision latency of the edge scheduler, library and HTTP (``python -m
benchmarks.scheduler``).

Exports a PPO policy for ``default`` (untrained: the network's size, not its weights, sets
the cost), then measures ``Scheduler.decide`` on a full snapshot (every device with a task)
and the same request through the HTTP service on localhost (one keep-alive connection). A
decision has to fit well inside a slot (100 ms in the shipped scenarios). ``--write``
appends the result to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO

    import edgesplit.envs  # noqa: F401
    from edgesplit.agents.export import export_policy
    from edgesplit.scheduler import Scheduler, load_policy
    from edgesplit.scheduler.__main__ import example_request
    from edgesplit.scheduler.server import make_server

    torch.set_num_threads(1)
    env = gym.make("edgesplit/SplitOffload-v0", scenario="default")
    model = PPO("MlpPolicy", env, policy_kwargs={"net_arch": [128, 128]}, device="cpu")
    with tempfile.TemporaryDirectory() as d:
        export_policy(model, "ppo", {"scenario": "default"}, d)
        sched = Scheduler(load_policy(d))
    req = example_request(sched)

    def rate(fn) -> float:
        fn()
        best, end = 0.0, time.perf_counter() + a.seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            for _ in range(100):
                fn()
            best = max(best, 100 / (time.perf_counter() - t0))
        return best

    lib = rate(lambda: sched.decide(req))
    httpd = make_server(sched, port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    conn = http.client.HTTPConnection("127.0.0.1", httpd.server_address[1], timeout=10)
    body = json.dumps(req).encode()

    def call() -> None:
        conn.request("POST", "/v1/decide", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        assert r.status == 200

    web = rate(call)
    httpd.shutdown()
    n = sched.tables.n_devices
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    table = (
        f"### Scheduler, {when}\n\nPython {platform.python_version()}, one thread; "
        f"PPO [128, 128] on `default` ({n} devices, every one with a task); best 100-request "
        f"block over {a.seconds:g} s.\n\n| measure | decisions/s | per request |\n|---|---:|---:|\n"
        f"| `Scheduler.decide` (library) | {lib:,.0f} | {1e3 / lib:.2f} ms |\n"
        f"| `POST /v1/decide` (HTTP, localhost, keep-alive) | {web:,.0f} | {1e3 / web:.2f} ms |\n"
    )
    print(table)
    if a.write:
        with (Path(__file__).resolve().parents[1] / "BENCHMARKS.md").open("a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
