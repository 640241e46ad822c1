"""Sweeps: overrides validated like the scenario, the sweep directory, resume, and Dask both
in-process and against a scheduler and a worker started as separate processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from cowbench.errors import ScenarioError
from cowbench.sweep import apply_override, load_sweep, run_sweep, write_summary

from .test_cli import assert_clean_error, cowbench

ROOT = Path(__file__).resolve().parents[1]


def tiny_fleet(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "scenarios" / "fleet-small.yaml").read_text())
    data["duration"] = "4d"
    data["fleet"]["vms"] = 12
    p = tmp_path / "fleet.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def sweep_file(tmp_path: Path, grid: dict[str, Any], seeds: Any = 2, **extra: Any) -> Path:
    tiny_fleet(tmp_path)
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump({"scenario": "fleet.yaml", "grid": grid, "seeds": seeds,
                                 **extra}))
    return p


def test_apply_override_paths() -> None:
    d: dict[str, Any] = {"a": {"b": [{"c": 1}, {"c": 2}]}}
    apply_override(d, "a.b[1].c", 5)
    apply_override(d, "x.y", "64KiB")
    assert d == {"a": {"b": [{"c": 1}, {"c": 5}]}, "x": {"y": "64KiB"}}
    with pytest.raises(ValueError, match=r"no element \[7\]"):
        apply_override(d, "a.b[7].c", 1)


def test_points_are_the_grid_times_the_seeds(tmp_path: Path) -> None:
    sw = load_sweep(sweep_file(tmp_path, {"strategy.cluster_size": ["64KiB", "128KiB"],
                                          "flavors[0].root": ["1GiB", "2GiB", "3GiB"]},
                               seeds=[4, 9]))
    assert len(sw.points) == 12
    assert {p.cell for p in sw.points} == set(range(6))
    last = sw.points[-1]
    assert last.overrides == {"strategy.cluster_size": "128KiB", "flavors[0].root": "3GiB"}
    assert last.seed == 9 and last.scenario.seed == 9
    assert last.scenario.strategy.cluster_size == 131072
    assert last.scenario.fleet is not None and last.scenario.flavors[0].root == 3 << 30


def test_bad_override_values_name_their_key_path(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_sweep(sweep_file(tmp_path, {"strategy.cluster_size": ["64KiB", "3KiB"],
                                         "fleet.bogus": [1]}))
    text = str(info.value)
    assert "fleet.bogus: unknown key" in text
    with pytest.raises(ScenarioError) as info:
        load_sweep(sweep_file(tmp_path, {"strategy.cluster_size": ["64KiB", "3KiB"]}))
    assert "strategy.cluster_size" in str(info.value) and "power of two" in str(info.value)


def test_cli_refuses_a_bad_sweep_cleanly(tmp_path: Path) -> None:
    p = sweep_file(tmp_path, {"hosts[0].count": [0]})
    out = tmp_path / "out"
    assert_clean_error(cowbench("sweep", str(p), "--out", str(out)), "hosts[0].count")
    assert not out.exists()
    p.write_text(yaml.safe_dump({"scenario": "fleet.yaml", "sedes": 2}))
    assert_clean_error(cowbench("sweep", str(p)), "sedes: unknown key")


def _starts(out: Path) -> dict[str, str]:
    return {d.name: json.loads((d / "run.json").read_text())["start"]
            for d in sorted((out / "points").iterdir())}


@pytest.mark.slow
def test_inprocess_sweep_writes_run_dirs_summary_and_resumes(tmp_path: Path,
                                                              private_tmp: Path) -> None:
    sw = load_sweep(sweep_file(tmp_path, {"hosts[0].disk_allocation_ratio": [1.0, 2.0]}))
    out = tmp_path / "sw"
    summary = run_sweep(sw, out, scheduler="inprocess")
    assert list(summary.status) == ["ok"] * 4
    assert set(summary.columns) >= {"point", "seed", "override.hosts[0].disk_allocation_ratio",
                                    "hosts_allocated_bytes", "time_to_full_s"}
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["schema_version"] == 1 and meta["status"] == "ok" and meta["start"] <= meta["end"]
    assert [p["seed"] for p in meta["points"]] == [1, 2, 1, 2]
    run = json.loads((out / "points" / "p0003" / "run.json").read_text())
    assert run["status"] == "ok" and run["seed"] == 2
    assert run["overrides"] == {"hosts[0].disk_allocation_ratio": 2.0}
    assert (out / "points" / "p0003" / "predicted.parquet").exists()
    assert pd.read_parquet(out / "summary.parquet").shape[0] == 4
    bands = pd.read_csv(out / "bands.csv")
    assert {"p50", "p95", "p99", "n", "cell"} <= set(bands.columns) and (bands.n == 2).all()
    # every CSV names the cell by its knobs, and gives days beside seconds
    assert set(bands["label"]) == {"ratio 1", "ratio 2"}
    assert (bands["override.hosts[0].disk_allocation_ratio"].isin([1.0, 2.0])).all()
    assert (bands["t_d"] * 86400 == bands["t_s"]).all()
    ttf = pd.read_csv(out / "time_to_full.csv")
    assert list(ttf["label"]) == ["ratio 1", "ratio 2"]
    assert (ttf["duration_d"] == 4.0).all() and (ttf["seeds_needed"] == 6).all()
    assert "time_to_full_d" in summary.columns and list(summary["label"])[0] == "ratio 1"
    # a point left unfinished is redone; finished ones are kept as they are
    before = _starts(out)
    run["status"] = "interrupted"
    (out / "points" / "p0001" / "run.json").write_text(json.dumps(run))
    (out / "points" / "p0002" / "run.json").unlink()
    time.sleep(1.1)  # run.json's start has one-second resolution
    again = run_sweep(sw, out, scheduler="inprocess")
    after = _starts(out)
    assert list(again.status) == ["ok"] * 4
    assert [k for k in before if before[k] != after[k]] == ["p0001", "p0002"]
    assert list(private_tmp.iterdir()) == []  # Dask's scratch and lock files are gone


def test_a_different_sweep_in_the_same_directory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "sw"
    run_sweep(load_sweep(sweep_file(tmp_path, {}, seeds=1)), out, scheduler="inprocess")
    other = load_sweep(sweep_file(tmp_path, {}, seeds=[5]))
    with pytest.raises(Exception, match="different sweep"):
        run_sweep(other, out, scheduler="inprocess")


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """A Dask scheduler and two workers, started as separate processes on loopback."""
    bindir = Path(sys.executable).parent
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file",
                               str(sched_file)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True, env=env)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen(
            [str(bindir / "dask"), "worker", address, "--host", "127.0.0.1", "--nworkers", "2",
             "--nthreads", "1", "--no-dashboard"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, env=env))
        yield address
    finally:
        for p in reversed(procs):
            os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.mark.slow
def test_sweep_on_a_separately_started_scheduler(tmp_path: Path, dask_cluster: str) -> None:
    p = sweep_file(tmp_path, {"strategy.cluster_size": ["64KiB", "256KiB"]}, seeds=1)
    out = tmp_path / "sw"
    proc = cowbench("sweep", str(p), "--out", str(out), "--scheduler", dask_cluster)
    assert proc.returncode == 0, proc.stderr
    assert "2 of 2 points ok" in proc.stdout
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.status) == ["ok", "ok"]
    small, big = summary.hosts_allocated_bytes
    assert big > small  # 256 KiB clusters allocate more for the same small random writes


@pytest.mark.slow
def test_unreachable_scheduler_is_a_clean_error(tmp_path: Path) -> None:
    p = sweep_file(tmp_path, {}, seeds=1)
    proc = cowbench("sweep", str(p), "--out", str(tmp_path / "o"), "--scheduler",
                    "tcp://127.0.0.1:9")
    assert_clean_error(proc, "cannot reach the Dask scheduler")
    assert not (tmp_path / "o").exists()  # reached before anything is written


@pytest.mark.parametrize("args, needle", [
    (["--scheduler", "bogus"], "--scheduler bogus: not local, inprocess or a scheduler's "
                               "address such as tcp://HOST:8786 (missing port number"),
    (["--scheduler", "foo://h:1"], "unknown protocol 'foo'"),
    (["--scheduler", "tcp://h"], "--scheduler tcp://h: not local"),
    (["--out", "afile"], "afile: exists and is not a directory"),  # run --out's checks
    (["--out", "afile/sub"], "afile/sub: cannot create the sweep directory there: Not a "
                             "directory"),
])
def test_bad_scheduler_or_out_is_refused_before_anything_is_written(
        tmp_path: Path, args: list[str], needle: str) -> None:
    """Before, --scheduler bogus failed (exit 1, 'sweep failed: ValueError: missing port
    number') leaving sweep.json and points/, and --out naming a file exited 1."""
    p = sweep_file(tmp_path, {}, seeds=1)
    (tmp_path / "afile").write_text("")
    args = [str(tmp_path / a) if a.startswith("afile") else a for a in args]
    before = sorted(tmp_path.iterdir())
    ran = cowbench("sweep", str(p), *(["--out", str(tmp_path / "o")] if "--out" not in args
                                      else []), *args)
    assert_clean_error(ran, needle)
    assert len([ln for ln in ran.stderr.splitlines() if not ln.startswith("warning: ")]) == 1
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.slow
def test_cli_sweep_on_a_local_cluster_leaves_no_process(tmp_path: Path,
                                                        private_tmp: Path) -> None:
    p = sweep_file(tmp_path, {"fleet.migrations.kind": ["live", "cold"]}, seeds=1)
    out = tmp_path / "sw"
    proc = cowbench("sweep", str(p), "--out", str(out), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["override.fleet.migrations.kind"]) == ["live", "cold"]
    # a cold migration copies the overlay file (holes and metadata too): never less than live
    live, cold = summary.migration_transfer_bytes_total
    assert cold >= live
    again = cowbench("sweep", str(p), "--out", str(out))  # nothing left to do
    assert again.returncode == 0 and "2 of 2 points ok" in again.stdout
    left = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True, check=False)
    assert left.stdout == ""
    # nor a file: Dask's scheduler kept dask-scratch-space/{global,purge}.lock in $TMPDIR
    assert list(private_tmp.iterdir()) == []


