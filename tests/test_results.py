"""Reading runs and sweeps back: tidy frames, knobs as columns, amplification, CSV exports."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from cowbench.errors import UsageError
from cowbench.knobs import applies, knob_label, label_order, point_labels
from cowbench.notebook import error_by_point, facts_table, worst_entities
from cowbench.records import COLUMNS, records_frame
from cowbench.results import (
    amplification,
    end_of_run,
    find_points,
    flatten,
    guest_bytes,
    is_sweep_dir,
    load_results,
    load_run,
    load_sweep,
)

from .reportkit import host_series, sim_run, sim_sweep, synthetic_run


def test_load_run_reads_the_contract(tmp_path):
    run = load_run(sim_run(tmp_path / "r"))
    assert run.name == "small"
    assert list(run.predicted.columns) == COLUMNS
    assert run.measured.empty and list(run.measured.columns) == COLUMNS
    assert run.comparison.empty
    assert run.scenario["strategy"]["cluster_size"] == 65536
    assert set(run.records["backend"]) == {"sim"}


def test_records_csv_beside_parquet_is_the_same_table(tmp_path):
    """Point 5 of the issue: records as CSV beside the parquet files, for spreadsheets."""
    out = sim_run(tmp_path / "r")
    parquet = pd.read_parquet(out / "predicted.parquet")
    csv = pd.read_csv(out / "predicted.csv")
    assert list(csv.columns) == COLUMNS
    assert len(csv) == len(parquet) > 0
    assert np.allclose(csv["value"], parquet["value"])
    assert csv["t_s"].isna().sum() == parquet["t_s"].isna().sum()


def test_a_sweep_has_its_knobs_as_columns(tmp_path):
    sweep = load_sweep(sim_sweep(tmp_path / "s"))
    assert sweep.name == "cluster-sizes"
    assert sweep.knobs == ["strategy.cluster_size"]
    assert sorted(sweep.points["strategy.cluster_size"]) == [4096, 65536, 2**20]
    # every record carries its point's resolved knob (bytes, not the "4KiB" written)
    per_point = sweep.records.groupby("point")["strategy.cluster_size"].unique()
    assert {p: list(v) for p, v in per_point.items()} == {
        "cs-1MiB": [2**20], "cs-4KiB": [4096], "cs-64KiB": [65536]}
    assert sweep.skipped == []


def test_a_folder_of_runs_without_sweep_json_is_a_sweep(tmp_path):
    root = sim_sweep(tmp_path / "s", ("4KiB", "64KiB"), sweep_json=False)
    assert is_sweep_dir(root)
    sweep = load_sweep(root)
    assert sweep.name == "s" and len(sweep.points) == 2
    assert sweep.knobs == ["strategy.cluster_size"]


def test_points_may_sit_one_level_deeper(tmp_path):
    sim_run(tmp_path / "s" / "points" / "a")
    sim_run(tmp_path / "s" / "points" / "b", seed=4)
    assert [p.name for p in find_points(tmp_path / "s")] == ["a", "b"]
    # the scenario seed differs but is not a strategy knob or an override: no knobs
    assert load_sweep(tmp_path / "s").knobs == []


def test_points_that_did_not_finish_are_skipped_with_the_reason(tmp_path):
    root = sim_sweep(tmp_path / "s", ("4KiB", "64KiB"))
    meta_path = root / "cs-4KiB" / "run.json"
    meta = json.loads(meta_path.read_text())
    meta.update(status="failed", reason="fio exited with 1")
    meta_path.write_text(json.dumps(meta))
    sweep = load_sweep(root)
    assert sweep.skipped == [("cs-4KiB", "fio exited with 1")]
    assert list(sweep.points["point"]) == ["cs-64KiB"]
    assert set(sweep.records["point"]) == {"cs-64KiB"}


def test_not_a_sweep_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="not a sweep directory"):
        load_sweep(tmp_path / "empty")
    with pytest.raises(UsageError, match="no such directory"):
        load_results(tmp_path / "ghost")


def test_an_unfinished_run_is_not_reported(tmp_path):
    out = sim_run(tmp_path / "r")
    meta = json.loads((out / "run.json").read_text())
    meta.update(status="interrupted", reason="SIGINT")
    (out / "run.json").write_text(json.dumps(meta))
    with pytest.raises(UsageError, match="interrupted.*SIGINT"):
        load_results(out)


def test_knob_labels_are_short_names_in_human_units():
    row = {"fleet.hosts.capacity": 3 * 2**40, "fleet.hosts.disk_allocation_ratio": 1.5,
           "strategy.cluster_size": 65536, "strategy.kind": "qcow2_overlay",
           "strategy.extended_l2": True, "vms.count": 8}
    assert knob_label(row, list(row)) == ("capacity 3 TiB, ratio 1.5, cluster 64 KiB, "
                                          "qcow2_overlay, extended L2 on, count 8")
    assert knob_label({"strategy.cluster_size": "2MiB"}, ["strategy.cluster_size"]) == \
        "cluster 2 MiB"
    assert knob_label({"strategy.cluster_size": 1536}, ["strategy.cluster_size"]) == \
        "cluster 1.5 KiB"
    # a knob that does not apply to the point (NaN) is left out, never shown as a default
    assert knob_label({"strategy.kind": "full_copy", "strategy.cluster_size": math.nan},
                      ["strategy.kind", "strategy.cluster_size"]) == "full_copy"
    assert knob_label({}, []) == "all"
    assert not applies("strategy.cluster_size", "rbd_clone")
    assert applies("strategy.cluster_size", "snapshot_chain") and applies("fleet.vms", "x")


def test_labels_are_made_per_point_and_ordered_by_value():
    points = pd.DataFrame({"point": ["a", "b", "c"],
                           "fleet.hosts.capacity": [4 * 2**40, 3 * 2**40, 4 * 2**40],
                           "fleet.hosts.disk_allocation_ratio": [1.0, 1.0, 1.5]})
    knobs = ["fleet.hosts.capacity", "fleet.hosts.disk_allocation_ratio"]
    labels = point_labels(points, knobs)
    assert labels["b"] == "capacity 3 TiB, ratio 1" and labels["c"] == "capacity 4 TiB, ratio 1.5"
    assert label_order(points, knobs) == ["capacity 3 TiB, ratio 1", "capacity 4 TiB, ratio 1",
                                          "capacity 4 TiB, ratio 1.5"]
    # sizes and durations as a sweep file writes them: by value, not as text (12 before 8)
    written = pd.DataFrame({"point": ["a", "b", "c"],
                            "hosts[0].capacity_bytes": ["8GiB", "12GiB", "16GiB"],
                            "duration": ["30d", "7d", "12h"]})
    assert label_order(written, ["hosts[0].capacity_bytes"]) == [
        "capacity 8 GiB", "capacity 12 GiB", "capacity 16 GiB"]
    assert [x.split()[-1] for x in label_order(written, ["duration"])] == ["12h", "7d", "30d"]


def test_a_strategies_sweep_over_kinds_keeps_only_the_knobs_each_kind_uses(tmp_path):
    """A full copy and an RBD clone are not drawn "at 64 KiB": their cluster size is absent,
    and a knob varies only where it applies (refcount bits, at 16 everywhere it means
    anything, is no knob)."""
    root = tmp_path / "kinds"
    root.mkdir()
    sim_run(root / "a", {"strategy.kind": "qcow2_overlay", "strategy.cluster_size": "16KiB"})
    sim_run(root / "b", {"strategy.kind": "qcow2_overlay", "strategy.cluster_size": "2MiB"})
    sim_run(root / "c", {"strategy.kind": "full_copy"})
    sim_run(root / "d", {"strategy.kind": "rbd_clone"})
    res = load_results(root)
    assert res.knobs == ["strategy.kind", "strategy.cluster_size"]
    pts = res.points.set_index("point")
    assert pd.isna(pts.loc["c", "strategy.cluster_size"])
    assert pd.isna(pts.loc["d", "strategy.cluster_size"])
    assert "strategy.object_size" in pts.columns and pd.isna(pts.loc["a",
                                                                      "strategy.object_size"])
    labels = point_labels(res.points, res.knobs)
    assert labels["c"] == "full_copy" and labels["a"] == "qcow2_overlay, cluster 16 KiB"


def test_knob_columns_keep_their_type_and_whole_sections_count(tmp_path):
    """Points that set a whole strategy (run.json ``overrides: {strategy: {...}}``, as
    sweeps/strategies.yaml's points do) beside a grid's: the kind and the keys the section sets
    are knobs like the grid's, and in every frame an integer knob that some kinds lack is a
    nullable integer (16384, labelled ``16 KiB``; it was float64 16384.0), a switch a nullable
    boolean (it was an object column)."""
    root = tmp_path / "kinds"
    root.mkdir()
    sim_run(root / "a", {"strategy.kind": "qcow2_overlay", "strategy.cluster_size": "16KiB"})
    for name, section in (("b", {"kind": "snapshot_chain", "chain_depth": 2,
                                 "cluster_size": "64KiB", "extended_l2": True}),
                          ("c", {"kind": "full_copy"})):
        sim_run(root / name, {f"strategy.{k}": v for k, v in section.items()})
        meta = json.loads((root / name / "run.json").read_text())
        meta["overrides"] = {"strategy": section}
        (root / name / "run.json").write_text(json.dumps(meta))
    res = load_results(root)
    # the kind, then its own knob (a chain's depth), then the shared ones (cowbench.knobs)
    assert res.knobs[:3] == ["strategy.kind", "strategy.chain_depth", "strategy.cluster_size"]
    for frame in (res.points, res.records, res.comparison):
        if frame.empty:
            continue
        assert str(frame["strategy.cluster_size"].dtype) == "Int64"
        assert str(frame["strategy.chain_depth"].dtype) == "Int64"
        assert str(frame["strategy.extended_l2"].dtype) == "boolean"
    pts = res.points.set_index("point")
    assert pts["strategy.cluster_size"].tolist() == [16384, 65536, pd.NA]
    assert pts["strategy.chain_depth"].tolist() == [pd.NA, 2, pd.NA]
    assert res.points.groupby("strategy.kind").size().to_dict() == {
        "full_copy": 1, "qcow2_overlay": 1, "snapshot_chain": 1}
    per_point = res.records.groupby("point")["strategy.cluster_size"].first()
    assert per_point.dropna().to_dict() == {"a": 16384, "b": 65536}
    assert pd.isna(per_point["c"])
    labels = point_labels(res.points, res.knobs)
    assert labels["a"].startswith("qcow2_overlay, cluster 16 KiB") and labels["c"] == "full_copy"


def test_error_by_point_is_the_median_abs_error_per_metric_and_point():
    comp = pd.DataFrame({"metric": ["m", "m", "m", "n"], "point": ["a", "a", "b", "a"],
                         "rel_error": [0.01, -0.03, 0.5, -0.2]})
    table = error_by_point(comp).set_index("metric")
    assert table.loc["m", "a"] == "2.00%" and table.loc["m", "b"] == "50.00%"
    assert table.loc["n", "a"] == "20.00%" and table.loc["n", "b"] == "-"


def test_worst_entities_ranks_by_the_largest_error_over_time():
    comp = pd.DataFrame({"metric": ["m"] * 4 + ["n"], "entity": ["a", "a", "b", "c", "d"],
                         "rel_error": [0.01, -0.4, 0.2, 0.3, 9.0]})
    assert worst_entities(comp, "m", 2) == ["a", "c"]
    assert worst_entities(comp, "x") == []
    assert worst_entities(comp, "m", None) == ["a", "c", "b"]  # every entity, ranked


def test_flatten_makes_dotted_key_paths():
    assert flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2]}) == {
        "a.b": 1, "a.c.d": "x", "e": "[1, 2]"}


def _rec(rows):
    return records_frame([("sim", t, e, m, v, "B", 1, 0) for t, e, m, v in rows])


def test_end_of_run_prefers_nan_t_and_else_takes_the_last_sample():
    df = _rec([(math.nan, "vm:a", "allocated_bytes", 5.0),
               (1.0, "vm:a", "allocated_bytes", 1.0), (2.0, "vm:a", "allocated_bytes", 2.0),
               (1.0, "vm:b", "allocated_bytes", 7.0), (3.0, "vm:b", "allocated_bytes", 9.0)])
    got = end_of_run(df).set_index("entity")["value"].to_dict()
    assert got == {"vm:a": 5.0, "vm:b": 9.0}


def test_present_only_leaves_out_what_was_gone_at_the_end():
    """vm:b was deleted at t = 2 (every other VM has an end-of-run size, it has none): it
    holds nothing at the end; its I/O, which no VM has at the end, stays; a host with no
    end-of-run figure of its kind anywhere keeps its last sample."""
    df = _rec([(math.nan, "vm:a", "allocated_bytes", 5.0), (1.0, "vm:b", "allocated_bytes", 7.0),
               (1.0, "vm:a", "write_iops", 10.0), (1.0, "vm:b", "write_iops", 20.0),
               (3.0, "host:h", "allocated_bytes", 12.0)])
    full = end_of_run(df)
    assert len(full) == 5  # as ever: every series' last figure
    got = {(e, m): v for e, m, v in end_of_run(df, present_only=True)[
        ["entity", "metric", "value"]].itertuples(index=False)}
    assert got == {("vm:a", "allocated_bytes"): 5.0, ("vm:a", "write_iops"): 10.0,
                   ("vm:b", "write_iops"): 20.0, ("host:h", "allocated_bytes"): 12.0}


def test_guest_bytes_is_bandwidth_over_iops_times_ios():
    f = pd.DataFrame({"write_bw_bytes_per_s": [4096 * 100.0], "write_iops": [100.0],
                      "write_ios": [1000.0]})
    assert guest_bytes(f, "write").tolist() == [4096 * 1000.0]
    assert guest_bytes(f, "read").isna().all()  # a figure not recorded stays absent


def test_amplification_of_a_single_write_into_an_empty_cluster():
    # one 4 KiB write allocated a 64 KiB cluster plus 2 metadata clusters, wrote 64 KiB
    rows = [("vm:a", "allocated_bytes", 3 * 65536), ("vm:a", "host_write_bytes", 65536),
            ("vm:a", "write_ios", 1), ("vm:a", "write_iops", 10),
            ("vm:a", "write_bw_bytes_per_s", 40960),
            ("vm:b", "allocated_bytes", 196608), ("vm:b", "read_ios", 4),  # read-only VM
            ("host:h", "allocated_bytes", 1e9)]
    df = records_frame([("sim", math.nan, e, m, float(v), "B", 1, 0) for e, m, v in rows])
    amp = amplification(df).set_index("entity")
    assert list(amp.index) == ["vm:a", "vm:b"]  # hosts are not VMs
    assert amp.loc["vm:a", "space_amplification"] == pytest.approx(48.0)
    assert amp.loc["vm:a", "write_amplification"] == pytest.approx(16.0)
    assert math.isnan(amp.loc["vm:b", "space_amplification"])  # undefined, never inf or 0


def test_sim_sweep_space_amplification_grows_with_cluster_size(tmp_path):
    sweep = load_sweep(sim_sweep(tmp_path / "s"))
    amp = amplification(sweep.records, by=["strategy.cluster_size"])
    writer = amp[amp["entity"] == "vm:a"].set_index("strategy.cluster_size")
    space = writer["space_amplification"]
    # 4 KiB random writes: bigger clusters hold more unwritten bytes per write
    assert space[4096] < space[65536] < space[2**20]
    assert space[4096] >= 1.0


def test_each_point_carries_its_own_capacity_and_horizon(tmp_path):
    """The capacity line of a group is its own points' capacity, not the first point's."""
    from cowbench.capacity import scenario_capacity

    assert scenario_capacity({"fleet": {"hosts": {"capacity": 4096}}}) == 4096
    assert scenario_capacity({"hosts": [{"name": "a", "capacity_bytes": 8192},
                                        {"name": "b", "capacity_bytes": 4096}]}) == 4096
    assert scenario_capacity({"hosts": [{"name": "a"}]}) is None
    root = tmp_path / "caps"
    root.mkdir()
    for name, cap in (("small", 1 << 30), ("big", 4 << 30)):
        synthetic_run(root / name, host_series(hosts=1, seeds=1, days=2),
                      scenario=f"name: f\nduration: 172800\n"
                               f"fleet: {{hosts: {{capacity: {cap}}}}}\n",
                      overrides={"fleet": {"hosts": {"capacity": cap}}})
    res = load_results(root)
    assert "capacity_bytes" not in res.knobs and "capacity_bytes" not in res.records.columns
    caps = res.points.set_index("point")["capacity_bytes"]
    assert caps["small"] == 1 << 30 and caps["big"] == 4 << 30
    assert res.knobs == ["fleet.hosts.capacity"]
    assert set(res.points["horizon_s"]) == {172800.0}


def test_a_sweep_points_vm_percentiles_count_each_vm_once_at_the_end():
    """A lifecycle samples its VMs over time and deletes some: the sweep's per-VM percentiles
    are of the VMs there at the end, each at its end (they were of every sample of every VM,
    the deleted ones' too)."""
    from cowbench.sweep_points import point_figures

    df = _rec([(0.0, "vm:a", "allocated_bytes", 100.0), (10.0, "vm:a", "allocated_bytes", 200.0),
               (math.nan, "vm:a", "allocated_bytes", 300.0),
               (math.nan, "vm:c", "allocated_bytes", 500.0),
               (0.0, "vm:b", "allocated_bytes", 50.0)])
    got = point_figures(df)
    assert got["vm_allocated_bytes_p50"] == 400.0  # of 300 and 500: b was deleted


def test_the_facts_table_labels_cowbench_source_as_such_not_as_versions() -> None:
    """run.json's tools hold git_commit and git_dirty beside the versions: they read
    "git_commit version" and "git_dirty version"."""
    table = facts_table({"tools": {"fio": "fio-3.33", "git_commit": "139206c",
                                   "git_dirty": False}}).set_index("fact")["value"]
    assert table["fio version"] == "fio-3.33"
    assert table["cowbench git commit"] == "139206c"
    assert table["cowbench source changed since that commit"] == "no"
    assert not any(f.startswith("git_") for f in table.index)


def test_a_list_items_knob_is_its_value_as_written() -> None:
    """A host of ``count: 2`` is two hosts of count 1 once resolved, so a knob on a list's
    item read from the resolved scenario was another host's, or count 1 for every point (a
    capacity sweep over hosts[0].count lost that knob and pooled its points in one group)."""
    from cowbench.knobs import override_knobs

    gib = 1 << 30
    resolved = {"hosts": [{"name": "a-001", "count": 1, "capacity_bytes": 30 * gib},
                          {"name": "a-002", "count": 1, "capacity_bytes": 30 * gib},
                          {"name": "b", "count": 1, "capacity_bytes": 8 * gib}],
                "timeline": {"end_s": 7200.0}, "strategy": {"kind": "qcow2_overlay",
                                                            "cluster_size": 65536}}
    knobs = override_knobs({"hosts[0].count": 2, "hosts[0].capacity_bytes": "30GiB",
                            "hosts[1].capacity_bytes": "8GiB", "timeline.end_s": "2h",
                            "strategy.cluster_size": "64KiB"}, resolved)
    assert knobs == {"hosts[0].count": 2, "hosts[0].capacity_bytes": 30 * gib,
                     "hosts[1].capacity_bytes": 8 * gib, "timeline.end_s": 7200.0,
                     "strategy.cluster_size": 65536}


def test_present_only_leaves_out_deleted_vms_when_none_survives():
    """Every VM deleted before the end (arrivals with lifetimes): none has an end-of-run
    size, the hosts and caches do. Each VM holds nothing at the end, whatever the others do;
    its I/O stays, as do the host's and ``fleet:all``'s last samples."""
    df = _rec([(math.nan, "host:h", "allocated_bytes", 0.0),
               (math.nan, "cache:h", "file_bytes", 0.0),
               (1.0, "vm:a", "allocated_bytes", 7.0), (1.0, "vm:a", "file_bytes", 70.0),
               (2.0, "vm:b", "allocated_bytes", 9.0), (2.0, "vm:b", "file_bytes", 90.0),
               (1.0, "vm:a", "write_iops", 10.0),
               (2.0, "fleet:all", "allocated_bytes", 16.0)])
    got = {(e, m): v for e, m, v in end_of_run(df, present_only=True)[
        ["entity", "metric", "value"]].itertuples(index=False)}
    assert got == {("host:h", "allocated_bytes"): 0.0, ("cache:h", "file_bytes"): 0.0,
                   ("vm:a", "write_iops"): 10.0, ("fleet:all", "allocated_bytes"): 16.0}


def test_present_only_keeps_the_survivor_and_drops_the_deleted_per_run():
    """One VM survives: it keeps its end figure, the deleted one is left out. Two runs
    (seeds) apart: one whose VMs are all gone does not depend on the other's survivor."""
    rows = [("sim", math.nan, "host:h", "allocated_bytes", 5.0, "B", 1, 0),
            ("sim", math.nan, "vm:a", "allocated_bytes", 5.0, "B", 1, 0),
            ("sim", 1.0, "vm:a", "allocated_bytes", 3.0, "B", 1, 0),
            ("sim", 1.0, "vm:b", "allocated_bytes", 7.0, "B", 1, 0),
            ("sim", math.nan, "host:h", "allocated_bytes", 0.0, "B", 2, 0),
            ("sim", 1.0, "vm:a", "allocated_bytes", 4.0, "B", 2, 0)]
    got = {(e, m, sd): v for e, m, v, sd in end_of_run(records_frame(rows), present_only=True)[
        ["entity", "metric", "value", "seed"]].itertuples(index=False)}
    assert got == {("host:h", "allocated_bytes", 1): 5.0, ("vm:a", "allocated_bytes", 1): 5.0,
                   ("host:h", "allocated_bytes", 2): 0.0}
