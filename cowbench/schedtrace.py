"""The kernel's own record of who ran on each core, and when: the scheduler's and the block
layer's tracepoints, read through tracefs (issue 16).

``/proc/PID/task/TID/schedstat`` (``cowbench.tools.thread_schedstats``) gives each thread's
sums: CPU, time waiting for a core, turns. The sums cannot say how a wait is distributed (a
tail of I/O latency is made of its long waits), who took a thread's core when it was preempted,
or how long the device kept each request. The tracepoints can:

- ``sched:sched_switch``: a core goes from one thread to another; the one leaving is still
  runnable (``prev_state=R``: preempted) or went to wait;
- ``sched:sched_wakeup``: a thread becomes runnable (woken by the thread running where the
  event is recorded, or by an interrupt);
- ``block:block_rq_issue`` and ``block_rq_complete``: a request handed to the disk's driver
  and done.

:class:`Trace` records them in a tracefs *instance* of its own (a private buffer with its own
events: the host's main buffer, and anyone else's instance, are left alone), for the seconds
asked, and :func:`analyse` turns the text into each kind of thread's turns and waits.
Root only (tracefs is); an instance is named after the process that made it, and one left by
a process that no longer exists (killed before it could remove it) is removed by the next.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

from .fdtree import DIR_FLAGS, detach_mount

#: the events recorded
EVENTS = ("sched/sched_switch", "sched/sched_wakeup", "sched/sched_wakeup_new",
          "block/block_rq_issue", "block/block_rq_complete")
#: the system calls by which qemu-nbd's threads read and write its image files (``--aio
#: threads``: each a thread of its pool, blocked in the kernel until the device is done):
#: :func:`syscall_events` records them, :func:`syscalls` reads them
IO_SYSCALLS = ("pread64", "preadv", "pwrite64", "pwritev", "fallocate")
#: the instance's buffer per core; a busy 2-core host records about 250,000 events a second
BUFFER_KB = 32 * 1024
#: the most of the trace read back (its text): about 60 s of a busy 2-core host
MAX_TEXT = 1 << 30
#: the most seconds one recording may last
MAX_SECONDS = 60.0
_PREFIX = "cowbench-"
_MOUNTED = Path("/sys/kernel/tracing")


class TraceUnavailable(RuntimeError):
    """tracefs cannot be used here (not root, no tracefs, an event missing)."""


def tracefs() -> int:
    """A descriptor of tracefs's root (the caller closes it): the mounted one, or, where it
    is not mounted, one mounted here on a private directory and detached at once (the
    descriptor keeps it reachable; nothing is left mounted, even if this process is killed)."""
    try:
        fd = os.open(_MOUNTED, DIR_FLAGS)
    except OSError:
        fd = -1
    if fd >= 0:
        try:
            os.stat("instances", dir_fd=fd)
            return fd
        except OSError:
            os.close(fd)
    if os.geteuid() != 0:
        raise TraceUnavailable("tracefs is not mounted and mounting it needs root")
    where = Path(tempfile.mkdtemp(prefix="cowbench-tracefs-"))
    try:
        proc = subprocess.run(["mount", "-t", "tracefs", "nodev", str(where)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise TraceUnavailable(f"cannot mount tracefs: {proc.stderr.strip()}")
        fd = os.open(where, DIR_FLAGS)
        st = os.fstat(fd)
        if not detach_mount(where.parent, where.name, st.st_dev, st.st_ino):
            os.close(fd)
            raise TraceUnavailable("cannot detach the tracefs mounted here")
        try:
            os.stat("instances", dir_fd=fd)
        except OSError:
            os.close(fd)
            raise TraceUnavailable("this kernel's tracefs has no instances") from None
        return fd
    finally:
        where.rmdir()


def _write(dir_fd: int, name: str, text: str) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read(dir_fd: int, name: str, limit: int) -> str:
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


def _stale(instances: int) -> None:
    """Remove the instances of cowbench processes that no longer exist."""
    for name in os.listdir(instances):
        m = re.fullmatch(rf"{_PREFIX}(\d+)-[0-9a-f]+", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            try:
                os.rmdir(name, dir_fd=instances)  # tracefs removes all an instance holds
            except OSError:
                pass


def syscall_events(calls: Sequence[str] = IO_SYSCALLS) -> tuple[str, ...]:
    """The tracepoints of ``calls``' entries and exits (``syscalls/sys_enter_pread64``, ...),
    for :class:`Trace`'s ``events``."""
    return tuple(f"syscalls/sys_{side}_{call}" for call in calls for side in ("enter", "exit"))


