"""``benchmarks/runtime_tables.py``: the tables of docs/runtime.md from the committed
reports, the bar as given (0 included), no table from no readable report, and the rows and
counts of small reports built by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import runtime_tables
from benchmarks.runtime_tables import demo_table, main, validate_table

QUIET = Path(__file__).resolve().parents[1] / "benchmarks/results/runtime/validate_2026-11-26_quiet"


def test_the_committed_validate_reports_give_docs_summary(capsys) -> None:
    assert runtime_tables.main(["validate", str(QUIET)]) == 0
    out = capsys.readouterr().out
    assert "* onnxruntime: end-to-end within 10% in 15 of 15 runs; median 2.0%" in out
    assert "* torch: end-to-end within 10% in 14 of 15 runs; median 4.6%" in out
    docs = (QUIET.parents[3] / "docs/runtime.md").read_text()
    for line in out.splitlines():
        if line.startswith("* "):
            assert line in docs, line


def test_a_bar_of_zero_is_taken_as_given(capsys) -> None:
    assert runtime_tables.main(["validate", str(QUIET), "--bar", "0"]) == 0
    out = capsys.readouterr().out
    assert "within 0% in 0 of 15 runs" in out  # no run is exact


@pytest.mark.parametrize("bar", ["-0.1", "nan", "inf"])
def test_a_bad_bar_names_the_option_and_the_value(bar: str, capsys) -> None:
    with pytest.raises(SystemExit) as err:
        runtime_tables.main(["validate", str(QUIET), "--bar", bar])
    assert err.value.code == 2 and f"--bar = {float(bar)!r}" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["validate", "demo"])
def test_no_readable_report_is_an_error(tmp_path: Path, kind: str, capsys) -> None:
    name = "ort_alexnet_5.json" if kind == "validate" else "demo_p0_s0.json"
    (tmp_path / name).write_text("")  # a run that failed before writing
    assert runtime_tables.main([kind, str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "empty, left out" in err and f"no {kind} reports" in err
    shutil.copy(QUIET / "ort_alexnet_5.json", tmp_path / "ort_alexnet_5.json")
    if kind == "validate":
        assert runtime_tables.main([kind, str(tmp_path)]) == 0


def _validate(network: str, engine: str, rate: float, e2e: float) -> dict:
    return {
        "network": network,
        "engine": engine,
        "device_class": "x86_cpu_1t_ort" if engine == "onnxruntime" else "x86_cpu_1t_torch",
        "rate_mbps": rate,
        "median_abs_rel_error": e2e,
        "median_abs_rel_error_components": {
            "head_s": 0.01,
            "transfer_s": 0.02,
            "tail_s": None,
            "end_to_end_s": e2e,
        },
        "median_abs_rel_error_cpu_vs_cpu": {"end_to_end_s": e2e / 2},
        "load_average_1m": 0.4,
        "date": "2026-11-26T06:29:21Z",
    }


def test_validate_table_rows_and_counts() -> None:
    reps = [
        _validate("vgg16", "onnxruntime", 5, 0.02),
        _validate("resnet18", "onnxruntime", 20, 0.12),
        _validate("resnet18", "torch", 20, -0.05),
        _validate("resnet18", "onnxruntime", 5, 0.10),
    ]
    out = validate_table(reps, bar=0.10)
    rows = [r for r in out.splitlines() if r.startswith("| resnet18") or r.startswith("| vgg")]
    # shipped order of networks, then engine, then rate
    assert [r.split(" | ")[0:3] for r in rows] == [
        ["| resnet18", "onnxruntime (`x86_cpu_1t_ort`)", "5"],
        ["| resnet18", "onnxruntime (`x86_cpu_1t_ort`)", "20"],
        ["| resnet18", "torch (`x86_cpu_1t_torch`)", "20"],
        ["| vgg16", "onnxruntime (`x86_cpu_1t_ort`)", "5"],
    ]
    assert "| 12.0% | 1.0% | 2.0% | - | 6.0% | 0.4 | 06:29 |" in out  # absent tail: "-"
    # 0.10 is within a bar of 0.10; |-0.05| counts as 5%
    assert "* onnxruntime: end-to-end within 10% in 2 of 3 runs; median 10.0%, worst 12.0%" in out
    assert "* torch: end-to-end within 10% in 1 of 1 runs" in out


def _side(p50: float, mean: float) -> dict:
    return {"p50_s": p50, "p90_s": 2 * mean, "mean_s": mean, "deadline_miss_rate": 0.05}


def _demo(seed: int, measured: dict, sim: dict, rank_m: list, rank_s: list) -> dict:
    rules = {}
    for rule in ("policy", "neurosurgeon"):
        rules[rule] = {
            "measured": _side(*measured[rule]),
            "slotted_sim": _side(*sim[rule]),
            "cost_model_replay": _side(*sim[rule]),
            "offloaded": {
                "p50_s": {"measured": 0.2, "slotted_sim": None, "cost_model_replay": 0.19}
            },
            "median_abs_rel_error": {"slotted_sim": 0.1, "cost_model_replay": 0.05},
        }
    return {
        "policy": f"runs/quality/ppo-default-seed{seed}/policy",
        "seed": seed,
        "tasks": 100,
        "rules": rules,
        "ranking_by_mean_latency": {"measured": rank_m, "slotted_sim": rank_s},
        "ranking_by_p50": {"measured": rank_m, "slotted_sim": rank_m},
        "_file": f"demo_p0_s{seed}.json",
    }


def test_demo_table_counts_the_bars_and_the_rankings() -> None:
    a = _demo(0, {"policy": (0.076, 0.1), "neurosurgeon": (0.040, 0.2)},
              {"policy": (0.076, 0.1), "neurosurgeon": (0.076, 0.2)},
              ["policy", "neurosurgeon"], ["policy", "neurosurgeon"])  # fmt: skip
    b = _demo(1, {"policy": (0.080, 0.3), "neurosurgeon": (0.070, 0.2)},
              {"policy": (0.076, 0.1), "neurosurgeon": (0.076, 0.2)},
              ["neurosurgeon", "policy"], ["policy", "neurosurgeon"])  # fmt: skip
    out = demo_table([a, b], bar=0.15)
    assert "| ppo-default-seed0 | 0 | 100 | neurosurgeon | 40 / 76 / 76 | +90% |" in out
    assert "| 200 / - / 190 |" in out  # an empty side of the offloaded medians
    # +0%, +90%, -5%, +9%: three of four within 15%
    assert "within 15% of the measured one: 3 of 4 rule-runs" in out
    ranks = "by mean latency, simulator against measured: the same in 1 of 2 runs; by p50: 2 of 2"
    assert ranks in out
    # reports from before the decision clock are the arrival clock's
    assert "* arrival clock: slotted simulator's p50 within 15%" in out
    assert "| arrival | - |" in out


def test_demo_table_counts_each_clock_apart_and_shows_the_from_decision_figures() -> None:
    a = _demo(0, {"policy": (0.076, 0.1), "neurosurgeon": (0.040, 0.2)},
              {"policy": (0.076, 0.1), "neurosurgeon": (0.076, 0.2)},
              ["policy", "neurosurgeon"], ["policy", "neurosurgeon"])  # fmt: skip
    b = _demo(1, {"policy": (0.120, 0.3), "neurosurgeon": (0.110, 0.2)},
              {"policy": (0.118, 0.1), "neurosurgeon": (0.112, 0.2)},
              ["neurosurgeon", "policy"], ["policy", "neurosurgeon"])  # fmt: skip
    b["clock"] = "slot"
    for r in b["rules"].values():
        r["from_decision"] = {"p50_s": {"measured": 0.036, "slotted_sim": 0.034},
                              "median_abs_rel_error": 0.125}  # fmt: skip
    out = demo_table([a, b], bar=0.15)
    assert "| slot | 36 / 34, 12.5% |" in out and "| arrival | - |" in out
    assert "* arrival clock: slotted simulator's p50 within 15% of the measured one: 1 of 2" in out
    assert "* slot clock: slotted simulator's p50 within 15% of the measured one: 2 of 2" in out
    assert (
        "* slot clock: ranking of the rules by mean latency, simulator against measured: "
        "the same in 0 of 1 runs; by p50: 1 of 1" in out
    )


def test_main_reads_a_directory_and_refuses_an_empty_one(tmp_path: Path, capsys) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    assert "no validate reports" in capsys.readouterr().err
    (tmp_path / "onnxruntime_resnet18_20.json").write_text(
        json.dumps(_validate("resnet18", "onnxruntime", 20, 0.03))
    )
    (tmp_path / "onnxruntime_vgg16_5.json").write_text("")  # a run still writing
    assert main(["validate", str(tmp_path)]) == 0
    cap = capsys.readouterr()
    assert "within 10% in 1 of 1 runs" in cap.out
    assert "onnxruntime_vgg16_5.json: empty, left out" in cap.err
    (tmp_path / "onnxruntime_alexnet_5.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"onnxruntime_alexnet_5\.json: not a JSON report"):
        main(["validate", str(tmp_path)])


def test_demo_table_flags_a_slot_run_whose_decision_slots_disagree() -> None:
    # a slot-clock run whose runtime decided (or dropped) other tasks than the replay did
    # compares different things: the table says so beside its from-decision figures
    b = _demo(1, {"policy": (0.120, 0.3), "neurosurgeon": (0.110, 0.2)},
              {"policy": (0.118, 0.1), "neurosurgeon": (0.112, 0.2)},
              ["neurosurgeon", "policy"], ["policy", "neurosurgeon"])  # fmt: skip
    b["clock"] = "slot"
    for rule, r in b["rules"].items():
        r["from_decision"] = {"p50_s": {"measured": 0.036, "slotted_sim": 0.034},
                              "median_abs_rel_error": 0.125}  # fmt: skip
        r["decision_slots_agree"] = rule == "policy"
    out = demo_table([b], bar=0.15)
    assert out.count("| slot | 36 / 34, 12.5% |") == 1  # policy's row: the slots agree
    assert "| slot | 36 / 34, 12.5%, decision slots differ |" in out
