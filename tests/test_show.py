"""``cowbench show``: a run's figures (per host and VM, both backends side by side), a fleet's
fullest host and when it fills, a sweep's points; durations in human units."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cowbench.capacity import time_to_full
from cowbench.compare import compare
from cowbench.units import format_bytes, format_duration

from .clirun import cowbench, table_lines, table_rows
from .conftest import small_dict

ROOT = Path(__file__).resolve().parents[1]


def end_figures(run: Path, name: str = "predicted") -> dict[tuple[str, str], float]:
    rec = pd.read_parquet(run / f"{name}.parquet")
    rec = rec[rec.t_s.isna()]
    return {(str(e), str(m)): float(v) for e, m, v in zip(rec.entity, rec.metric, rec.value,
                                                          strict=True)}


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("show")
    scenario = d / "s.yaml"
    scenario.write_text(yaml.safe_dump(small_dict()))
    ran = cowbench("run", str(scenario), "--backend", "sim", "--out", str(d / "run"))
    assert ran.code == 0, ran.stderr
    return d / "run"


def test_a_run_shows_each_host_and_vm(sim_run: Path) -> None:
    ran = cowbench("show", str(sim_run))
    assert ran.code == 0, ran.stderr
    assert "status ok" in ran.stdout and "backend: sim (the model); seed 3" in ran.stdout
    assert "took " in ran.stdout and " from start to end in run.json" in ran.stdout
    fig, rows = end_figures(sim_run), table_rows(ran.stdout)
    for entity in ("host:host1", "cache:host1", "vm:a", "vm:b", "vm:c"):
        assert rows[entity][0] == format_bytes(fig[(entity, "allocated_bytes")]), entity
    for vm in ("a", "b", "c"):
        assert rows[f"vm:{vm}"][1] == format_bytes(fig[(f"vm:{vm}", "file_bytes")])
    # vm a writes, vm b reads: each has its own I/O figures and "-" for what it did not do
    assert rows["a"] == ["-", f"{fig[('vm:a', 'write_iops')]:,.0f}", "-", "-",
                         format_duration(fig[("vm:a", "write_lat_mean_s")]),
                         format_duration(fig[("vm:a", "write_lat_p99_s")])]
    assert rows["b"][:4] == [f"{fig[('vm:b', 'read_iops')]:,.0f}", "-",
                             format_duration(fig[("vm:b", "read_lat_mean_s")]),
                             format_duration(fig[("vm:b", "read_lat_p99_s")])]
    assert rows["b"][4:] == ["-", "-"]
    assert "e+0" not in ran.stdout and "e-0" not in ran.stdout


def test_took_says_what_it_measured_and_names_the_profile_check_before_it(
        sim_run: Path, tmp_path: Path) -> None:
    """run.json's start to end spans the runner, not the profile check the command made
    before it: a run that took 45 s of wall time said "took 28 s" without saying so."""
    run = tmp_path / "run"
    shutil.copytree(sim_run, run)
    meta = json.loads((run / "run.json").read_text())
    meta.update(start="2026-12-05T11:01:38+00:00", end="2026-12-05T11:02:06+00:00",
                profile_check={"checked": True, "profile": "p.json", "source": "cache",
                               "action": "kept", "probes_moved": 0, "moved": None,
                               "measured": {"measured": True, "probes": [],
                                            "duration_s": 12.0}})
    (run / "run.json").write_text(json.dumps(meta))
    shown = cowbench("show", str(run))
    assert shown.code == 0, shown.stderr
    assert ("took 28 s from start to end in run.json, not counting the profile check before "
            "it (12 s)") in " ".join(shown.stdout.split())


def test_a_vm_deleted_on_the_way_holds_no_space_at_the_end(tmp_path: Path) -> None:
    """The host's end figure leaves a deleted VM out, so does the table (it listed its size
    when last sampled, and the VMs' rows summed to more than the host); its I/O stays."""
    d = small_dict()
    d["timeline"] = {"events": [{"t": 0, "op": "boot", "vm": v} for v in ("a", "b", "c")]
                     + [{"t": 0, "op": "run", "vm": v} for v in ("a", "b", "c")]
                     + [{"t": 10, "op": "delete", "vm": "a"}]}
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(d))
    ran = cowbench("run", str(scenario), "--backend", "sim", "--out", str(tmp_path / "run"))
    assert ran.code == 0, ran.stderr
    shown = cowbench("show", str(tmp_path / "run"))
    rows = table_rows(shown.stdout)
    assert "vm:a" not in rows and "vm:b" in rows and "vm:c" in rows, shown.stdout
    assert "a" in rows  # its I/O


