"""qcow2 with extended L2 entries (``extended_l2=on``): 32 subclusters per cluster.

Each L2 entry is 128 bits: the host offset plus a 32-bit allocation bitmap (and a zero bitmap),
so a cluster is still reserved whole in the file but filled one subcluster (``cluster/32``)
at a time (docs/interop/qcow2.txt "Extended L2 Entries"; FACTS.md 2.2, E7). Measured here with
QEMU 7.2 (pinned in tests/test_qcow2_ext.py and the oracle):

- a write allocates the subclusters it touches; only a partly covered *new* subcluster at
  either end is completed from the backing file (COW), so an aligned write reads nothing;
- the host cluster's offset is reserved, but only the written subclusters reach the file:
  ``st_size`` ends at the last written subcluster of the last host cluster, and ``st_blocks``
  counts the filesystem blocks those subclusters touch (a 2 KiB subcluster still takes a 4 KiB
  block); apparent size and allocation diverge (FACTS.md b.1: 119 MiB vs 8.3 MiB);
- an L2 table is a cluster, but holds half as many entries: it maps ``cluster**2 / 16`` bytes;
- QEMU refuses extended L2 below 16 KiB clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .disk import MERGE_READS_MAX, HostIO, Qcow2Image
from .ext4tree import ExtentTree
from .fs import FS_BLOCK, extent_tree_bytes
from .xfs import xfs_hinted_bytes

SUBCLUSTERS = 32
PREALLOCATION = ("off", "metadata", "falloc", "full")
MIN_EXT_CLUSTER = 16384


def _mask(s0: int, s1: int) -> int:
    """Bits ``s0..s1`` (inclusive) set."""
    return ((1 << (s1 + 1)) - 1) ^ ((1 << s0) - 1)


@dataclass
class Qcow2ExtImage(Qcow2Image):
    """A qcow2 image with extended L2 entries: a subcluster bitmap per guest cluster."""

    L2_ENTRY_BYTES: ClassVar[int] = 16
    extended_l2: ClassVar[bool] = True
    preallocation: str = "off"

    def __post_init__(self) -> None:
        if self.cluster_size < MIN_EXT_CLUSTER:
            raise ValueError("extended_l2 needs a cluster size of at least 16 KiB (QEMU)")
        if self.preallocation not in PREALLOCATION:
            raise ValueError(f"preallocation must be one of {PREALLOCATION}")
        super().__post_init__()
        self.sc_size = self.cluster_size // SUBCLUSTERS
        self.sc_bits = np.zeros(self.n_clusters, dtype=np.uint32)
        self._new_host = -1
        self._last_data = -1  # guest cluster holding the highest host cluster
        # ext4's extent tree, grown in the order the file's blocks are first written
        self.tree = ExtentTree()
        self._fs_written = bytearray()
        self._st_size = 0  # st_size: the end of the last byte ever written (punches keep it)
        self._touch(0, 3 * self.cluster_size + self.l1_bytes)  # qemu-img create
        if self.preallocation != "off":
            self._preallocate()

    def _touch(self, start: int, end: int) -> None:
        """Host bytes ``[start, end)`` were written: new blocks join the extent tree."""
        self._st_size = max(self._st_size, end)
        b0, b1 = start // FS_BLOCK, -(-end // FS_BLOCK)
        if b1 > len(self._fs_written):
            self._fs_written.extend(bytes(b1 - len(self._fs_written) + 1024))
        run = -1
        for b in range(b0, b1):
            if self._fs_written[b]:
                if run >= 0:
                    self.tree.add(run, b)
                run = -1
                continue
            self._fs_written[b] = 1
            run = b if run < 0 else run
        if run >= 0:
            self.tree.add(run, b1)

    def _ensure_l2(self, idx: int, io: HostIO) -> None:
        new = not self.l2_allocated[idx]
        super()._ensure_l2(idx, io)
        if new:  # the new table is written whole at once (l2_allocate)
            self._touch(self._new_host * self.cluster_size,
                        (self._new_host + 1) * self.cluster_size)

    def _preallocate(self) -> None:
        """``qemu-img create -o preallocation=...``: every L2 table and every cluster reserved
        at creation (each table followed by the clusters it maps), subclusters unallocated so
        reads still reach the backing file; falloc/full also allocate the whole file."""
        per = self.l2_entries
        for t in range(self.l1_entries):
            self.l2_allocated[t] = True
            self.n_l2 += 1
            self.l2_host[t] = self.file.take(1)  # where the table is: a copy reads it there
            first, last = t * per, min((t + 1) * per, self.n_clusters)
            for g in range(first, last):  # one by one: refcount blocks may come between
                self.data_host[g] = self.file.take(1)
            self.allocated[first:last] = True
        self.n_data = self.n_clusters

    def _alloc_host_cluster(self, io: HostIO, n: int = 1) -> int:
        self._new_host = super()._alloc_host_cluster(io, n)
        return self._new_host

    def write(self, offset: int, length: int) -> HostIO:
        """As ``Qcow2Image.write`` (runs of new clusters allocated as one range, kept next to
        the request's previous piece when possible), then subclusters per cluster."""
        io = HostIO()
        c = self.cluster_size
        end = offset + length
        g, last = offset // c, (end - 1) // c
        expected = -1
        while g <= last:
            self._touch_l2(g, io)  # a reopened image reads the table first (measured)
            new = not self.allocated[g]
            if not new:
                expected = int(self.data_host[g]) + 1
                h = g + 1
            else:
                h, expected = self._allocate_run(g, last, expected, io)
                if h == g:
                    continue
            for k in range(g, h):
                self._write_subclusters(k, max(offset, k * c), min(end, (k + 1) * c), length,
                                        io)
            if h - g > 1 and new and self.host_fs == "xfs":  # one write, whole subclusters
                host, sc = int(self.data_host[g]) * c, self.sc_size
                a, b = max(offset, g * c) - g * c, min(end, h * c) - g * c
                self.requests.append((host + a // sc * sc, host + -(-b // sc) * sc))
            g = h
        return io

    def _allocate_run(self, g: int, last: int, expected: int, io: HostIO) -> tuple[int, int]:
        """Host clusters for the run of new clusters from ``g``: (end of run, next expected);
        an end equal to ``g`` means nothing was free at ``expected``: try again normally."""
        l2 = g // self.l2_entries
        stop = min(last + 1, (l2 + 1) * self.l2_entries)
        h = g + 1
        while h < stop and not self.allocated[h]:
            h += 1
        self._ensure_l2(l2, io)
        if expected >= 0:
            n = self._alloc_host_cluster_at(io, expected, h - g)
            if n == 0:
                return g, -1
            first, h = expected, g + n
        else:
            first = self._alloc_host_cluster(io, h - g)
        self.data_host[g:h] = np.arange(first, first + h - g)
        self.allocated[g:h] = True
        self.n_data += h - g
        self._last_data = h - 1
        io.cow = True
        io.allocs += h - g
        return h, first + h - g

    def _write_subclusters(self, g: int, ps: int, pe: int, length: int, io: HostIO) -> None:
        cs, scs = g * self.cluster_size, self.sc_size
        s0, s1 = (ps - cs) // scs, (pe - 1 - cs) // scs
        mask = _mask(s0, s1)
        old = int(self.sc_bits[g])
        if not mask & ~old:  # every subcluster already allocated: an in-place write
            io.write_bytes += pe - ps
            io.write_ops += 1
            return
        self.dirty_l2.add(g // self.l2_entries)
        io.sub_allocs += 1
        a = cs + s0 * scs if not old >> s0 & 1 else ps
        b = cs + (s1 + 1) * scs if not old >> s1 & 1 else pe
        head, tail = ps > a, pe < b
        if self.below and (head or tail) and not self.zeroed[g]:
            self._look_below(g, io)
        # COW from zeros (no backing data in the COW regions): fallocate, then the guest bytes
        if self.backing is None or self.zeroed[g] or not (
                self.backing.allocated(a, ps) or self.backing.allocated(pe, b)):
            io.write_bytes += pe - ps
            io.write_ops += 1 + int(head or tail)
        else:
            if head and tail and length <= MERGE_READS_MAX:
                io.read_bytes += self._backing_bytes(a, b)
                io.read_ops += 1
            else:
                for lo, hi, on in ((a, ps, head), (pe, b, tail)):
                    if on:
                        io.read_bytes += self._backing_bytes(lo, hi)
                        io.read_ops += 1
            io.write_bytes += b - a
            io.write_ops += 1
        self.sc_bits[g] = old | mask
        host = int(self.data_host[g]) * self.cluster_size - cs
        self._touch(host + a, host + b)

    def read(self, offset: int, length: int) -> HostIO:
        """A guest read, subcluster by subcluster: an allocated one is read from this file,
        an unallocated one from the backing file (nothing where the base has a hole), a zero
        one is read from nowhere (``qcow2_get_host_offset`` gives each subcluster's type).

        A cluster with a host offset is not data: ``preallocation=metadata`` or ``falloc``
        reserves every cluster with no subcluster allocated, so reads still fall through to
        the base. Measured (s1b-reads, 1 GiB overlay of a base with 288 MiB of data, 16 MiB
        of random 16 KiB reads): qemu-nbd read 5226496 bytes, not the 17104896 a read of the
        whole 16 MiB from the overlay would be."""
        io = HostIO()
        if not self.prealloc_checked:
            self._detect_prealloc(io)
        c, scs = self.cluster_size, self.sc_size
        end = offset + length
        for g in range(offset // c, (end - 1) // c + 1):
            cs = g * c
            ps, pe = max(offset, cs), min(end, cs + c)
            self._touch_l2(g, io)
            io.read_ops += 1
            bits = int(self.sc_bits[g]) if self.allocated[g] else 0
            s0, s1 = (ps - cs) // scs, (pe - 1 - cs) // scs
            if bits & _mask(s0, s1) == _mask(s0, s1):
                io.read_bytes += pe - ps
                continue
            if not self.zeroed[g]:
                io.backing_reads += 1
                if self.below:
                    self._look_below(g, io)
            for s in range(s0, s1 + 1):
                lo, hi = max(ps, cs + s * scs), min(pe, cs + (s + 1) * scs)
                if bits >> s & 1:
                    io.read_bytes += hi - lo
                elif not self.zeroed[g]:
                    io.read_bytes += self._backing_bytes(lo, hi)
        return io

    # -- layout -------------------------------------------------------------------------------
    @property
    def file_bytes(self) -> int:
        if self.preallocation != "off":
            return self.file.size
        return self._st_size

    def _free_data(self, g: int) -> None:
        """A discarded cluster: its host cluster is punched out of the file (extent tree too);
        the zero flag stays for subclusters written later (they copy zeros, not the backing)."""
        pos = int(self.data_host[g])
        super()._free_data(g)
        self.sc_bits[g] = 0
        per = self.cluster_size // FS_BLOCK
        self.tree.punch(pos * per, (pos + 1) * per)
        self._fs_written[pos * per:(pos + 1) * per] = bytes(per)

    def _block_map(self) -> np.ndarray:
        """Which 4 KiB blocks of the file hold written bytes."""
        per = self.cluster_size // FS_BLOCK
        bm = np.ones(self.file.end * per, dtype=bool)
        for s, e in self.file.unwritten():
            bm[s * per:e * per] = False
        l1_start = 3 * per
        bm[l1_start:l1_start + self._l1_clusters * per] = False
        bm[l1_start:l1_start + -(-self.l1_bytes // FS_BLOCK)] = True
        if self.preallocation in ("falloc", "full"):
            return bm
        guests = np.flatnonzero(self.allocated)
        bits = self.sc_bits[guests].astype(np.int64)
        sub = (bits[:, None] >> np.arange(SUBCLUSTERS)) & 1 > 0
        if self.sc_size >= FS_BLOCK:
            blocks = np.repeat(sub, self.sc_size // FS_BLOCK, axis=1)
        else:
            blocks = np.asarray(
                sub.reshape(guests.shape[0], per, SUBCLUSTERS // per).any(axis=2))
        where = self.data_host[guests][:, None] * per + np.arange(per)
        bm[where.ravel()] = blocks.ravel()
        return bm[: -(-self.file_bytes // FS_BLOCK)]

    def host_written(self) -> list[tuple[int, int]]:
        """Byte ranges of the file that hold written bytes (whole 4 KiB blocks), in order."""
        bm = self._block_map().astype(np.int8)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], bm, [0])))) * FS_BLOCK
        return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))

    def _runs(self) -> list[int]:
        bm = self._block_map().astype(np.int8)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], bm, [0]))))
        return [int(n) * FS_BLOCK for n in edges[1::2] - edges[::2]]

    @property
    def allocated_bytes(self) -> int:
        """Written blocks plus ext4's extent tree as this write order grew it (``ext4tree``);
        a preallocated file was allocated in order, so its tree is packed."""
        if self.host_fs == "xfs" and self.preallocation == "off":
            return xfs_hinted_bytes(self.created_bytes, self.host_written(), self.requests)
        runs = self._runs()
        if self.preallocation != "off":
            return sum(runs) + extent_tree_bytes(r // FS_BLOCK for r in runs)
        return sum(runs) + self.tree.blocks * FS_BLOCK
