"""A content digest of a large, sparse file that reads only its data, as fast as it can.

The digest (``DIGEST``) depends on the file's content only, not on where its holes are::

    digest = H(b"cowbench-blocks-v1" || size || BLOCK || H(block_0) || H(block_1) || ...)

with ``size`` and ``BLOCK`` as 8-byte little-endian integers and ``block_i`` the file's bytes
``[i * BLOCK, (i + 1) * BLOCK)`` (the last one shorter), holes counting as the zeros they read
as. A block that lies wholly in a hole (``SEEK_DATA``/``SEEK_HOLE``, metadata only) is not read:
its leaf is the precomputed hash of zeros. So two files with the same bytes have the same
digest whatever their allocation, a block of written zeros hashes as a hole does, and a change
to any byte or to the size changes the digest (but with a chance of 2^-128).

``H`` is XXH3-128 (the ``xxhash`` package, the bindings of the reference xxHash library). The
digest guards against accidents (a tool or a bug writing a base), not against an adversary,
who could as well rewrite run.json: a 128-bit hash that passes SMHasher's quality tests misses a
change with a chance of 2^-128 there, as a cryptographic one would, at 3 to 8 times its speed.
Measured on this project's 2-core machine, 1 MiB blocks in the reading buffer: XXH3-128 21 GiB/s
of CPU, BLAKE3 (``blake3-blocks-v1``, the digest until 2026-12) 6.2 GiB/s, SHA-256 1.1 GiB/s;
the quickstart hashes 2 GiB.

Reads are pipelined (the next chunk is read while this one is hashed: the hash releases the
GIL). A chunk already in the page cache (all of it, or some of it dirty) is taken from it;
otherwise it is read with ``O_DIRECT`` in large requests: a base that ``qemu-img convert -t
none`` just wrote is not cached, and the kernel's readahead reads such a file at a fraction of
the device's speed (271 MB/s against 1.2 GB/s direct, measured on the same 1 GiB file). What
is cached is asked of the kernel with ``cachestat(2)`` (Linux 6.5), which reads nothing. A
``preadv`` with ``RWF_NOWAIT`` (the probe before, and still where ``cachestat`` is missing) is
refused for a page not cached but starts the kernel's readahead of it first, so an uncached
file was read twice, by readahead and direct: the quickstart's base (1 GiB of data) took 1.43 s
so and 0.91 s with ``cachestat`` (median of 4 alternating cold reads each, load 5 to 7).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import xxhash

DIGEST = "xxh3-128-blocks-v1"
BLOCK = 1 << 20
#: one read: 4 MiB, not 16 (measured 2026-12-03, 1 GiB of data, 5 alternating runs each at load
#: 12 to 14: read direct 0.137 s of CPU against 0.183, 0.89 s against 1.09 s of wall; from the
#: page cache 0.200 s against 0.269, 0.45 s against 0.64 s): a chunk is hashed while the CPU's
#: caches still hold some of it, and two 4 MiB reads in flight keep the device as busy
CHUNK = 4 * BLOCK
#: reads in flight while a chunk is hashed: the quickstart's uncached base (1 GiB of data) in
#: 1.00 s with 1, 0.91 s with 2, 0.90 s with 3 (16 MiB chunks then; medians of 6 alternating
#: cold reads, load 4-6)
AHEAD = 2
_ALIGN = 4096  # O_DIRECT offsets and lengths: a multiple of the logical block size
_HEADER = b"cowbench-blocks-v1"
_PAGE = mmap.PAGESIZE
#: cachestat(2)'s number where it is the generic one (x86_64 and arm64; not alpha, mips...)
_CACHESTAT = 451 if platform.machine() in ("x86_64", "aarch64") else None
_LIBC = ctypes.CDLL(None, use_errno=True)


class _CacheRange(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _CacheStat(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")]


class Cancelled(Exception):
    """The digest was abandoned (the run is being torn down)."""


def _leaf(data: memoryview | bytes | bytearray) -> bytes:
    return xxhash.xxh3_128_digest(data)


_ZEROS = bytes(BLOCK)
_ZERO_LEAF = _leaf(_ZEROS)


def data_runs(fd: int, size: int) -> list[tuple[int, int]]:
    """``(offset, length)`` of the file's data, from ``SEEK_DATA``/``SEEK_HOLE``; the whole
    file where the filesystem cannot tell."""
    runs: list[tuple[int, int]] = []
    off = 0
    while off < size:
        try:
            start = os.lseek(fd, off, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # no data after off
                break
            return [(0, size)]  # EINVAL: no SEEK_DATA here
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        runs.append((start, end - start))
        off = end
    return runs


def _chunks(runs: list[tuple[int, int]], size: int) -> list[int]:
    """Offsets of the chunks that hold some data, in order."""
    hit: set[int] = set()
    for off, length in runs:
        hit.update(range(off // CHUNK, (off + length - 1) // CHUNK + 1))
    return [c * CHUNK for c in sorted(hit) if c * CHUNK < size]


def _cachestat(fd: int, off: int, n: int) -> _CacheStat | None:
    """``cachestat(2)`` of ``[off, off + n)`` (``n`` 0: to the end of the file); None where the
    kernel cannot say (before Linux 6.5, or a syscall filter refuses it)."""
    if _CACHESTAT is None:
        return None
    stat = _CacheStat()
    if _LIBC.syscall(_CACHESTAT, fd, ctypes.byref(_CacheRange(off, n)), ctypes.byref(stat),
                     0) != 0:
        return None
    return stat


def cache_state(fd: int, off: int, n: int) -> tuple[int, int] | None:
    """``(cached, dirty)`` pages of ``[off, off + n)``: nothing is read; None: unknown."""
    stat = _cachestat(fd, off, n)
    return None if stat is None else (stat.nr_cache, stat.nr_dirty)


def unsettled_pages(fd: int) -> int | None:
    """The file's pages not yet on its device (dirty or being written back); None: unknown."""
    stat = _cachestat(fd, 0, 0)
    return None if stat is None else stat.nr_dirty + stat.nr_writeback


