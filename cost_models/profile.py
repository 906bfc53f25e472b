"""The profiler: measure any ``nn.Module`` node by node on this machine, write a profile.

Usage::

    python -m edgesplit.cost_models.profile package.module:factory \\
        --input-shape 1,3,224,224 --device-class NAME --out FILE \\
        [--threads 1] [--warmup 5] [--rounds 20] [--name NAME] [--merge]

``package.module:factory`` names a callable returning the module (or a module instance);
the shipped networks are ``edgesplit.cost_models.zoo:resnet18`` and so on (a bare shipped
name such as ``resnet18`` works too). The profile it writes is the network's graph and
candidates (:mod:`edgesplit.cost_models.graph`) plus one measurement for ``--device-class``;
``--merge`` adds the measurement to an existing profile of the same graph instead.

Method (what a trial on a shared 2-core x86 machine taught):

* the intra-op thread count is set explicitly (default 1; two threads on two shared cores
  gave p90s near a second);
* everything runs under ``torch.inference_mode`` with the garbage collector paused;
* after ``--warmup`` rounds, each of ``--rounds`` rounds runs the whole network once, then
  every node in graph order, each node called alone (timed) on the inputs that the nodes
  before it produced in that round; each intermediate value is freed right after its last
  consumer, as in the whole network (keeping them all alive inflated ResNet50's summed
  node latency 1.3-1.5x);
* p10/p50/p90 are reported per node and for the whole network, with the ratio of summed
  node medians to the whole-network median (within about 10% at one thread) and a warning
  when the whole network's ``(p90 - p10) / p50`` exceeds 0.3.

This profiler runs torch eager node by node. To time each kept candidate's head and tail
as whole graphs on a runtime engine (onnxruntime or torch), which is what predicts that
engine, use :mod:`edgesplit.cost_models.profile_candidates` (``python -m
edgesplit.cost_models.profile_candidates NET --engine onnxruntime --out FILE``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import importlib
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from edgesplit.cost_models.graph import TracedNetwork, trace_network
from edgesplit.cost_models.network import SCHEMA, parse_profile, schema_version_for

__all__ = [
    "RATIO_WARNING",
    "SPREAD_WARNING",
    "ProfilerWarning",
    "hardware_description",
    "load_factory",
    "main",
    "merge_measurement",
    "profile_module",
    "software_versions",
    "write_profile",
]

SPREAD_WARNING = 0.3
"""Warn when the whole network's (p90 - p10) / p50 exceeds this."""
RATIO_WARNING = 0.1
"""Warn when summed node medians differ from the whole-network median by more than this."""
SIGNIFICANT_DIGITS = 4
"""Latencies are written with this many significant digits."""
TOOL = "edgesplit.cost_models.profile 1"


class ProfilerWarning(UserWarning):
    """The measurement is noisy or the node sum does not match the whole network."""


