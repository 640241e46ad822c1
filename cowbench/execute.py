"""Execute a notebook with papermill in a child process that can always be stopped.

papermill runs in its own session (``python -m papermill``) with the kernel it starts, its
connection file and its temporary files inside a work folder the caller removes. On SIGINT or
SIGTERM the child and its kernel are terminated (then killed if they linger) before the error
propagates, so an interrupted report leaves no process and no file behind. Running papermill
in-process instead proved fragile: an exception raised by a signal handler in the middle of
jupyter_client's event loop could be swallowed, or hang the shutdown.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import yaml

from .errors import CowbenchError, Interrupted
from .signals import interrupts_raise
from .tools import dies_with_us


class NotebookFailed(CowbenchError):
    """The notebook raised in a cell (or its kernel never started); the message says where."""


#: papermill's progress bar (tqdm) as it lands in the log: ``Executing:  40%|...| 4/10 [``
_CELLS = re.compile(rb"(\d+)/(\d+) \[")


def execute_notebook(source: Path, out: Path, params: dict[str, Any], work: Path,
                     progress: Callable[[int, int], None] = lambda _d, _t: None) -> Any:
    """Run ``source`` with ``params`` injected; write and return the executed notebook.

    ``progress(done, total)`` is called as cells finish (read from papermill's progress bar)."""
    pfile = work / "parameters.yaml"
    pfile.write_text(yaml.safe_dump(params))
    runtime = work / "runtime"
    runtime.mkdir()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "TMPDIR": str(runtime)}
    argv = [sys.executable, "-m", "papermill", str(source), str(out), "-f", str(pfile),
            "--kernel", "python3", "--cwd", str(source.parent), "--progress-bar",
            "--log-level", "CRITICAL"]
    log_path = work / "papermill.log"
    with open(log_path, "wb") as log:
        # SIGTERM, papermill's clean stop, if cowbench dies (SIGKILL included): it stops its
        # kernel; killed outright, papermill and its kernel ran on about 10 s (a user's checks)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                preexec_fn=dies_with_us(signal.SIGTERM))
        try:
            with interrupts_raise():
                returncode = _wait_reporting(proc, log_path, progress)
        except (KeyboardInterrupt, Interrupted) as err:
            stop(proc)
            raise Interrupted(str(err) or "interrupted by SIGINT") from None
    if returncode != 0:
        raise NotebookFailed(f"{source.name}: {failure(out, log_path)}")
    return nbformat.read(out, as_version=4)  # type: ignore[no-untyped-call]


def _wait_reporting(proc: subprocess.Popen[bytes], log: Path,
                    progress: Callable[[int, int], None]) -> int:
    """Wait for papermill, passing on each cell it finishes (polled 5 times a second; the log
    is read once more after papermill exits, so the last cells are never missed)."""
    seen = (-1, -1)
    while True:
        try:
            returncode: int | None = proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            returncode = None
        found = _CELLS.findall(log.read_bytes()[-4096:])
        if found and (now := (int(found[-1][0]), int(found[-1][1]))) != seen:
            seen = now
            progress(*now)
        if returncode is not None:
            return returncode


def failure(out: Path, log: Path) -> str:
    """The failing cell and its error, from the executed notebook; else the log's last line."""
    if out.exists():
        nb = nbformat.read(out, as_version=4)  # type: ignore[no-untyped-call]
        for cell in nb.cells:
            for o in cell.get("outputs", []):
                if o.get("output_type") == "error":
                    first = (cell.get("source") or "").strip().splitlines()[:1] or [""]
                    return (f"cell [{cell.get('execution_count')}] ({first[0][:60]}) raised "
                            f"{o['ename']}: {o['evalue']}")
    lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
    return lines[-1] if lines else "papermill failed without a message"


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (the kernel papermill started), from /proc."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _wait_gone(proc: subprocess.Popen[bytes], pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        proc.poll()  # reap papermill; its kernel, orphaned, is reaped by init
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def stop(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """Terminate papermill and its kernel; kill whatever is still there after ``grace_s``."""
    pids = [proc.pid, *children(proc.pid)]
    _signal_all(pids, signal.SIGTERM)
    if not _wait_gone(proc, pids, grace_s):
        _signal_all(pids, signal.SIGKILL)
        _wait_gone(proc, pids, grace_s)
    proc.wait()
