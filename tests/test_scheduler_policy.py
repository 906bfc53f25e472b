"""Tampered and inconsistent policy directories are refused at load, each with an error
naming the file, the field and the value (issue 12, point 5, one test per corruption)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

from edgesplit.agents.export import export_policy
from edgesplit.agents.registry import get_agent
from edgesplit.envs import ENV_ID
from edgesplit.scheduler import PolicyError, SchedulerError, load_policy
from edgesplit.scheduler.policy import file_sha256, policy_digest

ort = pytest.importorskip("onnxruntime")


def _export(algo: str, out: Path) -> Path:
    """An untrained model exported (the checks look at layouts, not weights)."""
    spec = get_agent(algo)
    env = gym.make(
        ENV_ID, scenario="default", decision_mode=spec.decision_mode, action_type=spec.action_type
    )
    model = spec.load_class()("MlpPolicy", env, seed=0, device="cpu")
    return export_policy(model, algo, {"scenario": "default"}, out)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("exports")
    return {a: _export(a, base / a) for a in ("ppo", "ddpg", "maskable_ppo", "dqn")}


def _copy(src: Path, dst: Path) -> tuple[Path, dict[str, Any]]:
    shutil.copytree(src, dst)
    return dst, json.loads((dst / "policy.json").read_text())


def _write(d: Path, man: dict[str, Any], *, redigest: bool = True) -> None:
    """Write the manifest; with ``redigest`` its digest is recomputed, as a tamperer who
    knows the format would, so that the consistency checks must catch the edit."""
    if redigest:
        man = {**man, "digest": policy_digest(man, d / "policy.onnx")}
    (d / "policy.json").write_text(json.dumps(man))


def _refused(d: Path, field: str, value: Any = None, file: str = "policy.json") -> PolicyError:
    with pytest.raises(PolicyError) as ei:
        load_policy(d)
    err = ei.value
    assert isinstance(err, SchedulerError)
    assert err.field == field, str(err)
    assert Path(err.file) == d / file and str(d / file) in str(err)
    if value is not None:
        assert err.value == value and repr(value)[:20] in str(err)
    return err


def test_intact_exports_load_with_their_digest(exports: dict[str, Path]) -> None:
    for algo, d in exports.items():
        pol = load_policy(d)
        man = json.loads((d / "policy.json").read_text())
        assert man["format_version"] == 2
        assert man["digest"] == policy_digest(man, d / "policy.onnx")
        assert pol.digest == man["digest"]["value"] and pol.algorithm == get_agent(algo).name
        assert pol.threads == 1
    assert load_policy(exports["ppo"], threads=2).threads == 2
    with pytest.raises(ValueError, match="threads"):
        load_policy(exports["ppo"], threads=0)


def test_any_edit_without_the_digest_is_noticed(exports: dict[str, Path], tmp_path) -> None:
    d, man = _copy(exports["ppo"], tmp_path / "p")
    man["tables"]["n_valid"][0] = 1  # a plausible value: only the digest can tell
    _write(d, man, redigest=False)
    _refused(d, "digest.value", man["digest"]["value"])
    # the ONNX of another export beside this manifest (same input and output layout)
    d2, man2 = _copy(exports["ppo"], tmp_path / "q")
    other = _export("ppo", tmp_path / "other")  # a new export: other weights
    shutil.copy(other / "policy.onnx", d2 / "policy.onnx")
    if file_sha256(d2 / "policy.onnx") != man2["onnx"]["sha256"]:
        _refused(d2, "digest.value")
    with (d2 / "policy.onnx").open("ab") as f:
        f.write(b"\0")
    _refused(d2, "digest.value")


# each: (algorithm exported, how the manifest is corrupted, field named, value named)
CORRUPTIONS: dict[str, tuple[str, Callable[[dict], None], str, Any]] = {
    "n_valid out of range": (
        "ppo", lambda m: m["tables"]["n_valid"].__setitem__(0, 99), "tables.n_valid[0]", 99
    ),
    "home out of range": (
        "ppo", lambda m: m["tables"]["home"].__setitem__(0, 99), "tables.home[0]", 99
    ),
    "scenario a string": ("ppo", lambda m: m.__setitem__("scenario", "default"), "scenario",
                          "default"),
    "device_names a string": (
        "ppo", lambda m: m["tables"].__setitem__("device_names", "pi_0"), "tables.device_names",
        "pi_0",
    ),
    "action_type swapped": (
        "ppo", lambda m: m.__setitem__("action_type", "continuous"), "action.shape", [24]
    ),
    "action_type and action layout swapped (graph disagrees)": (
        "ppo", lambda m: m.update(action_type="continuous", action={
            "shape": [6 * (len(m["tables"]["target_names"]) + 3)], "nvec": None, "n": None}),
        "onnx.outputs.action", None,
    ),
    "home unreachable": (
        "ppo", lambda m: m["tables"]["reachable"][0].__setitem__(m["tables"]["home"][0], False),
        "tables.home[0]", None,
    ),
    "candidate names of another length": (
        "ppo", lambda m: m["tables"]["candidate_names"][0].append("extra"),
        "tables.candidate_names[0]", None,
    ),
    "valid disagrees with n_valid": (
        "ppo", lambda m: m["tables"]["valid"][0].__setitem__(0, False), "tables.n_valid[0]", None
    ),
    "head_s of the wrong shape": (
        "ppo", lambda m: m["tables"]["head_s"].pop(), "tables.head_s", None
    ),
    "deadline not positive": (
        "ppo", lambda m: m["tables"]["deadline_s"].__setitem__(1, 0.0), "tables.deadline_s[1]", 0.0
    ),
    "observation dim": (
        "ppo", lambda m: m["observation"].__setitem__("dim", 7), "observation.dim", 7
    ),
    "decision mode swapped": (  # the joint observation: 6 devices x 68
        "ppo", lambda m: m.__setitem__("decision_mode", "sequential"), "observation.dim", 408
    ),
    "sequential action count": (
        "dqn", lambda m: m["action"].__setitem__("n", 5), "action.n", 5
    ),
    "tables a list": ("ppo", lambda m: m.__setitem__("tables", []), "tables", []),
    "unknown table field": (
        "ppo", lambda m: m["tables"].__setitem__("extra", 1), "tables.extra", 1
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupted_manifest_is_refused(exports: dict[str, Path], tmp_path, name: str) -> None:
    algo, corrupt, field, value = CORRUPTIONS[name]
    d, man = _copy(exports[algo], tmp_path / "p")
    corrupt(man)
    _write(d, man)
    _refused(d, field, value)


def test_ap_of_target_field_names_the_index(exports: dict[str, Path], tmp_path) -> None:
    d, man = _copy(exports["ppo"], tmp_path / "p")
    man["tables"]["ap_of_target"][1][0] = -1
    _write(d, man)
    err = _refused(d, "tables.ap_of_target[1, 0]", -1)
    assert "access point" in str(err)


def _swap_onnx(d: Path, man: dict[str, Any], onnx: Path) -> None:
    """Put another ONNX file in the directory, with its sha256 and the digest updated."""
    shutil.copy(onnx, d / "policy.onnx")
    man["onnx"]["sha256"] = file_sha256(d / "policy.onnx")
    _write(d, man)


def test_another_algorithms_onnx_of_the_same_input_size(exports: dict[str, Path], tmp_path) -> None:
    """DDPG's graph (float actions) and MaskablePPO's (takes masks) have PPO's input size on
    the same scenario; beside PPO's manifest each is refused, not silently run."""
    ppo = json.loads((exports["ppo"] / "policy.json").read_text())
    ddpg = json.loads((exports["ddpg"] / "policy.json").read_text())
    assert ppo["observation"]["dim"] == ddpg["observation"]["dim"]
    d, man = _copy(exports["ppo"], tmp_path / "a")
    _swap_onnx(d, man, exports["ddpg"] / "policy.onnx")
    err = _refused(d, "onnx.outputs.action")
    assert "tensor(float)" in str(err) and "tensor(int64)" in str(err)
    d, man = _copy(exports["ppo"], tmp_path / "b")
    _swap_onnx(d, man, exports["maskable_ppo"] / "policy.onnx")
    _refused(d, "onnx.inputs", ["obs"])
    d, man = _copy(exports["ddpg"], tmp_path / "c")  # and the other way round
    _swap_onnx(d, man, exports["ppo"] / "policy.onnx")
    _refused(d, "onnx.outputs.action")


