"""Where a qcow2 image puts its host clusters, and which parts of the file were ever written.

QEMU allocates host clusters from a free-cluster pointer (``alloc_clusters_noref`` in
block/qcow2-refcount.c): normally at the end of the file. Every cluster is refcounted, so when
the file outgrows what the refcount blocks cover, a new refcount block is appended (one
cluster). When the refcount *table* is full as well (its first cluster holds ``cluster/8``
entries: 8 MiB of file at 512 B clusters and 16-bit refcounts, 4 GiB at 4 KiB, 16 TiB at
64 KiB), ``alloc_refcount_block`` builds a new area at the next refcount-block boundary past
the file's end (``qcow2_refcount_area``): the refcount blocks a generous (1.5x) table needs,
then the new table; the old table is freed and the clusters skipped on the way stay holes
until later allocations fill them, lowest first. Measured here (QEMU 7.2, 512 B clusters,
refcount_bits=64): a 3 940-cluster image jumps to 4 164 clusters, then grows into the hole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .fs import FS_BLOCK

Interval = tuple[int, int]


def refcount_blocks_for(clusters: int, cluster: int, refcount_bits: int,
                        generous: bool) -> int:
    """``qcow2_refcount_metadata_size``: refcount blocks needed to count ``clusters`` plus the
    refcount metadata itself (a fixed point), with room for a 1.5x table when ``generous``."""
    per_table, per_block = cluster // 8, cluster * 8 // refcount_bits
    table = blocks = n = 0
    while True:
        last = n
        blocks = -(-(clusters + table + blocks) // per_block)
        table = -(-blocks // per_table)
        n = clusters + blocks + table
        if n == last and generous:
            clusters += -(-table // 2)
            n, generous = 0, False
        elif n == last:
            return blocks


@dataclass
class Gap:
    """Free clusters ``[start, end)`` below the file's end; ``written`` if they hold old data."""

    start: int
    end: int
    written: bool


