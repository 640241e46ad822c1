"""fio's watchdog (real/workload/fio.py) stops fio's process group even when cowbench dies
while the watchdog's own Python is still starting: the SIGTERM its death signal sends is held
until its handler is in place (a kill -9 in that window once left the second VM's fio alive)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from real.workload.fio import _watch_group


def test_a_sigterm_sent_while_the_watchdog_starts_still_stops_the_group() -> None:
    group = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        dog = _watch_group(group.pid)
        dog.send_signal(signal.SIGTERM)  # at once: the watchdog's Python has not started yet
        deadline = time.monotonic() + 10
        while group.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert group.poll() is not None, "the group outlived its watchdog's SIGTERM"
        assert dog.wait(timeout=10) == 0  # it ran its handler (os._exit(0)), not killed by it
    finally:
        if group.poll() is None:
            os.killpg(group.pid, signal.SIGKILL)
        group.wait()
