"""The physical space a tree of files takes, blocks shared between its files counted once.

``st_blocks`` counts every block a file maps, so a reflink clone (``cp --reflink``) counts the
base's extents it shares once more: a host's ``allocated_bytes`` (the sum of its files'
``st_blocks * 512``) counts a base shared by ten clones eleven times. ``used_bytes`` is what
the files really take: their ``allocated_bytes`` less every byte of a physical extent that
more than one file of the tree (or one file twice) maps beyond the first.

The extents come from the kernel's FIEMAP ioctl (``FS_IOC_FIEMAP``, the call ``filefrag`` and
``xfs_io fiemap`` make), per file, as (physical start, length); their union per filesystem
(``st_dev``: physical addresses are per device) is the bytes they cover once. What
``st_blocks`` counts besides the mapped extents (an XFS extent B+tree's blocks, an ext4
extent index block) belongs to one file and is kept as it is, so

    used = allocated - (sum over files of their extents' bytes - bytes of the union).

An extent whose physical place FIEMAP does not give (``UNKNOWN``, ``DELALLOC``: the caller
syncs first; ``DATA_INLINE``, ``NOT_ALIGNED``, ``ENCODED``: a btrfs compressed or inline
extent, whose length is not its size on disk) is counted as the file's own, by ``st_blocks``.
A filesystem without FIEMAP (tmpfs) shares no blocks: its files count by ``st_blocks``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Iterable
from pathlib import Path

FS_IOC_FIEMAP = 0xC020660B  # _IOWR('f', 11, struct fiemap)
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
#: extents without a physical place of their own size: counted by st_blocks only
_NO_PLACE = 0x2 | 0x4 | 0x8 | 0x100 | 0x200  # UNKNOWN DELALLOC ENCODED NOT_ALIGNED DATA_INLINE
_HEAD = struct.Struct("=QQIIII")  # fm_start fm_length fm_flags fm_mapped_extents
#                                  fm_extent_count fm_reserved
_EXTENT = struct.Struct("=QQQQQI12x")  # fe_logical fe_physical fe_length reserved64[2] fe_flags
_BATCH = 1024
_MAX_OFFSET = (1 << 64) - 1
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL}


def physical_extents(path: Path) -> list[tuple[int, int]] | None:
    """``(physical start, length)`` in bytes of every extent of ``path`` with a physical place
    of its own (see the module's docstring), or None where the filesystem has no FIEMAP."""
    out: list[tuple[int, int]] = []
    start = 0
    with open(path, "rb") as f:
        while True:
            buf = bytearray(_HEAD.size + _EXTENT.size * _BATCH)
            _HEAD.pack_into(buf, 0, start, _MAX_OFFSET - start, FIEMAP_FLAG_SYNC, 0, _BATCH, 0)
            try:
                fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, buf, True)
            except OSError as e:
                if e.errno in _UNSUPPORTED:
                    return None
                raise
            mapped = _HEAD.unpack_from(buf, 0)[3]
            if mapped == 0:
                return out
            last = 0
            for i in range(mapped):
                logical, physical, length, _, _, flags = _EXTENT.unpack_from(
                    buf, _HEAD.size + i * _EXTENT.size)
                if not flags & _NO_PLACE:
                    out.append((physical, length))
                start, last = logical + length, flags
            if last & FIEMAP_EXTENT_LAST:
                return out


def union_bytes(extents: Iterable[tuple[int, int]]) -> int:
    """Bytes covered by the union of ``(start, length)`` ranges."""
    total, end = 0, -1
    for s, n in sorted(extents):
        e = s + n
        if e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


def tree_space(root: Path) -> tuple[int, int, int]:
    """``(allocated, used, file)`` bytes of the files under ``root``: the sum of their
    ``st_blocks * 512``, the same with shared extents counted once (the module's docstring),
    and the sum of their ``st_size``; zeros when ``root`` does not exist."""
    alloc = size = mapped = 0
    by_dev: dict[int, list[tuple[int, int]]] = {}
    if not root.exists():
        return 0, 0, 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            st = path.stat()
            alloc += st.st_blocks * 512
            size += st.st_size
            ext = physical_extents(path)
            if ext:
                by_dev.setdefault(st.st_dev, []).extend(ext)
                mapped += sum(n for _, n in ext)
    once = sum(union_bytes(e) for e in by_dev.values())
    return alloc, alloc - (mapped - once), size
