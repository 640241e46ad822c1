"""A sweep point's run directory as it travels from a worker back to the client.

A worker may share no filesystem with the client (a cluster of machines): it runs its point in
a private directory of its own scratch space, reads the finished run directory through that
directory's descriptor into :data:`PointFiles` (directories and regular files, by relative
path; anything else is refused), and hands that back as the task's result. The client writes
it as ``points/<id>/``: into a hidden staging directory (``.<id>.XXXXXXXX.tmp``) made and
filled through descriptors (``mkdir``/``open`` with ``dir_fd``, ``O_EXCL | O_NOFOLLOW``, every
file and directory fsync'ed), then renamed into place in one ``rename(2)``: a point's directory
is complete or absent, never half-written. A staging directory left by a client killed
outright is removed when the sweep resumes (:func:`remove_staging`).

A point sends back at most :data:`MAX_POINT_BYTES` (the client holds one point's files in
memory while it writes them, and Dask moves them in one message); a larger run directory is
not sent: the point fails, its run.json saying why (with ``--csv`` left out, the fleet-year's
point is 1.1 MB, fleet-region's 9 MB).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

from .atomic import _umask
from .errors import UsageError
from .fdtree import DIR_FLAGS, empty_dir
from .signals import shielded

#: Bytes of files one sweep point may send back to the client.
MAX_POINT_BYTES = 512 << 20
#: Entries (files and directories) one sweep point may send back.
MAX_POINT_ENTRIES = 100_000
#: what a point's reason says in place of the worker's scratch directory it ran in (removed
#: once the point is sent back): the sweep's client puts the directory it wrote the point to
#: there, ``<sweep>/points/<id>`` (:func:`in_sweep`)
POINT_DIR = "<point directory>"


def in_sweep(reason: str, point_dir: Path) -> str:
    """A point's ``reason`` naming ``point_dir``, where its run.json and raw/ now are, for the
    scratch directory its worker ran it in (:data:`POINT_DIR`)."""
    return reason.replace(POINT_DIR, str(point_dir))

#: ``(relative path, contents)``; contents None for a directory. Parents come first.
PointFiles = list[tuple[str, bytes | None]]
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class PointTooLarge(UsageError):
    """The run directory is over :data:`MAX_POINT_BYTES` or :data:`MAX_POINT_ENTRIES`."""


def read_point(fd: int, max_bytes: int = MAX_POINT_BYTES) -> PointFiles:
    """Every directory and regular file under the open directory ``fd`` (symlinks never
    followed); :class:`PointTooLarge` before reading more than ``max_bytes``."""
    files: PointFiles = []
    _walk(fd, "", files, [0], max_bytes)
    return files


def _walk(fd: int, prefix: str, files: PointFiles, total: list[int], max_bytes: int) -> None:
    for name in sorted(os.listdir(fd)):
        rel = f"{prefix}{name}"
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if len(files) >= MAX_POINT_ENTRIES:
            raise PointTooLarge(f"more than {MAX_POINT_ENTRIES} files")
        if stat.S_ISDIR(st.st_mode):
            files.append((rel, None))
            sub = os.open(name, DIR_FLAGS, dir_fd=fd)
            try:
                _walk(sub, f"{rel}/", files, total, max_bytes)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            total[0] += st.st_size
            if total[0] > max_bytes:
                raise PointTooLarge(f"more than {max_bytes} bytes of files")
            files.append((rel, _read(fd, name, st.st_size)))
        else:
            raise UsageError(f"{rel}: neither a file nor a directory; not sent back")


def _read(fd: int, name: str, size: int) -> bytes:
    f = os.open(name, FILE_FLAGS, dir_fd=fd)
    with os.fdopen(f, "rb") as stream:
        data = stream.read(size + 1)
    if len(data) != size:
        raise UsageError(f"{name}: changed while it was read")
    return data


def mark_failed(fd: int, reason: str) -> PointFiles:
    """The run.json and scenario.yaml of a point whose directory is not sent back, run.json
    saying ``failed`` with ``reason``."""
    files: PointFiles = []
    for name in ("run.json", "scenario.yaml"):
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size <= 1 << 20:
            files.append((name, _read(fd, name, st.st_size)))
    meta: dict[str, object] = {}
    if files and files[0][0] == "run.json":
        try:
            meta = dict(json.loads(files[0][1] or b"{}"))
        except (ValueError, TypeError):
            meta = {}
        files = files[1:]
    meta.update(status="failed", reason=reason)
    return [("run.json", (json.dumps(meta, indent=2) + "\n").encode()), *files]


def check_point(files: PointFiles, max_bytes: int = MAX_POINT_BYTES) -> None:
    """What a worker sent is a run directory's files: plain relative names, parents first,
    no name twice, within the bounds (a :class:`UsageError` naming the first problem)."""
    if len(files) > MAX_POINT_ENTRIES:
        raise PointTooLarge(f"{len(files)} entries, more than {MAX_POINT_ENTRIES}")
    size = sum(len(d) for _, d in files if d is not None)
    if size > max_bytes:
        raise PointTooLarge(f"{size} bytes of files, more than {max_bytes}")
    dirs, seen = {""}, set()
    for rel, data in files:
        parts = rel.split("/")
        if any(p in ("", ".", "..") or "\0" in p for p in parts) or rel in seen:
            raise UsageError(f"{rel!r}: not a plain relative name, or given twice")
        if "/".join(parts[:-1]) not in dirs:
            raise UsageError(f"{rel!r}: its directory is not listed before it")
        seen.add(rel)
        if data is None:
            dirs.add(rel)


def write_point(points_fd: int, name: str, files: PointFiles) -> None:
    """Write ``files`` as the new directory ``name`` of the open directory ``points_fd``:
    staged, fsync'ed and renamed into place (see the module docstring)."""
    check_point(files)
    stage = f".{name}.{secrets.token_hex(4)}.tmp"
    with shielded():  # a staging directory made is filled and renamed, or removed
        os.mkdir(stage, 0o777 & ~_umask(), dir_fd=points_fd)
        fd = os.open(stage, DIR_FLAGS, dir_fd=points_fd)
        try:
            _fill(fd, files)
            os.rename(stage, name, src_dir_fd=points_fd, dst_dir_fd=points_fd)
        except BaseException:
            empty_dir(fd, os.fstat(fd).st_dev)
            os.rmdir(stage, dir_fd=points_fd)
            raise
        finally:
            os.close(fd)
        os.fsync(points_fd)