def test_vms_all_deleted_on_the_way_hold_no_space_at_the_end(tmp_path: Path) -> None:
    """Every VM deleted before the end (arrivals' lifetimes do that): none is listed at the
    end by show, nor counted in a sweep's per-VM percentiles (they were, at their last
    samples' sizes, when no VM had an end figure to tell them apart); their I/O stays."""
    from cowbench.sweep_points import point_figures

    d = small_dict()
    d["timeline"] = {"events": [{"t": 0, "op": "boot", "vm": v} for v in ("a", "b", "c")]
                     + [{"t": 0, "op": "run", "vm": v} for v in ("a", "b", "c")]
                     + [{"t": 10 + i, "op": "delete", "vm": v}
                        for i, v in enumerate(("a", "b", "c"))]}
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(d))
    ran = cowbench("run", str(scenario), "--backend", "sim", "--out", str(tmp_path / "run"))
    assert ran.code == 0, ran.stderr
    shown = cowbench("show", str(tmp_path / "run"))
    rows = table_rows(shown.stdout)
    assert not {"vm:a", "vm:b", "vm:c"} & set(rows) and "host:host1" in rows, shown.stdout
    assert {"a", "b", "c"} <= set(rows)  # their I/O
    figures = point_figures(pd.read_parquet(tmp_path / "run" / "predicted.parquet"))
    assert math.isnan(figures.get("vm_allocated_bytes_p50", math.nan))
    assert "hosts_allocated_bytes" in figures  # the hosts are there at the end


def test_a_vm_that_runs_several_times_shows_each_run_labelled(tmp_path: Path) -> None:
    """A VM that ran w, then s, then w again: a row per run, labelled by its start and
    workload, each with that run's figures (the table showed the last run alone, nothing
    saying which); a VM that ran once keeps one row."""
    d = small_dict()
    d["timeline"] = {"events": [{"t": 0, "op": "boot", "vm": v} for v in ("a", "b")]
                     + [{"t": 0, "op": "run", "vm": "a"}, {"t": 0, "op": "run", "vm": "b"},
                        {"t": 20, "op": "run", "vm": "a", "workload": "s"},
                        {"t": 40, "op": "run", "vm": "a"}]}
    d["vms"] = d["vms"][:2]
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(d))
    ran = cowbench("run", str(scenario), "--backend", "sim", "--out", str(tmp_path / "run"))
    assert ran.code == 0, ran.stderr
    shown = cowbench("show", str(tmp_path / "run"))
    assert shown.code == 0, shown.stderr
    rec = pd.read_parquet(tmp_path / "run" / "predicted.parquet")
    iops = rec[(rec.entity == "vm:a") & (rec.metric == "write_iops")].set_index("t_s").value
    runs = [c for c in table_lines(shown.stdout) if c[0] == "a"]
    assert [r[1] for r in runs] == ["t=0 s w", "t=20 s s", "t=40 s w"], shown.stdout
    assert [r[3] for r in runs] == [f"{iops[t]:,.0f}" for t in (0.0, 20.0, 40.0)]
    assert [c[1] for c in table_lines(shown.stdout) if c[0] == "b"] == ["t=0 s r"]


@pytest.mark.parametrize("name", ["predicted.parquet", "scenario.yaml"])
def test_a_run_missing_what_its_run_json_says_was_made_is_refused(
        sim_run: Path, tmp_path: Path, name: str) -> None:
    """run.json says the model ran: a run directory without its records (or its scenario)
    is damaged, not a run without figures (it showed 'nan VMs' or nothing, and exited 0)."""
    run = tmp_path / "run"
    shutil.copytree(sim_run, run)
    (run / name).unlink()
    for command in ("show", "report"):
        ran = cowbench(command, str(run))
        assert ran.code == 2, (command, ran.stdout, ran.stderr)
        assert ran.stderr.strip() == (f"error: {run}: damaged run directory: run.json says "
                                      f"'sim' was done, but {name} is missing"), command
    assert not (run / "report.html").exists() and not (run / "report").exists()


def fake_measured(sim_run: Path, dest: Path, scale: float) -> Path:
    """A copy of ``sim_run`` as if the real backend had measured every figure x ``scale``."""
    shutil.copytree(sim_run, dest)
    pred = pd.read_parquet(dest / "predicted.parquet")
    meas = pred.assign(backend="real", value=pred.value * scale)
    meas.to_parquet(dest / "measured.parquet", index=False)
    compare(pred, meas).to_csv(dest / "comparison.csv", index=False)
    meta = json.loads((dest / "run.json").read_text())
    (dest / "run.json").write_text(json.dumps({**meta, "backends": ["sim", "real"]}))
    return dest


