"""Partitions as deployable files: the head and tail of every kept split candidate (torch).

``python -m edgesplit.runtime partition resnet18 --out parts/resnet18`` writes::

    parts/resnet18/
      parts.json          the manifest (see :mod:`edgesplit.runtime.parts`)
      weights.npz         the network's state dict as plain arrays (no pickle), for the
                          torch engine, which rebuilds head and tail from the factory
      head_005.onnx       head of candidate 5 (profile index): network input -> cut values
      tail_005.onnx       tail of candidate 5: cut values -> the network's result
      ...

Candidate 0 has no head (the device sends its input); the last candidate has no tail (it
runs whole on the device). Exporting needs torch (and onnx); running the ONNX files needs
only onnxruntime and numpy.

Which candidates: the environment keeps a compressed subset per network (the candidates
not dominated in head latency and bytes on the scenario's device classes, at most
``costs.max_candidates``; :func:`edgesplit.cost_models.candidates.compress_candidates`, as
``edgesplit.sim.tables`` applies it). :func:`kept_candidates` repeats that rule for given
device classes, wire precision and cap; by default the partition holds the union of what
each shipped scenario keeps and what the measured class ``x86_cpu_1t`` keeps alone, so that
any decision of a policy trained on a shipped scenario names a candidate the partition has.
"""

from __future__ import annotations

import datetime as _dt
import json
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesplit.cost_models.candidates import keep_candidates
from edgesplit.cost_models.devices import candidate_rule_class, load_devices
from edgesplit.cost_models.network import NetworkProfile
from edgesplit.scheduler.policy import file_sha256

from .parts import FORMAT, FORMAT_VERSION, INPUT_DTYPE, MANIFEST, WIRE_BYTES

__all__ = ["kept_candidates", "partition", "scenario_candidates"]

OPSET = 17


def kept_candidates(
    profile: NetworkProfile,
    device_classes: Sequence[str],
    wire_dtype: str = "float32",
    cap: int = 8,
    input_compression: float = 1.0,
) -> list[int]:
    """Profile indices of the candidates the environment keeps for these device classes.

    The simulator's rule (:func:`edgesplit.cost_models.candidates.keep_candidates`, which
    ``edgesplit.sim.tables.build`` calls too) for these classes at ``wire_dtype``.

    >>> from edgesplit.cost_models.network import load_network
    >>> kept_candidates(load_network("resnet18"), ["x86_cpu_1t"])[0]
    0
    """
    if wire_dtype not in WIRE_BYTES:
        raise ValueError(f"wire_dtype must be one of {sorted(WIRE_BYTES)}, got {wire_dtype!r}")
    if not device_classes:
        raise ValueError("device_classes must name at least one class")
    catalogue = load_devices()
    for c in device_classes:
        if c not in catalogue:
            raise ValueError(f"device class {c!r} is not in the catalogue ({catalogue.names()})")
    kept = keep_candidates(
        profile,
        [candidate_rule_class(catalogue, c) for c in set(device_classes)],  # as sim.tables
        WIRE_BYTES[wire_dtype],
        input_compression,
        cap,
    )
    return [int(i) for i in kept.indices]


def scenario_candidates(profile: NetworkProfile, scenarios: Iterable[str]) -> set[int]:
    """Union of the candidates that each scenario keeps for ``profile``'s network.

    A scenario keeps candidates for a network only if one of its applications uses it
    (matched by profile name); the device classes, wire precision and cap are the
    scenario's. Reads scenarios through :mod:`edgesplit.sim.scenario` (offline tool only).
    """
    from edgesplit.sim.scenario import load_scenario

    out: set[int] = set()
    for spec in scenarios:
        sc = load_scenario(spec)
        if not any(Path(str(a.network)).stem == profile.name for a in sc.applications):
            continue
        classes = sorted({d.device_class for d in sc.devices})
        out.update(
            kept_candidates(
                profile,
                classes,
                sc.costs.wire_dtype,
                sc.costs.max_candidates,
                sc.costs.input_compression,
            )
        )
    return out


