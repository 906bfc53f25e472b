"""Command line: ``python -m edgesplit.runtime {partition,serve,device,validate,demo}``.

::

    python -m edgesplit.runtime partition resnet18 --out parts/resnet18
    python -m edgesplit.runtime serve --parts parts/resnet18 [--port 9100] [--engine torch]
    python -m edgesplit.runtime device --parts parts/resnet18 --server edge0=127.0.0.1:9100 \\
        --candidate avgpool --tasks 10 --rate-mbps 20 --rtt-ms 10
    python -m edgesplit.runtime device --parts parts/resnet18 --server edge0=127.0.0.1:9100 \\
        --scheduler http://127.0.0.1:8080 --name device_0 --rate-mbps 20
    python -m edgesplit.runtime validate --network resnet18 --rate-mbps 20 --json
    python -m edgesplit.runtime demo --policy runs/ppo-default-seed0/policy --duration-s 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from .parts import ENGINES


def _partition(args: argparse.Namespace) -> int:
    from .partition import partition

    cands = None
    if args.candidates:
        cands = [int(c) for c in args.candidates.split(",")]
    shape = None
    if args.input_shape:
        shape = [int(s) for s in args.input_shape.split(",")]
    profile = None
    if args.profile:
        from edgesplit.cost_models.network import load_network

        profile = load_network(args.profile)
    man = partition(
        args.model,
        args.out,
        profile=profile,
        candidates=cands,
        input_shape=shape,
        onnx=not args.no_onnx,
    )
    for c in man["candidates"]:
        cut = ", ".join(f"{t['name']}{tuple(t['shape'])}" for t in c["cut"])
        print(f"candidate {c['index']:3d} {c['name']:<24} {c['kind']:<12} cut: {cut}")
    print(f"wrote {args.out}/parts.json ({len(man['candidates'])} candidates)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .parts import load_parts
    from .server import TailServer

    parts = {}
    for d in args.parts:
        p = load_parts(d)
        parts[p.network] = p
    srv = TailServer(parts, engine=args.engine, host=args.host, port=args.port,
                     timeout_s=args.timeout_s)  # fmt: skip
    host, port = srv.address
    print(f"serving {sorted(parts)} on {host}:{port} (engine {args.engine})", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def _endpoint(spec: str, rate_mbps: float, rtt_ms: float, trace: str | None) -> tuple[str, Any]:
    from .device import ServerEndpoint
    from .link import EmulatedLink, TracePacer

    name, _, addr = spec.partition("=")
    host, _, port = addr.rpartition(":")
    if not name or not host or not port.isdigit():
        raise ValueError(f"--server {spec!r}: expected NAME=HOST:PORT")
    if trace:
        link = EmulatedLink(TracePacer.from_file(trace), rtt_ms / 1e3)
    else:
        link = EmulatedLink.constant(rate_mbps or None, rtt_ms / 1e3)
    return name, ServerEndpoint(host, int(port), link)


def _device(args: argparse.Namespace) -> int:
    from .device import Device, FixedDecider, SchedulerDecider
    from .parts import load_parts

    parts = load_parts(args.parts)
    servers = dict(_endpoint(s, args.rate_mbps, args.rtt_ms, args.trace) for s in args.server)
    if args.scheduler:
        if args.scheduler.startswith("http"):
            decider = SchedulerDecider(args.scheduler)
        else:
            from edgesplit.scheduler import Scheduler, load_policy

            decider = SchedulerDecider(Scheduler(load_policy(args.scheduler)))
    elif args.candidate:
        target = args.target or (next(iter(servers)) if servers else None)
        decider = FixedDecider(args.candidate, target)
    else:
        raise ValueError("give --scheduler (URL or policy directory) or --candidate")
    battery = _battery(args, decider)
    dev = Device(args.name, parts, servers, decider, engine=args.engine,
                 wire_dtype=args.wire_dtype, battery=battery)  # fmt: skip
    try:
        for _ in range(args.tasks):
            rec = dev.run_task()
            print(json.dumps(rec.to_dict()), flush=True)
            if args.interval_s:
                time.sleep(args.interval_s)
    finally:
        dev.close()
    return 0


def _battery(args: argparse.Namespace, decider: Any) -> Any:
    """The device's battery where the scheduler's policy gives it one (its description in
    ``device_batteries``), starting at ``--charge-j``; None for a mains-powered device.
    Raises ``ValueError`` naming ``--charge-j`` or the description's field that is wrong."""
    from .battery import Battery

    desc = getattr(decider, "policy", None)
    if desc is None:  # fixed decisions: no policy, so no battery to keep
        if args.charge_j is not None:
            raise ValueError(f"--charge-j {args.charge_j!r}: needs --scheduler (the battery "
                             "is described by the scheduler's policy)")  # fmt: skip
        return None
    caps = desc.get("device_batteries_j", {})
    if "device_batteries" not in desc and args.name in caps:
        raise ValueError(f"device_batteries: missing from the scheduler's policy description "
                         f"(a scheduler older than this device), where device {args.name!r} "
                         f"has a battery of {caps[args.name]} J; update the scheduler")  # fmt: skip
    specs = desc.get("device_batteries", {})
    if args.name not in specs:
        if args.charge_j is not None:
            raise ValueError(f"--charge-j {args.charge_j!r}: the policy's device {args.name!r} "
                             "has no battery")  # fmt: skip
        return None
    spec = specs[args.name]
    if args.charge_j is None:
        raise ValueError(f"--charge-j: the policy's device {args.name!r} has a battery of "
                         f"{spec.get('capacity_j')} J; give its charge now (J)")  # fmt: skip
    try:
        return Battery.from_spec(spec, args.charge_j, field=f"device_batteries.{args.name}")
    except ValueError as e:
        if not str(e).startswith("battery.charge_j"):
            raise
        why = str(e).partition(": ")[2]
        raise ValueError(f"--charge-j {args.charge_j!r}: {why} (the battery of device "
                         f"{args.name!r})") from None  # fmt: skip


