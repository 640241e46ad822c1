"""The allocation model, pinned to measurements of QEMU 7.2 (FACTS.md 2.1-2.2, E1-E7)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.storage.disk import BaseData, Qcow2Image, RawImage
from sim.storage.fs import extent_tree_bytes

GiB, MiB, KiB = 1 << 30, 1 << 20, 1 << 10


def overlay(cluster=64 * KiB, size=2 * GiB, data=((0, 64 * MiB),)):
    return Qcow2Image(size, cluster, backing=BaseData(size, list(data)))


# (cluster, empty st_size, empty st_blocks, after 3 writes: st_size, st_blocks, data clusters)
# measured: qemu-img create -f qcow2 -b base.raw -F raw -o cluster_size=C ov 2G, then qemu-io
# "write 4k 4k" "write 1G 4k" "write 1500M 4k"; stat -c '%s %b'; qemu-img check
MEASURED = [
    (512, 527872, 1032, 541696, 1064, 24),
    (4096, 20480, 40, 45056, 88, 3),
    (65536, 196640, 392, 589824, 1032, 3),
    (2 * MiB, 6291464, 12296, 16777216, 28680, 3),
]


@pytest.mark.parametrize("cluster,st0,blk0,st1,blk1,clusters", MEASURED)
def test_layout_matches_qemu(cluster, st0, blk0, st1, blk1, clusters):
    q = overlay(cluster)
    assert (q.file_bytes, q.allocated_bytes // 512) == (st0, blk0)
    for off in (4 * KiB, GiB, 1500 * MiB):
        q.write(off, 4 * KiB)
    assert (q.file_bytes, q.allocated_bytes // 512, q.data_clusters) == (st1, blk1, clusters)


def test_first_write_cow_costs_e2():
    q = overlay()
    q.write(4 * MiB, 4 * KiB)  # loads the refcount block into the cache
    aligned = q.write(1 * MiB, 4 * KiB)        # head empty: read only the tail
    assert aligned.read_bytes == 60 * KiB and aligned.cow
    mid = q.write(1 * MiB + 200 * KiB, 4 * KiB)  # head and tail: one merged read
    assert mid.read_bytes == 64 * KiB and mid.write_bytes == 64 * KiB


def test_rewrite_in_allocated_cluster_is_in_place_e3():
    q = overlay()
    q.write(0, 4 * KiB)
    again = q.write(8 * KiB, 4 * KiB)
    assert (again.read_bytes, again.write_bytes, again.cow) == (0, 4 * KiB, False)


def test_hole_in_raw_base_reads_nothing_but_allocates():
    q = overlay(data=((0, MiB),))
    q.write(0, 4 * KiB)
    io = q.write(100 * MiB + 8 * KiB, 4 * KiB)
    assert io.read_bytes == 0 and io.write_bytes == 64 * KiB
    assert q.data_clusters == 2


def test_full_cluster_write_reads_nothing_e6():
    q = overlay()
    q.write(0, 4 * KiB)
    io = q.write(2 * MiB, 64 * KiB)
    assert io.read_bytes == 0 and q.data_clusters == 2


def test_no_backing_zeroes_with_fallocate_e5():
    q = Qcow2Image(GiB)
    q.write(MiB, 4 * KiB)
    io = q.write(3 * MiB, 4 * KiB)
    assert io.read_bytes == 0 and io.write_bytes == 4 * KiB and q.data_clusters == 2


def test_metadata_io_of_two_first_writes_and_a_flush():
    """Measured with /proc/PID/io of qemu-nbd (cache=none): 4 KiB at 1M, 4 KiB at 3M, flush."""
    q = overlay(size=GiB, data=((0, 256 * MiB),))
    first = q.write(MiB, 4 * KiB)
    flush1 = q.flush()  # qemu-io flushes when it closes the export
    # 60 KiB COW read + the refcount block read into the cache (64 KiB)
    assert first.read_bytes == 124 * KiB
    # data cluster, L2 table and refblock at L2 allocation, one L1 sector; then L2 + refblock
    assert first.write_bytes + flush1.write_bytes == 328192
    second = q.write(3 * MiB, 4 * KiB)
    flush2 = q.flush()
    assert second.read_bytes == 60 * KiB
    assert second.write_bytes + flush2.write_bytes == 196608


def test_first_write_past_the_end_of_the_backing_zeroes_instead_of_copying():
    """Measured (qemu-nbd, /proc/PID/io): 8 MiB overlay on a 4 MiB raw base. A 4 KiB write at
    6 MiB reads nothing and writes 4 KiB (fallocate), then the flush writes L2 + refblock."""
    q = Qcow2Image(8 * MiB, backing=BaseData(4 * MiB, [(0, 4 * MiB)]))
    first = q.write(MiB, 4 * KiB)
    assert first.read_bytes == 124 * KiB and first.write_bytes + q.flush().write_bytes == 328192
    past = q.write(6 * MiB, 4 * KiB)
    assert past.read_bytes == 0 and past.write_bytes + q.flush().write_bytes == 135168
    assert q.data_clusters == 2


def test_resize_moves_the_l1_table_and_reuses_its_cluster():
    """Measured: 2G overlay with clusters at 0 and 600M (st 524288, 904 blocks); resize to 5G
    (st 524368, 912); a write at 3G reuses the old L1 cluster (st 655360)."""
    q = overlay(data=((0, 64 * MiB),))
    q.write(0, 4 * KiB)
    q.write(600 * MiB, 4 * KiB)
    assert (q.file_bytes, q.allocated_bytes // 512) == (524288, 904)
    q.resize(5 * GiB)
    assert (q.file_bytes, q.allocated_bytes // 512) == (524368, 912)
    q.write(3 * GiB, 4 * KiB)
    assert q.file_bytes == 655360 and q.data_clusters == 3


def test_large_file_gets_an_ext4_extent_block():
    """Measured: a 1 GiB raw base from qemu-img convert is allocated 1 GiB + 4 KiB on ext4."""
    base = RawImage(2 * GiB, BaseData(2 * GiB, [(0, GiB)]))
    assert base.allocated_bytes == GiB + 4096
    assert extent_tree_bytes([100]) == 0


@settings(max_examples=50, deadline=None)
@given(writes=st.lists(st.tuples(st.integers(0, 4095), st.sampled_from([512, 4096, 65536,
                                                                         200_000])),
                       min_size=1, max_size=60),
       cluster=st.sampled_from([4096, 65536, 2 * MiB]))
def test_properties(writes, cluster):
    """Conservation: data clusters = distinct clusters written; size grows monotonically."""
    size = 256 * MiB
    q = overlay(cluster, size, ((0, 128 * MiB),))
    touched: set[int] = set()
    last_alloc, last_size = q.allocated_bytes, q.file_bytes
    for block, length in writes:
        off = block * 64 * KiB
        length = min(length, size - off)
        q.write(off, length)
        touched |= set(range(off // cluster, (off + length - 1) // cluster + 1))
        assert q.allocated_bytes >= last_alloc and q.file_bytes >= last_size
        last_alloc, last_size = q.allocated_bytes, q.file_bytes
    assert q.data_clusters == len(touched) == int(np.count_nonzero(q.allocated))
    assert q.file_bytes == q.host_clusters * cluster