@pytest.mark.slow  # a sweep run twice: 1.3 s of CPU, 2.8-3.1 s wall
def test_a_finished_sweep_without_time_series_resumes_to_nothing(tmp_path: Path) -> None:
    """Resuming a finished sweep of plain (non-fleet) scenarios redoes nothing and fails not."""
    import yaml

    from cowbench.sweep import load_sweep, run_sweep

    from .conftest import small_dict

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(small_dict()))
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"scenario": "tiny.yaml", "seeds": 1,
                                    "grid": {"strategy.cluster_size": ["64KiB", "1MiB"]}}))
    out = tmp_path / "sweep"
    first = run_sweep(load_sweep(spec), out, "inprocess", 1)
    again = run_sweep(load_sweep(spec), out, "inprocess", 1)
    assert (first.status == "ok").all() and (again.status == "ok").all()


def test_a_grid_with_exclusions_explicit_points_and_zipped_axes(tmp_path: Path) -> None:
    """A grid with the cells the model refuses excluded (the exact fleet model takes at most
    2e7 writes), a whole strategy listed as a point, and zipped keys advancing together."""
    sw = load_sweep(sweep_file(
        tmp_path, {"fleet.model": ["fluid", "exact"], "fleet.vms": [20, 100000],
                   "hosts[0].capacity_bytes": ["8GiB", "16GiB"], "hosts[0].count": [2, 4]},
        seeds=1, exclude=[{"fleet.model": "exact", "fleet.vms": 100000}],
        points=[{"strategy": {"kind": "qcow2_overlay", "cluster_size": "2MiB"}}],
        zip=[["hosts[0].capacity_bytes", "hosts[0].count"]]))
    cells = [p.overrides for p in sw.points]
    assert len(cells) == 2 * 2 * 2 - 2 + 1
    assert {"fleet.model": "exact", "fleet.vms": 100000,
            "hosts[0].capacity_bytes": "8GiB", "hosts[0].count": 2} not in cells
    assert all((c.get("hosts[0].capacity_bytes"), c.get("hosts[0].count"))
               in (("8GiB", 2), ("16GiB", 4)) for c in cells[:-1])
    assert cells[-1] == {"strategy": {"kind": "qcow2_overlay", "cluster_size": "2MiB"}}
    # a whole strategy per point: its other fields take their defaults
    last = sw.points[-1].scenario.strategy
    assert last.cluster_size == 2 << 20 and last.extended_l2 is False


