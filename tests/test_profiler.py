"""The graph tracer, the profiler end to end on a small network, and the info command."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import fx, nn

from edgesplit.cost_models import __main__ as cli
from edgesplit.cost_models import profile as profiler
from edgesplit.cost_models.graph import crossing_values, trace_network
from edgesplit.cost_models.network import load_network

torch.set_num_threads(1)

SMALL = (1, 3, 8, 8)


class TinyNet(nn.Module):
    """A residual branch, a tuple-valued node, an int-valued node, the input read late."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.branch = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn(self.stem(x)))
        z = self.branch(y) + y
        a, b = torch.chunk(z, 2, dim=1)
        z = torch.cat([b, a], dim=1) * x.mean()
        z = self.pool(z).view(z.size(0), -1)
        return self.fc(torch.cat([z, z], dim=1))


def tiny() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet().eval()


# ----------------------------------------------------------------------------- graph


def test_trace_nodes_and_candidates() -> None:
    net = trace_network(tiny(), SMALL)
    names = [n.name for n in net.nodes]
    assert "x" not in names and "output" not in names  # placeholder and output left out
    assert len(net.candidates) == len(net.nodes) + 1
    first, last = net.candidates[0], net.candidates[-1]
    assert (first.kind, first.name, first.cut, first.cut_numel) == (
        "input",
        "input",
        ("input",),
        3 * 8 * 8,
    )
    assert (last.kind, last.cut, last.cut_numel) == ("output", ("fc",), 10)
    assert all(c.kind == "intermediate" for c in net.candidates[1:-1])
    by_name = {n.name: n for n in net.nodes}
    # FLOPs of the stem: 2 x MACs, bias not counted (torch.utils.flop_counter)
    assert by_name["stem"].flops == 2 * (8 * 3 * 3 * 3) * 8 * 8
    assert by_name["stem"].param_bytes == 4 * (8 * 3 * 3 * 3 + 8)
    assert by_name["bn"].param_bytes == 4 * 8 * 4 + 8  # weight, bias, running stats, counter
    assert by_name["relu"].flops == 0
    assert by_name["chunk"].output_numel == 8 * 8 * 8  # a tuple of two halves
    assert by_name["size"].output_numel == 0  # an int
    assert by_name["fc"].flops == 2 * 16 * 10
    assert net.macs == sum(n.flops for n in net.nodes) // 2


def test_residual_and_late_input_cross_the_cut() -> None:
    net = trace_network(tiny(), SMALL)
    cut = {c.name: c for c in net.candidates}
    assert set(cut["branch"].cut) == {"input", "relu", "branch"}  # x is read later
    assert cut["branch"].cut_numel == 3 * 64 + 8 * 64 + 8 * 64
    assert "input" not in cut["mean"].cut


def test_crossing_values_match_a_brute_force_count() -> None:
    net = trace_network(tiny(), SMALL)
    graph = net.graph_module.graph
    order = [n for n in graph.nodes if n.op not in ("placeholder", "output")]
    (placeholder,) = [n for n in graph.nodes if n.op == "placeholder"]
    for k in range(len(order) + 1):
        head = {placeholder, *order[:k]}
        crossing = set()
        for producer in head:
            for user in producer.users:
                if user.op == "output" or user not in head:
                    crossing.add("input" if producer is placeholder else producer.name)
        assert set(net.candidates[k].cut) == crossing, k
    assert crossing_values(net.nodes, ["fc"]) == [list(c.cut) for c in net.candidates]


