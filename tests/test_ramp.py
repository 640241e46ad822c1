"""fio's ``ramp_time`` and ``startdelay`` (issue 19: job files as users write them), in the
model, as workload keys and job-file options, and in the null-engine run.

Each figure below was measured with fio 3.33's null engine, 4 KiB writes at
``rate_iops=1000`` (sim/world/vm.py's docstring has the rest). Before this, a job file with
either option was refused ("not an option the model or the backends know")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cowbench.fiojob import fio_options, null_options
from cowbench.iolog import WRITE, Trace
from cowbench.scenario import Workload, load_scenario, parse_scenario
from sim import simulate
from sim.driver import io_events
from sim.world.vm import start_delay

from .clirun import cowbench
from .conftest import needs_tools


def _scenario(jobs: list[dict[str, Any]] | None = None, **wl: Any) -> Any:
    base = {"rw": "write", "bs": "4k", "offsets": "model", "rate_iops": 1000, **wl}
    if jobs is not None:
        base = {**jobs[0], "jobs": jobs}
    return parse_scenario({
        "name": "ramp", "seed": 1,
        "images": [{"name": "b", "virtual_size": "1GiB",
                    "synthetic": {"data": [{"offset": 0, "length": "1MiB"}]}}],
        "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB"},
        "workloads": {"w": base},
        "vms": [{"name": "v", "image": "b", "workload": "w"}]})


def _figures(records: pd.DataFrame) -> dict[str, float]:
    rows = records[records.entity == "vm:v"]
    return {str(k): float(v) for k, v in zip(rows.metric, rows.value, strict=True)}


def test_ramp_ios_touch_the_disk_but_not_fios_figures() -> None:
    """size=4m, ramp_time=1: fio issues all 1,024 writes (size counts the ramp's) and
    reports the 23 after the ramp over 23 ms; the disk and the host's bytes see all 1,024,
    as without the ramp."""
    plain = _figures(simulate(_scenario(size="4m")))
    ramp = _figures(simulate(_scenario(size="4m", ramp_time=1)))
    assert ramp["write_ios"] == 23
    assert ramp["ramp_ios"] == 1001
    assert ramp["data_clusters"] == plain["data_clusters"] == 64
    assert ramp["host_write_bytes"] == plain["host_write_bytes"]
    # IOPS over the runtime after the ramp (fio: 23 in 23 ms), not over the whole second
    assert 900 < ramp["write_iops"] < 1100
    assert "ramp_ios" not in plain


def test_a_time_based_job_runs_ramp_plus_runtime() -> None:
    """runtime=2 time_based ramp_time=1: fio issued 3,002 and reported 2,000-2,001 (two
    runs) over 2,000 ms."""
    got = _figures(simulate(_scenario(size="100m", time_based=True, runtime=2, ramp_time=1)))
    assert abs(got["write_ios"] - 2000) <= 1
    assert got["ramp_ios"] == 1001
    assert abs(got["write_iops"] - 1000) < 5


def test_a_clone_that_ends_in_its_ramp_is_reported_whole_without_latency() -> None:
    """size=400k, ramp_time=1: the job is done in 0.1 s, so fio never resets it: 100 writes
    reported (over 108 ms), clat N=0."""
    got = _figures(simulate(_scenario(size="400k", ramp_time=1)))
    assert got["write_ios"] == 100
    assert got["ramp_ios"] == 0
    assert "write_lat_mean_s" not in got


def test_each_clone_ramps_on_its_own() -> None:
    """numjobs=2, size=4m, ramp_time=1: 23 + 23 reported (group_reporting: 46)."""
    got = _figures(simulate(_scenario(size="4m", ramp_time=1, numjobs=2)))
    assert got["write_ios"] == 46
    assert got["ramp_ios"] == 2002


def test_startdelay_delays_the_first_issue_and_not_the_runtime() -> None:
    """startdelay=1, runtime=1 time_based: fio reported 1,000 writes over 1,000 ms; its ramp
    starts after the delay (startdelay=1 ramp_time=1 runtime=1: 1,000 reported)."""
    sc = _scenario(size="100m", time_based=True, runtime=1, startdelay=1)
    assert abs(_figures(simulate(sc))["write_ios"] - 1000) <= 1
    first = io_events(sc)["v"].issued_s.min()
    assert first == pytest.approx(1.0)
    both = _scenario(size="100m", time_based=True, runtime=1, startdelay=1, ramp_time=1)
    assert abs(_figures(simulate(both))["write_ios"] - 1000) <= 1
    assert io_events(both)["v"].issued_s.min() == pytest.approx(2.0, abs=0.002)


def test_a_startdelay_range_is_fios_draw_per_clone() -> None:
    """startdelay=1-3 with numjobs=3 (threads 1 to 3): fio started the clones 2.268, 1.165
    and 2.067 s after a job without delay (within fio's 0.1 s polling); the draw is fio's
    rand_between from each clone's FIO_RAND_START_DELAY seed."""
    wl = Workload(startdelay="1-3", numjobs=3)
    delays = [start_delay(wl, thread, 1, 0) for thread in (1, 2, 3)]
    assert delays == [2.339105, 1.175553, 2.119]
    for drawn, measured in zip(delays, (2.268, 1.165, 2.067), strict=True):
        assert abs(drawn - measured) < 0.1
    assert start_delay(Workload(startdelay=2), 5, 1, 0) == 2.0


def _trace(n: int) -> Trace:
    return Trace(np.arange(n, dtype=np.int64) * 4096, np.full(n, 4096, dtype=np.int64),
                 np.full(n, WRITE, dtype=np.int8))


def test_startdelay_counts_from_fios_start_not_a_stonewall() -> None:
    """Job a runs 1 s; b (stonewall, startdelay=500ms) started at 1.22 s, as soon as a
    ended; c (stonewall, startdelay=4) at 4.04 s, not 4 s after b's end."""
    common = {"rw": "write", "bs": "4k", "rate_iops": 100, "time_based": True, "runtime": 1,
              "offsets": "fio"}
    sc = _scenario(jobs=[{**common, "section": "a"},
                         {**common, "section": "b", "stonewall": True, "startdelay": "500ms"},
                         {**common, "section": "c", "stonewall": True, "startdelay": 4}])
    ev = io_events(sc, traces={"v": [_trace(200), _trace(200), _trace(200)]})["v"]
    starts = sorted(ev.issued_s)
    gaps = [t for a, t in zip(starts, starts[1:], strict=False) if t - a > 0.5]
    assert starts[0] == 0.0
    assert gaps == [pytest.approx(4.0)]  # b right after a (no gap), c at fio's 4 s
    assert sum(1 for t in starts if 1.0 <= t < 2.1) >= 99  # b ran from a's end


def test_job_file_options_become_workload_keys(tmp_path: Path) -> None:
    (tmp_path / "j.fio").write_text("[w]\nrw=randwrite\nbs=4k\nsize=4m\nrate_iops=1000\n"
                                    "ramp_time=1500ms\nstartdelay=1-3\nnumjobs=2\n")
    (tmp_path / "s.yaml").write_text(
        "name: t\nimages: [{name: b, virtual_size: 64MiB, synthetic: "
        "{data: [{offset: 0, length: 1MiB}]}}]\n"
        "workloads: {w: {job_file: j.fio}}\nvms: [{name: v, image: b, workload: w}]\n")
    wl = load_scenario(tmp_path / "s.yaml").workloads["w"]
    assert (wl.ramp_time, wl.startdelay) == (1.5, "1-3")
    ran = cowbench("fio-check", str(tmp_path / "j.fio"))
    assert ran.code == 0, ran.stdout + ran.stderr
    assert "ramp_time=1500ms" in ran.stdout and "both backends: ramp_time=1.5" in ran.stdout
    assert "both backends: startdelay=1-3" in ran.stdout
    assert "its I/Os reach the disk but no I/O figure" in ran.stdout
    # fio gets them unchanged in the real run; the null-engine run, which only gives the
    # offsets (they change none), gets neither
    opts = fio_options(wl)
    assert "--ramp_time=1500000us" in opts and "--startdelay=1s-3s" in opts
    assert not [o for o in null_options(wl, None, None)
                if o.startswith(("--ramp_time", "--startdelay"))]


@pytest.mark.parametrize(("text", "problem"), [
    ("startdelay=3-1", "high end is below its low end"),
    ("ramp_time=1.5", "fio 3.33 reads whole numbers only"),
])
def test_bad_values_name_their_key(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "j.fio").write_text(f"[w]\nrw=write\n{text}\n")
    ran = cowbench("fio-check", str(tmp_path / "j.fio"))
    assert ran.code == 2 and problem in ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr


def test_zero_is_fios_default_none() -> None:
    """ramp_time=0 and startdelay=0 are fio's defaults: the keys stay absent."""
    from cowbench.jobfile import Section
    from cowbench.jobopts import workload_of

    wl, handled = workload_of(Section("w", {"ramp_time": "0", "startdelay": "0"}), True)
    assert "ramp_time" not in wl and "startdelay" not in wl
    assert [(h.kind, h.detail) for h in handled] == [
        ("model", "ramp_time absent (0 is fio's default: no ramp)"),
        ("model", "startdelay absent (0 is fio's default: no delay)")]


@needs_tools
def test_fios_stream_for_a_time_based_ramp_holds_the_ramps_ios(tmp_path: Path) -> None:
    """offsets: fio, time-based with a ramp: the null-engine stream is the whole stream the
    real run issues, ramp and runtime (1,001 + 1,000 at rate_iops=1000), not the 1,000 fio
    reports; the null run itself is neither delayed nor ramped."""
    from cowbench.streams import take_streams
    from cowbench.tools import RawLog

    sc = _scenario(rw="randwrite", size="64m", time_based=True, runtime=1, ramp_time=1,
                   startdelay=2, offsets="fio")
    plan = take_streams(sc, 1, RawLog(tmp_path / "raw"),
                        lambda s, traces: simulate(s, traces=traces))
    assert plan.offsets["v"]["stream"] == "predicted"
    assert plan.offsets["v"]["ios_per_clone"] >= 2001
    assert plan.predicted is not None
    got = _figures(plan.predicted)
    assert abs(got["write_ios"] - 1000) <= 1 and got["ramp_ios"] == 1001
    argv = "".join(p.read_text() for p in (tmp_path / "raw").rglob("*argv*"))
    assert "--ioengine=null" in argv and "--number_ios" not in argv
    assert "ramp_time" not in argv and "startdelay" not in argv


@needs_tools
def test_the_count_account_adds_the_models_ramp_and_says_so(tmp_path: Path) -> None:
    """fio's total_ios leaves out the ramp's I/Os and nothing in its output counts them: the
    measured count stays fio's (after the ramp, as the model's read/write_ios), the stream is
    cut at it plus the model's own ramp, and the account says the ramp was not measured."""
    from cowbench.iocount import at_measured_ios, describe
    from cowbench.tools import RawLog

    sc = _scenario(rw="randwrite", size="64m", time_based=True, runtime=1, ramp_time=1,
                   offsets="fio")
    records = pd.DataFrame({"entity": "vm:v", "metric": ["write_ios", "ramp_ios"],
                            "value": [1000.0, 1001.0], "t_s": float("nan")})
    measured = records[records.metric == "write_ios"].assign(value=400.0)
    offsets = {"v": {"workload": "w", "offsets": "fio", "stream": "predicted"}}
    got = at_measured_ios(sc, 1, offsets, records, measured, RawLog(tmp_path / "raw"),
                          lambda s, traces: simulate(s, traces=traces))["v"]
    assert (got["predicted_ios_per_clone"], got["measured_ios_per_clone"]) == (1000, 400)
    assert (got["ramp_ios_per_clone"], got["ramp_measured"]) == (1001, False)
    # 1,401 random 4 KiB writes over 1,024 clusters of 64 KiB touch about
    # 1024 x (1 - e^(-1401/1024)) = 763 of them; 400 alone would touch at most 400
    assert 700 < got["data_clusters"] < 850
    line = describe({"v": {"at_measured_ios": got}}, {"v": got["data_clusters"]})[0]
    assert "1,001 per clone taken from the model, not measured" in line


def test_number_ios_counts_from_the_ramps_end() -> None:
    """number_ios=1500 with ramp_time=1: fio issued 2,501 and reported 1,500; number_ios=500
    ends the job inside its ramp: 500 issued, 500 reported (fio never reset it)."""
    common = {"rw": "write", "bs": "4k", "rate_iops": 1000, "ramp_time": 1, "offsets": "fio",
              "size": "100m"}
    for n, reported, ramp in ((1500, 1500, 1001), (500, 500, 0)):
        sc = _scenario(**{**common, "fio_extra": {"number_ios": str(n)}})
        got = _figures(simulate(sc, traces={"v": [_trace(4000)]}))
        assert (got["write_ios"], got["ramp_ios"]) == (reported, ramp)
