"""``ops.csv``: a timeline run's operations, the join of its ``op:<index>-<op>-<vm>`` records
to the scenario (README.md, "A lifecycle over time" and "Reading a run directory"). The index
is the order both backends apply the operations in, not a position in ``timeline.events``:
in nova-lifecycle.yaml a confirm listed before a boot and a run at t=260 is applied after
them, and a reader joining ``timeline.events[index]`` paired three operations with the wrong
event."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pandas as pd

from cowbench.lifecycle import OPS_COLUMNS, expand_timeline, ops_csv
from cowbench.runner import run_scenario
from cowbench.scenario import parse_scenario

from .test_lifecycle import BASE


def _timeline() -> dict[str, Any]:
    """BASE's VM ``a`` migrated cold and confirmed at the instant VM ``c`` boots and runs,
    the confirm listed first; VM ``b`` has no boot event (it boots at t=0, from ``vms``);
    two VMs arrive."""
    d = copy.deepcopy(BASE)
    d["vms"] += [{"name": "b", "image": "img", "flavor": "tiny", "host": "h2"},
                 {"name": "c", "image": "img", "flavor": "tiny", "host": "h2",
                  "workload": "seq"}]
    d["timeline"]["events"] = [
        {"t": 0, "op": "boot", "vm": "a"},
        {"t": 40, "op": "migrate", "vm": "a", "to": "h2", "kind": "cold"},
        {"t": 50, "op": "confirm", "vm": "a"},
        {"t": 50, "op": "boot", "vm": "c"},
        {"t": 50, "op": "run", "vm": "c"},
    ]
    d["timeline"]["arrivals"] = [{"prefix": "x", "count": 2, "rate_per_s": 0.05,
                                  "image": "img", "flavor": "tiny"}]
    return d


def _rows(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype={"event": "Int64", "arrival": "Int64"})


def test_each_operation_names_the_event_or_arrival_it_comes_from() -> None:
    s = parse_scenario(_timeline())
    ops = expand_timeline(s)
    rows = _rows(ops_csv(ops))
    assert tuple(rows.columns) == OPS_COLUMNS
    assert list(rows.entity) == [op.entity for op in ops]
    assert list(rows["index"]) == list(range(len(ops)))
    events = s.timeline.events  # type: ignore[union-attr]
    for row in rows.itertuples():
        if pd.notna(row.event):  # the join: the event's own time, op and VM
            e = events[row.event]
            assert (e.t, e.op, e.vm) == (row.t_s, row.op, row.vm), row
    at50 = rows[rows.t_s == 50]
    # applied boot, run, confirm; listed confirm (2), boot (3), run (4)
    assert list(zip(at50.op, at50.event, strict=True)) == [("boot", 3), ("run", 4),
                                                            ("confirm", 2)]
    assert (at50["index"] != at50.event).all()  # the index is not the event's position
    b = rows[rows.vm == "b"]
    assert list(b.source) == ["vms[1]"] and b.event.isna().all() and b.arrival.isna().all()
    x = rows[rows.vm.str.startswith("x-")]
    assert len(x) and (x.arrival == 0).all() and x.event.isna().all()
    assert set(x.source) == {"timeline.arrivals[0]"}


def test_a_timeline_run_writes_ops_csv_covering_its_op_records(tmp_path: Path) -> None:
    d = _timeline()
    d["workloads"]["seq"]["offsets"] = "model"  # no fio needed
    d["workloads"]["w"]["offsets"] = "model"
    run_scenario(parse_scenario(d), tmp_path / "run", "sim")
    rows = _rows((tmp_path / "run" / "ops.csv").read_text())
    rec = pd.read_parquet(tmp_path / "run" / "predicted.parquet")
    ops = rec[rec.entity.str.startswith("op:")]
    assert set(ops.entity) <= set(rows.entity)
    joined = ops.merge(rows, on="entity")
    assert (joined.t_s_x == joined.t_s_y).all()  # each record at its operation's time


def test_a_run_without_a_timeline_has_no_ops_csv(tmp_path: Path) -> None:
    d = copy.deepcopy(BASE)
    del d["timeline"]
    d["workloads"]["w"]["offsets"] = "model"
    d["workloads"]["seq"]["offsets"] = "model"
    run_scenario(parse_scenario(d), tmp_path / "run", "sim")
    assert not (tmp_path / "run" / "ops.csv").exists()
