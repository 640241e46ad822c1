"""The model's figures as fio JSON: readable by the same reader that reads real fio output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cowbench.errors import UsageError
from cowbench.fiojson import fio_json
from cowbench.fiologs import write_run_logs
from cowbench.runner import run_scenario
from cowbench.scenario import load_scenario
from real.workload.fio import FioResult
from sim import simulate

from .clirun import cowbench
from .conftest import small_scenario


def test_fio_json_round_trips_through_the_real_fio_reader() -> None:
    s = small_scenario()
    pred = simulate(s)
    for vm in s.vms:
        wl = s.workload_of(vm)
        assert wl is not None
        raw = fio_json(pred, f"vm:{vm.name}", wl)
        job = raw["jobs"][0]
        assert job["job options"]["rw"] == wl.rw and job["job options"]["bs"] == str(wl.bs)
        result = FioResult(raw)
        rows = pred[(pred.entity == f"vm:{vm.name}") & pred.t_s.isna()]
        model = dict(zip(rows.metric, rows.value, strict=True))
        kinds = [k for k in ("read", "write") if f"{k}_iops" in model]
        assert kinds and all(k in job for k in kinds)
        for kind in kinds:
            for metric, value in result.figures(kind).items():
                assert value == pytest.approx(model[metric], rel=1e-6, abs=1e-9), metric
        # cowbench's jobs never trim nor fsync: fio's own form of a direction without I/O
        assert job["trim"]["total_ios"] == 0 and job["trim"]["lat_ns"]["N"] == 0
        assert job["sync"]["total_ios"] == 0


def resolve(doc: Any, path: str) -> Any:
    for key in path.split("/")[1:]:
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]
    return doc


def test_what_the_model_does_not_know_is_null_or_named_as_zero() -> None:
    s = small_scenario()
    pred = simulate(s)
    wl = s.workload_of(s.vms[0])
    doc = fio_json(pred, "vm:a", wl)
    meta = doc["cowbench"]
    assert meta["model"] is True and "disk_util" not in doc
    zeros = set(meta["zero_for_fio_plot"])
    assert zeros == {"/jobs/0/usr_cpu", "/jobs/0/sys_cpu", "/jobs/0/write/iops_stddev",
                     "/jobs/0/write/lat_ns/stddev"}  # a write-only job: fio-plot's numbers
    assert zeros <= set(meta["unknown"])
    for path in meta["unknown"]:  # every pointer resolves (it named /disk_util, absent)
        assert resolve(doc, path) == (0 if path in zeros else None), path
    write = doc["jobs"][0]["write"]
    rows = pred[(pred.entity == "vm:a") & pred.t_s.isna()]
    model = dict(zip(rows.metric, rows.value, strict=True))
    assert write["lat_ns"]["mean"] == write["clat_ns"]["mean"]
    assert write["lat_ns"]["mean"] == pytest.approx(model["write_lat_mean_s"] * 1e9)
    assert write["clat_ns"]["N"] == write["total_ios"] == 1024
    assert write["clat_ns"]["percentile"]["50.000000"] is None  # the model has no median
    assert doc["jobs"][0]["job_runtime"] == write["runtime"] > 0
    assert doc["jobs"][0]["latency_depth"] == wl.iodepth
    # the read direction of a write-only job: zero I/O, a figure fio writes the same way
    assert doc["jobs"][0]["read"]["total_ios"] == 0 and doc["jobs"][0]["read"]["iops"] == 0


def test_fio_json_command_writes_one_file_per_vm(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_scenario(small_scenario(), out, "sim")
    proc = cowbench("fio-json", str(out))
    assert proc.code == 0, proc.stderr
    files = sorted(p.name for p in (out / "fio-json").iterdir())
    assert files == ["a.json", "b.json", "c.json"]
    data = json.loads((out / "fio-json" / "a.json").read_text())
    assert data["jobs"][0]["write"]["total_ios"] == 1024  # 4 MiB of 4 KiB writes
    bad = cowbench("fio-json", str(tmp_path))
    assert bad.code == 2 and "Traceback" not in bad.stderr


def read_log(path: Path) -> list[list[int]]:
    return [[int(x) for x in line.split(", ")] for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_fio_json_logs_add_up_to_the_model_figures(tmp_path: Path) -> None:
    """The logs' windows hold the I/Os the model completed in them; as fio, the rates have no
    line for the window the job's end cuts short, the latency log ends with it."""
    from sim.driver import io_events

    out = tmp_path / "run"
    run_scenario(small_scenario(), out, "sim")
    proc = cowbench("fio-json", str(out), "--logs", "--log-avg-msec", "20")
    assert proc.code == 0, proc.stderr
    job = json.loads((out / "fio-json" / "a.json").read_text())["jobs"][0]["write"]
    iops, bw = read_log(out / "fio-json" / "a_iops.1.log"), read_log(out / "fio-json" /
                                                                     "a_bw.1.log")
    clat = read_log(out / "fio-json" / "a_clat.1.log")
    assert all(len(row) == 5 and row[2] == 1 and row[3:] == [0, 0] for row in iops + bw + clat)
    times = [row[0] for row in iops]
    last = job["runtime"] // 20 * 20
    assert times == list(range(20, last + 1, 20)) and job["runtime"] - clat[-1][0] in (0, 1)
    # each window's rate times its length: the I/Os and bytes done before the last full one
    ev = io_events(small_scenario())["a"]
    full = ev[(ev.done_s - ev.origin_s) * 1e3 < last]
    assert sum(r[1] * 20 / 1e3 for r in iops) == len(full)
    assert sum(r[1] * 20 / 1e3 for r in bw) == full.bytes.sum() / 1024
    assert all(b[1] == 4 * i[1] for b, i in zip(bw, iops, strict=True))  # 4 KiB I/Os
    # the latency windows' means, weighted by their I/Os: the job's mean (windows end at
    # the completion that closes them, so their I/Os are counted from the events)
    ms = ((ev.done_s - ev.origin_s) * 1e3 + 1e-9).astype(int).sort_values().to_numpy()
    ends = [t for t, *_ in clat]
    counts = [int(((ms <= t) if k == len(ends) - 1 else (ms < t + 1)).sum())
              for k, t in enumerate(ends)]
    counts = [c - p for p, c in zip([0, *counts], counts, strict=False)]
    weighted = sum(c[1] * k for c, k in zip(clat, counts, strict=True)) / sum(counts)
    assert weighted == pytest.approx(job["clat_ns"]["mean"], rel=0.02)
    assert read_log(out / "fio-json" / "a_lat.1.log") == clat  # the model's lat is its clat
    b = read_log(out / "fio-json" / "b_iops.1.log")
    assert b and all(row[2] == 0 for row in b)  # VM b only reads


