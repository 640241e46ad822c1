"""benchmarks/io_trace.py counts each thread of a real run as its VM's fio, qemu-nbd main
thread or qemu-nbd pool, from the processes' command lines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

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