@dataclass
class HostFile:
    """The host clusters of one qcow2 file: header, refcount table and block, L1, then more."""

    cluster: int
    refcount_bits: int
    l1_bytes: int
    gaps: list[Gap] = field(default_factory=list)

    def __post_init__(self) -> None:
        c = self.cluster
        self.covers = c * 8 // self.refcount_bits
        self.l1_clusters = -(-self.l1_bytes // c)
        self.end = 3 + self.l1_clusters  # header, refcount table, refcount block, L1
        self.used = self.end
        self.n_refblocks = 1
        self.table_pos, self.table_clusters = 1, 1
        self.table_entries = c // 8
        self.partial: dict[int, int] = {}  # clusters written only in part: bytes from start
        self.l1_moved = False  # the creation-time L1 table was replaced (qemu-img resize)
        self.free_ptr = self.end
        self._grow(self.end, 0)

    # -- allocation ---------------------------------------------------------------------------
    def take(self, n: int = 1) -> int:
        """Allocate ``n`` contiguous clusters as ``qcow2_alloc_clusters`` does; return the
        first one's index. The refcount blocks (and tables) they need come after them. Free
        clusters at the end of the file run on into the space past it."""
        pos = self._first_fit(n)
        if pos is None:
            pos = self.end
        if pos + n <= self.end:
            return self._carve(pos, n)
        if pos < self.end:
            self._carve(pos, self.end - pos)
        self.used += pos + n - self.end
        self.end = pos + n
        self.free_ptr = self.end
        return self._grow(pos, n)

    def take_at(self, pos: int, n: int) -> int:
        """``qcow2_alloc_clusters_at``: take up to ``n`` clusters from ``pos`` on, as many as
        are free there (0 if ``pos`` is in use); the free-cluster pointer does not move."""
        if pos < self.end:
            gap = next((g for g in self.gaps if g.start <= pos < g.end), None)
            if gap is None:
                return 0
            k, run_end = 0, pos
            for g in self.gaps:
                if g.start <= run_end < g.end or (g.start == run_end and g.start > pos):
                    run_end = g.end
            k = min(n, run_end - pos) if run_end < self.end else n
            inside = min(k, self.end - pos)
            ptr = self.free_ptr
            self._carve(pos, inside)
            self.free_ptr = ptr
            if k > inside:
                self.used += k - inside
                self.end = pos + k
                self._grow(pos, k)
            return k
        self.used += pos + n - self.end
        self.end = pos + n
        self._grow(pos, n)
        return n

    def can_bulk(self, n: int) -> bool:
        """True when ``n`` more clusters are plain appends: no holes to fill, no table growth."""
        return not self.gaps and (
            self.end + n + n // self.covers + 2 <= self.table_entries * self.covers)

    def take_bulk(self, n: int) -> None:
        """``n`` appends at once (only when :meth:`can_bulk`): positions are not tracked."""
        self.end += n
        self.used += n
        self.free_ptr = self.end
        self._grow(self.end - n, n)

    def _first_fit(self, n: int) -> int | None:
        """The first run of ``n`` free clusters at or after the free-cluster pointer (free
        ranges that touch make one run; a run that reaches the file's end always fits)."""
        run_start, run_end = -1, -1
        for g in self.gaps:
            if g.end <= self.free_ptr:
                continue
            s = max(g.start, self.free_ptr)
            if s != run_end:
                run_start = s
            run_end = g.end
            if run_end - run_start >= n or run_end == self.end:
                return run_start
        return None

    def free(self, pos: int) -> None:
        """Cluster ``pos`` loses its last reference (a discard): QEMU punches it out of the file
        (discard passthrough) and lowers the free-cluster pointer to it."""
        self.gaps.append(Gap(pos, pos + 1, False))
        self.gaps.sort(key=lambda g: g.start)
        self.used -= 1
        self.free_ptr = min(self.free_ptr, pos)

    def free_written(self, start: int, n: int) -> None:
        """Clusters that lose their last reference but keep their bytes (QEMU does not punch
        freed metadata): they stay allocated on disk until an allocation reuses them."""
        self.gaps.append(Gap(start, start + n, True))
        self.gaps.sort(key=lambda g: g.start)
        self.used -= n
        self.free_ptr = min(self.free_ptr, start)

    def move_l1(self, old: tuple[int, int], clusters: int, nbytes: int) -> int:
        """``qcow2_grow_l1_table``: the new table takes ``clusters`` clusters like any
        allocation (written ``nbytes`` in), then the old one is freed; its bytes stay in the
        file (not punched) until an allocation reuses its clusters. Returns the new start."""
        c = self.cluster
        if not self.l1_moved:  # the creation-time table becomes ordinary clusters
            self.l1_moved = True
            if self.l1_bytes % c:
                self.partial[3 + self.l1_clusters - 1] = self.l1_bytes % c
        start = self.take(clusters)
        if nbytes % c:
            self.partial[start + clusters - 1] = nbytes % c
        self.free_written(*old)
        return start

    def _carve(self, pos: int, n: int) -> int:
        for k in range(pos, pos + n):  # reused clusters are written whole again
            self.partial.pop(k, None)
        out: list[Gap] = []
        for g in self.gaps:
            if g.end <= pos or g.start >= pos + n:
                out.append(g)
                continue
            if g.start < pos:
                out.append(Gap(g.start, pos, g.written))
            if g.end > pos + n:
                out.append(Gap(pos + n, g.end, g.written))
        self.gaps = out
        self.used += n
        self.free_ptr = pos + n
        return pos

    def _grow(self, start: int, n: int) -> int:
        """Refcount blocks for a range just appended at ``start``; return where it ends up."""
        while self.end > self.n_refblocks * self.covers:
            if self.n_refblocks < self.table_entries:
                self.n_refblocks += 1
                self.end += 1
                self.used += 1
                self.free_ptr = self.end
            else:
                return self._grow_table(start, n)
        return start

    def _grow_table(self, start: int, n: int) -> int:
        """The refcount table is full: ``alloc_refcount_block`` + ``qcow2_refcount_area``, then
        the allocation is undone and retried (-EAGAIN) from the freed old table onwards."""
        c = self.cluster
        self.end += 1  # the new refcount block, hooked into the new table
        self.used += 1
        self.n_refblocks += 1
        blocks_used = -(-self.end // self.covers)
        meta = blocks_used * self.covers
        total = refcount_blocks_for(meta, c, self.refcount_bits, generous=True)
        entries = total + -(-total // 2)
        entries = -(-entries // (c // 8)) * (c // 8)
        new_tc = entries * 8 // c
        extra = max(0, total - max(blocks_used, self.n_refblocks))
        self.gaps += [Gap(self.table_pos, self.table_pos + self.table_clusters, True),
                      Gap(start, start + n, False)]
        if meta > self.end:
            self.gaps.append(Gap(self.end, meta, False))
        self.gaps.sort(key=lambda g: g.start)
        self.used += extra + new_tc - self.table_clusters - n
        self.free_ptr = min(self.table_pos, start)
        self.n_refblocks = max(self.n_refblocks, total)
        self.table_pos, self.table_clusters, self.table_entries = meta + extra, new_tc, entries
        self.end = meta + extra + new_tc
        pos = self._first_fit(n)
        assert pos is not None  # the undone range itself fits
        return self._carve(pos, n)

    # -- layout -------------------------------------------------------------------------------
    def written(self) -> list[Interval]:
        """Byte ranges of the file that hold written data, in order."""
        c = self.cluster
        l1_start = 3 * c
        runs: list[Interval] = []
        pos = 3 if self.l1_moved else 3 + self.l1_clusters
        for g in self.gaps:
            if not g.written:
                if g.start > pos:
                    runs.append((pos, g.start))
                pos = max(pos, g.end)
        if self.end > pos:
            runs.append((pos, self.end))
        out: list[Interval] = [(0, l1_start)]
        if not self.l1_moved:
            out.append((l1_start, l1_start + self.l1_bytes))
        cuts = sorted(self.partial)
        for a, b in runs:
            for p in (x for x in cuts if a <= x < b):
                out += [(a * c, p * c), (p * c, p * c + self.partial[p])]
                a = p + 1
            out.append((a * c, b * c))
        return out

    @property
    def size(self) -> int:
        """st_size: the end of the last byte written."""
        if self.end == 3 + self.l1_clusters and not self.l1_moved:
            return 3 * self.cluster + self.l1_bytes
        last = self.end - 1
        return last * self.cluster + self.partial.get(last, self.cluster)

    def unwritten(self) -> list[Interval]:
        """Cluster ranges never written (holes in the file)."""
        return [(g.start, g.end) for g in self.gaps if not g.written]


def block_intervals(written: Iterable[Interval]) -> list[Interval]:
    """The runs of filesystem blocks that byte ranges touch, merged, in order."""
    runs: list[list[int]] = []
    for a, b in sorted(written):
        if b <= a:
            continue
        s, e = a // FS_BLOCK, -(-b // FS_BLOCK)
        if runs and s <= runs[-1][1]:
            runs[-1][1] = max(runs[-1][1], e)
        else:
            runs.append([s, e])
    return [(s, e) for s, e in runs]


def block_runs(intervals: list[Interval]) -> list[int]:
    """Lengths in filesystem blocks of the runs of blocks that written byte ranges touch."""
    return [e - s for s, e in block_intervals(intervals)]
