"""fio's ``thinktime``: bursts of ``thinktime_blocks`` I/Os with a pause between, in both
backends (fio 3.33, backend.c handle_thinktime; sim/world/vm.py ``_Think``).

cowbench refused the options ("not an option the model or the backends know"): a job file of
an application that does I/O in bursts could not run at all."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cowbench.fiojob import fio_options, null_options
from cowbench.scenario import Workload, load_scenario, parse_scenario
from sim import simulate
from sim.driver import io_events

from .clirun import cowbench
from .conftest import needs_tools
from .test_jobfile_fio import _scenario as _job_scenario
from .test_jobfile_fio import _write


def _scenario(disk: str = "1GiB", **wl: Any) -> Any:
    return parse_scenario({
        "name": "think", "seed": 1,
        "images": [{"name": "b", "virtual_size": disk,
                    "synthetic": {"data": [{"offset": 0, "length": "16MiB"}]}}],
        "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB"},
        "workloads": {"w": {"rw": "randwrite", "bs": "4k", "offsets": "model", **wl}},
        "vms": [{"name": "v", "image": "b", "workload": "w"}]})


def _figures(records: pd.DataFrame) -> pd.Series:
    return records.set_index(["entity", "metric"]).value.loc["vm:v"]


def _bursts(ev: pd.DataFrame, pause: float) -> list[pd.DataFrame]:
    """The I/Os split where the next one was issued at least ``pause`` after the last
    completion before it."""
    ev = ev.sort_values("issued_s").reset_index(drop=True)
    gap = ev.issued_s - ev.done_s.cummax().shift(fill_value=-math.inf)
    starts = ev.index[gap >= pause - 1e-9].tolist()  # float sums of the times
    return [ev.iloc[a:b] for a, b in zip(starts, [*starts[1:], len(ev)], strict=True)]


def _most_in_flight(ev: pd.DataFrame) -> int:
    moves = sorted([(t, 1) for t in ev.issued_s] + [(t, -1) for t in ev.done_s])
    depth = most = 0
    for _, d in moves:  # at one instant a completion (-1) sorts before an issue
        depth += d
        most = max(most, depth)
    return most


def test_a_burst_of_thinktime_blocks_then_a_pause() -> None:
    """iodepth=1 thinktime=10ms thinktime_blocks=8: bursts of exactly 8 writes, each begun
    10 ms after the one before completed; within a burst no such gap."""
    s = _scenario(time_based=True, runtime="200ms", thinktime="10ms", thinktime_blocks=8)
    bursts = _bursts(io_events(s)["v"], 0.010)
    assert len(bursts) > 10
    assert all(len(b) == 8 for b in bursts[:-1]) and 0 < len(bursts[-1]) <= 8
    for before, after in zip(bursts, bursts[1:], strict=False):
        assert after.issued_s.min() - before.done_s.max() == pytest.approx(0.010, abs=1e-4)


def test_the_ios_in_flight_never_exceed_thinktime_blocks() -> None:
    """iodepth=8 with thinktime_blocks=4 counted at issue: 4 in flight at most (fio's HOWTO:
    it caps the queue depth), each burst drained before the pause; without thinktime, 8."""
    s = _scenario(time_based=True, runtime="100ms", iodepth=8, thinktime="1000",
                  thinktime_blocks=4, thinktime_blocks_type="issue")
    ev = io_events(s)["v"]
    assert _most_in_flight(ev) == 4
    bursts = _bursts(ev, 0.001)
    assert all(len(b) == 4 for b in bursts[:-1])
    plain = io_events(_scenario(time_based=True, runtime="100ms", iodepth=8))["v"]
    assert _most_in_flight(plain) == 8


def test_a_time_based_job_counts_its_pauses_in_its_runtime() -> None:
    """2 s of bursts of 8 writes with 10 ms pauses: as many bursts as fit, one cycle being
    the pause and the burst's writes, and IOPS over the whole 2 s (fio's runtime includes the
    pauses)."""
    s = _scenario(time_based=True, runtime=2, thinktime="10ms", thinktime_blocks=8)
    f = _figures(simulate(s))
    burst_s = 8 * f.write_lat_mean_s  # one write at a time
    cycles = 2 / (0.010 + burst_s)
    assert 8 * math.floor(cycles) <= f.write_ios <= 8 * math.ceil(cycles)
    assert f.write_iops == pytest.approx(f.write_ios / 2, rel=1e-3)


def test_the_runtime_includes_the_pause_after_the_last_io() -> None:
    """8 writes with thinktime=50ms thinktime_blocks=8: fio pauses after the 8th too (its nbd
    engine ran 61 ms); 9 writes end with the 9th (51 ms)."""
    eight = _figures(simulate(_scenario(size="32k", thinktime="50ms", thinktime_blocks=8)))
    assert 8 / eight.write_iops == pytest.approx(0.050, abs=0.005)
    nine = _figures(simulate(_scenario(size="36k", thinktime="50ms", thinktime_blocks=8)))
    assert 9 / nine.write_iops == pytest.approx(0.050, abs=0.005)


def test_thinktime_iotime_pauses_by_time() -> None:
    """thinktime_iotime=100ms thinktime=20ms (no thinktime_blocks): fio pauses once
    thinktime_iotime + thinktime has passed since the last pause began, the job's start the
    first time: writes for 120 ms, then cycles of a 20 ms pause and 100 ms of writes."""
    s = _scenario(time_based=True, runtime="1s", thinktime="20ms", thinktime_iotime="100ms")
    bursts = _bursts(io_events(s)["v"], 0.020)
    starts = [b.issued_s.min() for b in bursts]
    assert bursts[0].done_s.max() == pytest.approx(0.120, abs=0.001)
    assert len(bursts) == 9  # 0, 140, 260, ... 980 ms
    assert all(b - a == pytest.approx(0.120, abs=0.001) for a, b in zip(starts[1:], starts[2:],
                                                                        strict=False))


def test_a_job_without_thinktime_is_unchanged() -> None:
    """thinktime=0 is fio's default: no pause, the same figures as without it."""
    plain = _figures(simulate(_scenario(time_based=True, runtime="100ms")))
    zero = _figures(simulate(_scenario(time_based=True, runtime="100ms", thinktime="0")))
    assert plain.equals(zero)


