"""A sweep's points leave nothing behind (issue 20 for sweeps): each point runs in a private
directory of its Dask worker's scratch, and that directory is in the lease its run holds, so a
sweep killed outright (SIGKILL of its whole process group: client and workers) leaves what the
next ``cowbench gc`` removes, the point's directory included. Before, the directory was in no
lease: gc removed the run's trees and left it in Dask's scratch, where nothing found it.

Real processes: ``cowbench sweep`` in its own session, with a private ``$TMPDIR`` (so Dask's
scratch, ``$TMPDIR/dask-scratch-space``) and a private lease registry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LONG = {  # a point of about 40 s in the model: still running when it is killed
    "name": "long",
    "images": [{"name": "img", "virtual_size": "1GiB",
                "synthetic": {"data": [{"offset": 0, "length": "64MiB"}]}}],
    "workloads": {"w": {"rw": "randwrite", "bs": "4k", "iodepth": 4, "io_size": "1536MiB"}},
    "vms": [{"name": "v", "image": "img", "workload": "w", "count": 2}],
}


def _stages(tmp: Path) -> list[Path]:
    """The points' private directories under Dask's scratch (``cowbench-<point>-<hex>``)."""
    return sorted(tmp.glob("dask-scratch-space/*/cowbench-p*"))


def _cowbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cowbench", *args], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _start_sweep(tmp_path: Path, scenario: dict[str, Any], backend: str = "sim",
                 seeds: int = 3) -> tuple[subprocess.Popen[str], Path]:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario))
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({"scenario": "s.yaml", "seeds": seeds,
                                                      "backend": backend}))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "cowbench", "sweep", str(tmp_path / "sw.yaml"),
                             "--out", str(out), "--scheduler", "local", "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proc, out


def _wait_for(proc: subprocess.Popen[str], cond: Any, what: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.slow  # a local cluster and a point's model: about 15 s
def test_a_killed_sweeps_point_directory_is_in_a_lease_gc_removes(
        tmp_path: Path, private_tmp: Path, lease_registry: Path) -> None:
    proc, _ = _start_sweep(tmp_path, LONG)
    try:
        _wait_for(proc, lambda: any((s / "run.json").exists() for s in _stages(private_tmp)),
                  "no point started")
        stage = _stages(private_tmp)[0]
        os.killpg(proc.pid, signal.SIGKILL)  # the client and its workers, outright
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert stage.is_dir()  # nothing could remove it: the worker was killed outright
    leases = [json.loads(p.read_text()) for p in lease_registry.iterdir()]
    assert any(str(stage) in [f"{t['parent']}/{t['name']}" for t in r["trees"]]
               for r in leases), leases
    gc = _cowbench("gc")
    assert gc.returncode == 0, gc.stderr
    assert f"removed {stage}" in gc.stdout, gc.stdout
    assert _stages(private_tmp) == []
    assert list(lease_registry.iterdir()) == []
    assert "died" not in _cowbench("gc").stdout + _cowbench("gc").stderr