def _fill(fd: int, files: PointFiles) -> None:
    """Create every entry below the open directory ``fd``, each through the descriptor of
    its parent, and fsync each file and directory."""
    dir_fds = {"": fd}
    try:
        for rel, data in files:
            parent, _, leaf = rel.rpartition("/")
            pfd = dir_fds[parent]
            if data is None:
                os.mkdir(leaf, 0o777 & ~_umask(), dir_fd=pfd)
                dir_fds[rel] = os.open(leaf, DIR_FLAGS, dir_fd=pfd)
                continue
            f = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                        os.O_CLOEXEC, 0o666 & ~_umask(), dir_fd=pfd)
            with os.fdopen(f, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
        for d in sorted(dir_fds, key=len, reverse=True):
            os.fsync(dir_fds[d])
    finally:
        for d, dfd in dir_fds.items():
            if d:
                os.close(dfd)


def remove_staging(points_fd: int) -> None:
    """Remove the staging directories (``.<id>.XXXXXXXX.tmp``) a client killed outright left
    in the open ``points/`` directory."""
    for name in os.listdir(points_fd):
        if not (name.startswith(".") and name.endswith(".tmp")):
            continue
        try:
            sub = os.open(name, DIR_FLAGS, dir_fd=points_fd)
        except OSError:
            continue  # not a directory (or gone): not one of ours
        try:
            empty_dir(sub, os.fstat(sub).st_dev)
        finally:
            os.close(sub)
        os.rmdir(name, dir_fd=points_fd)
