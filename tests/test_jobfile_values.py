"""Option values of job files as fio 3.33 reads them: times with its units, 0 as its default.
The ``real`` tests ask the installed fio (``--debug=parse`` prints each value as parsed;
``--output-format=json`` of a null-engine run gives the bytes a job moves)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from cowbench.jobfile import fio_seconds
from cowbench.scenario import load_scenario

from .clirun import cowbench
from .conftest import needs_tools
from .test_jobfile_fio import _scenario, _write, fio_parse


def _fio_parsed(tmp: Path, option: str, value: str) -> int | None:
    """``option=value`` as fio parses it (its integer), None when fio refuses it."""
    job = _write(tmp, "p.fio", f"[j]\nioengine=null\nrw=write\nsize=1m\n{option}={value}\n")
    ran = fio_parse(job, "--debug=parse")
    text = ran.stdout + ran.stderr
    if ran.returncode or "failed parsing" in text:
        return None
    m = re.search(rf"handle_option={option}, .*\n.*\n.*ret=0, out=(\d+)", text)
    assert m, text
    return int(m.group(1))


def _fio_bytes(tmp: Path, job: str) -> list[tuple[int, int]]:
    """``(read, written)`` bytes of each job fio's null engine runs for ``job``."""
    p = _write(tmp, "b.fio", job.replace("]\n", "]\nioengine=null\n", 1))
    ran = subprocess.run(["fio", "--output-format=json", str(p)], check=True,
                         capture_output=True, text=True, cwd=tmp)
    return [(j["read"]["io_bytes"], j["write"]["io_bytes"])
            for j in json.loads(ran.stdout)["jobs"]]


#: runtime values and the microseconds fio 3.33 makes of them (fio --debug=parse, measured).
FIO_TIMES_US = {"30": 30_000_000, "30s": 30_000_000, "500msec": 500_000, "500ms": 500_000,
                "5MS": 5_000, "1000000usec": 1_000_000, "10us": 10, "2m": 120_000_000,
                "2M": 120_000_000, "1h": 3_600_000_000, "1H": 3_600_000_000,
                "1d": 86_400_000_000, "0": 0,
                # fio reads unknown letters as microseconds and stops a number at '.'
                "1min": 1, "10sec": 10, "10mins": 10, "1hour": 1, "3x": 3, "1.5": 1_000_000}
#: The values cowbench refuses, since fio's reading is surely not what they mean.
SURPRISES = {"1min", "10sec", "10mins", "1hour", "3x", "1.5"}


def test_times_are_read_as_fio_reads_them() -> None:
    for value, us in FIO_TIMES_US.items():
        if value in SURPRISES:
            with pytest.raises(ValueError, match="fio 3.33") as err:
                fio_seconds(value)
            shown = f"{us} us" if value != "1.5" else "takes 1 s"
            assert shown in str(err.value), (value, str(err.value))
        else:
            assert round(fio_seconds(value) * 1e6) == us, value


@needs_tools
@pytest.mark.real
def test_fio_reads_the_same_times(tmp_path: Path) -> None:
    assert {v: _fio_parsed(tmp_path, "runtime", v) for v in FIO_TIMES_US} == FIO_TIMES_US


def test_runtime_suffixes_reach_the_workload(tmp_path: Path) -> None:
    wl = load_scenario(_scenario(tmp_path, "[j]\nrw=write\nsize=1m\nruntime=500msec\n"
                                           "time_based\n")).workloads["w"]
    assert (wl.runtime, wl.time_based) == (0.5, True)
    from cowbench.fiojob import fio_options

    assert "--runtime=500000us" in fio_options(wl)


def test_a_refused_runtime_is_the_only_problem(tmp_path: Path) -> None:
    p = _scenario(tmp_path, "[j]\nrw=write\nsize=1m\nruntime=1min\ntime_based\n")
    ran = cowbench("validate", str(p))
    assert ran.code == 2 and "Traceback" not in ran.stderr
    assert "workloads.w.job_file[j].runtime: '1min': fio 3.33 knows no unit 'min'" in ran.stderr
    assert "time_based" not in ran.stderr
    checked = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert checked.code == 2 and "time_based needs" not in checked.stdout


