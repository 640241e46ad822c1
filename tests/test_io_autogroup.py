"""benchmarks/io_autogroup.py: the kernel's grouping on and off, real beside the model. Its
real runs need root and the whole machine, and are a benchmark's; these check what it does
around them: the value it found written back however it ends, the figures it reads, and bad
input stopped before the machine is touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from .conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def io_autogroup() -> ModuleType:
    return load_benchmark("io_autogroup")


def test_the_value_found_is_written_back_when_the_script_is_killed(tmp_path: Path) -> None:
    # a stand-in for the sysctl: the script's process takes its guard, writes another value,
    # and dies by SIGKILL, so no finally of its own runs
    knob = tmp_path / "knob"
    knob.write_text("1")
    script = str(ROOT / "benchmarks" / "io_autogroup.py")
    child = (
        "import os, signal, sys\n"
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('m', {script!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"g = m.guard(m.Path({str(knob)!r}), '1')\n"
        f"open({str(knob)!r}, 'w').write('0')\n"
        "print(g.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          cwd=ROOT, check=False, timeout=60)
    assert proc.returncode == -9
    guard_pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if knob.read_text() == "1" and ended(guard_pid):
            break
        time.sleep(0.05)
    assert knob.read_text() == "1"
    assert ended(guard_pid)  # the guard is done too


def ended(pid: int) -> bool:
    """Whether process ``pid`` has exited: gone, or a zombie its new parent (the machine's
    init, or a subreaper) has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def test_a_guard_closed_writes_at_once(tmp_path: Path) -> None:
    knob = tmp_path / "knob"
    knob.write_text("0")
    g = io_autogroup().guard(knob, "1")
    assert g.stdin is not None
    g.stdin.close()
    assert g.wait(timeout=30) == 0
    assert knob.read_text() == "1"


def test_each_vm_s_iops_are_its_reads_and_writes_and_its_server_s_cpu(tmp_path: Path) -> None:
    rows = [("vm:mix", "read_iops", 300.0), ("vm:mix", "write_iops", 100.0),
            ("vm:mix", "server_cpu_s", 2.5), ("vm:reader", "read_iops", 900.0),
            ("vm:reader", "server_cpu_s", 1.5), ("host:h", "cpu_busy_share", 0.9)]
    df = pd.DataFrame([{"t_s": None, "entity": e, "metric": m, "value": v} for e, m, v in rows]
                      + [{"t_s": 10.0, "entity": "vm:mix", "metric": "read_iops",
                          "value": 5.0}])
    csv = tmp_path / "measured.csv"
    df.to_csv(csv, index=False)
    got = io_autogroup().figures(csv)
    assert got.loc["mix"].tolist() == [400.0, 2.5]
    assert got.loc["reader"].tolist() == [900.0, 1.5]
    assert list(got.index) == ["mix", "reader"]


def test_a_profile_without_a_host_scheduler_cannot_be_grouped(tmp_path: Path) -> None:
    src = tmp_path / "p.json"
    for text in (json.dumps({"params": {"sched": None}}), "[1, 2]", "{not json"):
        src.write_text(text)
        with pytest.raises(ValueError):
            io_autogroup().load(src)
    src.write_text(json.dumps({"params": {"sched": {"cores": 2, "groups": "none"}}}))
    data = io_autogroup().load(src)
    io_autogroup().with_groups(data, "session", tmp_path / "q.json")
    assert json.loads((tmp_path / "q.json").read_text())["params"]["sched"]["groups"] == "session"
    assert data["params"]["sched"]["groups"] == "none"  # the profile read is left as it was


@pytest.mark.parametrize("bad", ["scenario", "profile"])
def test_bad_input_stops_it_before_the_machine_is_touched(tmp_path: Path, bad: str) -> None:
    scenario = tmp_path / ("none.yaml" if bad == "scenario" else "s.yaml")
    if bad != "scenario":
        scenario.write_text("name: x\n")
    profile = tmp_path / "p.json"
    profile.write_text("{}" if bad == "profile" else
                       json.dumps({"params": {"sched": {"cores": 2}}}))
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "io_autogroup.py"),
                           str(scenario), "--profile", str(profile),
                           "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT, check=False, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert ("none.yaml" if bad == "scenario" else "params.sched") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_the_value_found_is_written_back_after_the_block_and_after_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = io_autogroup()
    knob = tmp_path / "knob"
    knob.write_text("1")
    monkeypatch.setattr(m, "SYSCTL", knob)
    with m.restored("1"):
        knob.write_text("0")
    assert knob.read_text() == "1"
    with pytest.raises(RuntimeError), m.restored("1"):
        knob.write_text("0")
        raise RuntimeError("the run failed")
    assert knob.read_text() == "1"
