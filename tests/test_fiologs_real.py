"""The model's fio logs against fio 3.33's own, of the same scenario run as the real backend
runs fio (its nbd engine on a qemu-nbd export, the VM's jobs as ``cowbench.fiojob.job_args``
gives them), each job asking for its logs as a job file's bare ``write_*_log`` does: the same
files, and each clone's time from its own start (issue 19)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cowbench.fiojob import fio_options, job_args
from cowbench.nullexport import null_export
from cowbench.runner import run_scenario
from cowbench.scenario import load_scenario
from cowbench.tools import RawLog, which
from cowbench.workload_schema import Workload
from real.workload.fioclock import clock_args

from .clirun import cowbench
from .conftest import needs_tools
from .test_fiologs import scenario

pytestmark = [pytest.mark.real, needs_tools]

W = 100  # log_avg_msec
#: the reader's ramp, in ms: the nearest wrong origin for its logs (its start before the ramp)
RAMP = 1000
#: how late fio's log lines may come, in ms: half the way to the nearest wrong origin. fio
#: writes a window's line when the first I/O after the window ends completes, and its helper
#: thread takes the rates; beside the whole suite's tests both wait for a core (alone: 10 ms
#: for latency lines, 86 for the first rate sample; in CI, 2026-12-06, a reader clone's first
#: latency line came at 162 ms, its window's end at 100). The model's own times are exact.
LATE = RAMP // 2
#: how early fio's rate lines may come: its windows are its own clock's, not the clone's (in
#: one whole suite, 2026-12-05, a reader clone's rate lines came at 99, 198 and 297 ms)
RATE_EARLY = 5
#: two writer clones; a reader after them that starts at 1 s and ramps RAMP ms, then reads
#: 408 ms more (2,816 reads at 2,000 IOPS, the ramp's among them); a time-based job of
#: 500 ms after that
JOB = """\
[global]
bs=4k
[w]
rw=write
size=1m
rate_iops=1000
numjobs=2
[r]
stonewall
rw=read
size=11m
rate_iops=2000
startdelay=1
ramp_time=1s
[t]
stonewall
rw=randwrite
size=8m
rate_iops=1000
time_based
runtime=500ms
"""


def real_logs(tmp: Path, wl: Workload, vm: str) -> Path:
    """fio's own logs of ``wl``, run as the real backend runs VM ``vm``'s fio, in a dir."""
    out = tmp / "real"
    out.mkdir()

    def options(part: Workload) -> list[str]:
        name = f"{vm}.{part.section}" if wl.jobs else vm  # the job's name: a bare option's
        return [*fio_options(part), *(f"--write_{k}_log={name}" for k in ("bw", "iops", "lat")),
                f"--log_avg_msec={W}"]

    with null_export(64 << 20, RawLog(tmp / "raw"), vm) as uri:
        subprocess.run([which("fio"), *clock_args(), "--ioengine=nbd", f"--uri={uri}",
                        "--output-format=json", f"--output={tmp / 'real.json'}",
                        *job_args(wl, vm, options)], check=True, capture_output=True,
                       cwd=out, timeout=120)
    return out


def same_start(model: Path, real: Path, name: str) -> tuple[list[int], list[int]]:
    """Log ``name``'s times in the model's and fio's folders, checked to start alike: each
    clone's time from its own start, its first window, not the reader's start 2 s into fio's
    run nor its start before its ramp, RAMP ms earlier. The model's first line ends its first
    window exactly; fio's comes late (its lines wait for an I/O after the window's end, its
    rates for its helper thread, both for a core beside the suite's other tests) and its rate
    lines at most RATE_EARLY early: within LATE, half the way to the nearest wrong origin."""
    got, want = times(model / name), times(real / name)
    assert got and want, name
    assert got[0] == W, (name, got, want)
    early = RATE_EARLY if "lat" not in name else 0
    assert W - early <= want[0] <= W + LATE, (name, got, want)
    return got, want


def times(path: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in path.read_text().splitlines()]


def test_the_model_logs_are_fio_s_files_with_fio_s_time_origins(
        tmp_path: Path, no_leaks: None) -> None:
    s = scenario(tmp_path, JOB)
    wl = s.workload_of(s.vms[0])
    assert wl is not None
    run_scenario(s, tmp_path / "run", "sim")
    proc = cowbench("fio-json", str(tmp_path / "run"), "--logs", "--log-avg-msec", str(W))
    assert proc.code == 0, proc.stderr
    model = tmp_path / "run" / "fio-json"
    real = real_logs(tmp_path, wl, "v")
    mine = sorted(p.name for p in model.glob("*.log"))
    theirs = sorted(p.name for p in real.glob("*.log") if "_slat." not in p.name)
    assert mine == theirs  # before: v_bw.1.log, v_iops.1.log, v_clat.1.log, v_lat.1.log
    assert {n.split("_")[0] for n in mine} == {"v.w", "v.r", "v.t"}
    assert {n.rsplit(".", 2)[1] for n in mine} == {"1", "2", "3", "4"}
    for name in mine:
        got, want = same_start(model, real, name)
        # and the clone's end, from the same origin (the reader's 408 ms after its ramp, the
        # time-based job's 500 ms): latency logs end there, fio's rates (late, and none for
        # the window the end cuts short) within it
        end = times(model / name.replace("_bw.", "_clat.").replace("_iops.", "_clat."))[-1]
        if "lat" in name:
            assert abs(got[-1] - want[-1]) <= LATE, (name, got, want)
        else:
            assert got[-1] <= end and want[-1] <= end + LATE, (name, got, want)


def test_a_real_run_writes_the_job_file_s_logs_beside_the_model_s_names(
        tmp_path: Path, no_leaks: None) -> None:
    """``--backend both`` with a job file asking for bw, iops and latency logs: the real
    run's fio writes them under raw/ (its VM's fio directory) with fio's names, the model's
    (``fio-json --logs``, the job's own log_avg_msec) have the same names, and each clone's
    times agree as above; run.json no longer lists the options as replaced. Before: replaced,
    no real log at all."""
    job = JOB.replace("[global]\n", f"[global]\nwrite_bw_log\nwrite_iops_log\nwrite_lat_log\n"
                      f"log_avg_msec={W}\n")
    scenario(tmp_path, job)
    run = tmp_path / "run"
    proc = cowbench("run", str(tmp_path / "s.yaml"), "--backend", "both", "--uncalibrated",
                    "--out", str(run))  # the logs' names and origins: no calibration needed
    assert proc.code == 0, proc.stderr
    notes = json.loads((run / "run.json").read_text()).get("workload_notes", {})
    assert not [r for rs in notes.values() for r in rs if "_log" in r["option"]
                or r["option"] in ("log_avg_msec", "per_job_logs")], notes
    proc = cowbench("fio-json", str(run), "--logs")  # the job's log_avg_msec, not 500
    assert proc.code == 0, proc.stderr
    model = run / "fio-json"
    mine = sorted(p.name for p in model.glob("*.log"))
    dirs = {p.parent for p in (run / "raw").rglob("*.log") if not p.name.startswith("issued")}
    assert len(dirs) == 1, dirs
    real = dirs.pop()
    assert real.name.endswith("fio-v") and real.parent == run / "raw"
    theirs = sorted(p.name for p in real.glob("*.log") if not p.name.startswith("issued"))
    assert mine == theirs and len(mine) == 4 * 5  # 4 clones: bw, iops, clat, lat, slat each
    assert str(real) in proc.stdout.replace("\n", "")  # fio-json says where they are
    for name in mine:
        if "_slat." in name:  # the model's is empty: it has no submission stage
            assert not (model / name).read_text()
        else:
            same_start(model, real, name)


#: three jobs asking for different logs (a prefix and per_job_logs=0 for one; bw alone for
#: another) and one asking for none, each section named as the real run names it (VM v)
ASKED = """\
[global]
bs=4k
size=1m
rate_iops=1000
log_avg_msec=100
[{w}]
rw=write
numjobs=2
write_bw_log
[{r}]
rw=read
write_lat_log=rl
write_iops_log
per_job_logs=0
[{n}]
rw=read
"""


def fio_file_set(tmp: Path, job: str) -> list[str]:
    """The logs fio 3.33 writes for ``job``, run on a file with its default (psync) engine."""
    out = tmp / "fio"
    out.mkdir()
    (out / "job.fio").write_text(job.replace("[global]\n", f"[global]\nfilename={tmp / 'f'}\n"))
    subprocess.run([which("fio"), "--output=/dev/null", "job.fio"], check=True,
                   capture_output=True, cwd=out, timeout=60)
    return sorted(p.name for p in out.glob("*.log"))


def test_fio_json_logs_writes_the_logs_the_job_file_asks_for(tmp_path: Path) -> None:
    """A VM whose job file asks fio for logs gets from ``fio-json --logs`` exactly the files
    fio 3.33 writes for it: ``write_bw_log`` a _bw log, ``write_iops_log`` an _iops log,
    ``write_lat_log`` _lat, _clat and _slat (the model's _slat empty, as fio's own is for an
    engine that does not time submissions: psync here), nothing for a job asking for none.
    Before: every VM got bw, iops, clat and lat for every clone, 16 files here."""
    real = fio_file_set(tmp_path, ASKED.format(w="v.w", r="v.r", n="v.n"))
    assert real == ["rl_clat.log", "rl_lat.log", "rl_slat.log", "v.r_iops.log",
                    "v.w_bw.1.log", "v.w_bw.2.log"]
    scenario(tmp_path, ASKED.format(w="w", r="r", n="n"))
    run_scenario(load_scenario(tmp_path / "s.yaml"), tmp_path / "run", "sim")
    proc = cowbench("fio-json", str(tmp_path / "run"), "--logs")
    assert proc.code == 0, proc.stderr
    model = tmp_path / "run" / "fio-json"
    assert sorted(p.name for p in model.glob("*.log")) == real
    assert (model / "rl_slat.log").read_text() == (tmp_path / "fio" / "rl_slat.log").read_text()
    assert times(model / "v.w_bw.1.log") and times(model / "rl_clat.log")


#: a time-based job of 200 ms, shorter than its log window
SHORT = """\
[global]
bs=4k
size=4m
write_bw_log
write_iops_log
write_lat_log
log_avg_msec=1000
[{t}]
rw=randwrite
rate_iops=100
time_based
runtime=200ms
"""


def test_a_job_shorter_than_its_window_logs_no_rate_as_fio(tmp_path: Path) -> None:
    """fio 3.33 samples a clone's rates only while it runs, the first at W after its start:
    a 200 ms job with log_avg_msec=1000 gets empty _bw and _iops files and one latency line,
    at its end, and so do the model's (the whole file set the same)."""
    real = fio_file_set(tmp_path, SHORT.format(t="v"))
    scenario(tmp_path, SHORT.format(t="t"))
    run_scenario(load_scenario(tmp_path / "s.yaml"), tmp_path / "run", "sim")
    assert cowbench("fio-json", str(tmp_path / "run"), "--logs").code == 0
    model = tmp_path / "run" / "fio-json"
    assert sorted(p.name for p in model.glob("*.log")) == real
    for kind in ("bw", "iops"):
        assert times(model / f"v_{kind}.1.log") == [] == times(tmp_path / "fio" /
                                                                f"v_{kind}.1.log")
    for kind in ("lat", "clat"):
        got, want = times(model / f"v_{kind}.1.log"), times(tmp_path / "fio" /
                                                               f"v_{kind}.1.log")
        # fio's line late as above, not at the window's end (1,000 ms)
        assert got == [200] and len(want) == 1 and 200 <= want[0] <= 200 + LATE, (got, want)
