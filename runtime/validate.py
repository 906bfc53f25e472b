"""Sim-to-real check: every kept candidate run for real, against the simulator's prediction.

``python -m edgesplit.runtime validate --network resnet18 --rate-mbps 20 --json``

For each candidate the environment keeps for the measured class (``x86_cpu_1t``: this CPU,
one thread, torch eager), a device (this process) and a server (a child process, ``serve``)
run ``--reps`` tasks one after another over the emulated link at ``--rate-mbps`` with a
round-trip delay of ``--rtt-ms``, after ``--warmup`` unmeasured ones, round robin over the
candidates (so that a busy spell of a shared machine hits them alike). The medians of the
measured head, transfer, tail and end-to-end seconds are set against what the simulator
computes for the same candidate from the profile (``sim/core.py``)::

    head     = H[candidate]                     (summed node medians of the head)
    transfer = bytes * 8 / rate + rtt           (0 for the all-local candidate)
    tail     = T[candidate]                     (summed node medians of the tail; same class)
    e2e      = head + transfer + tail           (no queueing: one task at a time)

with relative errors ``measured / predicted - 1`` per component and
``median_abs_rel_error``: the median over candidates of the end-to-end error's absolute
value.

A shared machine computes slower when its other users are busy. The report therefore also
gives ``speed_factor``, the all-local candidate's measured over predicted head (the whole
network, run in the same round robin: a yardstick of this machine's speed during the run),
and ``median_abs_rel_error_speed_normalised``: the errors of the other candidates once their
predicted compute (head and tail) is multiplied by that factor. That figure checks the
split (how the work divides between head and tail), the transfer and the framing, not the
profile's absolute speed; the headline ``median_abs_rel_error`` is the raw one. A third
view, ``median_abs_rel_error_cpu_time``, counts head and tail in CPU time (the thread's
``time.thread_time``: what the computation cost, without the time other processes held
the core) and the transfer in wall-clock time, against the wall-clock prediction. A fourth,
``median_abs_rel_error_cpu_vs_cpu`` (per-candidate classes that recorded CPU time), sets
that measured CPU time against the profile's own CPU-time medians: on a machine whose load
changes between the profile and the run, it checks the model without the load.

``--profile FILE`` predicts from a profile measured elsewhere (e.g. on this machine with
``python -m edgesplit.cost_models.profile``); the JSON states the profile's hardware
and this machine's, because a profile predicts only the machine it was measured on.

**The prediction and the run use the same engine.** A class measured per node
(``measurements``, e.g. ``x86_cpu_1t``) was timed on torch eager, so it predicts the torch
engine only; a class measured per candidate (``candidate_measurements``, written by
``python -m edgesplit.cost_models.profile_candidates NET --engine E``) names its engine,
and its heads and tails, timed as whole graphs, are read directly. Without
``--device-class``, ``--engine torch`` predicts from ``x86_cpu_1t`` and ``--engine
onnxruntime`` from the profile's one per-candidate class of that engine; a class whose
engine is not the run's is refused. A per-candidate class runs the candidates it measured.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgesplit.cost_models.network import CANDIDATE_ENGINES, NetworkProfile, load_network

from .device import Device, FixedDecider, ServerEndpoint
from .link import EmulatedLink
from .parts import WIRE_BYTES, load_parts

__all__ = ["engine_class", "predict", "validate"]


def predict(
    profile: NetworkProfile,
    index: int,
    rate_mbps: float,
    rtt_s: float,
    device_class: str = "x86_cpu_1t",
    server_class: str | None = None,
    wire_dtype: str = "float32",
) -> dict[str, float]:
    """The simulator's head, transfer, tail and end-to-end seconds for candidate ``index``.

    Head and tail come from the class's measurement: read directly for a per-candidate
    class, summed node medians for a per-node class, the roofline for a modelled class of
    the device catalogue.

    >>> p = load_network("resnet18")
    >>> d = predict(p, 0, rate_mbps=20.0, rtt_s=0.01)
    >>> d["head_s"], round(d["transfer_s"], 5)   # 150528 bytes of uint8 image at 20 Mbps
    (0.0, 0.07021)
    """
    head = _head_tail(profile, device_class, index)[0]
    tail = _head_tail(profile, server_class or device_class, index)[1]
    local = index == len(profile.candidates) - 1
    sent = profile.candidate_bytes(wire_bytes_per_element=WIRE_BYTES[wire_dtype])[index]
    tx = 0.0 if local else sent * 8 / (rate_mbps * 1e6) + rtt_s
    tail = 0.0 if local else float(tail)
    return {
        "head_s": float(head),
        "transfer_s": float(tx),
        "tail_s": tail,
        "end_to_end_s": float(head) + tx + tail,
        "bytes": 0.0 if local else float(sent),
    }


def _head_tail(profile: NetworkProfile, device_class: str, index: int) -> tuple[float, float]:
    if device_class in profile.candidate_measurements or device_class in profile.measurements:
        return profile.candidate_latency(device_class).at(index)
    from edgesplit.cost_models.devices import load_devices, node_latency

    head, tail = profile.split_latency(node_latency(profile, load_devices()[device_class]))
    return float(head[index]), float(tail[index])


def engine_class(profile: NetworkProfile, engine: str, device_class: str | None = None) -> str:
    """The class that predicts ``engine``: ``device_class`` if given (refused when measured
    with another engine), else ``x86_cpu_1t`` for torch, the profile's one per-candidate
    class of that engine otherwise.

    >>> engine_class(load_network("resnet18"), "torch")
    'x86_cpu_1t'
    """
    if engine not in CANDIDATE_ENGINES:
        raise ValueError(f"engine: expected one of {list(CANDIDATE_ENGINES)}, got {engine!r}")
    if device_class is None and engine == "torch":
        device_class = "x86_cpu_1t"  # checked below like a named class
    if device_class is None:
        found = sorted(c for c, m in profile.candidate_measurements.items() if m.engine == engine)
        if len(found) != 1:
            raise ValueError(
                f"profile {profile.name!r} has {len(found)} per-candidate classes measured with "
                f"{engine} ({found}): "
                + ("name one with --device-class" if found else
                   f"measure one with `python -m edgesplit.cost_models.profile_candidates "
                   f"{profile.name} --engine {engine} --out FILE`, then pass --profile FILE")
            )  # fmt: skip
        return found[0]
    pc = profile.candidate_measurements.get(device_class)
    if pc is None and device_class not in profile.measurements:
        raise ValueError(
            f"device_class: profile {profile.name!r} has no measurement of {device_class!r} "
            f"(per node: {sorted(profile.measurements)}; per candidate: "
            f"{sorted(profile.candidate_measurements)})"
        )
    measured = pc.engine if pc is not None else "torch"  # the node profiler runs torch eager
    if measured != engine:
        raise ValueError(
            f"device_class {device_class!r} of profile {profile.name!r} was measured with "
            f"{measured}, the run uses {engine}: predict a run from a class measured with its "
            "engine (python -m edgesplit.cost_models.profile_candidates ... --engine "
            f"{engine})"
        )
    return device_class


def _rel(measured: float, predicted: float) -> float | None:
    if predicted <= 0 or not math.isfinite(measured):
        return None
    return measured / predicted - 1.0


def _start_server(parts_dir: Path, engine: str) -> tuple[subprocess.Popen, str, int]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgesplit.runtime", "serve", "--parts", str(parts_dir),
         "--port", "0", "--engine", engine],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    line = proc.stdout.readline() if proc.stdout else ""
    if " on " not in line:
        proc.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    host, _, port = line.split(" on ")[1].split()[0].rpartition(":")
    return proc, host, int(port)


def validate(
    network: str,
    rate_mbps: float,
    rtt_ms: float = 10.0,
    *,
    reps: int = 7,
    warmup: int = 2,
    wire_dtype: str = "float32",
    engine: str = "torch",
    device_class: str | None = None,
    profile: str | None = None,
    parts_dir: str | None = None,
    cap: int = 8,
    progress: Any = None,
) -> dict[str, Any]:
    """Run the check (see the module docstring) and return its JSON-ready report.

    ``device_class`` None picks the class of ``engine`` (:func:`engine_class`).
    """
    import torch

    from edgesplit.cost_models.profile import hardware_description

    from .partition import kept_candidates, partition

    torch.set_num_threads(1)
    if not (rate_mbps > 0 and math.isfinite(rate_mbps)):
        raise ValueError(f"rate_mbps must be a positive number, got {rate_mbps!r}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps!r}")
    prof = load_network(profile or network)
    note = None
    device_class = engine_class(prof, engine, device_class)
    per_candidate = device_class in prof.candidate_measurements
    if per_candidate:
        keep = list(prof.candidate_measurements[device_class].indices)
    else:  # engine_class checked that the profile measures it
        keep = kept_candidates(prof, [device_class], wire_dtype, cap)
    cpu_pred = None
    pcm = prof.candidate_measurements.get(device_class)
    if pcm is not None and pcm.head_cpu_median_s is not None:
        last = len(prof.candidates) - 1
        cpu_pred = {
            k: (float(h), 0.0 if k == last else float(t))
            for k, h, t in zip(
                pcm.indices, pcm.head_cpu_median_s, pcm.tail_cpu_median_s, strict=True
            )
        }
    with tempfile.TemporaryDirectory(prefix="edgesplit-validate-") as tmp:
        if parts_dir is None:
            parts_dir = tmp
            partition(network, tmp, profile=prof, candidates=keep,
                      onnx=engine == "onnxruntime")  # fmt: skip
        parts = load_parts(parts_dir)
        proc, host, port = _start_server(Path(parts_dir), engine)
        rows = []
        try:
            link = EmulatedLink.constant(rate_mbps, rtt_ms / 1e3)
            ep = {"edge0": ServerEndpoint(host, port, link)}
            devices = {}
            for k in keep:
                cand = parts.by_index(k)
                target = None if cand.kind == "output" else "edge0"
                devices[k] = Device(
                    "validate",
                    parts,
                    ep,
                    FixedDecider(cand.name, target),
                    engine=engine,
                    wire_dtype=wire_dtype,
                    app=parts.network,
                )
            # round robin over the candidates, so that the machine's load hits them alike
            records: dict[int, list[Any]] = {k: [] for k in keep}
            for rep in range(warmup + reps):
                for k, dev in devices.items():
                    rec = dev.run_task()
                    if rep >= warmup:
                        records[k].append(rec)
            for dev in devices.values():
                dev.close()
            for k in keep:
                cand = parts.by_index(k)
                recs = records[k]
                meas = {
                    key: float(np.median([getattr(r, key) for r in recs]))
                    for key in ("head_s", "transfer_s", "server_wait_s", "tail_s",
                                "end_to_end_s", "head_cpu_s", "tail_cpu_s")
                }  # fmt: skip
                if cand.kind == "output":
                    meas["server_wait_s"] = 0.0
                    meas["tail_cpu_s"] = 0.0
                pred = predict(prof, k, rate_mbps, rtt_ms / 1e3, device_class,
                               wire_dtype=wire_dtype)  # fmt: skip
                row = {
                    "index": k,
                    "candidate": cand.name,
                    "kind": cand.kind,
                    "bytes_predicted": pred["bytes"],
                    "frame_bytes": recs[0].bytes_sent,
                    "measured": meas,
                    "predicted": {k2: v for k2, v in pred.items() if k2 != "bytes"},
                    "rel_error": {
                        key: _rel(meas[key], pred[key])
                        for key in ("head_s", "transfer_s", "tail_s", "end_to_end_s")
                    },
                    # compute counted in CPU time (the time the machine let it run)
                    "rel_error_cpu_time": {
                        "head_s": _rel(meas["head_cpu_s"], pred["head_s"]),
                        "tail_s": _rel(meas["tail_cpu_s"], pred["tail_s"]),
                        "end_to_end_s": _rel(
                            meas["head_cpu_s"] + meas["transfer_s"] + meas["tail_cpu_s"],
                            pred["end_to_end_s"],
                        ),
                    },
                }
                if cpu_pred is not None:
                    # CPU time against the profile's CPU time: the model's own check on a
                    # machine whose other work slows the wall clock of both alike
                    hc, tc = cpu_pred[k]
                    row["predicted_cpu"] = {"head_s": hc, "tail_s": tc}
                    row["rel_error_cpu_vs_cpu"] = {
                        "head_s": _rel(meas["head_cpu_s"], hc),
                        "tail_s": _rel(meas["tail_cpu_s"], tc),
                        "end_to_end_s": _rel(
                            meas["head_cpu_s"] + meas["transfer_s"] + meas["tail_cpu_s"],
                            hc + pred["transfer_s"] + tc,
                        ),
                    }
                else:
                    row["rel_error_cpu_vs_cpu"] = {}
                rows.append(row)
                if progress:
                    progress(_line(row))
        finally:
            proc.terminate()
            proc.wait(10)

    def med(key: str, field: str = "rel_error") -> float | None:
        vals = [abs(r[field][key]) for r in rows if r[field].get(key) is not None]
        return float(np.median(vals)) if vals else None

    # the yardstick: the all-local candidate runs the whole network on the device in this
    # same run; its measured/predicted ratio is how fast this machine computes right now
    # against the profile (a shared machine's speed drifts with its load)
    # (a per-candidate class measured without the all-local candidate has none)
    local = rows[-1]
    has_local = local["kind"] == "output"
    speed = local["measured"]["head_s"] / local["predicted"]["head_s"] if has_local else None
    for r in rows:
        r["rel_error_speed_normalised"] = {}
    for r in rows[:-1] if speed is not None else []:
        p = r["predicted"]
        scaled = {
            "head_s": p["head_s"] * speed,
            "transfer_s": p["transfer_s"],
            "tail_s": p["tail_s"] * speed,
        }
        scaled["end_to_end_s"] = sum(scaled.values())
        r["rel_error_speed_normalised"] = {
            key: _rel(r["measured"][key], scaled[key]) for key in scaled
        }

    m = (prof.candidate_measurements if per_candidate else prof.measurements)[device_class]
    return {
        "network": prof.name,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rate_mbps": rate_mbps,
        "rtt_ms": rtt_ms,
        "wire_dtype": wire_dtype,
        "engine": engine,
        "device_class": device_class,
        "class_measured": "per candidate" if per_candidate else "per node",
        "reps": reps,
        "note": note,
        "warmup": warmup,
        "profile": str(prof.path) if prof.path else prof.name,
        "profile_hardware": dict(m.provenance.get("hardware", {})),
        "profile_date": m.provenance.get("date"),
        "this_hardware": hardware_description(),
        "load_average_1m": os.getloadavg()[0],
        "candidates": rows,
        "median_abs_rel_error": med("end_to_end_s"),
        "median_abs_rel_error_components": {
            key: med(key) for key in ("head_s", "transfer_s", "tail_s", "end_to_end_s")
        },
        "median_abs_rel_error_cpu_time": {
            key: med(key, "rel_error_cpu_time") for key in ("head_s", "tail_s", "end_to_end_s")
        },
        "median_abs_rel_error_cpu_vs_cpu": (
            {key: med(key, "rel_error_cpu_vs_cpu") for key in ("head_s", "tail_s", "end_to_end_s")}
            if cpu_pred is not None
            else None
        ),
        "speed_factor": speed,
        "median_abs_rel_error_speed_normalised": {
            key: med(key, "rel_error_speed_normalised")
            for key in ("head_s", "transfer_s", "tail_s", "end_to_end_s")
        },
    }


def _line(row: dict[str, Any]) -> str:
    m, p = row["measured"], row["predicted"]

    def ms(x: float) -> str:
        return f"{x * 1e3:7.1f}"

    err = row["rel_error"]["end_to_end_s"]
    return (
        f"{row['index']:3d} {row['candidate']:<18} head {ms(m['head_s'])}/{ms(p['head_s'])}  "
        f"tx {ms(m['transfer_s'])}/{ms(p['transfer_s'])}  tail {ms(m['tail_s'])}/"
        f"{ms(p['tail_s'])}  e2e {ms(m['end_to_end_s'])}/{ms(p['end_to_end_s'])} ms  "
        f"err {err:+.1%}"
    )


def format_report(rep: dict[str, Any]) -> str:
    """A human-readable table of a :func:`validate` report (measured/predicted, ms)."""
    hw = rep["profile_hardware"].get("cpu", "?")
    lines = [
        f"{rep['network']} at {rep['rate_mbps']} Mbps, rtt {rep['rtt_ms']} ms, "
        f"{rep['wire_dtype']} on the wire, engine {rep['engine']}, class "
        f"{rep['device_class']} ({rep.get('class_measured', 'per node')}; profile measured "
        f"on {hw}; this machine: "
        f"{rep['this_hardware'].get('cpu', '?')}); medians of {rep['reps']} tasks",
        "  k candidate          measured/predicted, ms",
    ]
    lines += ["  " + _line(r) for r in rep["candidates"]]
    for label, key in (("", "median_abs_rel_error_components"),
                       (" (compute in CPU time)", "median_abs_rel_error_cpu_time"),
                       (" (CPU time against the profile's CPU time)",
                        "median_abs_rel_error_cpu_vs_cpu"),
                       (f" at speed x{rep['speed_factor'] or math.nan:.2f}",
                        "median_abs_rel_error_speed_normalised")):  # fmt: skip
        comp = rep[key]
        if comp is None:
            continue
        lines.append(
            f"median |rel error|{label}: "
            + ", ".join(f"{k.removesuffix('_s')} {v:.1%}" for k, v in comp.items() if v is not None)
        )
    return "\n".join(lines)
