"""The kernel's proof that a file was not written (real.measure.guard), and Integrity's use of
it: a file proven unwritten is not read again; every way of changing one still is found."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from real.measure.digest import file_digest
from real.measure.guard import WriteGuard
from real.measure.integrity import UNWRITTEN, Integrity

_held: list[IO[bytes] | mmap.mmap] = []


@pytest.fixture(autouse=True)
def _release() -> Iterator[None]:
    yield
    while _held:
        _held.pop().close()


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "base"
    with open(path, "wb") as f:
        f.truncate(8 << 20)
        f.write(b"\5" * (1 << 20))
    return path


def _write(p: Path) -> None:
    with open(p, "r+b") as f:
        f.seek(3 << 20)
        f.write(b"\1")


def _open_for_writing_only(p: Path) -> None:
    with open(p, "r+b"):
        pass


def _store_through_mmap(p: Path) -> None:
    """A store to a shared mapping reports no IN_MODIFY; the descriptor closed, the mapping
    still holds the file open for writing."""
    with open(p, "r+b") as f:
        m = mmap.mmap(f.fileno(), 0)
    m[5] = 9
    _held.append(m)


def _direct_write(p: Path) -> None:
    fd = os.open(p, os.O_RDWR | os.O_DIRECT)
    buf = mmap.mmap(-1, 4096)
    buf.write(b"\7" * 4096)
    try:
        os.pwritev(fd, [buf], 4096)
    finally:
        os.close(fd)
        buf.close()


def _replace(p: Path) -> None:
    other = p.with_name("other")
    other.write_bytes(p.read_bytes()[:-1] + b"\1")
    other.rename(p)


CHANGES: dict[str, Callable[[Path], None]] = {
    "write": _write,
    "open for writing, nothing written": _open_for_writing_only,
    "truncate by path": lambda p: os.truncate(p, 4 << 20),
    "grow by path": lambda p: os.truncate(p, 16 << 20),
    "store through mmap": _store_through_mmap,
    "O_DIRECT write": _direct_write,
    "replaced by rename": _replace,
    "removed": lambda p: p.unlink(),
}


@pytest.mark.parametrize("change", CHANGES)
def test_every_change_leaves_the_file_unproven(tmp_path: Path, change: str) -> None:
    path = _file(tmp_path)
    guard = WriteGuard.start(path)
    assert guard is not None
    CHANGES[change](path)
    assert not guard.unchanged(path)
    guard.close()


def test_reading_touching_and_chmod_leave_it_proven(tmp_path: Path) -> None:
    path = _file(tmp_path)
    guard = WriteGuard.start(path)
    assert guard is not None
    file_digest(path)
    os.utime(path, (1, 1))  # Nova's image cache manager touches bases in use
    os.chmod(path, 0o600)
    assert guard.unchanged(path)
    guard.close()


def test_a_file_open_for_writing_is_not_watched(tmp_path: Path) -> None:
    """A writer that holds it open from before the watch could write unseen (through a
    mapping): no proof is offered."""
    path = _file(tmp_path)
    _held.append(open(path, "r+b"))  # noqa: SIM115 (closed by the fixture)
    assert WriteGuard.start(path) is None


def test_an_unwritten_file_is_not_read_again(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path)
    it = Integrity()
    it.hash_before("image:img", path)
    it.settle()
    read: list[Path] = []
    monkeypatch.setattr("real.measure.integrity.file_digest",
                        lambda p, cancel=None: read.append(p) or "x")
    it.compare()
    it.close()
    entry = it.checksums["image:img"]
    assert read == [] and it.problems == []
    assert entry["before"] == entry["after"] == file_digest(path)
    assert entry["after_from"] == UNWRITTEN


@pytest.mark.parametrize("change", ["write", "store through mmap", "replaced by rename"])
def test_a_written_file_is_read_again_and_found(tmp_path: Path, change: str) -> None:
    path = _file(tmp_path)
    it = Integrity()
    it.hash_before("image:img", path)
    it.settle()
    CHANGES[change](path)
    it.compare()
    it.close()
    entry = it.checksums["image:img"]
    assert "after_from" not in entry and entry["after"] == file_digest(path)
    assert len(it.problems) == 1 and "image:img: base changed" in it.problems[0]


def test_the_guard_lets_go_of_the_file_at_the_verdict(tmp_path: Path) -> None:
    """Unlinked once its last digest is taken (Integrity.hashed_files), a file's blocks are
    freed then, not when the run's Integrity is closed."""
    path = _file(tmp_path)
    it = Integrity()
    it.hash_before("image:img", path)
    it.settle()
    it.hash_after()
    fds = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
           if os.path.exists(f"/proc/self/fd/{fd}")]
    assert str(path) not in fds
    it.close()


def test_without_leases_nothing_is_proven_and_the_file_is_hashed_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the kernel refuses leases (disabled, a filesystem without them, a seccomp
    filter), the guard offers no proof and the run goes on hashing twice."""
    import fcntl

    real_fcntl = fcntl.fcntl

    def no_leases(fd: int, cmd: int, arg: int = 0) -> int:
        if cmd == fcntl.F_SETLEASE:
            raise PermissionError(1, "Operation not permitted")
        return real_fcntl(fd, cmd, arg)

    monkeypatch.setattr("real.measure.guard.fcntl.fcntl", no_leases)
    path = _file(tmp_path)
    assert WriteGuard.start(path) is None
    it = Integrity()
    it.hash_before("image:img", path)
    it.compare()
    it.close()
    entry = it.checksums["image:img"]
    assert "after_from" not in entry and entry["before"] == entry["after"] == file_digest(path)