def test_fio_logs_refuse_a_timeline_and_write_nothing(tmp_path: Path) -> None:
    s = load_scenario(Path(__file__).parents[1] / "scenarios" / "nova-lifecycle.yaml")
    with pytest.raises(UsageError, match="timeline"):
        write_run_logs(tmp_path, s, s.seed, 500)
    assert not any(tmp_path.iterdir())


def test_job_options_are_what_the_real_run_gives_fio() -> None:
    """A job's options as the real run's fio echoes them: its ramp, think time and time bound
    too (they were left out: rw, bs, iodepth, numjobs, size, runtime and rwmixread only)."""
    from cowbench.fiojob import fio_options
    from cowbench.fiojson import job_options
    from cowbench.scenario import parse_scenario

    from .conftest import small_dict

    d = small_dict()
    d["workloads"]["w"] = {"rw": "randrw", "bs": "8k", "size": "64MiB", "runtime": 1,
                           "time_based": True, "startdelay": 2, "thinktime": "5ms",
                           "thinktime_blocks": 16}
    wl = parse_scenario(d).workloads["w"]
    opts = job_options(wl)
    assert {k: opts[k] for k in ("rw", "bs", "runtime", "time_based", "startdelay", "thinktime",
                                 "thinktime_blocks", "rwmixread")} == {
        "rw": "randrw", "bs": "8192", "runtime": "1s", "time_based": "1", "startdelay": "2s",
        "thinktime": "5000us", "thinktime_blocks": "16", "rwmixread": "50"}
    assert [f"--{k}={v}" for k, v in opts.items()] == fio_options(wl)
