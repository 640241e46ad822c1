"""A sweep's points leave nothing behind (issue 20 for sweeps): each point runs in a private
directory of its Dask worker's scratch, and that directory is in the lease its run holds, so a
sweep killed outright (SIGKILL of its whole process group: client and workers) leaves what the
next ``cowbench gc`` removes, the point's directory included. Before, the directory was in no
lease: gc removed the run's trees and left it in Dask's scratch, where nothing found it.

Real processes: ``cowbench sweep`` in its own session, with a private ``$TMPDIR`` (so Dask's
scratch, ``$TMPDIR/cowbench-dask-*/dask-scratch-space``) and a private lease registry.
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

from .conftest import TOOL_NAMES, needs_tools, processes_mentioning, small_dict

ROOT = Path(__file__).resolve().parents[1]
LONG = {  # a point of about 40 s in the model: still running when it is killed
    "name": "long",
    "images": [{"name": "img", "virtual_size": "1GiB",
                "synthetic": {"data": [{"offset": 0, "length": "64MiB"}]}}],
    "workloads": {"w": {"rw": "randwrite", "bs": "4k", "iodepth": 4, "io_size": "1536MiB"}},
    "vms": [{"name": "v", "image": "img", "workload": "w", "count": 2}],
}


def _stages(tmp: Path) -> list[Path]:
    """The points' private directories under Dask's scratch (``cowbench-<point>-<hex>``), in
    the sweep's own ``cowbench-dask-*`` directory (``cowbench.sweep_cluster``)."""
    return sorted(tmp.glob("cowbench-dask-*/dask-scratch-space/*/cowbench-p*"))


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


def _tools_under(where: Path) -> list[str]:
    """Live qemu-nbd / fio / qemu-img processes (and fio's PID-namespace ``unshare``) whose
    command line names ``where``."""
    return [argv for _, argv in processes_mentioning(where, names=(*TOOL_NAMES, "unshare"))]


def _loop_mounts_under(where: Path) -> list[str]:
    mounts = [ln for ln in Path("/proc/mounts").read_text().splitlines() if str(where) in ln]
    loops = [p.read_text() for p in Path("/sys/block").glob("loop*/loop/backing_file")]
    return mounts + [b for b in loops if str(where) in b]


def _term_group_and_wait(proc: subprocess.Popen[str]) -> str:
    os.killpg(proc.pid, signal.SIGTERM)  # a service manager stopping the whole group
    _, err = proc.communicate(timeout=120)
    return err


def _nothing_left(private_tmp: Path, lease_registry: Path) -> None:
    assert _tools_under(private_tmp) == []
    assert _loop_mounts_under(private_tmp) == []
    assert list(lease_registry.iterdir()) == []  # nothing for the next command's gc
    assert _stages(private_tmp) == []


@pytest.mark.slow  # a local cluster and a point's model: about 15 s
def test_sigterm_to_a_sweeps_group_leaves_no_lease(tmp_path: Path, private_tmp: Path,
                                                   lease_registry: Path) -> None:
    """SIGTERM to the group reaches the workers too, which die of it at once, in the middle of
    their point: the sweep, once it has stopped its cluster, removes what they left (their
    points' directories, in their leases). Before, their leases and directories were left for
    the next ``cowbench gc``."""
    proc, out = _start_sweep(tmp_path, LONG)
    try:
        _wait_for(proc, lambda: any((s / "run.json").exists() for s in _stages(private_tmp)),
                  "no point started")
        err = _term_group_and_wait(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert json.loads((out / "sweep.json").read_text())["status"] == "interrupted"
    _nothing_left(private_tmp, lease_registry)


@pytest.mark.real
@pytest.mark.serial  # deadlines
@needs_tools
def test_sigterm_to_a_real_reflink_sweeps_group_leaves_nothing(
        tmp_path: Path, private_tmp: Path, lease_registry: Path) -> None:
    """A real point on a loop-mounted reflink XFS, its fio running: after SIGTERM to the
    sweep's process group and its exit, no qemu-nbd, no fio, no mount, no loop device, no
    lease and no point directory is left (before: the XFS stayed mounted in Dask's scratch and
    the point's lease waited for ``cowbench gc``)."""
    if os.geteuid() != 0 or not Path("/dev/loop-control").exists():
        pytest.skip("needs root and loop devices")
    d = small_dict(strategy={"kind": "reflink_copy"})
    for wl in d["workloads"].values():  # jobs that run until stopped, rate-limited
        wl.pop("io_size", None)
        wl.update(time_based=True, runtime="60s", rate_iops=200)
    proc, out = _start_sweep(tmp_path, d, backend="real", seeds=1)
    try:
        _wait_for(proc, lambda: sum(" fio " in f" {os.path.basename(c.split()[0])} "
                                    for c in _tools_under(private_tmp)) >= len(d["vms"]),
                  "fio never started")
        assert _loop_mounts_under(private_tmp), "the point's XFS is mounted in Dask's scratch"
        err = _term_group_and_wait(proc)
        assert proc.returncode == 130, err
        _nothing_left(private_tmp, lease_registry)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if list(lease_registry.iterdir()):
            _cowbench("gc")  # what a failed assertion left: never a mount or a tool
