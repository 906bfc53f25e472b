"""Per-candidate profiles (heads and tails timed whole on a runtime engine): they round-trip
through the schema, bad ones name the field, the cost model reads them directly, and
``validate`` predicts each engine from the class measured with it. On the runtime tests'
tiny residual network (``tests/runtime_nets.py``)."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runtime_nets import INPUT_SHAPE, tiny_resnet

from edgesplit.cost_models.devices import DeviceError, load_devices, node_latency
from edgesplit.cost_models.network import ProfileError, load_network, parse_profile
from edgesplit.cost_models.profile import profile_module, write_profile
from edgesplit.cost_models.profile_candidates import profile_candidates
from edgesplit.runtime.partition import kept_candidates
from edgesplit.runtime.validate import engine_class, predict, validate

TESTS = Path(__file__).resolve().parent
MODEL = "runtime_nets:tiny_resnet"


@pytest.fixture(scope="module")
def pythonpath():
    """The tests folder on the path, here and in child processes (the torch server)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(TESTS))
        mp.setenv("PYTHONPATH", str(TESTS))
        yield


@pytest.fixture(scope="module")
def node_profile(tmp_path_factory, pythonpath) -> Path:
    """A per-node profile of the tiny network (class x86_cpu_1t, schema version 1)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny network's timings are noisy
        doc = profile_module(tiny_resnet(), INPUT_SHAPE, "x86_cpu_1t", name="tiny",
                             source=MODEL, warmup=1, rounds=3)  # fmt: skip
    path = tmp_path_factory.mktemp("prof") / "tiny.json"
    write_profile(doc, path)
    return path


@pytest.fixture(scope="module")
def both(node_profile, tmp_path_factory) -> Path:
    """The node profile plus per-candidate classes of both engines, written and reloaded."""
    doc = profile_candidates(MODEL, "onnxruntime", profile=node_profile, warmup=1, rounds=3)
    path = tmp_path_factory.mktemp("both") / "tiny.json"
    write_profile(doc, path)
    doc = profile_candidates(MODEL, "torch", profile=path, warmup=1, rounds=3)
    write_profile(doc, path)
    return path


def test_per_candidate_profile_round_trips(node_profile, both):
    doc = json.loads(both.read_text())
    assert doc["schema_version"] == 2
    assert json.loads(node_profile.read_text())["schema_version"] == 1  # node-only stays 1
    p = load_network(both)
    assert set(p.measurements) == {"x86_cpu_1t"}  # the node class is kept
    assert set(p.candidate_measurements) == {"x86_cpu_1t_ort", "x86_cpu_1t_torch"}
    kept = kept_candidates(p, ["x86_cpu_1t"])
    for cls, engine in (("x86_cpu_1t_ort", "onnxruntime"), ("x86_cpu_1t_torch", "torch")):
        m = p.candidate_measurements[cls]
        raw = doc["candidate_measurements"][cls]
        assert m.engine == engine and list(m.indices) == kept == raw["candidates"]
        assert m.head_median_s.tolist() == raw["head_median_s"]
        assert m.head_median_s[0] == 0 and m.tail_median_s[-1] == 0  # no head, no tail
        assert np.all(m.head_median_s[1:] > 0) and np.all(m.tail_median_s[:-1] > 0)
        assert np.all(m.head_p10_s <= m.head_median_s) and np.all(m.tail_median_s <= m.tail_p90_s)
        assert m.provenance["rounds"] == 3 and m.provenance["hardware"]["cpu"]
        assert m.head_cpu_median_s is not None and m.tail_cpu_median_s is not None
        assert m.head_cpu_median_s[0] == 0 and np.all(m.head_cpu_median_s[1:] > 0)
        opts = m.provenance["engine_options"]
        assert (opts["intra_op_num_threads"] if engine == "onnxruntime" else opts["threads"]) == 1
    if len(kept) > 2:  # the tiny network keeps an intermediate candidate too
        assert 0 < kept[1] < len(p.candidates) - 1
    # written again, it is the same document
    again = both.with_name("again.json")
    write_profile(doc, again)
    assert json.loads(again.read_text()) == doc


def test_the_cost_model_reads_per_candidate_times(both):
    p = load_network(both)
    m = p.candidate_measurements["x86_cpu_1t_ort"]
    lat = p.candidate_latency("x86_cpu_1t_ort")
    assert lat.per_candidate and lat.engine == "onnxruntime"
    for j, k in enumerate(m.indices):
        assert lat.at(k) == (m.head_median_s[j], m.tail_median_s[j])
        d = predict(p, k, rate_mbps=20.0, rtt_s=0.01, device_class="x86_cpu_1t_ort")
        assert d["head_s"] == m.head_median_s[j]
        local = k == len(p.candidates) - 1
        assert d["tail_s"] == (0.0 if local else m.tail_median_s[j])
    missing = next(i for i in range(len(p.candidates)) if i not in m.indices)
    with pytest.raises(KeyError, match=f"candidate {missing} is not measured"):
        lat.at(missing)
    # the per-node class still sums its nodes
    node = p.candidate_latency("x86_cpu_1t")
    assert not node.per_candidate and len(node.indices) == len(p.candidates)
    assert np.allclose(node.head_s, p.split_latency(p.measurements["x86_cpu_1t"].median_s)[0])
    # the simulator's per-node path fails clearly for a per-candidate class
    cls = dataclasses.replace(load_devices()["x86_cpu_1t"], name="x86_cpu_1t_ort")
    with pytest.raises(DeviceError) as err:
        node_latency(p, cls)
    assert err.value.field == "candidate_measurements.x86_cpu_1t_ort"
    assert "per-node latencies do not exist" in str(err.value)
    with pytest.raises(ProfileError, match="no measurement of class 'gpu'"):
        p.candidate_latency("gpu")


def test_validate_picks_the_class_of_its_engine(both):
    p = load_network(both)
    assert engine_class(p, "onnxruntime") == "x86_cpu_1t_ort"
    assert engine_class(p, "torch") == "x86_cpu_1t"
    assert engine_class(p, "torch", "x86_cpu_1t_torch") == "x86_cpu_1t_torch"
    for engine, cls in (("onnxruntime", "x86_cpu_1t"), ("onnxruntime", "x86_cpu_1t_torch"),
                        ("torch", "x86_cpu_1t_ort")):  # fmt: skip
        with pytest.raises(ValueError, match=f"uses {engine}"):
            engine_class(p, engine, cls)
    with pytest.raises(ValueError, match="profile_candidates tiny --engine onnxruntime"):
        engine_class(_node_only(p), "onnxruntime")
    for engine in ("onnxruntime", "torch"):  # a class the profile lacks is named as such
        with pytest.raises(ValueError, match="no measurement of 'x86_cpu_1t_typo'"):
            engine_class(p, engine, "x86_cpu_1t_typo")
    with pytest.raises(ValueError, match=r"engine: expected one of .*'tensorrt'"):
        engine_class(p, "tensorrt")
    doc = json.loads(Path(p.path).read_text())  # no x86_cpu_1t, the torch default
    doc["measurements"] = {"arm_cpu_1t": doc["measurements"]["x86_cpu_1t"]}
    with pytest.raises(ValueError, match="no measurement of 'x86_cpu_1t'"):
        engine_class(parse_profile(doc, "other-class"), "torch")


def _node_only(p: Any) -> Any:
    doc = json.loads(Path(p.path).read_text())
    del doc["candidate_measurements"]
    doc["schema_version"] = 1
    return parse_profile(doc, "node-only")


@pytest.mark.parametrize(("engine", "cls"), [("onnxruntime", None),
                                             ("torch", "x86_cpu_1t_torch")])  # fmt: skip
def test_validate_predicts_from_the_matching_class(both, engine, cls):
    rep = validate(MODEL, rate_mbps=50.0, rtt_ms=5.0, reps=1, warmup=1, engine=engine,
                   device_class=cls, profile=str(both))  # fmt: skip
    p = load_network(both)
    want = cls or "x86_cpu_1t_ort"
    m = p.candidate_measurements[want]
    assert rep["device_class"] == want and rep["class_measured"] == "per candidate"
    assert rep["engine"] == engine
    assert [r["index"] for r in rep["candidates"]] == list(m.indices)
    for j, r in enumerate(rep["candidates"]):
        assert r["predicted"]["head_s"] == pytest.approx(m.head_median_s[j])
        assert r["measured"]["head_s"] > 0 or r["kind"] == "input"
    assert rep["profile_date"] == m.provenance["date"]
    assert rep["speed_factor"] > 0 and np.isfinite(rep["median_abs_rel_error"])
    # CPU time against the profile's CPU time, candidate by candidate
    assert rep["median_abs_rel_error_cpu_vs_cpu"]["end_to_end_s"] is not None
    for j, r in enumerate(rep["candidates"]):
        assert r["predicted_cpu"]["head_s"] == pytest.approx(m.head_cpu_median_s[j])


def test_cli_writes_a_loadable_profile(node_profile, tmp_path, pythonpath):
    out = tmp_path / "cli.json"
    r = subprocess.run(
        [sys.executable, "-m", "edgesplit.cost_models.profile_candidates", MODEL,
         "--profile", str(node_profile), "--engine", "onnxruntime", "--out", str(out),
         "--warmup", "0", "--rounds", "2", "--candidates", "0,3"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    m = load_network(out).candidate_measurements["x86_cpu_1t_ort"]
    assert m.indices == (0, 3) and m.provenance["rounds"] == 2
    bad = subprocess.run(
        [sys.executable, "-m", "edgesplit.cost_models.profile_candidates", MODEL, "--profile",
         str(node_profile), "--engine", "onnxruntime", "--out", str(out), "--candidates", "999"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "candidates: index 999 out of range" in bad.stderr


C = "candidate_measurements.x86_cpu_1t_ort"


def _set(path: str, value: Any):
    def mutate(doc: dict[str, Any]) -> None:
        obj: Any = doc
        *parts, last = path.replace("]", "").replace("[", ".").split(".")
        if parts[:1] == ["candidate_measurements"]:
            obj = doc["candidate_measurements"]["x86_cpu_1t_ort"]
            parts = parts[2:]
        for key in parts:
            obj = obj[int(key)] if isinstance(obj, list) else obj[key]
        if isinstance(obj, list):
            obj[int(last)] = value
        else:
            obj[last] = value

    return mutate


def _version_1(doc: dict[str, Any]) -> None:
    doc["schema_version"] = 1


def _both_maps(doc: dict[str, Any]) -> None:
    doc["candidate_measurements"]["x86_cpu_1t"] = doc["candidate_measurements"]["x86_cpu_1t_ort"]


def _short(doc: dict[str, Any]) -> None:
    doc["candidate_measurements"]["x86_cpu_1t_ort"]["tail_p90_s"].pop()


def _cpu_head_only(doc: dict[str, Any]) -> None:
    del doc["candidate_measurements"]["x86_cpu_1t_ort"]["tail_cpu_median_s"]


def _class_with_newline(doc: dict[str, Any]) -> None:
    m = doc["candidate_measurements"]
    m["x86_ort\n"] = m.pop("x86_cpu_1t_ort")


def _no_provenance_date(doc: dict[str, Any]) -> None:
    del doc["candidate_measurements"]["x86_cpu_1t_ort"]["provenance"]["date"]


BROKEN = [
    ("v1 file", _version_1, "candidate_measurements"),
    ("engine", _set(f"{C}.engine", "tensorrt"), f"{C}.engine"),
    ("unknown key", _set(f"{C}.colour", "red"), f"{C}.colour"),
    ("order", _set(f"{C}.candidates[1]", 0), f"{C}.candidates[1]"),
    ("range", _set(f"{C}.candidates[1]", 999), f"{C}.candidates[1]"),
    ("length", _short, f"{C}.tail_p90_s"),
    ("head of 0", _set(f"{C}.head_median_s[0]", 1e-3), f"{C}.head_median_s[0]"),
    ("zero head", _set(f"{C}.head_median_s[1]", 0.0), f"{C}.head_p10_s[1]"),
    ("negative", _set(f"{C}.tail_p10_s[0]", -1.0), f"{C}.tail_p10_s[0]"),
    ("p90 below", _set(f"{C}.tail_p90_s[0]", 0.0), f"{C}.tail_median_s[0]"),
    ("class in both", _both_maps, "candidate_measurements.x86_cpu_1t"),
    ("class name newline", _class_with_newline, "candidate_measurements.x86_ort\n"),
    ("provenance", _no_provenance_date, f"{C}.provenance.date"),
    ("cpu pair", _cpu_head_only, f"{C}.tail_cpu_median_s"),
    ("cpu value", _set(f"{C}.head_cpu_median_s[1]", "slow"), f"{C}.head_cpu_median_s[1]"),
    ("cpu head of 0", _set(f"{C}.head_cpu_median_s[0]", 1e-3), f"{C}.head_cpu_median_s[0]"),
    ("options", _set(f"{C}.provenance.engine_options", {"x": [1]}),
     f"{C}.provenance.engine_options"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "field"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_a_bad_per_candidate_measurement_names_the_field(both, tmp_path, mutate, field):
    doc = copy.deepcopy(json.loads(both.read_text()))
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ProfileError) as err:
        load_network(path)
    assert err.value.field == field, str(err.value)
    assert str(path) in str(err.value)


def test_old_profiles_still_load():
    p = load_network("mobilenet_v2")  # a shipped schema-1 file
    assert len(p.candidate_measurements) == 0 and "x86_cpu_1t" in p.measurements


def test_cli_names_bad_candidates_and_labels_only_what_it_measured(
    node_profile, tmp_path, pythonpath, capsys
):
    from edgesplit.cost_models.profile_candidates import main

    out = tmp_path / "cli.json"
    common = [MODEL, "--profile", str(node_profile), "--engine", "torch", "--out", str(out)]
    assert main([*common, "--candidates", "1,x"]) == 2
    assert "--candidates" in capsys.readouterr().err and not out.exists()
    # without candidate 0, the summary line does not call candidate 2's tail the network's
    assert main([*common, "--warmup", "0", "--rounds", "1", "--candidates", "2"]) == 0
    line = capsys.readouterr().out
    assert "1 candidates" in line and "whole network" not in line