@pytest.mark.parametrize("job,field", [("runtime=0\n", "runtime"), ("timeout=0s\n", "runtime"),
                                       ("io_size=0\n", "io_size"), ("io_limit=0\n", "io_size"),
                                       ("io_size=4m\nio_size=0\n", "io_size"),
                                       ("runtime=5\nruntime=0\n", "runtime")])
def test_zero_is_fios_default(tmp_path: Path, job: str, field: str) -> None:
    p = _scenario(tmp_path, f"[j]\nrw=randwrite\nsize=8m\n{job}")
    wl = load_scenario(p).workloads["w"]
    assert getattr(wl, field) is None
    checked = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert checked.code == 0 and f"{field} absent (0 is fio's default" in checked.stdout


@needs_tools
@pytest.mark.real
def test_fio_takes_zero_as_its_default(tmp_path: Path) -> None:
    for zero in ("runtime=0", "io_size=0"):
        assert _fio_bytes(tmp_path, f"[j]\nrw=write\nbs=64k\nsize=8m\n{zero}\n") == \
            [(0, 8 << 20)]


def test_io_size_in_percent_goes_to_fio(tmp_path: Path) -> None:
    """fio reads io_size=N% as N% of the job's size (cowbench.fiopercent gives the null run
    its bytes; tests/test_fiopercent.py compares the stream with the nbd engine's)."""
    p = _scenario(tmp_path, "[p]\nrw=randwrite\nbs=4k\nsize=25%\nio_size=10%\n")
    wl = load_scenario(p).workloads["w"]
    assert (wl.io_size, wl.fio_extra) == (None, {"size": "25%", "io_size": "10%"})
    checked = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert checked.code == 0 and "io_size=10%                  fio only" in checked.stdout
    ran = cowbench("validate", str(_scenario(tmp_path, "[p]\nrw=write\nio_size=150%\n")))
    assert ran.code == 2 and "workloads.w.job_file[p].io_size: io_size in percent is a whole " \
        "number from 0% to 100% of the job's size, got '150%'" in ran.stderr
    ran = cowbench("validate", str(_scenario(tmp_path, "[p]\nrw=write\nio_size=10%\n",
                                             "{job_file: job.fio, offsets: model}")))
    assert ran.code == 2 and "job_file[p].io_size: the model does not generate it" in ran.stderr


PER_DIRECTION = ("[bs]\nrw=randrw\nsize=16m\nio_size=4m\nnorandommap\n"
                 "bssplit=4k/50:64k/50,64k/100\n")  # norandommap: fio shrinks no I/O


def test_a_per_direction_bssplit_goes_to_fio(tmp_path: Path) -> None:
    from cowbench.fiojob import fio_options

    wl = load_scenario(_scenario(tmp_path, PER_DIRECTION)).workloads["w"]
    assert (wl.bssplit, wl.fio_extra) == (None, {"bssplit": "4k/50:64k/50,64k/100"})
    assert fio_options(wl)[-1] == "--bssplit=4k/50:64k/50,64k/100"
    ran = cowbench("validate", str(_scenario(tmp_path, PER_DIRECTION,
                                             "{job_file: job.fio, offsets: model}")))
    assert ran.code == 2 and "job_file[bs].bssplit: the model does not generate it" in ran.stderr
    bad = PER_DIRECTION.replace(",64k/100", ",64k/60:4k/60")
    ran = cowbench("validate", str(_scenario(tmp_path, bad)))
    assert ran.code == 2
    assert "workloads.w.job_file[bs].bssplit: bssplit percentages add up to 120" in ran.stderr
    checked = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert checked.code == 2 and "job_file[bs].bssplit: bssplit percentages" in checked.stdout


