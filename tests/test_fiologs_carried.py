"""A job file's log options reach the real run's fio (issue 19): ``write_bw_log``,
``write_iops_log``, ``write_lat_log``, ``log_avg_msec`` and ``per_job_logs`` are carried (no
longer replaced), written into the VM's fio directory under raw/, a prefix with a directory
refused, and the logs' size bounded before the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from cowbench.space import LOG_CAP_BYTES, log_bytes, log_cap_problem
from cowbench.tools import RawLog
from real.workload.fio import FioRun

from .clirun import cowbench
from .conftest import needs_tools
from .test_fiologs import scenario

LOGGED = """\
[global]
bs=4k
write_bw_log=wb
write_iops_log
write_lat_log
log_avg_msec=100
per_job_logs=1
write_hist_log=h
log_hist_msec=100
log_offset=1
[w]
rw=write
size=1m
numjobs=2
[r]
stonewall
rw=read
size=1m
"""


def test_log_options_are_carried_to_the_real_fio_not_replaced(tmp_path: Path) -> None:
    """Before: all of them replaced (run.json's workload_notes), the real fio given none."""
    s = scenario(tmp_path, LOGGED)
    wl = s.workload_of(s.vms[0])
    assert wl is not None
    for part in wl.parts:
        assert part.fio_logs == {"write_bw_log": "wb", "write_iops_log": None,
                                 "write_lat_log": None, "log_avg_msec": "100",
                                 "per_job_logs": "1"}
        # histogram logs and log_offset stay replaced, each with its reason
        assert {r.option for r in part.replaced} == {"write_hist_log", "log_hist_msec",
                                                      "log_offset"}
    argv = FioRun("v", "nbd://x", wl, tmp_path, log=RawLog(tmp_path / "raw")).argv
    w, r = argv.index("--name=v.w"), argv.index("--name=v.r")
    for job, opts in (("v.w", argv[w:r]), ("v.r", argv[r:])):
        assert {"--write_bw_log=wb", f"--write_iops_log={job}", f"--write_lat_log={job}",
                "--log_avg_msec=100", "--per_job_logs=1"} <= set(opts)
    assert not any("hist" in a or "log_offset" in a for a in argv)


@pytest.mark.parametrize("prefix", ["/tmp/x", "../x", "logs/x"])
def test_a_prefix_with_a_directory_is_refused_by_its_key_path(tmp_path: Path,
                                                               prefix: str) -> None:
    """fio would write outside the run (or where no directory is); before: replaced, and
    the model's logs named by the file name alone."""
    (tmp_path / "job.fio").write_text(f"[w]\nrw=write\nsize=1m\nwrite_bw_log={prefix}\n")
    (tmp_path / "s.yaml").write_text(
        "name: fl\nimages: [{name: b, virtual_size: 64MiB, synthetic: "
        "{data: [{offset: 0, length: 1MiB}]}}]\n"
        "vms:\n  - {name: v, image: b, workload: {job_file: job.fio}}\n")
    proc = cowbench("run", str(tmp_path / "s.yaml"), "--backend", "sim", "--out",
                    str(tmp_path / "run"))
    assert proc.code == 2, proc.stderr
    assert "vms[0].workload.job_file[w].write_bw_log" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_write_lat_log_beside_the_runs_own_record_of_clones_is_refused(tmp_path: Path) -> None:
    """With several clones, ``write_iolog: true`` records in per-I/O latency logs, which a
    job's own ``write_lat_log`` would replace."""
    (tmp_path / "job.fio").write_text("[w]\nrw=write\nsize=1m\nnumjobs=2\nwrite_lat_log=l\n")
    (tmp_path / "s.yaml").write_text(
        "name: fl\nimages: [{name: b, virtual_size: 64MiB, synthetic: "
        "{data: [{offset: 0, length: 1MiB}]}}]\n"
        "vms:\n  - {name: v, image: b, workload: {job_file: job.fio, write_iolog: true}}\n")
    proc = cowbench("run", str(tmp_path / "s.yaml"), "--backend", "sim", "--out",
                    str(tmp_path / "run"))
    assert proc.code == 2 and "write_lat_log" in proc.stderr and "write_iolog" in proc.stderr
    assert "Traceback" not in proc.stderr


#: a line per I/O of 64 MiB in 512-byte writes, 20 times over: 2.6 million I/Os, each in 5
#: logs
PER_IO = "[w]\nrw=write\nbs=512\nsize=64m\nloops=20\nwrite_lat_log\nwrite_bw_log\n" \
    "write_iops_log\nlog_avg_msec=0\n"


def test_logs_are_bounded_per_io_or_per_window(tmp_path: Path) -> None:
    """``log_avg_msec=0`` is a line per I/O in each of 5 logs; a time-based job's averaged
    logs a line per window and direction, whatever its rate."""
    s = scenario(tmp_path, PER_IO)
    ios = 64 * 2048 * 20
    assert log_bytes(s, s.vms[0], None) == 5 * (ios + 2) * 131
    assert log_cap_problem(s, None) is not None
    timed = scenario(tmp_path, "[t]\nrw=randwrite\ntime_based\nruntime=60\nwrite_bw_log\n"
                     "log_avg_msec=500\n")
    assert log_bytes(timed, timed.vms[0], None) == (2 * 121 + 2) * 131  # not 60 M I/Os
    assert log_cap_problem(timed, None) is None
    assert log_bytes(scenario(tmp_path, LOGGED.replace("write_", "#")), s.vms[0], None) == 0


@needs_tools
def test_a_real_run_whose_logs_pass_the_cap_is_refused_before_it_starts(
        tmp_path: Path) -> None:
    """exit 2 by the option's key path, nothing written; before, fio would have written
    about 1.7 GB of logs into raw/ (the option was replaced then: none at all)."""
    scenario(tmp_path, PER_IO)
    proc = cowbench("run", str(tmp_path / "s.yaml"), "--backend", "real", "--out",
                    str(tmp_path / "run"))
    assert proc.code == 2, proc.stderr
    assert "workloads.v.fio_logs.log_avg_msec" in proc.stderr
    assert "a line per I/O" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
    assert LOG_CAP_BYTES == 1 << 30


def test_the_logs_are_counted_in_the_run_s_space_check(tmp_path: Path) -> None:
    """The quick bound (and the model's check, by the same charge) holds the logs too;
    before, nothing of them."""
    from cowbench.spacebound import bound_needs

    job = "[w]\nrw=write\nsize=8m\nwrite_lat_log\nlog_avg_msec=0\n"
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    with_logs = scenario(tmp_path / "a", job)
    without = scenario(tmp_path / "b", job.replace("write_lat_log\n", ""))
    a, b = (bound_needs(s, tmp_path / "run") for s in (with_logs, without))
    assert a is not None and b is not None
    extra = log_bytes(with_logs, with_logs.vms[0], None)
    assert extra == 3 * (2048 + 2) * 131  # lat, slat, clat: a line per 4 KiB write
    assert sum(n.predicted for n in a) - sum(n.predicted for n in b) == extra


def test_validate_refuses_the_logs_run_would_refuse(tmp_path: Path) -> None:
    """``cowbench validate`` refuses what the run's log bound refuses where the file decides
    it (a job bounded by its I/O): exit 2 by the key path. Before, exit 0 there and exit 2
    at `run`. A time-based job's logs are left to the run (its count is the model's)."""
    scenario(tmp_path, PER_IO)
    proc = cowbench("validate", str(tmp_path / "s.yaml"))
    assert proc.code == 2, proc.stdout
    assert "workloads.v.fio_logs.log_avg_msec" in proc.stderr and "a line per I/O" in proc.stderr
    scenario(tmp_path, "[t]\nrw=randwrite\ntime_based\nruntime=60\nwrite_bw_log\n"
             "log_avg_msec=0\n")
    assert cowbench("validate", str(tmp_path / "s.yaml")).code == 0


#: a line per 4 KiB write of 20 GiB in each of the lat, clat and slat logs: 1.9 GiB
BIG = "[db]\nrw=randwrite\nbs=4k\nio_size=20g\nwrite_lat_log=x\nlog_avg_msec=0\n"


def test_fio_check_refuses_at_the_option_s_line_what_the_log_bound_refuses(
        tmp_path: Path) -> None:
    """``cowbench fio-check`` says, at the line of the option that makes the logs so long,
    that the run refuses it, in the words ``validate`` uses (one check, cowbench.space), and
    exits 2 as for any refused option. Before: exit 0, the line "the real run's fio", and
    validate and run refusing the file. A job whose I/O is bounded by the disk (no size) or
    by time alone is left to the run, as validate leaves a time-based one; one averaged over
    a runtime passes."""
    scenario(tmp_path, BIG)
    validate = cowbench("validate", str(tmp_path / "s.yaml"))
    assert validate.code == 2, validate.stdout
    why = validate.stderr.split("fio logs could take ", 1)[1].split()
    ran = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert ran.code == 2, ran.stdout
    line = next(ln for ln in ran.stdout.splitlines() if ln.strip().startswith("log_avg_msec=0"))
    assert "refused" in line and "a line per I/O" in line, ran.stdout
    assert ran.stdout.split("fio logs could take ", 1)[1].split()[:len(why)] == why
    assert "Traceback" not in ran.stderr
    for fine in (BIG.replace("io_size=20g\n", ""),  # the disk's size decides
                 BIG.replace("io_size=20g\n", "time_based\nruntime=60\n"),
                 BIG.replace("log_avg_msec=0", "runtime=60\nlog_avg_msec=500")):
        (tmp_path / "job.fio").write_text(fine)
        ran = cowbench("fio-check", str(tmp_path / "job.fio"))
        assert ran.code == 0, ran.stdout


def test_logs_without_log_avg_msec_are_refused_as_a_line_per_io(tmp_path: Path) -> None:
    """fio's log_avg_msec defaults to 0, a line per I/O: a job without it is refused with
    that reason, by its write_*_log option. Before: "a line per window ... give the job a
    runtime", which would not have shortened its logs."""
    (tmp_path / "job.fio").write_text(BIG.replace("log_avg_msec=0\n", ""))
    ran = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert ran.code == 2, ran.stdout
    line = next(ln for ln in ran.stdout.splitlines() if ln.strip().startswith("write_lat_log"))
    assert "refused" in line and "a line per I/O" in line and "per window" not in line
