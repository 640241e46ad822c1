"""A disk that fills while fio and qemu-nbd run (finding 7 of the SRE test): every record is
written whole or not at all, the error names the file being written, no partial file stays,
and a first error is not replaced by the ones its cleanup meets on the same full disk."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from cowbench.errors import ToolError
from cowbench.scenario import Workload
from cowbench.tools import RawLog
from real.workload.fio import FioRun
from real.workload.nbd import NbdExport
from real.world.backend import on_exit

from .conftest import needs_tools


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB ext4, loop-mounted (unmounted, and its loop device freed, at the end)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop filesystem needs root")
    image, mnt = tmp_path / "fs.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        yield mnt
    finally:  # mount -o loop: the loop device goes with the mount (autoclear)
        if subprocess.run(["umount", str(mnt)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=True)


def _fill(fs: Path) -> None:
    """To ENOSPC (root: the reserved blocks too), to the last 1 KiB block."""
    for bs in ("64k", "1k"):
        subprocess.run(["dd", "if=/dev/zero", f"of={fs / 'filler'}", f"bs={bs}",
                        "oflag=append", "conv=notrunc,fsync"], capture_output=True)


@needs_tools
@pytest.mark.real
def test_a_full_disk_leaves_whole_records_and_no_partial_file(
        tmp_path: Path, private_tmp: Path, small_fs: Path, no_leaks: None) -> None:
    disk = tmp_path / "disk.raw"  # the guest's disk has room: only the records do not
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(disk), "16M"], check=True)
    wl = Workload.model_validate({"rw": "write", "bs": "4k", "io_size": "64KiB"})
    nbd = NbdExport(disk, "raw", private_tmp, "vm", log=RawLog(small_fs / "raw"))
    run = FioRun("vm", nbd.uri, wl, small_fs, log=RawLog(small_fs / "raw"))
    try:
        nbd.start()
        run.start()
        while run.poll() is None:
            time.sleep(0.05)
        _fill(small_fs)
        with pytest.raises(OSError) as err:
            run.wait()
        assert err.value.errno == errno.ENOSPC
        assert err.value.filename == str(run.dir / "returncode")  # what, and whose
        run.stop()  # the record was tried once; its partial JSON goes
        assert not run.partial_path.exists()
        _fill(small_fs)  # the blocks fio's JSON freed
        with pytest.raises(OSError) as stopped:
            nbd.stop()
        assert stopped.value.filename == str(nbd._out / "returncode")
        assert nbd.proc is None and not nbd.socket.exists()
    finally:
        for stop in (run.stop, nbd.stop):
            try:
                stop()
            except OSError:
                pass
    left = sorted(p.relative_to(small_fs).as_posix() for p in small_fs.rglob("*"))
    assert not [p for p in left if p.endswith(("returncode", ".part", ".tmp"))], left


def test_a_stop_that_fails_after_an_error_does_not_replace_it() -> None:
    calls: list[str] = []

    def full() -> None:
        calls.append("full")
        raise OSError(errno.ENOSPC, "No space left on device", "/raw/0009-qemu-nbd-b/returncode")

    with pytest.raises(ToolError) as err, ExitStack() as stack:
        on_exit(stack, full)
        on_exit(stack, lambda: calls.append("other"))
        raise ToolError(["fio"], 1, "", "fio: io_u error: No space left on device")
    assert calls == ["other", "full"]
    assert "io_u error" in str(err.value)
    assert any("0009-qemu-nbd-b/returncode" in n for n in err.value.__notes__)
    with pytest.raises(OSError) as alone, ExitStack() as stack:  # no error before: raised
        on_exit(stack, full)
    assert alone.value.filename.endswith("returncode")