def test_summary_knob_columns_cover_whole_sections_and_keep_their_type(
        tmp_path: Path) -> None:
    """sweeps/strategies.yaml's form: a grid over strategy keys, then whole strategies as
    points. Each point's knobs are the key paths it sets, as resolved (bytes), so grouping by
    ``override.strategy.kind`` keeps the whole-strategy points (it dropped them: their kind was
    only in a JSON ``override.strategy`` column), and an integer knob that some points lack
    stays an integer (``16384``, not ``16KiB`` as written nor ``16384.0``)."""
    spec = tmp_path / "strategies.yaml"
    spec.write_text(yaml.safe_dump({
        "scenario": str(ROOT / "scenarios" / "quickstart.yaml"), "seeds": 1,
        "grid": {"strategy.kind": ["qcow2_overlay"], "strategy.cluster_size": ["16KiB"]},
        "points": [{"strategy": {"kind": "snapshot_chain", "chain_depth": 2,
                                 "extended_l2": True}},
                   {"strategy": {"kind": "full_copy"}},
                   {"strategy": {"cluster_size": "64KiB"}}]}))
    sw = load_sweep(spec)
    out = tmp_path / "out"
    out.mkdir()
    summary = write_summary(sw, out, {p.id: {"status": "failed"} for p in sw.points})
    assert len(summary) == 4
    for table in (summary, pd.read_csv(out / "summary.csv"),
                  pd.read_parquet(out / "summary.parquet")):
        kinds = table.groupby("override.strategy.kind").size().to_dict()
        # the last point names no kind: the default one, filled in
        assert kinds == {"qcow2_overlay": 2, "snapshot_chain": 1, "full_copy": 1}
    assert str(summary["override.strategy.cluster_size"].dtype) == "Int64"
    assert summary["override.strategy.cluster_size"].tolist() == [16384, pd.NA, pd.NA, 65536]
    assert str(summary["override.strategy.chain_depth"].dtype) == "Int64"
    assert str(summary["override.strategy.extended_l2"].dtype) == "boolean"
    assert summary["override.strategy.extended_l2"].tolist() == [pd.NA, True, pd.NA, pd.NA]
    as_text = pd.read_csv(out / "summary.csv", dtype=str, keep_default_na=False)
    assert as_text["override.strategy.cluster_size"].tolist() == ["16384", "", "", "65536"]
    assert as_text["override.strategy.chain_depth"].tolist() == ["", "2", "", ""]
    parquet = pd.read_parquet(out / "summary.parquet")
    assert str(parquet["override.strategy.cluster_size"].dtype) == "Int64"
    # the section as written is still there, as before
    assert json.loads(summary["override.strategy"].iloc[2]) == {"kind": "full_copy"}


