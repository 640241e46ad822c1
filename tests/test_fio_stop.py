"""``FioRun.stop`` on a fio that has already ended on its own (a Ctrl-C to the whole process
group reaches fio before cowbench stops it): its exit code is still left in its raw/
directory, as for every external step, and its output files are closed."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from cowbench.scenario import Workload
from real.workload.fio import FioRun
from real.workload.nbd import NbdExport

from .conftest import needs_tools


@needs_tools
@pytest.mark.real
def test_a_stop_after_fio_ended_on_its_own_leaves_its_exit_code(
        tmp_path: Path, private_tmp: Path, no_leaks: None) -> None:
    disk = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(disk), "16M"], check=True)
    wl = Workload.model_validate({"rw": "write", "bs": "4k", "io_size": "64KiB"})
    with NbdExport(disk, "raw", private_tmp, "vm") as nbd:
        run = FioRun("vm", nbd.uri, wl, tmp_path).start()
        deadline = time.monotonic() + 60
        while run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run.poll() == 0  # ended on its own, not yet waited for
        run.stop()
        assert (run.dir / "returncode").read_text() == "0\n"
        assert run._stdout.closed and run._stderr.closed
        run.stop()  # again: nothing changes, nothing raised
        assert (run.dir / "returncode").read_text() == "0\n"
