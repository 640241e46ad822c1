"""The offsets a fio job issues, generated with fio's semantics (fio HOWTO; FACTS.md section 5).

A job covers the region ``[offset, offset + size)`` in blocks of ``bs`` and issues ``io_size``
bytes (default ``size``), or runs until ``runtime`` when ``time_based``. What matters for
allocation is *which* blocks it touches:

- ``rw=read|write``: sequential from ``offset``, wrapping at the region's end;
- random, default (``randommap``): a uniform block; if already used this pass, the next free
  block of the map (fio's ``axmap_next_free``); when every block is used the map resets;
- ``norandommap=1``: uniform with replacement;
- ``random_generator=lfsr``: every block once per pass, in a scrambled order;
- rw mixes: each I/O is a read with probability ``rwmixread`` percent.

Seeding follows fio: with ``randrepeat=1`` (fio's default) the stream depends only on the job's
options, ``randseed`` and its clone number, so two VMs running the same job issue the same
offsets, exactly as two fio processes would. Everything is vectorised with numpy; streams come
in chunks so a time_based job can run as long as the model needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cowbench.iolog import TRIM, WRITE, Trace
from cowbench.scenario import Workload

from .fiodist import Distribution

FIO_DEFAULT_RANDSEED = 0xB1899BED
CHUNK = 1 << 16


@dataclass(frozen=True)
class IoChunk:
    """A run of consecutive I/Os of one job: byte offsets, lengths, and which are writes."""

    offsets: np.ndarray  # int64
    lengths: np.ndarray  # int64
    is_write: np.ndarray  # bool
    is_trim: np.ndarray | None = None  # bool, when the stream holds discards

    def __len__(self) -> int:
        return int(self.offsets.shape[0])


def job_region(wl: Workload, disk_size: int) -> tuple[int, int]:
    """``(start, length)`` of the region the job addresses, trimmed to whole blocks."""
    size = wl.size if wl.size is not None else disk_size - wl.offset
    size = min(size, disk_size - wl.offset)
    size -= size % wl.bs
    return wl.offset, size


def job_io_count(wl: Workload, disk_size: int) -> int | None:
    """I/Os one clone issues, or ``None`` when the job is bounded only by time."""
    if wl.time_based:
        return None
    _, size = job_region(wl, disk_size)
    total = wl.io_size if wl.io_size is not None else size
    return total // wl.bs


def job_seed(wl: Workload, clone: int, scenario_seed: int, vm_index: int) -> np.random.SeedSequence:
    """fio's seeding: fixed by options and clone number unless ``randrepeat=0`` without a seed."""
    if wl.randseed is not None or wl.randrepeat:
        seed = wl.randseed if wl.randseed is not None else FIO_DEFAULT_RANDSEED
        return np.random.SeedSequence([seed, clone + 1])
    return np.random.SeedSequence([scenario_seed, vm_index, clone + 1])


class _RandomMap:
    """fio's random map for one pass: each block once, collisions move to the next free block."""

    def __init__(self, nblocks: int) -> None:
        self.nblocks = nblocks
        self.used = np.zeros(nblocks, dtype=bool)
        self.n_used = 0
        # next-free pointers (union-find with path compression); index nblocks = "wrap"
        self._next = np.arange(nblocks + 1, dtype=np.int64)

    def _find(self, b: int) -> int:
        nxt = self._next
        root = b
        while nxt[root] != root:
            root = int(nxt[root])
        while nxt[b] != root:
            nxt[b], b = root, int(nxt[b])
        return root

    def _take(self, b: int) -> None:
        self.used[b] = True
        self._next[b] = b + 1
        self.n_used += 1

    def place(self, draws: np.ndarray) -> np.ndarray:
        """Blocks for ``draws`` (each ≤ free blocks left): fresh draws kept, collisions moved."""
        out = draws.copy()
        # first occurrence of each draw in this batch that is still free is taken as is
        _, first = np.unique(draws, return_index=True)
        fresh = np.zeros(draws.shape[0], dtype=bool)
        fresh[first] = True
        fresh &= ~self.used[draws]
        taken = draws[fresh]
        self.used[taken] = True
        self._next[taken] = taken + 1
        self.n_used += int(taken.shape[0])
        for i in np.flatnonzero(~fresh):
            b = self._find(int(draws[i]))
            if b >= self.nblocks:
                b = self._find(0)
            self._take(b)
            out[i] = b
        return out


def random_blocks(wl: Workload, nblocks: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless chunks of block numbers in ``[0, nblocks)`` for a random job."""
    if wl.random_generator == "lfsr":
        while True:
            perm = rng.permutation(nblocks)
            for i in range(0, nblocks, CHUNK):
                yield perm[i:i + CHUNK]
    dist = Distribution(wl.random_distribution, nblocks, rng)
    if wl.norandommap:
        while True:
            yield dist.draw(CHUNK)
    rmap = _RandomMap(nblocks)
    while True:
        room = nblocks - rmap.n_used
        if room == 0:
            rmap = _RandomMap(nblocks)
            room = nblocks
        n = min(CHUNK, room)
        yield rmap.place(dist.draw(n))


def io_stream(wl: Workload, disk_size: int, seed: np.random.SeedSequence) -> Iterator[IoChunk]:
    """Every I/O of one job clone, in issue order, as chunks; ends when ``io_size`` is done."""
    start, size = job_region(wl, disk_size)
    nblocks = size // wl.bs
    if nblocks == 0:
        return
    offset_seed, ddir_seed = seed.spawn(2)
    ddir_rng = np.random.default_rng(ddir_seed)
    remaining = job_io_count(wl, disk_size)
    if wl.is_random:
        blocks_iter = random_blocks(wl, nblocks, np.random.default_rng(offset_seed))
    else:
        blocks_iter = _sequential(nblocks)
    read_fraction = wl.read_fraction
    for blocks in blocks_iter:
        if remaining is not None:
            if remaining <= 0:
                return
            blocks = blocks[:remaining]
            remaining -= blocks.shape[0]
        n = blocks.shape[0]
        is_write: np.ndarray
        if read_fraction == 1.0:
            is_write = np.zeros(n, dtype=bool)
        elif read_fraction == 0.0:
            is_write = np.ones(n, dtype=bool)
        else:
            is_write = np.asarray(ddir_rng.random(n) >= read_fraction)
        yield IoChunk(start + blocks.astype(np.int64) * wl.bs,
                      np.full(n, wl.bs, dtype=np.int64), is_write)


def _sequential(nblocks: int) -> Iterator[np.ndarray]:
    pos = 0
    while True:
        yield (pos + np.arange(CHUNK, dtype=np.int64)) % nblocks
        pos = (pos + CHUNK) % nblocks


def trace_chunks(trace: Trace) -> Iterator[IoChunk]:
    """A recorded clone's I/Os (reads, writes and trims, in its order) as chunks."""
    offs, lens, ddir = trace.offsets, trace.lengths, trace.ddir
    for i in range(0, offs.shape[0], CHUNK):
        d = ddir[i:i + CHUNK]
        yield IoChunk(offs[i:i + CHUNK], lens[i:i + CHUNK], d == WRITE, d == TRIM)
