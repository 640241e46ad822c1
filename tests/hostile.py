"""A hostile user for the root-safety tests: a process running as ``nobody`` (uid 65534) that
watches a directory it owns with inotify and swaps names in it the moment cowbench touches them.

inotify through ``inotify_simple`` (chrisjbillington/inotify_simple: a ctypes wrapper of the
three inotify calls, under 100 lines, no dependencies, maintained since 2016): the attacker
reacts to the kernel's own events, as a real one would, rather than racing blind with sleeps.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# imported here, by root: after setuid, nobody may not read the interpreter's own library
import inotify_simple  # noqa: F401

NOBODY = 65534

#: Swap the run's tree: when ``cowbench-*`` appears in the watched directory, rename it away
#: and put a symlink to the victim directory in its place.
SWAP_TREE = r"""
import os, sys
from inotify_simple import INotify, flags
where, victim = sys.argv[1:3]
ino = INotify()
ino.add_watch(where, flags.CREATE | flags.MOVED_TO)
print("ready", flush=True)
n = 0
while True:
    for ev in ino.read():
        p = os.path.join(where, ev.name)
        if ev.name.startswith("cowbench-") and not os.path.islink(p):
            try:
                os.rename(p, os.path.join(where, f"moved-{n}"))
                os.symlink(victim, p)
                n += 1
                print("swapped", flush=True)
            except OSError as err:
                print("missed", err, flush=True)
"""

#: Trade an image file for another when readers have closed it ``k`` times, and trade it back
#: two closes later (three renames each time): the window between an inspection and the
#: next use. cowbench 0.1 closed a path image 14 times in a run; its hash before the
#: conversion was the 9th close, the conversion the 10th and 11th. It watches the opens too:
#: the kernel merges an event into the one before it while both are unread and alike, so a
#: lagging attacker would count two closes in a row as one. It stops at the close of
#: ``.last-close`` (``attacker(..., last_close=...)``), having handled every close before it.
SWAP_ON_CLOSE = r"""
import os, sys
from inotify_simple import INotify, flags
where, name, other, k = sys.argv[1:5]
LAST_CLOSE = ".last-close"
ino = INotify()
ino.add_watch(where, flags.CLOSE_NOWRITE | flags.OPEN)  # opens: no two closes in a row
print("ready", flush=True)
closes = 0
last = False
while not last:
    for ev in ino.read():
        last = last or ev.name == LAST_CLOSE
        if ev.name != name or last or not ev.mask & flags.CLOSE_NOWRITE:
            continue
        closes += 1
        if closes in (int(k), int(k) + 2):
            a, b, t = (os.path.join(where, x) for x in (name, other, ".swap"))
            os.rename(a, t); os.rename(b, a); os.rename(t, b)
            print("swapped", flush=True)
"""


@contextmanager
def shared_dir() -> Iterator[Path]:
    """A directory every user can traverse (pytest's tmp_path is root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="cbh-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def give(path: Path) -> Path:
    os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    return path


@contextmanager
def attacker(script: str, *args: str, last_close: Path | None = None) -> Iterator[list[str]]:
    """Run ``script`` as nobody, in a forked child that drops root with ``setuid`` (this
    interpreter lives under /root, which nobody could not exec); yields the lines it printed
    once it stops (on exit). With ``last_close`` (a script that stops on that file's close)
    it is stopped only after it has read every event before that close: on a loaded machine
    the attacker may lag behind what it watches, and what it would still have done counts."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(rfd)
            os.dup2(wfd, 1)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.chdir("/")
            sys.argv = ["attacker", *args]
            sys.stdout = os.fdopen(1, "w")
            exec(compile(script, "attacker", "exec"), {"__name__": "__main__"})
        except BaseException as err:  # noqa: BLE001 (said on the pipe, for the test)
            print(f"attacker failed: {err!r}", flush=True)
        finally:
            os._exit(0)
    os.close(wfd)
    reader = os.fdopen(rfd)
    ready = reader.readline()
    if ready.strip() != "ready":
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError(f"attacker did not start: {ready!r}")
    lines: list[str] = []
    try:
        yield lines
    finally:
        if last_close is None or not _stopped_after(last_close, pid):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        lines += reader.read().splitlines()
        reader.close()


def _stopped_after(last_close: Path, pid: int, seconds: float = 120) -> bool:
    """Close ``last_close`` once unwritten (made first) and wait for the attacker ``pid`` to
    stop: False if it has not stopped within ``seconds``."""
    os.close(os.open(last_close, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
    os.close(os.open(last_close, os.O_RDONLY | os.O_NOFOLLOW))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
        time.sleep(0.01)
    return False
