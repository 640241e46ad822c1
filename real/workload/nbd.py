"""A qemu-nbd export of one image on a unix socket, as a context manager (FACTS.md 3.1).

``qemu-nbd --fork`` returns once the socket listens (no start race); ``-t`` keeps the server
up across fio's probe connection; ``-e 0`` lets every fio clone connect. On exit the export is
flushed (so the qcow2 metadata caches reach the file and show in ``/proc/PID/io``), stopped with
SIGTERM (qemu-nbd then closes the image cleanly), and its pid file and socket are removed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path
from types import TracebackType

from cowbench.errors import CowbenchError
from cowbench.signals import shielded
from cowbench.tools import RawLog, pid_alive, proc_io, run, wait_exit

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux prctl), so exited qemu-nbd daemons can be reaped here.

    ``qemu-nbd --fork`` daemonises: its server's parent exits, and the server is re-parented to
    the nearest subreaper, else PID 1. In containers PID 1 often reaps nothing, so a stopped
    server would linger as a zombie; as a subreaper, this process reaps it itself.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def stop_servers_in(sock_dir: Path, timeout: float = 20.0) -> None:
    """Stop every qemu-nbd whose socket is in ``sock_dir``: the safety net for an interrupt
    that lands between an export's start and its registration for cleanup."""
    with shielded():
        for pid in pids_serving(sock_dir, prefix=True):
            _terminate(pid, timeout)
        reap_exited()


def pids_serving(socket: Path, prefix: bool = False) -> list[int]:
    """qemu-nbd processes listening on ``socket`` (or, with ``prefix``, on any socket in the
    directory ``socket``): their command line names it."""
    want = str(socket).encode()
    if prefix:
        want += b"/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        hit = any(a.startswith(want) for a in argv) if prefix else want in argv
        if argv and argv[0].endswith(b"qemu-nbd") and hit:
            found.append(int(entry.name))
    return found


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def reap_exited(comm: str = "qemu-nbd") -> None:
    """Reap this process's exited children named ``comm`` (qemu-nbd's forked intermediates).

    Only those: a blanket ``waitpid(-1)`` would steal the exit status of other children (fio).
    """
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.find("(") + 1:stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2:].split()
        if name == comm and fields[0] == "Z" and int(fields[1]) == me:
            _reap(int(entry.name))


def _terminate(pid: int, timeout: float) -> None:
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and (left := deadline - time.monotonic()) > 0:
            wait_exit([pid], left)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while pid_alive(pid):
                wait_exit([pid], 1.0)
    _reap(pid)


class NbdExport:
    """``with NbdExport(image, "qcow2", sock_dir, "vm1") as nbd: nbd.uri`` ..."""

    def __init__(self, image: Path, fmt: str, sock_dir: Path, name: str, *,
                 cache: str = "none", aio: str = "threads", log: RawLog | None = None,
                 discard: str = "ignore", detect_zeroes: str = "off",
                 image_opts: str | None = None) -> None:
        self.image = image
        self.image_opts = image_opts  # ``--image-opts``: driver options instead of ``-f FMT``
        self.fmt = fmt
        self.socket = sock_dir / f"{name}.sock"
        self.pid_file = sock_dir / f"{name}.pid"
        self.name = name
        self.cache = cache
        self.aio = aio
        self.discard = discard
        self.detect_zeroes = detect_zeroes
        self.log = log
        self.pid: int | None = None

    @property
    def uri(self) -> str:
        return f"nbd+unix:///?socket={self.socket}"

    def start(self) -> NbdExport:
        become_subreaper()
        target = (["--image-opts", self.image_opts] if self.image_opts
                  else ["-f", self.fmt, str(self.image)])
        argv = ["qemu-nbd", "--fork", f"--pid-file={self.pid_file}", "-k", str(self.socket),
                "-t", "-e", "0", f"--cache={self.cache}", f"--aio={self.aio}",
                f"--discard={self.discard}", f"--detect-zeroes={self.detect_zeroes}", *target]
        try:
            run(argv, log=self.log, label=f"qemu-nbd-{self.name}", timeout=60)
        finally:
            self._read_pid()
            reap_exited()
        if self.pid is None or not pid_alive(self.pid):
            raise CowbenchError(f"qemu-nbd for {self.name} did not stay up")
        return self

    def _read_pid(self) -> None:
        try:
            self.pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            self.pid = None

    def io_counters(self) -> dict[str, int]:
        assert self.pid is not None
        return proc_io(self.pid)

    def flush(self) -> None:
        """An NBD flush: QEMU writes back its dirty L2 and refcount caches."""
        run(["qemu-io", "-f", "raw", "-c", "flush", self.uri], log=self.log,
            label=f"qemu-io-flush-{self.name}", timeout=120)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server (SIGTERM, SIGKILL after ``timeout``), remove its pid file and socket.

        Shielded from SIGINT/SIGTERM, so an interrupt cannot leave the server half-stopped. If
        the pid file was never read (an interrupt during ``--fork``), the server is found by
        its socket in ``/proc``.
        """
        with shielded():
            if self.pid is None:
                self._read_pid()
            pids = [self.pid] if self.pid is not None else pids_serving(self.socket)
            for pid in pids:
                _terminate(pid, timeout)
            reap_exited()
            self.pid = None
            for p in (self.pid_file, self.socket):
                p.unlink(missing_ok=True)

    def __enter__(self) -> NbdExport:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
