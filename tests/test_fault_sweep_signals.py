"""A sweep stops on the first SIGINT or SIGTERM (issue 20): pending points are cancelled, the
cluster it started is gone, sweep.json and every unfinished point say ``interrupted``, exit
130, one error line. Before, SIGTERM was swallowed as one failed point and every later SIGINT
ignored (all 600 points ran). Real processes: ``cowbench sweep`` in its own session, signalled
once a point has finished."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
POINTS = 30
SLOW = {  # a point of a few seconds in the model
    "name": "slow",
    "images": [{"name": "img", "virtual_size": "1GiB",
                "synthetic": {"data": [{"offset": 0, "length": "64MiB"}]}}],
    "workloads": {"w": {"rw": "randwrite", "bs": "4k", "iodepth": 4, "io_size": "32MiB"}},
    "vms": [{"name": "v", "image": "img", "workload": "w", "count": 2}],
}


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[2]) == pgid and stat[0] != "Z":
            alive.append(int(entry.name))
    return alive


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return "?"


def _ok_points(out: Path) -> int:
    try:
        meta = json.loads((out / "sweep.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(p["status"] == "ok" for p in meta.get("points", []))


@pytest.mark.parametrize("scheduler, sig, to_group", [
    ("local", signal.SIGTERM, False),     # a service manager stopping the command
    ("inprocess", signal.SIGINT, True),   # Ctrl-C in a terminal: the whole process group
    ("local", signal.SIGINT, True),
])
@pytest.mark.slow
def test_a_sweep_stops_on_the_first_signal(tmp_path: Path, scheduler: str,
                                           sig: signal.Signals, to_group: bool) -> None:
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(SLOW))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({"scenario": "slow.yaml",
                                                      "seeds": POINTS}))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "cowbench", "sweep", str(tmp_path / "sw.yaml"),
                             "--out", str(out), "--scheduler", scheduler, "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while _ok_points(out) < 1:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no point finished"
            time.sleep(0.2)
        if to_group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(
        f"error: interrupted by signal {sig.name}; sweep directory: {out}"), err
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["status"] == "interrupted" and meta["reason"] == \
        f"interrupted by signal {sig.name}"
    assert meta["signal"] == sig.name  # as run.json says it (before: only in the reason)
    counts = Counter(p["status"] for p in meta["points"])
    assert counts["interrupted"] >= POINTS // 2 and set(counts) <= {"ok", "interrupted"}, counts
    for d in (out / "points").iterdir():  # no point left saying it is running
        assert json.loads((d / "run.json").read_text())["status"] in ("ok", "interrupted")
    time.sleep(1)
    left = {pid: _cmdline(pid) for pid in _group_alive(proc.pid)}
    assert not left, f"processes outlived the sweep: {left}"


@pytest.mark.slow
def test_sigint_is_answered_promptly_while_the_model_runs(tmp_path: Path) -> None:
    """A model run of about 40 s here, interrupted a few seconds into the model: run.json says
    ``interrupted`` at once and the command exits 130, long before the model would end.
    (Measured: run.json within 0.03-0.15 s of the signal, even at 10^5 VMs.)"""
    slow = copy.deepcopy(SLOW)
    slow["workloads"]["w"]["io_size"] = "1536MiB"
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(slow))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "cowbench", "run", str(tmp_path / "slow.yaml"),
                             "--backend", "sim", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)
    try:
        while not (out / "run.json").exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(3)  # into the model
        assert proc.poll() is None, "the model ended before the signal: make it longer"
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        answered = None
        while proc.poll() is None and time.monotonic() - t0 < 30:
            if answered is None and '"interrupted"' in (out / "run.json").read_text():
                answered = time.monotonic() - t0
            time.sleep(0.01)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 15  # the rest of the model alone would take over 30 s
    assert answered is not None and answered < 5, answered
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["reason"] == "interrupted by signal SIGINT"
    assert err.strip().splitlines()[-1].startswith("error: interrupted by signal SIGINT")


def _sigint_blocked_or_ignored(pid: int) -> bool:
    """Whether process ``pid`` never takes SIGINT (blocked in every thread, or ignored)."""
    def mask(text: str, key: str) -> int:
        return int(next(ln for ln in text.splitlines() if ln.startswith(key)).split()[1], 16)

    bit = 1 << (signal.SIGINT - 1)
    status = Path(f"/proc/{pid}/status").read_text()
    if mask(status, "SigIgn:") & bit:
        return True
    return all(mask((t / "status").read_text(), "SigBlk:") & bit
               for t in Path(f"/proc/{pid}/task").iterdir())


@pytest.fixture()
def default_sigint() -> Iterator[None]:
    """SIGINT as a fresh Python has it (its own handler), put back as found after: the
    whole suite once gave this worker SIGINT ignored by a test before (not found), and the
    check that the sweep leaves Python's handler is of the sweep, not of what it was given."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.slow  # a local cluster started and stopped: 2-4 s