def partition(
    model: str,
    out: str | Path,
    *,
    profile: NetworkProfile | None = None,
    candidates: Sequence[int] | None = None,
    input_shape: Sequence[int] | None = None,
    onnx: bool = True,
    name: str | None = None,
) -> dict[str, Any]:
    """Export head and tail of every chosen candidate of ``model``; return the manifest.

    Parameters
    ----------
    model
        A shipped network name (``resnet18``) or ``package.module:factory``.
    out
        Directory to write (created; files of the same names are replaced).
    profile
        The network's profile (its node order must be the traced one); default: the shipped
        profile of that name, or none for a user's factory (then every candidate is
        exported unless ``candidates`` says otherwise).
    candidates
        Profile candidate indices to export; default: the union described in the module
        docstring (every candidate when there is no profile).
    input_shape
        The input shape, batch included; default: the profile's.
    onnx
        Write the ONNX files (``False``: manifest and weights only, enough for the torch
        engine).
    name
        The network's name in the manifest; default: the profile's, else the factory's.

    Returns
    -------
    dict
        The manifest written to ``out/parts.json``.
    """
    import torch

    from edgesplit.cost_models.network import available_networks, load_network
    from edgesplit.cost_models.profile import load_factory

    from .split import Splitter, state_arrays

    factory, fname = load_factory(model)
    source = f"edgesplit.cost_models.zoo:{model}" if ":" not in model else model
    if profile is None and ":" not in model and model in available_networks():
        profile = load_network(model)
    if input_shape is None:
        if profile is None:
            raise ValueError("input_shape is needed for a network without a profile")
        input_shape = profile.input_shape
    shape = tuple(int(s) for s in input_shape)
    module = factory().eval()
    splitter = Splitter(module, shape)
    traced = splitter.traced
    if profile is not None and [n.name for n in profile.nodes] != [n.name for n in traced.nodes]:
        raise ValueError(
            f"profile {profile.name!r} does not match the traced graph of {model!r} "
            "(different nodes): profile this network first"
        )
    n_cand = len(traced.candidates)
    if candidates is None:
        if profile is None:
            chosen = list(range(n_cand))
        else:
            from edgesplit.sim.scenario import available_scenarios

            keep = set(kept_candidates(profile, ["x86_cpu_1t"]))
            keep |= scenario_candidates(profile, available_scenarios())
            chosen = sorted(keep)
    else:
        chosen = sorted({int(k) for k in candidates})
        bad = [k for k in chosen if not 0 <= k < n_cand]
        if bad:
            raise ValueError(f"candidates: index {bad[0]} out of range [0, {n_cand - 1}]")

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / "weights.npz"
    np.savez(weights, **state_arrays(module))

    x_float = torch.rand(shape)
    with torch.no_grad():  # not inference_mode: the exporter re-runs on these tensors
        whole = module(x_float)
    result_names = (
        [f"output{i}" for i in range(len(whole))] if isinstance(whole, tuple) else ["output"]
    )
    entries = []
    for k in chosen:
        cand = traced.candidates[k]
        head, tail = splitter.split(k)
        with torch.no_grad():
            cut_values = head(x_float)
        cut = [
            {"name": nm, "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
            for nm, v in zip(cand.cut, cut_values, strict=True)
        ]
        entry: dict[str, Any] = {
            "index": k,
            "name": cand.name,
            "kind": cand.kind,
            "n_head": cand.n_head,
            "cut": cut,
            "head": None,
            "tail": None,
        }
        if onnx:
            if cand.kind != "input":
                entry["head"] = _export(head, (x_float,), [INPUT_NAME], list(cand.cut),
                                        out_dir / f"head_{k:03d}.onnx")  # fmt: skip
            if cand.kind != "output":
                entry["tail"] = _export(tail, tuple(cut_values), list(cand.cut), result_names,
                                        out_dir / f"tail_{k:03d}.onnx")  # fmt: skip
        entries.append(entry)

    outputs = whole if isinstance(whole, tuple) else (whole,)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "network": name or (profile.name if profile is not None else fname),
        "source": source,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "input": {"name": INPUT_NAME, "shape": list(shape), "dtype": INPUT_DTYPE},
        "output": [
            {"name": nm, "shape": list(v.shape), "dtype": "float32"}
            for nm, v in zip(result_names, outputs, strict=True)
        ],
        "weights": {"file": weights.name, "sha256": file_sha256(weights)},
        "n_candidates": n_cand,
        "candidates": entries,
    }
    tmp = out_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out_dir / MANIFEST)
    return manifest


INPUT_NAME = "input"


def _export(
    module: Any, args: tuple[Any, ...], inputs: list[str], outputs: list[str], path: Path
) -> dict[str, str]:
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            opset_version=OPSET,
            dynamo=False,
        )
    return {"file": path.name, "sha256": file_sha256(path)}
