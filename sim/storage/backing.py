"""What a raw base holds, for the images over it (sim.storage.disk re-exports ``BaseData``)."""

from __future__ import annotations

import bisect

import numpy as np

from .fs import FS_BLOCK


class BaseData:
    """Where a base holds data, per byte range: answers "how many bytes of [a, b) are data".

    Two views of it. Its *content* (``extents``: :meth:`blocks`, :attr:`data_bytes`) is where
    it holds non-zero bytes: what a copy that skips zeros keeps (``qemu-img convert``,
    ``rsync --sparse``, ``cp --sparse=always``). What it *holds on disk* (:meth:`data_in`) is
    what a read of it costs the host and what QEMU's block status calls data: the content,
    and every byte below ``dense_size`` -- a raw Glance image in ``_base`` is written byte for
    byte by Nova's download (``nova/image/glance.py`` ``_verify_and_write``), its zeros
    included, so reading its zeros reads the disk (qemu-nbd's /proc/PID/io counts them) and a
    partial write over them is no all-zero range to QEMU."""

    def __init__(self, size: int, extents: list[tuple[int, int]],
                 raw_size: int | None = None, dense_size: int = 0,
                 mapped: list[tuple[int, int]] | None = None) -> None:
        self.size = size
        #: ranges a qcow2 layer of the chain maps as data whatever its file holds there: a
        #: cluster zeroed with fallocate keeps unwritten blocks that read as zeros with no
        #: host I/O (not in ``extents``), yet QEMU's block status calls the whole cluster
        #: data, so a first write beside them copies it (``allocated``)
        self._mapped = sorted(mapped or [])
        self._mapped_starts = [s for s, _ in self._mapped]
        #: bytes from 0 the file holds on disk whatever they contain (a dense download)
        self.dense_size = min(dense_size, size)
        #: a raw base counts as allocated everywhere up to its size, holes included (FACTS.md
        #: E4); past the end of the backing chain QEMU zeroes a new cluster with fallocate
        #: instead of copying (measured: a 1 GiB overlay on a 512 MiB base)
        self.raw_size = size if raw_size is None else raw_size
        ext = sorted(extents)
        self._starts = np.array([s for s, _ in ext], dtype=np.int64)
        self._ends = np.array([s + n for s, n in ext], dtype=np.int64)
        self._cum = np.concatenate([[0], np.cumsum(self._ends - self._starts)])
        # the same as Python lists: one lookup (every COW of a new cluster asks) is bisect's
        # fraction of a microsecond, where numpy's per-call overhead is several
        self._starts_l: list[int] = self._starts.tolist()
        self._ends_l: list[int] = self._ends.tolist()
        self._cum_l: list[int] = self._cum.tolist()

    def _upto(self, x: int) -> int:
        """Data bytes in [0, x)."""
        i = bisect.bisect_right(self._starts_l, x)
        if i == 0:
            return 0
        return self._cum_l[i - 1] + min(x, self._ends_l[i - 1]) - self._starts_l[i - 1]

    def _upto_many(self, x: np.ndarray) -> np.ndarray:
        i = np.searchsorted(self._starts, x, side="right")
        j = np.maximum(i - 1, 0)
        if self._starts.shape[0] == 0:
            return np.zeros(x.shape[0], dtype=np.int64)
        part = np.minimum(x, self._ends[j]) - self._starts[j]
        return np.where(i > 0, self._cum[j] + part, 0)

    def data_in_many(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """``data_in`` for arrays of ranges."""
        end = np.minimum(end, self.size)
        d = self.dense_size
        if d:  # below dense_size every byte is held; above it, the content
            dense = np.clip(np.minimum(end, d) - start, 0, None)
            start = np.maximum(start, d)
        else:
            dense = np.zeros(np.shape(start), dtype=np.int64)
        out = self._upto_many(end) - self._upto_many(np.minimum(start, end))
        return np.asarray(dense + np.maximum(out, 0), dtype=np.int64)

    def data_in(self, start: int, end: int) -> int:
        """Bytes the base holds on disk within [start, end), with blocks rounded out to
        FS_BLOCK: its content's, and all of them below ``dense_size``."""
        end = min(end, self.size)
        dense = max(0, min(end, self.dense_size) - start)
        start = max(start, self.dense_size)
        if end <= start:
            return dense
        return dense + self._upto(end) - self._upto(start)

    def allocated(self, start: int, end: int) -> bool:
        """Whether the backing chain holds any of [start, end) (``bdrv_is_allocated_above``):
        a raw file everywhere up to its size, holes included, a qcow2 file only where it has
        clusters (``raw_size`` 0). A first write copies from the backing only when one of its
        COW regions is allocated there (``is_zero_cow`` in block/qcow2.c); else the new cluster
        is zeroed with fallocate and only the guest bytes are written. Under an external
        snapshot, a lower qcow2 layer's cluster counts whole (``mapped``), whatever of it
        its file holds on disk."""
        return end > start and (start < self.raw_size or self.data_in(start, end) > 0
                                or self._maps(start, end))

    def _maps(self, start: int, end: int) -> bool:
        """Whether a mapped range (``mapped``) meets [start, end)."""
        i = bisect.bisect_left(self._mapped_starts, end)
        return i > 0 and self._mapped[i - 1][0] + self._mapped[i - 1][1] > start

    def grown(self, size: int) -> BaseData:
        """A raw copy of this data grown to ``size`` (``qemu-img resize``): allocated to its
        new end, holes included. The copy skips zeros (``cp --sparse=always``,
        ``real.storage.strategies.resized_base``): it holds the content only."""
        return BaseData(size, [(s, e - s) for s, e in zip(self._starts_l, self._ends_l,
                                                           strict=True)])

    def blocks(self, nblocks: int) -> np.ndarray:
        """Per 4 KiB block of [0, nblocks * 4 KiB): does the backing hold non-zero data there
        (its content)?"""
        out = np.zeros(nblocks, dtype=bool)
        for s, e in zip(self._starts.tolist(), self._ends.tolist(), strict=True):
            out[s // FS_BLOCK:min(nblocks, -(-e // FS_BLOCK))] = True
        return out

    def held_blocks(self, nblocks: int) -> np.ndarray:
        """Per 4 KiB block of [0, nblocks * 4 KiB): does the file hold a block there on disk
        (its content, and every block below ``dense_size``)? What a reflink clone shares."""
        out = self.blocks(nblocks)
        out[:-(-self.dense_size // FS_BLOCK)] = True
        return out

    @property
    def held_bytes(self) -> int:
        """Bytes the file holds on disk: what reading all of it reads."""
        return self.data_in(0, self.size)

    @property
    def data_bytes(self) -> int:
        return int(self._cum[-1])