@needs_tools
@pytest.mark.real
def test_fio_splits_each_direction_by_its_own_bssplit(tmp_path: Path) -> None:
    """The null run the model takes its stream from (the real run gets the same option):
    reads of 4 KiB and 64 KiB, writes of 64 KiB only, io_size's 4 MiB (with its random map fio
    would shrink an I/O to the room the map leaves)."""
    from cowbench.fiojob import fio_null_traces
    from cowbench.tools import RawLog

    wl = load_scenario(_scenario(tmp_path, PER_DIRECTION)).workloads["w"]
    (trace,) = fio_null_traces(wl, "v", 64 << 20, RawLog(tmp_path / "raw"))
    reads, writes = trace.lengths[trace.ddir == 0], trace.lengths[trace.ddir == 1]
    assert set(reads.tolist()) == {4096, 65536} and set(writes.tolist()) == {65536}
    assert 4 << 20 <= int(trace.lengths.sum()) < (4 << 20) + 65536  # the last I/O whole


def test_filename_format_keeps_fios_own_variables(tmp_path: Path) -> None:
    """fio fills in $jobnum, $filenum ... per file; the backend replaces the option anyway."""
    job = "[j]\nrw=write\nsize=1m\nfilename_format=x.$jobnum.$filenum\n"
    wl = load_scenario(_scenario(tmp_path, job)).workloads["w"]
    assert [(r.option, r.value) for r in wl.replaced] == [("filename_format",
                                                           "x.$jobnum.$filenum")]
    checked = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert checked.code == 0 and "replaced by the backend" in checked.stdout
    ran = cowbench("validate", str(_scenario(tmp_path, job.replace("filename_format", "bs"))))
    assert ran.code == 2 and "a '$' other than ${VAR}" in ran.stderr


@needs_tools
@pytest.mark.real
def test_fio_takes_filename_format_with_its_variables(tmp_path: Path) -> None:
    job = _write(tmp_path, "f.fio", "[j]\nioengine=null\nrw=write\nsize=1m\n"
                                    "filename_format=x.$jobnum.$filenum\n")
    assert fio_parse(job).returncode == 0


@pytest.mark.parametrize("option", ["fsync=32", "fdatasync=1", "end_fsync=1",
                                    "fsync_on_close=1", "sync=1", "sync=dsync"])
def test_flushes_are_refused_alike(tmp_path: Path, option: str) -> None:
    """sync=1 changes the I/O as much as fsync: each is refused, saying why, none replaced."""
    key = option.split("=")[0]
    ran = cowbench("validate", str(_scenario(tmp_path, f"[db]\nrw=write\nsize=1m\n{option}\n")))
    assert ran.code == 2 and "Traceback" not in ran.stderr
    assert f"workloads.w.job_file[db].{key}: {key}: " in ran.stderr
    assert "the model does not simulate flushes yet" in ran.stderr
    checked = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert checked.code == 2 and "the model does not simulate flushes yet" in checked.stdout


def test_no_flush_and_thread_are_replaced_saying_why(tmp_path: Path) -> None:
    job = "[db]\nrw=write\nsize=1m\nfsync=0\nsync=none\nend_fsync=0\nthread\n"
    wl = load_scenario(_scenario(tmp_path, job)).workloads["w"]
    reasons = {r.option: r.reason for r in wl.replaced}
    assert set(reasons) == {"fsync", "sync", "end_fsync", "thread"}
    assert reasons["fsync"] == "fio's default, no flush: the runs issue none"
    assert reasons["thread"].startswith("fio runs each job as a thread of its process")
    assert "page cache" not in reasons["thread"]


@needs_tools
@pytest.mark.real
def test_fio_takes_these_flush_options(tmp_path: Path) -> None:
    for option in ("fsync=32", "fdatasync=1", "end_fsync=1", "fsync_on_close=1", "sync=1",
                   "sync=dsync", "sync=none", "fsync=0"):
        job = _write(tmp_path, "f.fio", f"[j]\nioengine=null\nrw=write\nsize=1m\n{option}\n")
        ran = fio_parse(job)
        assert ran.returncode == 0 and "failed parsing" not in ran.stderr, option