def test_both_backends_side_by_side(sim_run: Path, tmp_path: Path) -> None:
    run = fake_measured(sim_run, tmp_path / "both", 1.25)
    ran = cowbench("show", str(run))
    assert ran.code == 0, ran.stderr
    fig, rows = end_figures(run), table_rows(ran.stdout)
    alloc, size = fig[("vm:a", "allocated_bytes")], fig[("vm:a", "file_bytes")]
    assert rows["vm:a"] == [format_bytes(alloc), format_bytes(alloc * 1.25),
                            format_bytes(size), format_bytes(size * 1.25)]
    lines = table_lines(ran.stdout)
    i = next(k for k, cells in enumerate(lines) if cells[0] == "a")
    iops = fig[("vm:a", "write_iops")]
    assert lines[i][1:3] == ["model", "-"] and lines[i][3] == f"{iops:,.0f}"
    assert lines[i + 1][:3] == ["", "real", "-"] and lines[i + 1][3] == f"{iops * 1.25:,.0f}"
    # the comparison summary: (p - m) / m = 1 / 1.25 - 1 = -20% for every figure
    assert rows["allocated_bytes"][1:] == ["20.00%", "-20.00%"]


def fleet_run(tmp_path: Path, **hosts: object) -> Path:
    data = yaml.safe_load((ROOT / "scenarios" / "fleet-small.yaml").read_text())
    data["hosts"][0].update(hosts)
    scenario = tmp_path / "fleet.yaml"
    scenario.write_text(yaml.safe_dump(data))
    ran = cowbench("run", str(scenario), "--out", str(tmp_path / "run"))  # the default: sim
    assert ran.code == 0, ran.stderr
    return tmp_path / "run"


def host_series(run: Path) -> dict[str, pd.DataFrame]:
    rec = pd.read_parquet(run / "predicted.parquet")
    rec = rec[rec.entity.str.startswith("host:") & (rec.metric == "allocated_bytes")
              & rec.t_s.notna()]
    return {str(e).removeprefix("host:"): g.sort_values("t_s") for e, g in rec.groupby("entity")}


def test_a_fleet_shows_its_fullest_host_against_capacity(tmp_path: Path) -> None:
    run = fleet_run(tmp_path)
    ran = cowbench("show", str(run))
    assert ran.code == 0, ran.stderr
    series = host_series(run)
    host = max(series, key=lambda h: series[h].value.max())
    g = series[host]
    peak, cap = g.value.max(), 64 * 2**30
    assert (f"fullest host: {host}, peak {format_bytes(peak)} of 64.0 GiB "
            f"({peak / cap:.1%}) after {format_duration(g.t_s[g.value.idxmax()])}") in ran.stdout
    extra, how = time_to_full(g.t_s.to_numpy(float), g.value.to_numpy(float), cap)
    assert how == "extrapolated"
    assert (f"time to full: not full within 20 days; the fullest host at its growth over the "
            f"second half of the run, after about {format_duration(extra)} (extrapolated)"
            ) in ran.stdout
    rows = table_rows(ran.stdout)
    assert rows[host][:2] == [format_bytes(peak), f"{peak / cap:.1%}"]
    assert {"host-001", "host-002", "host-003"} <= set(rows)
    assert "per VM allocated: P50" in ran.stdout and "full by the end" not in ran.stdout


def test_a_fleet_that_fills_says_when(tmp_path: Path) -> None:
    run = fleet_run(tmp_path, capacity_bytes="3GiB", disk_allocation_ratio=20)
    ran = cowbench("show", str(run))
    assert ran.code == 0, ran.stderr
    rec = pd.read_parquet(run / "predicted.parquet")
    ttf = rec[rec.entity.str.startswith("host:") & (rec.metric == "time_to_full_s")]
    assert len(ttf) >= 2, "the scenario is meant to fill hosts"
    first = ttf.loc[ttf.value.idxmin()]
    # the first host to fill, which a planner asks for, not the fullest at the end
    assert (f"time to full: the first host ({str(first.entity).removeprefix('host:')}) after "
            f"{format_duration(first.value)}; {len(ttf)} of 3 host(s) full by the end"
            ) in ran.stdout
    series = host_series(run)
    host = max(series, key=lambda h: series[h].value.max())
    full = float(ttf[ttf.entity == f"host:{host}"].value.iloc[0])
    assert table_rows(ran.stdout)[host][-1] == format_duration(full)


def test_a_fleet_whose_hosts_keep_a_reserve_says_so_wherever_it_states_their_size(
        tmp_path: Path) -> None:
    """10 GiB hosts reserving 2 GiB for themselves: run and show give the 8 GiB left for
    instances and say what was held back; validate gives the disk and the reserve."""
    run = fleet_run(tmp_path, capacity_bytes="10GiB", reserved_host_disk_bytes="2GiB")
    line = "on 3 host(s) of 8.0 GiB for instances (2.0 GiB reserved on each)"
    assert line in cowbench("show", str(run)).stdout
    again = cowbench("run", str(tmp_path / "fleet.yaml"), "--out", str(tmp_path / "again"))
    assert line in again.stdout
    checked = cowbench("validate", str(tmp_path / "fleet.yaml"))
    assert "3 host(s) of 10.0 GiB (2.0 GiB reserved on each);" in checked.stdout
    (tmp_path / "plain").mkdir()
    plain = fleet_run(tmp_path / "plain")  # no reserve: no word of one
    assert "reserved" not in cowbench("show", str(plain)).stdout


