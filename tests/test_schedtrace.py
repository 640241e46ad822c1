"""cowbench.schedtrace: the kernel's scheduler and block events read into turns, waits and
the device's time per request (benchmarks/io_turns.py --trace); its I/O system calls read into
each call's duration (--syscalls)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cowbench.schedtrace import (
    Syscall,
    Trace,
    TraceUnavailable,
    analyse,
    events,
    syscall_events,
    syscalls,
    tracefs,
)

# two cores: "a" (tid 10) runs, wakes "b" (tid 20), which takes a's core (a preempted, still
# runnable); b goes to wait; a runs again; on the other core "c" (tid 30) runs and waits for
# the disk, whose read takes 300 us
TEXT = """\
# tracer: nop
#
           a-10      (   10) [000] d..2.   100.000000: sched_switch: prev_comm=swapper/0 \
prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=a next_pid=10 next_prio=120
           a-10      (   10) [000] d..3.   100.000040: sched_wakeup: comm=b pid=20 prio=120 \
target_cpu=000
           a-10      (   10) [000] d..2.   100.000050: sched_switch: prev_comm=a prev_pid=10 \
prev_prio=120 prev_state=R ==> next_comm=b next_pid=20 next_prio=120
           b-20      (   20) [000] d..2.   100.000080: sched_switch: prev_comm=b prev_pid=20 \
prev_prio=120 prev_state=S ==> next_comm=a next_pid=10 next_prio=120
      <idle>-0       (-----) [001] d..2.   100.000000: sched_switch: prev_comm=swapper/1 \
prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=c next_pid=30 next_prio=120
           c-30      (   30) [001] .....   100.000010: block_rq_issue: 254,0 RS 4096 () \
1000 + 8 be,0,4 [c]
           c-30      (   30) [001] d..2.   100.000020: sched_switch: prev_comm=c prev_pid=30 \
prev_prio=120 prev_state=D ==> next_comm=swapper/1 next_pid=0 next_prio=120
      <idle>-0       (-----) [001] d.s3.   100.000310: block_rq_complete: 254,0 RS () \
1000 + 8 be,0,4 [0]
      <idle>-0       (-----) [001] d.s3.   100.000311: sched_wakeup: comm=c pid=30 prio=120 \
target_cpu=001
      <idle>-0       (-----) [001] d..2.   100.000321: sched_switch: prev_comm=swapper/1 \
prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=c next_pid=30 next_prio=120
           a-10      (   10) [000] d..2.   100.000400: sched_switch: prev_comm=a prev_pid=10 \
prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
"""


def kinds() -> dict[int, str]:
    return {10: "a", 20: "b", 30: "c"}


def us(xs: list[float]) -> list[int]:
    return [round(x * 1e6) for x in xs]


def test_turns_waits_preemptions_and_the_device_are_read_from_the_events() -> None:
    a = analyse(events(TEXT.replace("\\\n", "")), kinds().get)
    assert us(a.kinds["a"].turns) == [50, 320]  # to b's turn; from b's end to its own wait
    assert a.kinds["a"].preempted == 1 and a.kinds["a"].by_wakee == 1  # b, woken meanwhile
    assert us(a.kinds["a"].waits) == [30]  # runnable from its preemption to its next turn
    assert us(a.kinds["b"].waits) == [10] and us(a.kinds["b"].turns) == [30]
    assert a.kinds["b"].preempted == 0  # it went to wait (prev_state S)
    assert us(a.kinds["c"].turns) == [20]  # its second turn is cut by the recording's end
    assert us(a.kinds["c"].waits) == [10]  # woken by the completion, on an idle core
    assert us(a.device["read"]) == [300] and "write" not in a.device
    assert round(a.seconds * 1e6) == 400


def test_sleeps_are_read_apart_from_waits_on_the_disk() -> None:
    """A sleep runs from a thread giving its core up not runnable to its wake-up: ``c``'s in
    ``D`` (its read, 291 us) is an ``io_sleep``; ``b``'s in ``S`` counts once it is woken (a
    sleep the recording cuts is left out)."""
    a = analyse(events(TEXT.replace("\\\n", "")), kinds().get)
    assert us(a.kinds["c"].io_sleeps) == [291] and a.kinds["c"].sleeps == []
    assert a.kinds["b"].sleeps == [] and a.kinds["a"].sleeps == []
    woken = TEXT + """\
      <idle>-0       (-----) [001] d.s3.   100.000500: sched_wakeup: comm=b pid=20 prio=120 \
target_cpu=001
"""
    a = analyse(events(woken.replace("\\\n", "")), kinds().get)
    assert us(a.kinds["b"].sleeps) == [420] and a.kinds["b"].io_sleeps == []


def test_a_thread_not_counted_still_takes_the_core() -> None:
    only_a = {10: "a"}.get
    a = analyse(events(TEXT.replace("\\\n", "")), only_a)
    assert set(a.kinds) == {"a"}
    assert a.kinds["a"].by_wakee == 1


def test_recording_bounds_are_checked_before_anything_is_touched() -> None:
    with pytest.raises(ValueError, match="buffer_kb"):
        Trace(buffer_kb=1 << 30)
    for bad in ((), ("sched_switch",), ("sched/../../tracing_on",), ("a/b/c",)):
        with pytest.raises(ValueError, match="events"):
            Trace(events=bad)


# three pool threads: 11 reads 4 KiB of descriptor 9 in 200 us; 12 writes 64 KiB with pwritev
# (its descriptor in hexadecimal) and is refused (-EINTR) after 2 ms; 13's exit has no entry
# (begun before the recording); 14 enters and never exits within it; a sched_switch between
SYSCALLS = """\
# tracer: nop
      qemu-nbd-11      [001] .....   200.000100: sys_pread64(fd: 9, buf: 0x7f00, count: 0x1000, \
pos: 0x40000)
      qemu-nbd-12      [000] .....   200.000150: sys_pwritev(fd: 0x00000005, vec: 0x7f10, vlen: \
0x00000002, pos_l: 0x10000, pos_h: 0x0)
      qemu-nbd-13      [000] .....   200.000160: sys_pwrite64 -> 0x1000
      qemu-nbd-11      [000] d..2.   200.000200: sched_switch: prev_comm=qemu-nbd prev_pid=11 \
