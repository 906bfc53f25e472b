"""Inspect network profiles from the command line.

Usage::

    python -m edgesplit.cost_models list
    python -m edgesplit.cost_models info NETWORK [--json] [--classes a,b]

``info`` prints a profile's summary: ``name``, ``macs``, ``params``, ``classes`` (the
device classes it can be costed on: the profile's measured classes, then the device
catalogue's) and ``candidates``, each ``{index, name, bytes, head_s: {class: s},
tail_s: {class: s}}``. Bytes count as they travel: the input as uint8, an intermediate cut
as float32, the result as float32. ``NETWORK`` is a shipped name or a profile path.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgesplit.cost_models.network import (
    NetworkProfile,
    ProfileError,
    available_networks,
    load_network,
)

__all__ = ["class_latencies", "main", "summary"]


def class_latencies(
    profile: NetworkProfile, classes: Sequence[str] | None = None
) -> tuple[dict[str, NDArray[np.float64]], list[str]]:
    """Per-node latency of ``profile`` on every known (or every requested) device class.

    Measured classes of the profile come first, then the modelled classes of the device
    catalogue (``edgesplit.cost_models.devices``), costed with its ``node_latency``. If the
    catalogue cannot be imported, only the measured classes are available.

    Parameters
    ----------
    profile
        The network profile.
    classes
        Restrict to these class names (in this order); ``None`` for all known ones.

    Returns
    -------
    latencies, notes
        Class name -> seconds per node, and human-readable notes about classes left out.

    Raises
    ------
    KeyError
        If a requested class is neither measured in the profile nor in the catalogue.
    """
    notes: list[str] = []
    known: dict[str, Any] = dict.fromkeys(profile.measurements)
    catalogue: Any = None
    node_latency: Any = None
    try:
        devices = importlib.import_module("edgesplit.cost_models.devices")
        catalogue = devices.load_devices()
        node_latency = devices.node_latency
    except (ImportError, AttributeError) as e:
        notes.append(f"device catalogue unavailable ({e}); showing measured classes only")
    if catalogue is not None:
        for name in catalogue.names():
            known.setdefault(name, None)
    wanted = list(known) if classes is None else list(classes)
    out: dict[str, NDArray[np.float64]] = {}
    for name in wanted:
        if name not in known:
            raise KeyError(
                f"device class {name!r} is neither measured in {profile.name!r} nor in the "
                f"device catalogue (known: {', '.join(known)})"
            )
        if catalogue is not None and name in catalogue:
            try:
                out[name] = np.asarray(node_latency(profile, catalogue[name]), dtype=np.float64)
            except ValueError as e:  # e.g. a measured class this profile lacks
                if classes is not None:
                    raise KeyError(str(e)) from e
                notes.append(f"class {name!r} left out: {e}")
        else:
            out[name] = np.asarray(profile.measurements[name].median_s, dtype=np.float64)
    return out, notes


def summary(
    profile: NetworkProfile,
    classes: Sequence[str] | None = None,
    latencies: dict[str, NDArray[np.float64]] | None = None,
) -> dict[str, Any]:
    """The ``info --json`` document of a profile.

    Parameters
    ----------
    profile
        The network profile.
    classes
        Device classes to cost (default: all known).
    latencies
        Per-node latencies by class, if already computed by :func:`class_latencies`.

    Returns
    -------
    dict
        ``name``, ``macs``, ``params``, ``classes`` and ``candidates`` (``index``,
        ``name``, ``bytes``, ``head_s`` and ``tail_s`` per class).

    >>> from edgesplit.cost_models.network import load_network
    >>> s = summary(load_network("alexnet"), ["x86_cpu_1t"])
    >>> s["classes"], s["candidates"][0]["bytes"], s["candidates"][0]["head_s"]
    (['x86_cpu_1t'], 150528.0, {'x86_cpu_1t': 0.0})
    """
    if latencies is None:
        latencies, _ = class_latencies(profile, classes)
    split = {name: profile.split_latency(lat) for name, lat in latencies.items()}
    sent = profile.candidate_bytes()
    return {
        "name": profile.name,
        "macs": profile.macs,
        "params": profile.params,
        "classes": list(latencies),
        "candidates": [
            {
                "index": c.index,
                "name": c.name,
                "bytes": float(sent[i]),
                "head_s": {k: float(v[0][i]) for k, v in split.items()},
                "tail_s": {k: float(v[1][i]) for k, v in split.items()},
            }
            for i, c in enumerate(profile.candidates)
        ],
    }


def _print_table(doc: dict[str, Any]) -> None:
    classes = doc["classes"]
    print(f"{doc['name']}: {doc['macs'] / 1e9:.3f} GMAC, {doc['params'] / 1e6:.2f} M params")
    print(f"classes: {', '.join(classes)}")
    header = f"{'idx':>4} {'name':<28} {'KB':>9}"
    for c in classes:
        header += f" {c[:16] + ' head ms':>24} {'tail ms':>9}"
    print(header)
    for cand in doc["candidates"]:
        row = f"{cand['index']:>4} {cand['name'][:28]:<28} {cand['bytes'] / 1e3:>9.1f}"
        for c in classes:
            row += f" {cand['head_s'][c] * 1e3:>24.3f} {cand['tail_s'][c] * 1e3:>9.3f}"
        print(row)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m edgesplit.cost_models", description="Inspect network profiles."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the shipped network profiles")
    info = sub.add_parser("info", help="summary of a profile and its candidates")
    info.add_argument("network", help="shipped network name or profile path")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("--classes", default=None, help="comma-separated device classes")
    args = parser.parse_args(argv)

    if args.command == "list":
        for name in available_networks():
            p = load_network(name)
            print(
                f"{name:<14} {p.macs / 1e9:>7.3f} GMAC {p.params / 1e6:>7.2f} M params "
                f"{len(p.nodes):>4} nodes  measured: {', '.join(p.measurements) or '-'}"
            )
        return 0

    try:
        profile = load_network(args.network)
        classes = None
        if args.classes is not None:
            classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        latencies, notes = class_latencies(profile, classes)
        doc = summary(profile, latencies=latencies)
    except (ProfileError, FileNotFoundError, KeyError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    try:
        if args.json:
            json.dump(doc, sys.stdout, indent=1)
            print()
        else:
            _print_table(doc)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
