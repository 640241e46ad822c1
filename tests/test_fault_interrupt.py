"""SIGINT and SIGTERM during a real run, sent to ``cowbench run`` at a chosen phase.

Each test starts the CLI as a user would (its own session, so a SIGINT to its process group is
a terminal's Ctrl-C), waits for the phase by watching only what that run creates (its run.json,
its ``.converted`` file, its own fio), sends the signal, then checks: exit code 130 and no
traceback; run.json ``interrupted`` with what had completed; no qemu-nbd, fio or qemu-img whose
command line names the run's paths; no socket, temporary or partial file; and a second run into
the same directory refused without touching it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import needs_tools, processes_mentioning, small_dict

pytestmark = [pytest.mark.real, pytest.mark.serial, needs_tools]  # deadlines


def _scenario(phase: str) -> dict[str, Any]:
    d = small_dict()
    if phase == "copy":  # a base big enough that its conversion into _base takes a while
        d["images"][0] = {"name": "img", "virtual_size": "1GiB", "format": "qcow2",
                          "synthetic": {"data": [{"offset": 0, "length": "512MiB"}]}}
        d["vms"][0]["root_size"] = "1GiB"
    if phase == "fio":  # jobs that run until stopped (rate-limited: cheap on a shared machine)
        for wl in d["workloads"].values():
            wl.pop("io_size", None)
            wl.update(time_based=True, runtime="60s", rate_iops=200)
    return d


def _meta(out: Path) -> dict[str, Any]:
    try:
        meta: dict[str, Any] = json.loads((out / "run.json").read_text())
        return meta
    except (OSError, ValueError):
        return {}


def _wait(cond: Callable[[], bool], proc: subprocess.Popen[str], what: str,
          timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {what}: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def _leave_nothing(proc: subprocess.Popen[str],
                   tools: Callable[[], list[tuple[int, str]]]) -> None:
    """If the test itself failed: let the run clean up (SIGTERM, SIGKILL after 60 s), then
    never leave its tools (what ``tools`` finds then) behind."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid, _ in tools():
        os.kill(pid, signal.SIGKILL)


