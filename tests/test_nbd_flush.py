"""The NBD flush cowbench sends itself over an export's socket (``real.workload.nbd.nbd_flush``)
writes back what ``qemu-io -c flush`` does: qemu-nbd's metadata caches, measured in its
``/proc/PID/io`` (FACTS.md 2.2, E2: tests/test_disk.py's figures), and nothing else."""

from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

import pytest

from cowbench.errors import CowbenchError
from cowbench.tools import run
from real.workload.nbd import NbdExport, nbd_flush

from .conftest import needs_tools

KiB = 1 << 10


def _overlay(tmp: Path, name: str) -> Path:
    """A 1 GiB qcow2 overlay (64 KiB clusters) over a raw base holding 256 MiB of data."""
    base, ov = tmp / "base.raw", tmp / name
    if not base.exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(base), "1G"], check=True)
        subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 7 0 256M", str(base)],
                       check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536",
                    "-b", str(base), "-F", "raw", str(ov), "1G"], check=True)
    return ov


def _first_write(uri: str) -> None:
    """One 4 KiB write at 1 MiB, not flushed (fio's nbd engine sends no flush)."""
    subprocess.run(["fio", "--name=w", "--ioengine=nbd", f"--uri={uri}", "--rw=write",
                    "--bs=4k", "--offset=1m", "--size=4k", "--output=/dev/null"], check=True)


def _since(e: NbdExport, start: dict[str, int]) -> tuple[int, int]:
    now = e.io_counters()
    return now["read_bytes"] - start["read_bytes"], now["write_bytes"] - start["write_bytes"]


@needs_tools
@pytest.mark.real
def test_the_flush_writes_back_the_caches_as_qemu_ios_does(
        tmp_path: Path, private_tmp: Path, no_leaks: None) -> None:
    """A cluster's first write: 124 KiB read, and with the caches written back 328192 bytes
    written, whether cowbench or qemu-io sends the flush; a second flush writes nothing, and
    the clean disconnect leaves nothing in the server's stderr."""
    ours = NbdExport(_overlay(tmp_path, "a.qcow2"), "qcow2", private_tmp, "a").start()
    theirs = NbdExport(_overlay(tmp_path, "b.qcow2"), "qcow2", private_tmp, "b").start()
    try:
        start = {e.name: e.io_counters() for e in (ours, theirs)}
        for e in (ours, theirs):
            _first_write(e.uri)
        assert _since(ours, start["a"])[1] < 328192  # not yet written back
        ours.flush()
        run(["qemu-io", "-f", "raw", "-c", "flush", theirs.uri])
        got = _since(ours, start["a"]), _since(theirs, start["b"])
        # a line qemu-nbd prints to its stderr file is a buffered write /proc/PID/io counts
        # (4 KiB a page): shown if the bytes differ, as they did once in a whole-suite run
        # (theirs 336,384)
        assert got == ((124 * KiB, 328192),) * 2, (
            got, [(e._out / "stderr").read_text(errors="replace") for e in (ours, theirs)])
        nbd_flush(ours.socket)
        assert _since(ours, start["a"]) == (124 * KiB, 328192)
        assert (ours._out / "stderr").read_text() == ""
    finally:
        ours.stop()
        theirs.stop()


def test_a_socket_that_does_not_speak_nbd_is_a_clear_error(private_tmp: Path) -> None:
    path = private_tmp / "x.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        t = threading.Thread(target=answer)
        t.start()
        with pytest.raises(CowbenchError, match="not an NBD server's greeting"):
            nbd_flush(path, timeout=5)
        t.join()
