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
    return len(_backup_groups(groups))


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


#: blocks of one group's inode table (inode_ratio 16384: 8192 inodes of 256 bytes a group)
EXT4_ITABLE_BLOCKS = 512
#: the root directory's and lost+found's blocks mke2fs writes after the first flex group's
#: inode tables (measured: 6 blocks)
EXT4_MKFS_DIR_BLOCKS = 6


def ext4_mkfs_layout(size: int) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Where ``mkfs -t ext4`` writes in a sparse raw file of ``size`` bytes (the
    :func:`ext4_mkfs_allocated_bytes` layout): the block ranges it writes, in order, and the
    journal's (fallocated, its first block written). Group 0 holds the primary superblock,
    descriptors and reserved GDT blocks, then the first flex group's bitmaps and inode
    tables (flex_bg 16: block bitmaps, inode bitmaps, tables, each for its groups in turn),
    then the root directory and lost+found; each backup group its superblock and
    descriptors; each further flex group its first block bitmap, at its first group's start
    past any backup there; the file's last 16 blocks. The journal goes from the middle (the
    middle block, or past 16 groups the first block of the flex group holding it) into the
    first free run it fits (mke2fs ``get_midpoint_journal_block``). Measured (``xfs_io -c
    'fiemap -v'`` of 1 GiB to 1 TiB bases): the journal at 512 MiB of 1 GiB (the middle),
    at 10,372 MiB of 20 GiB (group 81, past its backup), 51,328 MiB of 100 GiB (group 401:
    not in the free tail of group 400, the flex group holding the middle), 524,416 MiB of
    1 TiB (group 4097); a journal of more than four extents (over 512 MiB) has its extent
    tree's leaf in the block below it; the block bitmaps of the journal's groups and of the
    last group are written (the others are left uninitialised)."""
    blocks = size // FS_BLOCK
    groups = -(-blocks // EXT4_BLOCKS_PER_GROUP)
    desc = -(-groups // EXT4_DESC_PER_BLOCK)
    grow_groups = -(-min(blocks * 1024, 0xFFFFFFFF) // EXT4_BLOCKS_PER_GROUP)
    reserved = min(-(-grow_groups // EXT4_DESC_PER_BLOCK) - desc, EXT4_RESIZE_MAX_BLOCKS)
    g0 = 1 + desc + reserved
    backups = sorted(_backup_groups(groups))
    bpg, flex = EXT4_BLOCKS_PER_GROUP, EXT4_FLEX_GROUPS
    n0 = min(flex, groups)
    dirs = g0 + 2 * n0 + n0 * EXT4_ITABLE_BLOCKS
    written = [(0, g0 + 1), (g0 + n0, g0 + n0 + 1), (g0 + 2 * n0, g0 + 2 * n0 + 1),
               (dirs, dirs + EXT4_MKFS_DIR_BLOCKS)]
    used = [(0, dirs + EXT4_MKFS_DIR_BLOCKS)]
    written += [(g * bpg, g * bpg + 1 + desc) for g in backups]
    used += [(g * bpg, g * bpg + g0) for g in backups]
    bitmaps = {0: g0}  # flex group -> its block bitmaps' first block
    for first in range(flex, groups, flex):
        at = bitmaps[first // flex] = first * bpg + (g0 if first in backups else 0)
        n = min(flex, groups - first)
        written.append((at, at + 1))
        used.append((at, at + 2 * n + n * EXT4_ITABLE_BLOCKS))
    written.append((blocks - EXT4_MKFS_TAIL_BLOCKS, blocks))
    used.sort()
    journal = ext4_journal_blocks(blocks)
    mid = blocks // 2
    # past 16 groups: from the group after the middle one's flex group's first (measured,
    # 20 GiB to 1 TiB: never in that group's free tail, though it is free)
    start = ((mid // bpg & ~(flex - 1)) + 1) * bpg if mid // bpg > flex else mid
    for a, b in used:  # the first free run the journal fits in
        if a < start + journal and b > start:
            start = b
    if -(-journal // EXT4_MAX_EXTENT_BLOCKS) > EXT4_INODE_EXTENTS:
        written.append((start - 1, start))  # its extent-tree leaf, just below it (measured)
    # the block bitmaps of the journal's groups and of the last group are initialised too
    for g in {*range(start // bpg, (start + journal - 1) // bpg + 1), groups - 1}:
        if g % flex:
            at = bitmaps[g // flex] + g % flex
            written.append((at, at + 1))
    return sorted(written), (start, start + journal)


def _backup_groups(groups: int) -> set[int]:
    """The groups other than the first that hold a backup superblock (sparse_super)."""
    found = {1} if groups > 1 else set()
    for base in (3, 5, 7):
        power = base
        while power < groups:
            found.add(power)
            power *= base
    return found


#: a swap base after ``mkswap`` (Nova's ``swap_<MiB>``): the one page it writes (FACTS.md E16)
SWAP_BASE_BYTES = FS_BLOCK


def local_base_allocated_bytes(kind: str, size: int) -> int:
    """Bytes ``du`` counts for a flavor's local base of ``size`` bytes in ``_base`` on ext4:
    an ``ephemeral`` one formatted ext4 (:func:`ext4_mkfs_allocated_bytes`), a ``swap`` one
    made by mkswap (:data:`SWAP_BASE_BYTES`). The fleet's cache entries and the timeline's
    bases are both these figures; on XFS, ``sim.storage.xfs.local_base_bytes``."""
    return ext4_mkfs_allocated_bytes(size) if kind == "ephemeral" else SWAP_BASE_BYTES