def test_grid_problems_name_their_key_path(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_sweep(sweep_file(tmp_path, {"strategy.cluster_size": ["4KiB"],
                                         "strategy.extended_l2": [True]}))
    assert "exclude" in str(info.value) and "extended_l2 needs cluster_size" in str(info.value)
    with pytest.raises(ScenarioError) as info:
        load_sweep(sweep_file(tmp_path, {"fleet.vms": [1, 2], "hosts[0].count": [1]},
                              zip=[["fleet.vms", "hosts[0].count"], ["fleet.bogus"]],
                              exclude=[{"fleet.nope": 1}, {"fleet.vms": 3}]))
    text = str(info.value)
    assert "zip[0]: zipped keys need lists of the same length" in text
    assert "zip[1]: 'fleet.bogus' is not a key of grid" in text
    assert "exclude[0].fleet.nope: not a key of grid" in text
    assert "exclude[1]: matches no cell of the grid" in text


def test_a_knob_that_names_nothing_is_said_once_at_its_key(tmp_path: Path) -> None:
    """A typo names no field of any cell: one line at grid.<key>, not one per value with a
    hint to exclude cells; a sweep file without its scenario says that, from validate too."""
    with pytest.raises(ScenarioError) as info:
        load_sweep(sweep_file(tmp_path, {"strategy.cluster_sise": ["64KiB", "2MiB"],
                                         "hosts[3].capacity_bytes": ["8GiB"]}))
    assert info.value.problems == [
        ("grid.hosts[3].capacity_bytes", "no element [3]")]  # the first knob that fails
    with pytest.raises(ScenarioError) as info:
        load_sweep(sweep_file(tmp_path, {"strategy.cluster_sise": ["64KiB", "2MiB"]}))
    assert info.value.problems == [
        ("grid.strategy.cluster_sise", "unknown key: the scenario has no such field")]
    bare = tmp_path / "bare.yaml"
    bare.write_text("grid: {strategy.cluster_size: [64KiB]}\nseeds: 1\n")
    ran = cowbench("validate", str(bare))
    assert ran.code == 2
    assert ran.stderr.strip().splitlines()[-1] == \
        f"error: {bare}: scenario: required key is missing"


def test_dry_run_lists_points_and_validate_checks_a_sweep(tmp_path: Path) -> None:
    p = sweep_file(tmp_path, {"hosts[0].disk_allocation_ratio": [1.0, 1.5]}, seeds=3)
    out = tmp_path / "out"
    proc = cowbench("sweep", str(p), "--out", str(out), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["cell   0: ratio 1; seeds 1, 2, 3",
                                        "cell   1: ratio 1.5; seeds 1, 2, 3",
                                        "6 point(s) in 2 cell(s); nothing run"]
    assert not out.exists()
    proc = cowbench("validate", str(p))
    assert proc.returncode == 0, proc.stderr
    assert "2 cell(s) x 3 seed(s) = 6 point(s)" in proc.stdout and proc.stderr == ""
    p.write_text(yaml.safe_dump({"scenario": "fleet.yaml", "grid": {"fleet.vms": [-1]}}))
    assert_clean_error(cowbench("validate", str(p)), "fleet.vms")


def test_seeds_that_cannot_change_the_figures_are_warned_about(tmp_path: Path) -> None:
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(
        {"scenario": str(ROOT / "scenarios" / "quickstart.yaml"), "seeds": 2}))
    proc = cowbench("validate", str(tmp_path / "sweep.yaml"))
    # a run calibrates by default, and the calibrated model's service times draw from the seed
    assert proc.returncode == 0 and "cannot change some offsets" in proc.stderr
    assert "randrepeat" in proc.stderr and "service times" in proc.stderr
    proc = cowbench("sweep", str(tmp_path / "sweep.yaml"), "--uncalibrated", "--dry-run",
                    "--out", str(tmp_path / "out"))
    assert proc.returncode == 0 and "cannot change the figures" in proc.stderr
    assert "nothing else in the scenario draws from the seed" in proc.stderr
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(
        {"scenario": str(ROOT / "scenarios" / "quickstart.yaml"), "seeds": 1}))
    assert "warning" not in cowbench("validate", str(tmp_path / "one.yaml")).stderr
    # a fleet draws its arrivals from the seed: no warning
    assert "warning" not in cowbench("validate", str(sweep_file(tmp_path, {}, 2))).stderr


