"""run.json's account of the real backend, read by other tools (README.md, "Reading a run
directory"): the same keys whatever the run's status once the real backend started, and
``real_runs.machine`` joinable with the records' ``replication``. The real backend is stood in
for (its ``execute``), so these run in a moment."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cowbench.backends import get_backend
from cowbench.errors import RunFailed, ToolError
from cowbench.records import records_frame
from cowbench.runner import run_scenario

from .conftest import small_scenario


def _measured(step_done: Any) -> pd.DataFrame:
    for step in ("images", "bases", "disks", "workloads", "measure", "integrity"):
        step_done(f"real:{step}")
    return records_frame([("real", math.nan, "vm:a", "allocated_bytes", 1.0, "B", 1, 0)])


def test_a_failed_real_run_says_what_it_completed_as_an_interrupted_one_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real run that fails before its first step ends: ``real_completed`` was missing
    (the interrupted run's had it), so ``meta["real_completed"]`` raised."""
    def failing(*a: Any, **kw: Any) -> pd.DataFrame:
        raise ToolError(["qemu-io"], 1, "", "write failed: File too large")

    monkeypatch.setattr(get_backend("real"), "execute", failing)
    with pytest.raises(RunFailed):
        run_scenario(small_scenario(), tmp_path / "run", "real")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "failed" and meta["real_completed"] == []
    assert meta["real_runs"] == {"asked": 1, "done": 0, "machine": []}


def test_each_real_runs_machine_names_the_replication_of_its_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``machine[].run`` counts from 1, the records' ``replication`` from 0: each entry also
    has its ``replication``, the join key. The second run starts with none of its steps done
    (run.json kept the first's list until the second's first step ended)."""
    seen: list[list[str]] = []

    def measured(*a: Any, step_done: Any, **kw: Any) -> pd.DataFrame:
        seen.append(json.loads((tmp_path / "run" / "run.json").read_text())["real_completed"])
        return _measured(step_done)

    monkeypatch.setattr(get_backend("real"), "execute", measured)
    run_scenario(small_scenario(), tmp_path / "run", "real", repeat=2)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    machine = meta["real_runs"]["machine"]
    assert [(m["run"], m["replication"]) for m in machine] == [(1, 0), (2, 1)]
    records = pd.read_parquet(tmp_path / "run" / "measured.parquet")
    assert sorted(records.replication.unique()) == [m["replication"] for m in machine]
    assert seen == [[], []]
