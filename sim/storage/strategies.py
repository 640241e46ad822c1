"""The model's side of each copy-on-write strategy: the disk a VM gets, as an allocation map.

The real backend's counterpart is ``real/storage/strategies.py``; the two must build the same thing:

- ``qcow2_overlay``: one qcow2 file over the raw base (Nova's default);
- ``full_copy``: a raw copy of the base resized to the root size; ``sparse`` keeps the base's
  holes (``cp --sparse=always``), otherwise every byte of the base is written
  (``cp --sparse=never``); the resize adds a hole either way;
- ``resized_base``: Nova before commit c82be9f (Dec 2012): the host keeps one full sparse copy of
  the base per root size (``_base/<sha1>_<size>``), and each VM's overlay backs onto that copy;
  the overlay sees the original's data, but a raw file allocated up to the root size, so a
  first write past the original's end copies its cluster (zeros read from a hole, the whole
  cluster written) where an overlay of the original zeroes it (measured, s2b-ext4 resized-b:
  748 new clusters, 49977344 bytes written); the other cost is the copies in the cache;
- ``internal_snapshot``: a standalone qcow2 copy of the base with one internal snapshot
  (``sim.storage.snapshot``): first writes copy shared clusters inside the file;
- ``reflink_copy``: ``cp --reflink`` of the raw base on XFS, grown to the root size
  (``sim.storage.reflink``): shared extents, copy-on-write per block;
- ``rbd_clone``: a Ceph RBD clone of the base (``sim.storage.rbd``, model only);
- ``snapshot_chain``: ``chain_depth`` qcow2 overlays stacked on the base (external snapshots),
  the VM writing to the top; the lower layers hold only their metadata, and the VM's files
  are all of its layers. Guest data missing from the top comes from the raw base through the
  chain, so the top allocates and copies as a single overlay does (FACTS.md 2.2-2.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from cowbench.scenario import VM, Image, Scenario, Strategy, Workload

from .disk import BaseData, HostIO, Qcow2Image, RawImage
from .fs import FS_BLOCK
from .images import CONVERT_CHUNK as CONVERT_CHUNK  # where convert's requests are cut
from .qcow2_ext import Qcow2ExtImage
from .rbd import RbdClone
from .reflink import ReflinkCopy
from .snapshot import take_internal_snapshot
from .xfs import HostFs


def overlay(size: int, st: Strategy, backing: BaseData | None,
            host_fs: HostFs = "ext4") -> Qcow2Image:
    """``qemu-img create -f qcow2 -o backing_file=...,cluster_size=...[,extended_l2=on]``, on
    ``host_fs`` (``cowbench.diskfs``)."""
    if st.extended_l2:
        return Qcow2ExtImage(size, st.cluster_size, backing=backing,
                             refcount_bits=st.refcount_bits, preallocation=st.preallocation,
                             host_fs=host_fs)
    return Qcow2Image(size, st.cluster_size, backing=backing, refcount_bits=st.refcount_bits,
                      host_fs=host_fs)


@dataclass
class ChainDisk:
    """A VM disk made of several files: the writable ``top`` over ``lower`` layers."""

    top: Qcow2Image
    lower: list[Qcow2Image]
    unmap: bool = False
    zero_writes: bool = False
    zero_unmap: bool = False

    def __post_init__(self) -> None:
        self.top.below = self.lower[::-1]  # lookups missing the top go down, nearest first

    def open(self) -> None:
        """A new qemu-nbd opens the whole chain: every layer's caches start empty."""
        for img in (self.top, *self.lower):
            img.open()

    def write(self, offset: int, length: int) -> HostIO:
        return self.top.write(offset, length)

    def read(self, offset: int, length: int) -> HostIO:
        return self.top.read(offset, length)

    def flush(self) -> HostIO:
        return self.top.flush()

    def discard(self, offset: int, length: int) -> HostIO:
        return self.top.discard(offset, length)

    @property
    def data_clusters(self) -> int:
        return self.top.data_clusters

    @property
    def file_bytes(self) -> int:
        return self.top.file_bytes + sum(x.file_bytes for x in self.lower)

    @property
    def allocated_bytes(self) -> int:
        return self.top.allocated_bytes + sum(x.allocated_bytes for x in self.lower)


Disk = Qcow2Image | RawImage | ChainDisk | RbdClone | ReflinkCopy


def root_disk(size: int, st: Strategy, base: BaseData, host_fs: HostFs = "ext4") -> Disk:
    """The VM's root disk over a raw base holding ``base``'s data, its files on ``host_fs``."""
    disk = _root_disk(size, st, base, host_fs)
    disk.unmap = st.discard == "unmap"
    return disk