def test_a_sweep_says_which_points_predicted_disks_as_ext4_unlooked(tmp_path: Path) -> None:
    """A point whose host's disks are on a filesystem the model has no allocator for (here
    a ``storage_dir`` not on this machine) is predicted as ext4 and says so in its run.json;
    the sweep said nothing of it. Now the command prints one ``warning:`` line per note with
    how many points hold it, and ``cowbench.run_sweep`` warns with it."""
    from .conftest import small_dict

    far = tmp_path / "not-here" / "disks"
    scenario = small_dict(hosts=[{"name": "far", "storage_dir": str(far)}])
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario))
    spec = tmp_path / "sw.yaml"
    spec.write_text(yaml.safe_dump({"scenario": "s.yaml", "seeds": [1, 2],
                                    "grid": {"strategy.cluster_size": ["64KiB"]}}))
    ran = cowbench("sweep", str(spec), "--uncalibrated", "--scheduler", "inprocess",
                   "--out", str(tmp_path / "out"))
    assert ran.returncode == 0, ran.stderr
    said = [ln for ln in ran.stderr.splitlines() if "predicted as ext4" in ln]
    assert said == [f"warning: 2 of 2 points: far: the disks are in storage_dir {far}, not "
                    "on this machine; predicted as ext4 (the model allocates as ext4 or xfs: "
                    "hosts[].filesystem)"], ran.stderr
    # the same scenario on this machine's own filesystem: no warning
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(small_dict()))
    ran = cowbench("sweep", str(spec), "--uncalibrated", "--scheduler", "inprocess",
                   "--out", str(tmp_path / "here"))
    assert ran.returncode == 0 and "predicted as ext4" not in ran.stderr, ran.stderr