class Trace:
    """A recording of ``events`` (:data:`EVENTS` unless told) in a tracefs instance of its
    own: ``with Trace() as t: t.record(seconds)``, then ``t.text``. Every file is reached
    through descriptors of tracefs held from the start."""

    def __init__(self, buffer_kb: int = BUFFER_KB, events: Sequence[str] = EVENTS) -> None:
        if not 64 <= buffer_kb <= 256 * 1024:
            raise ValueError("buffer_kb must be 64 KiB to 256 MiB")
        if not events or not all(_EVENT_NAME.fullmatch(ev) for ev in events):
            raise ValueError("events must be tracepoints named SYSTEM/EVENT")
        self.events = tuple(events)
        self.buffer_kb = buffer_kb
        self.text = ""
        self.lost = 0
        #: the instance's name under tracefs's ``instances``
        self.name = f"{_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self._instances = -1
        self._fd = -1

    def __enter__(self) -> Trace:
        root = tracefs()
        try:
            self._instances = os.open("instances", DIR_FLAGS, dir_fd=root)
        finally:
            os.close(root)
        try:
            _stale(self._instances)
            os.mkdir(self.name, dir_fd=self._instances)  # new, or an error: never another's
            self._fd = os.open(self.name, DIR_FLAGS, dir_fd=self._instances)
            _write(self._fd, "tracing_on", "0")
            _write(self._fd, "buffer_size_kb", str(self.buffer_kb))
            _write(self._fd, "trace_clock", "mono")
            for ev in self.events:
                try:
                    _write(self._fd, f"events/{ev}/enable", "1")
                except FileNotFoundError:
                    raise TraceUnavailable(f"this kernel has no tracepoint {ev}") from None
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def record(self, seconds: float) -> None:
        """Record for ``seconds`` (:meth:`start`, sleep, :meth:`stop`), then :meth:`read`."""
        if not 0 < seconds <= MAX_SECONDS:
            raise ValueError(f"seconds must be above 0 and at most {MAX_SECONDS:g}")
        self.start()
        try:
            time.sleep(seconds)
        finally:
            self.stop()
        self.read()

    def start(self) -> None:
        """Empty the buffer and start recording."""
        assert self._fd >= 0, "start() inside `with Trace()`"
        _write(self._fd, "trace", "")  # opened to truncate: this recording's events only
        _write(self._fd, "tracing_on", "1")

    def stop(self) -> None:
        assert self._fd >= 0, "stop() inside `with Trace()`"
        _write(self._fd, "tracing_on", "0")

    def read(self) -> None:
        """Keep the recording's text (at most :data:`MAX_TEXT`; the kernel formats it as it
        is read: about 10 s of CPU for a second of a busy 2-core host, so read it once the
        measured run is over) and the events the buffer had no room for (``lost``)."""
        assert self._fd >= 0, "read() inside `with Trace()`"
        self.text = _read(self._fd, "trace", MAX_TEXT)
        lost = 0
        per_cpu = os.open("per_cpu", DIR_FLAGS, dir_fd=self._fd)
        try:
            for cpu in os.listdir(per_cpu):
                m = re.search(r"overrun: (\d+)", _read(per_cpu, f"{cpu}/stats", 1 << 16))
                lost += int(m.group(1)) if m else 0
        finally:
            os.close(per_cpu)
        self.lost = lost

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._fd >= 0:
                try:
                    _write(self._fd, "tracing_on", "0")
                finally:
                    os.close(self._fd)
                    self._fd = -1
                    os.rmdir(self.name, dir_fd=self._instances)
        finally:
            if self._instances >= 0:
                os.close(self._instances)
                self._instances = -1


# --- reading the text -------------------------------------------------------------------------

_LINE = re.compile(r"^\s*(?P<comm>.+?)-(?P<tid>\d+)\s+(?:\(\s*\S+\)\s+)?\[(?P<cpu>\d+)\]\s+"
                   r"\S+\s+(?P<ts>\d+\.\d+): (?P<event>\w+): (?P<rest>.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)")
_EVENT_NAME = re.compile(r"\w+/\w+")
# a system call's entry, ``sys_pread64(fd: 5, buf: ..., ...)`` (the descriptor in decimal or,
# for some calls, hexadecimal), or its exit, ``sys_pread64 -> 0x1000``
_SYSCALL = re.compile(r"^\s*(?P<comm>.+?)-(?P<tid>\d+)\s+(?:\(\s*\S+\)\s+)?\[(?P<cpu>\d+)\]\s+"
                      r"\S+\s+(?P<ts>\d+\.\d+): sys_(?P<call>\w+?)"
                      r"(?:\(fd: (?P<fd>0x[0-9a-f]+|\d+)|(?: -> (?P<ret>0x[0-9a-f]+|-?\d+)))")
_BLOCK = re.compile(r"^(?P<dev>\d+,\d+) (?P<rwbs>\S+) (?:\d+ )?\(.*?\) (?P<sector>\d+) \+ "
                    r"(?P<sectors>\d+)")


@dataclass(frozen=True)
class Event:
    t: float
    cpu: int
    tid: int  # the thread running where the event was recorded
    name: str
    rest: str


