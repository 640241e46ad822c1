"""Damage a qcow2 file on purpose, as a bug or a crash would (docs/interop/qcow2.txt).

Header: ``l1_size`` is the big-endian u32 at byte 36, ``l1_table_offset`` the u64 at 40,
``refcount_table_offset`` the u64 at 48. L1 and L2 entries are big-endian u64 whose bits 9-55
hold a host offset; bit 63 says the refcount is exactly one ("copied").
"""

from __future__ import annotations

import struct
from pathlib import Path

OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00
COPIED = 1 << 63


def _u64(f: object, at: int) -> int:
    f.seek(at)  # type: ignore[attr-defined]
    value: int = struct.unpack(">Q", f.read(8))[0]  # type: ignore[attr-defined]
    return value


def first_data_l2_entry(path: Path) -> tuple[int, int]:
    """``(file offset of the L2 entry, its value)`` of the first allocated data cluster."""
    with open(path, "rb") as f:
        f.seek(36)
        l1_size = struct.unpack(">I", f.read(4))[0]
        l1_offset = _u64(f, 40)
        cluster = 1 << struct.unpack(">I", (f.seek(20), f.read(4))[1])[0]
        for i in range(l1_size):
            l2 = _u64(f, l1_offset + 8 * i) & OFFSET_MASK
            if not l2:
                continue
            for j in range(cluster // 8):
                entry = _u64(f, l2 + 8 * j)
                if entry & OFFSET_MASK:
                    return l2 + 8 * j, entry
    raise ValueError(f"{path}: no allocated data cluster")


def _poke(path: Path, at: int, value: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(struct.pack(">Q", value))


def leak_a_cluster(path: Path) -> None:
    """Forget one data cluster's mapping: its refcount stays 1 with no reference (a leak)."""
    at, _ = first_data_l2_entry(path)
    _poke(path, at, 0)


def corrupt_a_cluster(path: Path) -> None:
    """Map one guest cluster onto the refcount table: one cluster referenced twice."""
    at, _ = first_data_l2_entry(path)
    with open(path, "rb") as f:
        reftable = _u64(f, 48)
    _poke(path, at, COPIED | reftable)
