"""Survive SIGKILL (issue 20, part 2): ``kill -9`` of ``cowbench run`` while fio runs.

The run's qemu-nbd and fio die with it (``PR_SET_PDEATHSIG``); what cannot die (its trees, its
socket directory, the reflink run's XFS loop mount, run.json saying ``running``) is in its
lease: the next command reports it in one line, ``show`` says abandoned, and ``cowbench gc``
removes it all and marks run.json ``abandoned``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import needs_tools, small_dict

pytestmark = [pytest.mark.real, pytest.mark.serial, needs_tools]  # deadlines


def _cowbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cowbench", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append((int(entry.name), stat[stat.find("(") + 1:stat.rfind(")")]))
    return found


def _descendants(pid: int) -> list[tuple[int, str]]:
    """Children and grandchildren: fio runs under ``unshare`` (its own PID namespace) where
    the machine allows it, beside cowbench's direct children elsewhere."""
    kids = _children(pid)
    return kids + [g for k, _ in kids for g in _children(k)]


def _tools_of(pid: int, out: Path) -> list[str]:
    """Live qemu-nbd / fio / qemu-img processes naming the run's paths (its descriptors'
    ``/proc/<pid>/fd/`` or its run directory): their command lines."""
    return [cmd for _, cmd in _tools(pid, out)]


def _tool_pids(pid: int, out: Path) -> list[int]:
    return [p for p, _ in _tools(pid, out)]


def _tools(pid: int, out: Path) -> list[tuple[int, str]]:
    needles = (f"/proc/{pid}/fd/".encode(), str(out).encode())
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        name = os.path.basename(argv.split(b"\0")[0].decode(errors="replace"))
        if name in ("qemu-nbd", "fio", "qemu-img", "qemu-io", "unshare") and state != "Z" \
                and any(n in argv for n in needles):
            left.append((int(entry.name), argv.replace(b"\0", b" ").decode(errors="replace")))
    return left


def _mounts_under(out: Path) -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines()
            if str(out) in line]


