"""A sweep stops on the first SIGINT or SIGTERM (issue 20): pending points are cancelled, the
cluster it started is gone, sweep.json and every unfinished point say ``interrupted``, exit
130, one error line. Before, SIGTERM was swallowed as one failed point and every later SIGINT
ignored (all 600 points ran). Real processes: ``cowbench sweep`` in its own session, signalled
once a point has finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
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
    counts = Counter(p["status"] for p in meta["points"])
    assert counts["interrupted"] >= POINTS // 2 and set(counts) <= {"ok", "interrupted"}, counts
    for d in (out / "points").iterdir():  # no point left saying it is running
        assert json.loads((d / "run.json").read_text())["status"] in ("ok", "interrupted")
    time.sleep(1)
    assert not _group_alive(proc.pid), "worker processes outlived the sweep"
