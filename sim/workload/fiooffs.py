"""fio's block choice for a random job, I/O for I/O (fio 3.33: io_u.c, lib/axmap.c, lib/lfsr.c).

- **uniform** (``random_distribution=random``) and **zoned**: a draw ``r`` of the job's block
  state scaled to the range (``lastb * (r / (rand_max + 1.0))``); with the random map, a block
  already used this pass moves to the map's next free block after it (``axmap_next_free``,
  wrapping); when none is free the draw is lost and the map resets (a time-based job redraws at
  once; a job bounded by size ends its loop, and its next loop reseeds when repeatable).
  ``zoned`` first draws the zone (``rand_between(zone_state, 1, 100)``) and picks a block inside
  it; measured, its blocks repeat as with ``norandommap`` (the model's stream without a map is
  fio's, I/O for I/O), so the map is only ever a uniform job's.
- **lfsr**: fio's Galois LFSR over ``blocks`` values, no map, each block once per pass.
- **rw mixes**: fio's ``get_rw_ddir``: a direction is drawn from the mix state only when the
  current one has issued its share, so reads and writes come in runs.

The loops are plain Python over ints: exactness needs the order, and a step costs well under a
microsecond.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cowbench import randdist

from .fiodist import Zones
from .fiorand import BLOCK_OFF, MIX_OFF, ZONE_OFF, Taus

CHUNK = 1 << 16
LFSR_TAPS = ("3,2;4,3;5,3;6,5;7,6;8,6,5,4;9,5;10,7;11,9;12,6,4,1;13,4,3,1;14,5,3,1;15,14;"
             "16,15,13,4;17,14;18,11;19,6,2,1;20,17;21,19;22,21;23,18;24,23,22,17;25,22;"
             "26,6,2,1;27,5,2,1;28,25;29,27;30,6,4,1;31,28;32,31,29,1;33,20;34,27,2,1;35,33;"
             "36,25;37,5,4,3,2,1;38,6,5,1;39,35;40,38,21,19;41,38;42,41,20,19;43,42,38,37;"
             "44,43,18,17;45,44,42,41;46,45,26,25;47,42;48,47,21,20;49,40;50,49,24,23;"
             "51,50,36,35;52,49;53,52,38,37;54,53,18,17;55,31;56,55,35,34;57,50;58,39;"
             "59,58,38,37;60,59;61,60,46,45;62,61,6,5;63,62")


@dataclass(frozen=True)
class Stream:
    """What one clone's block choice needs: fio's seeds and the job's shape."""

    seeds: tuple[int, ...]
    repeatable: bool
    nblocks: int
    time_based: bool
    norandommap: bool
    use64: bool
    zones: str | None  # a zoned / zoned_abs spec
    bs: int
    total: int | None  # I/Os the clone issues (None: until its time is up)

    def chunk(self, done: int) -> int:
        """The next chunk's size after ``done`` I/Os: ``CHUNK``, never more than is left."""
        return CHUNK if self.total is None else min(CHUNK, self.total - done)


