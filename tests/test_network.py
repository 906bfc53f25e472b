"""Network profiles: the shipped files, the schema's validation, the graph and its cuts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from edgesplit.cost_models import zoo
from edgesplit.cost_models.graph import TracedNetwork, trace_network
from edgesplit.cost_models.network import (
    SCHEMA,
    ProfileError,
    available_networks,
    load_network,
    parse_profile,
)

torch.set_num_threads(1)

NETWORKS = ["alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v2"]
# published multiply-accumulates at 1x3x224x224, in G (torchvision's model tables)
PUBLISHED_GMACS = {
    "alexnet": 0.71,
    "vgg16": 15.5,
    "resnet18": 1.82,
    "resnet50": 4.1,
    "mobilenet_v2": 0.30,
}
# torchvision's parameter counts (exact): the zoo must have the same tensors
TORCHVISION_PARAMS = {
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872,
}
SHAPE = (1, 3, 224, 224)

_TRACED: dict[str, TracedNetwork] = {}


def traced(name: str) -> TracedNetwork:
    """The zoo network traced on the meta device (shapes and FLOPs only; cached)."""
    if name not in _TRACED:
        _TRACED[name] = trace_network(zoo.FACTORIES[name](device="meta"), SHAPE)
    return _TRACED[name]


# ----------------------------------------------------------------------------- shipped


def test_shipped_networks_are_listed() -> None:
    assert set(NETWORKS) <= set(available_networks())


@pytest.mark.parametrize("name", NETWORKS)
def test_macs_match_published_counts(name: str) -> None:
    macs = traced(name).macs
    assert abs(macs / 1e9 / PUBLISHED_GMACS[name] - 1) < 0.05, (name, macs)


@pytest.mark.parametrize("name", NETWORKS)
def test_zoo_parameter_counts_match_torchvision(name: str) -> None:
    assert traced(name).params == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name", NETWORKS)
def test_shipped_profile_matches_the_zoo_graph(name: str) -> None:
    """The committed profile was generated from the current zoo code."""
    profile = load_network(name)
    net = traced(name)
    assert profile.name == name
    assert profile.input_shape == SHAPE
    assert profile.macs == net.macs
    assert profile.params == net.params
    assert profile.nodes == net.nodes
    assert profile.candidates == net.candidates
    assert profile.output_numel == 1000
    assert "x86_cpu_1t" in profile.measurements


@pytest.mark.parametrize("name", NETWORKS)
def test_shipped_measurement_is_sane(name: str) -> None:
    m = load_network(name).measurements["x86_cpu_1t"]
    assert np.all(m.p10_s <= m.median_s) and np.all(m.median_s <= m.p90_s)
    assert m.whole_p10_s <= m.whole_p50_s <= m.whole_p90_s
    prov = m.provenance
    assert prov["threads"] == 1
    assert prov["rounds"] >= 10
    assert prov["hardware"]["cpu"]
    assert {"python", "torch", "numpy"} <= set(prov["software"])
    assert prov["sum_over_whole"] == pytest.approx(m.sum_over_whole, rel=0.01)


@pytest.mark.parametrize("name", NETWORKS)
def test_head_plus_tail_is_the_whole_network(name: str) -> None:
    profile = load_network(name)
    latencies = {c: m.median_s for c, m in profile.measurements.items()}
    latencies["synthetic"] = np.random.default_rng(0).uniform(0, 1e-3, len(profile.nodes))
    for cls, lat in latencies.items():
        head, tail = profile.split_latency(lat)
        assert head.shape == tail.shape == (len(profile.candidates),)
        assert head[0] == 0 and tail[-1] == 0, cls
        np.testing.assert_allclose(head + tail, lat.sum(), rtol=1e-12)
        for c, h in zip(profile.candidates, head, strict=True):
            assert h == pytest.approx(lat[: c.n_head].sum(), rel=1e-12, abs=1e-15)
        assert np.all(np.diff(head) >= 0)
    stacked = np.vstack(list(latencies.values()))
    head2, tail2 = profile.split_latency(stacked)
    whole = np.broadcast_to(stacked.sum(axis=1, keepdims=True), head2.shape)
    np.testing.assert_allclose(head2 + tail2, whole, rtol=1e-12)


def test_split_latency_rejects_wrong_length() -> None:
    profile = load_network("alexnet")
    with pytest.raises(ValueError, match="alexnet"):
        profile.split_latency(np.zeros(len(profile.nodes) + 1))


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2"])
def test_residual_cut_counts_both_tensors(name: str) -> None:
    profile = load_network(name)
    numel = {"input": profile.input_numel, **{n.name: n.output_numel for n in profile.nodes}}
    sent = profile.candidate_bytes()
    doubles = [c for c in profile.candidates if len(c.cut) == 2]
    assert doubles, "a residual network has cuts inside its blocks"
    for c in doubles:
        assert c.cut_numel == numel[c.cut[0]] + numel[c.cut[1]]
        assert sent[c.index] == 4 * c.cut_numel


def test_resnet18_cut_inside_the_first_basic_block() -> None:
    profile = load_network("resnet18")
    (c,) = [c for c in profile.candidates if c.name == "layer1_0_conv1"]
    assert set(c.cut) == {"maxpool", "layer1_0_conv1"}  # the shortcut and the branch
    assert profile.candidate_bytes()[c.index] == 4 * (64 * 56 * 56 + 64 * 56 * 56)
    (after_add,) = [c for c in profile.candidates if c.name == "add"]
    assert after_add.cut == ("add",)


@pytest.mark.parametrize("name", ["alexnet", "vgg16"])
def test_chain_cuts_send_one_tensor(name: str) -> None:
    assert all(len(c.cut) == 1 for c in load_network(name).candidates)


def test_candidate_bytes_count_as_they_travel() -> None:
    profile = load_network("resnet18")
    raw = profile.candidate_bytes()
    assert raw[0] == 3 * 224 * 224  # uint8 image
    assert raw[-1] == 4 * 1000  # float32 logits
    assert profile.candidate_bytes(input_compression=10.0)[0] == pytest.approx(15052.8)
    half = profile.candidate_bytes(wire_bytes_per_element=2.0)
    np.testing.assert_array_equal(half[1:-1], raw[1:-1] / 2)
    assert half[0] == raw[0] and half[-1] == raw[-1]
    with pytest.raises(ValueError, match="wire_bytes_per_element"):
        profile.candidate_bytes(wire_bytes_per_element=0.0)


def test_load_by_name_and_path_is_cached() -> None:
    a = load_network("mobilenet_v2")
    assert load_network("mobilenet_v2") is a
    path = Path(str(a.path))
    assert path.name == "mobilenet_v2.json"
    assert load_network(path) is a
    assert load_network(str(path)) is a


def test_profile_is_read_only() -> None:
    profile = load_network("alexnet")
    m = profile.measurements["x86_cpu_1t"]
    with pytest.raises(ValueError):
        m.median_s[0] = 1.0
    with pytest.raises(TypeError):
        profile.measurements["other"] = m  # type: ignore[index]
    with pytest.raises(TypeError):
        m.provenance["threads"] = 2  # type: ignore[index]


def test_unknown_network_name() -> None:
    with pytest.raises(ProfileError, match="no_such_net") as info:
        load_network("no_such_net")
    assert "resnet18" in str(info.value)  # lists what is available


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError):
        load_network("/nonexistent/profile.json")


# ----------------------------------------------------------------------------- schema


def _doc() -> dict[str, Any]:
    path = Path(str(load_network("alexnet").path))
    return json.loads(path.read_text())


def _write(tmp_path: Path, doc: Any, name: str = "broken.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_good_file_round_trips(tmp_path: Path) -> None:
    path = _write(tmp_path, _doc(), "good.json")
    loaded = load_network(path)
    shipped = load_network("alexnet")
    assert loaded is not shipped
    assert loaded.nodes == shipped.nodes and loaded.candidates == shipped.candidates
    np.testing.assert_array_equal(
        loaded.measurements["x86_cpu_1t"].median_s, shipped.measurements["x86_cpu_1t"].median_s
    )


def test_edited_file_is_read_again(tmp_path: Path) -> None:
    doc = _doc()
    path = _write(tmp_path, doc, "edit.json")
    assert load_network(path).name == "alexnet"
    doc["name"] = "alexnet_copy"
    path.write_text(json.dumps(doc))
    assert load_network(path).name == "alexnet_copy"


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets the field at ``path`` (dots and [i]) to ``value``."""

    def mutate(doc: dict[str, Any]) -> None:
        parts = path.replace("[", ".").replace("]", "").split(".")
        obj: Any = doc
        for p in parts[:-1]:
            obj = obj[int(p)] if isinstance(obj, list) else obj[p]
        last = parts[-1]
        if isinstance(obj, list):
            obj[int(last)] = value
        else:
            obj[last] = value

    return mutate