@pytest.mark.slow
def test_a_fleet_of_hosts_of_different_sizes_shows_each_against_its_own_disk(
        tmp_path: Path) -> None:
    """A big host (24 GiB) and two small ones (6 GiB, ratio 2.5): the weigher sends VMs to
    the big one until its free disk (no ratio) falls to the small ones' 6 GiB, so the big one
    holds the most bytes and a small one the highest share of its disk."""
    run = fleet_run(tmp_path, name="big", capacity_bytes="24GiB", count=1,
                    disk_allocation_ratio=1)
    data = yaml.safe_load((tmp_path / "fleet.yaml").read_text())
    data["hosts"].append({"name": "small", "count": 2, "capacity_bytes": "6GiB",
                          "disk_allocation_ratio": 2.5})
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(data))
    ran = cowbench("run", str(tmp_path / "fleet.yaml"), "--out", str(tmp_path / "mixed"))
    assert ran.code == 0, ran.stderr
    assert "on 3 host(s) of 6.0 GiB to 24.0 GiB" in ran.stdout
    series = host_series(tmp_path / "mixed")
    cap = {"big": 24 * 2**30, "small-001": 6 * 2**30, "small-002": 6 * 2**30}
    rows = table_rows(ran.stdout)
    for host, g in series.items():
        assert rows[host][:2] == [format_bytes(g.value.max()), f"{g.value.max() / cap[host]:.1%}"]
    fullest = max(series, key=lambda h: series[h].value.max() / cap[h])
    assert series["big"].value.max() > series[fullest].value.max()  # fullest by share of disk
    assert f"fullest host: {fullest}, peak" in ran.stdout
    assert run.is_dir()


def write_sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sw.yaml"
    sweep.write_text(yaml.safe_dump({"scenario": str(ROOT / "scenarios" / "fleet-small.yaml"),
                                     "grid": {"strategy.cluster_size": ["64KiB", "2MiB"]},
                                     "seeds": [1]}))
    return sweep


