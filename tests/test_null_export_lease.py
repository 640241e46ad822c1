"""The null export's socket directory is the run's, in its lease (cowbench.nullexport,
cowbench.lease): a run killed while its null export serves leaves the directory (and, until it
exits of its parent's death, the qemu-nbd that names it) to whoever collects the lease: a
sweep's client once it has stopped its workers, or ``cowbench gc``. Before, the directory
stayed in ``$TMPDIR`` for good, in no lease, and a sweep stopped by SIGTERM could return while
that qemu-nbd still ran (seen in tests/test_fault_sweep_leases.py, once)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cowbench.lease import collect, dead_leases, left_behind

from .conftest import needs_tools, processes_mentioning

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
from pathlib import Path
from cowbench.lease import Lease
from cowbench.nullexport import null_export
from cowbench.tools import RawLog
run = Path(sys.argv[1])
lease = Lease.take(run, None, "null-test", "calibration")
with null_export(1 << 20, RawLog(run / "raw", lease=lease), "v") as uri:
    print(uri, flush=True)
    time.sleep(600)
"""


@needs_tools
def test_a_killed_runs_null_export_directory_is_in_its_lease_and_collected(
        tmp_path: Path, private_tmp: Path, lease_registry: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], text=True,
                             stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout is not None
        uri = child.stdout.readline()
        assert uri.startswith("nbd+unix://"), uri
        sock_dir = Path(uri.split("socket=", 1)[1].strip()).parent
        assert sock_dir.parent == private_tmp and sock_dir.is_dir()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    time.sleep(0.5)  # qemu-nbd's own exit on its parent's death, if it is quick
    (record,) = [r for r in dead_leases() if r["token"] == "null-test"]
    assert [d["name"] for d in record["dirs"]] == [sock_dir.name]
    assert sock_dir.is_dir()  # the run could not remove it: killed outright
    assert "1 socket directory(ies)" in left_behind(record)  # what every command reports
    done = collect(record)
    assert f"removed {sock_dir}" in done, done
    assert not sock_dir.exists()
    assert processes_mentioning(sock_dir) == []
    assert list(lease_registry.iterdir()) == []
