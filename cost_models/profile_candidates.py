"""Per-candidate profiles: each kept candidate's head and tail timed as whole graphs, on
the engine that runs them.

Usage::

    python -m edgesplit.cost_models.profile_candidates NETWORK --engine onnxruntime \\
        --out FILE [--profile FILE] [--device-class NAME] [--candidates 0,58,69] \\
        [--warmup 3] [--rounds 20]

The node-by-node profiler (:mod:`edgesplit.cost_models.profile`) times torch eager one node
at a time and the cost model sums the nodes; that cannot describe onnxruntime, which fuses
nodes (convolution, batch norm and ReLU run as one kernel), and it misses whatever a head run
as one graph costs beyond its nodes run alone (MobileNetV2's 153 small nodes on the torch
engine: ``docs/runtime.md``). This profiler partitions the network exactly as the runtime
does (:func:`edgesplit.runtime.partition.partition`) and times the runtime's own engine
objects (``Partitions.engine(kind)``):

* ``onnxruntime``: :class:`edgesplit.runtime.parts.OrtEngine` (one intra-op and one inter-op
  thread, ``ORT_ENABLE_ALL`` graph optimisation, the CPU provider), the ONNX files of the
  partition;
* ``torch``: :class:`edgesplit.runtime.engines_torch.TorchEngine` (the split
  ``torch.fx`` modules, torch eager under ``inference_mode``, one thread).

A head is ``engine.head(name, image)`` on a uint8 camera image (the ``x / 255``
preprocessing included, as the device runs it); a tail is ``engine.tail(name, cut)`` on the
head's outputs (candidate 0's tail takes the image and preprocesses it, as the server does).
What the runtime adds around them (encoding, framing, the link) is not compute and is not
here. Method: after ``warmup`` unmeasured rounds, each of ``rounds`` rounds times every
candidate's head then its tail, the candidates in an order rotated by one each round, so
that a busy spell of a shared machine, or the cache state a candidate leaves to the next,
falls on all of them alike; the garbage collector is paused; percentiles are over the
measured rounds. The calling thread's CPU time is recorded beside the wall clock
(``head_cpu_median_s``, ``tail_cpu_median_s``): on a shared machine it says what the
computation cost without the time other work held the core.

The result goes into the profile under ``candidate_measurements[CLASS]`` (schema version 2,
``docs/profiles.md``), with the network's graph, candidates and node measurements copied
from ``--profile`` (default: the shipped profile). Which candidates: ``--candidates``, else
the ones the environment keeps for the per-node class ``x86_cpu_1t`` of that profile (the
candidates ``python -m edgesplit.runtime validate`` runs). The cost model then reads
``head_s[k]`` and ``tail_s[k]`` directly (:meth:`NetworkProfile.candidate_latency`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesplit.cost_models.network import (
    CANDIDATE_ENGINES,
    NetworkProfile,
    load_network,
    parse_profile,
    schema_version_for,
)
from edgesplit.cost_models.profile import (
    hardware_description,
    software_versions,
    write_profile,
)

__all__ = ["DEFAULT_CLASSES", "TOOL", "main", "measure_candidates", "profile_candidates"]

TOOL = "edgesplit.cost_models.profile_candidates 1"
DEFAULT_CLASSES = {"onnxruntime": "x86_cpu_1t_ort", "torch": "x86_cpu_1t_torch"}
"""The class each engine's measurement is written under unless ``device_class`` says."""
SIGNIFICANT_DIGITS = 4