def test_a_sweep_shows_its_points(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ran = cowbench("sweep", str(write_sweep(tmp_path)), "--out", str(out), "--scheduler",
                   "inprocess")
    assert ran.code == 0, ran.stderr
    assert "backend:         sim" in ran.stdout
    shown = cowbench("show", str(out))
    assert shown.code == 0, shown.stderr
    assert "sweep sw, status ok; 2 point(s): 2 ok" in shown.stdout
    # a fleet's table has no "all hosts" column: no footer explains one
    assert "all hosts" not in shown.stdout and "hosts_used_bytes" not in shown.stdout
    summary = pd.read_csv(out / "summary.csv").set_index("point")
    rows = table_rows(shown.stdout)
    for point, knob in (("p0000", "64KiB"), ("p0001", "2MiB")):
        assert rows[point][:3] == [knob, "1", "ok"]
        assert rows[point][3] == (f"{format_bytes(summary.fullest_host_peak_bytes[point])} "
                                  f"({summary.host_peak_share_max[point]:.1%})")
        assert format_bytes(summary.fleet_allocated_bytes_peak[point]) == rows[point][4]
    # a failed point is counted, and its reason comes from its run.json
    summary_csv = pd.read_csv(out / "summary.csv")
    summary_csv.loc[summary_csv.point == "p0001", "status"] = "failed"
    summary_csv.to_csv(out / "summary.csv", index=False)
    meta = json.loads((out / "points" / "p0001" / "run.json").read_text())
    (out / "points" / "p0001" / "run.json").write_text(
        json.dumps({**meta, "status": "failed", "reason": "no room"}))
    failed = cowbench("show", str(out)).stdout
    assert "2 point(s): 1 ok, 1 failed" in failed and "p0001 failed: no room" in failed
    # without summary.csv (an interrupted sweep), the same table comes from the points
    (out / "summary.csv").unlink()
    again = cowbench("show", str(out)).stdout
    assert table_rows(again)["p0000"] == rows["p0000"]
    assert "2 point(s): 1 ok, 1 failed" in again and "p0001 failed: no room" in again


def _unfinished_sweep(out: Path, statuses: list[str]) -> None:
    """A sweep directory as a sweep that stopped before any point finished leaves it: its
    sweep.json, an empty points/ (an unfinished point has no directory)."""
    (out / "points").mkdir(parents=True)
    points = [{"id": f"p{i:04d}", "cell": i // 2, "seed": 1 + i % 2, "status": status,
               "overrides": {"hosts[0].capacity_bytes": ["8GiB", "12GiB"][i // 2]},
               "dir": f"points/p{i:04d}", **({"reason": "no room"} if status == "failed"
                                              else {})}
              for i, status in enumerate(statuses)]
    (out / "sweep.json").write_text(json.dumps(
        {"schema_version": 1, "name": "cap", "status": "interrupted",
         "reason": "interrupted by signal SIGINT", "points": points,
         "scenario": {"strategy": {"kind": "qcow2_overlay"}}}))


def test_a_sweep_without_a_finished_point_shows_its_state(tmp_path: Path) -> None:
    """Before, show failed with ``internal error (KeyError): 'status'`` and report said "not a
    sweep directory" although sweep.json was there."""
    out = tmp_path / "cap"
    _unfinished_sweep(out, ["failed", "interrupted", "interrupted", "pending"])
    shown = cowbench("show", str(out))
    assert shown.code == 0, shown.stderr
    assert (f"{out}: sweep cap, status interrupted (interrupted by signal SIGINT); 4 point(s): "
            "1 failed, 2 interrupted, 1 pending") in shown.stdout
    rows = table_rows(shown.stdout)
    assert rows["p0000"] == ["8GiB", "1", "failed"]
    assert rows["p0003"] == ["12GiB", "2", "pending"]
    assert "p0000 failed: no room" in shown.stdout
    ran = cowbench("report", str(out))  # nothing to report yet: one line, exit 2
    assert ran.code == 2 and "Traceback" not in ran.stderr, ran
    assert [ln for ln in ran.stderr.splitlines() if not ln.startswith("warning: ")] == [
        f"error: {out}: no finished point yet, nothing to read (1 failed, 2 interrupted, 1 "
        "pending); run the sweep (again) to finish its points"]
    _unfinished_sweep(tmp_path / "again", ["interrupted", "pending"])
    ran = cowbench("report", str(tmp_path / "again"))
    assert ran.code == 2, ran
    assert (f"error: {tmp_path / 'again'}: no finished point yet, nothing to read (1 "
            "interrupted, 1 pending); run the sweep (again) to finish its points") in ran.stderr
    assert not (tmp_path / "again" / "report").exists()


def test_a_partly_finished_sweep_lists_its_unfinished_points(tmp_path: Path) -> None:
    """An interrupted sweep (no summary.csv, unfinished points without a directory) counts
    and lists every point, with every knob: before, "2 point(s): 2 ok" of four, and the
    capacity column gone (it did not vary among the finished points)."""
    sweep = tmp_path / "sw.yaml"
    sweep.write_text(yaml.safe_dump({"scenario": str(ROOT / "scenarios" / "fleet-small.yaml"),
                                     "grid": {"hosts[0].capacity_bytes": ["8GiB", "12GiB"]},
                                     "seeds": [1, 2]}))
    out = tmp_path / "out"
    ran = cowbench("sweep", str(sweep), "--out", str(out), "--scheduler", "inprocess")
    assert ran.code == 0, ran.stderr
    done = table_rows(cowbench("show", str(out)).stdout)
    (out / "summary.csv").unlink()
    meta = json.loads((out / "sweep.json").read_text())
    for entry in meta["points"][2:]:
        entry["status"] = "interrupted"
        shutil.rmtree(out / entry["dir"])
    meta.update(status="interrupted", reason="interrupted by signal SIGINT")
    (out / "sweep.json").write_text(json.dumps(meta))
    shown = cowbench("show", str(out))
    assert shown.code == 0, shown.stderr
    assert "4 point(s): 2 ok, 2 interrupted" in shown.stdout
    rows = table_rows(shown.stdout)
    assert rows["p0000"] == done["p0000"] and rows["p0001"] == done["p0001"]
    assert rows["p0000"][:3] == ["8GiB", "1", "ok"]
    assert rows["p0002"] == ["12GiB", "1", "interrupted", "", "", "", ""]
    assert rows["p0003"][:3] == ["12GiB", "2", "interrupted"]


def test_a_sweep_and_its_point_agree_on_the_fullest_host(tmp_path: Path) -> None:
    """The sweep table's "fullest host" and summary.csv's host_allocated_bytes_max are the
    peak over the run, as the point's own show says it. Before, they held the host's value at
    the end: here 11.8 GiB against the point's "peak 12.2 GiB"."""
    sweep = tmp_path / "sw.yaml"
    sweep.write_text(yaml.safe_dump({"scenario": str(ROOT / "scenarios" / "fleet-small.yaml"),
                                     "grid": {"hosts[0].disk_allocation_ratio": [3.0]},
                                     "seeds": [6]}))
    out = tmp_path / "out"
    ran = cowbench("sweep", str(sweep), "--out", str(out), "--scheduler", "inprocess")
    assert ran.code == 0, ran.stderr
    series = host_series(out / "points" / "p0000")
    peak = max(g.value.max() for g in series.values())
    assert max(g.value.iloc[-1] for g in series.values()) < peak  # it ends below its peak
    summary = pd.read_csv(out / "summary.csv")
    assert summary.host_allocated_bytes_max[0] == peak
    point = cowbench("show", str(out / "points" / "p0000")).stdout
    assert f", peak {format_bytes(peak)} of 64.0 GiB" in point
    assert table_rows(cowbench("show", str(out)).stdout)["p0000"][3] == (
        f"{format_bytes(peak)} ({peak / 2**36:.1%})")


def test_with_hosts_of_different_sizes_a_sweep_names_the_fullest_against_its_own_disk(
        tmp_path: Path) -> None:
    """The host that held most is not the fullest when it has the larger disk: the sweep's
    "fullest host" is the point's own show's (a user's sweep showed 7.8 TiB, a 16 TiB host at
    49%, where the point said big-001 at 62.4%)."""
    scen = yaml.safe_load((ROOT / "scenarios" / "fleet-small.yaml").read_text())
    # placement spreads by free DISK_GB (capacity x ratio): the small hosts take VMs beyond
    # their disks, the big one holds more bytes at a smaller share of its own
    scen["hosts"] = [{"name": "big", "capacity_bytes": "256GiB", "disk_allocation_ratio": 1.0},
                     {"name": "small", "count": 2, "capacity_bytes": "8GiB",
                      "disk_allocation_ratio": 5.0}]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scen))
    sweep = tmp_path / "sw.yaml"
    sweep.write_text(yaml.safe_dump({"scenario": str(tmp_path / "s.yaml"),
                                     "grid": {"fleet.vms": [60]}, "seeds": [2]}))
    out = tmp_path / "out"
    assert cowbench("sweep", str(sweep), "--out", str(out), "--scheduler", "inprocess").code == 0
    series = host_series(out / "points" / "p0000")
    peaks = {h: g.value.max() for h, g in series.items()}
    caps = {"big": 256 * 2**30, "small-001": 8 * 2**30, "small-002": 8 * 2**30}
    top = max(peaks, key=lambda h: peaks[h] / caps[h])
    assert max(peaks, key=lambda h: peaks[h]) != top  # the case: most bytes, not fullest
    summary = pd.read_csv(out / "summary.csv")
    assert summary.fullest_host[0] == top
    assert summary.host_peak_share_max[0] == pytest.approx(peaks[top] / caps[top])
    point = cowbench("show", str(out / "points" / "p0000")).stdout
    assert f"fullest host: {top}, peak {format_bytes(peaks[top])}" in point
    assert table_rows(cowbench("show", str(out)).stdout)["p0000"][3] == (
        f"{format_bytes(peaks[top])} ({peaks[top] / caps[top]:.1%})")


def test_a_folder_of_runs_with_a_failed_one(sim_run: Path, tmp_path: Path) -> None:
    shutil.copytree(sim_run, tmp_path / "one")
    shutil.copytree(sim_run, tmp_path / "two")
    meta = json.loads((tmp_path / "two" / "run.json").read_text())
    (tmp_path / "two" / "run.json").write_text(json.dumps({**meta, "status": "failed",
                                                           "reason": "fio exited with 1"}))
    ran = cowbench("show", str(tmp_path))
    assert ran.code == 0, ran.stderr
    assert "2 point(s): 1 ok, 1 failed" in ran.stdout
    assert "two failed: fio exited with 1" in ran.stdout
    rows = table_rows(ran.stdout)
    fig = end_figures(sim_run)
    assert format_bytes(fig[("host:host1", "allocated_bytes")]) in rows["one"]
    assert rows["two"][-1] == "" and "failed" in rows["two"]


def test_show_refuses_what_is_not_a_run_or_a_sweep(tmp_path: Path) -> None:
    ran = cowbench("show", str(tmp_path / "nope"))
    assert ran.code == 2 and "no such directory" in ran.stderr
    ran = cowbench("show", str(tmp_path))
    assert ran.code == 2 and "neither a run directory" in ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout


@pytest.mark.parametrize("seconds,text", [
    (0, "0 s"), (4.12e-4, "412 us"), (0.0123, "12.3 ms"), (0.9996, "1 s"), (42.5, "42.5 s"),
    (59.99, "1 min"), (90, "1 min 30 s"), (3599.6, "1 h"), (5 * 3600 + 180, "5 h 3 min"),
    (86399.9, "1 day"), (86400 * 12.3, "12 days 7 h"), (6.3072e7, "730 days"),
    (math.nan, "-"), (math.inf, "never"), (-90, "-1 min 30 s"),
])
def test_durations_read_as_people_write_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_validate_prints_a_fleet_duration_in_days() -> None:
    ran = cowbench("validate", str(ROOT / "scenarios" / "fleet-year.yaml"))
    assert ran.code == 0, ran.stderr
    assert "over 365 days" in " ".join(ran.stdout.split()) and "e+0" not in ran.stdout


def test_a_timeline_problem_says_when_in_human_units(tmp_path: Path) -> None:
    data = small_dict(timeline={"events": [{"t": 1728000, "op": "delete", "vm": "a"},
                                           {"t": 1731600, "op": "delete", "vm": "a"}]})
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(data))
    ran = cowbench("validate", str(scenario))
    assert ran.code == 2
    assert "timeline.events[1]: delete of 'a' at t=20 days 1 h: the VM was already deleted" \
        in ran.stderr, ran.stderr


