"""Calibration profiles kept per machine and storage: the fingerprint and the cache.

A profile describes one storage stack on one machine. ``cowbench run --backend both`` looks
for one whose *fingerprint* matches the storage it is about to measure, and calibrates when
none does (``cowbench.autoprofile``). The fingerprint is what changes the I/O the probes
measure: the host name, the kernel, the CPU count, the filesystem type and the device under
the storage directory (its mount source and device number, ``cowbench.fsinfo``: mountinfo's
mount, else the kernel's own answer for the path, as in a chroot), and the versions of
qemu-img and fio. Anything else (load, free space) is recorded in the profile but does not key it.

The cache is ``$XDG_CACHE_HOME/cowbench/profiles/`` (``~/.cache`` when unset or not absolute,
as the XDG spec says), one file per fingerprint: ``<host>-<fs>-<16 hex of the fingerprint's
SHA-256>.json``. It is root-safe: its directories are made 0700 and opened one component at a
time without following symlinks (``O_NOFOLLOW``), each must belong to the user and be writable
by no one else; a profile is read through a descriptor opened the same way and written to a
temporary name in the directory (through its descriptor) and renamed, so a reader sees the old
file or the new one. A lock file (``flock``) keeps two runs from calibrating the same storage
at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import UsageError
from .fsinfo import filesystem_of
from .profile import Profile, parse_profile, profile_json
from .profile import cache_dir as cache_dir  # kept here too: where the cache is
from .tools import tool_version

#: the fingerprint's keys, in the order they are listed
FINGERPRINT_KEYS = ("hostname", "kernel", "cpu_count", "fs_type", "device", "qemu-img", "fio")


def existing_ancestor(path: Path) -> Path:
    """``path``, or the nearest of its parents that exists (a run directory not made yet)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def fingerprint(storage: Path, aio: str = "threads") -> dict[str, Any]:
    """What keys a profile of the storage under ``storage`` on this machine (see the module
    docstring); ``storage`` may not exist yet (its nearest existing parent is looked at).
    ``aio``: qemu-nbd's ``--aio`` of the probes' exports, kept (and keying) only when it is
    not qemu's default, ``threads``, so that the keys of the profiles made before it stay."""
    where = existing_ancestor(storage)
    fs_type, source = filesystem_of(where)
    st_dev = os.stat(where).st_dev
    return {"hostname": socket.gethostname(), "kernel": platform.release(),
            "cpu_count": os.cpu_count(), "fs_type": fs_type,
            "device": f"{source} ({os.major(st_dev)}:{os.minor(st_dev)})",
            "qemu-img": tool_version("qemu-img"), "fio": tool_version("fio")} | (
                {} if aio == "threads" else {"aio": aio})


def fingerprint_key(fp: dict[str, Any]) -> str:
    keyed = {k: fp.get(k) for k in FINGERPRINT_KEYS}
    if fp.get("aio", "threads") != "threads":  # only then: the older keys stay as they were
        keyed["aio"] = fp["aio"]
    blob = json.dumps(keyed, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _safe(text: object) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text))[:40] or "_"


def profile_name(fp: dict[str, Any]) -> str:
    return f"{_safe(fp.get('hostname'))}-{_safe(fp.get('fs_type'))}-{fingerprint_key(fp)}.json"


