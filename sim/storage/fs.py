"""What the host filesystem adds to a file's allocation (``st_blocks``), beyond its data blocks.

ext4 keeps up to 4 extents in the inode; a file with more needs extent-tree blocks, and they
count in ``st_blocks`` (one 4 KiB leaf holds 340 extents). An extent covers at most 32768
blocks (128 MiB), so a 1 GiB contiguous file already has 8 extents and one tree block: measured
here, a 1 GiB raw base made by ``qemu-img convert`` is allocated 1 GiB + 4 KiB. The model counts
the fewest extents the file's runs of blocks need; a fragmented filesystem may need more.
"""

from __future__ import annotations

from collections.abc import Iterable

FS_BLOCK = 4096
EXT4_MAX_EXTENT_BLOCKS = 32768
EXT4_INODE_EXTENTS = 4
EXT4_EXTENTS_PER_LEAF = 340


def extent_tree_bytes(run_blocks: Iterable[int]) -> int:
    """Bytes of ext4 extent-tree blocks for a file whose allocation is these runs of blocks."""
    extents = sum(-(-n // EXT4_MAX_EXTENT_BLOCKS) for n in run_blocks if n > 0)
    if extents <= EXT4_INODE_EXTENTS:
        return 0
    leaves = -(-extents // EXT4_EXTENTS_PER_LEAF)
    index = 0 if leaves <= EXT4_INODE_EXTENTS else -(-leaves // EXT4_EXTENTS_PER_LEAF)
    return (leaves + index) * FS_BLOCK
