"""benchmarks/io_trace.py counts each thread of a real run as its VM's fio, qemu-nbd main
thread or qemu-nbd pool, from the processes' command lines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import load_benchmark

io_trace = load_benchmark("io_trace")

# a stand-in for each tool: Python under the tool's name, the VM in its arguments as the run
# gives them; the qemu-nbd one starts a second thread (its pool)
NBD = "import threading, time\nthreading.Thread(target=time.sleep, args=(30,)).start()\n" \
      "time.sleep(30)"
FIO = "import time\ntime.sleep(30)"


def start(tmp: Path, tool: str, code: str, *args: str) -> subprocess.Popen[bytes]:
    exe = tmp / tool
    if not exe.exists():
        exe.symlink_to(sys.executable)
    return subprocess.Popen([str(exe), "-c", code, *args])


def test_threads_are_counted_by_vm_and_kind(tmp_path: Path) -> None:
    procs = [start(tmp_path, "qemu-nbd", NBD, "-k", "/proc/1/fd/6/web.sock"),
             start(tmp_path, "fio", FIO, "--ioengine=nbd", "--name=web"),
             start(tmp_path, "other", FIO, "--name=db")]
    try:
        nbd, fio, other = procs
        for _ in range(100):  # until the stand-in's second thread is up
            if len(os.listdir(f"/proc/{nbd.pid}/task")) == 2:
                break
            time.sleep(0.05)
        assert io_trace.fio_running(os.getpid())
        kinds = io_trace.thread_kinds(os.getpid())
        nbd_threads = {int(t) for t in os.listdir(f"/proc/{nbd.pid}/task")}
        assert kinds[nbd.pid] == "web:main"
        assert {kinds[t] for t in nbd_threads - {nbd.pid}} == {"web:pool"}
        assert kinds[fio.pid] == "web:fio"
        assert other.pid not in kinds  # neither tool: not counted
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert not io_trace.fio_running(os.getpid())


SCENARIO = """\
name: one-reader
hosts: [{name: h}]
images:
  - name: base
    virtual_size: 64MiB
    format: qcow2
    synthetic: {data: [{offset: 0, length: 32MiB}]}
strategy: {kind: qcow2_overlay, cluster_size: 64KiB}
workloads:
  deep: {rw: randread, bs: 4k, iodepth: 16, runtime: 1s, time_based: true}
vms:
  - {name: web, image: base, root_size: 64MiB, workload: deep}
"""


def test_the_model_s_pool_threads_are_one_row_per_vm_as_the_kernel_s_record_has_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "one-reader.yaml"
    scenario.write_text(SCENARIO)
    profile = Path(__file__).parent / "data" / "profile-short-2026-12-06.json"
    assert io_trace.model_side(scenario, profile, tmp_path / "model") == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines[lines.index(io_trace.HEADER) + 1:]]
    assert sorted(names) == ["web:fio", "web:main", "web:pool"]
    pool = lines[lines.index(io_trace.HEADER) + 1 + names.index("web:pool")].split()
    assert int(pool[1]) > 0  # turns a second: of all its pool threads (several at iodepth 16)