def test_the_options_reach_fio_and_the_null_run_drops_them() -> None:
    """The real run's fio gets them as given; the null run (the exact stream) does not: they
    change when fio issues, not what, and the pauses would slow it."""
    wl = Workload(rw="randwrite", thinktime="2000", thinktime_blocks=8, thinktime_iotime="1",
                  thinktime_spin="0")
    think = ["--thinktime=2000us", "--thinktime_iotime=1s", "--thinktime_blocks=8"]
    assert [o for o in fio_options(wl) if o.startswith("--thinktime")] == think
    assert not any(o.startswith("--thinktime") for o in null_options(wl, 100, None))
    paced = Workload(rw="randwrite", rate_iops=100, thinktime="2000", thinktime_blocks=8)
    assert not any(o.startswith("--thinktime") for o in null_options(paced, 100, None))
    assert not any("thinktime" in o for o in fio_options(Workload(rw="randwrite")))


@pytest.mark.parametrize(("given", "seconds"), [("1000", 0.001), ("2ms", 0.002),
                                                 ("1s", 1.0), (0.5, 0.5)])
def test_thinktime_reads_fios_units(given: object, seconds: float) -> None:
    assert Workload(thinktime=given).thinktime == pytest.approx(seconds)


def test_a_job_file_with_thinktime_runs_and_fio_check_says_how(tmp_path: Path) -> None:
    """fio-check printed "refused: not an option the model or the backends know", exit 2."""
    job = _write(tmp_path, "t.fio", "[w]\nrw=randwrite\nthinktime=2000\nthinktime_blocks=8\n"
                 "thinktime_spin=0\nruntime=1\ntime_based\n")
    ran = cowbench("fio-check", str(job))
    assert ran.code == 0, ran.stdout
    assert "thinktime=2000               both backends: thinktime=0.002 (seconds; every " \
        "thinktime_blocks I/Os" in ran.stdout
    wl = load_scenario(_job_scenario(tmp_path, job.read_text())).workloads["w"]
    assert (wl.thinktime, wl.thinktime_blocks, wl.thinktime_spin) == (0.002, 8, None)