def configure_io(disk: Disk, st: Strategy, wl: Workload) -> None:
    """What the drive does with this workload's writes: all-zero data under detect-zeroes."""
    disk.zero_writes = wl.zero_buffers and st.detect_zeroes != "off"
    disk.zero_unmap = st.detect_zeroes == "unmap"


def guest_write(disk: Disk, offset: int, length: int) -> HostIO:
    """A guest write as the drive delivers it (detect-zeroes turns zeros into zeroing)."""
    if not disk.zero_writes:
        return disk.write(offset, length)
    target = disk.top if isinstance(disk, ChainDisk) else disk
    if isinstance(target, RawImage):  # raw: fallocate zero range, or punch with unmap
        return target.discard(offset, length) if disk.zero_unmap else \
            target.write(offset, length)
    if isinstance(target, Qcow2Image):
        return target.write_zeroes(offset, length, disk.zero_unmap)
    return disk.write(offset, length)


def trim(disk: Disk, offset: int, length: int) -> HostIO:
    """A guest discard: it reaches the image only when the drive has ``discard=unmap``
    (Nova's hw_disk_discard; qemu-nbd ``--discard``); otherwise QEMU drops it (FACTS.md E12b)."""
    if not disk.unmap:
        return HostIO()
    return disk.discard(offset, length)


def _root_disk(size: int, st: Strategy, base: BaseData, fs: HostFs) -> Disk:
    if st.kind == "qcow2_overlay":
        return overlay(size, st, base, fs)
    if st.kind == "resized_base":  # over the copy grown to the root size: raw to its end
        return overlay(size, st, base.grown(size), fs)
    if st.kind == "snapshot_chain":
        lower = [overlay(size, st, base, fs) for _ in range(st.chain_depth - 1)]
        return ChainDisk(overlay(size, st, base, fs), lower)
    if st.kind == "internal_snapshot":
        return snapshotted_copy(size, st, base, fs)
    if st.kind == "reflink_copy":
        return ReflinkCopy(size, base)
    if st.kind == "rbd_clone":
        return RbdClone(size, base, st.object_size, flattened=st.clone_depth > st.max_clone_depth)
    img = RawImage(size, base, host_fs=fs)  # cp's copy: no hint
    if not st.sparse:  # every block of the base written, its holes as zeros: allocated, and
        # still zeros to a copy that skips them (rsync --sparse: measured, a cold migration
        # left 74.8 MB of a 540 MB dense copy of a base holding 64 MiB)
        img.blocks[:-(-base.size // FS_BLOCK)] = True
    return img




def snapshotted_copy(size: int, st: Strategy, base: BaseData,
                     host_fs: HostFs = "ext4") -> Qcow2Image:
    """``qemu-img create`` + ``qemu-img convert -n`` of the base + ``qemu-img snapshot -c``.

    Into an existing target, convert cannot assume zeros, so it writes the base's holes as
    zero clusters (each needs its L2 table), data in requests of up to 2 MiB, in order:
    measured, a 4 KiB-cluster copy of a base with 40 MiB of holes had 20 L2 tables more than
    the same data written with qemu-io."""
    img = overlay(size, st, None, host_fs)
    io = HostIO()
    c = img.cluster_size
    pos = 0
    for s0, e0 in [*zip(base._starts.tolist(), base._ends.tolist(), strict=True),
                   (base.size, base.size)]:
        for g in range(-(-pos // c), s0 // c):  # clusters wholly in the hole before s0
            img._ensure_l2(g // img.l2_entries, io)
            img.zeroed[g] = img.any_zeroed = True
        for off in range(s0, e0, CONVERT_CHUNK):
            img.write(off, min(CONVERT_CHUNK, e0 - off))
        pos = e0
    take_internal_snapshot(img)
    return img


def resized_copies(scenario: Scenario, vms: list[VM],
                   base_data: dict[str, BaseData]) -> list[RawImage]:
    """``resized_base``: the host's ``_base/<sha1>_<size>`` copies, one per image and size."""
    keys = sorted({(vm.image, scenario.root_size(vm)) for vm in vms
                   if scenario.strategy_of(vm).kind == "resized_base"})
    return [RawImage(size, base_data[name]) for name, size in keys]


def images_of(scenario: Scenario, vms: list[VM]) -> list[Image]:
    return [scenario.image(n) for n in sorted({vm.image for vm in vms})]


def extra_figures(disk: Disk) -> dict[str, float]:
    """Figures only some disks have (reflink: shared and exclusive bytes)."""
    if isinstance(disk, ReflinkCopy):
        return {"shared_bytes": disk.shared_bytes, "exclusive_bytes": disk.exclusive_bytes}
    return {}
