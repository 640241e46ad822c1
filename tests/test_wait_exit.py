"""wait_exit: woken by a process's exit, not by a polling tick or the timeout."""

from __future__ import annotations

import subprocess
import time

import pytest

from cowbench.tools import pid_alive, wait_exit


def test_an_exit_wakes_the_wait() -> None:
    quick = subprocess.Popen(["sleep", "0.2"])
    slow = subprocess.Popen(["sleep", "60"])
    try:
        t0 = time.monotonic()
        wait_exit([slow.pid, quick.pid], 60)
        assert time.monotonic() - t0 < 30  # the quick one's exit, far before the timeout
        assert quick.poll() == 0 and slow.poll() is None
    finally:
        slow.kill()
        slow.wait()


def test_the_timeout_ends_the_wait() -> None:
    slow = subprocess.Popen(["sleep", "60"])
    try:
        wait_exit([slow.pid], 0.1)
        assert pid_alive(slow.pid)
    finally:
        slow.kill()
        slow.wait()


def test_a_process_gone_already_returns_at_once() -> None:
    done = subprocess.Popen(["sleep", "0"])
    done.wait()  # reaped: its pid no longer names it
    t0 = time.monotonic()
    wait_exit([done.pid], 60)
    assert time.monotonic() - t0 < 30


def test_descriptors_numbered_past_1024_are_waited_on() -> None:
    """A run of a few hundred VMs at once, its limit of open files raised, holds descriptors
    numbered past 1024, the most ``select`` takes (``FD_SETSIZE``): the wait raised
    ``ValueError: filedescriptor out of range in select()`` there, failing the run. Now it
    waits with ``poll``; an exit still wakes it."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"needs a hard limit of open files of 1200 or more (ulimit -Hn: {hard})")
    if soft != resource.RLIM_INFINITY and soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    held: list[int] = []
    quick = subprocess.Popen(["sleep", "0.2"])
    try:
        while not held or held[-1] < 1100:  # the pidfds come next, past 1100
            held.append(os.open(os.devnull, os.O_RDONLY))
        t0 = time.monotonic()
        wait_exit([quick.pid], 60)
        assert time.monotonic() - t0 < 30 and quick.poll() == 0
    finally:
        for fd in held:
            os.close(fd)
        quick.kill()
        quick.wait()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
