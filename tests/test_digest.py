"""The bases' content digest: what it is defined to be, read through holes, cache or O_DIRECT."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import xxhash

from real.measure.digest import (
    BLOCK,
    CHUNK,
    Cancelled,
    cache_state,
    data_runs,
    file_digest,
    pattern_digest,
)


def reference(path: Path) -> str:
    """The definition in real/measure/digest.py, computed the slow way: every byte read."""
    data = path.read_bytes()
    h = xxhash.xxh3_128(b"cowbench-blocks-v1" + len(data).to_bytes(8, "little")
                        + BLOCK.to_bytes(8, "little"))
    for i in range(0, len(data), BLOCK):
        h.update(xxhash.xxh3_128(data[i:i + BLOCK]).digest())
    return h.hexdigest()


def sparse(path: Path, size: int, writes: list[tuple[int, bytes]]) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in writes:
            f.seek(off)
            f.write(data)
    return path


def uncached(path: Path) -> None:
    """Drop this one file from the page cache (its reads then go to the device)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


LAYOUTS = {
    "empty": (0, []),
    "tiny": (100, [(0, b"x")]),
    "all hole": (3 * BLOCK + 5, []),
    "data across chunks": (2 * CHUNK + 123, [(CHUNK - 10, b"a" * 20), (5 * BLOCK, b"b" * 5000),
                                            (2 * CHUNK + 100, b"c" * 23)]),
    "dense": (3 * BLOCK + 4097, [(0, os.urandom(3 * BLOCK + 4097))]),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_the_digest_is_its_definition(tmp_path: Path, name: str) -> None:
    size, writes = LAYOUTS[name]
    path = sparse(tmp_path / "f", size, writes)
    assert file_digest(path) == reference(path)
    uncached(path)  # the same through O_DIRECT reads
    assert file_digest(path) == reference(path)


def test_a_file_not_in_the_page_cache_is_read_once_direct(tmp_path: Path) -> None:
    """Nothing of it enters the page cache: no readahead besides the direct reads (a
    ``RWF_NOWAIT`` probe of each chunk started one, and the file was read twice)."""
    path = sparse(tmp_path / "f", 3 * CHUNK, [(0, os.urandom(CHUNK)), (2 * CHUNK, b"z" * BLOCK)])
    uncached(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        if cache_state(fd, 0, 3 * CHUNK) != (0, 0):
            pytest.skip("the kernel cannot say what is cached (cachestat, Linux 6.5) or "
                        "keeps this file cached")
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_DIRECT))
        except OSError:
            pytest.skip(f"no O_DIRECT on the filesystem of {tmp_path}")
        digest = file_digest(path)
        assert cache_state(fd, 0, 3 * CHUNK) == (0, 0)
        assert digest == reference(path)  # which reads it into the cache: after
    finally:
        os.close(fd)


def test_a_file_in_the_page_cache_is_read_from_it(tmp_path: Path) -> None:
    path = sparse(tmp_path / "f", 2 * CHUNK, [(0, os.urandom(2 * CHUNK))])
    fd = os.open(path, os.O_RDONLY)
    try:
        before = cache_state(fd, 0, 2 * CHUNK)
        if before is None:
            pytest.skip("the kernel cannot say what is cached (cachestat, Linux 6.5)")
        assert before[0] == 2 * CHUNK // os.sysconf("SC_PAGESIZE")  # just written
        assert file_digest(path) == reference(path)
    finally:
        os.close(fd)


def test_holes_and_written_zeros_hash_alike(tmp_path: Path) -> None:
    holes = sparse(tmp_path / "holes", 4 * BLOCK, [(BLOCK, b"\1")])
    zeros = sparse(tmp_path / "zeros", 4 * BLOCK, [(0, bytes(4 * BLOCK)), (BLOCK, b"\1")])
    fd = os.open(holes, os.O_RDONLY)
    try:  # the test means something only where the filesystem keeps holes
        assert data_runs(fd, 4 * BLOCK) == [(BLOCK, 4096)]
    finally:
        os.close(fd)
    assert file_digest(holes) == file_digest(zeros)


@pytest.mark.parametrize("where", [0, BLOCK - 1, 2 * BLOCK + 7, CHUNK + 3, 2 * CHUNK - 1])
def test_one_byte_anywhere_changes_it(tmp_path: Path, where: int) -> None:
    """Within the data, in a hole, in a chunk that held no data before, at the last byte."""
    path = sparse(tmp_path / "f", 2 * CHUNK, [(2 * BLOCK, b"d" * 4096)])
    before = file_digest(path)
    with open(path, "r+b") as f:
        f.seek(where)
        f.write(b"\xff")
    assert file_digest(path) != before
    assert file_digest(path) == reference(path)


def test_the_size_counts(tmp_path: Path) -> None:
    path = sparse(tmp_path / "f", BLOCK, [(0, b"x")])
    before = file_digest(path)
    os.truncate(path, BLOCK + 1)  # one more zero byte
    assert file_digest(path) != before


def test_a_cancelled_digest_stops(tmp_path: Path) -> None:
    path = sparse(tmp_path / "f", 2 * CHUNK, [(0, b"x" * (2 * CHUNK))])
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        file_digest(path, cancel)



@pytest.mark.parametrize("size,writes", [
    (0, []),
    (5 * BLOCK + 7, [(BLOCK, 3 * BLOCK, 0xA5)]),
    (3 * CHUNK, [(10, BLOCK, 7), (BLOCK + 20, 5, 0), (2 * CHUNK - 3, CHUNK + 3, 255)]),
    (2 * BLOCK, [(0, 2 * BLOCK, 1), (BLOCK // 2, BLOCK, 2)]),  # a later write wins
], ids=["empty", "whole blocks", "edges and a tail", "overwrite"])
def test_a_pattern_digest_is_the_written_files(tmp_path: Path, size: int,
                                               writes: list[tuple[int, int, int]]) -> None:
    """What a synthetic image's raw base must hash to, computed without the file."""
    path = sparse(tmp_path / "f", size, [(off, bytes([b]) * n) for off, n, b in writes])
    assert pattern_digest(size, writes) == file_digest(path) == reference(path)
