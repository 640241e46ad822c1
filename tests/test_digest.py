"""The bases' content digest: what it is defined to be, read through holes, cache or O_DIRECT."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from blake3 import blake3

from cowbench.tools import qemu_img_map
from real.measure.digest import BLOCK, CHUNK, Cancelled, data_runs, file_digest, guest_digest

from .conftest import needs_tools


def reference(path: Path) -> str:
    """The definition in real/measure/digest.py, computed the slow way: every byte read."""
    data = path.read_bytes()
    h = blake3(b"cowbench-blocks-v1" + len(data).to_bytes(8, "little")
               + BLOCK.to_bytes(8, "little"))
    for i in range(0, len(data), BLOCK):
        h.update(blake3(data[i:i + BLOCK]).digest())
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


def qemu_img(*argv: str) -> None:
    subprocess.run(["qemu-img", *argv], check=True, capture_output=True)


def image_with_everything(path: Path) -> Path:
    """A qcow2 image with data, a zero cluster and unallocated space, 3 MiB + 512 bytes."""
    qemu_img("create", "-q", "-f", "qcow2", str(path), str(3 * BLOCK + 512))
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 3 1000k 130k", "-c",
                    "write -z 2M 64k", "-c", "write -P 9 3M 512", str(path)],
                   check=True, capture_output=True)
    return path


@pytest.mark.real
@needs_tools
@pytest.mark.parametrize("compressed", [False, True])
def test_the_guest_digest_is_the_converted_files(tmp_path: Path, compressed: bool) -> None:
    """What Integrity.hash_expected hashes while qemu-img convert runs: the digest the raw
    base will have; None for compressed data (the map gives no offset to read it at)."""
    src = image_with_everything(tmp_path / "img.qcow2")
    if compressed:
        qemu_img("convert", "-c", "-O", "qcow2", str(src), str(tmp_path / "c.qcow2"))
        src = tmp_path / "c.qcow2"
    qemu_img("convert", "-O", "raw", str(src), str(tmp_path / "base"))
    got = guest_digest(src, qemu_img_map(src, "qcow2"))
    assert got == (None if compressed else file_digest(tmp_path / "base"))
