"""The sim-to-real check: predictions are the simulator's formulas; a short run on resnet18
reports every kept candidate, and the paced transfer of the raw image matches."""

from __future__ import annotations

import math

import pytest

from edgesplit.cost_models.devices import load_devices, node_latency
from edgesplit.cost_models.network import load_network
from edgesplit.runtime.partition import kept_candidates
from edgesplit.runtime.validate import format_report, predict, validate


def test_predictions_are_the_simulators_formulas():
    p = load_network("resnet18")
    head, tail = p.split_latency(node_latency(p, load_devices()["x86_cpu_1t"]))
    sent = p.candidate_bytes(wire_bytes_per_element=2.0)
    k = kept_candidates(p, ["x86_cpu_1t"], "float16")[1]
    d = predict(p, k, rate_mbps=20.0, rtt_s=0.01, wire_dtype="float16")
    assert d["head_s"] == pytest.approx(head[k])
    assert d["tail_s"] == pytest.approx(tail[k])
    assert d["transfer_s"] == pytest.approx(sent[k] * 8 / 20e6 + 0.01)
    assert d["end_to_end_s"] == pytest.approx(head[k] + tail[k] + d["transfer_s"])
    last = predict(p, len(p.candidates) - 1, 20.0, 0.01)
    assert last["transfer_s"] == 0 and last["tail_s"] == 0  # all-local sends nothing


def test_validate_reports_every_kept_candidate():
    rep = validate("resnet18", rate_mbps=50.0, rtt_ms=5.0, reps=1, warmup=1)
    p = load_network("resnet18")
    assert [r["index"] for r in rep["candidates"]] == kept_candidates(p, ["x86_cpu_1t"])
    first, last = rep["candidates"][0], rep["candidates"][-1]
    assert first["kind"] == "input" and last["kind"] == "output"
    # the raw image (150528 bytes) at 50 Mbps plus 5 ms: never faster than the link allows;
    # slower only by the stack's overhead and a busy machine (the 15% check of the pacer
    # itself is in test_runtime_link.py)
    assert first["frame_bytes"] > 150528
    assert -0.02 <= first["rel_error"]["transfer_s"] <= 0.5
    assert last["measured"]["transfer_s"] == 0 and last["predicted"]["tail_s"] == 0
    assert math.isfinite(rep["median_abs_rel_error"]) and rep["speed_factor"] > 0
    assert rep["this_hardware"]["cpu"] and rep["profile_hardware"]["cpu"]
    assert "resnet18 at 50.0 Mbps" in format_report(rep)