def test_a_failed_run_without_records_shows_why(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({
        "status": "failed", "reason": "qemu-img exited with 1", "backends": ["sim", "real"],
        "seed": 1, "scenario": {"name": "x", "hash": "abc"}}))
    ran = cowbench("show", str(tmp_path))
    assert ran.code == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        f"{tmp_path}: x (id abc), status failed (qemu-img exited with 1)",
        "backend: sim (the model), real (qemu + fio on this machine); seed 1"]


def test_brackets_in_a_reason_are_text_not_markup(tmp_path: Path) -> None:
    """A reason quoting a path in brackets ("[/srv/x]") would be a closing tag to rich."""
    run = tmp_path / "[run]"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({
        "status": "failed", "reason": "cannot write [/srv/x] [bold]", "backends": ["sim"],
        "seed": 1, "scenario": {"name": "x", "hash": "abc"},
        "start": "2026-01-01T00:00:00+00:00", "end": "2026-01-01T00:00:05"}))
    ran = cowbench("show", str(run))
    assert ran.code == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        f"{run}: x (id abc), status failed (cannot write [/srv/x] [bold])",
        "backend: sim (the model); seed 1"]


def test_a_run_directory_with_brackets_prints_as_given(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(small_dict()))
    out = tmp_path / "[/b]" / "run"
    ran = cowbench("run", str(scenario), "--backend", "sim", "--out", str(out))
    assert ran.code == 0, ran.stderr
    assert f"run directory: {out}" in ran.stdout.splitlines()


