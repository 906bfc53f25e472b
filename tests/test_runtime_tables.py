"""``benchmarks/runtime_tables.py``: the tables of docs/runtime.md from the committed
reports, the bar as given (0 included), and no table from no readable report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks import runtime_tables

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