def _sig(x: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    return float(f"{x:.{digits}g}")


def hardware_description(device: torch.device | None = None) -> dict[str, Any]:
    """Describe this machine without naming it (no hostname).

    Parameters
    ----------
    device
        The device the network runs on; for CUDA its name is recorded as ``accelerator``.

    Returns
    -------
    dict
        ``cpu`` (``/proc/cpuinfo`` model name, else the board's device-tree model, else
        :func:`platform.processor`), ``machine``, ``logical_cpus``, ``os`` and, for CUDA,
        ``accelerator``.
    """
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    cpu = value.strip()
                    break
    except OSError:
        pass
    if not cpu:
        try:
            cpu = Path("/proc/device-tree/model").read_text().strip("\x00\n ")
        except OSError:
            cpu = platform.processor() or platform.machine() or "unknown"
    hw: dict[str, Any] = {
        "cpu": cpu,
        "machine": platform.machine() or "unknown",
        "logical_cpus": os.cpu_count() or 1,
        "os": f"{platform.system()} {platform.release()}".strip() or "unknown",
    }
    if device is not None and device.type == "cuda":
        hw["accelerator"] = torch.cuda.get_device_name(device)
    return hw


def software_versions() -> dict[str, str]:
    """Versions of python, torch and numpy."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def load_factory(spec: str) -> tuple[Callable[[], nn.Module], str]:
    """Resolve ``package.module:factory`` (or a shipped zoo name) to a callable.

    Parameters
    ----------
    spec
        ``package.module:attribute`` where the attribute is a factory function, an
        ``nn.Module`` class or an ``nn.Module`` instance; or a name in
        :data:`edgesplit.cost_models.zoo.FACTORIES`.

    Returns
    -------
    factory, name
        A no-argument callable returning the module, and the attribute's name.

    Raises
    ------
    ValueError
        If the spec is malformed or names nothing usable.
    """
    if ":" not in spec:
        from edgesplit.cost_models import zoo

        if spec in zoo.FACTORIES:
            return zoo.FACTORIES[spec], spec
        raise ValueError(
            f"model {spec!r}: expected package.module:factory or a shipped name "
            f"({', '.join(zoo.FACTORIES)})"
        )
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"model {spec!r}: expected package.module:factory")
    try:
        mod = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"model {spec!r}: cannot import {module_name!r}: {e}") from e
    try:
        obj = getattr(mod, attr)
    except AttributeError:
        raise ValueError(f"model {spec!r}: {module_name!r} has no attribute {attr!r}") from None
    if isinstance(obj, nn.Module):
        return (lambda: obj), attr
    if not callable(obj):
        raise ValueError(f"model {spec!r}: {attr!r} is neither a module nor callable")
    return obj, attr


def _node_call(gm: fx.GraphModule, node: fx.Node) -> Callable[..., Any]:
    if node.op == "call_module":
        return gm.get_submodule(str(node.target))
    if node.op == "call_function":
        return node.target  # type: ignore[return-value]
    method = str(node.target)

    def call_method(obj: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(obj, method)(*args, **kwargs)

    return call_method


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(
    module: nn.Module,
    traced: TracedNetwork,
    x: torch.Tensor,
    warmup: int,
    rounds: int,
    progress: Callable[[str], None] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved rounds: the whole network, then every node. Returns (whole, per-node)."""
    gm = traced.graph_module
    fx_nodes = traced.fx_nodes
    index = {node: i for i, node in enumerate(fx_nodes)}
    constants: dict[fx.Node, Any] = {}
    placeholder = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            placeholder = node
        elif node.op == "get_attr":
            constants[node] = _attr(gm, str(node.target))
    # free each value right after its last consumer (values the output reads stay alive)
    last_use: dict[fx.Node, int] = {}
    for node in fx_nodes:
        last_use[node] = index[node]
        for user in node.users:
            if user in index:
                last_use[node] = max(last_use[node], index[user])
            else:  # the output node
                last_use[node] = len(fx_nodes)
    free_after: list[list[fx.Node]] = [[] for _ in fx_nodes]
    for node, i in last_use.items():
        if i < len(fx_nodes):
            free_after[i].append(node)
    calls = [_node_call(gm, node) for node in fx_nodes]
    device = x.device

    n = len(fx_nodes)
    whole = np.empty(warmup + rounds)
    per_node = np.empty((warmup + rounds, n))
    clock = time.perf_counter
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with torch.inference_mode():
            for r in range(warmup + rounds):
                _sync(device)
                t0 = clock()
                out = module(x)
                _sync(device)
                whole[r] = clock() - t0
                del out
                env: dict[fx.Node, Any] = dict(constants)
                env[placeholder] = x  # type: ignore[index]
                for i, node in enumerate(fx_nodes):
                    args = fx.node.map_arg(node.args, env.__getitem__)
                    kwargs = fx.node.map_arg(node.kwargs, env.__getitem__)
                    fn = calls[i]
                    t0 = clock()
                    value = fn(*args, **kwargs)
                    _sync(device)
                    per_node[r, i] = clock() - t0
                    env[node] = value
                    del args, kwargs, value
                    for done in free_after[i]:
                        del env[done]
                del env
                if progress is not None and (r + 1) % max(1, (warmup + rounds) // 5) == 0:
                    progress(f"  round {r + 1}/{warmup + rounds}")
    finally:
        if gc_was_enabled:
            gc.enable()
    return whole[warmup:], per_node[warmup:]


def _attr(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def profile_module(
    module: nn.Module,
    input_shape: Sequence[int],
    device_class: str,
    *,
    name: str,
    source: str,
    threads: int = 1,
    warmup: int = 5,
    rounds: int = 20,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Profile ``module`` on this machine and return the profile document.

    Parameters
    ----------
    module
        A ``torch.fx``-traceable module with one tensor input (put in eval mode here).
    input_shape
        Input shape, batch included.
    device_class
        Name of the measured device class, e.g. ``x86_cpu_1t``.
    name
        Network name written in the profile.
    source
        Where the module came from (``package.module:factory``), written in the profile.
    threads
        ``torch.set_num_threads`` value (left set afterwards).
    warmup, rounds
        Unmeasured and measured rounds.
    device
        Where to run (``"cpu"``, or ``"cuda"`` with a synchronisation after every node).
    seed
        Seed of the random input.
    progress
        Called with progress lines (e.g. ``print``).

    Returns
    -------
    dict
        A profile document (schema ``edgesplit.network-profile`` version 1) that
        :func:`~edgesplit.cost_models.network.parse_profile` accepts.

    Warns
    -----
    ProfilerWarning
        When the whole network's (p90 - p10) / p50 exceeds :data:`SPREAD_WARNING`, or summed
        node medians are more than :data:`RATIO_WARNING` away from the whole network.
    """
    if threads < 1 or rounds < 1 or warmup < 0:
        raise ValueError(
            f"need threads >= 1, rounds >= 1, warmup >= 0; got {threads}, {rounds}, {warmup}"
        )
    say = progress or (lambda _msg: None)
    torch.set_num_threads(threads)
    dev = torch.device(device)
    module = module.to(dev).eval()
    shape = tuple(int(s) for s in input_shape)
    traced = trace_network(module, shape, device=dev)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator).to(dev)
    say(
        f"profiling {name} on {device_class}: {len(traced.nodes)} nodes, "
        f"{traced.macs / 1e9:.3g} GMAC, {threads} thread(s), {warmup} warm-up + {rounds} rounds"
    )
    load_1m = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    started = _dt.datetime.now(_dt.timezone.utc)
    whole, per_node = _measure(module, traced, x, warmup, rounds, progress)

    p10, p50, p90 = (np.array([_sig(v) for v in row]) for row in np.percentile(
        per_node, [10, 50, 90], axis=0))  # fmt: skip
    w10, w50, w90 = (_sig(float(v)) for v in np.percentile(whole, [10, 50, 90]))
    ratio = float(p50.sum() / w50)
    spread = (w90 - w10) / w50
    provenance: dict[str, Any] = {
        "tool": TOOL,
        "model": source,
        "hardware": hardware_description(dev),
        "software": software_versions(),
        "date": started.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "threads": int(torch.get_num_threads()),
        "warmup": int(warmup),
        "rounds": int(rounds),
        "sum_over_whole": _sig(ratio),
        "whole_spread": _sig(spread),
    }
    if load_1m is not None:
        provenance["load_average_1m"] = round(float(load_1m), 2)
    say(
        f"whole network p10/p50/p90: {w10 * 1e3:.3f} / {w50 * 1e3:.3f} / {w90 * 1e3:.3f} ms; "
        f"summed node medians {p50.sum() * 1e3:.3f} ms; sum/whole = {ratio:.3f}; "
        f"spread (p90-p10)/p50 = {spread:.3f}"
    )
    if spread > SPREAD_WARNING:
        warnings.warn(
            f"{name} on {device_class}: whole-network (p90 - p10) / p50 = {spread:.2f} > "
            f"{SPREAD_WARNING}: the machine is noisy; use more rounds or a quieter machine",
            ProfilerWarning,
            stacklevel=2,
        )
    if abs(ratio - 1.0) > RATIO_WARNING:
        warnings.warn(
            f"{name} on {device_class}: summed node medians are {ratio:.2f}x the whole network",
            ProfilerWarning,
            stacklevel=2,
        )
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": 1,  # node measurements only (schema_version_for)
        "name": name,
        "source": source,
        "input_shape": list(shape),
        "macs": traced.macs,
        "params": traced.params,
        "nodes": [{**asdict(n), "inputs": list(n.inputs)} for n in traced.nodes],
        "candidates": [{**asdict(c), "cut": list(c.cut)} for c in traced.candidates],
        "measurements": {
            device_class: {
                "median_s": p50.tolist(),
                "p10_s": p10.tolist(),
                "p90_s": p90.tolist(),
                "whole_p10_s": w10,
                "whole_p50_s": w50,
                "whole_p90_s": w90,
                "provenance": provenance,
            }
        },
    }
    parse_profile(doc, f"<profile of {name}>")  # never hand out a document that fails to load
    return doc


def merge_measurement(existing: dict[str, Any], new: dict[str, Any], file: str) -> dict[str, Any]:
    """Add ``new``'s measurement(s) to ``existing`` (same graph), replacing a class's old one.

    Raises
    ------
    ValueError
        If the two documents describe different graphs.
    """
    for key in ("input_shape", "nodes", "candidates"):
        if existing.get(key) != new.get(key):
            raise ValueError(
                f"{file}: {key}: differs from the network just profiled; cannot merge "
                "(write to a new file instead)"
            )
    merged = dict(existing)
    merged["measurements"] = {**existing.get("measurements", {}), **new["measurements"]}
    if "candidate_measurements" in new:
        merged["candidate_measurements"] = {
            **existing.get("candidate_measurements", {}),
            **new["candidate_measurements"],
        }
    merged["schema_version"] = schema_version_for(merged)
    parse_profile(merged, file)
    return merged


def write_profile(doc: dict[str, Any], path: str | Path) -> None:
    """Write a profile document as compact, diff-friendly JSON (one node per line)."""
    path = Path(path)
    lines = ["{"]
    items = list(doc.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if key in ("nodes", "candidates") and isinstance(value, list):
            inner = ",\n".join("    " + json.dumps(v, separators=(", ", ": ")) for v in value)
            lines.append(f'  "{key}": [\n{inner}\n  ]{comma}')
        else:
            lines.append(f'  "{key}": {json.dumps(value, separators=(", ", ": "))}{comma}')
    lines.append("}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: use e.g. 1,3,224,224") from None
    if not shape or any(s <= 0 for s in shape):
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: positive integers needed")
    return shape


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m edgesplit.cost_models.profile",
        description="Profile a network node by node on this machine and write a profile.",
    )
    p.add_argument("model", help="package.module:factory (or a shipped name, e.g. resnet18)")
    p.add_argument("--input-shape", type=_shape, default=(1, 3, 224, 224),
                   help="input shape, batch included (default 1,3,224,224)")  # fmt: skip
    p.add_argument("--device-class", required=True, help="measured class name, e.g. x86_cpu_1t")
    p.add_argument("--out", type=Path, default=None, help="output file (default NAME.json)")
    p.add_argument("--name", default=None, help="network name (default: the factory's name)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured rounds (default 5)")
    p.add_argument("--rounds", type=int, default=20, help="measured rounds (default 20)")
    p.add_argument("--device", default="cpu", help="torch device to run on (default cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input")
    p.add_argument(
        "--merge",
        action="store_true",
        help="add the measurement to an existing --out profile of the same graph",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        factory, default_name = load_factory(args.model)
    except ValueError as e:
        say(f"error: {e}")
        return 2
    name = args.name or default_name
    out = args.out or Path(f"{name}.json")
    source = args.model if ":" in args.model else f"edgesplit.cost_models.zoo:{args.model}"
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ProfilerWarning)
        doc = profile_module(
            factory(), args.input_shape, args.device_class, name=name, source=source,
            threads=args.threads, warmup=args.warmup, rounds=args.rounds, device=args.device,
            seed=args.seed, progress=say,
        )  # fmt: skip
    for w in caught:
        say(f"warning: {w.message}")
    if args.merge and out.exists():
        try:
            existing = json.loads(out.read_text(encoding="utf-8"))
            doc = merge_measurement(existing, doc, str(out))
        except ValueError as e:
            say(f"error: {e}")
            return 1
    write_profile(doc, out)
    m = doc["measurements"][args.device_class]
    ratio = m["provenance"]["sum_over_whole"]
    print(
        f"{out}: {name} on {args.device_class}: whole p50 {m['whole_p50_s'] * 1e3:.3f} ms, "
        f"sum/whole {ratio:.3f}, spread {m['provenance']['whole_spread']:.3f}, "
        f"{len(doc['candidates'])} candidates, {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
