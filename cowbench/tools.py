"""Typed wrappers around the external tools cowbench trusts: qemu-img, qemu-io, fio.

Every call takes an argument list (never a shell string), checks the exit code, parses JSON
output, and, when given a :class:`RawLog`, leaves its argv, stdout, stderr and exit code on disk
under the run's ``raw/`` (STYLE.md points 8 and 10; fio's ``t/fiotestlib.py``).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import PartialFiles, atomic_write_text
from .errors import MissingToolError, ToolError
from .packages import package_of
from .signals import shielded

REAL_TOOLS = ("qemu-img", "qemu-io", "qemu-nbd", "fio")


def install_hint(tool: str) -> str:
    """How to get ``tool``: its Debian package, from the one table (cowbench/packages.py)."""
    package = package_of(tool)
    if package is None:  # tests/test_packages.py keeps every program the code starts listed
        return "it is not in cowbench/packages.py"
    return f"install it with: apt-get install {package} (scripts/bootstrap.sh does this)"


def absolute(path: Path | str) -> Path:
    """``path`` joined to the working directory, taken once where a path enters (a run, sweep
    or calibration directory): every path handed to an external tool derives from one of these,
    so a tool started in another working directory (fio runs in its ``raw/`` folder) finds it.
    ``..`` and symlinks are kept as given (they mean what they meant in the user's shell)."""
    return Path(path).absolute()


@dataclass
class RawLog:
    """Writes one folder per external command under ``root`` (the run's ``raw/``). ``lease``:
    the run's (set once taken), where a tool's partial output under ``root`` is recorded
    while it is written (``cowbench.lease``: gc removes it after a kill)."""

    root: Path
    lease: PartialFiles | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.root = absolute(self.root)  # fio is handed paths under it and runs elsewhere
        self.root.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new_dir(self, label: str) -> Path:
        with self._lock:
            n = next(self._counter)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:60]
        d = self.root / f"{n:04d}-{safe}"
        d.mkdir(parents=True, exist_ok=False)
        return d

    def record(self, label: str, argv: Sequence[str], returncode: int | None, stdout: str,
               stderr: str, into: Path | None = None) -> Path:
        """The command's record in a new folder, or in ``into``: the folder made for it
        beforehand (:meth:`new_dir`) where it writes files of its own (fio's ``--output``
        and iologs), so a command's record and every file it writes are in one folder."""
        d = self.new_dir(label) if into is None else into
        atomic_write_text(d / "argv.json", json.dumps(list(argv), indent=1) + "\n", fsync=False)
        atomic_write_text(d / "stdout", stdout, fsync=False)
        atomic_write_text(d / "stderr", stderr, fsync=False)
        parsed = _json_in(stdout)
        if parsed is not None:
            atomic_write_text(d / "output.json", json.dumps(parsed, indent=1) + "\n",
                              fsync=False)
        # last: a folder with a returncode file holds a complete record
        atomic_write_text(d / "returncode", f"{returncode}\n", fsync=False)
        return d


def _json_in(text: str) -> Any:
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        return json.loads(text[start:])
    except ValueError:
        return None