def test_a_fleet_far_from_full_is_not_extrapolated_beyond_twenty_run_lengths(
        tmp_path: Path) -> None:
    """A short run of a nearly idle fleet grows little: its linear extrapolation says
    thousands of days (a user's 2-day fleet: "full after about 6110 days"), which is no
    forecast; beyond twenty times the run's length the line says so instead."""
    run = fleet_run(tmp_path, capacity_bytes="64TiB")
    ran = cowbench("show", str(run))
    assert ran.code == 0, ran.stderr
    assert ("time to full: not full within 20 days; the fullest host, at its growth over the "
            "second half of the run, not within 20 times the run's length") in ran.stdout
    assert "(extrapolated)" not in ran.stdout


def test_a_sweep_killed_outright_shows_as_abandoned(tmp_path: Path) -> None:
    """sweep.json says ``running`` after a SIGKILL: show asks whether the process that wrote it
    lives (its pid, start time and boot, kept while it runs), as for a run; it said
    "status running" for good (a user's checks)."""
    import subprocess
    import sys

    from cowbench.lease import this_process

    out = tmp_path / "out"
    ran = cowbench("sweep", str(write_sweep(tmp_path)), "--out", str(out), "--scheduler",
                   "inprocess")
    assert ran.code == 0, ran.stderr
    meta = json.loads((out / "sweep.json").read_text())
    assert "process" not in meta  # only while it runs
    gone = subprocess.run([sys.executable, "-c", "import os, json, cowbench.lease as l; "
                           "print(json.dumps(l.this_process()))"], capture_output=True,
                          text=True, check=True)
    for who, said in ((json.loads(gone.stdout), "status abandoned (pid "),
                      (this_process(), "status running;")):
        (out / "sweep.json").write_text(json.dumps({**meta, "status": "running",
                                                    "process": who}))
        shown = cowbench("show", str(out))
        assert shown.code == 0, shown.stderr
        assert said in " ".join(shown.stdout.split()), shown.stdout


def capped_fleet(tmp_path: Path, ratio: float) -> Path:
    """A user's fleet: flavors of 20 GiB root + 2 GiB ephemeral + 1 GiB swap on hosts of 64
    GiB, VMs whose disks grow for 60 days."""
    scenario = capped_scenario(tmp_path, ratio)
    ran = cowbench("run", str(scenario), "--out", str(tmp_path / "run"))
    assert ran.code == 0, ran.stderr
    return tmp_path / "run"


