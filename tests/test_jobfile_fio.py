"""Job files mean what fio 3.33 means: defaults, engines, option values and the agreement of
``cowbench fio-check`` with ``cowbench run``. The ``real`` tests pin fio's own behaviour with
``fio --parse-only`` or a run of its null engine (no disk touched)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cowbench.scenario import load_scenario

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