def _sig(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def measure_candidates(
    parts: Any,
    engine: str,
    indices: Sequence[int],
    *,
    warmup: int = 3,
    rounds: int = 20,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Time head and tail of each candidate of a loaded partition, whole, on ``engine``.

    Parameters
    ----------
    parts
        A :class:`edgesplit.runtime.parts.Partitions` holding every index in ``indices``.
    engine
        ``"onnxruntime"`` or ``"torch"`` (the runtime's engine of that kind).
    indices
        Profile candidate indices to time.
    warmup, rounds
        Unmeasured and measured rounds (see the module docstring).
    seed
        Seed of the uint8 input image.
    progress
        Called with progress lines.

    Returns
    -------
    head_s, tail_s, head_cpu_s, tail_cpu_s
        Arrays of shape ``(rounds, len(indices))``, seconds (0 where a candidate has no
        head, candidate 0, or no tail, the last): wall-clock time, and the calling thread's
        CPU time (``time.thread_time``; both engines compute in the calling thread at one
        intra-op thread).
    """
    if engine not in CANDIDATE_ENGINES:
        raise ValueError(f"engine must be one of {list(CANDIDATE_ENGINES)}, got {engine!r}")
    if rounds < 1 or warmup < 0:
        raise ValueError(f"need rounds >= 1 and warmup >= 0, got {rounds} and {warmup}")
    eng = parts.engine(engine)
    cands = [parts.by_index(int(k)) for k in indices]
    for c in cands:
        eng.warm(c.name)
    image = np.random.default_rng(seed).integers(0, 256, parts.input_shape, dtype=np.uint8)
    n = len(cands)
    head = np.zeros((warmup + rounds, n))
    tail = np.zeros((warmup + rounds, n))
    head_cpu = np.zeros((warmup + rounds, n))
    tail_cpu = np.zeros((warmup + rounds, n))
    clock, cpu = time.perf_counter, time.thread_time
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(warmup + rounds):
            for j in np.roll(np.arange(n), -r):
                c = cands[j]
                c0, t0 = cpu(), clock()
                cut = eng.head(c.name, image)
                t1, c1 = clock(), cpu()
                if c.kind != "input":
                    head[r, j], head_cpu[r, j] = t1 - t0, c1 - c0
                if c.kind != "output":
                    c0, t0 = cpu(), clock()
                    out = eng.tail(c.name, cut)
                    t1, c1 = clock(), cpu()
                    tail[r, j], tail_cpu[r, j] = t1 - t0, c1 - c0
                    del out
                del cut
            if progress is not None and (r + 1) % max(1, (warmup + rounds) // 5) == 0:
                progress(f"  round {r + 1}/{warmup + rounds}")
    finally:
        if gc_was_enabled:
            gc.enable()
    return head[warmup:], tail[warmup:], head_cpu[warmup:], tail_cpu[warmup:]


def _engine_options(engine: str) -> dict[str, Any]:
    if engine == "onnxruntime":
        import onnxruntime as ort

        return {
            "onnxruntime": ort.__version__,
            "intra_op_num_threads": 1,
            "inter_op_num_threads": 1,
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "providers": "CPUExecutionProvider",
        }
    import torch

    return {"torch": torch.__version__, "threads": int(torch.get_num_threads()),
            "mode": "eager, inference_mode, torch.fx split modules"}  # fmt: skip


def profile_candidates(
    model: str,
    engine: str,
    *,
    profile: str | Path | NetworkProfile | None = None,
    device_class: str | None = None,
    candidates: Sequence[int] | None = None,
    node_class: str = "x86_cpu_1t",
    wire_dtype: str = "float32",
    cap: int = 8,
    warmup: int = 3,
    rounds: int = 20,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Profile every chosen candidate's head and tail on ``engine``; return the document.

    Parameters
    ----------
    model
        A shipped network name or ``package.module:factory``.
    engine
        ``"onnxruntime"`` or ``"torch"``.
    profile
        The network's profile (a :class:`NetworkProfile`, a path or a shipped name); its
        graph, candidates and measurements are copied into the result. Default: the shipped
        profile of ``model``.
    device_class
        Class name to write (default :data:`DEFAULT_CLASSES` of the engine).
    candidates
        Profile candidate indices; default: those the environment keeps for
        ``node_class`` at ``wire_dtype`` and ``cap`` (what ``validate`` runs).
    node_class, wire_dtype, cap
        The rule for the default candidates.
    warmup, rounds, seed, progress
        See :func:`measure_candidates`.

    Returns
    -------
    dict
        A profile document (schema version 2) that
        :func:`~edgesplit.cost_models.network.parse_profile` accepts, holding
        ``candidate_measurements[device_class]``.
    """
    import torch

    from edgesplit.runtime.partition import kept_candidates, partition
    from edgesplit.runtime.parts import load_parts

    if engine not in CANDIDATE_ENGINES:
        raise ValueError(f"engine must be one of {list(CANDIDATE_ENGINES)}, got {engine!r}")
    torch.set_num_threads(1)
    prof = profile if isinstance(profile, NetworkProfile) else load_network(profile or model)
    if prof.path is None:
        raise ValueError(f"profile {prof.name!r}: needs the file it was loaded from")
    doc = json.loads(Path(prof.path).read_text(encoding="utf-8"))
    cls = device_class or DEFAULT_CLASSES[engine]
    if cls in prof.measurements:
        raise ValueError(
            f"device_class {cls!r} is measured per node in {prof.path}: a per-candidate "
            "class needs a name of its own"
        )
    if candidates is None:
        indices = kept_candidates(prof, [node_class], wire_dtype, cap)
    else:
        indices = sorted({int(k) for k in candidates})
        bad = [k for k in indices if not 0 <= k < len(prof.candidates)]
        if bad:
            raise ValueError(
                f"candidates: index {bad[0]} out of range [0, {len(prof.candidates) - 1}]"
            )
    say = progress or (lambda _msg: None)
    say(f"profiling {prof.name} per candidate on {engine} as {cls!r}: candidates {indices}, "
        f"{warmup} warm-up + {rounds} rounds")  # fmt: skip
    load_1m = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    started = _dt.datetime.now(_dt.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="edgesplit-profile-") as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes
            partition(model, tmp, profile=prof, candidates=indices, onnx=engine == "onnxruntime")
        parts = load_parts(tmp)
        head, tail, head_cpu, tail_cpu = measure_candidates(
            parts, engine, indices, warmup=warmup, rounds=rounds, seed=seed, progress=progress
        )
        options = _engine_options(engine)

    def pct(a: np.ndarray, q: float) -> list[float]:
        return [_sig(float(v)) for v in np.percentile(a, q, axis=0)]

    provenance: dict[str, Any] = {
        "tool": TOOL,
        "model": doc["source"] if ":" not in model else model,
        "hardware": hardware_description(),
        "software": software_versions(),
        "date": started.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "threads": 1,
        "warmup": int(warmup),
        "rounds": int(rounds),
        "engine_options": options,
    }
    if load_1m is not None:
        provenance["load_average_1m"] = round(float(load_1m), 2)
    measurement = {
        "engine": engine,
        "candidates": [int(k) for k in indices],
        "head_median_s": pct(head, 50),
        "head_p10_s": pct(head, 10),
        "head_p90_s": pct(head, 90),
        "tail_median_s": pct(tail, 50),
        "tail_p10_s": pct(tail, 10),
        "tail_p90_s": pct(tail, 90),
        "provenance": provenance,
        "head_cpu_median_s": pct(head_cpu, 50),
        "tail_cpu_median_s": pct(tail_cpu, 50),
    }
    doc["candidate_measurements"] = {**doc.get("candidate_measurements", {}), cls: measurement}
    doc["schema_version"] = schema_version_for(doc)
    parse_profile(doc, f"<per-candidate profile of {prof.name}>")
    for k, h, t in zip(indices, measurement["head_median_s"], measurement["tail_median_s"],
                       strict=True):  # fmt: skip
        say(f"  candidate {k:3d} {prof.candidates[k].name:<24} head {h * 1e3:9.3f} ms  "
            f"tail {t * 1e3:9.3f} ms")  # fmt: skip
    return doc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m edgesplit.cost_models.profile_candidates",
        description="Time each kept candidate's head and tail as whole graphs on a runtime "
        "engine and write them into a profile (candidate_measurements).",
    )
    p.add_argument("model", help="shipped network name, or package.module:factory")
    p.add_argument("--engine", choices=CANDIDATE_ENGINES, required=True)
    p.add_argument("--out", type=Path, required=True, help="profile file to write")
    p.add_argument("--profile", help="profile to start from (default: the shipped one)")
    p.add_argument("--merge", action="store_true",
                   help="start from --out if it exists (keeping its other classes) instead "
                   "of --profile")  # fmt: skip
    p.add_argument("--device-class", default=None,
                   help="class to write (default x86_cpu_1t_ort / x86_cpu_1t_torch)")  # fmt: skip
    p.add_argument("--candidates", help="comma-separated candidate indices (default: kept)")
    p.add_argument("--node-class", default="x86_cpu_1t",
                   help="per-node class whose kept candidates are timed")  # fmt: skip
    p.add_argument("--wire-dtype", choices=("float32", "float16", "int8"), default="float32")
    p.add_argument("--cap", type=int, default=8, help="most candidates kept (default 8)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args = _parser().parse_args(argv)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    base = args.profile
    if args.merge and args.out.exists():
        base = str(args.out.resolve())
    try:
        cands = [int(c) for c in args.candidates.split(",")] if args.candidates else None
    except ValueError:
        say(f"error: --candidates: expected comma-separated candidate indices, got "
            f"{args.candidates!r}")  # fmt: skip
        return 2
    try:
        doc = profile_candidates(
            args.model, args.engine, profile=base, device_class=args.device_class,
            candidates=cands, node_class=args.node_class, wire_dtype=args.wire_dtype,
            cap=args.cap, warmup=args.warmup, rounds=args.rounds, seed=args.seed,
            progress=say,
        )  # fmt: skip
    except (ValueError, OSError) as e:
        say(f"error: {e}")
        return 2
    write_profile(doc, args.out)
    cls = args.device_class or DEFAULT_CLASSES[args.engine]
    m = doc["candidate_measurements"][cls]
    whole = (  # candidate 0's tail, where it was measured
        f"whole network (candidate 0's tail) {m['tail_median_s'][0] * 1e3:.3f} ms, "
        if m["candidates"][0] == 0
        else ""
    )
    print(
        f"{args.out}: {doc['name']} class {cls} ({args.engine}): {len(m['candidates'])} "
        f"candidates, {whole}{time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
