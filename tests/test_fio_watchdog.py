"""What stops fio when cowbench dies (real/workload/fio.py): its own PID namespace, whose
collapse takes fio's job processes with it (they leave fio's process group, so nothing else
reaches them reliably); where namespaces are not allowed, a watchdog that stops fio's process
group even when cowbench dies while the watchdog's own Python is still starting (the SIGTERM
its death signal sends is held until its handler is in place)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from cowbench.tools import PID_NAMESPACE, own_pid_namespace
from real.workload.fio import _watch_group

from .conftest import needs_tools


@pytest.mark.slow
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


def _fio_jobs_of(parent: int) -> list[tuple[int, int]]:
    """(pid, process group) of the fio processes whose parent is ``parent``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            if "(fio)" in stat and int(fields[1]) == parent and fields[0] != "Z":
                found.append((int(entry), int(fields[2])))
    return found


def _null_fio() -> list[str]:
    return ["fio", "--name=x", "--ioengine=null", "--size=1g", "--rw=randread",
            "--time_based=1", "--runtime=60", "--rate_iops=100", "--output=/dev/null"]


def _wait_for(cond: Callable[[], object], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.real
@pytest.mark.serial  # a process gone within a deadline
@needs_tools
def test_a_fio_job_leaves_fio_process_group() -> None:
    """Why a process group cannot stop fio: each job calls setsid() (fio 3.33)."""
    fio = subprocess.Popen(_null_fio(), start_new_session=True)
    jobs: list[tuple[int, int]] = []
    try:
        assert _wait_for(lambda: _fio_jobs_of(fio.pid))
        jobs = _fio_jobs_of(fio.pid)
        [(job, group)] = jobs
        assert group == job != fio.pid
    finally:
        for job, _ in jobs:  # its job, which killing fio does not stop (the point)
            os.kill(job, signal.SIGKILL)
        fio.kill()
        fio.wait()


@pytest.mark.real
@pytest.mark.serial  # a process gone within a deadline
@needs_tools
def test_in_its_pid_namespace_fio_and_its_jobs_die_with_unshare() -> None:
    if not own_pid_namespace():
        pytest.skip("this machine does not allow a PID namespace (needs CAP_SYS_ADMIN)")
    ns = subprocess.Popen([*PID_NAMESPACE, *_null_fio()], start_new_session=True)
    try:
        assert _wait_for(lambda: any(_fio_jobs_of(f) for f, _ in _fio_jobs_of(ns.pid)))
        [(fio, _)] = _fio_jobs_of(ns.pid)
        [(job, _)] = _fio_jobs_of(fio)
    finally:
        ns.kill()  # as PR_SET_PDEATHSIG does when cowbench is killed
        ns.wait()
    assert _wait_for(lambda: not _alive(job) and not _alive(fio), 2), "a fio job outlived it"


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"