def test_trace_rejects_two_inputs() -> None:
    class Two(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a + b

    with pytest.raises(ValueError, match="one input"):
        trace_network(Two(), SMALL)


def test_trace_folds_constants_into_param_bytes() -> None:
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(3, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x * self.w)

    net = trace_network(Scale(), SMALL)
    assert [n.name for n in net.nodes] == ["mul", "relu"]  # the get_attr is not a node
    assert net.nodes[0].param_bytes == 12 and net.nodes[0].inputs == ("input",)
    assert isinstance(net.graph_module, fx.GraphModule)


# ----------------------------------------------------------------------------- profiler


def test_profile_module_end_to_end(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", profiler.ProfilerWarning)  # tiny nodes are noisy
        doc = profiler.profile_module(
            tiny(), SMALL, "test_cpu", name="tiny", source="tests:tiny", rounds=4, warmup=1
        )
    path = tmp_path / "tiny.json"
    profiler.write_profile(doc, path)
    text = path.read_text()
    host = socket.gethostname()
    if len(host) >= 6:
        assert host not in text
    p = load_network(path)
    assert p.name == "tiny" and p.source == "tests:tiny" and p.input_shape == SMALL
    m = p.measurements["test_cpu"]
    assert m.median_s.shape == (len(p.nodes),)
    assert np.all(m.p10_s <= m.median_s) and np.all(m.median_s <= m.p90_s)
    assert np.all(m.median_s > 0) and m.whole_p50_s > 0
    prov = m.provenance
    assert (prov["threads"], prov["rounds"], prov["warmup"]) == (1, 4, 1)
    assert prov["model"] == "tests:tiny"
    assert prov["sum_over_whole"] == pytest.approx(m.median_s.sum() / m.whole_p50_s, rel=0.01)
    assert {"cpu", "machine", "logical_cpus"} <= set(prov["hardware"])
    assert prov["software"]["torch"] == torch.__version__
    head, tail = p.split_latency(m.median_s)
    np.testing.assert_allclose(head + tail, m.median_s.sum())
    assert len(text) < 40_000  # rounded floats, one node per line


def _fake_measure(whole: np.ndarray, per_node_scale: float) -> Callable[..., Any]:
    """A stand-in for the timing loop: given whole-network times, nodes that sum to a scale."""

    def measure(
        module: nn.Module, traced: Any, x: torch.Tensor, warmup: int, rounds: int, progress: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(traced.nodes)
        per_node = np.tile(whole[:, None] * per_node_scale / n, (1, n))
        return whole, per_node

    return measure


def test_profiler_warns_on_spread_and_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    noisy = np.array([1.0, 1.0, 2.0, 3.0, 4.0, 5.0]) * 1e-3
    monkeypatch.setattr(profiler, "_measure", _fake_measure(noisy, 1.0))
    with pytest.warns(profiler.ProfilerWarning, match=r"\(p90 - p10\) / p50"):
        profiler.profile_module(tiny(), SMALL, "c", name="t", source="s", rounds=6, warmup=0)
    steady = np.full(6, 1e-3)
    monkeypatch.setattr(profiler, "_measure", _fake_measure(steady, 1.5))
    with pytest.warns(profiler.ProfilerWarning, match="1.50x the whole network"):
        doc = profiler.profile_module(tiny(), SMALL, "c", name="t", source="s", rounds=6)
    assert doc["measurements"]["c"]["provenance"]["sum_over_whole"] == pytest.approx(1.5)
    monkeypatch.setattr(profiler, "_measure", _fake_measure(steady, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", profiler.ProfilerWarning)
        profiler.profile_module(tiny(), SMALL, "c", name="t", source="s", rounds=6)


def test_profiler_sets_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profiler, "_measure", _fake_measure(np.full(3, 1e-3), 1.0))
    try:
        doc = profiler.profile_module(tiny(), SMALL, "c", name="t", source="s", threads=2)
        assert torch.get_num_threads() == 2
        assert doc["measurements"]["c"]["provenance"]["threads"] == 2
    finally:
        torch.set_num_threads(1)


def test_cli_profiles_a_factory_and_merges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "tinymod.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            def make():
                torch.manual_seed(0)
                return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(),
                                     nn.Linear(4 * 6 * 6, 5))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "net.json"
    common = ["tinymod:make", "--input-shape", "1,3,8,8", "--rounds", "3", "--warmup", "1",
              "--out", str(out)]  # fmt: skip
    assert profiler.main([*common, "--device-class", "board_a"]) == 0
    assert "sum/whole" in capsys.readouterr().out
    assert set(load_network(out).measurements) == {"board_a"}
    assert profiler.main([*common, "--device-class", "board_b", "--merge"]) == 0
    p = load_network(out)
    assert p.name == "make" and set(p.measurements) == {"board_a", "board_b"}
    assert p.source == "tinymod:make"


def test_cli_rejects_bad_model_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for spec in ["no_such_module_xyz:make", "edgesplit.cost_models.zoo:nothing", "nonsense"]:
        code = profiler.main([spec, "--device-class", "c", "--out", str(tmp_path / "x.json")])
        assert code == 2
        assert spec.split(":")[0] in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_load_factory_accepts_shipped_names() -> None:
    from edgesplit.cost_models import zoo

    assert profiler.load_factory("resnet18") == (zoo.resnet18, "resnet18")
    assert profiler.load_factory("edgesplit.cost_models.zoo:vgg16") == (zoo.vgg16, "vgg16")


def test_hardware_description_has_no_hostname() -> None:
    hw = profiler.hardware_description()
    assert hw["cpu"] and hw["logical_cpus"] >= 1
    host = socket.gethostname()
    if len(host) >= 6:
        assert host not in json.dumps(hw)


# ----------------------------------------------------------------------------- info


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info", "resnet18", "--json", "--classes", "x86_cpu_1t"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"name", "macs", "params", "classes", "candidates"}
    p = load_network("resnet18")
    assert (doc["name"], doc["macs"], doc["params"]) == ("resnet18", p.macs, p.params)
    assert doc["classes"] == ["x86_cpu_1t"]
    assert len(doc["candidates"]) == len(p.candidates)
    whole = float(p.measurements["x86_cpu_1t"].median_s.sum())
    for c, cand in zip(doc["candidates"], p.candidates, strict=True):
        assert set(c) == {"index", "name", "bytes", "head_s", "tail_s"}
        assert (c["index"], c["name"]) == (cand.index, cand.name)
        assert c["head_s"]["x86_cpu_1t"] + c["tail_s"]["x86_cpu_1t"] == pytest.approx(whole)
    assert doc["candidates"][0]["bytes"] == 150528


def test_info_all_classes_split_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    """Every known class (measured, and modelled where the catalogue is there) sums up."""
    profile = load_network("mobilenet_v2")
    latencies, _ = cli.class_latencies(profile)
    assert "x86_cpu_1t" in latencies
    doc = cli.summary(profile, latencies=latencies)
    assert doc["classes"] == list(latencies)
    for cls, lat in latencies.items():
        for c in doc["candidates"]:
            assert c["head_s"][cls] + c["tail_s"][cls] == pytest.approx(lat.sum(), rel=1e-9)


def test_info_table_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info", "alexnet", "--classes", "x86_cpu_1t"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("alexnet:") and "features_0" in out
    assert cli.main(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(n in listed for n in ["alexnet", "vgg16", "resnet18", "resnet50", "mobilenet_v2"])


def test_info_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["info", "resnet18", "--classes", "no_such_class"]) == 2
    assert "no_such_class" in capsys.readouterr().err
    assert cli.main(["info", "no_such_network"]) == 2
    assert "no_such_network" in capsys.readouterr().err


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgesplit.cost_models", "info", "alexnet", "--json",
         "--classes", "x86_cpu_1t"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "alexnet"
