"""The exact allocation engine, vectorised: a whole batch of guest writes at numpy speed.

``Qcow2Image.write`` applies one guest write at a time, in Python; a fleet needs 10^7 offsets
per second. ``apply_writes`` gives the *same* result for a batch (allocation map, file layout,
metadata state, and the summed host I/O), computed with array operations only:

- a write's pieces (one per guest cluster it touches) are laid out in issue order;
- a piece allocates a cluster when it is the first piece on that cluster in the batch and the
  cluster had no host cluster before (first occurrence by a reversed scatter, O(n));
- its COW read follows ``perform_cow`` (FACTS.md 2.2): nothing for a whole-cluster write, one
  merged read for a request of at most 16 KiB with both head and tail, else head and tail;
- the first allocation under an L2 region allocates the L2 table; each such event flushes the
  dirty L2 entries and the refcount block first (``l2_allocate``), so its bytes are the number
  of distinct L2 tables dirtied since the previous event (a segmented distinct count), the new
  table itself, and the refcount block its allocation has just dirtied.

tests/test_engine.py holds the equality with the per-I/O path (Hypothesis); the speed figure is
``benchmarks/engine_speed.py``. Images with subclusters (extended L2) take the per-I/O path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .disk import (
    L1_SECTOR,
    MERGE_READS_MAX,
    BaseData,
    HostIO,
    Qcow2Image,
    RawImage,
    add_io,
)
from .fs import FS_BLOCK


@dataclass
class Pieces:
    """Guest writes cut at cluster boundaries: cluster, byte range, the request's length and
    index."""

    cluster: np.ndarray
    start: np.ndarray
    end: np.ndarray
    length: np.ndarray
    req: np.ndarray


def split(offsets: np.ndarray, lengths: np.ndarray, cluster: int) -> Pieces:
    """One piece per (write, cluster) pair, in issue order."""
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    shift = cluster.bit_length() - 1  # cluster sizes are powers of two
    ends = offsets + lengths
    first = offsets >> shift
    count = ((ends - 1) >> shift) - first + 1
    if int(count.max(initial=1)) == 1:
        return Pieces(first, offsets, ends, lengths, np.arange(offsets.shape[0]))
    req = np.repeat(np.arange(offsets.shape[0]), count)
    within = np.arange(req.shape[0]) - np.repeat(np.cumsum(count) - count, count)
    g = first[req] + within
    start = np.maximum(offsets[req], g * cluster)
    end = np.minimum(ends[req], (g + 1) * cluster)
    return Pieces(g, start, end, lengths[req], req)


def first_occurrence(keys: np.ndarray, n_keys: int) -> np.ndarray:
    """True where ``keys[i]`` appears for the first time in ``keys`` (keys in ``[0, n_keys)``)."""
    n = keys.shape[0]
    dtype = np.int32 if n < 2**31 else np.int64  # half the memory traffic
    idx = np.arange(n, dtype=dtype)
    pos = np.empty(n_keys, dtype=dtype)
    pos[keys[::-1]] = idx[::-1]  # repeated keys: numpy's 1-D scatter keeps the last assignment
    seen = pos[keys]
    if not bool(np.all(seen <= idx)):  # not the case above: fall back to sorting
        _, firsts = np.unique(keys, return_index=True)
        out = np.zeros(n, dtype=bool)
        out[firsts] = True
        return out
    return np.asarray(seen == idx)


def _data_in(base: BaseData | None, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    if base is None or start.shape[0] == 0:
        return np.zeros(start.shape[0], dtype=np.int64)
    return base.data_in_many(start, end)


def _cow_reads(img: Qcow2Image, p: Pieces, new: np.ndarray) -> tuple[int, int]:
    """Bytes and operations read from the backing file for the newly allocated pieces."""
    c = img.cluster_size
    g, ps, pe, ln = p.cluster[new], p.start[new], p.end[new], p.length[new]
    cs = g * c
    ce = cs + c
    head, tail = ps > cs, pe < ce
    partial = head | tail
    if img.backing is None or not bool(partial.any()):
        return 0, 0
    merged = head & tail & (ln <= MERGE_READS_MAX)
    split_ = partial & ~merged
    h = split_ & head
    t = split_ & tail
    # one lookup for every range read: merged clusters, split heads, split tails
    lo = np.concatenate((cs[merged], cs[h], pe[t]))
    hi = np.concatenate((ce[merged], ps[h], ce[t]))
    nbytes = int(_data_in(img.backing, lo, hi).sum())
    return nbytes, int(lo.shape[0])


def _distinct_per_segment(seg: np.ndarray, key: np.ndarray, n_seg: int, n_key: int) -> np.ndarray:
    """Number of distinct ``key`` values in each segment ``0..n_seg-1``."""
    if seg.shape[0] == 0:
        return np.zeros(n_seg, dtype=np.int64)
    uniq = np.unique(seg.astype(np.int64) * n_key + key)
    return np.bincount(uniq // n_key, minlength=n_seg)


def _metadata_writes(img: Qcow2Image, l2: np.ndarray, event: np.ndarray) -> tuple[int, int]:
    """Bytes and ops of the flushes the L2 allocations trigger; updates the dirty state.

    ``l2`` is the L2 index of every newly allocated piece, ``event`` marks those that also
    allocate their L2 table (the event comes first, then the data cluster dirties its entry).
    """
    entry = img.cluster_size if img.l2_cache_whole else FS_BLOCK
    seg = np.cumsum(event)  # piece j belongs to segment seg[j]; an event opens a segment
    n_events = int(seg[-1]) if seg.shape[0] else 0
    counts = _distinct_per_segment(seg, l2, n_events + 1, img.l1_entries)
    # segment 0 (before the first event) also holds what was dirty before the batch
    before = np.asarray(sorted(img.dirty_l2), dtype=np.int64)
    seg0 = np.union1d(before, l2[seg == 0])
    counts[0] = seg0.shape[0]
    nbytes = 0
    if n_events:
        # each flush also writes the new L2 table itself and the refcount block its
        # allocation has just dirtied
        nbytes = (int(counts[:n_events].sum()) + n_events) * entry
        nbytes += n_events * (L1_SECTOR + img.cluster_size)
    last = seg0 if n_events == 0 else np.unique(l2[seg == n_events])
    img.dirty_l2 = set(last.tolist())
    if l2.shape[0]:
        img.dirty_refblocks = True
    return nbytes, n_events


def _l2_reads(img: Qcow2Image) -> bool:
    """Whether the batch may read L2 tables: some are on disk but not in the cache (a
    reopened image), or the cache cannot hold them all (qcow2cache)."""
    return len(img.l2_cached) < img.n_l2 or img.l2_cached.capacity < img.l1_entries


def apply_writes(img: Qcow2Image | RawImage, offsets: np.ndarray,
                 lengths: np.ndarray) -> HostIO:
    """Apply a batch of guest writes in issue order; return their summed host I/O."""
    if isinstance(img, RawImage):
        return _raw_writes(img, offsets, lengths)
    io = HostIO()
    if len(offsets) == 0:
        return io
    p = split(offsets, lengths, img.cluster_size)
    if getattr(img, "extended_l2", False) or img.any_zeroed or img.any_shared or \
            img.holes or img.sparse_meta is not None or \
            not img.file.can_bulk(2 * len(p.cluster)) or _l2_reads(img):
        return _loop(img, offsets, lengths)  # holes to fill, a table to grow, zero clusters
    new = first_occurrence(p.cluster, img.n_clusters) & ~img.allocated[p.cluster]
    if img.backing is None and bool(np.any(p.end[new] - p.start[new] < img.cluster_size)):
        # clusters zeroed with fallocate and written in part: their unwritten blocks are
        # tracked one write at a time (``Qcow2Image.holes``)
        return _loop(img, offsets, lengths)
    _account_data(img, p, new, io)
    g_new = p.cluster[new]
    l2 = g_new // img.l2_entries
    event = first_occurrence(l2, img.l1_entries) & ~img.l2_allocated[l2]
    n_new, n_l2 = int(g_new.shape[0]), int(event.sum())
    if n_new and not img.refblock_cached:
        img.refblock_cached = True
        io.read_bytes += img.cluster_size
        io.read_ops += 1
    nbytes, nops = _metadata_writes(img, l2, event)
    io.write_bytes += nbytes
    io.write_ops += nops
    img.data_host[g_new] = _host_positions(img, p.req[new], g_new, l2, event)
    img.allocated[g_new] = True
    img.l2_allocated[l2[event]] = True
    for idx in l2[event].tolist():
        img.l2_cached.use(idx)
    img.n_data += n_new
    img.n_l2 += n_l2
    img.file.take_bulk(n_new + n_l2)
    io.cow = n_new > 0
    return io


def _host_positions(img: Qcow2Image, req: np.ndarray, g: np.ndarray, l2: np.ndarray,
                    event: np.ndarray) -> np.ndarray:
    """Where the new data clusters land in the file, as the per-I/O path puts them: an L2
    table (at an event) before its data; each run of consecutive new clusters of one request
    under one table as one range; a refcount block right after the unit that outgrows the
    blocks' coverage."""
    n = g.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    brk = np.ones(n, dtype=bool)
    brk[1:] = (req[1:] != req[:-1]) | (g[1:] != g[:-1] + 1) | (l2[1:] != l2[:-1]) | event[1:]
    starts = np.flatnonzero(brk)
    sizes = np.diff(np.append(starts, n))
    has_l2 = event[starts].astype(np.int64)
    unit_of_range = np.arange(starts.shape[0]) + np.cumsum(has_l2)
    unit_sizes = np.ones(starts.shape[0] + int(has_l2.sum()), dtype=np.int64)
    unit_sizes[unit_of_range] = sizes
    unit_end = img.file.end + np.cumsum(unit_sizes)
    covered = img.file.n_refblocks * img.file.covers
    i = 0
    while True:
        i += int(np.searchsorted(unit_end[i:], covered, side="right"))
        if i >= unit_end.shape[0]:
            break
        extra = 0
        while unit_end[i] + extra > covered:
            covered += img.file.covers
            extra += 1
        unit_end[i + 1:] += extra
        i += 1
    range_start = unit_end[unit_of_range] - sizes
    rid = np.cumsum(brk) - 1
    return np.asarray(range_start[rid] + (np.arange(n) - starts[rid]), dtype=np.int64)


