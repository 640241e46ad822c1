"""What the host filesystem adds to a file's allocation (``st_blocks``), beyond its data blocks.

ext4 keeps up to 4 extents in the inode; a file with more needs extent-tree blocks, and they
count in ``st_blocks`` (one 4 KiB leaf holds 340 extents). An extent covers at most 32768
blocks (128 MiB), so a 1 GiB contiguous file already has 8 extents and one tree block: measured
here, a 1 GiB raw base made by ``qemu-img convert`` is allocated 1 GiB + 4 KiB. The model counts
the fewest extents the file's runs of blocks need; a fragmented filesystem may need more.
"""

from __future__ import annotations

from collections.abc import Iterable

from cowbench.diskfs import HostFs

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


# mke2fs -t ext4 (e2fsprogs 1.46/1.47, Debian's mke2fs.conf: 4 KiB blocks, 32768 blocks a
# group, 64-byte group descriptors, flex_bg of 16, sparse_super, resize_inode), as Nova runs it
# on an ephemeral base (``mkfs -t ext4 -F -L ephemeral0 FILE`` on a sparse raw file): what it
# writes, and so what ``du`` counts. It discards the file first, and with lazy_itable_init it
# zeroes no inode table: what is left is the journal (fallocated), the primary superblock with
# its group descriptors and reserved GDT blocks, each backup's superblock and descriptors (not
# their reserved GDT blocks), one block bitmap a flex group, the first group's inode bitmap,
# first inode table block and directories, and the file's last 16 blocks (fallocated).
EXT4_BLOCKS_PER_GROUP = 32768
EXT4_DESC_PER_BLOCK = FS_BLOCK // 64
EXT4_FLEX_GROUPS = 16
EXT4_RESIZE_MAX_BLOCKS = FS_BLOCK // 4  # reserved GDT blocks: what the resize inode addresses
EXT4_MKFS_FIXED_BLOCKS = 10  # group 0: inode bitmap, inode table block, root, lost+found, ...
EXT4_MKFS_TAIL_BLOCKS = 16
#: ext2fs_default_journal_size: (file systems under this many blocks, journal blocks)
EXT4_JOURNAL_BLOCKS = ((2048, 0), (32768, 1024), (256 * 1024, 4096), (512 * 1024, 8192),
                       (4096 * 1024, 16384), (8192 * 1024, 32768), (16384 * 1024, 65536),
                       (32768 * 1024, 131072))
EXT4_JOURNAL_MAX_BLOCKS = 262144


def ext4_journal_blocks(blocks: int) -> int:
    """The journal mke2fs makes for a file system of ``blocks`` 4 KiB blocks."""
    return next((j for under, j in EXT4_JOURNAL_BLOCKS if blocks < under),
                EXT4_JOURNAL_MAX_BLOCKS)


def ext4_backup_groups(groups: int) -> int:
    """How many groups other than the first hold a backup superblock (sparse_super: group 1
    and the powers of 3, 5 and 7)."""
    found = {1} if groups > 1 else set()
    for base in (3, 5, 7):
        power = base
        while power < groups:
            found.add(power)
            power *= base
    return len(found)


def ext4_mkfs_allocated_bytes(size: int) -> int:
    """Bytes ``du`` counts for a sparse raw file of ``size`` bytes after ``mkfs -t ext4``
    (Nova's ephemeral base ``ephemeral_<GiB>_<fs>``), on an ext4 host: within 0.01% of the
    measured from 1 GiB to 1 TiB (tests/test_ephemeral_base.py); 1 GiB holds 32 MiB of
    journal, 20 GiB 128 MiB, 1 TiB 1 GiB."""
    if size < 512 * 1024 * 1024:
        raise ValueError("an ext4 ephemeral base of under 512 MiB (mke2fs's 'small' type)")
    blocks = size // FS_BLOCK
    groups = -(-blocks // EXT4_BLOCKS_PER_GROUP)
    desc = -(-groups // EXT4_DESC_PER_BLOCK)
    grow_to = min(blocks * 1024, 0xFFFFFFFF)  # room to grow 1024-fold, within 2^32 blocks
    grow_groups = -(-grow_to // EXT4_BLOCKS_PER_GROUP)
    reserved = min(-(-grow_groups // EXT4_DESC_PER_BLOCK) - desc, EXT4_RESIZE_MAX_BLOCKS)
    backups = ext4_backup_groups(groups)
    flex = -(-groups // EXT4_FLEX_GROUPS)
    journal = ext4_journal_blocks(blocks)
    written = (journal + 1 + desc + reserved + backups * (1 + desc) + flex
               + EXT4_MKFS_FIXED_BLOCKS + EXT4_MKFS_TAIL_BLOCKS)
    # the file's runs: the primary group's, each backup's, each flex group's bitmap, the
    # journal's (128 MiB an extent at most), the tail
    runs = [1 + desc + reserved, *[1 + desc] * backups, *[1] * flex, 1,
            *[EXT4_MAX_EXTENT_BLOCKS] * (journal // EXT4_MAX_EXTENT_BLOCKS), EXT4_MKFS_TAIL_BLOCKS]
    return written * FS_BLOCK + extent_tree_bytes(runs)


#: a swap base after ``mkswap`` (Nova's ``swap_<MiB>``): the one page it writes (FACTS.md E16)
SWAP_BASE_BYTES = FS_BLOCK


#: QEMU's default extent size hint on XFS (file-posix.c ``extent_size_hint``; named
#: ``sim.storage.xfs.XFS_EXTSIZE_HINT`` there): the piece a write into a hole of a file QEMU
#: made there allocates
XFS_HINT_BYTES = 1 << 20


def local_base_allocated_bytes(kind: str, size: int, host_fs: HostFs = "ext4") -> int:
    """Bytes ``du`` counts for a flavor's local base of ``size`` bytes in ``_base`` on a
    host whose files are on ``host_fs``: an ``ephemeral`` one formatted ext4
    (:func:`ext4_mkfs_allocated_bytes`), a ``swap`` one made by mkswap
    (:data:`SWAP_BASE_BYTES`). The fleet's cache entries and the timeline's bases are both
    these figures.

    Nova makes the file with ``qemu-img create -f raw``, which on XFS gives it QEMU's 1 MiB
    extent size hint, so mkswap's one page takes the whole first piece, within the file's
    size (measured: 1,048,576 bytes for a 64 MiB and a 1 GiB swap base, 524,288 for a
    512 KiB one). An ephemeral base on XFS is still ext4's figure: mkfs's writes scattered
    over the file each take a 1 MiB piece there, which the model does not place (measured:
    1 GiB 40,898,560 bytes where the figure is 34,230,272; 1 TiB 1,636,851,712 where it is
    1,090,187,264)."""
    if kind == "ephemeral":
        return ext4_mkfs_allocated_bytes(size)
    if host_fs == "xfs":
        return min(XFS_HINT_BYTES, -(-size // FS_BLOCK) * FS_BLOCK)
    return SWAP_BASE_BYTES
