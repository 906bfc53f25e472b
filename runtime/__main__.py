"""Command line of the runtime: ``python -m edgesplit.runtime {partition,serve,device,validate}``.

::

    python -m edgesplit.runtime partition resnet18 --out parts/resnet18
    python -m edgesplit.runtime serve --parts parts/resnet18 [--port 9100] [--engine torch]
    python -m edgesplit.runtime device --parts parts/resnet18 --server edge0=127.0.0.1:9100 \\
        --candidate layer3_1_relu_1 --tasks 10 --rate-mbps 20 --rtt-ms 10
    python -m edgesplit.runtime validate --network resnet18 --rate-mbps 20 --json
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


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

    args = ap.parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