class _Reader:
    """Reads chunks into a page-aligned buffer: from the page cache when there, else direct."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.direct: int | None = None
        try:  # the same open file, not the path again (it could have been swapped)
            self.direct = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_DIRECT
                                  | os.O_CLOEXEC)
        except OSError:  # tmpfs and others: no O_DIRECT
            self.direct = None
        self.nowait = self.direct is not None

    def close(self) -> None:
        if self.direct is not None:
            os.close(self.direct)

    def read(self, buf: mmap.mmap, off: int, n: int) -> memoryview:
        view = memoryview(buf)
        if self.direct is not None and self._cached(view[:n], off) == n:
            return view[:n]
        if self.direct is not None:
            want = -(-n // _ALIGN) * _ALIGN  # past the end of the file is a short read
            got = _fill(self.direct, view[:want], off, stop_at=n)
        else:
            got = _fill(self.fd, view[:n], off, stop_at=n)
        if got < n:
            raise OSError(errno.EIO, f"file shrank while hashed (read {got} of {n} bytes "
                                     f"at {off})")
        return view[:n]

    def _cached(self, view: memoryview, off: int) -> int:
        """The chunk read from the page cache if it is there (all of it, or some of it dirty:
        a direct read would write those pages back first), else 0: nothing read."""
        state = cache_state(self.fd, off, len(view))
        if state is not None:
            cached, dirty = state
            if dirty or cached >= -(-(off + len(view)) // _PAGE) - off // _PAGE:
                return _fill(self.fd, view, off, stop_at=len(view))
            return 0
        if not self.nowait:
            return 0
        try:  # no cachestat: a probe (which starts the readahead of a page not cached)
            return os.preadv(self.fd, [view], off, os.RWF_NOWAIT)
        except BlockingIOError:
            return 0
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            self.nowait = False  # the kernel or filesystem cannot say: read direct
            return 0


def _fill(fd: int, view: memoryview, off: int, stop_at: int) -> int:
    got = 0
    while got < stop_at:
        n = os.preadv(fd, [view[got:]], off + got)
        if n == 0:
            break
        got += n
    return got


def _leaves(reader: _Reader, chunks: list[int], size: int,
            cancel: threading.Event | None) -> Iterator[tuple[int, bytes]]:
    """``(block index, leaf)`` of every block in the chunks read; ``AHEAD`` chunks are being
    read while one is hashed."""
    bufs = [mmap.mmap(-1, CHUNK) for _ in range(AHEAD + 1)]
    with ThreadPoolExecutor(AHEAD, thread_name_prefix="digest-read") as pool:
        def submit(i: int) -> Future[memoryview]:
            off = chunks[i]
            return pool.submit(reader.read, bufs[i % len(bufs)], off, min(CHUNK, size - off))

        pending = [submit(i) for i in range(min(AHEAD, len(chunks)))]
        for i, off in enumerate(chunks):
            view = pending.pop(0).result()
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"digest of fd {reader.fd} cancelled")
            if i + AHEAD < len(chunks):  # into the buffer hashed the round before
                pending.append(submit(i + AHEAD))
            for j in range(0, len(view), BLOCK):
                yield (off + j) // BLOCK, _leaf(view[j:j + BLOCK])
            view.release()


def file_digest(path: Path, cancel: threading.Event | None = None) -> str:
    """The content digest of ``path`` (see the module docstring), as hex."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    reader = _Reader(fd)
    try:
        size = os.fstat(fd).st_size
        tree = _Tree(size)
        for index, leaf in _leaves(reader, _chunks(data_runs(fd, size), size), size, cancel):
            tree.add(index, leaf)
        return tree.hexdigest()
    finally:
        reader.close()
        os.close(fd)


