"""reflink copies (``cp --reflink``) on XFS: a VM disk that shares the base's extents.

Cloning a file maps the same physical extents into the copy (metadata only). A write to a
shared block is copy-on-write: the block gets its own extent, and only the written blocks stop
being shared (FACTS.md b.4 item 16; Darrick Wong, "XFS data block sharing (reflink)"). XFS also
reserves speculative CoW space around such writes (the ``cowextsize`` hint, 32 blocks) and
hands back what was not used when its background garbage collection runs; the real backend
runs that collection (``xfs_spaceman prealloc -s``) before it measures, so both backends count
the blocks the file maps. Shared and exclusive bytes are FIEMAP's view (the SHARED flag).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .disk import BaseData, HostIO
from .fs import FS_BLOCK
from .xfs import bmbt_blocks


@dataclass
class ReflinkCopy:
    """A raw file cloned from the base, resized to ``virtual_size``."""

    virtual_size: int
    base: BaseData
    unmap: bool = False
    zero_writes: bool = False
    zero_unmap: bool = False
    mapped: np.ndarray = field(init=False, repr=False)
    shared: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = -(-self.virtual_size // FS_BLOCK)
        # the clone shares every block the base holds on disk (a dense download's zeros too)
        self.mapped = self.base.held_blocks(n)
        self.shared = self.mapped.copy()

    def write(self, offset: int, length: int) -> HostIO:
        b0, b1 = offset // FS_BLOCK, -(-(offset + length) // FS_BLOCK)
        cow = bool(self.shared[b0:b1].any())
        self.mapped[b0:b1] = True
        self.shared[b0:b1] = False
        return HostIO(write_bytes=length, write_ops=1, cow=cow)

    def read(self, offset: int, length: int) -> HostIO:
        b0, b1 = offset // FS_BLOCK, -(-(offset + length) // FS_BLOCK)
        return HostIO(read_bytes=min(length, int(self.mapped[b0:b1].sum()) * FS_BLOCK),
                      read_ops=1)

    def discard(self, offset: int, length: int) -> HostIO:
        b0, b1 = -(-offset // FS_BLOCK), (offset + length) // FS_BLOCK
        punched = bool(self.mapped[b0:b1].any())  # a hole punched where the file held data
        self.mapped[b0:b1] = False
        self.shared[b0:b1] = False
        return HostIO(punches=int(punched))

    def flush(self) -> HostIO:
        return HostIO()

    @property
    def data_clusters(self) -> float:
        return float("nan")  # a raw file has no clusters

    @property
    def file_bytes(self) -> int:
        return self.virtual_size

    @property
    def shared_bytes(self) -> int:
        return int(self.shared.sum()) * FS_BLOCK

    @property
    def exclusive_bytes(self) -> int:
        return int((self.mapped & ~self.shared).sum()) * FS_BLOCK

    @property
    def extents(self) -> int:
        """Runs of mapped blocks that are all shared or all exclusive (a CoW splits a shared
        extent in three); written neighbours are assumed physically contiguous."""
        state = np.where(self.mapped, np.where(self.shared, 1, 2), 0).astype(np.int8)
        starts = (state[1:] != state[:-1]) & (state[1:] > 0)
        return int(starts.sum()) + int(state[0] > 0)

    @property
    def allocated_bytes(self) -> int:
        """The blocks the file maps, shared or not (st_blocks counts both), plus the extent
        B+tree's blocks once the extents outgrow the inode (XFS_BMBT: 21 records fit in a
        512-byte inode, 251 in a 4 KiB leaf); packed leaves are assumed, so a file split by
        many scattered writes can hold a few blocks more."""
        return (int(self.mapped.sum()) + bmbt_blocks(self.extents)) * FS_BLOCK


def counted_again(copies: list[ReflinkCopy], base_on_host: bool) -> int:
    """Bytes that summing the ``allocated_bytes`` of a host's files counts more than once,
    for ``copies`` cloned from one base file: each copy's shared blocks are the base's own
    extents (a clone maps them; a CoW write gives the block an extent of its own). With the
    base in the host's ``_base`` every shared byte was already counted there; without it, the
    union of the copies' shared blocks is counted once. What a host's ``used_bytes`` takes off
    its ``allocated_bytes`` (the real backend measures the same with FIEMAP,
    ``real.measure.extents``)."""
    if not copies:
        return 0
    total = sum(int(c.shared.sum()) for c in copies)
    if base_on_host:
        return total * FS_BLOCK
    n = max(c.shared.shape[0] for c in copies)
    union = np.zeros(n, dtype=bool)
    for c in copies:
        union[:c.shared.shape[0]] |= c.shared
    return (total - int(union.sum())) * FS_BLOCK
