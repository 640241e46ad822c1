"""Before the end figures, the run's files with pages not yet written back are synced (their
delayed allocation settles, so ``st_blocks`` counts it); the others are left alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from real.measure.digest import unsettled_pages
from real.world import backend


def test_only_a_file_with_pages_not_written_back_is_synced(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    clean, dirty = tmp_path / "clean", tmp_path / "sub" / "dirty"
    dirty.parent.mkdir()
    clean.write_bytes(os.urandom(1 << 20))
    fd = os.open(clean, os.O_RDONLY)
    try:
        os.fsync(fd)
        if unsettled_pages(fd) is None:
            pytest.skip("the kernel cannot say what is written back (cachestat, Linux 6.5)")
    finally:
        os.close(fd)
    dirty.write_bytes(os.urandom(1 << 20))  # in the page cache, not yet on the device
    synced: list[str] = []
    fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(backend.os, "fsync", spy)
    backend.sync_files(tmp_path)
    assert str(clean) not in synced
    fd = os.open(dirty, os.O_RDONLY)
    try:  # synced here, or written back by the kernel before: settled either way
        assert unsettled_pages(fd) == 0
    finally:
        os.close(fd)