def capped_sweep(tmp_path: Path) -> Path:
    """:func:`capped_fleet` at ratio 1.0 (never fills) and 2.0 (fills), one seed each."""
    sweep = tmp_path / "sw.yaml"
    sweep.write_text(yaml.safe_dump({"scenario": str(capped_scenario(tmp_path, 1.0)),
                                     "grid": {"hosts[0].disk_allocation_ratio": [1.0, 2.0]},
                                     "seeds": [1]}))
    ran = cowbench("sweep", str(sweep), "--out", str(tmp_path / "out"), "--scheduler",
                   "inprocess")
    assert ran.code == 0, ran.stderr
    return tmp_path / "out"


def capped_scenario(tmp_path: Path, ratio: float) -> Path:
    data = {
        "name": "capped", "seed": 1, "duration": "60d",
        "images": [{"name": "ubu", "virtual_size": "2GiB", "format": "qcow2",
                    "synthetic": {"data": [{"offset": 0, "length": "512MiB"}]}}],
        "hosts": [{"name": "h", "count": 3, "capacity_bytes": "64GiB",
                   "disk_allocation_ratio": ratio}],
        "flavors": [{"name": "m", "root": "20GiB", "ephemeral": "2GiB", "swap": "1GiB"}],
        "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB"},
        "fleet": {"vms": 60, "lifetime": {"distribution": "exponential", "mean_s": "30d"},
                  "flavor_mix": {"m": 1}, "image_mix": {"ubu": 1},
                  "classes": {"db": {"share": 1, "write_bytes_per_day": "256MiB",
                                     "growth_bytes_per_day": "128MiB",
                                     "growth_start": 0.5}}}}
    scenario = tmp_path / "capped.yaml"
    scenario.write_text(yaml.safe_dump(data))
    return scenario


def test_a_host_whose_vms_cannot_fill_it_never_fills(tmp_path: Path) -> None:
    """Two VMs of 23 GiB fit a host of 64 GiB, a third does not: their disks and the bases
    hold at most about 51 GiB, so the host never fills however its demand grew ("full after
    about 102 days (extrapolated)" said a linear fit)."""
    run = capped_fleet(tmp_path, 1.0)
    ran = cowbench("show", str(run))
    assert ran.code == 0, ran.stderr
    assert "(extrapolated)" not in ran.stdout
    line = next(x for x in ran.stdout.splitlines() if x.startswith("time to full:"))
    assert line.startswith("time to full: not full within 60 days; never fills: its VMs' "
                           "disks hold at most 51.0 GiB of 64.0 GiB"), line
    rows = table_rows(ran.stdout)
    assert [rows[h][-1] for h in ("h-001", "h-002", "h-003")] == ["never fills"] * 3
    assert all(float(rows[h][3]) <= 2 for h in ("h-001", "h-002", "h-003"))  # VMs at end


def test_an_overcommitted_host_keeps_its_extrapolation(tmp_path: Path) -> None:
    """At ratio 2.0 five such VMs fit a host: their disks can hold more than it has, so
    where it has not filled the extrapolation stands."""
    run = capped_fleet(tmp_path, 2.0)
    ran = cowbench("show", str(run))
    assert ran.code == 0, ran.stderr
    assert "never fills" not in ran.stdout
    assert "time to full: the first host" in ran.stdout


def test_a_sweep_point_whose_hosts_cannot_fill_says_never_fills(tmp_path: Path) -> None:
    """The sweep's "first full" column applies the same ceiling: "never fills" at ratio 1.0
    (two VMs a host), a time at 2.0."""
    out = capped_sweep(tmp_path)
    shown = cowbench("show", str(out))
    assert shown.code == 0, shown.stderr
    rows = table_rows(shown.stdout)
    assert rows["p0000"][0] == "1.0" and rows["p0000"][-2] == "never fills"
    assert rows["p0001"][0] == "2.0" and rows["p0001"][-2].endswith(" h")


@pytest.mark.slow
def test_a_sweeps_integer_knob_prints_as_an_integer(tmp_path: Path) -> None:
    """``chain_depth: 3`` set by one point only: summary.csv's column has a gap, reads back as
    floats, and the table printed ``3.0``; it prints ``3`` (``-`` where a point has none)."""
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(small_dict()))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({
        "scenario": "s.yaml", "seeds": 1, "backend": "sim",
        "grid": {"strategy.kind": ["qcow2_overlay"]},
        "points": [{"strategy": {"kind": "snapshot_chain", "chain_depth": 3}}]}))
    out = tmp_path / "out"
    ran = cowbench("sweep", str(tmp_path / "sw.yaml"), "--out", str(out), "--scheduler",
                   "inprocess")
    assert ran.code == 0, ran.stderr
    shown = cowbench("show", str(out))
    rows = table_rows(shown.stdout)
    assert rows["p0000"][:2] == ["qcow2_overlay", "-"], shown.stdout
    assert rows["p0001"][:2] == ["snapshot_chain", "3"], shown.stdout