def _handmade_onnx(path: Path, obs_dim: int, width: int, static: bool) -> None:
    """A graph from the observation to an int64 action of ``width`` columns (zeros). With
    ``static=False`` the width is computed from the data (``width + int(max(obs))``), so
    neither the graph nor onnxruntime's shape inference can state it."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    consts = [
        helper.make_tensor(n, TensorProto.INT64, [1], [v])
        for n, v in (("start", 0), ("width", width), ("axis", 1))
    ]
    consts.append(helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]))
    consts.append(helper.make_tensor("flat", TensorProto.INT64, [1], [1]))
    nodes = []
    if static:
        end = "width"
    else:  # end = width + int(max(obs)): data-dependent
        nodes += [
            helper.make_node("ReduceMax", ["obs"], ["mx"], keepdims=0),
            helper.make_node("Cast", ["mx"], ["mx_i"], to=TensorProto.INT64),
            helper.make_node("Reshape", ["mx_i", "flat"], ["mx_1"]),
            helper.make_node("Add", ["mx_1", "width"], ["end"]),
        ]
        end = "end"
    nodes += [
        helper.make_node("Slice", ["obs", "start", end, "axis"], ["cut"]),
        helper.make_node("Mul", ["cut", "zero"], ["z"]),
        helper.make_node("Cast", ["z"], ["action"], to=TensorProto.INT64),
    ]
    out_shape = ["batch", width] if static else ["batch", "width"]
    graph = helper.make_graph(
        nodes,
        "wrong_width",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", obs_dim])],
        [helper.make_tensor_value_info("action", TensorProto.INT64, out_shape)],
        initializer=consts,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.mark.parametrize("static", [True, False], ids=["declared", "probed"])
def test_onnx_output_shape_must_match_the_action_layout(
    exports: dict[str, Path], tmp_path, static: bool
) -> None:
    """An int64 action of 3 columns where the layout has 24: refused from the declared
    output shape, or, where the graph declares none, from a probe run."""
    d, man = _copy(exports["ppo"], tmp_path / "p")
    _handmade_onnx(tmp_path / "wrong.onnx", man["observation"]["dim"], 3, static)
    _swap_onnx(d, man, tmp_path / "wrong.onnx")
    err = _refused(d, "onnx.outputs.action")
    if static:  # the graph's declared output
        assert "needs tensor(int64) [batch, *[24]]" in str(err) and err.value.endswith("3]")
    else:  # the probe's output
        assert err.value == [3] and "expected [24] per row" in str(err)


def test_pathological_manifests_are_refused_cleanly(exports: dict[str, Path], tmp_path) -> None:
    d, man = _copy(exports["ppo"], tmp_path / "p")
    (d / "policy.json").write_text("[" * 100_000 + "]" * 100_000)
    err = _refused(d, "(file)")
    assert "nested 100000 levels deep" in str(err)
    deep = json.dumps({**man, "training": "__deep__"}).replace(
        '"__deep__"', "[" * 5000 + "]" * 5000
    )
    (d / "policy.json").write_text(deep)
    assert "nested 5001 levels deep" in str(_refused(d, "(file)"))
    (d / "policy.json").write_text(json.dumps(man).replace('"default"', "NaN", 1))
    assert "NaN" in str(_refused(d, "(file)"))
    _write(d, {**man, "format_version": 1})
    assert "re-export" in str(_refused(d, "format_version", 1))
    _write(d, {k: v for k, v in man.items() if k != "digest"}, redigest=False)
    _refused(d, "digest")
    _write(d, {**man, "onnx": {**man["onnx"], "file": "../policy.onnx"}})
    _refused(d, "onnx.file", "../policy.onnx")


def test_a_graph_onnxruntime_cannot_load(exports: dict[str, Path], tmp_path) -> None:
    d, man = _copy(exports["ppo"], tmp_path / "p")
    (tmp_path / "junk.onnx").write_bytes(b"not an onnx file")
    _swap_onnx(d, man, tmp_path / "junk.onnx")
    _refused(d, "(file)", file="policy.onnx")
