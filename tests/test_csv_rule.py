"""The records' CSV copies (issue 21, "output that scales"): beside a small table always, beside
a large one only with ``--csv``; the parquet files, the contract, always."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

import cowbench.store as store
from cowbench.store import CSV_MAX_ROWS, RunDir

from .clirun import cowbench
from .conftest import small_dict


def test_a_small_table_gets_its_csv_and_a_large_one_only_when_asked(tmp_path: Path) -> None:
    small = pd.DataFrame({"value": range(CSV_MAX_ROWS)})
    large = pd.DataFrame({"value": range(CSV_MAX_ROWS + 1)})
    rd = RunDir.create(tmp_path / "r")
    rd.write_records("predicted", small)
    rd.write_records("measured", large)
    assert sorted(p.name for p in rd.path.iterdir()) == [
        "measured.parquet", "predicted.csv", "predicted.parquet"]
    assert len(pd.read_csv(rd.path / "predicted.csv")) == CSV_MAX_ROWS
    asked = RunDir.create(tmp_path / "asked")
    asked.write_records("measured", large, csv=True)
    assert len(pd.read_csv(asked.path / "measured.csv")) == CSV_MAX_ROWS + 1


@pytest.mark.parametrize("flag", [False, True])
@pytest.mark.slow
def test_run_and_sweep_write_csv_beside_a_large_table_only_with_the_flag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: bool) -> None:
    """Through the CLI: the small scenario's records (dozens of rows) stand in for a large
    table by lowering the threshold below them."""
    monkeypatch.setattr(store, "CSV_MAX_ROWS", 3)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(small_dict()))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({"scenario": "s.yaml", "seeds": 1}))
    extra = ["--csv"] if flag else []
    ran = cowbench("run", str(tmp_path / "s.yaml"), "--backend", "sim", "--out",
                   str(tmp_path / "run"), *extra)
    assert ran.code == 0, ran.stderr
    swept = cowbench("sweep", str(tmp_path / "sw.yaml"), "--out", str(tmp_path / "sweep"),
                     "--scheduler", "inprocess", *extra)
    assert swept.code == 0, swept.stderr
    for run in (tmp_path / "run", tmp_path / "sweep" / "points" / "p0000"):
        assert len(pd.read_parquet(run / "predicted.parquet")) > 3
        assert (run / "predicted.csv").exists() == flag
