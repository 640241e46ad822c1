"""Files that are either absent, their previous version, or complete: never half-written.

Each write goes to a hidden temporary name in the same directory (``.NAME.XXXX.tmp``), is
flushed (and, for results, fsync'ed), then renamed over ``NAME``; ``rename(2)`` within a
filesystem is atomic, so a reader or a crash sees the old file or the new one. A write that
fails (ENOSPC, an interrupt) removes its temporary file and raises the ``OSError`` naming
``NAME`` (a full disk's ``write`` names no file: "No space left on device" alone said neither
what nor whose). Only SIGKILL or a power cut can leave a ``.*.tmp`` behind, and its name says
what it is.

What cowbench writes is never writable by group or others, whatever umask it was started
with (:func:`no_writes_by_others`): under ``umask 000`` a run directory's ``raw/`` folders were
0777, and another user swapped one for a symlink and had root overwrite the files it led to.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: the permission bits the process umask always holds once cowbench starts: no write for group
#: and others
OTHERS_NO_WRITE = 0o022


def no_writes_by_others() -> None:
    """Add :data:`OTHERS_NO_WRITE` to the process umask, for good (idempotent; it only ever
    takes permissions away). Called once where a command, a run or a sweep starts
    (``cowbench.cli.main``, :func:`cowbench.runner.run_scenario`,
    :func:`cowbench.sweep.run_sweep`).

    Chosen over an explicit mode at each place that creates a file, because most of what lands
    in a run directory is not created by a call cowbench could give a mode to: fio creates its
    JSON, logs and iologs, qemu-img its images, pyarrow the parquet files, ``open()`` the raw
    records' stdout and stderr; a umask is inherited by every child (fio, qemu-*, Dask's local
    workers) and followed by every library, so one call covers them all, today's and
    tomorrow's. The directories cowbench makes itself get their mode explicitly too
    (``cowbench.fdtree``); a stricter umask (077) is kept as it is."""
    mask = os.umask(0)
    os.umask(mask | OTHERS_NO_WRITE)


def _mkstemp(path: Path) -> tuple[int, str]:
    """A temporary file beside ``path`` with the permissions a plain ``open`` would give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def _named(err: OSError, path: Path) -> OSError:
    """``err`` as the same kind of error, naming the file that was being written."""
    if err.errno is None:
        return err
    return type(err)(err.errno, err.strerror, str(path))


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True) -> None:
    try:
        fd, tmp = _mkstemp(path)
    except OSError as err:
        raise _named(err, path) from err
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _named(err, path) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode(), fsync=fsync)


def atomic_write_with(path: Path, writer: Callable[[str], None]) -> None:
    """Let ``writer`` fill a temporary file (e.g. ``df.to_parquet``), then rename it."""
    try:
        fd, tmp = _mkstemp(path)
    except OSError as err:
        raise _named(err, path) from err
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _named(err, path) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PartialFiles(Protocol):
    """What records a run's partial files (``cowbench.lease.Lease``)."""

    def add_file(self, path: Path) -> None: ...

    def drop_file(self, path: Path) -> None: ...


class ToolOutput:
    """A result file an external tool writes itself (fio's ``--output``), made as atomic as the
    files cowbench writes: the tool is pointed at :attr:`partial`, a hidden ``.NAME.part``
    beside ``NAME`` that :meth:`hold` makes (empty, exclusively, before the tool starts: fio
    truncates it, the same inode) and records in ``lease``; :meth:`commit` renames it to
    ``NAME`` once the tool succeeded, :meth:`discard` removes it otherwise. A reader sees the
    complete file or none, never one that looks complete. A run killed outright leaves the
    partial file to ``cowbench gc``, which unlinks it by the lease if it is still that file
    (its name, device and inode; a tool stopped by its death signal fills it with what it
    had). Every fio run cowbench starts with ``--output`` goes through one of these: the real
    backend's (``real.workload.fio``) and the null-engine streams (``cowbench.fiojob``)."""

    def __init__(self, path: Path, lease: PartialFiles | None = None) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.part")
        self.lease = lease
        self._held = False  # the partial file is in the lease

    def hold(self) -> Path:
        """Make the partial file and record it in the lease; its path, for the tool."""
        fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o666 & ~_umask())
        os.close(fd)
        if self.lease is not None:
            self.lease.add_file(self.partial)
            self._held = True
        return self.partial

    def commit(self) -> None:
        """The tool succeeded: its file becomes ``NAME``."""
        self.partial.replace(self.path)
        self._let_go()

    def discard(self) -> None:
        """The tool failed or was stopped: its partial file goes (idempotent)."""
        self.partial.unlink(missing_ok=True)
        self._let_go()

    def _let_go(self) -> None:
        if self.lease is not None and self._held:
            self.lease.drop_file(self.partial)
            self._held = False