def test_a_seed_knob_is_refused_pointing_to_seeds(tmp_path: Path) -> None:
    """``seeds:`` set every point's seed over a grid's ``seed``: the same points ran twice
    under two seed columns. Now the key is refused, naming it and ``seeds:``."""
    p = sweep_file(tmp_path, {"seed": [1, 2]}, seeds=[1, 2])
    out = tmp_path / "out"
    ran = cowbench("sweep", str(p), "--out", str(out))
    assert_clean_error(ran, f"{p}: grid.seed: the seed is no knob: `seeds:` gives every point "
                            "its seed")
    errors = [ln for ln in ran.stderr.splitlines() if not ln.startswith("warning: ")]
    assert len(errors) == 1 and not out.exists()
    p = sweep_file(tmp_path, {}, seeds=1, points=[{"seed": 3}])
    assert_clean_error(cowbench("validate", str(p)), f"{p}: points[0].seed: the seed is no knob")


@pytest.mark.skipif(not __import__("shutil").which("qemu-img"), reason="needs qemu-img")
@pytest.mark.slow
def test_a_scenarios_relative_image_path_is_beside_the_scenario_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep's scenario naming ``path: ../img/base.qcow2`` finds it beside the scenario
    file, as ``cowbench run`` does, from any working directory. Before, every cell failed
    validation with "no such file" against the working directory."""
    from .conftest import small_dict

    (tmp_path / "img").mkdir()
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "sweeps").mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / "img" / "b.qcow2"),
                    "64M"], check=True)
    scenario = small_dict()
    scenario["images"] = [{"name": "img", "format": "qcow2", "path": "../img/b.qcow2"}]
    (tmp_path / "scenarios" / "s.yaml").write_text(yaml.safe_dump(scenario))
    spec = tmp_path / "sweeps" / "sw.yaml"
    spec.write_text(yaml.safe_dump({"scenario": "../scenarios/s.yaml",
                                    "grid": {"strategy.cluster_size": ["64KiB", "128KiB"]}}))
    for cwd in (tmp_path, tmp_path / "sweeps", tmp_path / "img"):
        monkeypatch.chdir(cwd)
        sw = load_sweep(spec)
        assert {str(Path(str(p.scenario.images[0].path)).resolve()) for p in sw.points} == {
            str((tmp_path / "img" / "b.qcow2").resolve())}
        ran = cowbench("validate", str(spec))
        assert ran.returncode == 0 and "every point's scenario is valid" in ran.stdout, ran


@pytest.mark.slow  # a sweep of 4 points in process
def test_an_interrupted_sweep_gives_no_dir_for_points_without_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sweep.json lists the points an interrupted sweep never ran to their end "with no run
    directory": their ``dir`` is null (it named ``points/<id>``, which a reader opening it
    for the point's run.json did not find); a finished point's names its directory."""
    import cowbench.sweep

    real = cowbench.sweep.run_points

    def one_then_ctrl_c(tasks: Any, out: Path, key: str, scheduler: str, workers: Any,
                        done: Any, client: Any = None) -> None:
        def then_stop(pid: str, *result: Any) -> None:
            done(pid, *result)
            raise KeyboardInterrupt

        real(tasks, out, key, scheduler, 1, then_stop, client)

    monkeypatch.setattr(cowbench.sweep, "run_points", one_then_ctrl_c)
    sw = load_sweep(sweep_file(tmp_path, {"hosts[0].disk_allocation_ratio": [1.0, 2.0]}))
    out = tmp_path / "sw"
    with pytest.raises(Exception, match="interrupted"):
        run_sweep(sw, out, scheduler="inprocess")
    points = json.loads((out / "sweep.json").read_text())["points"]
    ok = [p for p in points if p["status"] == "ok"]
    assert len(ok) == 1 and (out / ok[0]["dir"] / "run.json").is_file()
    rest = [p for p in points if p["status"] != "ok"]
    assert {p["status"] for p in rest} == {"interrupted"} and len(rest) == 3
    assert [p["dir"] for p in rest] == [None] * 3
    assert sorted(d.name for d in (out / "points").iterdir()) == [ok[0]["id"]]


