"""``python -m edgesplit.scheduler``: serve a policy, or answer one request from a file.

python -m edgesplit.scheduler serve --policy runs/ppo-default-seed0/policy [--port 8080]
                                    [--workers N] [--threads 1] [--max-body ...]
python -m edgesplit.scheduler decide --policy DIR request.json
python -m edgesplit.scheduler example --policy DIR     # a valid request to start from
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import safejson
from .decide import Scheduler
from .errors import PolicyError, RequestError
from .limits import Limits
from .policy import load_policy


def example_request(sched: Scheduler) -> dict:
    """A valid request for the loaded policy: every device with a task of its first
    application, links at 20 Mbps, empty backlogs, batteries half charged."""
    ta = sched.tables
    devices = {}
    for i, name in enumerate(ta.device_names):
        devices[name] = {
            "task": {"app": ta.app_names[0], "waited_s": 0.0},
            "queue_length": 1,
            "backlog_s": 0.0,
            "link_mbps": {
                ap: 20.0 for m, ap in enumerate(ta.access_point_names) if ta.reachable[i, m]
            },
        }
        if ta.battery_j[i] > 0:  # a battery: half charged
            devices[name]["charge_j"] = 0.5 * float(ta.battery_j[i])
    return {"slot": 0, "devices": devices, "server_backlog_s": dict.fromkeys(ta.target_names, 0.0)}


def main(argv: list[str] | None = None) -> int:
    lim = Limits()  # the server's defaults (without importing it: its extra may be missing)

    p = argparse.ArgumentParser(prog="python -m edgesplit.scheduler", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the HTTP service (Starlette on uvicorn)")
    s.add_argument("--policy", required=True, help="exported policy directory")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--workers", type=int, default=1, help="processes answering (one per core)")
    s.add_argument("--http", default="auto", choices=["auto", "httptools", "h11"])
    s.add_argument("--max-body", type=int, default=lim.max_body, help="bytes per body")
    s.add_argument("--max-depth", type=int, default=lim.max_depth, help="JSON nesting")
    s.add_argument(
        "--request-timeout",
        type=float,
        default=lim.request_timeout_s,
        help="seconds for a request to arrive whole (headers and body)",
    )
    s.add_argument("--max-connections", type=int, default=lim.max_connections)
    s.add_argument("--backlog", type=int, default=lim.backlog, help="listen backlog")
    d = sub.add_parser("decide", help="answer one request read from a JSON file ('-': stdin)")
    d.add_argument("--policy", required=True)
    d.add_argument("request")
    e = sub.add_parser("example", help="print a valid request for the policy")
    e.add_argument("--policy", required=True)
    for q in (s, d, e):
        q.add_argument(
            "--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)"
        )
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if a.cmd == "serve":
            from .server import serve

            limits = Limits(
                max_body=a.max_body,
                max_depth=a.max_depth,
                request_timeout_s=a.request_timeout,
                max_connections=a.max_connections,
                backlog=a.backlog,
            )
            serve(
                a.policy, a.host, a.port, limits, workers=a.workers, threads=a.threads, http=a.http
            )
            return 0
        sched = Scheduler(load_policy(a.policy, threads=a.threads))
    except (PolicyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if a.cmd == "example":
        print(json.dumps(example_request(sched), indent=1))
        return 0
    try:
        text = sys.stdin.buffer.read() if a.request == "-" else Path(a.request).read_bytes()
        print(json.dumps(sched.decide(safejson.loads(text, max_depth=lim.max_depth)), indent=1))
    except (OSError, RequestError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
