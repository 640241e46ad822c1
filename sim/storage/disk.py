"""Exact allocation maps of VM disks, and the host I/O each guest I/O causes.

``Qcow2Image`` follows QEMU 7.2's qcow2 driver (docs/interop/qcow2.txt, block/qcow2-cluster.c,
FACTS.md 2.1-2.2, measured here and pinned in tests/test_oracle.py):

- a new image holds a header cluster, a refcount table cluster, one refcount block and the L1
  table (``8 * l1_entries`` bytes, written, the rest of its cluster a hole); more refcount
  blocks follow when the file outgrows what the existing ones describe;
- the first write under an L2 region allocates a whole-cluster L2 table at the end of the file;
- a write into an unallocated cluster allocates a whole host cluster at the end of the file: with
  a backing file, the parts the guest did not write are copied from it (one read of the whole
  cluster when both head and tail are missing and the request is at most 16 KiB), and the
  cluster goes out in one write; a write covering the whole cluster reads nothing; with no
  backing data the cluster is zeroed with fallocate and only the guest bytes are written;
- a write into an allocated cluster is an in-place write of exactly the guest bytes.

A cluster zeroed with fallocate (``handle_alloc_space``: ``FALLOC_FL_ZERO_RANGE``) is allocated
in the host file (it counts in ``st_blocks``), but the 4 KiB blocks the write left out are
unwritten extents on ext4: reading them returns zeros without touching the device, so they
move no host bytes until something writes them (``Qcow2Image.holes``). ``qemu-img convert``
into a new qcow2 file builds a whole image this way: it skips every zero run of 4 KiB and more,
so a cluster that held one 4 KiB block of data is copied as that block in a zeroed cluster
(measured, FIEMAP of the copy: 1 written block and 15 unwritten; a 4 KiB read of an unwritten
one through qemu-nbd read no data).

Host bytes count what reaches the block layer (``/proc/PID/io`` read_bytes/write_bytes under
``cache=none``): reading a hole of a raw base moves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .backing import BaseData as BaseData  # re-exported: images are made over it
from .fs import FS_BLOCK, extent_tree_bytes
from .hostfile import HostFile, block_runs
from .qcow2cache import REFCOUNT_CACHE_BLOCKS, L2Cache, prealloc_scan_blocks
from .xfs import XFS_MAX_EXTENT_BLOCKS, HostFs, bmbt_blocks, xfs_hinted_bytes

L1_SECTOR = 512          # qcow2_write_l1_entry writes one 512-byte sector of the L1 table
MERGE_READS_MAX = 16384  # perform_cow merges head and tail reads for requests up to 16 KiB


def add_io(total: HostIO, io: HostIO) -> None:
    total.read_bytes += io.read_bytes
    total.write_bytes += io.write_bytes
    total.read_ops += io.read_ops
    total.write_ops += io.write_ops
    total.cow = total.cow or io.cow
    total.allocs += io.allocs
    total.sub_allocs += io.sub_allocs
    total.backing_reads += io.backing_reads


@dataclass
class HostIO:
    """Host-side cost of one guest I/O (or of a flush)."""

    read_bytes: int = 0
    write_bytes: int = 0
    read_ops: int = 0
    write_ops: int = 0
    cow: bool = False
    #: what the I/O model (sim.perf) charges beyond the bytes: clusters newly allocated,
    #: subclusters allocated in an allocated cluster (extended_l2), and guest read pieces
    #: that fell through to the backing chain
    allocs: int = 0
    sub_allocs: int = 0
    backing_reads: int = 0
    #: holes a discard punches in the image's file (``fallocate(PUNCH_HOLE)``, one per run of
    #: adjacent host clusters freed: qcow2 merges them, ``qcow2_process_discards``): the
    #: filesystem's work, by far the costliest part of a trim (sim.perf's ``punch_s``)
    punches: int = 0


@dataclass
class SparseMeta:
    """What a zero-skipping copy of the file (``rsync --sparse``, a cold migration) left of
    its metadata clusters: the copy keeps only the 4 KiB blocks holding a non-zero byte, so
    a refcount block or an L2 table with few entries is mostly holes, and QEMU's read of the
    whole cluster reads only its held blocks (holes read as zeros with no device I/O). A
    table or refcount block written back since (whole, from QEMU's caches) holds every
    block again. Measured (the user-test's s11, a chain copied by rsync, then a write of
    whole clusters): qemu-nbd read 73728 bytes, a 64 KiB L2 table and a refcount block
    holding 8 KiB, where reading both clusters whole is 131072."""

    #: host cluster -> bytes the copy holds of it, for metadata clusters it left part holes
    held: dict[int, int]
    #: the image's allocated clusters, subcluster bitmaps (extended_l2) and host clusters in
    #: use at the copy: what has changed since was written back
    allocated: np.ndarray
    subclusters: np.ndarray | None
    used: int


@dataclass
class Qcow2Image:
    """One qcow2 file: its allocation map, its file layout and its metadata state."""

    virtual_size: int
    cluster_size: int = 65536
    backing: BaseData | None = None
    refcount_bits: int = 16
    l2_cache_whole: bool = True
    unmap: bool = False  # guest discards reach the image (discard=unmap)
    zero_writes: bool = False  # writes are all zeros and detect-zeroes is on
    zero_unmap: bool = False  # detect-zeroes=unmap
    #: the filesystem the file is on: ext4 allocates the blocks written, XFS hint-sized pieces
    #: (``sim.storage.xfs``; a run with a reflink copy puts every host on XFS)
    host_fs: HostFs = "ext4"
    allocated: np.ndarray = field(init=False, repr=False)
    #: bytes per L2 entry: 8, or 16 with extended L2 (sim.storage.qcow2_ext)
    L2_ENTRY_BYTES: ClassVar[int] = 8
    l2_allocated: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        c = self.cluster_size
        self.n_clusters = -(-self.virtual_size // c)
        self.l2_entries = c // self.L2_ENTRY_BYTES
        self.l1_entries = -(-self.n_clusters // self.l2_entries)
        self.l1_bytes = 8 * self.l1_entries
        self.refblock_covers = c * 8 // self.refcount_bits
        self.allocated = np.zeros(self.n_clusters, dtype=bool)
        self.zeroed = np.zeros(self.n_clusters, dtype=bool)  # zero flag, no host cluster
        #: allocated clusters zeroed with fallocate whose 4 KiB blocks are not all written
        #: since: guest cluster -> bitmask of its unwritten blocks (bit j: bytes
        #: ``[j * 4096, (j + 1) * 4096)`` of the cluster), which read as zeros with no host
        #: I/O. Absent: every block written (the usual case: copy-on-write from a backing
        #: file writes the whole cluster). Clusters under 4 KiB are not tracked.
        self.holes: dict[int, int] = {}
        self.any_zeroed = False
        # internal snapshots (snapshot.py): clusters and L2 tables a snapshot also references
        self.shared = np.zeros(self.n_clusters, dtype=bool)
        self.l2_shared = np.zeros(self.l1_entries, dtype=bool)
        self.any_shared = False
        self.snapshots: list[str] = []  # internal snapshots' names, oldest first
        self.snapshot_l1s: list[int] = []  # the first cluster of each one's L1 table copy
        self.snapshot_table: tuple[int, int] | None = None  # (first cluster, clusters)
        self.data_host = np.full(self.n_clusters, -1, dtype=np.int64)  # index in the file
        self.l2_allocated = np.zeros(self.l1_entries, dtype=bool)
        self.n_data = 0
        #: on XFS, host byte ranges of the writes that spanned several new clusters, one
        #: ``pwrite`` each (``sim.storage.xfs`` allocates by them)
        self.requests: list[tuple[int, int]] = []
        self.n_l2 = 0
        self.file = HostFile(c, self.refcount_bits, self.l1_bytes)
        self.dirty_l2: set[int] = set()
        self.dirty_refblocks = False
        #: the refcount cache depends on the L2 cache (a refcount was decreased since the last
        #: flush of the L2 tables): see ``_link`` and ``_unref``
        self.rc_on_l2 = False
        self.rc_dirty: set[int] = set()  # refcount blocks a free dirtied (``_refblock_for_free``)
        self._l1_clusters = self.file.l1_clusters
        self._l1_start = 3
        self.l2_host = np.full(self.l1_entries, -1, dtype=np.int64)  # L2 tables in the file
        #: the qcow2 layers under this one, nearest first, when it tops an external snapshot
        #: chain (``sim.storage.strategies.ChainDisk`` sets it): see ``_look_below``. Empty
        #: for a single overlay, whose lookups cost one test of this list.
        self.below: list[Qcow2Image] = []
        #: set when the file is a zero-skipping copy (``SparseMeta``): its metadata reads
        self.sparse_meta: SparseMeta | None = None
        self.open()

    def open(self) -> None:
        """A new QEMU process opens the image (qemu-nbd): its metadata caches start empty, so
        the first touch of an existing L2 table reads it, the first allocation reads the
        refcount block, and so does the first read (``qcow2cache``; measured: /proc/PID/io of
        qemu-nbd)."""
        self.refblock_cached = False
        self.prealloc_checked = False
        self.l2_cached = L2Cache(self.l1_entries, self.cluster_size)
        self.rc_cache = L2Cache(REFCOUNT_CACHE_BLOCKS, self.cluster_size)

    def _look_below(self, g: int, io: HostIO) -> None:
        """Guest cluster ``g`` is missing from this image and looked up down the chain: each
        layer is a BlockDriverState of its own, with its own metadata caches, so the lookup
        costs each layer it reaches what a lookup in a single image costs, until a layer that
        holds the cluster (data or zero flag) answers.

        QEMU 7.2: ``qcow2_co_preadv_part`` passes an unallocated range to the backing
        (``bdrv_co_preadv_part(bs->backing, ...)``), whose ``qcow2_get_host_offset`` loads its
        own L2 table on a miss; before the read, qemu-nbd's block-status query for it
        (``bdrv_block_status_above``) reaches the same layers, and the first one of a session
        on a layer runs ``qcow2_detect_metadata_preallocation`` there (its refcount blocks,
        ``qcow2cache``). A first write of part of a cluster walks them too
        (``is_zero_cow``, then the copy-on-write read). Measured (/proc/PID/io of qemu-nbd,
        64 KiB clusters, tests/test_hostbytes_chain.py): one 4 KiB read through two empty
        layers to the base read 64 KiB more per layer, and a read stopping at the layer
        that holds the cluster read nothing of the layers below it."""
        for layer in self.below:
            if g >= layer.n_clusters:  # past a shorter layer's end: zeros, no lookup
                return
            if not layer.prealloc_checked:
                layer._detect_prealloc(io)
            layer._touch_l2(g, io)
            if layer.allocated[g] or layer.zeroed[g]:
                return

    def _touch_l2(self, g: int, io: HostIO) -> None:
        idx = g // self.l2_entries
        if self.l2_allocated[idx] and idx not in self.l2_cached:
            io.read_bytes += self._meta_bytes(int(self.l2_host[idx]), idx) \
                if self.l2_cache_whole else FS_BLOCK
            io.read_ops += 1
        self._cache_l2(idx, io)

    def _meta_bytes(self, host: int, table: int = -1) -> int:
        """Bytes a read of the metadata cluster at ``host`` moves (L2 table ``table``, else a
        refcount block): the whole cluster, but what a zero-skipping copy left of it until
        it is written back (``SparseMeta``; a table whose entries changed, a refcount block
        once clusters were allocated or freed)."""
        c = self.cluster_size
        sm = self.sparse_meta
        if sm is None or host not in sm.held:
            return c
        if table < 0:
            return c if self.file.used != sm.used else sm.held[host]
        part = slice(table * self.l2_entries, (table + 1) * self.l2_entries)
        now, then = self.allocated[part], sm.allocated[part]
        if now.shape != then.shape or bool((now != then).any()):
            return c
        bits = getattr(self, "sc_bits", None)
        if sm.subclusters is not None and bits is not None and \
                bool((bits[part] != sm.subclusters[part]).any()):
            return c
        return sm.held[host]

    def _refblock_host(self, block: int) -> int:
        """The host cluster of refcount block ``block``: the first one is cluster 2 (``qemu-img
        create``); where later ones went is not tracked (-1)."""
        return 2 if block == 0 else -1

    def _cache_l2(self, idx: int, io: HostIO) -> None:
        """Table ``idx`` in the L2 cache; a dirty table it evicts is written back first."""
        out = self.l2_cached.use(idx)
        if out is not None and out in self.dirty_l2:
            self.dirty_l2.discard(out)
            io.write_bytes += self.cluster_size if self.l2_cache_whole else FS_BLOCK
            io.write_ops += 1
            if self.dirty_refblocks and not self.rc_on_l2:  # L2 depends on the refcounts
                self.dirty_refblocks = False
                io.write_bytes += self.cluster_size
                io.write_ops += 1

    def _detect_prealloc(self, io: HostIO) -> None:
        """The first read after an open loads the refcount blocks ``qcow2cache`` says."""
        self.prealloc_checked = True
        n = prealloc_scan_blocks(self.file_bytes, self.allocated_bytes, self.cluster_size,
                                 self.file.covers) - int(self.refblock_cached)
        first = int(self.refblock_cached)
        self.refblock_cached = True
        if n > 0:
            io.read_bytes += sum(self._meta_bytes(self._refblock_host(k))
                                 for k in range(first, first + n))
            io.read_ops += n

    def resize(self, new_size: int) -> None:
        """``qemu-img resize`` to a larger size: a big enough L1 table is written where the
        next clusters go and the old one is freed, so later allocations reuse its cluster
        first (block/qcow2-cluster.c qcow2_grow_l1_table; measured, tests/test_disk.py)."""
        if new_size < self.virtual_size:
            raise ValueError("qcow2 images only grow here (Nova refuses to shrink a disk)")
        c = self.cluster_size
        n_clusters = -(-new_size // c)
        grow = n_clusters - self.n_clusters
        for name in ("allocated", "zeroed", "shared"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(grow, bool)]))
        self.data_host = np.concatenate([self.data_host, np.full(grow, -1, np.int64)])
        self.virtual_size, self.n_clusters = new_size, n_clusters
        l1_entries = -(-n_clusters // self.l2_entries)
        if l1_entries <= self.l1_entries:
            return
        more = l1_entries - self.l1_entries
        self.l2_allocated = np.concatenate([self.l2_allocated, np.zeros(more, bool)])
        self.l2_shared = np.concatenate([self.l2_shared, np.zeros(more, bool)])
        self.l2_host = np.concatenate([self.l2_host, np.full(more, -1, np.int64)])
        old = (self._l1_start, self._l1_clusters)
        self.l1_entries, self.l1_bytes = l1_entries, 8 * l1_entries
        self._l1_clusters = -(-self.l1_bytes // c)
        self._l1_start = self.file.move_l1(old, self._l1_clusters, self.l1_bytes)
        self.dirty_refblocks = True

    # -- layout -------------------------------------------------------------------------------
    @property
    def host_clusters(self) -> int:
        """Host clusters in use (metadata and data)."""
        return self.file.used

    def _alloc_host_cluster(self, io: HostIO, n: int = 1) -> int:
        """Allocate ``n`` contiguous host clusters; return the first one's index."""
        if not self.refblock_cached:
            # the refcount block is read into QEMU's refcount cache on first allocation
            self.refblock_cached = True
            io.read_bytes += self._meta_bytes(self._refblock_host(self._end_block()))
            io.read_ops += 1
        self.dirty_refblocks = True
        return self.file.take(n)

    def _alloc_host_cluster_at(self, io: HostIO, pos: int, n: int) -> int:
        """Up to ``n`` host clusters right at ``pos``; return how many were free there."""
        if not self.refblock_cached:
            self.refblock_cached = True
            io.read_bytes += self._meta_bytes(self._refblock_host(self._end_block()))
            io.read_ops += 1
        got = self.file.take_at(pos, n)
        if got:
            self.dirty_refblocks = True
        return got

    @property
    def data_clusters(self) -> int:
        return self.n_data

    @property
    def file_bytes(self) -> int:
        """st_size: the end of the last cluster written (the L1 table is written only in part)."""
        return self.file.size

    def _runs(self) -> list[int]:
        """Lengths in bytes of the file's runs of written blocks (rounded to whole blocks)."""
        return [n * FS_BLOCK for n in block_runs(self.file.written())]

    @property
    def allocated_data_bytes(self) -> int:
        """Blocks the file's own bytes occupy: whole clusters written, the L1 table's part."""
        return sum(self._runs())

    @property
    def allocated_bytes(self) -> int:
        """st_blocks * 512: on ext4 the data blocks plus the extent tree (``fs``), on XFS the
        pieces QEMU's extent size hint makes it allocate (``xfs``)."""
        if self.host_fs == "xfs":
            return xfs_hinted_bytes(self.created_bytes, self.host_written(), self.requests)
        runs = self._runs()
        return sum(runs) + extent_tree_bytes(r // FS_BLOCK for r in runs)

    def host_written(self) -> list[tuple[int, int]]:
        """Byte ranges of the file that hold written bytes, in order."""
        return self.file.written()

    @property
    def created_bytes(self) -> int:
        """The file's size as ``qemu-img create`` left it: header, refcount table and block,
        the L1 table's bytes."""
        return 3 * self.cluster_size + self.l1_bytes

    # -- guest I/O ----------------------------------------------------------------------------
    def _backing_bytes(self, start: int, end: int) -> int:
        return self.backing.data_in(start, end) if self.backing is not None else 0

    def write(self, offset: int, length: int) -> HostIO:
        """Apply one guest write; return the host I/O it causes (COW and metadata included).

        Like ``qcow2_alloc_host_offset``, each run of unallocated clusters under one L2 table
        gets its L2 table first, then one contiguous range of host clusters."""
        io = HostIO()
        c = self.cluster_size
        end = offset + length
        g, last = offset // c, (end - 1) // c
        expected = -1  # where QEMU tries to put the next new cluster to keep the range whole
        while g <= last:
            self._touch_l2(g, io)
            if self.allocated[g] and not self.shared[g]:
                ps, pe = max(offset, g * c), min(end, (g + 1) * c)
                io.write_bytes += pe - ps
                io.write_ops += 1
                if self.holes and g in self.holes:
                    self._fill(g, ps, pe)
                expected = int(self.data_host[g]) + 1
                g += 1
                continue
            l2 = g // self.l2_entries
            stop = min(last + 1, (l2 + 1) * self.l2_entries)
            h = g + 1
            while h < stop and not (self.allocated[h] and not self.shared[h]):
                h += 1
            self._ensure_l2(l2, io)
            if expected >= 0:  # handle_alloc after a contiguous piece: qcow2_alloc_clusters_at
                n = self._alloc_host_cluster_at(io, expected, h - g)
                h, expected = g + n, (expected + n if n else -1)
                if n == 0:
                    continue
                first = expected - n
            else:
                first = self._alloc_host_cluster(io, h - g)
                expected = first + h - g
            self.data_host[g:h] = np.arange(first, first + h - g)
            if h - g > 1 and self.host_fs == "xfs":  # one write of whole clusters, COW merged
                self.requests.append((first * c, (first + h - g) * c))
            if self.below:  # the COW regions are looked up down the chain
                if offset > g * c and not self.zeroed[g] and not self.shared[g]:
                    self._look_below(g, io)
                if end < h * c and not self.zeroed[h - 1] and not self.shared[h - 1]:
                    self._look_below(h - 1, io)
            copy = self._cow_from_backing(max(offset, g * c), min(end, h * c), g, h)
            self._link(io)
            shared = [self._new_cluster(k, max(offset, k * c), min(end, (k + 1) * c), length,
                                        io, copy) for k in range(g, h)]
            if any(shared):  # the old clusters lose the reference the image held
                self._unref(io)
            g = h
        return io

    def _link(self, io: HostIO) -> None:
        """L2 entries are about to point at newly allocated clusters
        (``qcow2_alloc_cluster_link_l2``): the L2 cache must depend on the refcount cache, so
        if the refcount cache depends on the L2 cache, the dirty L2 tables are written first
        (``qcow2_cache_set_dependency``, block/qcow2-cache.c)."""
        if self.rc_on_l2:
            self.rc_on_l2 = False
            n = len(self.dirty_l2)
            self.dirty_l2.clear()
            io.write_bytes += n * (self.cluster_size if self.l2_cache_whole else FS_BLOCK)
            io.write_ops += n

    def _unref(self, io: HostIO, mark: bool = True) -> None:
        """A refcount is decreased (a shared cluster copied, an L2 table copied, a cluster
        discarded; ``update_refcount`` with a negative addend): the refcount cache must now
        depend on the L2 cache, so a dirty refcount block the L2 cache depended on is written
        first. A workload that alternates the two pays a metadata write at each turn:
        measured (s2b-ext4, internal snapshot, 614 random 20 KiB writes over shared and zero
        clusters), qemu-nbd wrote 46892032 bytes, 22 MB of them L2 tables and refcount
        blocks written 64 KiB at a time."""
        if not self.rc_on_l2:
            self.rc_on_l2 = True
            nbytes = self._refblocks_out()
            io.write_bytes += nbytes
            io.write_ops += nbytes // self.cluster_size
        self.dirty_refblocks = self.dirty_refblocks or mark

    def _cow_from_backing(self, ps: int, pe: int, g: int, h: int) -> bool:
        """Whether the run of new clusters ``[g, h)`` written in ``[ps, pe)`` copies from the
        backing file: QEMU allocates the run as one piece whose COW regions are the head of
        its first cluster and the tail of its last, and zeroes it instead when the backing
        chain holds neither (``is_zero_cow``; ``BaseData.allocated``)."""
        if self.backing is None:
            return False
        c = self.cluster_size
        return self.backing.allocated(g * c, ps) or self.backing.allocated(pe, h * c)

    def _new_cluster(self, g: int, ps: int, pe: int, length: int, io: HostIO,
                     copy: bool) -> bool:
        """Guest cluster ``g`` gets its host cluster: COW of what the write leaves out
        (``copy``: from the backing file, see ``_cow_from_backing``); returns whether it was
        a snapshot's cluster (its old copy loses a reference)."""
        c = self.cluster_size
        cs, ce = g * c, (g + 1) * c
        own_cow = bool(self.shared[g])  # a snapshot keeps the old cluster: copy from it
        self.shared[g] = False
        self.n_data += 0 if own_cow else 1
        self.allocated[g] = True
        self.dirty_l2.add(g // self.l2_entries)
        io.cow = True
        io.allocs += 1
        zero_cow = self.zeroed[g]  # a discarded cluster reads as zeros, not as the backing
        self.zeroed[g] = False
        old_holes = self.holes.pop(g, 0) if self.holes else 0  # a snapshot's cluster's
        if ps == cs and pe == ce:
            io.write_bytes += c
            io.write_ops += 1
        elif own_cow:
            head, tail = ps - cs, ce - pe
            merged = head and tail and length <= MERGE_READS_MAX
            if merged:
                io.read_bytes += c - _hole_bytes(old_holes, 0, c)
            else:
                io.read_bytes += head + tail - _hole_bytes(old_holes, 0, head) \
                    - _hole_bytes(old_holes, c - tail, c)
            io.read_ops += 1 if merged else int(head > 0) + int(tail > 0)
            io.write_bytes += c
            io.write_ops += 1
        elif copy and not zero_cow:
            head, tail = ps - cs, ce - pe
            if head and tail and length <= MERGE_READS_MAX:
                io.read_bytes += self._backing_bytes(cs, ce)
                io.read_ops += 1
            else:
                if head:
                    io.read_bytes += self._backing_bytes(cs, ps)
                    io.read_ops += 1
                if tail:
                    io.read_bytes += self._backing_bytes(pe, ce)
                    io.read_ops += 1
            io.write_bytes += c
            io.write_ops += 1
        else:
            io.write_bytes += pe - ps  # fallocate(ZERO_RANGE) moves no data
            io.write_ops += 2
            unwritten = ((1 << c // FS_BLOCK) - 1) & ~_block_mask(ps - cs, pe - cs)
            if unwritten:
                self.holes[g] = unwritten
        return own_cow

    def _fill(self, g: int, ps: int, pe: int) -> None:
        """Guest bytes ``[ps, pe)`` of cluster ``g`` written in place: the unwritten blocks
        they touch now hold data (a partial block is written whole, zeros around the bytes)."""
        cs = g * self.cluster_size
        left = self.holes[g] & ~_block_mask(ps - cs, pe - cs)
        if left:
            self.holes[g] = left
        else:
            del self.holes[g]

    def _ensure_l2(self, idx: int, io: HostIO) -> None:
        if self.l2_allocated[idx] and not self.l2_shared[idx]:
            return
        copied = bool(self.l2_shared[idx])
        if copied:  # a snapshot's table: the image gets its own copy
            self.l2_shared[idx] = False
        else:
            self.n_l2 += 1
        self.l2_allocated[idx] = True
        self.l2_host[idx] = self._alloc_host_cluster(io)
        self._cache_l2(idx, io)
        self.dirty_l2.add(idx)
        # l2_allocate flushes the L2 cache (refcounts first), then writes one L1 sector
        io.write_bytes += self._flush_bytes() + L1_SECTOR
        io.write_ops += 1
        if copied:  # then the old table loses the image's reference
            self._unref(io)

    def _flush_bytes(self) -> int:
        entry = self.cluster_size if self.l2_cache_whole else FS_BLOCK
        out = len(self.dirty_l2) * entry + self._refblocks_out()
        self.dirty_l2.clear()
        self.rc_on_l2 = False
        return out

    def write_zeroes(self, offset: int, length: int, unmap: bool) -> HostIO:
        """An all-zero write under ``detect-zeroes`` (``qcow2_co_pwrite_zeroes``): whole
        clusters become zero clusters (an allocated one keeps its host cluster unless
        ``unmap``, FACTS.md E20); a partial cluster is zeroed whole only if the rest of it
        already reads as zero (unallocated over a hole of the backing, or zero-flagged), else
        the zeros are written as data. Measured here, pinned in tests/test_oracle_discard.py."""
        io = HostIO()
        c = self.cluster_size
        end = offset + length
        for g in range(offset // c, (end - 1) // c + 1):
            cs, ce = g * c, (g + 1) * c
            ps, pe = max(offset, cs), min(end, ce)
            if ps == cs and pe == ce:
                if self.allocated[g] and unmap:
                    self._discard_cluster(g, io)
                elif not self.allocated[g]:
                    self._zero_flag(g, io)
                continue
            rest_zero = not self.allocated[g] and (
                self.zeroed[g] or self._backing_bytes(cs, ps) + self._backing_bytes(pe, ce) == 0)
            if rest_zero:
                self._zero_flag(g, io)
            else:
                add_io(io, self.write(ps, pe - ps))
        return io

    def _zero_flag(self, g: int, io: HostIO) -> None:
        l2 = g // self.l2_entries
        self._ensure_l2(l2, io)
        self.zeroed[g] = self.any_zeroed = True
        self.dirty_l2.add(l2)

    def discard(self, offset: int, length: int) -> HostIO:
        """A guest discard reaching QEMU (``discard=unmap``): whole clusters only (the parts of
        partly covered clusters are dropped); each loses its host cluster, which is punched out
        of the file and reused by later allocations, and over a backing file becomes a zero
        cluster so the backing data stays hidden (``qcow2_cluster_discard``; FACTS.md E12)."""
        io = HostIO()
        c = self.cluster_size
        last = -2  # the host cluster freed last: an adjacent one extends the same hole
        for g in range(-(-offset // c), (offset + length) // c):
            host = int(self.data_host[g]) // c if self.allocated[g] else -2
            self._discard_cluster(g, io)
            if host >= 0:
                io.punches += host != last + 1
                last = host
        return io

    def _discard_cluster(self, g: int, io: HostIO) -> None:
        """``discard_in_l2_slice``: the L2 table first (loaded, or allocated when a zero
        flag needs one), the entry changed and the table dirtied, then the refcount
        decreased."""
        l2 = g // self.l2_entries
        if self.l2_allocated[l2]:
            self._touch_l2(g, io)
        if self.backing is not None:
            self._ensure_l2(l2, io)  # the zero flag needs an L2 entry
            self.zeroed[g] = True
            self.any_zeroed = True
        if self.l2_allocated[l2]:
            self.dirty_l2.add(l2)
        if self.allocated[g]:
            block = int(self.data_host[g]) // self.file.covers
            self._free_data(g)
            self._unref(io, mark=False)
            self._refblock_for_free(block, io)

    def _refblock_for_free(self, block: int, io: HostIO) -> None:
        """``update_refcount`` loads the refcount block of a freed cluster into the refcount
        cache (4 clusters, ``MIN_REFCOUNT_CACHE_SIZE``); a miss reads it and writes back the
        least recently used block if dirty, after the L2 tables it depends on. Measured
        (s5c-trim2 c4k-4k: 4 KiB clusters, 2048 random 4 KiB discards over 64 MiB of data
        spread over eight refcount blocks): qemu-nbd read 4358144 and wrote 12386304 bytes."""
        miss = block not in self.rc_cache
        out = self.rc_cache.use(block)
        if miss and not (self.refblock_cached and block == self._end_block()):
            io.read_bytes += self._meta_bytes(self._refblock_host(block))
            io.read_ops += 1
        if out is not None and out in self.rc_dirty:
            self.rc_dirty.discard(out)
            self._link(io)  # the L2 tables go first
            self.rc_on_l2 = True
            io.write_bytes += self.cluster_size
            io.write_ops += 1
        self.rc_dirty.add(block)

    def _end_block(self) -> int:
        """The refcount block that new clusters at the file's end are counted in."""
        return max(self.file.end - 1, 0) // self.file.covers

    def _refblocks_out(self) -> int:
        """Bytes of the dirty refcount blocks, now written (a flush of the refcount cache)."""
        blocks = self.rc_dirty | ({self._end_block()} if self.dirty_refblocks else set())
        self.rc_dirty = set()
        self.dirty_refblocks = False
        return len(blocks) * self.cluster_size

    def _free_data(self, g: int) -> None:
        self.holes.pop(g, None)
        self.file.free(int(self.data_host[g]))
        self.allocated[g] = False
        self.data_host[g] = -1
        self.n_data -= 1

    def flush(self) -> HostIO:
        """Write back dirty metadata, as QEMU does on a flush (fio's end, qemu-nbd's exit)."""
        nbytes = self._flush_bytes()
        return HostIO(write_bytes=nbytes, write_ops=1 if nbytes else 0)

    def read(self, offset: int, length: int) -> HostIO:
        io = HostIO()
        if not self.prealloc_checked:
            self._detect_prealloc(io)
        c = self.cluster_size
        end = offset + length
        for g in range(offset // c, (end - 1) // c + 1):
            ps, pe = max(offset, g * c), min(end, (g + 1) * c)
            self._touch_l2(g, io)
            if self.allocated[g]:
                io.read_bytes += pe - ps
                if self.holes and g in self.holes:  # unwritten blocks: zeros, no I/O
                    io.read_bytes -= _hole_bytes(self.holes[g], ps - g * c, pe - g * c)
            elif not self.zeroed[g]:
                if self.below:
                    self._look_below(g, io)
                io.read_bytes += self._backing_bytes(ps, pe)
                io.backing_reads += 1
            io.read_ops += 1
        return io


def _block_mask(start: int, end: int) -> int:
    """Bitmask of the 4 KiB blocks that bytes ``[start, end)`` of a cluster touch."""
    b0, b1 = start // FS_BLOCK, -(-end // FS_BLOCK)
    return ((1 << b1) - 1) ^ ((1 << b0) - 1)


def _hole_bytes(holes: int, start: int, end: int) -> int:
    """Bytes of ``[start, end)`` (offsets in a cluster) that fall in the unwritten blocks
    ``holes`` (a ``Qcow2Image.holes`` bitmask)."""
    if end <= start:
        return 0
    b0, b1 = start // FS_BLOCK, (end - 1) // FS_BLOCK
    m = holes & _block_mask(start, end)
    if not m:
        return 0
    n = m.bit_count() * FS_BLOCK
    if m >> b0 & 1:
        n -= start - b0 * FS_BLOCK
    if m >> b1 & 1:
        n -= (b1 + 1) * FS_BLOCK - end
    return n


@dataclass
class RawImage:
    """A raw file (Nova's Flat backend or a cached base): sparse, allocated per filesystem block.

    One QEMU made on XFS (``qemu-img convert -O raw``, Nova's raw base in ``_base``) has its
    1 MiB extent size hint (``xfs_hint``): each write into a hole allocates whole hint-sized
    pieces (``sim.storage.xfs``), recorded as it writes (``requests``, in increasing order,
    as convert writes). A file written by other tools (``cp``, ``rsync``, a download) has
    none and is allocated per block, as on ext4."""

    virtual_size: int
    data: BaseData | None = None
    unmap: bool = False  # guest discards reach the file (discard=unmap)
    zero_writes: bool = False
    zero_unmap: bool = False
    #: the filesystem the file is on: ext4 counts its extent tree, XFS its extent btree
    host_fs: HostFs = "ext4"
    #: the extent size hint QEMU gave the file on XFS (``XFS_EXTSIZE_HINT``); 0: none
    xfs_hint: int = 0
    blocks: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        nblocks = -(-self.virtual_size // FS_BLOCK)
        self.blocks = np.zeros(nblocks, dtype=bool)
        #: with a hint, the byte ranges of its writes, one ``pwrite`` each, in order
        self.requests: list[tuple[int, int]] = []
        if self.data is not None:
            for s, e in zip(self.data._starts, self.data._ends, strict=True):
                self.blocks[int(s) // FS_BLOCK:-(-int(e) // FS_BLOCK)] = True

    @property
    def file_bytes(self) -> int:
        return self.virtual_size

    @property
    def allocated_bytes(self) -> int:
        """st_blocks * 512: the blocks written and the filesystem's extent tree (ext4's, or
        XFS's btree, none for a file of up to 21 runs of 8 GiB at most); with an XFS hint, the
        pieces it allocated (``created`` 0: a raw create sets the file's size, then writes
        its first block as any other write, :func:`sim.storage.images.converted_raw`)."""
        b = self.blocks.astype(np.int8)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], b, [0]))))
        if self.xfs_hint:
            written = [(int(s) * FS_BLOCK, int(e) * FS_BLOCK)
                       for s, e in zip(edges[::2], edges[1::2], strict=True)]
            return xfs_hinted_bytes(0, written, self.requests, self.xfs_hint,
                                    self.virtual_size)
        runs = (edges[1::2] - edges[::2]).tolist()
        if self.host_fs == "xfs":  # an extent record per run (8 GiB at most: 2^21 blocks)
            records = sum(-(-n // XFS_MAX_EXTENT_BLOCKS) for n in runs)
            return (int(self.blocks.sum()) + bmbt_blocks(records)) * FS_BLOCK
        return int(self.blocks.sum()) * FS_BLOCK + extent_tree_bytes(runs)

    @property
    def allocated_data_bytes(self) -> int:
        """The blocks written, without the filesystem's extent tree."""
        return int(self.blocks.sum()) * FS_BLOCK

    @property
    def data_clusters(self) -> float:
        return float("nan")  # a raw file has no clusters: absent, never zero

    def write(self, offset: int, length: int) -> HostIO:
        self.blocks[offset // FS_BLOCK:-(-(offset + length) // FS_BLOCK)] = True
        if self.xfs_hint:
            self.requests.append((offset, offset + length))
        return HostIO(write_bytes=length, write_ops=1)

    def discard(self, offset: int, length: int) -> HostIO:
        """QEMU's raw driver punches the range out of the file: whole blocks are freed (a
        punch, :attr:`HostIO.punches`, where any of them held data)."""
        whole = slice(-(-offset // FS_BLOCK), (offset + length) // FS_BLOCK)
        punched = bool(self.blocks[whole].any())
        self.blocks[whole] = False
        return HostIO(punches=int(punched))

    def read(self, offset: int, length: int) -> HostIO:
        b0, b1 = offset // FS_BLOCK, -(-(offset + length) // FS_BLOCK)
        mapped = int(self.blocks[b0:b1].sum())
        return HostIO(read_bytes=min(length, mapped * FS_BLOCK), read_ops=1)

    def flush(self) -> HostIO:
        return HostIO()
