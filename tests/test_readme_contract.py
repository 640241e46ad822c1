"""The README's run-directory contract ("Reading a run directory", "Running a sweep") says
what the code writes: its tables are checked against the code's own single sources, so a
metric, a run.json key or a summary column added to the code without its row fails here.

- the unit table is ``cowbench.records.UNITS`` (every metric and its unit), and every metric
  has a row in the metric table;
- every key the code gives run.json has a row in the run.json table: ``RunDir.write_meta``'s
  keywords anywhere in the code, and by name those passed otherwise (the end's ``reason``,
  ``signal`` and ``integrity``, the real backend's ``open_files``, a sweep point's); the
  ``integrity`` block's keys, its checks' and its checksums' are in its row;
- a sweep of one fleet point writes exactly the summary.csv columns the table lists, and its
  point's run.json holds only documented keys, every one the table says every run has, its
  ``overrides`` as the sweep file wrote them;
- ``rel_error`` at zero is what the comparison.csv row says.
"""

from __future__ import annotations

import ast
import io
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from cowbench.compare import compare
from cowbench.records import UNITS, records_frame

ROOT = Path(__file__).resolve().parents[1]


def readme() -> str:
    return (ROOT / "README.md").read_text()


def table(header: str) -> list[tuple[list[str], str]]:
    """The rows of the README table whose header line is ``header``: each row's names (the
    backticked words of its first cell) and its second cell's text."""
    lines = readme().splitlines()
    assert lines.count(header) == 1, header
    start = lines.index(header)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[1] if len(cells) > 1 else ""))
    return rows


def names(header: str) -> set[str]:
    return {n for row, _ in table(header) for n in row}


def test_the_unit_table_is_the_codes_metric_to_unit_table() -> None:
    documented = {m: unit for [unit], text in table("| unit | metrics |")
                  for m in re.findall(r"`([a-z0-9_]+)`", text)}
    assert documented == UNITS


def test_every_metric_has_a_row_in_the_metric_table() -> None:
    assert names("| metric | meaning |") == set(UNITS)


def _write_meta_keywords() -> set[str]:
    """Every keyword any ``write_meta(...)`` call in the packages passes."""
    keys = set()
    for pkg in ("cowbench", "real", "sim"):
        for path in (ROOT / pkg).rglob("*.py"):
            source = path.read_text()
            if "write_meta" not in source:
                continue
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr == "write_meta":
                    keys |= {k.arg for k in node.keywords if k.arg is not None}
    return keys


RUN_JSON = "| key | what |"


def test_every_run_json_key_the_code_writes_has_a_row(tmp_path: Path) -> None:
    from cowbench.runner import _Checks
    from real.measure.integrity import Integrity

    written = _write_meta_keywords()
    assert {"scenario", "status", "real_completed", "real_runs"} <= written  # the scan works
    # not keywords: the end's ``extra`` (cowbench.runner._Run._finish), the real backend's
    # limits, a sweep's point (cowbench.sweep._execute), a run from `cowbench run` (cli)
    written |= {"reason", "signal", "integrity", "open_files", "overrides", "sweep", "point",
                "profile_check", "schema_version", "refused_arrivals"}
    assert written <= names(RUN_JSON)
    # the integrity block's keys (of two real runs: with ``runs``), its checks' and its
    # checksums' are in its row
    text = next(t for row, t in table(RUN_JSON) if row == ["integrity"])
    check, runs = Integrity(), _Checks()
    check._checked("vm:a", tmp_path / "a.qcow2", {"allocated-clusters": 3})
    check.expect("cache:h1/img", tmp_path / "img", "0" * 32, "image:img")
    runs.add(Integrity())
    runs.add(check)
    keys = set(runs.report()) | set(check.checks["vm:a"]) | set(check.checksums["cache:h1/img"])
    assert "runs" in keys and "before_from" in keys
    assert {k for k in keys if f"`{k}`" not in text} == set()


def test_rel_error_at_zero_is_what_the_comparison_row_says() -> None:
    """0 where both are 0 (an exact prediction), ``inf`` where only the measured is 0; a CSV
    reader gets them back as written."""
    def rec(backend: str, values: list[float]) -> pd.DataFrame:
        return records_frame([(backend, math.nan, f"vm:{i}", "host_write_bytes", v, "B", 1, 0)
                              for i, v in enumerate(values)])

    comp = compare(rec("sim", [0.0, 4096.0]), rec("real", [0.0, 0.0]))
    assert comp.rel_error.tolist() == [0.0, math.inf]
    back = pd.read_csv(io.StringIO(comp.to_csv(index=False)))
    assert back.rel_error.tolist() == [0.0, math.inf]
    row = next(t for row, t in table("| file | what |") if row == ["comparison.csv"])
    assert "`rel_error` is `0` where predicted and measured are both 0" in row
    assert "`inf` where only the measured is 0" in row


SUMMARY = "| column | what |"


@pytest.mark.slow  # a sweep of one fleet point in process: 2.7 s
def test_a_sweeps_summary_columns_and_point_run_json_are_the_documented_ones(
        tmp_path: Path) -> None:
    from cowbench.sweep import load_sweep, run_sweep

    from .test_sweep import sweep_file

    sw = load_sweep(sweep_file(tmp_path, {"strategy.cluster_size": ["64KiB"]}, seeds=1))
    summary = run_sweep(sw, tmp_path / "sw", scheduler="inprocess")
    documented = names(SUMMARY)
    fixed = documented - {"override.<path>", "*_d"}
    columns = set(summary.columns)
    overrides = {c for c in columns if c.startswith("override.")}
    days = {c for c in columns if re.search(r"_d(_p\d+)?$", c)}
    assert overrides == {"override.strategy.cluster_size"}
    assert days == {"time_to_full_d", "host_time_to_full_d_p50"}
    assert columns - overrides - days == fixed  # a fleet point has every figure
    assert list(summary.columns[:6]) == ["point", "cell", "seed", "status", "run_dir", "label"]
    # counts are floats, the override keeps its integer type, resolved
    assert summary["arrived_vms"].dtype == "float64"
    assert str(summary["override.strategy.cluster_size"].dtype) == "Int64"
    assert summary["override.strategy.cluster_size"].tolist() == [65536]
    # the point's run.json: documented keys only, its overrides as the sweep file wrote them
    meta = json.loads((tmp_path / "sw" / "points" / "p0000" / "run.json").read_text())
    assert set(meta) <= names(RUN_JSON)
    rows = [row for row, _ in table(RUN_JSON)]
    always = {n for row in rows[:rows.index(["workload_notes"]) + 1] for n in row}
    assert always - {"reason", "signal"} <= set(meta)  # "every run has those down to ..."
    assert meta["overrides"] == {"strategy.cluster_size": "64KiB"}
    assert meta["schema_version"] == 1 and meta["point"] == "p0000"
    assert meta["scenario"].keys() == {"name", "hash"} and len(meta["scenario"]["hash"]) == 16
