"""Job files mean what fio 3.33 means: defaults, engines, option values and the agreement of
``cowbench fio-check`` with ``cowbench run``. The ``real`` tests pin fio's own behaviour with
``fio --parse-only`` or a run of its null engine (no disk touched)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cowbench.scenario import load_scenario

from .clirun import cowbench
from .conftest import needs_tools


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def _scenario(tmp: Path, job: str, workload: str = "{job_file: job.fio}") -> Path:
    _write(tmp, "job.fio", job)
    return _write(tmp, "s.yaml", "name: t\nimages: [{name: b, virtual_size: 64MiB, synthetic: "
                                 "{data: [{offset: 0, length: 1MiB}]}}]\n"
                                 f"workloads: {{w: {workload}}}\n"
                                 "vms: [{name: v, image: b, workload: w}]\n")


def _null_ops(tmp: Path, job: str) -> list[tuple[str, int, int]]:
    """``(action, offset, length)`` of every I/O fio's null engine issues for ``job``."""
    log = tmp / "null.iolog"
    fio = _write(tmp, "null.fio", job)
    subprocess.run(["fio", "--ioengine=null", f"--write_iolog={log}", "--output=/dev/null",
                    str(fio)], check=True, capture_output=True, cwd=tmp)
    ops = []
    for line in log.read_text().splitlines()[1:]:
        parts = line.split()  # v3: time, file, action, offset, length
        if len(parts) == 5 and parts[2] in ("read", "write", "trim"):
            ops.append((parts[2], int(parts[3]), int(parts[4])))
    return ops


def test_a_job_without_rw_reads_sequentially(tmp_path: Path) -> None:
    wl = load_scenario(_scenario(tmp_path, "[plain]\nsize=4m\nbs=64k\n")).workloads["w"]
    assert (wl.rw, wl.bs, wl.size) == ("read", 65536, 4 << 20)
    wl = load_scenario(_scenario(tmp_path, "[a]\nsize=4m\n[b]\nrw=write\nsize=4m\n")
                       ).workloads["w"]
    assert [j.rw for j in wl.jobs] == ["read", "write"]


def test_a_scenario_workload_without_rw_reads_as_fio_does() -> None:
    from cowbench.scenario import Workload

    assert Workload.model_validate({"bs": "64k"}).rw == "read"


@needs_tools
@pytest.mark.real
def test_fio_reads_sequentially_without_rw(tmp_path: Path) -> None:
    ops = _null_ops(tmp_path, "[plain]\nsize=1m\nbs=64k\n")
    assert ops == [("read", i * 65536, 65536) for i in range(16)]


@pytest.mark.parametrize("engine,why", [
    ("null", "ioengine=null does no I/O on a disk: the backend's engine cannot replace it"),
    ("cpuio", "burns CPU"), ("net", "over the network"), ("netsplice", "over the network"),
    ("falloc", "works on files"), ("ftruncate", "works on files"), ("e4defrag", "works on"),
    ("filecreate", "works on"), ("filestat", "works on"), ("filedelete", "works on"),
    ("exec", "runs a program"), ("http", "objects"),
    ("dirstat", "not an engine of fio 3.33 that reads and writes a disk"),
    ("cpp_null", "not an engine of fio 3.33"),
    ("external:/tmp/e.so", "an external engine"), ("/usr/lib/fio/x.so", "an external engine"),
])
def test_an_engine_without_disk_io_is_refused(tmp_path: Path, engine: str, why: str) -> None:
    job = f"[j]\nioengine={engine}\nrw=write\nsize=1m\n"
    ran = cowbench("validate", str(_scenario(tmp_path, job)))
    assert ran.code == 2 and "Traceback" not in ran.stderr
    assert f"workloads.w.job_file[j].ioengine: ioengine={engine}" in ran.stderr
    assert why in ran.stderr
    checked = cowbench("fio-check", str(tmp_path / "job.fio"))
    assert checked.code == 2 and why in checked.stdout


@pytest.mark.parametrize("engine", ["psync", "sync", "libaio", "io_uring", "posixaio", "mmap",
                                    "pvsync2", "splice", "nbd"])
def test_a_disk_engine_is_replaced(tmp_path: Path, engine: str) -> None:
    wl = load_scenario(_scenario(tmp_path, f"[j]\nioengine={engine}\nsize=1m\n")
                       ).workloads["w"]
    assert [(r.option, r.value) for r in wl.replaced] == [("ioengine", engine)]


@needs_tools
@pytest.mark.real
def test_every_engine_of_this_fio_is_known() -> None:
    """Each engine the installed fio lists is either replaced or refused for what it does, none
    as "not an engine of fio 3.33"."""
    from cowbench.fioengines import DISK_ENGINES, OTHER_ENGINES

    listed = subprocess.run(["fio", "--enghelp"], check=True, capture_output=True, text=True)
    engines = {ln.strip() for ln in listed.stdout.splitlines()[1:] if ln.strip()}
    assert {"null", "psync", "libaio", "nbd"} <= engines
    assert engines <= DISK_ENGINES | set(OTHER_ENGINES)