def which(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise MissingToolError(tool, install_hint(tool))
    return path


def require_tools(tools: Sequence[str] = REAL_TOOLS) -> None:
    """Raise :class:`MissingToolError` naming the first tool that is not installed."""
    for tool in tools:
        which(tool)


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


def dies_with_us(sig: int = signal.SIGKILL,
                 then: Callable[[], None] | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get ``sig`` when this process dies (SIGKILL
    included): ``PR_SET_PDEATHSIG``. It fires on the death of the *thread* that forked the
    child, so long-lived children are started from the main thread (or a thread that outlives
    them). If this process died before the call, the child kills itself at once."""
    parent = os.getpid()

    def setup() -> None:  # runs in the child, before exec
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        if then is not None:
            then()

    return setup


#: fio forks one process per job, and each job calls ``setsid()`` (it leaves fio's process
#: group: signalling the group does not reach it) and has no ``PR_SET_PDEATHSIG``. fio does not
#: always stop its jobs when it is signalled while they run; an orphaned job whose qemu-nbd is
#: gone spins writing errors to raw/ (25 GB in 15 minutes here; seen in CI, under load, a
#: second after ``kill -9`` of cowbench). So fio runs as the first process of its own PID
#: namespace, under ``unshare --fork --kill-child``: unshare dies with cowbench (SIGKILL), which
#: SIGKILLs fio, and when a namespace's first process dies the kernel SIGKILLs every other
#: process in it. No timing and no Python is involved. unshare blocks SIGTERM and waits, so a
#: SIGTERM to the process group (``real.workload.fio.FioRun.stop``) still reaches fio alone,
#: for its clean stop, and unshare exits with fio's status. The null-engine runs that take a
#: job's offset stream (``cowbench.fiojob``) run the same way: a sweep stopped by Ctrl-C in a
#: full suite run (2026-12-04) left a null run's job behind, its parent gone, asleep on a
#: futex 33 minutes later; here 9 of 60 null runs sent SIGINT and then SIGKILL a moment after
#: left such jobs, none of 60 under unshare.
PID_NAMESPACE = ("unshare", "--pid", "--fork", "--kill-child")  # util-linux (essential)


@functools.cache
def own_pid_namespace() -> bool:
    """Can fio run in a PID namespace of its own here (root, or CAP_SYS_ADMIN, and a kernel
    and container that allow it)? Asked once per process, by trying."""
    try:
        return subprocess.run([*PID_NAMESPACE, "true"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=10, check=False,
                              preexec_fn=dies_with_us()).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def fio_isolated(argv: Sequence[str]) -> list[str]:
    """``argv`` (a fio command) run as the first process of its own PID namespace where this
    machine allows it (:data:`PID_NAMESPACE`): killed with cowbench, its job processes die
    too. Every fio cowbench starts runs so: the workloads', the null-engine streams', the
    calibration's probes (a SIGKILL of `cowbench calibrate` left 1 to 3 of their fio jobs
    running in 3 of 7 kills, 2026-12-05)."""
    return [*(PID_NAMESPACE if own_pid_namespace() else ()), *argv]


def run(argv: Sequence[str], *, log: RawLog | None = None, label: str | None = None,
        ok_codes: Sequence[int] = (0,), timeout: float | None = None,
        preexec_fn: Callable[[], None] | None = None, pass_fds: Sequence[int] = (),
        stdout_limit: int | None = None, cancel: threading.Event | None = None,
        raw_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion; raise :class:`ToolError` on an exit code not in ``ok_codes``.
    Its record goes to a new folder of ``log``, or to ``raw_dir``, made by ``log.new_dir``
    for a command that writes files there itself.

    The child dies with this process (:func:`dies_with_us`). ``pass_fds`` are inherited at the
    same numbers (``/proc/self/fd/N`` in ``argv`` names them). ``stdout_limit``: stdout goes to
    an unnamed temporary file that the child may not grow past this many bytes
    (``RLIMIT_FSIZE``; qemu-img's JSON of a hostile image cannot fill this process's memory).
    On an interrupt (or any exception) the child is killed and reaped before it propagates.
    Signals reach the main thread only: a command run by another thread is given ``cancel``,
    which the main thread sets when it is interrupted; the child is then killed and reaped
    within :data:`CANCEL_POLL_S` and :class:`Cancelled` raised.
    """
    which(argv[0])
    label = label or Path(argv[0]).name
    sink = tempfile.TemporaryFile() if stdout_limit else None  # noqa: SIM115 (closed below)
    setup = dies_with_us(then=_fsize_then(stdout_limit, preexec_fn))
    proc: subprocess.Popen[str] | None = None
    try:
        with shielded():  # no interrupt between the fork and ``proc``
            proc = subprocess.Popen(list(argv), stdout=sink or subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                                    preexec_fn=setup, pass_fds=tuple(pass_fds))
        stdout, stderr = _communicate(proc, timeout, cancel, label)
        if sink is not None:
            stdout = _read_sink(sink, stdout_limit or 0)
    except subprocess.TimeoutExpired:
        assert proc is not None
        out, errtxt = _kill(proc)
        if log:
            log.record(label, argv, None, out, errtxt, into=raw_dir)
        raise ToolError(argv, -1, out, f"timed out after {timeout} s\n{errtxt}") from None
    except BaseException:  # interrupted: stop the child, and say so in raw/
        if proc is None:
            raise
        _kill(proc)
        if log:
            log.record(label, argv, None, "",
                       "cowbench: interrupted before the command finished (killed)\n",
                       into=raw_dir)
        raise
    finally:
        if sink is not None:
            sink.close()
    if log:
        log.record(label, argv, proc.returncode, stdout, stderr, into=raw_dir)
    if proc.returncode not in ok_codes:
        raise ToolError(argv, proc.returncode, stdout, stderr)
    return subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr)


