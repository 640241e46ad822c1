"""Nova's lifecycle in the model: hosts, image caches, instance directories, over time.

The world holds, per host, the image cache (``_base``: bases with the mtime Nova ages them by),
the instance directories (a chain of disk files, the flavor's ``disk.local`` and ``disk.swap``
overlays, and ``disk.info``) and the ``_resize`` copies a cold migration leaves behind until
it is confirmed; and the snapshots uploaded to Glance. The
timeline's operations (``cowbench.lifecycle.expand_timeline``) are applied in order; the cache
manager runs its pass every ``manager_interval_s``. Each operation is an entity with
``transfer_bytes`` and ``duration_s``; every host, cache and VM is sampled (``allocated_bytes``,
``file_bytes``) after each operation and every ``sample_interval_s`` (FACTS.md section 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cowbench.nova.instructions import Base
from cowbench.records import Recorder
from cowbench.scenario import VM, Image, Scenario
from sim.storage.disk import BaseData, HostIO, Qcow2Image, RawImage, SparseMeta
from sim.storage.fs import FS_BLOCK, extent_tree_bytes
from sim.storage.images import backing_data, base_data, cache_file, converted_raw, fetch_bytes
from sim.storage.qcow2_ext import SUBCLUSTERS, Qcow2ExtImage
from sim.storage.rbd import RbdClone
from sim.storage.reflink import ReflinkCopy
from sim.storage.snapshot import table_bytes
from sim.storage.strategies import CONVERT_CHUNK, ChainDisk, root_disk
from sim.storage.xfs import XFS_MAX_EXTENT_BLOCKS, HostFs, bmbt_blocks, xfs_buffered_unwritten

SNAPSHOT_CLUSTER = 65536  # qemu-img convert -O qcow2: QEMU's default cluster size
Disk = Qcow2Image | RawImage
#: one file of a VM's disk: a qcow2 layer, a raw file, a reflink copy, an RBD clone
LayerImage = Qcow2Image | RawImage | RbdClone | ReflinkCopy


@dataclass
class SparseCopy:
    """What an ``rsync --sparse`` copy of a layer allocated: the host 4 KiB blocks holding a
    non-zero byte (sorted), the file's blocks then (``end``), the guest blocks with data below
    the layer that the copy was made with, and the image's mapping then (its allocated
    clusters, with extended_l2 their subclusters, and its host clusters in use).

    Later writes allocate what they touch: a write into a cluster the copy left partly holes
    (the rest of a guest's 4 KiB write in a 64 KiB cluster was zeros) fills the blocks it
    writes; a changed L2 table is written back whole from QEMU's L2 cache (its entries are a
    cluster, ``l2_cache_whole``), and the first refcount block whole when clusters are
    allocated under it, filling the holes the copy left in them; what is written past the
    copy's end is the image's own growth (whole clusters, or with extended_l2 the subclusters
    written)."""

    blocks: np.ndarray
    end: int
    below: np.ndarray | None
    allocated: np.ndarray | None = None
    subclusters: np.ndarray | None = None
    used: int = 0
    #: on XFS, the blocks the copy's writes left allocated but unwritten (speculative
    #: preallocation inside the file, ``sim.storage.xfs.xfs_buffered_unwritten``): counted
    #: in its allocation, zeros to a read; None on ext4, which allocates the blocks written
    unwritten: np.ndarray | None = None

    def allocated_bytes(self, layer: Layer) -> int:
        img = layer.image
        now = nonzero_blocks(layer, self.below)
        # a raw file's blocks past the copy's end (a resize since) are the ones written there;
        # a qcow2 file's growth is counted below, by what QEMU wrote
        parts = [self.blocks, now if isinstance(img, RawImage) else now[now < self.end]]
        if isinstance(img, Qcow2Image):
            parts.append(self._rewritten(img))
        blocks = np.unique(np.concatenate(parts))
        if self.unwritten is None:
            inside = int(blocks.size) * FS_BLOCK + extent_tree_bytes(_runs_of(blocks))
        else:  # XFS: the unwritten blocks too, an extent record per run of either kind
            left = np.setdiff1d(self.unwritten, blocks)
            every = np.union1d(blocks, left)
            records = len(_runs_of(blocks)) + len(_runs_of(left))
            inside = (int(every.size) + bmbt_blocks(records)) * FS_BLOCK
        if isinstance(img, Qcow2ExtImage):  # past the copy's end: the subclusters written
            return inside + int(img._block_map()[self.end:].sum()) * FS_BLOCK
        if isinstance(img, Qcow2Image):  # past the copy's end: the clusters written whole
            return inside + sum(max(0, -(-b // FS_BLOCK) - max(a // FS_BLOCK, self.end))
                                for a, b in img.file.written()) * FS_BLOCK
        return inside

    def _rewritten(self, img: Qcow2Image) -> np.ndarray:
        """Blocks inside the copy of the metadata clusters written back whole since."""
        if not img.l2_cache_whole or self.allocated is None:
            return np.zeros(0, dtype=np.int64)
        per = img.cluster_size // FS_BLOCK
        n = self.allocated.shape[0]
        changed = np.flatnonzero(img.allocated[:n] != self.allocated)
        if self.subclusters is not None and isinstance(img, Qcow2ExtImage):
            changed = np.union1d(changed, np.flatnonzero(img.sc_bits[:n] != self.subclusters))
        grown = np.flatnonzero(img.allocated[n:]) + n  # after a resize
        tables = np.unique(np.concatenate([changed, grown]) // img.l2_entries)
        hosts = img.l2_host[tables]
        out = [(h * per + np.arange(per)) for h in hosts.tolist() if 0 <= h * per < self.end]
        if img.file.used > self.used and 3 * per <= self.end:  # refcount block 0, cluster 2
            out.append(2 * per + np.arange(per))
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Kept:
    """What an internal snapshot keeps inside the file (``qemu-img snapshot -c``): the copy of
    the L1 table (its first cluster), the L2 tables and data clusters it maps, the guest blocks
    written by then, and the snapshot table written then (first cluster, bytes). Later writes
    copy a shared cluster before changing it, so these keep their content; a zero-skipping
    copy (rsync --sparse) reads them as they are."""

    l1: int
    l2_allocated: np.ndarray
    l2_host: np.ndarray
    allocated: np.ndarray
    data_host: np.ndarray
    written: np.ndarray
    table: tuple[int, int]
    subclusters: np.ndarray | None  # with extended_l2: each cluster's allocated subclusters

    @classmethod
    def of(cls, layer: Layer, l1: int) -> Kept:
        img = layer.image
        assert isinstance(img, Qcow2Image) and img.snapshot_table is not None
        sc = img.sc_bits.copy() if isinstance(img, Qcow2ExtImage) else None
        return cls(l1, img.l2_allocated.copy(), img.l2_host.copy(), img.allocated.copy(),
                   img.data_host.copy(), layer.written.copy(),
                   (img.snapshot_table[0], table_bytes(img.snapshots)), sc)


@dataclass
class Layer:
    """One file of a VM's disk chain, and which 4 KiB guest blocks the guest wrote into it."""

    name: str
    image: LayerImage
    written: np.ndarray
    filled: bool = False  # copied by a transport that writes holes out (scp)
    sparse_at_copy: SparseCopy | None = None  # copied by rsync --sparse
    kept: list[Kept] = field(default_factory=list)  # its internal snapshots, taken in order
    #: guest blocks holding data since the file was made (a base converted into it), if any
    data: np.ndarray | None = None
    #: the filesystem a copy (``filled``) was written on: its extent metadata (ext4's tree,
    #: XFS's btree: none for a dense file up to 21 x 8 GiB)
    fs: HostFs = "ext4"

    @classmethod
    def new(cls, name: str, image: LayerImage, size: int) -> Layer:
        return cls(name, image, np.zeros(-(-size // FS_BLOCK), dtype=bool))

    @property
    def file_bytes(self) -> int:
        return self.image.file_bytes

    @property
    def allocated_bytes(self) -> int:
        img = self.image
        if not isinstance(img, Qcow2Image | RawImage):  # never copied (check_timeline)
            return img.allocated_bytes
        if self.sparse_at_copy is not None:
            return self.sparse_at_copy.allocated_bytes(self)
        if not self.filled:
            return img.allocated_bytes
        size = -(-img.file_bytes // FS_BLOCK) * FS_BLOCK
        data = size if isinstance(img, RawImage) else \
            max(img.allocated_data_bytes, size) if img.n_data or img.n_l2 else size
        if self.fs == "xfs":  # one record per 8 GiB
            return data + bmbt_blocks(-(-data // FS_BLOCK // XFS_MAX_EXTENT_BLOCKS)) * FS_BLOCK
        return data + extent_tree_bytes([data // FS_BLOCK])

    def write(self, offset: int, length: int) -> HostIO:
        self.written[offset // FS_BLOCK:-(-(offset + length) // FS_BLOCK)] = True
        return self.image.write(offset, length)

    def read(self, offset: int, length: int) -> HostIO:
        return self.image.read(offset, length)

    def flush(self) -> HostIO:
        return self.image.flush()

    @property
    def data_clusters(self) -> float:
        return self.image.data_clusters


@dataclass
class Instance:
    vm: VM
    image: str | None  # the base in _base it is backed by; None once flattened
    layers: list[Layer]
    root_size: int
    remote: bool = False  # an RBD clone: in Ceph, not in the host's files
    #: its local disks beside the root disk, each an overlay over its base in ``_base``
    #: (``disk.local``, ``disk.swap``; the guest's workloads run on the root disk only)
    local: dict[Base, Layer] = field(default_factory=dict)

    @property
    def backed(self) -> bool:
        """Does the bottom layer name a base in ``_base`` as its backing file?"""
        bottom = self.layers[0].image
        return isinstance(bottom, Qcow2Image) and bottom.backing is not None \
            and self.image is not None

    @property
    def top(self) -> Layer:
        return self.layers[-1]

    def files(self) -> tuple[int, int]:
        """The instance's disk files, the root disk's chain and the local disks: (allocated,
        apparent) bytes; disk.info is not counted."""
        every = [*self.layers, *self.local.values()]
        return sum(x.allocated_bytes for x in every), sum(x.file_bytes for x in every)


@dataclass(frozen=True)
class LocalBaseFile:
    """A flavor's local base in ``_base`` (``ephemeral_<GiB>_ext4``, ``swap_<MiB>``): a sparse
    raw file of the disk's size holding what mkfs or mkswap wrote, allocated as its host's
    filesystem does (``sim.storage.xfs.local_base_bytes``)."""

    allocated_bytes: int
    file_bytes: int


@dataclass
class CacheEntry:
    file: Disk | LocalBaseFile
    mtime: float
    resized: bool = False  # a resized copy ``<sha1>_<size>`` (Nova before Dec 2012)


@dataclass
class HostState:
    caches: dict[Base, CacheEntry] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    resizing: dict[str, Instance] = field(default_factory=dict)


def content_blocks(scenario: Scenario, inst: Instance) -> np.ndarray:
    """4 KiB guest blocks holding non-zero data through the whole chain (base included)."""
    nblocks = -(-inst.root_size // FS_BLOCK)
    blocks = np.zeros(nblocks, dtype=bool)
    if inst.image is not None:
        for off, n in scenario.image(inst.image).data_extents():
            blocks[off // FS_BLOCK:min(nblocks, -(-(off + n) // FS_BLOCK))] = True
    for layer in inst.layers:
        w = layer.written[:nblocks]
        blocks[:w.shape[0]] |= w
    return blocks


def flattened(scenario: Scenario, inst: Instance, fmt: str, fs: HostFs = "ext4") -> Disk:
    """What ``qemu-img convert`` of the chain writes: zero runs of 4 KiB and more skipped,
    into a file on ``fs`` (a flattened copy on the destination host; a snapshot for Glance,
    on the Glance store's: ``cowbench.diskfs.glance_filesystem``). Convert creates the file,
    so on XFS it has QEMU's extent size hint.

    Into raw, the skipped runs are holes of the file, its first 4 KiB allocated by create
    whatever it holds (:func:`sim.storage.images.converted_raw`: measured on XFS, a snapshot
    holding data in four places under 1 MiB each, 4,194,304 bytes). Into a new qcow2 file, each
    run of non-zero 4 KiB blocks is written in requests of up to 2 MiB, in order: the clusters
    it touches are allocated (zeroed with fallocate, as a write into an image with no backing
    file is), so a cluster the guest wrote 4 KiB of is allocated whole but holds one written
    block, and reading its other blocks later moves no host bytes (``Qcow2Image.holes``;
    measured: FIEMAP of the copy, and qemu-nbd's /proc/PID/io, tests/test_hostbytes_chain.py).

    The copy is closed when convert exits, its L2 tables and refcount blocks written: the
    first session on it has nothing left to write back (a read-only one writes nothing:
    measured, 0 bytes, where leaving them dirty predicted 131072)."""
    blocks = content_blocks(scenario, inst)
    if fmt == "raw":
        runs = [(s, min(n, inst.root_size - s)) for s, n in _runs(blocks)]
        return converted_raw(BaseData(inst.root_size, runs), fs)
    q = Qcow2Image(inst.root_size, SNAPSHOT_CLUSTER, host_fs=fs)  # convert's create: hinted
    for start, length in _runs(blocks):
        end = min(start + length, inst.root_size)
        for off in range(start, end, CONVERT_CHUNK):
            q.write(off, min(CONVERT_CHUNK, end - off))
    q.flush()  # convert closes the image: its metadata is on disk before any qemu-nbd opens it
    return q


def chain_data(scenario: Scenario, inst: Instance) -> BaseData:
    """What a new top layer finds below it (an external snapshot): per 4 KiB guest block,
    what the chain holds there on disk, and where its qcow2 layers map data.

    Each layer hides what is under it where it maps a cluster (with extended_l2, a
    subcluster) or flags one zero, and holds on disk only the blocks of its clusters its file
    holds (``_layer_blocks``): a cluster zeroed with fallocate keeps unwritten blocks
    (``Qcow2Image.holes``) that read as zeros with no host I/O, so a copy-on-write of it
    reads only its written blocks -- yet it is data to QEMU's block status, so a first write
    beside them still copies the whole cluster (``BaseData`` ``mapped``). Measured
    (tests/test_hostbytes_chain.py, qemu-nbd's /proc/PID/io): 4 KiB writes past the raw
    base's end, then an external snapshot and the same writes again, read 4 KiB per cluster
    where counting whole clusters read 64 KiB (the user-test's +89.5%). Below the bottom
    layer, its backing file: a raw one counts as allocated up to its own size (a resized
    base's copy: the root size it was made for), the content of the base (``backing_data``)."""
    nblocks = -(-inst.root_size // FS_BLOCK)
    bottom = inst.layers[0].image
    base = bottom.backing if isinstance(bottom, Qcow2Image) and inst.image is not None \
        else None
    held = base.held_blocks(nblocks) if base is not None else np.zeros(nblocks, dtype=bool)
    mapped = np.zeros(nblocks, dtype=bool)
    for layer in inst.layers:
        hides, holds, maps = _layer_blocks(layer, nblocks)
        held = np.where(hides, holds, held)
        mapped = np.where(hides, maps, mapped)
    raw = base.raw_size if base is not None else 0
    if isinstance(bottom, RawImage):
        raw = bottom.virtual_size
    return BaseData(inst.root_size, _runs(held), raw_size=raw, mapped=_runs(mapped))


def _layer_blocks(layer: Layer, nblocks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per guest 4 KiB block of one layer: does it answer a lookup there (it maps data or a
    zero flag), does its file hold the block on disk, and is it data to block status."""
    img = layer.image
    hides = np.zeros(nblocks, dtype=bool)
    if isinstance(img, RawImage):
        n = min(nblocks, img.blocks.shape[0])
        hides[:n] = True
        holds = hides.copy()
        holds[:n] = img.blocks[:n]
        return hides, holds, hides.copy()
    if not isinstance(img, Qcow2Image) or img.cluster_size < FS_BLOCK:
        return hides, hides.copy(), hides.copy()
    per = img.cluster_size // FS_BLOCK
    n = min(nblocks, img.n_clusters * per)
    maps = np.zeros(nblocks, dtype=bool)
    if isinstance(img, Qcow2ExtImage):  # a cluster maps only its allocated subclusters
        bits = img.sc_bits.astype(np.int64)
        sub = (bits[:, None] >> np.arange(SUBCLUSTERS)) & 1 > 0
        maps[:n] = _sub_to_blocks(sub, img.sc_size, per)[:n]
    else:
        maps[:n] = np.repeat(img.allocated, per)[:n]
    holds = maps.copy()
    for g, unwritten in img.holes.items():  # fallocate-zeroed blocks never written since
        for j in range(per):
            if unwritten >> j & 1 and g * per + j < nblocks:
                holds[g * per + j] = False
    if layer.sparse_at_copy is not None:
        holds &= _kept_by_copy(layer, nblocks, per)
    hides[:n] = maps[:n] | np.repeat(img.zeroed, per)[:n]
    return hides, holds, maps


def _sub_to_blocks(sub: np.ndarray, sc_size: int, per: int) -> np.ndarray:
    """Subcluster bits (clusters x 32) as guest 4 KiB blocks: a block is mapped when any
    subcluster in it is."""
    if sc_size >= FS_BLOCK:
        return np.repeat(sub, sc_size // FS_BLOCK, axis=1).reshape(-1)
    k = FS_BLOCK // sc_size
    return sub.reshape(sub.shape[0], per, k).any(axis=2).reshape(-1)


def _kept_by_copy(layer: Layer, nblocks: int, per: int) -> np.ndarray:
    """Guest blocks whose host block an ``rsync --sparse`` copy of the layer kept on disk (a
    non-zero block then), or written since (a cluster allocated past the copy's end, or the
    guest's bytes written in place)."""
    img = layer.image
    sp = layer.sparse_at_copy
    assert isinstance(img, Qcow2Image) and sp is not None
    out = layer.written[:nblocks].copy()
    out.resize(nblocks, refcheck=False)
    guests = np.flatnonzero(img.allocated)
    host = img.data_host[guests]
    blocks = (guests[:, None] * per + np.arange(per)).reshape(-1)
    hb = (host[:, None] * per + np.arange(per)).reshape(-1)
    keep = (hb >= sp.end) | np.isin(hb, sp.blocks)
    inside = blocks < nblocks
    out[blocks[inside]] |= keep[inside]
    return out


def _runs(blocks: np.ndarray) -> list[tuple[int, int]]:
    b = blocks.astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], b, [0]))))
    return [(int(s) * FS_BLOCK, int(e - s) * FS_BLOCK) for s, e in zip(edges[::2], edges[1::2],
                                                                       strict=True)]


def new_layers(scenario: Scenario, vm: VM, size: int, fs: HostFs) -> list[Layer]:
    """The files of a new root disk made by the VM's strategy, bottom first (a snapshot
    chain's lower overlays are ``disk.chain-<k>``, as ``real.storage.strategies`` names them),
    its files allocated as ``fs`` allocates them (``cowbench.diskfs``)."""
    base = backing_data(scenario.image(vm.image), scenario.nova.force_raw_images)
    disk = root_disk(size, scenario.strategy_of(vm), base, fs)
    if isinstance(disk, ChainDisk):
        return [*(Layer.new(f"disk.chain-{k}", img, size) for k, img in enumerate(disk.lower, 1)),
                Layer.new("disk", disk.top, size)]
    layer = Layer.new("disk", disk, size)
    if isinstance(disk, Qcow2Image) and disk.snapshots and disk.backing is None:
        # the internal_snapshot strategy's golden image: the base converted in, then
        # snapshotted (its snapshot kept as a timeline's are, for a zero-skipping copy)
        layer.data = base.blocks(layer.written.shape[0])
        layer.kept = [Kept.of(layer, l1) for l1 in disk.snapshot_l1s]
    return [layer]


def run_disk(inst: Instance, unmap: bool) -> ChainDisk | LayerImage:
    """What a workload run writes to: the top file, seen through its chain of qcow2 layers
    (the I/O model charges a chain by its depth); ``unmap``: the drive's discard option."""
    images = [x.image for x in inst.layers]
    disk: ChainDisk | LayerImage = inst.top.image
    if len(images) > 1 and all(isinstance(i, Qcow2Image) for i in images):
        disk = ChainDisk(images[-1], images[:-1])  # type: ignore[arg-type]
    disk.unmap = unmap
    return disk


def fetched(scenario: Scenario, image: Image, fs: HostFs) -> tuple[Disk, int]:
    """The cached base on a host whose files are on ``fs`` and the bytes fetched from Glance
    for it (``sim.storage.images``: the fleet's cache entries are the same two figures)."""
    return cache_file(image, scenario.nova.force_raw_images, fs), fetch_bytes(image)


def resized_copy(image: Image, size: int, fs: HostFs = "ext4") -> RawImage:
    """``_base/<sha1>_<size>``: a sparse copy of the raw base grown to ``size``, by cp (no
    extent size hint on XFS), on a host whose files are on ``fs``."""
    return RawImage(size, base_data(image), host_fs=fs)


def transfer_time(nbytes: int, bandwidth: int) -> float:
    return nbytes / bandwidth if bandwidth else math.nan


def record_files(rec: Recorder, entity: str, alloc: int, size: int, t: float | None) -> None:
    rec.add(entity, "allocated_bytes", alloc, t)
    rec.add(entity, "file_bytes", size, t)


def nonzero_blocks(layer: Layer, below: np.ndarray | None = None) -> np.ndarray:
    """Sorted host 4 KiB block numbers of the layer's file that hold a non-zero byte: what a
    zero-skipping copy (``rsync --sparse``) allocates. qcow2 metadata counts only where it has
    entries: the header, the refcount table's and blocks' used entries, the L1 entries of
    allocated L2 tables, each L2 table's entries; data clusters where the guest wrote or the
    copy-on-write brought base data (FACTS.md 2.1; measured: 39 blocks of a 904-block overlay);
    and the same for each internal snapshot's L1 copy, tables and clusters, as they were when
    it was taken, with the snapshot table. ``below``: the 4 KiB guest blocks holding data
    below the layer (default: what its backing says; a chain's upper layer is given the
    truth, :func:`content_below`)."""
    img = layer.image
    assert isinstance(img, Qcow2Image | RawImage), "check_timeline: no such disk migrates"
    if isinstance(img, RawImage):
        return np.flatnonzero(img.blocks & _guest_content(layer, img.blocks.shape[0], below))
    if len(layer.kept) != len(img.snapshots):
        # snapshots taken when the disk was made (the internal_snapshot strategy's golden
        # image) are not kept one by one: count every written block of the file (an upper
        # bound: rsync may punch zeros inside them)
        return np.concatenate([np.arange(a // FS_BLOCK, -(-b // FS_BLOCK))
                               for a, b in img.file.written()]).astype(np.int64)
    c = img.cluster_size
    per = c // FS_BLOCK
    out: list[int] = [0, per]  # header block, first block of the refcount table
    refs = img.refblock_covers
    for k in range(img.file.n_refblocks):
        used = min(refs, img.file.end - k * refs)
        if k == 0:
            out += [2 * per + b for b in range(-(-used * img.refcount_bits // 8 // FS_BLOCK))]
    sc = img.sc_bits if isinstance(img, Qcow2ExtImage) else None
    parts = [np.asarray(out, dtype=np.int64),
             _mapped(img, img._l1_start, img.l2_allocated, img.l2_host, img.allocated,
                     img.data_host, _guest_content(layer, img.n_clusters * per, below), sc)]
    for snap in layer.kept:
        n = snap.allocated.shape[0] * per
        parts.append(_mapped(img, snap.l1, snap.l2_allocated, snap.l2_host, snap.allocated,
                             snap.data_host, _guest_content(layer, n, below, snap.written),
                             snap.subclusters))
        first, nbytes = snap.table  # the table written then (a later one frees it, unpunched)
        parts.append(first * per + np.arange(-(-nbytes // FS_BLOCK), dtype=np.int64))
    return np.unique(np.concatenate(parts))


def _mapped(img: Qcow2Image, l1: int, l2_allocated: np.ndarray, l2_host: np.ndarray,
            allocated: np.ndarray, data_host: np.ndarray, content: np.ndarray,
            subclusters: np.ndarray | None = None) -> np.ndarray:
    """The blocks one L1 table reaches: its entries of allocated L2 tables (8 bytes each),
    their entries of allocated clusters (16 bytes with extended_l2), and the clusters' blocks
    that hold ``content``; with extended_l2 (``subclusters``: each cluster's allocation
    bitmap), only within allocated subclusters: the others were never written in the file."""
    per = img.cluster_size // FS_BLOCK
    tables = np.flatnonzero(l2_allocated)
    l1_entries = l1 * per + tables * 8 // FS_BLOCK
    alloc = np.flatnonzero(allocated)
    entries = l2_host[alloc // img.l2_entries] * per + (
        alloc % img.l2_entries) * img.L2_ENTRY_BYTES // FS_BLOCK
    held = content.reshape(-1, per)[alloc]
    if subclusters is not None:
        held = held & _in_subclusters(subclusters[alloc], img.cluster_size)
    rows, cols = np.nonzero(held)
    data = data_host[alloc][rows] * per + cols
    return np.concatenate([l1_entries, entries, data]).astype(np.int64)


def _in_subclusters(bits: np.ndarray, cluster: int) -> np.ndarray:
    """Per cluster (its 32-bit subcluster allocation bitmap in ``bits``), which of its 4 KiB
    blocks touch an allocated subcluster."""
    per, sc = cluster // FS_BLOCK, cluster // SUBCLUSTERS
    masks = np.zeros(per, dtype=np.uint64)
    for j in range(per):  # the subclusters block j covers
        first, last = j * FS_BLOCK // sc, ((j + 1) * FS_BLOCK - 1) // sc
        masks[j] = ((1 << (last + 1)) - 1) ^ ((1 << first) - 1)
    held: np.ndarray = (bits.astype(np.uint64)[:, None] & masks[None, :]) != 0
    return held


def _guest_content(layer: Layer, nblocks: int, below: np.ndarray | None,
                   written: np.ndarray | None = None) -> np.ndarray:
    content = np.zeros(nblocks, dtype=bool)
    if layer.data is not None:
        d = layer.data[:nblocks]
        content[:d.shape[0]] = d
    w = (layer.written if written is None else written)[:nblocks]
    content[:w.shape[0]] |= w
    if below is not None:
        b = below[:nblocks]
        content[:b.shape[0]] |= b
        return content
    img = layer.image
    assert isinstance(img, Qcow2Image | RawImage), "check_timeline: no such disk migrates"
    data = img.backing if isinstance(img, Qcow2Image) else img.data
    if data is not None:
        content |= data.blocks(nblocks)
    return content


def content_below(layers: list[Layer]) -> list[np.ndarray | None]:
    """Per layer of a chain, the guest blocks holding non-zero data below it: for the bottom,
    what its backing says (the base); above, the base's and every lower layer's written
    blocks. A lower layer's allocated cluster is data to qcow2's copy-on-write, but only these
    blocks of it are non-zero, which is what a zero-skipping copy sees."""
    out: list[np.ndarray | None] = [None]
    if len(layers) < 2:
        return out
    img = layers[0].image
    n = max(x.written.shape[0] for x in layers)
    acc = np.zeros(n, dtype=bool)
    data = img.backing if isinstance(img, Qcow2Image) else getattr(img, "data", None)
    if data is not None:
        acc |= data.blocks(n)
    for layer in layers[:-1]:
        acc[:layer.written.shape[0]] |= layer.written
        out.append(acc.copy())
    return out


def sparse_copy(layer: Layer, below: np.ndarray | None = None,
                fs: HostFs = "ext4") -> SparseCopy:
    """What an ``rsync --sparse`` copy of ``layer`` onto a host whose files are on ``fs``
    allocates (``below``: :func:`nonzero_blocks`'): the non-zero blocks it writes, and on
    XFS the blocks its speculative preallocation left unwritten between them."""
    img = layer.image
    assert isinstance(img, Qcow2Image | RawImage), "check_timeline: no such disk migrates"
    end = -(-img.file_bytes // FS_BLOCK)
    below = None if below is None else below.copy()
    blocks = nonzero_blocks(layer, below)
    unwritten = None
    if fs == "xfs":
        runs = xfs_buffered_unwritten(blocks, end)
        unwritten = (np.concatenate([np.arange(s, e) for s, e in runs]).astype(np.int64)
                     if runs else np.zeros(0, dtype=np.int64))
    if not isinstance(img, Qcow2Image):
        return SparseCopy(blocks, end, below, unwritten=unwritten)
    sc = img.sc_bits.copy() if isinstance(img, Qcow2ExtImage) else None
    return SparseCopy(blocks, end, below, img.allocated.copy(), sc, img.file.used,
                      unwritten=unwritten)


def sparse_meta(layer: Layer) -> SparseMeta | None:
    """What the layer's ``rsync --sparse`` copy (``sparse_at_copy``) left of its metadata
    clusters, for the reads of them (``sim.storage.disk.SparseMeta``): its L2 tables and first
    refcount block, where the copy holds fewer than all their blocks."""
    img, sp = layer.image, layer.sparse_at_copy
    if not isinstance(img, Qcow2Image) or sp is None:
        return None
    per = img.cluster_size // FS_BLOCK
    if per < 1:
        return None
    meta = [2, *img.l2_host[img.l2_allocated].tolist()]
    counts = np.bincount(sp.blocks // per, minlength=max(meta) + 1)
    held = {h: int(counts[h]) * FS_BLOCK for h in meta if 0 <= h and counts[h] < per}
    sc = img.sc_bits.copy() if isinstance(img, Qcow2ExtImage) else None
    return SparseMeta(held, img.allocated.copy(), sc, img.file.used)


def _runs_of(blocks: np.ndarray) -> list[int]:
    """The lengths of the runs of consecutive numbers in sorted ``blocks``."""
    if blocks.size == 0:
        return []
    starts = np.flatnonzero(np.diff(blocks) != 1) + 1
    return [int(n) for n in np.diff(np.concatenate(([0], starts, [blocks.size])))]