@pytest.mark.parametrize("job", ["size=64m\nfilesize=16m\n", "filesize=16m\nsize=64m\n",
                                 "filesize=16m\n", "size=16m\n"])
def test_filesize_is_the_files_length_whatever_the_order(tmp_path: Path, job: str) -> None:
    wl = load_scenario(_scenario(tmp_path, f"[j]\nrw=randwrite\nbs=64k\n{job}")).workloads["w"]
    assert wl.size == 16 << 20


def test_more_files_or_a_smaller_size_are_refused(tmp_path: Path) -> None:
    ran = cowbench("validate", str(_scenario(tmp_path, "[j]\nrw=write\nfilesize=16m\n"
                                                       "nrfiles=4\n")))
    assert ran.code == 2 and "workloads.w.job_file[j].nrfiles: fio spreads the job over 4 " \
        "files" in ran.stderr
    ran = cowbench("validate", str(_scenario(tmp_path, "[j]\nrw=write\nsize=8m\n"
                                                       "filesize=16m\n")))
    assert ran.code == 2 and "workloads.w.job_file[j].filesize: a size (8m) smaller than " \
        "filesize" in ran.stderr
    assert load_scenario(_scenario(tmp_path, "[j]\nrw=write\nsize=1m\nnrfiles=1\n")
                         ).workloads["w"].size == 1 << 20


@needs_tools
@pytest.mark.real
def test_fio_writes_the_files_length(tmp_path: Path) -> None:
    """On a 128 MiB file (psync), size and filesize in either order issue size=16m's stream;
    four files of 16 MiB are 64 MiB; a smaller size moves only its bytes."""
    disk = tmp_path / "big.raw"
    disk.write_bytes(b"")
    os.truncate(disk, 128 << 20)
    streams = {}
    for name, opts in {"both": "size=64m\nfilesize=16m\n", "swapped": "filesize=16m\nsize=64m\n",
                       "size": "size=16m\n", "smaller": "size=8m\nfilesize=16m\n"}.items():
        log = tmp_path / f"{name}.iolog"
        job = _write(tmp_path, "f.fio", f"[j]\nioengine=psync\nfilename={disk}\nrw=randwrite\n"
                                         f"bs=64k\nrandseed=3\nwrite_iolog={log}\n{opts}")
        subprocess.run(["fio", "--output=/dev/null", str(job)], check=True, capture_output=True)
        streams[name] = [ln.split()[3] for ln in log.read_text().splitlines()
                         if len(ln.split()) == 5 and ln.split()[2] == "write"]
    assert streams["both"] == streams["swapped"] == streams["size"]
    assert len(streams["both"]) == 256 and len(streams["smaller"]) == 128
    assert _fio_bytes(tmp_path, "[j]\nrw=write\nbs=64k\nfilesize=16m\nnrfiles=4\n") == \
        [(0, 64 << 20)]


@pytest.mark.parametrize("job,key", [("[r]\nrw=read\nverify=md5\n", "verify"),
                                     ("[r]\nread_iolog=none.iolog\n", "read_iolog"),
                                     ("[r]\nread_iolog=empty.iolog\n", "read_iolog")])
def test_validate_names_the_job_file_and_section(tmp_path: Path, job: str, key: str) -> None:
    """As fio-check does: the job file, its section and option, not the scenario file nor
    workloads.w.read_iolog."""
    _write(tmp_path, "empty.iolog", "fio version 2 iolog\nf add\n")
    ran = cowbench("validate", str(_scenario(tmp_path, job)))
    assert ran.code == 2 and "Traceback" not in ran.stderr
    assert f"{tmp_path / 'job.fio'}: workloads.w.job_file[r].{key}: " in ran.stderr, ran.stderr
    assert "s.yaml" not in ran.stderr
    checked = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert checked.code == 2 and f"workload.job_file[r].{key}: " in checked.stdout
