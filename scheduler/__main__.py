"""``python -m edgesplit.scheduler``: serve a policy, or answer one request from a file.

python -m edgesplit.scheduler serve --policy runs/ppo-default-seed0/policy [--port 8080]
python -m edgesplit.scheduler decide --policy DIR request.json
python -m edgesplit.scheduler example --policy DIR     # a valid request to start from
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .decide import RequestError, Scheduler
from .policy import PolicyError, load_policy
from .server import MAX_BODY, serve


def example_request(sched: Scheduler) -> dict:
    """A valid request for the loaded policy: every device with a task of its first
    application, links at 20 Mbps, empty backlogs."""
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
    return {"slot": 0, "devices": devices, "server_backlog_s": dict.fromkeys(ta.target_names, 0.0)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgesplit.scheduler", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the HTTP service")
    s.add_argument("--policy", required=True, help="exported policy directory")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--max-body", type=int, default=MAX_BODY)
    d = sub.add_parser("decide", help="answer one request read from a JSON file ('-': stdin)")
    d.add_argument("--policy", required=True)
    d.add_argument("request")
    e = sub.add_parser("example", help="print a valid request for the policy")
    e.add_argument("--policy", required=True)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        sched = Scheduler(load_policy(a.policy))
    except PolicyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if a.cmd == "serve":
        serve(sched, a.host, a.port, a.max_body)
        return 0
    if a.cmd == "example":
        print(json.dumps(example_request(sched), indent=1))
        return 0
    text = sys.stdin.read() if a.request == "-" else Path(a.request).read_text()
    try:
        print(json.dumps(sched.decide(json.loads(text)), indent=1))
    except (RequestError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