def test_a_signal_while_the_cluster_starts_stops_the_sweep(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals,
        default_sigint: None) -> None:
    """A signal that arrives while the LocalCluster starts (delivered from inside its start,
    so at that moment every time) stops the sweep once the cluster is held: no point runs,
    sweep.json and every point say ``interrupted``, no worker is left. Before, SIGINT was
    set to ignored in the sweep's own process while the cluster started (so the workers
    inherited it ignored): a Ctrl-C then was lost and every point ran. The workers still
    never take SIGINT themselves."""
    import multiprocessing

    import dask.distributed

    from cowbench.errors import Interrupted
    from cowbench.sweep import load_sweep, run_sweep

    real = dask.distributed.LocalCluster
    workers_immune: list[bool] = []

    class SignalledWhileStarting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            os.kill(os.getpid(), sig)
            super().__init__(*args, **kwargs)
            workers_immune.extend(_sigint_blocked_or_ignored(c.pid)  # type: ignore[arg-type]
                                  for c in multiprocessing.active_children()
                                  if "Worker" in c.name)

    monkeypatch.setattr(dask.distributed, "LocalCluster", SignalledWhileStarting)
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(SLOW))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({"scenario": "slow.yaml", "seeds": 3}))
    out = tmp_path / "out"
    t0 = time.monotonic()
    with pytest.raises(Interrupted, match=f"^interrupted by signal {sig.name}; sweep "
                                          f"directory: {out}"):
        run_sweep(load_sweep(tmp_path / "sw.yaml"), out, scheduler="local", workers=1)
    assert time.monotonic() - t0 < 60
    assert workers_immune == [True]
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["status"] == "interrupted" and meta["reason"] == f"interrupted by signal {sig.name}"
    assert meta["signal"] == sig.name
    assert [p["status"] for p in meta["points"]] == ["interrupted"] * 3
    assert list((out / "points").iterdir()) == []
    assert multiprocessing.active_children() == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())


def test_a_signal_while_the_sweep_file_is_read_is_one_error_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C before the sweep runs (here, while its file is read) ends it as a later one
    would: ``error: interrupted by signal SIGINT``, exit 130, nothing written. Before, a bare
    ``interrupted`` line (and a SIGTERM then killed the command outright)."""
    from cowbench import sweep as sweep_module

    from .clirun import cowbench

    real = sweep_module.load_sweep

    def signalled(path: Path) -> object:
        os.kill(os.getpid(), signal.SIGTERM)
        return real(path)

    monkeypatch.setattr(sweep_module, "load_sweep", signalled)
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(SLOW))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({"scenario": "slow.yaml"}))
    ran = cowbench("sweep", str(tmp_path / "sw.yaml"), "--out", str(tmp_path / "out"))
    assert ran.code == 130, ran
    assert [ln for ln in ran.stderr.splitlines() if not ln.startswith("warning: ")] == [
        "error: interrupted by signal SIGTERM"]
    assert not (tmp_path / "out").exists()


def test_a_ctrl_c_outside_any_command_says_error_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from cowbench import lease

    from .clirun import cowbench

    def interrupted() -> list[object]:
        raise KeyboardInterrupt

    monkeypatch.setattr(lease, "dead_leases", interrupted)
    ran = cowbench("validate", "nothing.yaml")
    assert ran.code == 130, ran
    assert [ln for ln in ran.stderr.splitlines() if not ln.startswith("warning: ")] == [
        "error: interrupted by signal SIGINT"]