def events(text: str) -> Iterator[Event]:
    """The trace's events, in its order (each core's in time; tracefs merges the cores')."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m:
            yield Event(float(m["ts"]), int(m["cpu"]), int(m["tid"]), m["event"], m["rest"])


@dataclass(frozen=True)
class Syscall:
    """One system call of one thread, entry to exit: its name (``pread64``), the descriptor
    it was given, when it began and how long it took (seconds), and what it returned (bytes,
    or ``-errno``)."""

    tid: int
    call: str
    fd: int
    start: float
    seconds: float
    ret: int


def syscalls(text: str) -> Iterator[Syscall]:
    """The trace's system calls that begin with a descriptor (:data:`IO_SYSCALLS`), each
    paired with the next exit of the same call on the same thread, in the order they end. A
    call begun before the recording, or not ended within it, is left out."""
    begun: dict[int, tuple[str, int, float]] = {}
    for line in text.splitlines():
        m = _SYSCALL.match(line)
        if m is None:
            continue
        tid, ts = int(m["tid"]), float(m["ts"])
        if m["fd"] is not None:
            begun[tid] = (m["call"], int(m["fd"], 0), ts)
            continue
        entry = begun.pop(tid, None)
        if entry is None or entry[0] != m["call"]:
            continue
        ret = int(m["ret"], 0)
        if ret >= 1 << 63:  # a negative return (an errno) printed as an unsigned long
            ret -= 1 << 64
        yield Syscall(tid, entry[0], entry[1], entry[2], ts - entry[2], ret)


@dataclass
class Kind:
    """One kind of thread's turns on the cores and waits for one, in seconds."""

    turns: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    preempted: int = 0  # turns the scheduler ended while the thread could still run
    by_wakee: int = 0  # of those, ended for a thread woken during the turn
    #: its sleeps: the core given up waiting (not runnable) to the wake-up that ends it;
    #: ``io_sleeps`` those in uninterruptible sleep (``D``: in the kernel, on a disk I/O)
    sleeps: list[float] = field(default_factory=list)
    io_sleeps: list[float] = field(default_factory=list)


@dataclass
class Analysis:
    seconds: float
    kinds: dict[str, Kind]
    #: the device's time per request, by direction ("read", "write")
    device: dict[str, list[float]]


def analyse(evs: Iterable[Event], kind: Callable[[int], str | None]) -> Analysis:
    """Each kind of thread's turns (a core given to it, to the core going to another), waits
    (runnable, woken or preempted, to its next turn), sleeps (its core given up not runnable,
    to its wake-up; those in ``D``, a disk I/O's, apart), and preemptions, with ``kind(tid)`` its
    kind (``None``: not counted, though it takes cores); and the device's time per request.
    Turns and waits cut by the start or the end of the recording are left out."""
    kinds: dict[str, Kind] = defaultdict(Kind)
    device: dict[str, list[float]] = defaultdict(list)
    on: dict[int, tuple[int, float]] = {}  # core -> (thread, since)
    running: set[int] = set()
    runnable: dict[int, float] = {}
    woken: dict[int, float] = {}
    asleep: dict[int, tuple[float, bool]] = {}  # since, in D
    issued: dict[tuple[str, str, str], float] = {}
    first = last = None
    for e in evs:
        first = e.t if first is None else first
        last = e.t
        if e.name in ("sched_wakeup", "sched_wakeup_new"):
            f = dict(_FIELD.findall(e.rest))
            tid = int(f["pid"])
            if tid not in running:
                runnable.setdefault(tid, e.t)
                woken[tid] = e.t
            slept = asleep.pop(tid, None)
            k = kind(tid)
            if slept is not None and k is not None:
                (kinds[k].io_sleeps if slept[1] else kinds[k].sleeps).append(e.t - slept[0])
        elif e.name == "sched_switch":
            f = dict(_FIELD.findall(e.rest))
            prev, nxt = int(f["prev_pid"]), int(f["next_pid"])
            was = on.get(e.cpu)
            running.discard(prev)
            if was is not None and was[0] == prev and prev != 0:
                k = kind(prev)
                if k is not None:
                    kinds[k].turns.append(e.t - was[1])
                if not f["prev_state"].startswith("R"):
                    asleep[prev] = (e.t, f["prev_state"].startswith("D"))
                if f["prev_state"].startswith("R"):
                    runnable[prev] = e.t
                    if k is not None:
                        kinds[k].preempted += 1
                        if woken.get(nxt, -1.0) >= was[1]:
                            kinds[k].by_wakee += 1
            on[e.cpu] = (nxt, e.t)
            if nxt != 0:
                running.add(nxt)
                since = runnable.pop(nxt, None)
                k = kind(nxt)
                if since is not None and k is not None:
                    kinds[k].waits.append(e.t - since)
        elif e.name in ("block_rq_issue", "block_rq_complete"):
            m = _BLOCK.match(e.rest)
            if not m:
                continue
            key = (m["dev"], m["sector"], m["sectors"])
            if e.name == "block_rq_issue":
                issued[key] = e.t
            elif key in issued:
                rw = "write" if "W" in m["rwbs"] else "read" if "R" in m["rwbs"] else None
                t0 = issued.pop(key)
                if rw is not None:
                    device[rw].append(e.t - t0)
    span = (last - first) if first is not None and last is not None else 0.0
    return Analysis(span, dict(kinds), dict(device))


def percentile_us(xs: list[float], q: float) -> float:
    """The ``q``-th percentile of ``xs`` (seconds) in microseconds; nan for none."""
    if not xs:
        return float("nan")
    return float(np.percentile(xs, q)) * 1e6
