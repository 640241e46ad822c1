"""fio's ``size=N%`` and ``offset=N%`` (issue 19): carried to the real run as written, and the
model's stream from fio's null engine is the nbd engine's own, I/O for I/O."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cowbench.errors import ScenarioError, UsageError
from cowbench.fiocheck import check
from cowbench.fiojob import fio_null_traces, recorded_traces
from cowbench.fiopercent import on_disk
from cowbench.iolog import Trace
from cowbench.jobfile import Section
from cowbench.jobopts import workload_of
from cowbench.scenario import Workload, load_scenario
from cowbench.tools import RawLog
from real.workload.fio import FioRun
from real.workload.nbd import NbdExport

from .conftest import needs_tools

#: 100 MiB and 12 KiB: percentages of it are not multiples of the block sizes below.
DISK = (100 << 20) + (12 << 10)

JOBS: dict[str, dict[str, str]] = {
    "size and offset": {"rw": "randwrite", "bs": "64k", "size": "50%", "offset": "25%"},
    "offset rounded up to bs": {"rw": "write", "bs": "48k", "offset": "10%"},
    "size cut to bs": {"rw": "randwrite", "bs": "48k", "size": "30%"},
    "bssplit's smallest": {"rw": "randwrite", "bssplit": "4k/50:48k/50", "size": "33%",
                           "offset": "7%"},
    "bsrange's smallest": {"rw": "write", "bsrange": "8k-24k", "offset": "13%", "size": "5%"},
    "size past the end": {"rw": "write", "bs": "64k", "offset": "90%", "size": "20%"},
    "all of it": {"rw": "randwrite", "bs": "16k", "size": "100%", "offset": "0%"},
    "offset_increment": {"rw": "write", "bs": "4k", "size": "1m", "numjobs": "3",
                         "offset_increment": "25%"},
    "io_size of the rest": {"rw": "randwrite", "bs": "48k", "offset": "3m", "io_size": "10%"},
    "io_size of size in percent": {"rw": "randrw", "bs": "4k", "size": "25%",
                                   "io_size": "10%"},
    "io_size of size in bytes": {"rw": "write", "bs": "64k", "size": "8m", "io_size": "33%"},
}


def _workload(options: dict[str, str], **own: object) -> Workload:
    wl, handled = workload_of(Section("j", dict(options)), offsets_fio=True)
    assert not [h for h in handled if h.kind == "refused"]
    return Workload.model_validate({**wl, **own})


def test_percentages_become_fios_bytes_on_the_disk() -> None:
    """The bytes fio 3.33 computes (filesetup.c): the offset rounded up to the smallest
    block, the size at most the rest of the disk, cut to a multiple of it."""
    wl = on_disk(_workload(JOBS["offset rounded up to bs"]), DISK)
    assert wl.offset == -(-(DISK // 10) // 49152) * 49152 and wl.size is None
    wl = on_disk(_workload(JOBS["bssplit's smallest"]), DISK)
    assert wl.offset == -(-(DISK * 7 // 100) // 4096) * 4096
    assert wl.size == DISK * 33 // 100 - DISK * 33 // 100 % 4096
    wl = on_disk(_workload(JOBS["size past the end"]), DISK)
    assert wl.size == DISK - wl.offset - (DISK - wl.offset) % 65536
    assert wl.fio_extra == {}
    plain = _workload({"rw": "write", "size": "1m"})
    assert on_disk(plain, DISK) is plain


def test_io_size_in_percent_is_of_the_jobs_region() -> None:
    """fio 3.33 (filesetup.c): io_size=N% is N% of the job's region, its size, else the rest
    of the disk after its offset; 0% and 100% are the region (fio, null engine, size=100m:
    io_size=10% moves 10 MiB, 0% and 100% all of it, 150% is refused)."""
    wl = on_disk(_workload(JOBS["io_size of the rest"]), DISK)
    assert (wl.io_size, wl.size, wl.fio_extra) == ((DISK - (3 << 20)) // 10, None, {})
    wl = on_disk(_workload(JOBS["io_size of size in percent"]), DISK)
    size = DISK * 25 // 100 - DISK * 25 // 100 % 4096
    assert (wl.size, wl.io_size) == (size, size // 10)
    assert on_disk(_workload(JOBS["io_size of size in bytes"]), DISK).io_size == \
        (8 << 20) * 33 // 100
    for whole in ("0%", "100%"):
        assert on_disk(_workload({"rw": "write", "io_size": whole}), DISK).io_size is None


@needs_tools
@pytest.mark.real
def test_fio_takes_io_size_in_percent_of_the_size(tmp_path: Path) -> None:
    job = tmp_path / "j.fio"
    moved = {}
    for pct in ("10%", "0%", "100%", "150%"):
        job.write_text(f"[j]\nioengine=null\nrw=write\nbs=4k\nsize=100m\nio_size={pct}\n")
        ran = subprocess.run(["fio", "--output-format=json", str(job)], capture_output=True,
                             text=True)
        moved[pct] = json.loads(ran.stdout)["jobs"][0]["write"]["io_bytes"] \
            if ran.returncode == 0 else None
    assert moved == {"10%": 10 << 20, "0%": 100 << 20, "100%": 100 << 20, "150%": None}


def test_the_real_run_gets_the_percentages_as_written() -> None:
    from cowbench.fiojob import fio_options

    opts = fio_options(_workload(JOBS["size and offset"]))
    assert opts[-2:] == ["--size=50%", "--offset=25%"]  # last: fio takes the last value


@pytest.mark.parametrize("value,why", [
    ("12.5%", r"size in percent is a whole number from 1% to 100%"),
    ("0%", r"size in percent is a whole number from 1% to 100%"),
    ("101%", r"size in percent is a whole number from 1% to 100%")])
def test_percentages_fio_reads_otherwise_are_refused(tmp_path: Path, value: str,
                                                     why: str) -> None:
    job = tmp_path / "j.fio"
    job.write_text(f"[j]\nrw=write\nsize={value}\n")
    lines, refused = check(job)
    assert refused and any("refused" in line and "size=" in line for line in lines)
    s = tmp_path / "s.yaml"
    s.write_text("name: t\nimages: [{name: b, virtual_size: 16MiB}]\n"
                 "workloads: {w: {job_file: j.fio}}\nvms: [{name: v, image: b, workload: w}]\n")
    with pytest.raises(ScenarioError, match=why) as err:
        load_scenario(s)
    assert err.value.problems[0][0] == "workloads.w.job_file[j].size"


def test_with_the_models_own_offsets_a_percentage_is_refused(tmp_path: Path) -> None:
    job = tmp_path / "j.fio"
    job.write_text("[j]\nrw=write\noffset=25%\n")
    s = tmp_path / "s.yaml"
    s.write_text("name: t\nimages: [{name: b, virtual_size: 16MiB}]\n"
                 "workloads: {w: {job_file: j.fio, offsets: model}}\n"
                 "vms: [{name: v, image: b, workload: w}]\n")
    with pytest.raises(ScenarioError, match=r"job_file\[j\]\.offset.*offsets: auto"):
        load_scenario(s)


def test_a_percentage_with_offset_increment_is_refused() -> None:
    with pytest.raises(ValueError, match="offset in percent with offset_increment"):
        _workload({"rw": "write", "offset": "10%", "numjobs": "2", "offset_increment": "1m"})


def nbd_stream(tmp: Path, sock: Path, wl: Workload, size: int = DISK) -> list[Trace]:
    """What the real run issues: fio's nbd engine on a qemu-nbd export of a raw disk of
    ``size`` bytes."""
    disk = tmp / "disk.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(disk), str(size)], check=True)
    with NbdExport(disk, "raw", sock, "vm") as nbd:
        run = FioRun("vm", nbd.uri, wl, tmp).start()
        try:
            run.wait()
        finally:
            run.stop()
    return recorded_traces(tmp)


@needs_tools
@pytest.mark.real
@pytest.mark.parametrize("name", list(JOBS))
def test_the_null_runs_stream_is_the_nbd_engines(tmp_path: Path, private_tmp: Path,
                                                 name: str) -> None:
    """On a disk whose percentages are not multiples of the block sizes, the stream the model
    takes (fio's null engine on the bytes the percentages come to) equals, I/O for I/O, what
    fio's nbd engine issues with the percentages as written."""
    wl = _workload(JOBS[name], write_iolog=True, randseed=7)
    nbd = nbd_stream(tmp_path, private_tmp, wl)
    null = fio_null_traces(wl, "vm", DISK, RawLog(tmp_path / "raw"))
    assert len(nbd) == wl.numjobs and len(nbd[0]) > 0
    for clone, want in zip(null, nbd, strict=True):
        for got, expected in zip([clone.offsets, clone.lengths, clone.ddir],
                                 [want.offsets, want.lengths, want.ddir], strict=True):
            assert np.array_equal(got, expected)


def test_an_increment_fio_rounds_unevenly_is_refused() -> None:
    """25% of the disk is 6400.75 blocks of 4 KiB: fio puts clones 0..4 at 0, 6401, 12802,
    19203 and 25604 blocks (each rounded up), no offset plus k times one increment."""
    wl = _workload({"rw": "write", "bs": "4k", "size": "1m", "numjobs": "5",
                    "offset_increment": "25%"})
    with pytest.raises(UsageError, match=r"offset_increment in percent comes to 26217472 "
                                         r"bytes on this disk, which fio rounds up"):
        on_disk(wl, DISK)
    three = on_disk(wl.model_copy(update={"numjobs": 3}), DISK)
    assert (three.offset, three.fio_extra["offset_increment"]) == (0, str(6401 * 4096))
