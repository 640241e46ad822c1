"""Internal snapshots (``qemu-img snapshot -c``): clusters shared inside one qcow2 file.

``qcow2_snapshot_create`` (block/qcow2-snapshot.c) copies the active L1 table into newly
allocated clusters, adds one reference to every L2 table and data cluster, and writes the
snapshot table (one entry: a 40-byte header, 24 bytes of extra data, the id and the name) into
a new cluster. Measured here (QEMU 7.2, 64 KiB clusters, 320 data clusters): the file grew by
two clusters, the last one written only 71 bytes in, so st_size ended 71 bytes past a cluster
boundary. Afterwards a write to a shared cluster copies it first (COW inside the file, from the
old cluster rather than a backing file), and the first such write under a shared L2 table
copies the table too; the old clusters stay, held by the snapshot.
"""

from __future__ import annotations

from .disk import Qcow2Image

SNAPSHOT_HEADER = 40  # QCowSnapshotHeader
SNAPSHOT_EXTRA = 24  # QCowSnapshotExtraData: vm_state_size_large, disk_size, icount


def snapshot_table_bytes(name: str, snap_id: str = "1") -> int:
    """Bytes ``qcow2_write_snapshots`` writes for a table holding one snapshot."""
    return SNAPSHOT_HEADER + SNAPSHOT_EXTRA + len(snap_id) + len(name)


def table_bytes(names: list[str]) -> int:
    """The snapshot table ``qcow2_write_snapshots`` writes: each entry padded to 8 bytes but
    the last (measured: 67 bytes for one snapshot "s1", 139 for "s1" and "s2")."""
    sizes = [snapshot_table_bytes(n, str(i)) for i, n in enumerate(names, start=1)]
    return sum(-(-x // 8) * 8 for x in sizes[:-1]) + sizes[-1]


def take_internal_snapshot(img: Qcow2Image, name: str = "golden") -> int:
    """``qemu-img snapshot -c NAME``: one more internal snapshot of ``img``; returns the first
    cluster of its copy of the L1 table.

    The active L1 table is copied into new clusters, the table of all snapshots is written
    anew into new clusters and the old table freed (its cluster reused first later; measured:
    a second snapshot left st_size 139 bytes past cluster 14, image end at cluster 15)."""
    f = img.file
    c = img.cluster_size
    l1_copy = f.take(img._l1_clusters)
    if img.l1_bytes % c:
        f.partial[l1_copy + img._l1_clusters - 1] = img.l1_bytes % c
    img.snapshots.append(name)
    img.snapshot_l1s.append(l1_copy)
    nbytes = table_bytes(img.snapshots)
    n = -(-nbytes // c)
    table = f.take(n)
    if nbytes % c:
        f.partial[table + n - 1] = nbytes % c
    if img.snapshot_table is not None:
        f.free_written(*img.snapshot_table)
    img.snapshot_table = (table, n)
    img.shared |= img.allocated
    img.l2_shared |= img.l2_allocated
    img.any_shared = True
    img.dirty_refblocks = True
    return l1_copy
