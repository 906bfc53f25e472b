"""Calibration of the device catalogue against published whole-network figures.

Every modelled device class lists published whole-network figures
(:class:`~edgesplit.cost_models.devices.CalibrationPoint`): batch-1 latencies, and for some
classes a large-batch throughput. This module predicts each figure from the catalogue and
the shipped network profiles and reports the residual; with ``--fit`` it also refits each
class's ``compute_eff`` and ``node_overhead_s`` (``memory_eff`` stays as documented) and
prints the values a maintainer would copy into the catalogue.

Prediction of one figure, for a batch of ``b`` images on class ``d``::

    t = sum_i max(b * F_i / (P * eta_c), (b * A_i + W_i) * s / (B * eta_m)) + n * o

with ``F_i`` the node's FLOPs, ``A_i`` its input plus output bytes, ``W_i`` its parameter
bytes (read once per batch), ``s`` the class's bytes per element over 4, ``P``, ``B`` the
peak FLOP rate and bandwidth, ``n`` the number of nodes and ``o`` the per-node overhead. At
``b = 1`` this is the sum of :func:`~edgesplit.cost_models.devices.roofline_latency` over the
nodes. A throughput figure (images/s at batch ``b``) is compared as ``1000 b / ips`` ms per
batch.

The fit minimises the sum of squared log residuals of the class's ``"fit"`` points over
``eta_c`` in (0, 1] and ``o >= 0`` (a coarse log grid, then a finer one). A parameter whose
``sources`` entry starts with ``"modelled"`` is held at its catalogue value; a class without
fit points keeps both. Measured classes
are cross-checked too: their "published" figures are the whole-network medians the shipped
profiles recorded on this machine, which shows how well a roofline would stand in for them.

Run ``python -m edgesplit.cost_models.calibrate`` (table), ``--json`` (machine-readable) or
``--fit`` (refit and show the fitted values).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgesplit.cost_models.devices import (
    CalibrationPoint,
    DeviceCatalogue,
    DeviceClass,
    load_devices,
)

__all__ = [
    "CalibrationRow",
    "ClassFit",
    "calibrate",
    "fit_class",
    "format_table",
    "main",
    "measured_points",
    "predict_ms",
]

ProfileLoader = Callable[[str], Any]
_ALL_MODELLED = {"compute_eff": "modelled", "node_overhead_s": "modelled"}


@dataclass(frozen=True)
class CalibrationRow:
    """One published (or measured) figure beside its prediction.

    Attributes
    ----------
    device_class, network
        What was predicted.
    role
        ``"fit"``, ``"check"`` or ``"measured"`` (a measured class's own profile median).
    metric, batch
        The figure's metric (``latency_ms`` or ``throughput_ips``) and batch size.
    framework, precision
        The published run's stack.
    published_ms, modelled_ms
        Milliseconds per batch, published and predicted.
    residual
        ``modelled / published - 1`` (``0.10`` is 10 % slow).
    source
        Citation of the figure.
    """

    device_class: str
    network: str
    role: str
    metric: str
    batch: int
    framework: str
    precision: str
    published_ms: float
    modelled_ms: float
    residual: float
    source: str


@dataclass(frozen=True)
class ClassFit:
    """Calibrated parameters of one class.

    Attributes
    ----------
    device_class
        Class name.
    compute_eff, node_overhead_s
        Values used for the predictions (fitted, or the catalogue's).
    fitted
        Whether they come from a fit (``False``: catalogue values kept).
    rms_log_residual
        Root-mean-square log residual over the fit points (``nan`` without any).
    n_fit_points
        How many points entered the fit.
    """

    device_class: str
    compute_eff: float
    node_overhead_s: float
    fitted: bool
    rms_log_residual: float
    n_fit_points: int


@dataclass(frozen=True)
class _Terms:
    """The parts of a prediction that do not depend on (compute_eff, overhead)."""

    compute_s: NDArray[np.float64]  # per node, at compute_eff = 1, whole batch
    memory_s: NDArray[np.float64]  # per node, whole batch
    n_nodes: int


def _terms(profile: Any, device: DeviceClass, batch: int) -> _Terms:
    nodes = profile.nodes
    n = len(nodes)
    flops = np.fromiter((nd.flops for nd in nodes), np.float64, n)
    act = np.fromiter((nd.input_bytes + nd.output_bytes for nd in nodes), np.float64, n)
    par = np.fromiter((nd.param_bytes for nd in nodes), np.float64, n)
    compute = batch * flops / device.peak_flops
    memory = (batch * act + par) * device.bytes_scale / (device.mem_bw * device.memory_eff)
    return _Terms(compute, memory, n)


def predict_ms(
    profile: Any,
    device: DeviceClass,
    batch: int = 1,
    *,
    compute_eff: float | None = None,
    node_overhead_s: float | None = None,
) -> float:
    """Roofline prediction of one batch through the whole network, milliseconds.

    Parameters
    ----------
    profile
        Network profile (nodes with ``flops``, ``param_bytes``, ``input_bytes``,
        ``output_bytes``).
    device
        Device class (its roofline parameters; its kind is ignored).
    batch
        Images per batch; parameters are read once per batch.
    compute_eff, node_overhead_s
        Override the class's values (as the fit does).

    Returns
    -------
    float
        Milliseconds per batch.
    """
    t = _terms(profile, device, batch)
    ce = device.compute_eff if compute_eff is None else compute_eff
    o = device.node_overhead_s if node_overhead_s is None else node_overhead_s
    return 1e3 * float(np.maximum(t.compute_s / ce, t.memory_s).sum() + t.n_nodes * o)


def _grid_loss(
    terms: Sequence[_Terms], published_s: NDArray[np.float64], ce: NDArray[np.float64],
    oh: NDArray[np.float64],
) -> NDArray[np.float64]:  # fmt: skip
    """Sum of squared log residuals on the (ce, overhead) grid, shape (len(ce), len(oh))."""
    loss = np.zeros((ce.size, oh.size))
    for t, pub in zip(terms, published_s, strict=True):
        base = np.maximum(t.compute_s[:, None] / ce[None, :], t.memory_s[:, None]).sum(axis=0)
        model = base[:, None] + t.n_nodes * oh[None, :]
        loss += (np.log(model) - math.log(pub)) ** 2
    return loss


def _round_sig(x: float, digits: int = 3) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits - 1}e}")


def _is_modelled(device: DeviceClass, key: str) -> bool:
    return device.sources.get(key, "").lstrip().lower().startswith("modelled")


def fit_class(
    device: DeviceClass, points: Sequence[CalibrationPoint], profiles: Mapping[str, Any]
) -> ClassFit:
    """Fit ``compute_eff`` and ``node_overhead_s`` of one class to its fit points.

    A parameter whose source starts with ``"modelled"`` is held at its catalogue value
    (the class documents how it was set); the others are fitted.

    Parameters
    ----------
    device
        The class (peak, bandwidth, memory efficiency and precision are kept).
    points
        Its calibration points; only ``role == "fit"`` ones are used.
    profiles
        Network name -> profile, covering every fit point's network.

    Returns
    -------
    ClassFit
        Fitted values rounded to three significant digits, or the catalogue's values when
        there is no fit point.
    """
    fit = [p for p in points if p.role == "fit"]
    fit_ce = not _is_modelled(device, "compute_eff")
    fit_oh = not _is_modelled(device, "node_overhead_s")
    if not fit or not (fit_ce or fit_oh):
        rms = math.nan
        if fit:
            logs = [
                math.log(
                    predict_ms(profiles[p.network], device, p.batch) / p.published_ms_per_batch
                )
                for p in fit
            ]
            rms = math.sqrt(sum(x * x for x in logs) / len(logs))
        return ClassFit(
            device.name, device.compute_eff, device.node_overhead_s, False, rms, len(fit)
        )
    terms = [_terms(profiles[p.network], device, p.batch) for p in fit]
    pub = np.array([p.published_ms_per_batch / 1e3 for p in fit])
    fixed_ce = np.array([device.compute_eff])
    fixed_oh = np.array([device.node_overhead_s])
    ce = np.geomspace(1e-3, 1.0, 241) if fit_ce else fixed_ce
    oh = np.concatenate(([0.0], np.geomspace(1e-7, 1e-1, 241))) if fit_oh else fixed_oh
    loss = _grid_loss(terms, pub, ce, oh)
    i, j = np.unravel_index(int(np.argmin(loss)), loss.shape)
    # refine: one coarse step either side, 4x finer (log steps; overhead 0 stays reachable)
    if fit_ce:
        ce = np.geomspace(ce[max(i - 1, 0)], ce[min(i + 1, ce.size - 1)], 81)
    if fit_oh:
        lo, hi = oh[max(j - 1, 0)], oh[min(j + 1, oh.size - 1)]
        oh = np.concatenate(([0.0], np.geomspace(max(lo, 1e-8), hi, 81)))
    loss = _grid_loss(terms, pub, ce, oh)
    i, j = np.unravel_index(int(np.argmin(loss)), loss.shape)
    best_ce = _round_sig(float(ce[i])) if fit_ce else device.compute_eff
    best_oh = _round_sig(float(oh[j])) if fit_oh else device.node_overhead_s
    final = _grid_loss(terms, pub, np.array([best_ce]), np.array([best_oh]))[0, 0]
    return ClassFit(device.name, best_ce, best_oh, True, math.sqrt(final / len(fit)), len(fit))


def measured_points(device: DeviceClass, profiles: Mapping[str, Any]) -> list[CalibrationPoint]:
    """The whole-network medians that the profiles recorded for a measured class.

    Parameters
    ----------
    device
        A measured class.
    profiles
        Network name -> profile.

    Returns
    -------
    list of CalibrationPoint
        One batch-1 latency point per profile that has a measurement for the class, with
        role ``"fit"`` (a measured class's roofline parameters are fitted to them).
    """
    out = []
    for name, prof in profiles.items():
        m = prof.measurements.get(device.name)
        if m is None:
            continue
        prov = m.provenance if isinstance(m.provenance, Mapping) else {}
        software = prov.get("software", {})
        torch = software.get("torch", "?") if isinstance(software, Mapping) else "?"
        framework = f"PyTorch {torch} eager, {prov.get('threads', '?')} thread(s)"
        out.append(
            CalibrationPoint(
                network=name,
                batch=1,
                metric="latency_ms",
                value=1e3 * float(m.whole_p50_s),
                framework=framework,
                precision="fp32",
                role="fit",
                source=f"measured here: profile {name}, whole_p50_s",
            )
        )
    return out


def _default_loader(name: str) -> Any:
    from edgesplit.cost_models.network import load_network

    return load_network(name)


def calibrate(
    catalogue: DeviceCatalogue | None = None,
    *,
    loader: ProfileLoader | None = None,
    networks: Sequence[str] | None = None,
    fit: bool = False,
    classes: Sequence[str] | None = None,
) -> tuple[list[CalibrationRow], list[ClassFit]]:
    """Predict every calibration figure of every class and report the residuals.

    Parameters
    ----------
    catalogue
        The device catalogue (the shipped one when ``None``).
    loader
        Network name -> profile (``load_network`` when ``None``).
    networks
        Networks whose profiles hold a measured class's own medians (default: every shipped
        profile when ``loader`` is ``None``, else none).
    fit
        Refit ``compute_eff`` and ``node_overhead_s`` of each class before predicting;
        otherwise use the catalogue's values.
    classes
        Restrict to these class names.

    Returns
    -------
    rows, fits
        One row per figure (fit points first, then checks, per class) and one
        :class:`ClassFit` per class.
    """
    catalogue = load_devices() if catalogue is None else catalogue
    if networks is None:
        if loader is None:
            from edgesplit.cost_models.network import available_networks

            networks = available_networks()
        else:
            networks = []
    loader = _default_loader if loader is None else loader
    names = catalogue.names() if classes is None else list(classes)
    cache: dict[str, Any] = {}

    def get(network: str) -> Any:
        if network not in cache:
            cache[network] = loader(network)
        return cache[network]

    rows: list[CalibrationRow] = []
    fits: list[ClassFit] = []
    for name in names:
        dev = catalogue[name]
        if dev.kind == "measured":
            points = measured_points(dev, {n: get(n) for n in networks})
        else:
            points = list(dev.calibration)
        profiles = {p.network: get(p.network) for p in points}
        if fit:
            cf = fit_class(dev, points, profiles)
        else:  # report the catalogue's values
            cf = fit_class(replace(dev, sources=_ALL_MODELLED), points, profiles)
        fits.append(cf)
        ordered = sorted(points, key=lambda p: p.role != "fit")
        for p in ordered:
            model = predict_ms(
                profiles[p.network], dev, p.batch,
                compute_eff=cf.compute_eff, node_overhead_s=cf.node_overhead_s,
            )  # fmt: skip
            pub = p.published_ms_per_batch
            rows.append(
                CalibrationRow(
                    device_class=name,
                    network=p.network,
                    role="measured" if dev.kind == "measured" else p.role,
                    metric=p.metric,
                    batch=p.batch,
                    framework=p.framework,
                    precision=p.precision,
                    published_ms=pub,
                    modelled_ms=model,
                    residual=model / pub - 1.0,
                    source=p.source,
                )
            )
    return rows, fits


def format_table(rows: Sequence[CalibrationRow], fits: Sequence[ClassFit]) -> str:
    """Plain-text (Markdown) tables of the residuals and of the calibrated values."""
    head = (
        "| class | network | role | batch | stack | published ms | modelled ms | residual |\n"
        "|---|---|---|--:|---|--:|--:|--:|"
    )
    lines = [head]
    for r in rows:
        stack = f"{r.framework}, {r.precision}"
        what = "" if r.metric == "latency_ms" else " (thr.)"
        lines.append(
            f"| {r.device_class} | {r.network}{what} | {r.role} | {r.batch} | {stack} | "
            f"{r.published_ms:.2f} | {r.modelled_ms:.2f} | {100 * r.residual:+.1f} % |"
        )
    lines += [
        "",
        "| class | compute_eff | node_overhead_s | values | fit points | rms log residual |",
        "|---|--:|--:|---|--:|--:|",
    ]
    for f in fits:
        rms = "-" if math.isnan(f.rms_log_residual) else f"{f.rms_log_residual:.3f}"
        lines.append(
            f"| {f.device_class} | {f.compute_eff:.3g} | {f.node_overhead_s:.3g} | "
            f"{'refit now' if f.fitted else 'catalogue'} | {f.n_fit_points} | {rms} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the calibration residuals (see the module docstring)."""
    ap = argparse.ArgumentParser(
        prog="python -m edgesplit.cost_models.calibrate",
        description="Residuals of the device catalogue against its published calibration "
        "figures, predicted from the shipped network profiles.",
    )
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ap.add_argument(
        "--fit", action="store_true",
        help="refit compute_eff and node_overhead_s of every class and show the fitted values",
    )  # fmt: skip
    ap.add_argument("--catalogue", type=Path, default=None, help="a catalogue file to check")
    ap.add_argument("--class", dest="classes", action="append", help="only this class")
    args = ap.parse_args(argv)
    catalogue = load_devices(args.catalogue)
    rows, fits = calibrate(catalogue, fit=args.fit, classes=args.classes)
    if args.json:
        doc = {
            "catalogue": str(catalogue.path),
            "fitted": bool(args.fit),
            "rows": [asdict(r) for r in rows],
            "classes": [
                {**asdict(f), "rms_log_residual": None if math.isnan(f.rms_log_residual)
                 else f.rms_log_residual}
                for f in fits
            ],
        }  # fmt: skip
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_table(rows, fits))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
