"""The free-space check charges the run directory for fio's I/O records under raw/ (issue 20:
an iolog filled the run directory's filesystem, which the check had not counted)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cowbench.scenario import parse_scenario
from cowbench.space import IOLOG_LINE_BYTES, free_bytes, iolog_bytes, space_needs
from sim import predict_space

from .clirun import cowbench
from .conftest import needs_tools

#: the widest iolog v3 line measured here (fio null engine, 4 KiB randrw over 20 GiB, job
#: vm-web-01): 42 bytes
MEASURED_LINE = 42


def _scenario(storage_dir: Path, **wl: Any) -> dict[str, Any]:
    job = {"rw": "write", "bs": "4k", "iodepth": 1, "io_size": "16MiB"}
    job.update(wl)
    return {"name": "iolog", "hosts": [{"name": "h", "storage_dir": str(storage_dir)}],
            "images": [{"name": "img", "virtual_size": "16MiB", "format": "raw",
                        "synthetic": {"data": [{"offset": 0, "length": "4MiB"}]}}],
            "workloads": {"w": job},
            "vms": [{"name": "vm-web-01", "image": "img", "workload": "w"}]}


def _run_dir_need(d: dict[str, Any], out: Path, field: str = "predicted") -> int:
    """What a real run alone (--backend real: no null-engine streams) needs beside ``out``."""
    s = parse_scenario(d)
    need = {n.directory: n for n in space_needs(s, predict_space(s), out, streams=False)}
    return int(getattr(need[out.parent], field))


def test_an_iolog_is_charged_to_the_run_directory_line_by_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    long = {"rw": "randwrite", "io_size": "64MiB"}  # 16384 I/Os of 4 KiB, one clone
    without = _run_dir_need(_scenario(tmp_path / "s", **long), out)
    with_log = _run_dir_need(_scenario(tmp_path / "s", write_iolog=True, **long), out)
    lines = (64 << 20) // 4096
    per_line = IOLOG_LINE_BYTES + len("vm-web-01")  # every number at its widest
    assert per_line > MEASURED_LINE
    assert with_log - without == (lines + 4) * per_line  # header, add, open, close


def test_time_based_jobs_are_bounded_by_their_pace_or_the_model(tmp_path: Path) -> None:
    paced = _scenario(tmp_path, write_iolog=True, time_based=True, runtime=10, rate_iops=100,
                      offsets="model")
    s = parse_scenario(paced)
    one = iolog_bytes(s, s.vms[0], predict_space(s))
    assert 1000 * MEASURED_LINE < one < 1200 * 130
    del paced["workloads"]["w"]["offsets"]  # auto: fio's null-engine stream is kept too
    s = parse_scenario(paced)
    assert iolog_bytes(s, s.vms[0], predict_space(s)) == 2 * one
    free = _scenario(tmp_path, write_iolog=True, time_based=True, runtime=1)
    s = parse_scenario(free)
    predicted = predict_space(s)
    ios = predicted[predicted.metric.isin(["read_ios", "write_ios"])].value.sum()
    assert ios > 0 and iolog_bytes(s, s.vms[0], predicted) >= 2 * ios * MEASURED_LINE
    no_model = iolog_bytes(s, s.vms[0], predicted.iloc[0:0])  # no count: the ceiling
    assert no_model >= 1_000_000 * MEASURED_LINE


@pytest.mark.real
@needs_tools
def test_the_bound_covers_what_fio_writes(tmp_path: Path) -> None:
    """fio's own iolog and latency logs of a small job stay under the charged bytes."""
    for numjobs in (1, 2):
        d = _scenario(tmp_path, rw="randrw", io_size="2MiB", numjobs=numjobs, write_iolog=True)
        s = parse_scenario(d)
        rec = tmp_path / f"rec{numjobs}"
        rec.mkdir()
        opt = ([f"--write_iolog={rec / 'issued.iolog'}"] if numjobs == 1
               else [f"--write_lat_log={rec / 'issued'}", "--log_offset=1"])
        subprocess.run(["fio", "--name=vm-web-01", "--ioengine=null", "--size=16m",
                        "--rw=randrw", "--bs=4k", "--io_size=2m", f"--numjobs={numjobs}",
                        "--output-format=json", f"--output={rec / 'o.json'}", *opt],
                       check=True, capture_output=True)
        written = sum(p.stat().st_size for p in rec.iterdir() if p.name != "o.json")
        assert 0 < written <= iolog_bytes(s, s.vms[0], predict_space(s))


@pytest.mark.real
@needs_tools
def test_a_run_whose_iolog_would_not_fit_is_refused_up_front(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mnt, store = tmp_path / "small", tmp_path / "store"
    mnt.mkdir()
    store.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)], check=True)
    try:
        out = mnt / "run"
        job = {"time_based": True, "runtime": 12, "rate_iops": 10000}  # 120000 I/Os
        plain = _scenario(store, **job)
        logged = _scenario(store, write_iolog=True, **job)
        assert _run_dir_need(plain, out, "needed") < free_bytes(mnt) \
            < _run_dir_need(logged, out, "needed")
        scenario = tmp_path / "s.yaml"
        scenario.write_text(yaml.safe_dump(logged))
        proc = cowbench("run", str(scenario), "--backend", "real", "--out", str(out))
        assert proc.code == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "--out" in proc.stderr and "is free" in proc.stderr, proc.stderr
        assert str(mnt) in proc.stderr, proc.stderr
        assert list(mnt.iterdir()) == [] and list(store.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