def test_what_the_model_cannot_run_as_fio_is_refused_by_name(tmp_path: Path) -> None:
    """At iodepth > 1 counting completions (fio's default), or counting issues past the
    depth, fio's nbd engine keeps an I/O in flight across each pause: refused, with the
    option's key path, exit 2, no traceback; so are a paced read/write mix, whose directions
    follow the pauses' timing, and thinktime_spin, with which fio 3.33 can
    sleep for ever. A bare whole number in a scenario is refused (fio's microseconds, or the
    scenario's seconds?)."""
    p = _job_scenario(tmp_path, "[j]\nrw=randwrite\niodepth=8\nthinktime=1000\n"
                      "thinktime_blocks=4\n")
    ran = cowbench("validate", str(p))
    assert ran.code == 2 and "workloads.w.job_file[j].thinktime: thinktime at " \
        "iodepth > 1 counts completed I/Os" in ran.stderr and "Traceback" not in ran.stderr
    p = _job_scenario(tmp_path, "", "{rw: randwrite, iodepth: 4, thinktime: '1ms', "
                      "thinktime_blocks: 16, thinktime_blocks_type: issue}")
    ran = cowbench("validate", str(p))
    assert ran.code == 2 and "workloads.w.thinktime_blocks: thinktime_blocks (16) above " \
        "iodepth (4)" in ran.stderr, ran.stderr
    p = _job_scenario(tmp_path, "", "{rw: randwrite, iodepth: 4, thinktime: '1ms', "
                      "thinktime_iotime: 1, thinktime_blocks_type: issue}")
    ran = cowbench("validate", str(p))
    assert ran.code == 2 and "workloads.w.thinktime_iotime: thinktime_iotime without " \
        "thinktime_blocks at iodepth 4" in ran.stderr, ran.stderr
    p = _job_scenario(tmp_path, "[j]\nrw=randrw\nrate_iops=100\nthinktime=20ms\n")
    ran = cowbench("validate", str(p))
    assert ran.code == 2 and "workloads.w.job_file[j].thinktime: thinktime on a read/write " \
        "mix under rate_iops" in ran.stderr, ran.stderr
    p = _job_scenario(tmp_path, "[j]\nthinktime=1000\nthinktime_spin=500\n")
    ran = cowbench("validate", str(p))
    assert ran.code == 2 and "workloads.w.job_file[j].thinktime_spin: fio 3.33 sleeps for " \
        "ever once a spin outlasts the thinktime" in ran.stderr, ran.stderr
    p = _job_scenario(tmp_path, "", "{rw: randwrite, thinktime: 1000}")
    ran = cowbench("validate", str(p))
    assert ran.code == 2 and "workloads.w.thinktime: 1000 is microseconds to fio" \
        in ran.stderr, ran.stderr
    # after a ramp fio 3.33 stops pausing for a while (a user's OLTP job: 45% under)
    p = _job_scenario(tmp_path, "[j]\nrw=randrw\nramp_time=2\nruntime=1\ntime_based\n"
                      "thinktime=5ms\nthinktime_blocks=16\n")
    ran = cowbench("validate", str(p))
    assert ran.code == 2 and "workloads.w.job_file[j].thinktime: thinktime after a " \
        "ramp_time" in ran.stderr, ran.stderr


#: Each pause of the real run may last longer than asked: Linux's timer slack (50 us) and the
#: wait for a CPU on a loaded 2-core machine (0.26 ms a pause measured with fio 3.33 here:
#: thinktime=1000 thinktime_blocks=16, 769 cycles of 2.6 ms, 16 writes of 84 us). A bound.
OVERSHOOT_S = 0.001


@needs_tools
@pytest.mark.real
def test_bursts_predict_the_real_runs_count(tmp_path: Path) -> None:
    """randwrite 4k, iodepth=1, thinktime=20ms thinktime_blocks=4, 2 s, through qemu-nbd:
    the pauses take most of each cycle, so both backends issue about 4 writes per
    (pause + burst). The model's cycle differs from the real one by each burst's time (4
    writes at the slower of the two latencies) plus the real pause's overshoot, and the count
    by one burst at most besides: that is the tolerance (10-20% on this machine: writes of
    0.2-0.6 ms). fio's stream without the pauses is the real run's (data_clusters at fio's
    count equal). With thinktime=10ms thinktime_blocks=8 here: 1,377 writes predicted, 1,272
    and 1,056 measured (writes of 0.31 and 0.62 ms, the machine loaded)."""
    from cowbench.runner import run_scenario
    from cowbench.store import read_run

    pause, blocks = 0.020, 4
    s = _scenario(disk="256MiB", time_based=True, runtime=2, thinktime="20ms",
                  thinktime_blocks=blocks, offsets="auto")
    out = tmp_path / "run"
    run_scenario(s, out, "both")
    comp = pd.read_csv(out / "comparison.csv").set_index(["entity", "metric"])
    ios, lat = comp.loc[("vm:v", "write_ios")], comp.loc[("vm:v", "write_lat_mean_s")]
    burst = blocks * max(lat.predicted, lat.measured)
    cycles = ios.measured / blocks
    tol = (burst + OVERSHOOT_S) / pause + 1 / cycles
    assert ios.predicted == pytest.approx(ios.measured, rel=tol), (ios, tol)
    assert ios.measured < 2 / pause * blocks * 1.01  # the pauses did bound it
    at = read_run(out)["offsets"]["v"]["at_measured_ios"]
    assert at["data_clusters"] == comp.loc[("vm:v", "data_clusters")].measured
