"""A qemu-nbd export of one image on a unix socket, as a context manager (FACTS.md 3.1).

qemu-nbd runs as this process's child, without ``--fork``, with ``PR_SET_PDEATHSIG``
(``cowbench.tools.dies_with_us``): if cowbench is killed outright (SIGKILL), the kernel sends
the server SIGTERM and it closes its image cleanly, instead of serving for ever under PID 1.
The export is ready once its socket accepts a connection (a unix socket refuses connections
until ``listen``). ``-t`` keeps the server up across fio's probe connection; ``-e 0`` lets every
fio clone connect. On exit the export is flushed (so the qcow2 metadata caches reach the file
and show in ``/proc/PID/io``), stopped with SIGTERM, and its socket removed. The flush is sent
by this process over the export's socket (:func:`nbd_flush`: the NBD protocol's handshake,
``NBD_CMD_FLUSH``, a clean disconnect), as ``qemu-io -c flush`` sends it, without starting a
program per export.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path
from types import TracebackType

from cowbench.atomic import atomic_write_text
from cowbench.errors import CowbenchError, ToolError
from cowbench.signals import shielded
from cowbench.tools import (
    RawLog,
    dies_with_us,
    pid_alive,
    proc_cpu_s,
    proc_io,
    process_cmdlines,
    wait_exit,
    which,
)

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
    for pid, argv in process_cmdlines():
        hit = any(a.startswith(want) for a in argv) if prefix else want in argv
        if argv[0].endswith(b"qemu-nbd") and hit:
            found.append(pid)
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


NBD_IHAVEOPT = 0x49484156454F5054
NBD_GREETING = b"NBDMAGIC" + struct.pack(">Q", NBD_IHAVEOPT)
NBD_CLIENT_FLAGS = 3  # NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES
NBD_OPT_ABORT = 2
NBD_OPT_EXPORT_NAME = 1
NBD_FLAG_NO_ZEROES = 2  # the server's handshake flag: no 124 zero bytes after the export's
NBD_FLAG_SEND_FLUSH = 4  # the export's transmission flag: it takes NBD_CMD_FLUSH
NBD_REQUEST = struct.Struct(">IHHQQI")  # magic, command flags, type, handle, offset, length
NBD_REQUEST_MAGIC = 0x25609513
NBD_SIMPLE_REPLY = struct.Struct(">IIQ")  # magic, error, handle
NBD_SIMPLE_REPLY_MAGIC = 0x67446698
NBD_CMD_DISC, NBD_CMD_FLUSH = 2, 3


def _recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = s.recv(n - len(data))
        if not part:
            break
        data += part
    return data


def nbd_flush(path: Path, timeout: float = 120.0) -> None:
    """Flush the default export of the NBD server on the unix socket ``path``: the fixed
    newstyle handshake (``NBD_OPT_EXPORT_NAME``, simple replies), one ``NBD_CMD_FLUSH``
    (when the export takes it) and ``NBD_CMD_DISC``, then wait for the server to close the
    connection (doc/proto.md of the NBD project). :class:`CowbenchError` if the server says
    the flush failed or speaks otherwise."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        greeting = _recv_exact(s, 18)
        if len(greeting) < 18 or greeting[:16] != NBD_GREETING:
            raise CowbenchError(f"{path}: not an NBD server's greeting")
        zeroes = not struct.unpack(">H", greeting[16:])[0] & NBD_FLAG_NO_ZEROES
        client = NBD_CLIENT_FLAGS & ~(NBD_FLAG_NO_ZEROES if zeroes else 0)
        s.sendall(struct.pack(">IQII", client, NBD_IHAVEOPT, NBD_OPT_EXPORT_NAME, 0))
        export = _recv_exact(s, 10 + (124 if zeroes else 0))
        if len(export) < 10:
            raise CowbenchError(f"{path}: the NBD server refused its default export")
        if struct.unpack(">QH", export[:10])[1] & NBD_FLAG_SEND_FLUSH:
            s.sendall(NBD_REQUEST.pack(NBD_REQUEST_MAGIC, 0, NBD_CMD_FLUSH, 1, 0, 0))
            reply = _recv_exact(s, NBD_SIMPLE_REPLY.size)
            if len(reply) < NBD_SIMPLE_REPLY.size:
                raise CowbenchError(f"{path}: the NBD server hung up before its flush's reply")
            magic, error, handle = NBD_SIMPLE_REPLY.unpack(reply)
            if magic != NBD_SIMPLE_REPLY_MAGIC or handle != 1 or error:
                raise CowbenchError(f"{path}: the NBD flush failed ({os.strerror(error)})"
                                    if error else f"{path}: not an NBD reply to the flush")
        s.sendall(NBD_REQUEST.pack(NBD_REQUEST_MAGIC, 0, NBD_CMD_DISC, 2, 0, 0))
        while s.recv(64):  # the server closes the connection once it has seen the disconnect
            pass


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
        self.name = name
        self.cache = cache
        self.aio = aio
        self.discard = discard
        self.detect_zeroes = detect_zeroes
        self.log = log
        self.pid: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._out = sock_dir
        self._argv: list[str] = []

    @property
    def uri(self) -> str:
        return f"nbd+unix:///?socket={self.socket}"

    def start(self) -> NbdExport:
        """Start the server and wait until it listens."""
        self.launch()
        self.wait_ready()
        return self

    def launch(self) -> NbdExport:
        """Start the server without waiting for it (:meth:`wait_ready`): several exports
        start side by side. On failure or interrupt the caller calls :meth:`stop`."""
        become_subreaper()
        target = (["--image-opts", self.image_opts] if self.image_opts
                  else ["-f", self.fmt, str(self.image)])
        argv = [which("qemu-nbd"), "-k", str(self.socket), "-t", "-e", "0",
                f"--cache={self.cache}", f"--aio={self.aio}", f"--discard={self.discard}",
                f"--detect-zeroes={self.detect_zeroes}", *target]
        if self.log is not None:  # the export's description names the run (ps, cowbench gc)
            argv[1:1] = ["-D", f"cowbench {self.log.root}"]
        out = self._log_dir(argv)
        with open(out / "stdout", "wb") as so, open(out / "stderr", "wb") as se, shielded():
            # a session of its own, as fio's: a terminal's Ctrl-C (to the whole foreground
            # group) reached it first, and its fio then spun on the dead socket while
            # cowbench stopped; cowbench stops it itself, and it dies with cowbench
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=so, stderr=se,
                                         preexec_fn=dies_with_us(signal.SIGTERM),
                                         start_new_session=True)
            self.pid = self.proc.pid
        self._argv = argv
        return self

    def wait_ready(self) -> None:
        """Wait until the launched server accepts connections (ToolError if it exited)."""
        self._wait_listening(self._out, self._argv)

    def _log_dir(self, argv: list[str]) -> Path:
        if self.log is not None:
            d = self.log.new_dir(f"qemu-nbd-{self.name}")
        else:
            d = self.socket.parent / f".{self.name}.log"
            d.mkdir(exist_ok=True)
        atomic_write_text(d / "argv.json", json.dumps(argv, indent=1) + "\n", fsync=False)
        self._out = d
        return d

    def _wait_listening(self, out: Path, argv: list[str], timeout: float = 60.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                atomic_write_text(out / "returncode", f"{rc}\n", fsync=False)
                raise ToolError(argv, rc, "", (out / "stderr").read_text(errors="replace"))
            if self._greets():
                return
            if time.monotonic() > deadline:
                raise CowbenchError(f"qemu-nbd for {self.name} did not listen within "
                                    f"{timeout:g} s")
            time.sleep(0.01)

    def _greets(self) -> bool:
        """Whether the server greets and closes a client that aborts cleanly.

        qemu-nbd listens *before* it opens the image (strace: bind, listen, then the header,
        L1 and refcount-table reads), so a bare connect can succeed while it is still
        reading: only the greeting, sent once it accepts, says the opening I/O is done and
        ``io_counters`` will not move by itself (measured: 512 B read at the connect, 2 MiB +
        20 KiB 0.3 s later, 2 MiB clusters). The probe then ends the handshake with
        NBD_OPT_ABORT: a client that just hangs up makes qemu-nbd print an error to its
        stderr file, a buffered write that /proc/PID/io counts as the run's (4 KiB)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(str(self.socket))
                s.settimeout(5.0)
                greeting = _recv_exact(s, 18)
                if greeting[:16] != NBD_GREETING:
                    return False
                s.sendall(struct.pack(">IQII", NBD_CLIENT_FLAGS, NBD_IHAVEOPT, NBD_OPT_ABORT, 0))
                while s.recv(64):  # the server's acknowledgement, then it closes
                    pass
                return True
            except OSError:
                return False

    def io_counters(self) -> dict[str, int]:
        assert self.pid is not None
        return proc_io(self.pid)

    def cpu_s(self) -> float:
        """The CPU seconds the server has used so far (every thread: the main loop and the
        thread pool's workers)."""
        assert self.pid is not None
        return proc_cpu_s(self.pid)

    def flush(self) -> None:
        """An NBD flush (:func:`nbd_flush`): QEMU writes back its dirty L2 and refcount
        caches."""
        nbd_flush(self.socket)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server (SIGTERM, SIGKILL after ``timeout``) and remove its socket.

        Shielded from SIGINT/SIGTERM, so an interrupt cannot leave the server half-stopped. If
        the process was never kept (an interrupt during the fork), it is found by its socket in
        ``/proc``.
        """
        with shielded():
            try:
                if self.proc is not None:
                    self.proc.terminate()
                    try:
                        rc = self.proc.wait(timeout)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        rc = self.proc.wait()
                    try:  # whole or not at all (a full disk): the server is gone either way
                        atomic_write_text(self._out / "returncode", f"{rc}\n", fsync=False)
                    finally:
                        if self.log is None:
                            shutil.rmtree(self._out, ignore_errors=True)
                else:
                    for pid in pids_serving(self.socket):
                        _terminate(pid, timeout)
            finally:
                self._forget()

    def _forget(self) -> None:
        """The server is gone: reaped, its socket removed."""
        reap_exited()
        self.proc = None
        self.pid = None
        self.socket.unlink(missing_ok=True)

    def __enter__(self) -> NbdExport:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