def _kill_during_fio(tmp_path: Path, d: dict[str, Any]) -> tuple[Path, Path, int]:
    for wl in d["workloads"].values():  # jobs that run until stopped, rate-limited
        wl.pop("io_size", None)
        wl.update(time_based=True, runtime="60s", rate_iops=200)
    scenario, out = tmp_path / "s.yaml", tmp_path / "run"
    scenario.write_text(yaml.safe_dump(d))
    proc = subprocess.Popen([sys.executable, "-m", "cowbench", "run", str(scenario),
                             "--backend", "real", "--out", str(out)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while sum(name == "fio" for _, name in _descendants(proc.pid)) < len(d["vms"]):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "fio never started"
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    return scenario, out, proc.pid


def _gone_within(cond: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return bool(cond())


def _check_cleanup(scenario: Path, out: Path, pid: int, lease_registry: Path) -> None:
    """qemu-nbd and fio get PR_SET_PDEATHSIG; fio's job processes (forked by fio) are stopped
    by fio's watchdog (``real.workload.fio``), SIGTERM then SIGKILL a second later."""
    assert _gone_within(lambda: not _tools_of(pid, out), 3), _tools_of(pid, out)
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    shown = _cowbench("show", str(out))
    assert f"abandoned (pid {pid} is gone" in shown.stdout, shown.stdout
    warned = _cowbench("validate", str(scenario))
    assert warned.returncode == 0
    assert [line for line in warned.stderr.splitlines() if "died and left" in line] == [
        line for line in warned.stderr.splitlines() if line.strip()], warned.stderr
    assert str(out) in warned.stderr
    gc = _cowbench("gc")
    assert gc.returncode == 0 and "abandoned" in gc.stdout, gc.stderr
    assert _tools_of(pid, out) == []
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "abandoned" and f"pid {pid}" in meta["reason"]
    assert not (out / "work").exists() and not (out / "lease.json").exists()
    # nothing half-written: fio's partial JSON (which fio, stopped by its death signal, may
    # fill with what it had) is never left in the run directory
    assert [p for p in out.rglob("*") if p.name.endswith(".part")] == []
    assert list(lease_registry.iterdir()) == []
    assert "no dead runs" in _cowbench("gc").stdout
    assert "died" not in _cowbench("validate", str(scenario)).stderr


def _leave_nothing(pid: int, out: Path) -> None:
    """Whatever a failed assertion left: what gc removes, then any tool of the run still
    there (an orphaned fio whose server is gone spins writing errors and fills the disk)."""
    _cowbench("gc")
    for tool in _tool_pids(pid, out):
        try:
            os.kill(tool, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_kill_9_during_fio_leaves_nothing_after_gc(tmp_path: Path, private_tmp: Path,
                                                  lease_registry: Path) -> None:
    scenario, out, pid = _kill_during_fio(tmp_path, small_dict())
    try:
        assert list(private_tmp.iterdir()), "the socket directory is what gc removes"
        _check_cleanup(scenario, out, pid, lease_registry)
        assert list(private_tmp.iterdir()) == []
    finally:
        _leave_nothing(pid, out)


def test_kill_9_of_a_reflink_run_detaches_its_xfs(tmp_path: Path, private_tmp: Path,
                                                 lease_registry: Path) -> None:
    if os.geteuid() != 0 or not Path("/dev/loop-control").exists():
        pytest.skip("needs root and loop devices")
    d = small_dict(strategy={"kind": "reflink_copy"})
    scenario, out, pid = _kill_during_fio(tmp_path, d)
    try:
        assert _mounts_under(out), "the XFS loop mount outlives a killed run"
        _check_cleanup(scenario, out, pid, lease_registry)
        assert _mounts_under(out) == []
        loops = [p.read_text() for p in Path("/sys/block").glob("loop*/loop/backing_file")]
        assert not [b for b in loops if str(out) in b], loops
        assert list(private_tmp.iterdir()) == []
    finally:
        _leave_nothing(pid, out)


def test_kill_9_of_a_calibration_leaves_nothing_after_gc(tmp_path: Path,
                                                        lease_registry: Path) -> None:
    """A calibration (`cowbench calibrate`, a first run's quick one, the check of a profile
    before a run) makes its probe images in a private tree of the storage directory: killed
    outright, its lease (in the registry only) lets gc remove that tree."""
    storage, out = tmp_path / "storage", tmp_path / "profile.json"
    storage.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "cowbench", "calibrate", "--dir",
                             str(storage), "--out", str(out), "--runtime", "30", "--rounds",
                             "1", "--exports", "2"], text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(name == "fio" for _, name in _descendants(proc.pid)):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "fio never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert _gone_within(lambda: not _tools_of(proc.pid, storage), 3)
        left = [p.name for p in storage.iterdir()]
        assert len(left) == 1 and left[0].startswith(".cowbench-calibrate-"), left
        scenario = tmp_path / "s.yaml"
        scenario.write_text(yaml.safe_dump(small_dict()))
        warned = _cowbench("validate", str(scenario))  # every command but gc reports it
        assert f"calibration of {storage} (pid {proc.pid}) died and left 1 directories" \
            in warned.stderr, warned.stderr
        gc = _cowbench("gc")
        assert gc.returncode == 0, gc.stderr
        assert f"calibration of {storage}: abandoned" in gc.stdout, gc.stdout
        assert list(storage.iterdir()) == [] and not out.exists()
        assert list(lease_registry.iterdir()) == []
        assert "no dead runs" in _cowbench("gc").stdout
    finally:
        _leave_nothing(proc.pid, storage)


def test_kill_9_while_a_calibration_probe_runs_leaves_no_fio(tmp_path: Path) -> None:
    """A probe's fio forks a process per job (one per export); they ran outside any PID
    namespace and, cowbench killed outright, 1 to 3 of them stayed in 3 of 7 kills, asleep on
    a futex with the probe's fio.json open (a user's SIGKILLs, 2026-12-05). Every fio of a
    calibration runs in a PID namespace of its own now: killed with cowbench, its jobs die."""
    from cowbench.tools import own_pid_namespace

    if not own_pid_namespace():
        pytest.skip("this machine gives no process a PID namespace of its own (unshare --pid)")
    storage = tmp_path / "storage"
    storage.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "cowbench", "calibrate", "--dir",
                             str(storage), "--out", str(tmp_path / "p.json"), "--runtime", "5",
                             "--rounds", "1", "--exports", "2", "--matrix", "quick"],
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)

    def probing() -> bool:  # a probe's fio and its job processes
        return sum("--ioengine=nbd" in cmd and cmd.split()[0].endswith("fio")
                   for cmd in _tools_of(proc.pid, storage)) >= 2

    try:
        deadline = time.monotonic() + 300
        while not probing():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no probe ran"
            time.sleep(0.05)
        time.sleep(0.5)
        # the kernel's guarantee, not a race won: the probe's fio is in a namespace of its own
        ours = os.readlink("/proc/self/ns/pid")
        fio = [p for p, cmd in _tools(proc.pid, storage) if "--ioengine=nbd" in cmd
               and cmd.split()[0].endswith("fio")]
        assert fio and all(_pid_ns(p) not in (ours, None) for p in fio), fio
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        assert _gone_within(lambda: not _tools_of(proc.pid, storage), 3), \
            _tools_of(proc.pid, storage)
    finally:
        _leave_nothing(proc.pid, storage)


def _pid_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def test_kill_9_of_a_report_stops_papermill_and_gc_removes_its_folder(
        tmp_path: Path, lease_registry: Path) -> None:
    """`cowbench report` works in a private ``.report-*`` folder of the run directory, held in
    a lease of its own, and papermill gets SIGTERM when cowbench dies: killed outright, the
    folder stayed for good (no gc knew it, the next report did not remove it) and papermill
    and its kernel ran on for about 10 s (a user's checks, 2026-12-05)."""
    scenario, run = tmp_path / "s.yaml", tmp_path / "run"
    scenario.write_text(yaml.safe_dump(small_dict()))
    made = _cowbench("run", str(scenario), "--backend", "sim", "--out", str(run))
    assert made.returncode == 0, made.stderr
    proc = subprocess.Popen([sys.executable, "-m", "cowbench", "report", str(run)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)

    def papermill() -> list[int]:  # cowbench's child: papermill, which starts the kernel
        return [p for p, _ in _children(proc.pid)]

    try:
        deadline = time.monotonic() + 120
        while not (list(run.glob(".report-*")) and papermill()):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "papermill never started"
            time.sleep(0.05)
        kids = papermill()
        kernels = [g for k in kids for g, _ in _children(k)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        # papermill at once (its PR_SET_PDEATHSIG); its kernel once papermill has stopped it,
        # or once its own poller sees its parent gone (seconds, on a loaded machine)
        assert _gone_within(lambda: not any(_alive(p) for p in kids), 5), kids
        assert _gone_within(lambda: not any(_alive(p) for p in kernels), 30), kernels
        scenario.write_text(yaml.safe_dump(small_dict()))
        warned = _cowbench("validate", str(scenario))
        assert f"report of {run} (pid {proc.pid}) died and left 1 directories" \
            in warned.stderr, warned.stderr
        gc = _cowbench("gc")
        assert gc.returncode == 0, gc.stderr
        assert not list(run.glob(".report-*")) and list(lease_registry.iterdir()) == []
        assert json.loads((run / "run.json").read_text())["status"] == "ok"  # the run's own
    finally:
        _cowbench("gc")


def test_gc_says_what_it_left_when_a_dead_runs_tree_was_moved(
        tmp_path: Path, private_tmp: Path, lease_registry: Path) -> None:
    """A dead run's tree renamed and another directory put at its name: gc leaves both (never
    by name alone), and says so, in its output and in run.json's reason; it said only what it
    removed, and run.json that gc removed what the run left (a user's checks)."""
    scenario, out, pid = _kill_during_fio(tmp_path, small_dict())
    try:
        assert _gone_within(lambda: not _tools_of(pid, out), 3), _tools_of(pid, out)
        (out / "work").rename(out / "work-moved")
        (out / "work").mkdir()
        (out / "work" / "decoy").write_text("not the run's")
        gc = _cowbench("gc")
        assert gc.returncode == 0, gc.stderr
        assert f"left alone {out}/work: not the directory the run made" in gc.stdout, gc.stdout
        assert (out / "work" / "decoy").read_text() == "not the run's"
        assert (out / "work-moved").is_dir()
        reason = json.loads((out / "run.json").read_text())["reason"]
        assert "1 directory(ies) the run made had been moved or replaced" in reason, reason
    finally:
        _leave_nothing(pid, out)
        for moved in (out / "work-moved", out / "work"):
            shutil.rmtree(moved, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