prev_prio=120 prev_state=D ==> next_comm=swapper/0 next_pid=0 next_prio=120
      qemu-nbd-11      [000] .....   200.000300: sys_pread64 -> 0x1000
      qemu-nbd-14      [001] .....   200.000400: sys_fallocate(fd: 5, mode: 0x10, offset: 0x0, \
len: 0x10000)
      qemu-nbd-12      [001] .....   200.002150: sys_pwritev -> 0xfffffffffffffffc
"""


def test_each_io_call_is_paired_with_its_own_threads_exit() -> None:
    got = list(syscalls(SYSCALLS.replace("\\\n", "")))
    assert [(c.tid, c.call, c.fd, c.ret) for c in got] == [
        (11, "pread64", 9, 4096), (12, "pwritev", 5, -4)]
    assert [round(c.seconds * 1e6) for c in got] == [200, 2000]
    assert got[0] == Syscall(11, "pread64", 9, 200.0001, got[0].seconds, 4096)
    assert syscall_events(("pread64",)) == ("syscalls/sys_enter_pread64",
                                            "syscalls/sys_exit_pread64")


def tracefs_usable() -> str | None:
    """Why the kernel's events cannot be recorded here, or None."""
    if os.geteuid() != 0:
        return "tracefs needs root"
    try:
        with Trace(buffer_kb=1024):
            return None
    except TraceUnavailable as e:
        return str(e)


def instances() -> list[str]:
    """The names under tracefs's ``instances`` (tracefs is one: the same wherever mounted)."""
    root = tracefs()
    try:
        fd = os.open("instances", os.O_RDONLY | os.O_DIRECTORY, dir_fd=root)
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)
    finally:
        os.close(root)


def tracefs_mounts() -> list[str]:
    """The tracefs mounts of the mount table: those a recording could leave (the table
    itself moves with the other tests running beside this one: a tmpfs of tests/
    test_space_iolog.py came and went during it)."""
    return [ln for ln in Path("/proc/self/mounts").read_text().splitlines()
            if ln.split()[2:3] == ["tracefs"] or "cowbench-tracefs" in ln]


def test_a_real_recording_sees_a_thread_sleep_and_leaves_nothing() -> None:
    why = tracefs_usable()
    if why is not None:
        pytest.skip(f"cannot record the kernel's events here: {why}")
    mounts = tracefs_mounts()
    child = subprocess.Popen([sys.executable, "-c",
                              "import time\nfor _ in range(400): time.sleep(0.001)"])
    try:
        with Trace(buffer_kb=4096) as t:
            assert t.name in instances()
            t.record(0.3)
        assert t.name not in instances()  # the instance is gone with the `with`
    finally:
        child.wait(timeout=30)
    assert tracefs_mounts() == mounts  # nothing left mounted
    assert not list(Path(tempfile.gettempdir()).glob("cowbench-tracefs-*"))
    a = analyse(events(t.text), {child.pid: "sleeper"}.get)
    assert len(a.kinds["sleeper"].turns) > 50  # it wakes every millisecond
    assert all(0 <= w < 0.3 for w in a.kinds["sleeper"].waits)
    assert t.lost == 0


def test_a_real_recording_sees_a_threads_reads_of_a_file(tmp_path: Path) -> None:
    why = tracefs_usable()
    if why is not None:
        pytest.skip(f"cannot record the kernel's events here: {why}")
    data = tmp_path / "data"
    data.write_bytes(b"x" * 65536)
    # on a descriptor no start-up read of the interpreter's has used (it reads with pread too)
    reader = ("import os, sys, time\nfd = os.dup2(os.open(sys.argv[1], os.O_RDONLY), 77)\n"
              "print(fd, flush=True)\n"
              "for i in range(300):\n    os.pread(fd, 4096, 4096 * (i % 16)); time.sleep(0.001)")
    with Trace(buffer_kb=4096, events=syscall_events()) as t:
        t.start()
        child = subprocess.Popen([sys.executable, "-c", reader, str(data)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            fd = int(child.stdout.readline())
        finally:
            child.wait(timeout=30)
            t.stop()
        t.read()
    assert t.name not in instances()
    mine = [c for c in syscalls(t.text) if c.tid == child.pid and c.fd == fd]
    assert len(mine) == 300 and {c.call for c in mine} == {"pread64"}
    assert {c.ret for c in mine} == {4096}
    assert all(0 <= c.seconds < 0.1 for c in mine)
    starts = [c.start for c in mine]
    assert starts == sorted(starts) and starts[-1] - starts[0] > 0.25  # a millisecond apart


def test_an_instance_left_by_a_dead_process_is_removed_by_the_next() -> None:
    why = tracefs_usable()
    if why is not None:
        pytest.skip(f"cannot record the kernel's events here: {why}")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = f"cowbench-{dead.pid}-00000000"
    root = tracefs()
    fd = os.open("instances", os.O_RDONLY | os.O_DIRECTORY, dir_fd=root)
    try:
        os.mkdir(stale, dir_fd=fd)
        try:
            with Trace(buffer_kb=1024):
                assert stale not in instances()
        finally:
            if stale in os.listdir(fd):
                os.rmdir(stale, dir_fd=fd)
    finally:
        os.close(fd)
        os.close(root)
