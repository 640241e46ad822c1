"""A disk that costs nothing, for fio's ``nbd`` engine: qemu-nbd serving QEMU's ``null-co``
driver (reads return at once, writes are dropped, nothing is stored) with the VM disk's size.

Where fio's ``null`` engine would issue another stream than the real run
(``cowbench.fiojob.engine_gap``), the stream is taken from the real run's own engine on this
export instead: the same engine, the same export size, so the same offsets in the same order
(measured, fio 3.33: the four forms of ``engine_gap`` on a 1 GiB export, each equal I/O for
I/O to fio's nbd engine on a qemu-nbd export of a raw file, at iodepth 1 and 8). It costs a
socket round trip an I/O (8-16k I/Os a second here, against the null engine's millions), so
it is used only where the null engine is wrong.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .atomic import atomic_write_text
from .errors import CowbenchError, ToolError
from .signals import shielded
from .tools import RawLog, dies_with_us, which


def qemu_nbd_installed() -> bool:
    return shutil.which("qemu-nbd") is not None


#: the null export's socket directory's name starts so (``cowbench.fiojob.real_run_folder``
#: tells a stream run's fio folder by it)
NULL_SOCKET_PREFIX = "cowbench-null-"


@contextmanager
def null_export(disk_size: int, log: RawLog, name: str) -> Iterator[str]:
    """``with null_export(size, log, vm) as uri:`` an NBD URI of a ``null-co`` disk of
    ``disk_size`` bytes, served while the block runs (every fio clone may connect: ``-e 0``).
    The socket lives in a short temporary directory (a UNIX socket's path is at most 107
    bytes; a run's ``raw/`` may be deeper); qemu-nbd's record lands under ``raw/`` as every
    command's (``argv.json``, ``stdout``, ``stderr``, and once it is stopped ``returncode``)."""
    from .lease import Lease

    out = log.new_dir(f"qemu-nbd-null-{name}")
    # in the run's lease before qemu-nbd starts: a run killed (a sweep's worker, SIGTERM to its
    # group) leaves its server, which names this directory, to be stopped and the directory
    # removed by whoever collects the lease (the sweep's client, or gc), not to the server's
    # own exit on its parent's death, which comes when it comes
    lease = log.lease if isinstance(log.lease, Lease) else None
    sock_dir = Path(tempfile.mkdtemp(prefix=NULL_SOCKET_PREFIX))
    if lease is not None:
        lease.add_dir(sock_dir)
    sock = sock_dir / "null.sock"
    argv = [which("qemu-nbd"), "-k", str(sock), "-t", "-e", "0",
            "--image-opts", f"driver=null-co,size={disk_size}"]
    atomic_write_text(out / "argv.json", json.dumps(argv, indent=1) + "\n", fsync=False)
    proc: subprocess.Popen[bytes] | None = None
    try:
        with open(out / "stdout", "wb") as so, open(out / "stderr", "wb") as se, shielded():
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=so, stderr=se,
                                    preexec_fn=dies_with_us(signal.SIGTERM),
                                    start_new_session=True)
        _wait_listening(proc, sock, argv, out)
        yield f"nbd+unix:///?socket={sock}"
    finally:
        with shielded():
            try:
                if proc is not None:
                    proc.terminate()
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    # last, as every record under raw/: the folder holds a complete record
                    atomic_write_text(out / "returncode", f"{proc.returncode}\n", fsync=False)
            finally:
                shutil.rmtree(sock_dir, ignore_errors=True)
                if lease is not None:
                    lease.drop_dir(sock_dir)


def _wait_listening(proc: subprocess.Popen[bytes], sock: Path, argv: list[str], out: Path,
                    timeout: float = 30.0) -> None:
    """Until the server accepts a connection (null-co opens nothing: listening is ready)."""
    deadline = time.monotonic() + timeout
    while True:
        rc = proc.poll()
        if rc is not None:
            raise ToolError(argv, rc, "", (out / "stderr").read_text(errors="replace"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(str(sock))
                return
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise CowbenchError(f"qemu-nbd (null-co) did not listen within {timeout:g} s")
        time.sleep(0.01)
