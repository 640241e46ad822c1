"""The model's fio logs: named, numbered and timed as fio 3.33 writes them (issue 19).

Every rule here was measured with fio's null engine (``cowbench.fiologs``'s docstring has the
figures); ``tests/test_fiologs_real.py`` compares the files with fio's own through qemu-nbd.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cowbench.fiologs import clone_lines, log_files
from cowbench.runner import run_scenario
from cowbench.scenario import Scenario, load_scenario
from sim.driver import io_events

from .clirun import cowbench

#: a writer of two clones, then a stonewalled reader that starts late and ramps
SECTIONS = """\
[global]
bs=4k
[w]
rw=write
size=2m
rate_iops=2000
numjobs=2
[r]
stonewall
rw=read
size=2m
rate_iops=2000
startdelay=1
ramp_time=200ms
"""


def scenario(tmp: Path, job: str, vms: tuple[str, ...] = ("v",)) -> Scenario:
    (tmp / "job.fio").write_text(job)
    p = tmp / "s.yaml"
    p.write_text("name: fl\nseed: 3\nimages: [{name: b, virtual_size: 64MiB, synthetic: "
                 "{data: [{offset: 0, length: 16MiB}]}}]\nstrategy: {kind: qcow2_overlay, "
                 "cluster_size: 64KiB}\nvms:\n" + "".join(
                     f"  - {{name: {vm}, image: b, workload: {{job_file: job.fio}}}}\n"
                     for vm in vms))
    return load_scenario(p)


def names(s: Scenario, vm: str = "v") -> list[str]:
    wl = s.workload_of(s.vms[0])
    assert wl is not None
    return [f.name for f in log_files(wl, vm)]


def test_one_log_per_clone_numbered_by_fio_s_thread(tmp_path: Path) -> None:
    """fio numbers its threads across the whole process (w's clones 1 and 2, r 3) and names a
    log after the job: the real run's ``<vm>.<section>``; before, one ``v_*.1.log``."""
    assert names(scenario(tmp_path, SECTIONS)) == [
        f"v.{job}_{kind}.{n}.log" for job, n in (("w", 1), ("w", 2), ("r", 3))
        for kind in ("bw", "iops", "clat", "lat")]


def test_a_job_s_own_prefix_and_per_job_logs(tmp_path: Path) -> None:
    """``write_iops_log=PREFIX`` names that log, each option its own kind and no other
    (``write_lat_log`` gives clat, lat and slat); bare, the job's name. ``per_job_logs=0``:
    no thread number, every clone of the job in one file. Before: every job all of bw,
    iops, clat and lat, whatever it asked for."""
    job = SECTIONS.replace("[w]\n", "[w]\nwrite_iops_log=wio\nper_job_logs=0\n").replace(
        "[r]\n", "[r]\nwrite_lat_log=rl\nwrite_bw_log\n")
    got = names(scenario(tmp_path, job))
    assert got == ["wio_iops.log"] * 2 + [
        "v.r_bw.3.log", "rl_clat.3.log", "rl_lat.3.log", "rl_slat.3.log"]
    # a job asking for none, beside one that asks: none, as fio writes none for it
    assert names(scenario(tmp_path, SECTIONS.replace("[r]\n", "[r]\nwrite_bw_log\n"))) == [
        "v.r_bw.3.log"]


def test_a_workload_asking_for_no_log_gets_all_the_model_has(tmp_path: Path) -> None:
    """No ``write_*_log`` anywhere (a ``log_avg_msec`` alone asks fio for nothing): bw, iops,
    clat and lat of every clone, what ``fio-json --logs`` is asked for; no slat (the model
    has no submission stage)."""
    one = names(scenario(tmp_path, "[w]\nrw=write\nsize=1m\nnumjobs=2\nlog_avg_msec=50\n"))
    assert one == [f"v_{kind}.{n}.log" for n in (1, 2)  # a single section: the VM's name
                   for kind in ("bw", "iops", "clat", "lat")]


def test_each_clone_s_time_counts_from_its_own_start(tmp_path: Path) -> None:
    """The events carry each I/O's clone and the clone's origin: its start, after its
    startdelay, moved to its ramp's end; the stonewalled reader's own, not fio's."""
    ev = io_events(scenario(tmp_path, SECTIONS))["v"]
    assert sorted(set(ev.clone)) == [0, 1, 2]
    origin = ev.groupby("clone").origin_s.first()
    writer_end = ev[ev.clone < 2].done_s.max()
    assert origin[0] == origin[1] == 0.0
    # the reader starts once the writers are done (512 I/Os at 2,000 a second each) or at
    # its startdelay, whichever is later, and logs from its ramp's end
    assert writer_end == pytest.approx(0.256, abs=0.002)
    assert origin[2] == pytest.approx(1.0 + 0.2)
    assert ev[ev.clone == 2].issued_s.min() >= origin[2]  # the ramp's I/Os are not logged


def events(rows: list[tuple[float, float]], nbytes: int = 4096) -> pd.DataFrame:
    return pd.DataFrame([(i, d, nbytes, True) for i, d in rows],
                        columns=["issued_s", "done_s", "bytes", "is_write"])


def test_rates_every_window_with_completions_none_for_the_last_partial_one() -> None:
    """bw and IOPS at each W ms (fio's integer rate), no line for a window without
    completions, none for the window the clone's end cuts short."""
    done = [0.010 * k + 0.005 for k in range(10)]  # 100 IO/s over 0..100 ms
    done += [0.300 + 0.001 * k for k in range(20)]  # nothing in 100..300, then 20 in 20 ms
    lines = clone_lines(events([(t - 0.001, t) for t in done]), 0.0, 100)
    assert lines["iops"] == [(100, 100, 1, 0)]  # 300..319 ms: cut short by the end at 319
    assert lines["bw"] == [(100, 10 * 4096 * 1000 // 100 // 1024, 1, 0)]
    lines = clone_lines(events([(t - 0.001, t) for t in [*done, 0.45]]), 0.0, 100)
    assert [t for t, *_ in lines["iops"]] == [100, 400]  # 200 and 300: no completion


def test_no_rate_line_for_a_window_the_clone_s_end_closes() -> None:
    """fio's helper thread samples a clone's rates only while it runs (``calc_log_samples``
    skips a thread not ``TD_RUNNING``; at exit ``finalize_logs`` writes only samples already
    taken) and wakes a little late: no line for the window that ends as the clone does.
    fio 3.33, a time-based randwrite of rate_iops=100 on a file with W=500: runtime=1000ms
    logs one rate line, at 500 (12 runs of 12; at rate_iops=1000, 11 of 13); runtime=200ms
    with W=1000 logs none, its latency line at 200 (tests/test_fiologs_real.py). Before: a
    line at 1,000 ms too."""
    rows = [(k * 0.010, k * 0.010 + 0.0005) for k in range(100)]
    lines = clone_lines(events(rows), 0.0, 500, end=1.0)
    assert [t for t, *_ in lines["iops"]] == [500] == [t for t, *_ in lines["bw"]]
    assert [t for t, *_ in lines["clat"]] == [500, 1000]
    short = clone_lines(events(rows[:20]), 0.0, 1000, end=0.2)
    assert short["iops"] == short["bw"] == [] and [t for t, *_ in short["clat"]] == [200]
    # a clone still running past the window's end is sampled there (here by 1 microsecond;
    # the origin's float error, 1.2 + 1.0 - 1.2, is not taken for running past it)
    later = clone_lines(events([(i + 1.2, d + 1.2) for i, d in rows]), 1.2, 500, end=2.2)
    assert [t for t, *_ in later["iops"]] == [500]
    assert [t for t, *_ in clone_lines(events(rows), 0.0, 500, end=1.000001)["iops"]] == [
        500, 1000]


def test_latency_windows_close_at_the_first_completion_past_w() -> None:
    """Bursts every 350 ms with W=100 (fio 3.33's thinktime run: lines at 350, 700, 1,050):
    each burst's mean is written by the next burst's first completion, at its time; the
    rest at the clone's end."""
    rows = [(b * 0.35 + k * 0.001, b * 0.35 + k * 0.001 + 0.0005) for b in range(4)
            for k in range(20)]
    clat = clone_lines(events(rows), 0.0, 100)["clat"]
    assert [t for t, *_ in clat] == [350, 700, 1050, 1069]
    assert [v for _, v, *_ in clat] == [500_000] * 4


def test_log_avg_msec_0_is_a_line_per_io() -> None:
    lines = clone_lines(events([(0.0, 0.000008), (0.010, 0.010004)]), 0.0, 0)
    assert lines["iops"] == [(0, 1, 1, 4096), (10, 1, 1, 4096)]
    assert lines["clat"] == [(0, 8000, 1, 4096), (10, 4000, 1, 4096)]
    assert lines["bw"] == [(0, 4096 * 10**6 // 8000, 1, 4096), (10, 4096 * 10**6 // 4000, 1,
                                                                    4096)]


@pytest.mark.slow
def test_fio_json_logs_writes_fio_s_file_set(tmp_path: Path) -> None:
    s = scenario(tmp_path, SECTIONS)
    run_scenario(s, tmp_path / "run", "sim")
    proc = cowbench("fio-json", str(tmp_path / "run"), "--logs", "--log-avg-msec", "50")
    assert proc.code == 0, proc.stderr
    logs = sorted(p.name for p in (tmp_path / "run" / "fio-json").glob("*.log"))
    assert logs == sorted(names(s))
    reader = (tmp_path / "run" / "fio-json" / "v.r_iops.3.log").read_text().splitlines()
    assert reader[0].startswith("50, ")  # from the reader's own start, past its ramp


def test_two_vms_writing_one_log_name_are_refused_and_nothing_is_written(
        tmp_path: Path) -> None:
    s = scenario(tmp_path, "[w]\nrw=write\nsize=1m\nwrite_bw_log=same\n", vms=("a", "b"))
    run_scenario(s, tmp_path / "run", "sim")
    proc = cowbench("fio-json", str(tmp_path / "run"), "--logs")
    assert proc.code == 2 and "same_bw.1.log" in proc.stderr and "Traceback" not in proc.stderr
    # nothing at all: before, the VMs' fio JSON files were written, then the logs refused
    assert not (tmp_path / "run" / "fio-json").exists()
