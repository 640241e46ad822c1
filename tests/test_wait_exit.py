"""wait_exit: woken by a process's exit, not by a polling tick or the timeout."""

from __future__ import annotations

import subprocess
import time

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
