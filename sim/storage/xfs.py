"""How XFS allocates a qcow2 file that QEMU made: in 1 MiB pieces, by QEMU's extent size hint.

``qemu-img create`` (and ``convert``) set an extent size hint on every image file they make on
XFS: block/file-posix.c, ``raw_co_create``, option ``extent_size_hint``, default 1 MiB, through
``FS_IOC_FSSETXATTR`` (``xfs_io -c extsize`` shows 1048576 and flag ``e``). XFS then allocates
each write that lands in a hole as a whole hint-sized piece (``xfs_bmap_extsize_align`` in
fs/xfs/libxfs/xfs_bmap.c): the piece starts at the hint-aligned offset below the write, or at
the end of the extent before it when that is further on (keeping its length), and its length
is rounded up to the hint. The blocks of the piece the write does not cover are allocated as
unwritten extents (FIEMAP flag 0x800): they read as zeros and count in ``st_blocks`` as ext4's
holes do not. Measured here (kernel 6.18, QEMU 7.2, ``qemu-nbd --cache=none``): a 128 KiB
extended-L2 overlay with two 4 KiB writes is 536 576 bytes on ext4 and 1 445 888 on XFS;
created with ``extent_size_hint=0`` it is 536 576 on XFS too.

The piece past the file's end stays too (measured): neither qemu-nbd's close nor
``xfs_spaceman prealloc -s`` frees it. By the kernel's source, the scan frees post-EOF blocks
of inodes tagged for speculative preallocation (buffered writes past EOF), and a close trims
them on a file's first close only (``XFS_EOFBLOCKS_RELEASED``), spent by ``qemu-img create``.
It goes when the inode leaves the kernel's cache (an unmount, memory pressure): that 128 KiB
overlay is then 790 528 bytes, its size. The real backend measures while its XFS is mounted
and the disks were just closed, so the model counts it.

The model allocates the file's written blocks in increasing order, as QEMU appends clusters
at the file's end, each write that spanned several new clusters whole (``Qcow2Image.requests``,
one ``pwrite`` in QEMU). Concurrent writes reaching XFS out of order can place a piece
otherwise: qemu-nbd serving fio at iodepth 4-16 left files within 0.4% of the model
(tests/test_oracle_xfs.py). The figure past the file's end is this kernel's (6.18); one
that trims post-EOF blocks at every close would measure less.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

import numpy as np

from cowbench.diskfs import HostFs as HostFs  # the filesystems the model allocates as

from .fs import FS_BLOCK, ext4_mkfs_layout, local_base_allocated_bytes
from .hostfile import block_intervals

#: QEMU's default ``extent_size_hint`` for the image files it creates on XFS (file-posix.c)
XFS_EXTSIZE_HINT = 1 << 20

Interval = tuple[int, int]


def xfs_hinted_bytes(created: int, written: Iterable[Interval],
                     requests: Sequence[Interval] = (), hint: int = XFS_EXTSIZE_HINT,
                     size: int | None = None) -> int:
    """``st_blocks * 512`` of a file that ``qemu-img create`` made ``created`` bytes long and
    whose ``written`` byte ranges (in increasing order) QEMU wrote since, on XFS with extent
    size hint ``hint``: the pieces allocated (:func:`xfs_pieces`) plus the blocks of the
    extent btree their records need (:func:`bmbt_blocks`). ``requests`` are the byte ranges
    of the writes that spanned several clusters (one ``pwrite`` each); any other write lies
    within one cluster, so within one hint-aligned range (:func:`_cut`). ``size``: the
    file's size when it was made, for a file whose size is set before it is written (a raw
    file: ``raw_co_create`` truncates it to its size), so that every write lands inside it:
    XFS then allocates no piece past it (measured: 256 KiB written at the end of a 5.5 MiB
    raw file took the half piece from 5 MiB to its end, not the whole one to 6 MiB)."""
    blocks, records = xfs_layout(created, written, requests, hint, size)
    return (blocks + bmbt_blocks(records)) * FS_BLOCK


def xfs_layout(created: int, written: Iterable[Interval], requests: Sequence[Interval] = (),
               hint: int = XFS_EXTSIZE_HINT, size: int | None = None) -> tuple[int, int]:
    """(blocks allocated to data, extent records at the fewest) of such a file."""
    runs = block_intervals(written)
    per = hint // FS_BLOCK
    reqs = sorted((a // FS_BLOCK, -(-b // FS_BLOCK)) for a, b in requests)
    pieces = xfs_pieces(-(-created // FS_BLOCK), _cut(runs, per, reqs), per)
    if size is not None:  # a file made at its size: no piece past its end
        eof = -(-size // FS_BLOCK)
        pieces = [(s, min(e, eof)) for s, e in pieces if s < eof]
    return sum(e - s for s, e in pieces), _records(pieces, runs)


def xfs_pieces(created: int, runs: Iterable[Interval], per: int) -> list[Interval]:
    """The block ranges XFS allocates for a file ``created`` blocks long when made, then
    written in these runs of blocks (in order), with an extent size hint of ``per`` blocks.
    What create wrote is allocated as written (its buffered writes' post-EOF blocks trimmed
    when it closed the file); a later write into a hole past the allocated end gets a piece
    from the hint-aligned block below it, or from that end when it is further on (the length
    kept), its length rounded up to the hint (``xfs_bmap_extsize_align``). Each run is one
    write (:func:`_cut`): only the part of it past the allocated end is allocated, and from
    the hint-aligned block below that part, so a write crossing a hint-aligned boundary gets
    a longer piece than its halves would one after the other (a case Hypothesis found: eleven
    writes, two of them 1 MiB ones crossing a boundary, left a 128 KiB extended-L2 overlay
    4 591 616 bytes allocated, which the model gives; cut at every boundary it gave
    3 543 040)."""
    pieces: list[Interval] = []
    end = created  # the end of the last piece allocated
    for s, e in runs:
        if s < created:  # create's own part is allocated as written
            pieces.append((s, min(e, created)))
            s = created
        if e <= end:
            continue
        s = max(s, end)
        aligned = s - s % per
        start = end if aligned < end and aligned != s else aligned
        end = start + -(-(e - aligned) // per) * per
        pieces.append((start, end))
    return pieces


def _cut(runs: list[Interval], per: int, requests: list[Interval]) -> list[Interval]:
    """The written runs as the writes that made them: a request (a write of several clusters)
    whole, anything else cut at every multiple of ``per`` blocks (a write within one cluster
    stays within one hint-aligned range: clusters and the hint are powers of two)."""
    starts = [s for s, _ in requests]
    out: list[Interval] = []
    for s, e in runs:
        i = max(bisect_left(starts, s) - 1, 0)
        while s < e:
            while i < len(requests) and requests[i][1] <= s:
                i += 1
            if i < len(requests) and requests[i][0] <= s:
                cut = min(e, requests[i][1])  # inside a request: to its end
            else:
                cut = min(e, (s // per + 1) * per)
                if i < len(requests):
                    cut = min(cut, max(requests[i][0], s + 1))
            out.append((s, cut))
            s = cut
    return out


def _records(pieces: list[Interval], runs: list[Interval]) -> int:
    """Extent records the file needs at the fewest: each run of written blocks and each run of
    allocated blocks not written (unwritten extents) inside the allocated ranges."""
    merged: list[list[int]] = []
    for s, e in sorted(pieces):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    records, i = 0, 0
    for s, e in merged:
        pos = s
        while i < len(runs) and runs[i][0] < e:
            a, b = max(runs[i][0], s), min(runs[i][1], e)
            if a > pos:
                records += 1  # unwritten before this written run
            if b > a:
                records += 1
                pos = b
            if runs[i][1] > e:
                break
            i += 1
        if pos < e:
            records += 1
    return records


#: the longest extent one record maps (``XFS_MAX_BMBT_EXTLEN``, 2^21 - 1 blocks: 8 GiB, taken
#: as 2^21 here; a dense 1 GiB copy is one record, where ext4 needs eight and a tree block)
XFS_MAX_EXTENT_BLOCKS = 1 << 21
#: extent records an inode holds itself (a 512-byte v5 inode's 336-byte fork, 16 bytes each)
XFS_INODE_RECORDS = 21
#: records a 4 KiB extent btree leaf holds (its 72-byte v5 header, 16 bytes each)
XFS_LEAF_RECORDS = (FS_BLOCK - 72) // 16
#: pointers to leaves the btree root in the inode holds; a node block holds as many as a leaf
XFS_INODE_PTRS = 20
XFS_NODE_PTRS = XFS_LEAF_RECORDS


def bmbt_blocks(records: int) -> int:
    """Blocks of a file's extent btree (XFS_BMBT) for ``records`` extent records, at the
    fewest: none while the inode holds them; a leaf per 251 records beyond, the root staying in
    the inode while it can point at every leaf (20), and a level of nodes above them when it
    cannot. Packed leaves are assumed, so a file split by many scattered writes can hold a few
    blocks more. One rule for every file on XFS: an image (:func:`xfs_hinted_bytes`) and a
    reflink copy (:class:`sim.storage.reflink.ReflinkCopy`)."""
    if records <= XFS_INODE_RECORDS:
        return 0
    leaves = -(-records // XFS_LEAF_RECORDS)
    return leaves + (-(-leaves // XFS_NODE_PTRS) if leaves > XFS_INODE_PTRS else 0)


#: XFS's smallest speculative preallocation (``m_allocsize_blocks``: 64 KiB by default, the
#: mount option ``allocsize`` unset), and the unit a write's preallocation is aligned to
XFS_ALLOCSIZE_BLOCKS = (64 << 10) // FS_BLOCK


#: the most ``rsync --sparse`` writes at once (rsync 3.5.0, strace): a run of non-zero 1 KiB
#: pieces within one 32 KiB chunk of the file
RSYNC_WRITE_BLOCKS = (32 << 10) // FS_BLOCK


def xfs_buffered_unwritten(blocks: np.ndarray | Sequence[int], end: int,
                           chunk: int = RSYNC_WRITE_BLOCKS) -> list[Interval]:
    """The block ranges XFS leaves allocated but unwritten in a file with no extent size hint
    that a program wrote in increasing order by buffered writes of these blocks (sorted
    block numbers), seeking over the others, and closed at ``end`` blocks: what ``rsync
    --sparse`` leaves of a cold migration's copy. rsync writes each run of non-zero blocks
    in pieces that stop at every ``chunk``-block boundary of the file (32 KiB: its chunks;
    the zeros between are skipped with ``lseek``, measured with strace).

    A write past every extent the file has reserves delayed allocation beyond itself
    (``xfs_buffered_write_iomap_begin``): up to the 64 KiB-aligned offset below its last
    byte plus a preallocation (``xfs_iomap_prealloc_size``, fs/xfs/xfs_iomap.c): none while
    the file is under 64 KiB, 64 KiB after a hole, else twice the delayed extent it
    continues, rounded down to a power of two. A write into the reservation reserves
    nothing more (one running past its end reserves from there); the reservation past the
    file's end is trimmed when it is closed, and what is left inside it is allocated
    unwritten when written back, counted in ``st_blocks`` (measured: a 512 KiB overlay
    holding 39 non-zero blocks copied by rsync --sparse onto XFS holds 401,408 bytes, 98
    blocks: its first two non-zero blocks alone and blocks 32 to 127 whole; 320 MiB of data
    then a hole reserve 192 MiB more). Writeback during the copy is taken not to happen (a
    large copy written back midway can reserve less); the throttling near a full
    filesystem or quota is left out."""
    reserved: list[list[int]] = []  # merged reserved ranges, in order
    size = 0  # the file's size in blocks: the end of the last block written
    for s, e in block_intervals((int(b) * FS_BLOCK, (int(b) + 1) * FS_BLOCK) for b in blocks):
        pos = s
        while pos < e:
            if reserved and pos < reserved[-1][1]:  # inside the reservation: nothing more
                pos = min(e, reserved[-1][1])
                size = max(size, pos)
                continue
            stop = min(e, (pos // chunk + 1) * chunk)  # this write's end
            if size < XFS_ALLOCSIZE_BLOCKS:
                pre = 0
            elif not reserved or reserved[-1][1] < pos:
                pre = XFS_ALLOCSIZE_BLOCKS
            else:
                plen = reserved[-1][1] - reserved[-1][0]
                pre = max(XFS_ALLOCSIZE_BLOCKS, 1 << (2 * plen).bit_length() - 1)
            last = stop - 1
            upto = max(stop, last - last % XFS_ALLOCSIZE_BLOCKS + pre)
            if reserved and reserved[-1][1] == pos:
                reserved[-1][1] = upto
            else:
                reserved.append([pos, upto])
            pos = size = stop
    arr = np.asarray(blocks, dtype=np.int64)
    out: list[Interval] = []
    for s, e in reserved:  # the reserved blocks inside the file that no write touched
        e = min(e, end)
        lo, hi = np.searchsorted(arr, [s, e])
        edges = [s - 1, *arr[lo:hi].tolist(), e]
        out += [(a + 1, c) for a, c in zip(edges, edges[1:], strict=False) if c > a + 1]
    return out


def xfs_mkfs_ext4_bytes(size: int, hint: int = XFS_EXTSIZE_HINT) -> int:
    """``st_blocks * 512`` on XFS of Nova's ephemeral base of ``size`` bytes: a raw file
    ``qemu-img create`` made (so with QEMU's extent size hint), formatted by ``mkfs -t
    ext4``, which discards it first: each range mkfs writes and its fallocated journal
    (``sim.storage.fs.ext4_mkfs_layout``) take the whole hint-sized pieces they fall in
    (the file's size set first: none past it), the journal's unwritten but counted, and the
    extent btree their records need."""
    written, (js, je) = ext4_mkfs_layout(size)
    per = hint // FS_BLOCK
    end = size // FS_BLOCK
    spans = sorted([*written, (js, je)])
    pieces: list[Interval] = []
    for s, e in spans:
        a, b = s - s % per, min(end, -(-e // per) * per)
        if pieces and a <= pieces[-1][1]:
            pieces[-1] = (pieces[-1][0], max(pieces[-1][1], b))
        else:
            pieces.append((a, b))
    runs = block_intervals([(s * FS_BLOCK, e * FS_BLOCK)
                            for s, e in [*written, (js, js + 1)]])
    return (sum(e - s for s, e in pieces) + bmbt_blocks(_records(pieces, runs))) * FS_BLOCK


def local_base_bytes(kind: str, size: int, host_fs: HostFs) -> int:
    """Bytes ``du`` counts for a flavor's local base of ``size`` bytes in ``_base`` on a
    host whose files are on ``host_fs`` (ext4: ``sim.storage.fs.local_base_allocated_bytes``).

    Nova makes the file with ``qemu-img create -f raw``, which on XFS gives it QEMU's 1 MiB
    extent size hint: mkswap's one page takes the whole first piece, within the file's size
    (measured: 1,048,576 bytes for a 64 MiB and a 1 GiB swap base, 524,288 for a 512 KiB
    one), and mkfs's writes each take the pieces they fall in (:func:`xfs_mkfs_ext4_bytes`;
    measured, exact from 1 GiB to 500 GiB, 1 TiB within one extent-btree block: 1 GiB
    40,898,560 bytes, where ext4's figure is 34,230,272; 1 TiB 1,636,851,712)."""
    if host_fs != "xfs":
        return local_base_allocated_bytes(kind, size)
    if kind == "ephemeral":
        return xfs_mkfs_ext4_bytes(size)
    return min(XFS_EXTSIZE_HINT, -(-size // FS_BLOCK) * FS_BLOCK)