#: how often a command run with a ``cancel`` event looks at it
CANCEL_POLL_S = 0.05


class Cancelled(Exception):
    """A command :func:`run` killed because its ``cancel`` event was set."""


def _communicate(proc: subprocess.Popen[str], timeout: float | None,
                 cancel: threading.Event | None, label: str) -> tuple[str, str]:
    """``proc.communicate(timeout)``, looking at ``cancel`` every :data:`CANCEL_POLL_S`
    (a timed-out communicate may be called again without losing output)."""
    if cancel is None:
        return proc.communicate(timeout=timeout)
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        left = CANCEL_POLL_S if end is None else max(0.0, min(CANCEL_POLL_S,
                                                              end - time.monotonic()))
        try:
            return proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            if end is not None and time.monotonic() >= end:
                raise
            if cancel.is_set():
                raise Cancelled(f"{label}: cancelled") from None


def _fsize_then(limit: int | None, more: Callable[[], None] | None) -> Callable[[], None] | None:
    if limit is None:
        return more

    def setup() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        if more is not None:
            more()

    return setup


def _read_sink(sink: Any, limit: int) -> str:
    sink.seek(0)
    data: bytes = sink.read(limit + 1)
    return data[:limit].decode(errors="replace")


def _kill(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Kill and reap the child; what it had printed. A grandchild in a session of its own
    (fio's job process) may hold the pipes open past the child's death: what it printed is
    read for a bounded time, then the pipes are closed (a drift probe interrupted at its
    start hung here, deaf to every signal)."""
    with shielded():
        proc.kill()
        try:
            out, err = proc.communicate(timeout=KILL_READ_S)
        except subprocess.TimeoutExpired:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait()
            out, err = "", ""
        return out or "", err or ""


#: how long a killed tool's last output is read for
KILL_READ_S = 5.0


def run_json(argv: Sequence[str], **kw: Any) -> Any:
    proc = run(argv, **kw)
    parsed = _json_in(proc.stdout)
    if parsed is None:
        raise ToolError(argv, proc.returncode, proc.stdout, "output was not JSON")
    return parsed


# -- qemu-img -----------------------------------------------------------------------------------

#: Nova runs qemu-img info on images under prlimits (images_cpu_time_limit=30 s,
#: images_address_space_limit); cowbench uses 1 GiB of address space for untrusted files, and
#: the same limits (CPU scaled to the image's size) for qemu-img map and convert.
UNTRUSTED_CPU_S = 30
UNTRUSTED_ADDRESS_SPACE = 1 << 30
#: What qemu-img info/map may print about an untrusted image (a "map bomb" prints far more).
UNTRUSTED_OUTPUT = 64 << 20
#: Wall-clock bound on one inspection (a spin that the CPU limit misses, e.g. blocked I/O).
INSPECT_TIMEOUT_S = 120
#: CPU seconds a conversion of an untrusted image gets per GiB it holds, on top of the 30 s.
CONVERT_CPU_S_PER_GIB = 20


def untrusted_limits() -> None:  # runs in the child, before exec
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (UNTRUSTED_CPU_S, UNTRUSTED_CPU_S))
    resource.setrlimit(resource.RLIMIT_AS, (UNTRUSTED_ADDRESS_SPACE, UNTRUSTED_ADDRESS_SPACE))


def convert_limits(nbytes: int) -> Callable[[], None]:
    """Nova's limits for a ``qemu-img convert`` of an untrusted image of ``nbytes``."""
    cpu = UNTRUSTED_CPU_S + CONVERT_CPU_S_PER_GIB * (nbytes >> 30)

    def setup() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_AS, (UNTRUSTED_ADDRESS_SPACE,
                                                UNTRUSTED_ADDRESS_SPACE))

    return setup


def _inspect_kw(untrusted: bool, pass_fds: Sequence[int]) -> dict[str, Any]:
    if not untrusted:
        return {"timeout": INSPECT_TIMEOUT_S, "pass_fds": pass_fds}
    return {"timeout": INSPECT_TIMEOUT_S, "pass_fds": pass_fds, "preexec_fn": untrusted_limits,
            "stdout_limit": UNTRUSTED_OUTPUT}


def qemu_img_info(path: Path | str, fmt: str | None = None, *, log: RawLog | None = None,
                  backing_chain: bool = False, untrusted: bool = False,
                  pass_fds: Sequence[int] = ()) -> dict[str, Any]:
    """``qemu-img info``; ``untrusted`` runs it under Nova's CPU and memory limits."""
    argv = ["qemu-img", "info", "--output=json"]
    if fmt:
        argv += ["-f", fmt]
    if backing_chain:
        argv.append("--backing-chain")
    argv.append(str(path))
    out: dict[str, Any] = run_json(argv, log=log, label="qemu-img-info",
                                   **_inspect_kw(untrusted, pass_fds))
    return out


def qemu_img_check(path: Path | str, fmt: str = "qcow2", *,
                   log: RawLog | None = None) -> dict[str, Any]:
    """``qemu-img check``: exit 0 clean, 3 leaks only (both return the JSON); 2 corruption."""
    out: dict[str, Any] = run_json(["qemu-img", "check", "--output=json", "-f", fmt, str(path)],
                                   log=log, label="qemu-img-check", ok_codes=(0, 3))
    return out


def qemu_img_map(path: Path | str, fmt: str, *, log: RawLog | None = None,
                 untrusted: bool = False, pass_fds: Sequence[int] = ()) -> list[dict[str, Any]]:
    """``qemu-img map``; ``untrusted`` runs it under Nova's limits, its output capped."""
    out: list[dict[str, Any]] = run_json(["qemu-img", "map", "--output=json", "-f", fmt,
                                          str(path)], log=log, label="qemu-img-map",
                                         **_inspect_kw(untrusted, pass_fds))
    return out


def data_extents_from_map(entries: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Merge ``qemu-img map`` entries that hold data into sorted ``(offset, length)`` runs."""
    runs: list[tuple[int, int]] = []
    for e in entries:
        if not e.get("data"):
            continue
        start, length = int(e["start"]), int(e["length"])
        if runs and runs[-1][0] + runs[-1][1] == start:
            runs[-1] = (runs[-1][0], runs[-1][1] + length)
        else:
            runs.append((start, length))
    return runs


# -- versions and host facts --------------------------------------------------------------------

def tool_version(tool: str) -> str | None:
    if shutil.which(tool) is None:
        return None
    flag = "--version"
    try:
        proc = subprocess.run([tool, flag], capture_output=True, text=True, timeout=10,
                              stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (proc.stdout or proc.stderr).strip().splitlines()
    return first[0] if first else None


def proc_io(pid: int) -> dict[str, int]:
    """``/proc/PID/io`` as a dict: read_bytes/write_bytes are what reached the block layer."""
    text = Path(f"/proc/{pid}/io").read_text()
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = int(value)
    return out


def proc_cpu_s(pid: int) -> float:
    """The CPU seconds process ``pid`` has used, all its threads (those that exited too):
    ``utime + stime`` of ``/proc/PID/stat`` over the clock tick (10 ms resolution)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # the name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_ticks() -> tuple[int, int]:
    """(busy, busy + idle) clock ticks of every core since boot, from ``/proc/stat``'s first
    line: busy is user, nice, system, irq and softirq (guest time is in user), idle is idle
    and iowait; steal (the hypervisor's other guests) is neither."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:8]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6]
    return busy, busy + v[3] + v[4]


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """The share of the cores' time busy between two :func:`machine_cpu_ticks` (None when
    no tick passed)."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else None


def proc_tree_cpu_s(pid: int) -> float:
    """The CPU seconds an exited, not yet reaped child ``pid`` used with every descendant it
    waited for (fio with its job processes, or the ``unshare`` that ran fio with all of
    them): ``utime + stime + cutime + cstime`` of the zombie's ``/proc/PID/stat`` (10 ms
    resolution). Read between ``waitid(WNOWAIT)`` and the reap, the pid cannot be reused."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


#: one thread's scheduler statistics: (CPU ns, ns waited runnable for a core, turns on a core)
Schedstat = tuple[int, int, int]


def thread_schedstats(pid: int) -> dict[int, Schedstat]:
    """Every live thread of process ``pid`` with the kernel's scheduler statistics for it
    (``/proc/PID/task/TID/schedstat``: the CPU it used, the time it waited runnable for a core,
    its turns on a core); {} once the process is gone, a thread gone meanwhile left out."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return {}
    out: dict[int, Schedstat] = {}
    for tid in tids:
        try:
            cpu, wait, turns = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        out[int(tid)] = (int(cpu), int(wait), int(turns))
    return out


#: what some threads did on the cores: (threads that ran, CPU ns, ns waited for a core, turns)
Schedstats = tuple[int, int, int, int]


def thread_delta(before: dict[int, Schedstat], after: dict[int, Schedstat],
                 pid: int) -> tuple[Schedstats, Schedstats]:
    """What process ``pid``'s main thread and its other threads did on the cores between two
    readings of :func:`thread_schedstats` (a thread started meanwhile counted from 0, one that
    did not run left out, one gone meanwhile lost)."""
    main, rest = [0, 0, 0, 0], [0, 0, 0, 0]
    for tid, now in after.items():
        was = before.get(tid, (0, 0, 0))
        d = [n - w for n, w in zip(now, was, strict=True)]
        if d[2] <= 0:
            continue
        into = main if tid == pid else rest
        into[0] += 1
        for i in range(3):
            into[i + 1] += d[i]
    return (main[0], main[1], main[2], main[3]), (rest[0], rest[1], rest[2], rest[3])


def sum_stats(parts: Iterable[Schedstats]) -> Schedstats:
    """Several threads' or processes' :data:`Schedstats` together."""
    t = c = w = n = 0
    for threads, cpu, wait, turns in parts:
        t, c, w, n = t + threads, c + cpu, w + wait, n + turns
    return t, c, w, n


def host_cpu_busy_s() -> float:
    """The CPU seconds the machine's cores have been busy since boot: user, nice, system, irq
    and softirq of ``/proc/stat``'s first line over the clock tick (every process and the
    kernel; idle, iowait and steal are not busy here)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def host_cpu_stolen_s() -> float:
    """The CPU seconds the hypervisor has taken from this machine's cores since boot
    (``steal`` of ``/proc/stat``'s first line over the clock tick): time a virtual CPU wanted
    to run and its host ran something else (another guest, or the host's own work, the
    emulation of this machine's virtual disk among it). 0 on bare metal."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return (int(fields[7]) if len(fields) > 7 else 0) / os.sysconf("SC_CLK_TCK")


def core_share(cpu_s: float, wall_s: float) -> float | None:
    """``cpu_s`` CPU seconds as a share of the machine's core-time over ``wall_s`` (clamped to
    0..1: the clock tick's rounding); None for no time."""
    core_s = wall_s * (os.cpu_count() or 1)
    return None if core_s <= 0 else round(min(max(cpu_s, 0.0) / core_s, 1.0), 4)


class CpuSpan:
    """The machine's cores over a span of wall time (``/proc/stat``): how busy they were and
    how much of them the hypervisor took. Started when made; :meth:`used` and :meth:`figures`
    read the counters again."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.stolen0 = time.monotonic(), host_cpu_busy_s(), \
            host_cpu_stolen_s()

    def used(self) -> tuple[float, float, float]:
        """(wall seconds, busy CPU seconds, stolen CPU seconds) since the start."""
        return (time.monotonic() - self.t0, host_cpu_busy_s() - self.busy0,
                host_cpu_stolen_s() - self.stolen0)

    def figures(self) -> dict[str, Any]:
        """``{"wall_s", "busy_share", "steal_share", "load"}`` since the start, the CPU as
        shares of the span's core-time."""
        wall, busy, stolen = self.used()
        try:
            load = [round(x, 2) for x in os.getloadavg()]
        except OSError:
            load = []
        return {"wall_s": round(wall, 1), "busy_share": core_share(busy, wall),
                "steal_share": core_share(stolen, wall), "load": load}


def wait_exit(pids: Sequence[int], timeout: float) -> None:
    """Sleep until one of ``pids`` exits or ``timeout`` seconds pass, woken by the exit itself
    (a pidfd turns readable) rather than by polling; callers then check who exited. Where
    pidfds are missing (Linux before 5.3), or this process may open no more files, a short
    sleep instead. Waited on with ``poll``, not ``select``, which refuses a descriptor
    numbered 1024 or more (``FD_SETSIZE``): a run of a few hundred VMs at once, under a
    raised limit, holds more than that (``cowbench.openfiles``)."""
    fds: list[int] = []
    try:
        for pid in pids:
            try:
                fds.append(os.pidfd_open(pid))
            except ProcessLookupError:
                return  # gone already
            except (OSError, AttributeError):
                time.sleep(min(timeout, 0.02))
                return
        if fds:
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            poller.poll(max(0, math.ceil(timeout * 1000)))  # in whole ms, never less
    finally:
        for fd in fds:
            os.close(fd)


def process_cmdlines() -> Iterator[tuple[int, list[bytes]]]:
    """Every process this kernel shows and its command line (``/proc/<pid>/cmdline`` split at
    NULs; kernel threads and processes gone meanwhile are skipped)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0]:
            yield int(entry.name), argv


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
