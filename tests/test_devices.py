"""Device catalogue: schema validation, node latency, and calibration against published figures."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edgesplit.cost_models import calibrate as cal
from edgesplit.cost_models.devices import (
    NUMERIC_FIELDS,
    SCHEMA,
    CalibrationPoint,
    DeviceClass,
    DeviceError,
    default_catalogue_path,
    load_devices,
    node_latency,
    roofline_latency,
)

MODELLED = ("rpi4", "jetson_nano", "jetson_orin_nano", "edge_t4", "cloud_a100")
PER_CANDIDATE = ("x86_cpu_1t_ort", "x86_cpu_1t_torch")
TOLERANCE = 0.25
"""Largest |modelled / published - 1| allowed on a modelled class's 'fit' points."""
MEASURED_TOLERANCE = 0.35
"""Same for the roofline cross-check of a measured class against its own profile medians."""


# ----------------------------------------------------------------------------- helpers


def _shipped_doc() -> dict[str, Any]:
    return json.loads(default_catalogue_path().read_text(encoding="utf-8"))


def _write(tmp_path: Path, doc: Any, name: str = "devices.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def _node(flops: float, param: float, inp: float, out: float) -> SimpleNamespace:
    return SimpleNamespace(flops=flops, param_bytes=param, input_bytes=inp, output_bytes=out)


def _profile(name: str, nodes: list[SimpleNamespace], measurements: dict | None = None):
    return SimpleNamespace(name=name, nodes=nodes, measurements=measurements or {})


def _device(**kw: Any) -> DeviceClass:
    base = dict(
        name="toy",
        kind="modelled",
        tier="device",
        peak_flops=1e9,
        mem_bw=1e8,
        compute_eff=0.5,
        memory_eff=0.5,
        node_overhead_s=1e-4,
        p_active_w=5.0,
        p_idle_w=1.0,
        p_tx_w=1.0,
        sources={},
        precision="fp32",
    )
    base.update(kw)
    return DeviceClass(**base)


def _shipped_profiles() -> dict[str, Any]:
    from edgesplit.cost_models.network import available_networks, load_network

    names = available_networks()
    if not names:
        pytest.skip("no shipped network profiles yet")
    return {n: load_network(n) for n in names}


# ----------------------------------------------------------------------------- catalogue


def test_shipped_catalogue_loads_with_every_class_and_source() -> None:
    cat = load_devices()
    assert cat.names()[0] == "x86_cpu_1t"
    assert set(cat.names()) == {"x86_cpu_1t", *MODELLED, *PER_CANDIDATE}
    assert "rpi4" in cat and "nope" not in cat and len(cat) == 8
    assert cat["x86_cpu_1t"].kind == "measured"
    assert {(cat[n].kind, cat[n].base) for n in PER_CANDIDATE} == {("per_candidate", "x86_cpu_1t")}
    assert {cat[n].kind for n in MODELLED} == {"modelled"}
    assert [cat[n].tier for n in ("rpi4", "jetson_nano", "jetson_orin_nano")] == ["device"] * 3
    assert (cat["edge_t4"].tier, cat["cloud_a100"].tier) == ("edge", "cloud")
    for dev in cat.values():
        for key in NUMERIC_FIELDS:
            assert dev.sources[key].strip(), (dev.name, key)
        assert dev.p_idle_w <= dev.p_active_w
        if dev.tier == "device":
            assert dev.p_tx_w > 0.2  # at least the 23 dBm RF output of an LTE UE
        else:
            assert dev.p_tx_w == 0.0 and "modelled" in dev.sources["p_tx_w"]
    with pytest.raises(KeyError, match=r"no device class 'nope'.*available: x86_cpu_1t"):
        cat["nope"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cat["rpi4"].peak_flops = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        cat["rpi4"].sources["peak_flops"] = "x"  # type: ignore[index]


def test_published_hardware_figures_match_the_brief() -> None:
    cat = load_devices()
    assert cat["jetson_nano"].peak_flops == 472e9 and cat["jetson_nano"].mem_bw == 25.6e9
    assert cat["edge_t4"].peak_flops == 8.1e12 and cat["edge_t4"].mem_bw == 320e9
    assert cat["edge_t4"].p_active_w == 70
    assert 1.5e12 <= cat["cloud_a100"].mem_bw <= 2.1e12
    assert cat["rpi4"].p_idle_w == 2.5 and cat["rpi4"].p_active_w == 5.0
    assert cat["jetson_nano"].bytes_scale == 0.5 and cat["edge_t4"].bytes_scale == 1.0
    t4 = cat["edge_t4"].calibration[0]
    assert (t4.network, t4.batch, t4.value, t4.role) == ("resnet50", 1, 10.7, "fit")
    assert "DeepLearningExamples" in t4.source


def test_orin_nano_derived_figures_follow_from_the_cited_ones() -> None:
    """Orin Nano's 'fit' points are its TensorRT figures times the Nano's eager/TensorRT gap."""
    cat = load_devices()
    orin, nano = cat["jetson_orin_nano"], cat["jetson_nano"]

    def by(dev: DeviceClass, role: str, stack: str) -> dict[str, float]:
        return {
            p.network: p.value
            for p in dev.calibration
            if p.role == role and p.framework.startswith(stack)
        }

    orin_trt, orin_eager = by(orin, "check", "TensorRT"), by(orin, "fit", "PyTorch")
    nano_trt, nano_eager = by(nano, "check", "TensorRT"), by(nano, "fit", "PyTorch")
    assert set(orin_eager) == set(orin_trt) == {"resnet18", "resnet50"}
    ratios = []
    for net, value in orin_eager.items():
        assert value == pytest.approx(orin_trt[net] * nano_eager[net] / nano_trt[net], abs=1e-3)
        ratios.append(orin_trt[net] / nano_trt[net])
    speedup = math.prod(ratios) ** (1 / len(ratios))
    assert orin.node_overhead_s == pytest.approx(nano.node_overhead_s * speedup, rel=5e-3)
    assert orin.sources["node_overhead_s"].startswith("modelled")


def _mutate(path: str, value: Any = None, delete: bool = False):
    def f(doc: dict[str, Any]) -> dict[str, Any]:
        keys = path.split(".")
        target = doc
        for k in keys[:-1]:
            target = target[int(k)] if isinstance(target, list) else target[k]
        last: Any = int(keys[-1]) if isinstance(target, list) else keys[-1]
        if delete:
            del target[last]
        else:
            target[last] = value
        return doc

    return f


BROKEN = [
    ("schema", _mutate("schema", "edgesplit.other"), "schema", "edgesplit.other"),
    ("version", _mutate("schema_version", 2), "schema_version", "2"),
    ("version bool", _mutate("schema_version", True), "schema_version", "True"),
    ("top key", _mutate("colour", "blue"), "colour", "blue"),
    ("no classes", _mutate("classes", {}), "classes", "{}"),
    ("class name", _mutate("classes.Bad-Name", {}), "classes.Bad-Name", "Bad-Name"),
    ("class key", _mutate("classes.rpi4.clock_hz", 1.5e9), "classes.rpi4.clock_hz", "1500000000.0"),
    ("missing", _mutate("classes.rpi4.peak_flops", delete=True), "classes.rpi4", "peak_flops"),
    ("negative bw", _mutate("classes.edge_t4.mem_bw", -1), "classes.edge_t4.mem_bw", "-1"),
    ("eff > 1", _mutate("classes.rpi4.compute_eff", 1.5), "classes.rpi4.compute_eff", "1.5"),
    ("eff = 0", _mutate("classes.rpi4.memory_eff", 0), "classes.rpi4.memory_eff", "0"),
    ("string", _mutate("classes.rpi4.p_tx_w", "3.9"), "classes.rpi4.p_tx_w", "'3.9'"),
    ("bool", _mutate("classes.rpi4.p_idle_w", True), "classes.rpi4.p_idle_w", "True"),
    ("kind", _mutate("classes.rpi4.kind", "guessed"), "classes.rpi4.kind", "guessed"),
    ("tier", _mutate("classes.rpi4.tier", "fog"), "classes.rpi4.tier", "fog"),
    ("precision", _mutate("classes.rpi4.precision", "fp8"), "classes.rpi4.precision", "fp8"),
    ("idle > active", _mutate("classes.rpi4.p_idle_w", 9.0), "classes.rpi4.p_idle_w", "9.0"),
    (
        "no source",
        _mutate("classes.rpi4.sources.mem_bw", delete=True),
        "classes.rpi4.sources",
        "mem_bw",
    ),
    (
        "unknown source",
        _mutate("classes.rpi4.sources.colour", "x"),
        "classes.rpi4.sources.colour",
        "'x'",
    ),
    ("empty source", _mutate("classes.rpi4.sources.mem_bw", " "), "sources.mem_bw", "' '"),
    (
        "metric",
        _mutate("classes.rpi4.calibration.0.metric", "fps"),
        "classes.rpi4.calibration[0].metric",
        "fps",
    ),
    (
        "batch",
        _mutate("classes.rpi4.calibration.0.batch", 0),
        "classes.rpi4.calibration[0].batch",
        "0",
    ),
    (
        "role",
        _mutate("classes.rpi4.calibration.1.role", "maybe"),
        "classes.rpi4.calibration[1].role",
        "maybe",
    ),
    (
        "value",
        _mutate("classes.edge_t4.calibration.0.value", -10.7),
        "classes.edge_t4.calibration[0].value",
        "-10.7",
    ),
    ("no figures", _mutate("classes.rpi4.calibration", []), "classes.rpi4.calibration", "[]"),
]


def _rename(old: str, new: str):
    def f(doc: dict[str, Any]) -> dict[str, Any]:
        doc["classes"] = {new if k == old else k: v for k, v in doc["classes"].items()}
        return doc

    return f


# "$" matches before a trailing newline: a class name is checked whole (fullmatch)
BROKEN += [
    ("name newline", _rename("rpi4", "rpi4\n"), "classes.rpi4\n", "'rpi4\\n'"),
    ("per-candidate name newline", _rename("x86_cpu_1t_ort", "x86_cpu_1t_ort\n"),
     "classes.x86_cpu_1t_ort\n", "'x86_cpu_1t_ort\\n'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutation", "field", "value"),
    [b[1:] for b in BROKEN],
    ids=[b[0] for b in BROKEN],
)
def test_broken_catalogue_names_file_field_and_value(
    tmp_path: Path, mutation: Any, field: str, value: str
) -> None:
    path = _write(tmp_path, mutation(copy.deepcopy(_shipped_doc())))
    with pytest.raises(DeviceError) as info:
        load_devices(path)
    msg = str(info.value)
    assert str(path) in msg
    assert field in msg
    assert value in msg
    assert isinstance(info.value, ValueError)


def test_modelled_class_without_fit_points_is_rejected_when_sources_say_fitted(
    tmp_path: Path,
) -> None:
    doc = _shipped_doc()
    for p in doc["classes"]["edge_t4"]["calibration"]:
        p["role"] = "check"
    with pytest.raises(DeviceError, match=r"classes\.edge_t4\.sources\.compute_eff"):
        load_devices(_write(tmp_path, doc))


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ('{"schema": 1,', "(document)", "line 1"),
        ('{"schema": NaN}', "(document)", "NaN"),
        ('{"schema": "a", "schema": "b"}', "(document)", "'schema'"),
    ],
    ids=["truncated", "nan", "duplicate key"],
)
def test_unparsable_catalogue(tmp_path: Path, text: str, field: str, value: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(DeviceError) as info:
        load_devices(path)
    assert str(path) in str(info.value) and field in str(info.value)
    assert value in str(info.value)


def test_duplicate_class_is_rejected(tmp_path: Path) -> None:
    text = default_catalogue_path().read_text(encoding="utf-8")
    doc = json.loads(text)
    rpi = json.dumps(doc["classes"]["rpi4"])
    dup = text.replace('"classes": {', f'"classes": {{"rpi4": {rpi},', 1)
    with pytest.raises(DeviceError, match=r"duplicate key.*'rpi4'"):
        load_devices(_write(tmp_path, dup))


def test_device_error_pickles() -> None:
    import pickle

    err = DeviceError("f.json", "classes.x.mem_bw", -1, "out of range")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.field == "classes.x.mem_bw"


# ----------------------------------------------------------------------------- latency


def test_roofline_formula_on_a_fake_profile() -> None:
    # peak*ce = 5e8 FLOP/s, bw*me = 5e7 B/s, overhead 1e-4 s
    dev = _device()
    nodes = [
        _node(flops=1e8, param=0, inp=4e5, out=4e5),  # compute 0.2 s vs memory 0.016 s
        _node(flops=1e6, param=4e6, inp=2e6, out=2e6),  # compute 0.002 s vs memory 0.16 s
        _node(flops=0, param=0, inp=0, out=0),  # only the overhead
    ]
    prof = _profile("toy", nodes)
    got = node_latency(prof, dev)
    np.testing.assert_allclose(got, [0.2 + 1e-4, 0.16 + 1e-4, 1e-4], rtol=1e-12)
    assert got.dtype == np.float64 and got.shape == (3,)
    # float16 moves half the bytes: only the memory-bound node changes
    half = node_latency(prof, dataclasses.replace(dev, precision="fp16"))
    np.testing.assert_allclose(half, [0.2 + 1e-4, 0.08 + 1e-4, 1e-4], rtol=1e-12)
    int8 = node_latency(prof, dataclasses.replace(dev, precision="int8"))
    np.testing.assert_allclose(int8[1], 0.04 + 1e-4, rtol=1e-12)
    # efficiencies divide the peaks
    slow = node_latency(prof, dataclasses.replace(dev, compute_eff=0.25, memory_eff=0.25))
    np.testing.assert_allclose(slow, [0.4 + 1e-4, 0.32 + 1e-4, 1e-4], rtol=1e-12)


def test_measured_class_uses_the_profile_medians() -> None:
    medians = np.array([0.003, 0.001])
    medians.flags.writeable = False
    meas = SimpleNamespace(median_s=medians, whole_p50_s=0.004)
    prof = _profile("toy", [_node(1e9, 0, 0, 0), _node(1e9, 0, 0, 0)], {"x86_cpu_1t": meas})
    dev = load_devices()["x86_cpu_1t"]
    got = node_latency(prof, dev)
    np.testing.assert_array_equal(got, medians)
    got[0] = 1.0  # a copy: the profile is untouched
    assert medians[0] == 0.003
    # the roofline would give something else
    assert not np.allclose(roofline_latency(prof, dev), medians)


def test_modelled_class_prefers_a_measurement_when_the_profile_has_one() -> None:
    dev = _device(name="rpi4")
    meas = SimpleNamespace(median_s=np.array([0.5]), whole_p50_s=0.5)
    prof = _profile("toy", [_node(1e8, 0, 0, 0)], {"rpi4": meas})
    np.testing.assert_array_equal(node_latency(prof, dev), [0.5])


def test_measured_class_without_measurement_is_a_clear_error() -> None:
    prof = _profile("tinynet", [_node(1e6, 0, 0, 0)], {"rpi9": object()})
    dev = load_devices()["x86_cpu_1t"]
    with pytest.raises(DeviceError) as info:
        node_latency(prof, dev)
    msg = str(info.value)
    assert "tinynet" in msg and "x86_cpu_1t" in msg and "rpi9" in msg
    assert "measurements.x86_cpu_1t" in msg


def test_node_latency_on_shipped_profiles_splits_consistently() -> None:
    profiles = _shipped_profiles()
    cat = load_devices()
    for prof in profiles.values():
        for dev in cat.values():
            if dev.kind == "per_candidate":  # no node latencies (test_candidate_tables.py)
                continue
            t = node_latency(prof, dev)
            assert t.shape == (len(prof.nodes),) and np.all(t > 0), (prof.name, dev.name)
            head, tail = prof.split_latency(t)
            np.testing.assert_allclose(head + tail, t.sum(), rtol=1e-9)


# ----------------------------------------------------------------------------- calibration


def test_predict_ms_at_batch_one_is_the_summed_roofline() -> None:
    dev = _device()
    prof = _profile("toy", [_node(1e8, 1e6, 4e5, 4e5), _node(1e6, 4e6, 2e6, 2e6)])
    assert cal.predict_ms(prof, dev) == pytest.approx(1e3 * roofline_latency(prof, dev).sum())
    # at batch 8 the weights are read once: memory node = (8 * 4e6 + 4e6) / 5e7
    b8 = cal.predict_ms(prof, dev, 8)
    assert b8 == pytest.approx(1e3 * (max(8 * 0.2, 8 * 8e5 / 5e7 + 1e6 / 5e7) + 0.72 + 2e-4))


def test_throughput_point_converts_to_ms_per_batch() -> None:
    p = CalibrationPoint("resnet50", 256, "throughput_ips", 415.0, "x", "fp32", "fit", "s")
    assert p.published_ms_per_batch == pytest.approx(1e3 * 256 / 415.0)
    q = dataclasses.replace(p, batch=1, metric="latency_ms", value=10.7)
    assert q.published_ms_per_batch == 10.7


def test_fit_recovers_known_parameters() -> None:
    rng = np.random.default_rng(7)
    profiles = {}
    # node times comparable to the overhead, with different compute / memory / count mixes
    for k in range(4):
        n = 10 + 30 * k
        nodes = [
            _node(float(f), float(w), float(a), float(a))
            for f, w, a in zip(
                rng.uniform(0, 2e5 * (k + 1), n),
                rng.uniform(0, 2e4 * (4 - k), n),
                rng.uniform(0, 1e4, n),
                strict=True,
            )
        ]
        profiles[f"net{k}"] = _profile(f"net{k}", nodes)
    truth = _device(compute_eff=0.37, node_overhead_s=2.3e-4)
    points = [
        CalibrationPoint(name, 1, "latency_ms", cal.predict_ms(p, truth), "x", "fp32", "fit", "s")
        for name, p in profiles.items()
    ]
    start = dataclasses.replace(truth, compute_eff=0.9, node_overhead_s=0.0)
    fit = cal.fit_class(start, points, profiles)
    assert fit.fitted and fit.n_fit_points == 4
    assert fit.compute_eff == pytest.approx(0.37, rel=0.02)
    assert fit.node_overhead_s == pytest.approx(2.3e-4, rel=0.03)
    assert fit.rms_log_residual < 0.01


def test_every_modelled_fit_point_is_within_tolerance() -> None:
    profiles = _shipped_profiles()
    cat = load_devices()
    for name in MODELLED:
        for p in cat[name].calibration:
            assert p.network in profiles, (name, p.network)
    rows, _fits = cal.calibrate(cat, loader=profiles.__getitem__, networks=list(profiles))
    fit_rows = [r for r in rows if r.role == "fit"]
    assert {r.device_class for r in fit_rows} == set(MODELLED)
    for r in fit_rows:
        assert abs(r.residual) <= TOLERANCE, r
    for r in rows:
        if r.role == "measured":
            assert abs(r.residual) <= MEASURED_TOLERANCE, r
    assert {r.device_class for r in rows if r.role == "measured"} == {"x86_cpu_1t"}


def test_catalogue_holds_the_values_the_fit_finds() -> None:
    """Editing a figure, a peak or the profiles' FLOPs without refitting fails here."""
    profiles = _shipped_profiles()
    cat = load_devices()
    for name in MODELLED:
        dev = cat[name]
        fit = cal.fit_class(dev, dev.calibration, profiles)
        assert fit.compute_eff == pytest.approx(dev.compute_eff, rel=0.02), name
        assert fit.node_overhead_s == pytest.approx(dev.node_overhead_s, rel=0.03), name


def test_resnet50_whole_network_ordering() -> None:
    profiles = _shipped_profiles()
    if "resnet50" not in profiles:
        pytest.skip("no resnet50 profile")
    cat = load_devices()
    order = ("cloud_a100", "edge_t4", "jetson_orin_nano", "jetson_nano", "rpi4")
    totals = [float(node_latency(profiles["resnet50"], cat[n]).sum()) for n in order]
    assert totals == sorted(totals), dict(zip(order, totals, strict=True))
    assert all(math.isfinite(t) and t > 0 for t in totals)


def test_calibrate_command_prints_the_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    _shipped_profiles()
    assert cal.main([]) == 0
    out = capsys.readouterr().out
    assert "| class | network | role |" in out
    for name in ("x86_cpu_1t", *MODELLED):
        assert f"| {name} |" in out
    assert cal.main(["--json", "--class", "edge_t4"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fitted"] is False and doc["catalogue"].endswith("devices.json")
    assert {r["device_class"] for r in doc["rows"]} == {"edge_t4"}
    first = doc["rows"][0]
    assert first["published_ms"] == 10.7
    assert first["residual"] == pytest.approx(first["modelled_ms"] / 10.7 - 1)
    assert cal.main(["--fit", "--class", "rpi4"]) == 0
    assert "| rpi4 | 0.376 |" in capsys.readouterr().out
    assert SCHEMA == "edgesplit.device-catalogue"
