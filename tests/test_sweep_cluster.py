"""A sweep on workers that share nothing with the client (issue 21): the README's cluster
commands, run exactly as written, each ``dask worker`` in its own mount namespace with a
private tmpfs over ``/tmp``, where the client's sweep directory (under ``/tmp``) is out of its
sight. The sweep directory is complete on the client, resumes there, and the workers' view
stays empty of it (seen through ``/proc/<pid>/root``, which resolves in their namespace)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from .test_readme_reports import README, blocks

ROOT = Path(__file__).resolve().parents[1]
#: Run before a README worker command: a private /tmp, then the command itself.
PRIVATE_TMP = ["unshare", "-m", "--propagation", "private", "sh", "-c",
               'mount -t tmpfs -o mode=1777 tmpfs /tmp && exec "$0" "$@"']
PORT = 8786


def cluster_commands() -> list[str]:
    """The ``$ `` lines of the console block of "Running a sweep"."""
    section = README[README.index("## Running a sweep"):].split("\n## ", 1)[0]
    return [ln[2:] for lang, block in blocks(section) if lang == "console"
            for ln in block if ln.startswith("$ ")]


def _listening() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", PORT)) == 0


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes the test starts, each in its own session: stopped, group and all, whatever
    happens."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in reversed(procs):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in reversed(procs):
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _start(procs: list[subprocess.Popen[bytes]], argv: list[str], cwd: Path, env: dict[str, str],
           log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:
        procs.append(subprocess.Popen(argv, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT,
                                      start_new_session=True))
    return procs[-1]


def _starts(out: Path) -> dict[str, str]:
    return {d.name: json.loads((d / "run.json").read_text())["start"]
            for d in sorted((out / "points").iterdir())}


@pytest.mark.slow
def test_a_sweep_on_workers_that_cannot_see_the_client_directory(
        tmp_path: Path, started: list[subprocess.Popen[bytes]]) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for the workers' mount namespaces")
    scheduler, *workers, client = cluster_commands()
    assert scheduler.startswith("dask scheduler") and len(workers) == 2
    assert client.startswith("cowbench sweep") and f"tcp://127.0.0.1:{PORT}" in client
    assert not _listening(), f"port {PORT} is taken: the workers would join another scheduler"
    fresh = tmp_path / "fresh"
    for name in ("scenarios", "sweeps"):
        shutil.copytree(ROOT / name, fresh / name)
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    sched = _start(started, shlex.split(scheduler), fresh, env, tmp_path / "scheduler.log")
    deadline = time.monotonic() + 60
    while not _listening():
        assert sched.poll() is None, (tmp_path / "scheduler.log").read_text()
        assert time.monotonic() < deadline, "the scheduler did not start"
        time.sleep(0.2)
    pids = [_start(started, PRIVATE_TMP + shlex.split(w), Path("/"), env,
                   tmp_path / f"worker{i}.log").pid for i, w in enumerate(workers)]
    views = [Path(f"/proc/{pid}/root") for pid in pids]
    argv = [sys.executable, "-m", "cowbench", *shlex.split(client)[1:]]
    ran = subprocess.run(argv, cwd=fresh, env=env, capture_output=True, text=True, timeout=900,
                         check=False)
    assert ran.returncode == 0, ran.stderr
    out = fresh / "results" / "qs-cluster"
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["status"] == "ok" and [p["status"] for p in meta["points"]] == ["ok"] * 6
    for d in (out / "points" / f"p000{i}" for i in range(6)):
        assert json.loads((d / "run.json").read_text())["status"] == "ok"
        assert len(pd.read_parquet(d / "predicted.parquet")) > 0
        assert (d / "scenario.yaml").is_file() and (d / "raw").is_dir()
    assert len(pd.read_csv(out / "summary.csv")) == 6
    # resumed on the same workers: a point missing on the client is redone, the rest kept
    before = _starts(out)
    shutil.rmtree(out / "points" / "p0002")
    time.sleep(1.1)  # run.json's start has one-second resolution
    again = subprocess.run(argv, cwd=fresh, env=env, capture_output=True, text=True,
                           timeout=900, check=False)
    assert again.returncode == 0 and "6 of 6 points ok" in again.stdout, again.stderr
    after = _starts(out)
    assert [k for k in before if before[k] != after[k]] == ["p0002"]
    for i, view in enumerate(views):
        log = (tmp_path / f"worker{i}.log").read_text()
        assert view.exists(), log  # the worker still runs
        assert os.stat(view / "tmp").st_dev != os.stat("/tmp").st_dev  # its private /tmp
        assert not (view / str(tmp_path).lstrip("/")).exists()  # the client's tree: unseen
        scratch = list((view / "tmp" / "dask-scratch-space").glob("worker-*"))
        assert scratch, log  # it worked in its own /tmp ...
        assert [p.name for s in scratch for p in s.glob("cowbench-*")] == []  # ... kept nothing