def _account_data(img: Qcow2Image, p: Pieces, new: np.ndarray, io: HostIO) -> None:
    """Guest data and COW bytes: in place for old clusters, whole clusters for new ones."""
    c = img.cluster_size
    n_new = int(np.count_nonzero(new))
    span_new = p.end[new] - p.start[new]
    old_bytes = int(p.end.sum() - p.start.sum()) - int(span_new.sum())
    if img.backing is not None:
        new_bytes, new_ops = n_new * c, n_new
    else:
        whole = span_new == c
        n_whole = int(np.count_nonzero(whole))
        new_bytes = n_whole * c + int(span_new[~whole].sum())
        new_ops = n_whole + 2 * (n_new - n_whole)
    rb, rops = _cow_reads(img, p, new) if n_new else (0, 0)
    io.read_bytes += rb
    io.read_ops += rops
    io.write_bytes += old_bytes + new_bytes
    io.write_ops += (new.shape[0] - n_new) + new_ops


def _loop(img: Qcow2Image, offsets: np.ndarray, lengths: np.ndarray) -> HostIO:
    total = HostIO()
    for off, n in zip(np.asarray(offsets).tolist(), np.asarray(lengths).tolist(), strict=True):
        add_io(total, img.write(int(off), int(n)))
    return total


def _raw_writes(img: RawImage, offsets: np.ndarray, lengths: np.ndarray) -> HostIO:
    offsets = np.asarray(offsets, dtype=np.int64)
    ends = offsets + np.asarray(lengths, dtype=np.int64)
    b0, b1 = offsets // FS_BLOCK, -(-ends // FS_BLOCK)
    if bool(np.all(b1 - b0 == 1)):
        img.blocks[b0] = True
    else:
        for s, e in zip(b0.tolist(), b1.tolist(), strict=True):
            img.blocks[s:e] = True
    return HostIO(write_bytes=int((ends - offsets).sum()), write_ops=int(offsets.shape[0]))

