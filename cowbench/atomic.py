"""Files that are either absent, their previous version, or complete: never half-written.

Each write goes to a hidden temporary name in the same directory (``.NAME.XXXX.tmp``), is
flushed (and, for results, fsync'ed), then renamed over ``NAME``; ``rename(2)`` within a
filesystem is atomic, so a reader or a crash sees the old file or the new one. A write that
fails (ENOSPC, an interrupt) removes its temporary file. Only SIGKILL or a power cut can leave a
``.*.tmp`` behind, and its name says what it is.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _mkstemp(path: Path) -> tuple[int, str]:
    """A temporary file beside ``path`` with the permissions a plain ``open`` would give."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True) -> None:
    fd, tmp = _mkstemp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode(), fsync=fsync)


def atomic_write_with(path: Path, writer: Callable[[str], None]) -> None:
    """Let ``writer`` fill a temporary file (e.g. ``df.to_parquet``), then rename it."""
    fd, tmp = _mkstemp(path)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
