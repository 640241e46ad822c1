"""QEMU's qcow2 metadata caches, as they cost host I/O (QEMU 7.2: block/qcow2.c
``read_cache_sizes`` and ``qcow2_detect_metadata_preallocation``, block/qcow2-cache.c;
measured with strace and ``/proc/PID/io`` of qemu-nbd, pinned in tests/test_hostbytes.py).

- **L2 cache**: one entry per L2 table (``l2-cache-entry-size`` defaults to the cluster size:
  qemu-nbd reads whole tables), ``l2-cache-size`` by default the tables of the whole disk up to
  32 MiB and at least two entries; the least recently used table leaves first, written back
  if dirty (after the refcount blocks it depends on).
- **the first block-status query** after an open (qemu-nbd asks one for every read it answers
  with NBD structured replies, which fio's nbd engine negotiates) runs
  ``qcow2_detect_metadata_preallocation``: it reads refcounts from cluster 0 on until it has
  counted more clusters than ``max(10/9, +2)`` of what the file allocates (st_blocks) or
  reached the file's end, so it loads the refcount blocks covering that prefix (one cluster
  each): for a plain image every refcount block of the file, for a sparse extended-L2 image
  fewer.
"""

from __future__ import annotations

from collections import OrderedDict

DEFAULT_L2_CACHE_MAX = 32 << 20  # DEFAULT_L2_CACHE_MAX_SIZE on Linux
MIN_L2_CACHE_ENTRIES = 2  # MIN_L2_CACHE_SIZE, in clusters
REFCOUNT_CACHE_BLOCKS = 4  # MIN_REFCOUNT_CACHE_SIZE, in clusters: the default refcount cache


class L2Cache:
    """The L2 tables an open image holds in memory, least recently used first."""

    def __init__(self, tables: int, cluster: int) -> None:
        self.capacity = max(MIN_L2_CACHE_ENTRIES, min(tables, DEFAULT_L2_CACHE_MAX // cluster))
        self._lru: OrderedDict[int, None] = OrderedDict()

    def __contains__(self, idx: object) -> bool:
        return idx in self._lru

    def __len__(self) -> int:
        return len(self._lru)

    def clear(self) -> None:
        self._lru.clear()

    def use(self, idx: int) -> int | None:
        """Table ``idx`` is used (loaded when absent); return the table evicted for it."""
        lru = self._lru
        if idx in lru:
            lru.move_to_end(idx)
            return None
        lru[idx] = None
        if len(lru) > self.capacity:
            return lru.popitem(last=False)[0]
        return None


def prealloc_scan_blocks(file_bytes: int, allocated_bytes: int, cluster: int,
                         covers: int) -> int:
    """Refcount blocks ``qcow2_detect_metadata_preallocation`` reads (the file's clusters taken
    as refcounted from cluster 0 on, which holds below its end but for freed holes)."""
    end_cluster = -(-file_bytes // cluster)
    real = allocated_bytes // cluster
    stop = min(end_cluster, max(real * 10 // 9, real + 2))
    return -(-stop // covers)