class _Map:
    """fio's random map: ``nxt[b] == b`` while ``b`` is free; a used block points further on
    (union-find with path compression), ``n`` is the end (cowbench.bounds counts its bytes)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.nxt = array("q")  # 8 bytes a block; indexing gives plain ints, fast in a loop
        self.nxt.frombytes(np.arange(n + 1, dtype=np.int64).tobytes())

    def _find(self, b: int) -> int:
        nxt = self.nxt
        r = b
        while nxt[r] != r:
            r = nxt[r]
        while nxt[b] != r:
            nxt[b], b = r, nxt[b]
        return r

    def next_free(self, b: int) -> int:
        """``axmap_next_free``: the first free block after ``b``, wrapping; -1 when full."""
        r = self._find(b + 1) if b + 1 < self.n else self.n
        if r == self.n:
            r = self._find(0)
        return -1 if r == self.n else r


def _draws(st: Stream, rnd: Taus, zone_rnd: Taus | None, zones: Zones | None,
           k: int) -> np.ndarray:
    """``k`` blocks: fio's draw scaled to the range, or to a zone it drew first."""
    if zones is None or zone_rnd is None:
        return np.asarray((float(st.nblocks) * rnd.unit(k)).astype(np.int64))
    v = zone_rnd.between(k, 1, 100) - 1
    lo, hi = zones.prev[v], zones.end[v]
    if zones.absolute:
        start, lastb = lo // st.bs, (hi // st.bs - lo // st.bs).astype(np.float64)
    else:
        start = lo * st.nblocks // 100
        lastb = (st.nblocks * (hi - lo) // 100).astype(np.float64)
    return np.asarray(start + (lastb * rnd.unit(k)).astype(np.int64))


def uniform_blocks(st: Stream) -> Iterator[np.ndarray]:
    """Chunks of fio's blocks for a uniform or zoned job (``st.total`` of them)."""
    zones = Zones(randdist.parse(st.zones)) if st.zones else None

    def states() -> tuple[Taus, Taus | None]:
        zr = Taus(st.seeds[ZONE_OFF]) if zones is not None else None
        return Taus(st.seeds[BLOCK_OFF], st.use64), zr

    rnd, zone_rnd = states()
    done = 0
    if st.norandommap or zones is not None:
        while (k := st.chunk(done)) > 0:
            done += k
            yield _draws(st, rnd, zone_rnd, zones, k)
        return
    rmap = _Map(st.nblocks)
    while (k := st.chunk(done)) > 0:
        out: list[int] = []
        append, nxt = out.append, rmap.nxt
        for b in _draws(st, rnd, None, None, k).tolist():
            if nxt[b] != b:
                b = rmap.next_free(b)
                if b < 0:  # the map is full: this draw is lost, a new pass begins
                    rmap = _Map(st.nblocks)
                    nxt = rmap.nxt
                    if st.repeatable and not st.time_based:
                        rnd, zone_rnd = states()
                        break
                    continue
            nxt[b] = b + 1
            append(b)
        done += len(out)
        yield np.asarray(out, dtype=np.int64)


def lfsr_blocks(st: Stream) -> Iterator[np.ndarray]:
    """fio's ``lfsr_next`` from ``lfsr_init(blocks, seed, spin=0)``; each pass restarts it
    (``lfsr_reset``) without the first call's double step."""
    n = st.nblocks
    rows = [tuple(int(t) for t in row.split(",")) for row in LFSR_TAPS.split(";")]
    taps = next(r for r in rows if (1 << r[0]) > n)
    xormask = 0
    for t in taps:
        xormask |= 1 << (t - 1)
    top = 1 << (taps[0] - 1)
    bitmask = (top << 1) - 1
    max_val = n - 1
    first, done = True, 0
    while True:
        v = st.seeds[BLOCK_OFF] & bitmask
        out: list[int] = []
        for _ in range(n if st.total is None else min(n, st.total - done)):
            steps = 2 if first else 1
            first = False
            while True:
                for _ in range(steps):
                    v = ((v >> 1) | top) ^ (0 if v & 1 else xormask)
                steps = 1
                if v <= max_val:
                    break
            out.append(v)
            if len(out) == CHUNK:
                done += len(out)
                yield np.asarray(out, dtype=np.int64)
                out = []
        done += len(out)
        if out:
            yield np.asarray(out, dtype=np.int64)
        if st.total is not None and done >= st.total:
            return


class Rwmix:
    """fio's ``get_rw_ddir`` for a read/write mix: whether each next I/O is a write."""

    def __init__(self, seeds: tuple[int, ...], rwmixread: int) -> None:
        self.rnd = Taus(seeds[MIX_OFF])
        self.mix = (rwmixread, 100 - rwmixread)
        self.ddir = 0  # DDIR_READ
        self.issues = [0, 0]
        self.limit = 0
        self._buf: list[int] = []

    def _draw(self) -> int:
        if not self._buf:
            self._buf = self.rnd.between(1024, 1, 100).tolist()[::-1]
        return self._buf.pop()

    def propose(self) -> int:
        """The direction the mix asks for next (0 read, 1 write), before fio's rate check."""
        if self.issues[self.ddir] >= self.limit:
            ddir = 0 if self._draw() <= self.mix[0] else 1
            if ddir != self.ddir:
                self.limit = self.issues[self.ddir] * self.mix[self.ddir ^ 1] // 100
            self.ddir = ddir
        return self.ddir

    def commit(self, ddir: int) -> None:
        """The I/O went out in ``ddir``: fio's ``rate_ddir`` may have switched the mix's
        proposal to the direction behind its rate, and the mix goes on from that one."""
        self.ddir = ddir
        self.issues[ddir] += 1

    def writes(self, k: int) -> np.ndarray:
        out = np.zeros(k, dtype=bool)
        for i in range(k):
            ddir = self.propose()
            self.commit(ddir)
            out[i] = ddir == 1
        return out