@pytest.mark.slow  # a sweep of 4 points in process
def test_a_report_of_an_interrupted_sweep_names_the_points_it_lacks(tmp_path: Path) -> None:
    """Points sweep.json lists with no run directory (an interrupted or killed sweep's) are
    among the skipped ones a report lists: before, it showed the finished part as the whole
    sweep ("20 run(s) in 1 group(s)" of 60, the swept knob gone from its labels)."""
    from cowbench.results import load_sweep as read_sweep

    sw = load_sweep(sweep_file(tmp_path, {"hosts[0].disk_allocation_ratio": [1.0, 2.0]}))
    out = tmp_path / "sw"
    run_sweep(sw, out, scheduler="inprocess")
    meta = json.loads((out / "sweep.json").read_text())
    for entry in meta["points"][2:]:  # as a sweep stopped after its first two points
        entry["status"] = "interrupted"
        for f in sorted((out / entry["dir"]).rglob("*"), reverse=True):
            f.rmdir() if f.is_dir() else f.unlink()
        (out / entry["dir"]).rmdir()
    (out / "sweep.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    res = read_sweep(out)
    assert len(res.points) == 2
    assert [p for p, _ in res.skipped] == ["points/p0002", "points/p0003"]
    assert all("'interrupted': not run to its end" in why for _, why in res.skipped)