def _delete(key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        del doc[key]

    return mutate


def _truncate_median(doc: dict[str, Any]) -> None:
    doc["measurements"]["x86_cpu_1t"]["median_s"].pop()


def _swap_cut(doc: dict[str, Any]) -> None:
    c = doc["candidates"][5]
    c["cut"] = ["input"]
    c["cut_numel"] = 3 * 224 * 224


def _forward_reference(doc: dict[str, Any]) -> None:
    doc["nodes"][2]["inputs"] = [doc["nodes"][6]["name"]]


def _rename_class(doc: dict[str, Any]) -> None:
    m = doc["measurements"]
    m["bad class!"] = m.pop("x86_cpu_1t")


def _class_with_newline(doc: dict[str, Any]) -> None:
    m = doc["measurements"]
    m["x86\n"] = m.pop("x86_cpu_1t")


M = "measurements.x86_cpu_1t"
BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    # (case id, mutation, field named in the error, value shown in the error)
    ("schema", _set("schema", "other-schema"), "schema", "'other-schema'"),
    ("version", _set("schema_version", 3), "schema_version", "3"),
    ("unknown top key", _set("colour", "blue"), "colour", "'blue'"),
    ("missing key", _delete("macs"), "macs", "missing"),
    ("negative flops", _set("nodes[3].flops", -5), "nodes[3].flops", "-5"),
    ("string flops", _set("nodes[3].flops", "many"), "nodes[3].flops", "'many'"),
    ("float flops", _set("nodes[3].flops", 1.5), "nodes[3].flops", "1.5"),
    ("bool bytes", _set("nodes[1].param_bytes", True), "nodes[1].param_bytes", "True"),
    ("unknown node key", _set("nodes[0].colour", "red"), "nodes[0].colour", "'red'"),
    ("empty op", _set("nodes[4].op", ""), "nodes[4].op", "''"),
    ("duplicate name", _set("nodes[1].name", "features_0"), "nodes[1].name", "'features_0'"),
    ("reserved name", _set("nodes[1].name", "input"), "nodes[1].name", "'input'"),
    ("ghost input", _set("nodes[2].inputs", ["ghost"]), "nodes[2].inputs[0]", "'ghost'"),
    ("forward ref", _forward_reference, "nodes[2].inputs[0]", "'features_6'"),
    ("output bytes", _set("nodes[4].output_bytes", 7), "nodes[4].output_bytes", "7"),
    ("input bytes", _set("nodes[4].input_bytes", 8), "nodes[4].input_bytes", "8"),
    ("shape", _set("input_shape[2]", -224), "input_shape[2]", "-224"),
    ("macs", _set("macs", 123), "macs", "123"),
    ("params", _set("params", -1), "params", "-1"),
    ("first kind", _set("candidates[0].kind", "intermediate"), "candidates[0].kind",
     "'intermediate'"),
    ("last kind", _set("candidates[22].kind", "intermediate"), "candidates[22].kind",
     "'intermediate'"),
    ("index", _set("candidates[2].index", 7), "candidates[2].index", "7"),
    ("first n_head", _set("candidates[0].n_head", 1), "candidates[0].n_head", "1"),
    ("last n_head", _set("candidates[22].n_head", 21), "candidates[22].n_head", "21"),
    ("monotone", _set("candidates[5].n_head", 4), "candidates[5].n_head", "4"),
    ("cand name", _set("candidates[3].name", "features_9"), "candidates[3].name",
     "'features_9'"),
    ("ghost cut", _set("candidates[5].cut", ["ghost"]), "candidates[5].cut[0]", "'ghost'"),
    ("wrong cut", _swap_cut, "candidates[5].cut", "['input']"),
    ("cut numel", _set("candidates[5].cut_numel", 1), "candidates[5].cut_numel", "1"),
    ("short array", _truncate_median, f"{M}.median_s", "'21 entries'"),
    ("negative latency", _set(f"{M}.p10_s[3]", -1e-3), f"{M}.p10_s[3]", "-0.001"),
    ("string latency", _set(f"{M}.median_s[3]", "fast"), f"{M}.median_s[3]", "'fast'"),
    ("median above p90", _set(f"{M}.median_s[3]", 99.0), f"{M}.median_s[3]", "99.0"),
    ("whole p50 zero", _set(f"{M}.whole_p50_s", 0), f"{M}.whole_p50_s", "0"),
    ("whole order", _set(f"{M}.whole_p90_s", 1e-9), f"{M}.whole_p90_s", "1e-09"),
    ("class name", _rename_class, "measurements.bad class!", "'bad class!'"),
    ("class name newline", _class_with_newline, "measurements.x86\n", "'x86\\n'"),
    ("threads", _set(f"{M}.provenance.threads", 0), f"{M}.provenance.threads", "0"),
    ("hostname", _set(f"{M}.provenance.hostname", "box1"), f"{M}.provenance.hostname",
     "'box1'"),
    ("date", _set(f"{M}.provenance.date", "yesterday"), f"{M}.provenance.date",
     "'yesterday'"),
    ("ratio", _set(f"{M}.provenance.sum_over_whole", 3.0), f"{M}.provenance.sum_over_whole",
     "3.0"),
    ("no python", _set(f"{M}.provenance.software", {"torch": "2"}), f"{M}.provenance.software",
     "{'torch': '2'}"),
    ("cpus", _set(f"{M}.provenance.hardware.logical_cpus", 0),
     f"{M}.provenance.hardware.logical_cpus", "0"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "field", "value"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_profile_names_file_field_and_value(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], field: str, value: str
) -> None:
    doc = _doc()
    mutate(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(ProfileError) as info:
        load_network(path)
    err = info.value
    message = str(err)
    assert isinstance(err, ValueError)
    assert str(path) in message
    assert err.field == field, message
    assert f"{field}:" in message
    assert value in message, message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"schema": NaN}', "NaN"),
        ('{"schema": "x", ', "line 1"),
        ('{"name": "a", "name": "b"}', "'name'"),
        ("[]", "[]"),
    ],
    ids=["nan", "truncated", "duplicate key", "not an object"],
)
def test_malformed_json_names_file_and_value(tmp_path: Path, text: str, value: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ProfileError) as info:
        load_network(path)
    assert str(path) in str(info.value)
    assert value in str(info.value)


def test_parse_profile_names_the_given_file() -> None:
    doc = _doc()
    doc["schema"] = SCHEMA + "-old"
    with pytest.raises(ProfileError, match=r"^my-file: schema: "):
        parse_profile(doc, "my-file")


def test_profile_error_pickles() -> None:
    import pickle

    err = ProfileError("f.json", "nodes[1].flops", -1, "must be >= 0")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.field == "nodes[1].flops"


# ----------------------------------------------------------------------------- torchvision


@pytest.mark.parametrize("name", NETWORKS)
def test_state_dict_compatible_with_torchvision(name: str) -> None:
    tv_models = pytest.importorskip("torchvision.models")
    ours = zoo.FACTORIES[name]()
    theirs = getattr(tv_models, name)(weights=None).eval()
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    ours.load_state_dict(b)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))