def _check_owned(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        raise UsageError(f"{path}: owned by uid {st.st_uid}, not by this user "
                         f"({os.geteuid()}); the profile cache refuses it")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UsageError(f"{path}: writable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                         "the profile cache refuses it")


def _open_dir(parent: int, path: Path, name: str, create: bool) -> int:
    """Open ``name`` under the descriptor ``parent`` as a directory, never through a symlink
    (``path`` names it in errors); make it 0700 first when ``create``."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=parent)
    try:
        return os.open(name, flags, dir_fd=parent)
    except OSError as err:
        raise UsageError(f"{path}: cannot open the profile cache directory: "
                         f"{err.strerror} (a symlink is refused)") from None


@contextlib.contextmanager
def open_cache(create: bool) -> Iterator[int | None]:
    """A descriptor of the cache directory (made if ``create``), or None if it is absent.
    The base (``$XDG_CACHE_HOME`` or ``~/.cache``) may be a symlink the user made; below it,
    ``cowbench`` and ``profiles`` may not, and each must be the user's own."""
    target = cache_dir()
    base = target.parent.parent
    if not create and not target.is_dir():
        yield None
        return
    if create:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in ("cowbench", "profiles"):
            sub = _open_dir(fd, base / name, name, create)
            os.close(fd)
            fd = sub
            _check_owned(fd, base / name)
            base = base / name
        yield fd
    finally:
        os.close(fd)


def _read(dirfd: int, name: str) -> str | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    except (FileNotFoundError, OSError):
        return None
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return None
        return f.read()


def lookup(fp: dict[str, Any]) -> tuple[Path, Profile] | None:
    """The cached profile of this fingerprint, or None. A file that is not a valid profile,
    or whose recorded fingerprint differs, is no match (it will be replaced)."""
    name = profile_name(fp)
    with open_cache(create=False) as dirfd:
        if dirfd is None:
            return None
        text = _read(dirfd, name)
    if text is None:
        return None
    path = cache_dir() / name
    try:
        prof = parse_profile(json.loads(text), str(path))
    except (UsageError, ValueError):
        return None
    if prof.fingerprint is None or fingerprint_key(prof.fingerprint) != fingerprint_key(fp):
        return None
    return path, prof


def _write(dirfd: int, name: str, data: bytes) -> None:
    """``data`` into ``name`` under the cache's descriptor, atomically (temporary, rename)."""
    tmp = f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=dirfd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dirfd)
        raise


def store(prof: Profile) -> Path:
    """Write ``prof`` (which carries its fingerprint) into the cache, atomically."""
    if prof.fingerprint is None:
        raise ValueError("a cached profile needs its fingerprint")
    name = profile_name(prof.fingerprint)
    data = profile_json(prof).encode()
    with open_cache(create=True) as dirfd:
        assert dirfd is not None
        _write(dirfd, name, data)
    return cache_dir() / name


def note_name(prof: Profile, where: Path | None = None) -> str | None:
    """The name in the cache of the note of ``prof``'s checked probes
    (``cowbench.profile_check``): beside the cached profile of its fingerprint; for a profile
    file a run was told to use, one per the profile's content and ``where``'s storage (the
    storage it is checked on). None for a cached profile without its fingerprint."""
    if where is None:
        return None if prof.fingerprint is None else \
            f".{profile_name(prof.fingerprint)}.checked"
    blob = f"{profile_json(prof)}\0{fingerprint_key(fingerprint(where))}".encode()
    return f".named-{hashlib.sha256(blob).hexdigest()[:16]}.checked"


def checked_probes(prof: Profile, where: Path | None = None) -> dict[str, dict[str, Any]]:
    """The probes of ``prof`` that runs checked against the machine, by name: each
    ``{"checked": ISO time, "moved": None | "faster" | "slower", "iops": ...}`` of its latest
    check; ``where``: of a profile file a run was told to use, checked there (:func:`note_name`).
    Empty if none (a note of another profile, made again since, or of a version that did not
    record its probes, counts as none)."""
    name = note_name(prof, where)
    if name is None:
        return {}
    with open_cache(create=False) as dirfd:
        text = None if dirfd is None else _read(dirfd, name)
    try:
        note = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(note, dict) or note.get("created") != prof.created:
        return {}
    probes = note.get("probes")
    if not isinstance(probes, dict):
        return {}
    return {str(k): v for k, v in probes.items()
            if isinstance(v, dict) and isinstance(v.get("checked"), str)}


def mark_checked(prof: Profile, probes: dict[str, dict[str, Any]],
                 where: Path | None = None) -> None:
    """Note the verdicts of the probes of ``prof`` a run just checked (``{name: {"checked":
    ISO time, "moved": ..., ...}}``) over those of earlier checks (:func:`checked_probes`),
    atomically: a reader sees the old note or the new one. A cached profile's is written
    under its calibration lock (the caller's); two runs checking a named one at once may
    each write theirs, and the last one's stands (the other's probes are checked again)."""
    name = note_name(prof, where)
    assert name is not None
    merged = {**checked_probes(prof, where), **probes}
    data = json.dumps({"created": prof.created, "probes": merged}, sort_keys=True).encode()
    with open_cache(create=True) as dirfd:
        assert dirfd is not None
        _write(dirfd, name, data)


def last_checked(prof: Profile, where: Path | None = None) -> str | None:
    """When a run last checked a probe of ``prof`` (see :func:`checked_probes`); None if
    never."""
    times = [str(v["checked"]) for v in checked_probes(prof, where).values()]
    return max(times) if times else None


@contextlib.contextmanager
def calibration_lock(fp: dict[str, Any]) -> Iterator[None]:
    """Held while this storage is being calibrated: a second run waits, then finds the
    profile the first one made."""
    with open_cache(create=True) as dirfd:
        assert dirfd is not None
        name = f".{profile_name(fp)}.lock"
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dirfd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
