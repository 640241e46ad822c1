"""Ceph RBD clones (model only: no Ceph cluster here, so every figure of such a VM comes from
the model and is marked ``model_only``).

A clone is a thin image over a protected parent snapshot, striped into objects of
``object_size`` (4 MiB by default). Reads of an object the clone does not have go to the parent.
The first write to an object *copies it up*: librbd reads the parent's object and writes it
into the clone before applying the write (FACTS.md b.4 item 14; RBD layering design), so a 4 KiB
first write can move up to 4 MiB. Copy-up is sparse (only the parent object's data extents are
read and written, as librbd does since it uses sparse reads), and an object the parent does not
have is simply created. Space is counted per BlueStore allocation unit (``min_alloc_size``,
4 KiB by default since Ceph Pacific).

Chains: kernel RBD refuses parents more than 16 deep (``RBD_MAX_PARENT_CHAIN_LEN``); OpenStack
Cinder flattens a clone whose depth would exceed ``rbd_max_clone_depth`` (5): a flattened
image holds a full copy of the parent's data and no longer copies up (FACTS.md b.3 item 13).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .disk import BaseData, HostIO

ALLOC_UNIT = 4096
KRBD_MAX_PARENT_CHAIN = 16


@dataclass
class RbdClone:
    """One RBD clone: which objects it holds and which allocation units they use."""

    virtual_size: int
    parent: BaseData
    object_size: int = 4 << 20
    flattened: bool = False
    unmap: bool = True  # RBD passes discards through
    zero_writes: bool = False
    zero_unmap: bool = False
    exists: np.ndarray = field(init=False, repr=False)
    units: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.exists = np.zeros(-(-self.virtual_size // self.object_size), dtype=bool)
        self.units = np.zeros(-(-self.virtual_size // ALLOC_UNIT), dtype=bool)
        if self.flattened:  # rbd flatten: every parent object copied in
            for obj in range(self.exists.shape[0]):
                start = obj * self.object_size
                if self.parent.data_in(start, start + self.object_size):
                    self._copy_up(obj, HostIO())

    def _parent_units(self, start: int, end: int) -> list[tuple[int, int]]:
        out = []
        for s, e in zip(self.parent._starts.tolist(), self.parent._ends.tolist(), strict=True):
            lo, hi = max(s, start), min(e, end)
            if lo < hi:
                out.append((lo // ALLOC_UNIT, -(-hi // ALLOC_UNIT)))
        return out

    def _copy_up(self, obj: int, io: HostIO) -> None:
        start = obj * self.object_size
        end = min(start + self.object_size, self.virtual_size)
        data = self.parent.data_in(start, end)
        self.exists[obj] = True
        if data == 0:
            return
        for a, b in self._parent_units(start, end):
            self.units[a:b] = True
        io.read_bytes += data
        io.write_bytes += data
        io.read_ops += 1
        io.write_ops += 1
        io.cow = True

    def write(self, offset: int, length: int) -> HostIO:
        io = HostIO()
        end = offset + length
        for obj in range(offset // self.object_size, (end - 1) // self.object_size + 1):
            if not self.exists[obj]:
                self._copy_up(obj, io)
        self.units[offset // ALLOC_UNIT:-(-end // ALLOC_UNIT)] = True
        io.write_bytes += length
        io.write_ops += 1
        return io

    def read(self, offset: int, length: int) -> HostIO:
        io = HostIO(read_ops=1)
        end = offset + length
        for obj in range(offset // self.object_size, (end - 1) // self.object_size + 1):
            lo = max(offset, obj * self.object_size)
            hi = min(end, (obj + 1) * self.object_size)
            io.read_bytes += hi - lo if self.exists[obj] else self.parent.data_in(lo, hi)
        return io

    def discard(self, offset: int, length: int) -> HostIO:
        """Whole allocation units are released; the object stays (the parent stays hidden)."""
        self.units[-(-offset // ALLOC_UNIT):(offset + length) // ALLOC_UNIT] = False
        return HostIO()

    def flush(self) -> HostIO:
        return HostIO()

    @property
    def data_clusters(self) -> int:
        """Objects the clone holds (RBD's unit of copy-on-write)."""
        return int(self.exists.sum())

    @property
    def allocated_bytes(self) -> int:
        return int(self.units.sum()) * ALLOC_UNIT

    @property
    def file_bytes(self) -> int:
        """Sum of the clone's object sizes (each ends at its last allocated unit)."""
        per = self.object_size // ALLOC_UNIT
        n = self.exists.shape[0]
        u = np.zeros(n * per, dtype=bool)
        u[:self.units.shape[0]] = self.units
        u = u.reshape(n, per)
        last = np.where(u.any(axis=1), per - np.argmax(u[:, ::-1], axis=1), 0)
        return int(np.minimum(last * ALLOC_UNIT, self.object_size).sum())