class _Tree:
    """The digest's outer hash: leaves added in block order, the unread blocks' filled in."""

    def __init__(self, size: int) -> None:
        self.h = xxhash.xxh3_128(_HEADER + size.to_bytes(8, "little")
                                 + BLOCK.to_bytes(8, "little"))
        self.nblocks = -(-size // BLOCK)
        tail = size - (self.nblocks - 1) * BLOCK if self.nblocks else 0
        self.zero_tail = _leaf(bytes(tail)) if tail and tail != BLOCK else _ZERO_LEAF
        self.done = 0

    def add(self, index: int, leaf: bytes) -> None:
        self._zeros(index)
        self.h.update(leaf)
        self.done = index + 1

    def hexdigest(self) -> str:
        self._zeros(self.nblocks)
        return self.h.hexdigest()

    def _zeros(self, stop: int) -> None:
        """The leaves of the unread blocks ``done..stop-1`` (all zeros)."""
        n = stop - self.done
        if n <= 0:
            return
        if stop == self.nblocks:
            self.h.update(_ZERO_LEAF * (n - 1) + self.zero_tail)
        else:
            self.h.update(_ZERO_LEAF * n)


def pattern_digest(size: int, writes: list[tuple[int, int, int]]) -> str:
    """The digest of a file of ``size`` zero bytes after each ``(offset, length, byte)``
    write, in order, without making or reading it: what a synthetic image's raw base must
    hash to. A block wholly inside one write is the same leaf wherever it is (hashed once)."""
    tree = _Tree(size)
    full: dict[int, bytes] = {}  # fill byte -> the leaf of a whole block of it
    touched: dict[int, list[tuple[int, int, int]]] = {}
    for off, length, byte in writes:
        for index in range(off // BLOCK, (off + length - 1) // BLOCK + 1):
            touched.setdefault(index, []).append((off, length, byte))
    for index in sorted(touched):
        lo, hi = index * BLOCK, min(size, (index + 1) * BLOCK)
        on = touched[index]
        if len(on) == 1 and on[0][0] <= lo and hi <= on[0][0] + on[0][1] and hi - lo == BLOCK:
            byte = on[0][2]
            leaf = full.get(byte) or full.setdefault(byte, _leaf(bytes([byte]) * BLOCK))
        else:
            block = bytearray(hi - lo)
            for off, length, byte in on:
                a, b = max(lo, off), min(hi, off + length)
                block[a - lo:b - lo] = bytes([byte]) * (b - a)
            leaf = _leaf(block)
        tree.add(index, leaf)
    return tree.hexdigest()
