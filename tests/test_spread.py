"""``run --repeat N``'s spread (cowbench.spread), the drift probes a run picks (cowbench.drift),
and how the terminal and the report show both: no tools needed."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from cowbench.compare import compare
from cowbench.drift import (
    CHECK_PROBES,
    MAX_PROBES,
    check_probes,
    choose_probes,
    describe,
    distance,
    vm_needs,
)
from cowbench.notebook import (
    WITHIN,
    drift_frame,
    error_summary,
    error_table,
    runs_text,
    uncalibrated_text,
)
from cowbench.profile import Probe
from cowbench.records import records_frame
from cowbench.scenario import parse_scenario
from cowbench.show import print_comparison
from cowbench.spread import (
    SPREAD_COLUMNS,
    real_runs,
    spread_summary,
    spread_table,
)

from .clirun import cowbench
from .conftest import small_dict
from .test_cli import assert_clean_error, write


def records(backend: str, values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """One row per (entity, metric) and run: replication k holds the k-th value."""
    rows = [(backend, math.nan, e, m, v, "1/s", 1, k)
            for (e, m), vs in values.items() for k, v in enumerate(vs)]
    return records_frame(rows)


PRED = records("sim", {("vm:a", "write_iops"): [1050.0], ("vm:b", "write_iops"): [1300.0],
                       ("vm:a", "allocated_bytes"): [100.0]})
MEAS = records("real", {("vm:a", "write_iops"): [900.0, 1000.0, 1100.0],
                        ("vm:b", "write_iops"): [1000.0, 1000.0, 1000.0],
                        ("vm:a", "allocated_bytes"): [0.0, 0.0, 0.0]})


def test_the_spread_of_three_runs_and_which_errors_lie_within_it() -> None:
    comp = compare(PRED, MEAS)
    sp = spread_table(comp, MEAS).set_index(["entity", "metric"])
    assert list(spread_table(comp, MEAS).columns) == SPREAD_COLUMNS
    a = sp.loc[("vm:a", "write_iops")]
    assert a.runs == 3 and a.measured_mean == 1000 and a.measured_min == 900
    assert a.spread == pytest.approx(0.2)  # (1100 - 900) / 1000
    assert a.rel_error == pytest.approx(0.05) and a.within_spread == 1
    b = sp.loc[("vm:b", "write_iops")]  # the runs agree exactly: any error is the model's
    assert b.spread == 0 and b.within_spread == 0
    zero = sp.loc[("vm:a", "allocated_bytes")]  # a mean of 0 has no relative spread, but a
    assert math.isnan(zero.spread) and zero.within_spread == 0  # verdict: 100 is not 0
    # comparison.csv keeps its columns and compares with the mean of the runs
    assert comp.set_index(["entity", "metric"]).loc[("vm:a", "write_iops"), "measured"] == 1000
    summary = spread_summary(spread_table(comp, MEAS)).set_index("metric")
    assert summary.loc["write_iops", "within_spread"] == 1
    assert summary.loc["write_iops", "known"] == 2
    assert real_runs(MEAS) == 3 and real_runs(MEAS[MEAS.replication == 0]) == 1


def test_two_samples_at_one_instant_are_two_rows_never_their_mean() -> None:
    """A lifecycle samples every entity after each operation: a snapshot at t = 60 gives the
    host's bytes before and after it, both at 60 s. The k-th sample of the model stands beside
    the k-th measured (of each run's, averaged over the runs), in the order recorded."""
    def at_60(backend: str, runs: list[tuple[float, float]]) -> pd.DataFrame:
        rows = [(backend, 60.0, "host:h1", "allocated_bytes", v, "B", 1, k)
                for k, pair in enumerate(runs) for v in pair]
        return records_frame(rows)

    pred = at_60("sim", [(270.0, 151.0)])
    meas = at_60("real", [(268.0, 150.0), (272.0, 154.0)])
    comp = compare(pred, meas)
    assert comp.predicted.tolist() == [270.0, 151.0]
    assert comp.measured.tolist() == [270.0, 152.0]  # each sample's mean over the two runs
    sp = spread_table(comp, meas)
    assert sp.measured_min.tolist() == [268.0, 150.0]
    assert sp.measured_max.tolist() == [272.0, 154.0]
    assert sp.spread.round(4).tolist() == [round(4 / 270, 4), round(4 / 152, 4)]
    table = error_table(comp, sp)  # the report's table: one row per sample, each its spread
    assert len(table) == 2 and table["real spread"].nunique() == 2


def test_the_terminal_table_shows_the_spread_or_says_it_rests_on_one_run() -> None:
    comp = compare(PRED, MEAS)
    console = Console(width=200, record=True)
    print_comparison(comp, console, spread_table(comp, MEAS), 3)
    text = console.export_text()
    assert "the mean of 3 real runs" in text and "within" in text
    row = next(line for line in text.splitlines() if "write_iops" in line)
    assert "1 of 2" in row and "10.00%" in row  # median spread of 20% and 0%
    one = MEAS[MEAS.replication == 0]
    console = Console(width=200, record=True)
    print_comparison(compare(PRED, one), console, None, 1)
    text = console.export_text()
    assert "from one real run" in text and "within" not in text


def test_an_error_under_the_floor_or_a_zero_predicted_as_zero_is_within_spread() -> None:
    """Two runs that measured host bytes alike (spread 0) and a model 0.02% off: exact to the
    measurement's resolution, within (the 0.1% floor); 0.5% off is not. A read-only VM's
    host bytes written, 0 in every run and predicted 0, is within too, so the count covers
    every figure of the metric: "3 of 3" beside n = 3, never "0 of 2" beside 3 (the tester's
    "0 of 3" with n = 4)."""
    pred = records("sim", {("vm:a", "host_write_bytes"): [861_657_088.0],
                           ("vm:b", "host_write_bytes"): [0.0],
                           ("vm:c", "host_write_bytes"): [861_657_088.0 * 1.005]})
    meas = records("real", {("vm:a", "host_write_bytes"): [861_493_248.0] * 2,
                            ("vm:b", "host_write_bytes"): [0.0, 0.0],
                            ("vm:c", "host_write_bytes"): [861_657_088.0] * 2})
    comp = compare(pred, meas)
    sp = spread_table(comp, meas).set_index("entity")
    assert sp.loc["vm:a", "spread"] == 0 and sp.loc["vm:a", "within_spread"] == 1
    assert sp.loc["vm:b", "within_spread"] == 1
    assert sp.loc["vm:c", "within_spread"] == 0
    summary = error_summary(comp, sp.reset_index()).set_index("metric")
    assert summary.loc["host_write_bytes", "figures"] == 3
    assert summary.loc["host_write_bytes", WITHIN] == "2 of 3"
    assert "0.1% of the mean" in runs_text(2)


def test_a_spread_file_written_under_the_old_rule_is_read_with_the_new_one(tmp_path) -> None:
    """The tester's --repeat 2 run was written when within_spread was |rel_error| <= spread:
    host bytes written 0.02% off two identical runs said "no", a read-only VM's 0 bytes no
    verdict. Read again, the stored numbers are judged by the rule the headers state."""
    from cowbench.results import load_run

    from .reportkit import synthetic_run

    pred = records("sim", {("vm:a", "host_write_bytes"): [861_657_088.0],
                           ("vm:b", "host_write_bytes"): [0.0]})
    meas = records("real", {("vm:a", "host_write_bytes"): [861_493_248.0] * 2,
                            ("vm:b", "host_write_bytes"): [0.0, 0.0]})
    run = synthetic_run(tmp_path / "run", pred, meas)
    old = spread_table(compare(pred, meas), meas)
    old["within_spread"] = [0.0, math.nan]  # as the earlier rule wrote them
    old.to_csv(run / "spread.csv", index=False)
    sp = load_run(run).spread.set_index("entity")
    assert sp.loc["vm:a", "within_spread"] == 1 and sp.loc["vm:b", "within_spread"] == 1


def test_the_report_tables_carry_the_spread_and_the_one_run_note() -> None:
    comp = compare(PRED, MEAS)
    sp = spread_table(comp, MEAS)
    summary = error_summary(comp, sp).set_index("metric")
    assert summary.loc["write_iops", WITHIN] == "1 of 2"
    table = error_table(comp, sp)
    row = table[(table.entity == "vm:a") & (table.metric == "write_iops")].iloc[0]
    assert row["real spread"] == "20.00%" and row[WITHIN] == "yes"
    assert WITHIN == "within spread (or 0.1%)"  # the rule in the header
    assert WITHIN not in error_table(comp).columns
    assert "one real run" in runs_text(1) and "3 real runs" in runs_text(3)


def probe(name: str, target: str, rw: str, bs: int, iodepth: int, exports: int = 1,
          depth: int = 0, iops: float = 1000.0) -> Probe:
    return Probe(name=name, target=target, rw=rw, bs=bs, iodepth=iodepth,  # type: ignore[arg-type]
                 exports=exports, depth=depth, runtime_s=1, ios=1, iops=iops,
                 bw_bytes_per_s=iops * bs, lat_mean_s=1e-3, lat_p99_s=2e-3, rounds=2,
                 iops_min=iops * 0.95, iops_max=iops * 1.05)


PROBES = [probe("raw-randread-4k-qd1-x1", "raw", "randread", 4096, 1),
          probe("raw-randread-64k-qd32-x1", "raw", "randread", 65536, 32),
          probe("raw-randwrite-4k-qd32-x1", "raw", "randwrite", 4096, 32),
          probe("raw-randwrite-1m-qd8-x1", "raw", "randwrite", 1 << 20, 8),
          probe("qcow2-randread-4k-qd32-x1", "qcow2", "randread", 4096, 32),
          probe("raw-randread-4k-qd4-x4", "raw", "randread", 4096, 4, exports=4),
          probe("cow-write-4k-qd1-x1", "cow", "write", 4096, 1),
          probe("cow-write-4k-qd8-x1", "cow", "write", 4096, 8),
          probe("chain-d1-randread-4k-qd1-x1", "chain", "randread", 4096, 1, depth=1),
          probe("device-randread-4k-qd1-x1", "device", "randread", 4096, 1)]


def test_a_run_measures_again_the_probes_its_vms_resemble() -> None:
    s = parse_scenario(small_dict(
        workloads={"w1": {"rw": "randwrite", "bs": "4k", "iodepth": 1, "io_size": "1MiB"},
                   "w8": {"rw": "randwrite", "bs": "4k", "iodepth": 8, "io_size": "1MiB"},
                   "big": {"rw": "write", "bs": "1MiB", "iodepth": 8, "io_size": "8MiB"},
                   "r": {"rw": "randread", "bs": "4k", "iodepth": 1, "io_size": "1MiB"}},
        vms=[{"name": "w1", "image": "img", "workload": "w1"},
             {"name": "w8", "image": "img", "workload": "w8"},
             {"name": "big", "image": "img", "workload": "big",
              "strategy": {"kind": "full_copy"}},
             {"name": "r", "image": "img", "workload": "r"}]))
    chosen = {p.name: vms for p, vms in choose_probes(vm_needs(s), PROBES)}
    assert chosen == {"cow-write-4k-qd1-x1": ["w1"], "cow-write-4k-qd8-x1": ["w8"],
                      "raw-randwrite-1m-qd8-x1": ["big"], "chain-d1-randread-4k-qd1-x1": ["r"]}


def test_mixed_vms_vote_in_both_directions_and_at_most_four_probes_are_kept() -> None:
    s = parse_scenario(small_dict(
        workloads={f"m{qd}": {"rw": "randrw", "rwmixread": 70, "bs": "4k", "iodepth": qd,
                              "io_size": "1MiB"} for qd in (1, 32)}
        | {"big": {"rw": "randread", "bs": "64k", "iodepth": 32, "io_size": "8MiB",
                   "offsets": "fio"}},
        vms=[{"name": "m1", "image": "img", "workload": "m1"},
             {"name": "m32", "image": "img", "workload": "m32"},
             {"name": "big", "image": "img", "workload": "big",
              "strategy": {"kind": "full_copy"}}]))
    needs = vm_needs(s)
    assert sorted((n.vm, n.read) for n in needs) == [
        ("big", True), ("m1", False), ("m1", True), ("m32", False), ("m32", True)]
    chosen = choose_probes(needs, PROBES)
    assert 1 <= len(chosen) <= MAX_PROBES
    names = [p.name for p, _ in chosen]
    assert not any(n.startswith(("device", "qcow2")) for n in names), names
    for p, vms in chosen:  # a probe stands for VMs that do I/O in its direction
        for vm in vms:
            assert any(n.vm == vm and n.read == (p.rw == "randread") for n in needs)
    reader = next(n for n in needs if n.vm == "big")
    assert min(PROBES, key=lambda p: distance(reader, p)).name == "raw-randread-64k-qd32-x1"


def test_check_measures_the_listed_probes_the_profile_holds() -> None:
    chosen = [p.name for p, _ in check_probes(PROBES)]
    assert chosen == [n for n in CHECK_PROBES if n in {p.name for p in PROBES}]
    other = [probe("x", "raw", "randread", 4096, 2), probe("d", "device", "randread", 4096, 1)]
    assert [p.name for p, _ in check_probes(other)] == ["x"]


def test_drift_is_described_in_one_sentence_and_as_a_table() -> None:
    block = {"measured": True, "profile": "/p.json", "median_abs_change": {
        "iops": 0.125, "lat_mean_s": 0.2}, "probes": [
        {"probe": "cow-write-4k-qd1-x1", "stands_for": ["a"], "profile_iops": 2000.0,
         "iops": 1750.0, "iops_change": -0.125, "within_profile_rounds": False,
         "lat_mean_change": 0.2}]}
    assert describe(block) == ("drift since the calibration: 1 probe(s) of the profile "
                               "measured again moved by 12.5% in IOPS and 20.0% in mean "
                               "latency (median |change|)")
    assert "not measured (no profile)" in describe({"measured": False,
                                                    "reason": "no profile"})
    assert "did not record" in describe(None)
    frame = drift_frame(block)
    assert frame.iloc[0]["IOPS change"] == "-12.50%" and frame.iloc[0]["stands for"] == "a"
    assert drift_frame({"measured": False, "reason": "x"}).empty


def test_check_refuses_a_bad_profile_path_in_one_line(tmp_path: Path) -> None:
    for bad in (tmp_path / "nope.json", write(tmp_path, {"kind": "x"}, "p.json")):
        ran = cowbench("calibrate", "--check", str(bad))
        assert ran.code == 2, ran.stderr
        assert "Traceback" not in ran.stderr + ran.stdout
        lines = [ln for ln in ran.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and str(bad) in lines[0], ran.stderr


def test_check_refuses_a_profile_whose_directory_is_not_here(tmp_path: Path) -> None:
    from .test_perf import write_profile

    prof = write_profile(tmp_path / "p.json")  # measured in /x
    ran = cowbench("calibrate", "--check", str(prof))
    assert ran.code == 2 and "the profile's dir (/x): not a directory here" in ran.stderr
    ran = cowbench("calibrate", "--check", str(prof), "--dir", str(tmp_path / "gone"))
    assert ran.code == 2 and "--dir: not a directory here" in ran.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]


BAD_SETTINGS = [("runtime_s", 1e300, "1e+300 s is not from 0.1 to 600 s"),
                ("runtime_s", -1, "-1 s is not from 0.1 to 600 s"),
                ("runtime_s", math.nan, "nan is not a number of seconds"),
                ("runtime_s", None, "null is not a number of seconds"),
                ("ramp_s", 1e9, "1e+09 s is not from 0 to 600 s"),
                ("ramp_s", -0.5, "-0.5 s is not from 0 to 600 s"),
                ("rounds", 10**9, "1e+09 is not from 1 to 50"),
                ("rounds", 0, "0 is not from 1 to 50"),
                ("rounds", 2.5, "2.5 is not a whole number"),
                ("span_bytes", "1GiB", "'1GiB' is not a whole number"),
                ("max_exports", 1000, "1000 is not from 2 to 16"),
                ("aio", "posix", "'posix' is not one of threads, native, io_uring"),
                ("aio", None, "null is not one of threads, native, io_uring")]
BAD_IDS = [f"{key}={value}" for key, value, _ in BAD_SETTINGS]


def _edited_profile(tmp_path: Path, key: str, value: object) -> Path:
    """A profile measured in ``tmp_path/d`` (which exists) whose ``settings.<key>`` a user
    edited to ``value``, written as such (NaN as JSON's NaN)."""
    import json

    from .test_perf import write_profile

    (tmp_path / "d").mkdir(exist_ok=True)
    data = json.loads(write_profile(tmp_path / "p.json").read_text())
    data["dir"] = str(tmp_path / "d")
    data["settings"] = {"matrix": "quick", "runtime_s": 0.4, "ramp_s": 0.1, "rounds": 2,
                        "span_bytes": 1 << 30, "max_exports": 4, key: value}
    (tmp_path / "p.json").write_text(json.dumps(data))
    return tmp_path / "p.json"


@pytest.mark.parametrize(("key", "value", "reason"), BAD_SETTINGS, ids=BAD_IDS)
def test_check_refuses_a_profile_whose_probe_settings_are_out_of_bounds(
        tmp_path: Path, key: str, value: object, reason: str) -> None:
    """A hand-edited profile's settings.runtime_s of 1e300 ended calibrate --check in an
    internal error, -1 in two minutes of waiting for fio's watchdog and a probe directory
    left behind; they are refused with the key path, before anything is made."""
    prof = _edited_profile(tmp_path, key, value)
    ran = cowbench("calibrate", "--check", str(prof))
    assert_clean_error(ran, f"{prof}: settings.{key}: {reason}")
    assert len([ln for ln in ran.stderr.splitlines() if ln.strip()]) == 1, ran.stderr
    assert list((tmp_path / "d").iterdir()) == []


@pytest.mark.parametrize(("key", "value", "reason"), BAD_SETTINGS[:3], ids=BAD_IDS[:3])
def test_a_run_refuses_a_profile_whose_probe_settings_are_out_of_bounds(
        tmp_path: Path, key: str, value: object, reason: str) -> None:
    """The run checks its profile against the machine with those settings (1e300: an
    internal error; -1: the check waited two minutes for fio, then the run went on)."""
    prof = _edited_profile(tmp_path, key, value)
    s = write(tmp_path, small_dict())
    ran = cowbench("run", str(s), "--profile", str(prof), "--backend", "both", "--out",
                   str(tmp_path / "run"))
    assert_clean_error(ran, f"{prof}: settings.{key}: {reason}")
    assert not (tmp_path / "run").exists() and list((tmp_path / "d").iterdir()) == []


def test_check_refuses_a_profile_without_its_probes_settings(tmp_path: Path) -> None:
    """A hand-made profile without settings (a run goes on without checking it) cannot be
    measured again: refused (it was an internal error, KeyError)."""
    from .test_perf import write_profile

    prof = write_profile(tmp_path / "p.json")
    ran = cowbench("calibrate", "--check", str(prof), "--dir", str(tmp_path))
    assert_clean_error(ran, f"{prof}: settings.runtime_s: missing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]


def test_calibrate_needs_dir_and_out_without_check(tmp_path: Path) -> None:
    ran = cowbench("calibrate", "--dir", str(tmp_path))
    assert ran.code == 2 and "needs --dir and --out (or --check PROFILE, or --refit" in ran.stderr


def test_repeat_needs_the_real_backend_and_a_sane_count(tmp_path: Path) -> None:
    s = write(tmp_path, small_dict())
    ran = cowbench("run", str(s), "--backend", "sim", "--repeat", "3", "--out",
                   str(tmp_path / "r"))
    assert ran.code == 2 and "--repeat 3 repeats the real backend's runs" in ran.stderr
    assert not (tmp_path / "r").exists()
    for n in ("0", "21"):
        ran = cowbench("run", str(s), "--repeat", n, "--out", str(tmp_path / "r"))
        assert ran.code == 2 and "--repeat" in ran.stderr and "Traceback" not in ran.stderr
        assert not (tmp_path / "r").exists()


def test_io_density_is_the_density_issue_16_asks_for() -> None:
    from cowbench.scenario import load_scenario

    s = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "io-density.yaml")
    assert len(s.vms) == 12 and len(s.hosts) == 1
    wls = [s.workload_of(vm) for vm in s.vms]
    assert all(w is not None for w in wls)
    assert {w.bs for w in wls if w} >= {4096, 1 << 20}
    assert min(w.bs for w in wls if w) == 4096 and max(w.bs for w in wls if w) == 1 << 20
    assert {w.iodepth for w in wls if w} >= {1, 32}
    assert {w.rw for w in wls if w} >= {"randread", "randwrite", "randrw", "read", "write"}
    assert any(w.rate_iops for w in wls if w)
    assert any(s.strategy_of(vm).kind == "snapshot_chain" for vm in s.vms)
    assert len({s.strategy_of(vm).cluster_size for vm in s.vms}) == 2


def test_the_density_and_holdout_benchmarks_run_a_copy_for_another_aio(
        tmp_path: Path) -> None:
    """``--aio native``: a copy of the scenario whose disks qemu-nbd exports with it, the
    rest the same; the scenario itself for threads."""
    import yaml

    from cowbench.scenario import load_scenario

    from .conftest import load_benchmark

    density, holdout = load_benchmark("io_density"), load_benchmark("io_holdout")
    for src in (density.SCENARIO, holdout.SCENARIO):
        assert holdout.scenario_with_aio(src, "threads", tmp_path) == src
        copy = holdout.scenario_with_aio(src, "native", tmp_path)
        assert copy.parent == tmp_path and load_scenario(copy).real.aio == "native"
        was, now = yaml.safe_load(src.read_text()), yaml.safe_load(copy.read_text())
        assert now.pop("real") == {"aio": "native"} and now == was
    assert density.scenario_with_aio.__module__ == "io_holdout"  # the one above, shared


def test_io_density_prints_the_cpu_the_vms_processes_were_given(
        capsys: pytest.CaptureFixture[str]) -> None:
    from .conftest import load_benchmark

    bench = load_benchmark("io_density")
    cpu = {("vm:a", "server_cpu_s"): [1.0], ("vm:b", "server_cpu_s"): [3.0],
           ("vm:a", "issuer_cpu_s"): [0.5], ("vm:b", "issuer_cpu_s"): [0.5]}
    meas = {("vm:a", "server_cpu_s"): [1.9, 2.0, 2.1], ("vm:b", "server_cpu_s"): [2.0] * 3,
            ("vm:a", "issuer_cpu_s"): [0.5] * 3, ("vm:b", "issuer_cpu_s"): [1.0] * 3}
    pred, real = records("sim", cpu), records("real", meas)
    bench.print_cpu(spread_table(compare(pred, real), real))
    out = capsys.readouterr().out
    # server: -50% and +50%; issuer: 0% and -50%
    assert "| server CPU (qemu-nbd) | 50.0% | 4.00 s | 4.00 s | 5.0% |" in out
    assert "| issuer CPU (fio) | 25.0% | 1.00 s | 1.50 s | 0.0% |" in out
    bench.print_cpu(spread_table(compare(PRED, MEAS), MEAS))  # a model without a scheduler
    assert "the model has no figures" in capsys.readouterr().out


def test_io_density_reads_the_spread_of_a_run(capsys: pytest.CaptureFixture[str]) -> None:
    from .conftest import load_benchmark

    bench = load_benchmark("io_density")
    comp = compare(PRED, MEAS)
    rows = bench.io_rows(spread_table(comp, MEAS))
    assert set(rows.metric) == {"write_iops"}  # allocated_bytes is no I/O figure
    bench.print_summary(rows)
    out = capsys.readouterr().out
    assert "| IOPS | 17.5% | <= 15% | 10.0% | 1 of 2 |" in out  # |+5%| and |+30%|
    assert "| worst VM, IOPS | b write_iops +30.0% |" in out


@pytest.mark.slow
def test_the_validation_report_shows_the_spread_and_the_drift(tmp_path: Path) -> None:
    import json

    from cowbench.report import make_report
    from cowbench.spread import SPREAD_FILE

    from .reportkit import synthetic_run

    run = synthetic_run(tmp_path / "run", PRED, MEAS)
    spread_table(compare(PRED, MEAS), MEAS).to_csv(run / SPREAD_FILE, index=False)
    meta = json.loads((run / "run.json").read_text())
    meta["drift"] = {"measured": True, "profile": "/p.json", "median_abs_change": {
        "iops": 0.125, "lat_mean_s": 0.2}, "probes": [
        {"probe": "cow-write-4k-qd1-x1", "stands_for": ["a"], "profile_iops": 2000.0,
         "iops": 1750.0, "iops_change": -0.125, "within_profile_rounds": False,
         "lat_mean_change": 0.2}]}
    (run / "run.json").write_text(json.dumps(meta))
    make_report(run)
    text = (run / "report" / "report.html").read_text()
    assert "the mean of <strong>3 real runs</strong>" in text
    assert "real spread (median)" in text and "1 of 2" in text
    assert "drift since the calibration: 1 probe(s) of the profile measured again moved by " \
           "12.5% in IOPS" in text
    assert "cow-write-4k-qd1-x1" in text and "-12.50%" in text


def test_the_python_run_takes_repeat_as_the_command_does(tmp_path: Path) -> None:
    from cowbench import UsageError, run

    with pytest.raises(UsageError, match="--repeat 2 repeats the real backend's runs"):
        run(small_dict(), tmp_path / "r", backend="sim", repeat=2)
    assert not (tmp_path / "r").exists()


def _with_profile(tmp_path: Path, **settings: object) -> tuple[object, Path]:
    from cowbench.profile import Profile, profile_json
    from cowbench.resolve import with_profile

    from .test_perf import TRUE

    prof = Profile(created="2026-12-02T00:00:00+00:00", duration_s=1.0, matrix="quick",
                   dir=str(tmp_path), host={}, tools={}, settings={
                       "runtime_s": 0.2, "ramp_s": 0.05, "span_bytes": 1 << 27,
                       "max_exports": 4, **settings}, probes=PROBES, params=TRUE)
    path = tmp_path / "p.json"
    path.write_text(profile_json(prof))
    return with_profile(parse_scenario(small_dict()), path, "s.yaml"), path


def test_a_drift_probe_that_fails_leaves_the_reason_and_an_interrupt_stops_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cowbench.backends import get_backend
    from cowbench.drift import run_drift
    from cowbench.errors import Interrupted, ToolError

    s, path = _with_profile(tmp_path)
    real = get_backend("real")
    asked: list[list[str]] = []

    def failing(directory: Path, settings: object, probes: list[Probe], *a: object) -> None:
        asked.append([p.name for p in probes])
        raise ToolError(["fio"], 1, "", "fio: no space left")

    monkeypatch.setattr(real, "measure_again", failing)
    block = run_drift(s, tmp_path)  # type: ignore[arg-type]
    assert block["measured"] is False and block["profile"] == str(path.resolve())
    assert "no space left" in block["reason"]
    assert asked == [["cow-write-4k-qd1-x1", "cow-write-4k-qd8-x1",  # one vote each:
                      "chain-d1-randread-4k-qd1-x1"]]  # the profile's order

    def interrupted(*a: object) -> None:
        raise Interrupted("interrupted by signal SIGINT")

    monkeypatch.setattr(real, "measure_again", interrupted)
    with pytest.raises(Interrupted):
        run_drift(s, tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize("settings, aio", [({}, "threads"), ({"aio": "native"}, "native")])
def test_the_drift_probes_go_through_the_profiles_aio(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: dict[str, str],
        aio: str) -> None:
    """The probes measured again are exported as the profile's were (qemu-nbd's --aio;
    threads for a profile that does not say), not as qemu's default."""
    from cowbench.backends import get_backend
    from cowbench.drift import run_drift
    from cowbench.errors import ToolError

    s, _ = _with_profile(tmp_path, **settings)
    real = get_backend("real")
    seen: list[str] = []

    def recording(directory: Path, got: object, *a: object) -> None:
        seen.append(got.aio)  # type: ignore[attr-defined]
        raise ToolError(["fio"], 1, "", "stop here")

    monkeypatch.setattr(real, "measure_again", recording)
    assert run_drift(s, tmp_path)["measured"] is False  # type: ignore[arg-type]
    assert seen == [aio]


def test_drift_says_how_much_of_the_cores_the_hypervisor_took() -> None:
    row = {"probe": "cow-write-4k-qd8-x4", "stands_for": ["a"], "profile_iops": 4000.0,
           "iops": 5600.0, "iops_change": 0.4, "within_profile_rounds": False,
           "lat_mean_change": -0.3, "profile_steal_share": 0.31, "steal_share": 0.08}
    block = {"measured": True, "profile": "/p.json", "median_abs_change": {
        "iops": 0.4, "lat_mean_s": 0.3}, "probes": [row],
        "steal_share": {"profile": 0.31, "now": 0.08}}
    assert describe(block).endswith("(median |change|); the hypervisor took 8% of the cores "
                                    "while they ran, 31% at calibration")
    assert drift_frame(block).iloc[0][
        "hypervisor's share of the cores (calibration / now)"] == "31% / 8%"
    # bare metal (or a profile made before the figure): nothing said
    for steal in ({"profile": 0.0, "now": 0.002}, {"profile": None, "now": None}, None):
        quiet = {**block, "steal_share": steal}
        assert "hypervisor" not in describe(quiet)
    assert "hypervisor took 5% of the cores while they ran" in describe(
        {**block, "steal_share": {"profile": None, "now": 0.05}})


def test_the_real_runs_machine_is_described_only_when_the_hypervisor_took_some() -> None:
    from cowbench.drift import describe_machine

    runs = {"asked": 3, "done": 3, "machine": [
        {"run": k + 1, "wall_s": 30.0, "busy_share": 0.8, "steal_share": s, "load": [5.0]}
        for k, s in enumerate((0.12, 0.31, 0.08))]}
    assert describe_machine(runs) == (
        "the hypervisor took 12% of this machine's cores during the real runs (runs: 12%, "
        "31%, 8%): a virtual machine's host was busy, and the measured I/O rests on what it "
        "left")
    one = {"machine": [{"run": 1, "steal_share": 0.05}]}
    assert "took 5% of this machine's cores during the real run:" in str(describe_machine(one))
    for quiet in (None, {}, {"asked": 1, "done": 1},  # a run.json made before the figure
                  {"machine": [{"run": 1, "steal_share": 0.004}]},  # bare metal
                  {"machine": [{"run": 1, "steal_share": None}]}):
        assert describe_machine(quiet) is None


def test_a_cpu_span_measures_this_process_work_as_busy() -> None:
    import time

    from cowbench.tools import CpuSpan

    span = CpuSpan()
    t = time.process_time()
    while time.process_time() - t < 0.2:
        pass
    got = span.figures()
    assert got["wall_s"] >= 0.2 and len(got["load"]) == 3
    assert got["busy_share"] is not None and got["busy_share"] > 0
    assert got["steal_share"] is not None and 0 <= got["steal_share"] <= 1


def test_uncalibrated_durations_are_shown_apart_from_the_calibrated_figures() -> None:
    """A lifecycle's ``duration_s`` rests on the nova section's bandwidths, never calibrated
    (README, "How far to trust each figure"): its +256% sits below the calibrated rows, marked,
    with a note, in the terminal and the report alike; it is not dropped."""
    pred = pd.concat([PRED, records("sim", {("op:0001-boot-a", "duration_s"): [3.56]})])
    meas = pd.concat([MEAS, records("real", {("op:0001-boot-a", "duration_s"): [1.0] * 3})])
    comp = compare(pred, meas)
    console = Console(width=200, record=True)
    print_comparison(comp, console, spread_table(comp, meas), 3)
    lines = console.export_text().splitlines()
    row = next(i for i, line in enumerate(lines) if "duration_s" in line)
    assert "duration_s (uncalibrated)" in lines[row] and "+256.00%" in lines[row]
    assert "─" in lines[row - 1]  # a group of its own, after every calibrated row
    assert row > max(i for i, line in enumerate(lines) if "write_iops" in line)
    assert any("duration_s is not calibrated" in line for line in lines[row:])
    summary = error_summary(comp, sp := spread_table(comp, meas))
    assert summary["metric"].tolist()[-1] == "duration_s (uncalibrated)"
    assert summary[WITHIN].tolist()[-1] == "0 of 1" and len(sp) == 4
    assert "duration_s is not calibrated" in uncalibrated_text(comp)
    assert uncalibrated_text(compare(PRED, MEAS)) == ""


def test_metric_names_are_never_cut_in_a_narrow_console() -> None:
    """Piped, the console is 80 columns: the --repeat table cut "write_lat_mean_s" and
    "write_lat_p99_s" to "write_lat_m…" and "write_lat_p…"."""
    names = ["allocated_bytes", "write_bw_bytes_per_s", "write_lat_mean_s", "write_lat_p99_s"]
    pred = records("sim", {("vm:a", m): [1.0] for m in names})
    meas = records("real", {("vm:a", m): [0.9, 1.0, 1.1] for m in names})
    comp = compare(pred, meas)
    console = Console(width=80, record=True)
    print_comparison(comp, console, spread_table(comp, meas), 3)
    text = console.export_text()
    assert all(f" {m} " in text for m in names) and "…" not in text.split("┡")[1]