def _validate(args: argparse.Namespace) -> int:
    from .validate import format_report, validate

    rep = validate(
        args.network, args.rate_mbps, args.rtt_ms, reps=args.reps, warmup=args.warmup,
        wire_dtype=args.wire_dtype, engine=args.engine, device_class=args.device_class,
        profile=args.profile, parts_dir=args.parts,
        progress=None,
    )  # fmt: skip
    print(json.dumps(rep, indent=1) if args.json else format_report(rep))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import format_report, run_demo

    rep = run_demo(args.policy, args.duration_s, args.seed, tuple(args.rules.split(",")),
                   args.arrival_scale, args.profile_dir, per_task=args.per_task,
                   shared_access_points=not args.dedicated_links,
                   clock=args.clock)  # fmt: skip
    print(json.dumps(rep, indent=1) if args.json else format_report(rep))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ap = argparse.ArgumentParser(prog="python -m edgesplit.runtime", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("partition", help="export head and tail of the kept split candidates")
    p.add_argument("model", help="shipped network name, or package.module:factory")
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument("--candidates", help="comma-separated profile candidate indices")
    p.add_argument("--input-shape", help="e.g. 1,3,224,224 (default: the profile's)")
    p.add_argument("--profile", help="profile file of a user's network (its candidates)")
    p.add_argument("--no-onnx", action="store_true", help="manifest and weights only")
    p.set_defaults(func=_partition)

    p = sub.add_parser("serve", help="host tails over TCP (edge or cloud server)")
    p.add_argument("--parts", action="append", required=True, help="partition directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100, help="0: any free port")
    p.add_argument("--engine", choices=ENGINES, default="torch")
    p.add_argument("--timeout-s", type=float, default=10.0, help="a stalled frame's time-out")
    p.set_defaults(func=_serve)

    p = sub.add_parser("device", help="run tasks: decide, head, send, time (one JSON per task)")
    p.add_argument("--parts", required=True, help="the application's partition directory")
    p.add_argument("--server", action="append", default=[], help="NAME=HOST:PORT (repeat)")
    p.add_argument("--name", default="device_0", help="this device's name in the policy")
    p.add_argument("--scheduler", help="scheduler URL (http://...) or a policy directory")
    p.add_argument("--candidate", help="fixed split candidate (name) instead of a scheduler")
    p.add_argument("--target", help="fixed target with --candidate (default: first server)")
    p.add_argument("--tasks", type=int, default=10)
    p.add_argument("--interval-s", type=float, default=0.0)
    p.add_argument("--rate-mbps", type=float, default=0.0, help="emulated rate (0: unpaced)")
    p.add_argument("--trace", help="emulated link following a time_s<TAB>Mbps trace")
    p.add_argument("--rtt-ms", type=float, default=0.0, help="emulated round-trip delay")
    p.add_argument("--engine", choices=ENGINES, default="torch")
    p.add_argument("--wire-dtype", choices=("float32", "float16", "int8"), default="float32")
    p.add_argument("--charge-j", type=float,
                   help="the battery's charge now (J): needed where the scheduler's policy gives "
                   "this device a battery (a device of the battery scenario)")  # fmt: skip
    p.set_defaults(func=_device)

    p = sub.add_parser("validate", help="measured vs simulated latency of every kept candidate")
    p.add_argument("--network", required=True,
                   help="shipped name (or package.module:factory with --profile)")  # fmt: skip
    p.add_argument("--rate-mbps", type=float, required=True)
    p.add_argument("--rtt-ms", type=float, default=10.0)
    p.add_argument("--reps", type=int, default=7, help="measured tasks per candidate")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--wire-dtype", choices=("float32", "float16", "int8"), default="float32")
    p.add_argument("--engine", choices=ENGINES, default="torch")
    p.add_argument("--device-class", default=None,
                   help="the profile's measured class (default: x86_cpu_1t for torch, the "
                   "profile's per-candidate onnxruntime class for onnxruntime); its engine "
                   "must be the run's")  # fmt: skip
    p.add_argument("--profile", help="profile file to predict from (default: the shipped one)")
    p.add_argument("--parts", help="existing partition directory (default: made on the fly)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_validate)

    p = sub.add_parser("demo", help="devices with Poisson arrivals against real servers")
    p.add_argument("--policy", required=True, help="exported policy directory")
    p.add_argument("--duration-s", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rules", default="policy,neurosurgeon", help="comma-separated")
    p.add_argument("--arrival-scale", type=float, default=1.0, help="multiplies arrival rates")
    p.add_argument("--profile-dir", help="NETWORK.json profiles of this machine (replay tails)")
    p.add_argument("--per-task", action="store_true", help="each task's figures in the JSON")
    p.add_argument("--clock", choices=("slot", "arrival"), default="slot",
                   help="when devices ask for decisions: at slot boundaries, one joint "
                   "decision per slot, as the policy was trained (default), or on each "
                   "task's arrival, one request per task")  # fmt: skip
    p.add_argument("--dedicated-links", action="store_true",
                   help="a link of its own per device and access point (default: the devices "
                   "behind an access point share its airtime, as in the simulator)")  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_demo)

    args = ap.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