def _start_run(tmp_path: Path, private_tmp: Path, phase: str,
               out: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """``cowbench run`` of the phase's scenario with the real backend into ``out``, in a
    session of its own (a signal to its group reaches it and its tools alone)."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(_scenario(phase)))
    argv = [sys.executable, "-m", "cowbench", "run", str(scenario), "--backend", "real",
            "--out", str(out)]
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env), argv


def _converting(out: Path) -> bool:
    return any((out / "work").glob("hosts/*/instances/_base/*.converted"))


def _fio_mains(out: Path) -> int:
    """fio processes of this run started by cowbench (fio forks its jobs: not those)."""
    mains = 0
    for pid, _ in processes_mentioning(out):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            parent = int(stat.rpartition(")")[2].split()[1])
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            parent_comm = Path(f"/proc/{parent}/comm").read_text().strip()
        except (OSError, ValueError):  # gone meanwhile
            continue
        mains += comm == "fio" and parent_comm != "fio"
    return mains


PHASES: dict[str, Callable[[Path], bool]] = {
    # the copy of the uploaded image into _base (qemu-img convert) is running
    "copy": _converting,
    # the bases are in place, the chains (overlays, exports) are being built
    "chains": lambda out: "bases" in _meta(out).get("real_completed", []),
    # every VM's fio is running
    "fio": lambda out: _fio_mains(out) == 3,
}


@pytest.mark.parametrize("phase,signum,group", [
    ("copy", signal.SIGTERM, False),
    ("copy", signal.SIGINT, True),
    ("chains", signal.SIGTERM, False),
    ("fio", signal.SIGINT, True),
    ("fio", signal.SIGTERM, False),
])
def test_interrupt_leaves_nothing_behind(tmp_path: Path, private_tmp: Path, phase: str,
                                         signum: signal.Signals, group: bool) -> None:
    out = tmp_path / "run"
    proc, argv = _start_run(tmp_path, private_tmp, phase, out)
    try:
        _wait(lambda: PHASES[phase](out), proc, phase)
        if group:
            os.killpg(proc.pid, signum)  # what Ctrl-C in a terminal does
        else:
            os.kill(proc.pid, signum)  # what kill(1), systemd or a batch scheduler does
        stdout, stderr = proc.communicate(timeout=120)
    finally:  # if the test itself fails: let the run clean up, and never leave its tools behind
        _leave_nothing(proc, lambda: processes_mentioning(out, private_tmp))
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr + stdout and "interrupted" in stderr, stderr
    meta = _meta(out)
    assert meta["status"] == "interrupted", meta
    assert signum.name in meta["reason"] and meta["end"] and meta["signal"] == signum.name
    assert "real" not in meta["completed"]
    done = meta.get("real_completed", [])
    if phase == "copy":
        assert "bases" not in done
        converts = [d for d in (out / "raw").glob("*qemu-img-convert*")]
        assert converts and all((d / "returncode").read_text().strip() != "0" for d in converts), \
            "the signal landed during the copy"
    if phase == "chains":
        assert "bases" in done and "workloads" not in done
    if phase == "fio":
        assert "disks" in done and "workloads" not in done
        fio_dirs = list((out / "raw").glob("*-fio-*"))
        assert len(fio_dirs) == 3 and not any((d / "output.json").exists() for d in fio_dirs), \
            "an interrupted fio leaves no output.json that looks complete"
    if phase == "fio" and not group:  # the signal to cowbench alone: it stops each fio
        # each fio stopped itself on SIGTERM (its clean stop: exit 128), none was SIGKILLed,
        # even when the signal came as its jobs were being set up (fio ignores one then)
        codes = {d.name: (d / "returncode").read_text().strip() for d in fio_dirs}
        assert set(codes.values()) == {"128"}, codes
    _assert_nothing_left(out, private_tmp)
    # a second run into the same directory is refused, and the directory is left as it was
    before = sorted(str(p) for p in out.rglob("*"))
    again = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 2 and "already holds" in again.stderr, again.stderr
    assert sorted(str(p) for p in out.rglob("*")) == before
    assert _meta(out) == meta


def test_an_interrupted_repeat_keeps_the_real_runs_it_completed(tmp_path: Path,
                                                                private_tmp: Path) -> None:
    """``--repeat 3`` stopped by Ctrl-C during its second real run: the first run's records
    were only in memory and went with it (run.json said ``done: 1``, the run directory held
    no measured.parquet). They are written, and said so: nothing measured is lost."""
    d = small_dict()
    for wl in d["workloads"].values():  # each real run takes seconds: the signal lands in one
        wl.pop("io_size", None)
        wl.update(time_based=True, runtime="3s", rate_iops=200)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(d))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "cowbench", "run", str(scenario), "--backend",
                             "real", "--repeat", "3", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "TMPDIR": str(private_tmp)})
    try:
        _wait(lambda: (_meta(out).get("real_runs") or {}).get("done", 0) >= 1, proc,
              "the first real run")
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        _leave_nothing(proc, lambda: processes_mentioning(out, private_tmp))
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr + stdout, stderr
    meta = _meta(out)
    assert meta["status"] == "interrupted" and "real" not in meta["completed"], meta
    runs = meta["real_runs"]
    done = runs["done"]
    assert runs["asked"] == 3 and 1 <= done < 3 and runs["kept"] == "measured.parquet", runs
    assert [r["run"] for r in runs["machine"]] == list(range(1, done + 1))
    assert f"the {done} real run(s) done of 3 are kept in measured.parquet" in stderr, stderr
    import pandas as pd

    measured = pd.read_parquet(out / "measured.parquet")
    assert sorted(measured.replication.unique()) == list(range(done))
    for k in range(done):  # every VM's figures, from each run done
        rows = measured[measured.replication == k]
        assert {"vm:a", "vm:b", "vm:c"} <= set(rows.entity), rows
        assert (rows[rows.metric == "write_ios"].value > 0).any()
    _assert_nothing_left(out, private_tmp)


def _assert_nothing_left(out: Path, tmp: Path) -> None:
    deadline = time.monotonic() + 5  # a SIGKILLed child may take a moment to vanish
    while processes_mentioning(out, tmp) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_mentioning(out, tmp) == []
    assert not (out / "work").exists(), "the half-built tree is removed"
    assert list(tmp.iterdir()) == [], "sockets and temporary files are removed"
    leftovers = [p for p in out.rglob("*") if p.name.endswith((".tmp", ".converted", ".part"))]
    assert leftovers == []


def test_a_qemu_nbd_that_dies_under_its_fio_fails_the_run_at_once(tmp_path: Path,
                                                                 private_tmp: Path) -> None:
    """fio's nbd engine does not give up on a dead server: it spun writing 'nothing to poll
    for' to its stderr (26 GB in 10 minutes, measured) until someone stopped cowbench. The
    run fails within seconds, naming the server, and leaves nothing running."""
    out = tmp_path / "run"
    proc, _ = _start_run(tmp_path, private_tmp, "fio", out)
    try:
        _wait(lambda: PHASES["fio"](out), proc, "fio")
        time.sleep(1.0)
        [server] = [pid for pid, argv0 in processes_mentioning(out)
                    if "qemu-nbd" in argv0][:1] or [None]
        assert server is not None
        t0 = time.monotonic()
        os.kill(server, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=120)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid, _ in processes_mentioning(out, private_tmp):
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 1, stderr
    assert took < 30, took
    assert "Traceback" not in stderr + stdout and "error: run failed" in stderr, stderr
    raw = sum(f.stat().st_size for f in (out / "raw").rglob("*") if f.is_file())
    assert raw < 10 << 20, (raw, took)
    assert processes_mentioning(out, private_tmp) == []


# -- before the run: the check of its calibration profile (cowbench.profile_check) -------------

def _probe_tools(pid: int) -> list[tuple[int, str]]:
    """Processes whose command line names ``pid``'s descriptors (``/proc/PID/fd/N/``): the
    probes' qemu-img, qemu-nbd and fio reach their private directory that way, so their
    command lines never name the directory itself."""
    needle = f"/proc/{pid}/fd/".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue
        if needle in argv:
            found.append((int(entry.name), argv.replace(b"\0", b" ").decode(errors="replace")))
    return found


def _start_checked(tmp_path: Path, private_tmp: Path, command: str
                   ) -> tuple[subprocess.Popen[str], Path]:
    """``cowbench run --backend both --profile P`` (or ``calibrate --check P``) with a profile
    made days ago (its probes 0.2 s each, on a 128 MiB image) of the storage under
    ``tmp_path``: the probes are measured again there first."""
    from cowbench.profile import profile_json

    from .test_repeat_real import a_profile

    prof = tmp_path / "p.json"
    prof.write_text(profile_json(a_profile(tmp_path)))
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(small_dict()))
    out = tmp_path / "run"
    args = ["run", str(scenario), "--backend", "both", "--profile", str(prof), "--out",
            str(out)] if command == "run" else ["calibrate", "--check", str(prof)]
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    return subprocess.Popen([sys.executable, "-m", "cowbench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=env), out


@pytest.mark.parametrize("command,moment,signum,group", [
    ("run", "probe directory", signal.SIGTERM, False),
    ("run", "qemu-nbd", signal.SIGTERM, False),
    ("run", "qemu-nbd", signal.SIGINT, True),
    ("calibrate --check", "qemu-nbd", signal.SIGTERM, False),
])
def test_interrupting_the_profile_check_leaves_nothing_behind(
        tmp_path: Path, private_tmp: Path, command: str, moment: str, signum: signal.Signals,
        group: bool) -> None:
    """A SIGTERM while a run checked its profile against the machine killed cowbench outright
    (exit 143, by the default handler): the probe directory stayed for `cowbench gc`. It stops
    as an interrupted run stops: exit 130, one line saying so, the probes' processes and
    images gone; no run directory, since the run had not begun."""
    proc, out = _start_checked(tmp_path, private_tmp, command)

    def reached() -> bool:
        if moment == "probe directory":
            return any(tmp_path.glob(".cowbench-calibrate-*"))
        return any("qemu-nbd" in argv.split()[0] for _, argv in _probe_tools(proc.pid))

    try:
        _wait(reached, proc, moment)
        if group:
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        _leave_nothing(proc, lambda: _probe_tools(proc.pid)
                       + processes_mentioning(tmp_path, private_tmp))
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr + stdout, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert lines[-1].startswith(f"error: interrupted by signal {signum.name}"), stderr
    if command == "run":
        assert f"before the run: {out} was not made" in lines[-1], stderr
        assert not out.exists()
    deadline = time.monotonic() + 5  # a SIGKILLed child may take a moment to vanish
    while _probe_tools(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _probe_tools(proc.pid) == [] and processes_mentioning(tmp_path, private_tmp) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "s.yaml"]
    assert list(private_tmp.iterdir()) == []
