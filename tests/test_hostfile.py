"""Host-cluster placement (sim/storage/hostfile.py), pinned to QEMU 7.2 measurements.

Measured: ``qemu-img create -f qcow2 -o cluster_size=512,refcount_bits=64 t.qcow2 64M``, then
one qemu-io run writing 512 B at 0, 512, 1024, ... (n writes); st_size / 512 after ``sync``.
The refcount table (64 entries x 64 clusters) fills at 4 096 clusters: the file jumps to the new
refcount area at 4 160 clusters and later allocations fill the hole below it.
"""

import pytest

from sim.storage.disk import Qcow2Image
from sim.storage.hostfile import refcount_blocks_for

MEASURED_ST_SIZE_CLUSTERS = [(3900, 4059), (3920, 4080), (3940, 4164), (3960, 4164),
                             (4000, 4165), (4100, 4267), (4500, 4680)]


@pytest.mark.parametrize("n,clusters", MEASURED_ST_SIZE_CLUSTERS)
def test_refcount_table_growth_matches_qemu(n, clusters):
    q = Qcow2Image(64 << 20, 512, refcount_bits=64)
    for i in range(n):
        q.write(i * 512, 512)
    assert q.file_bytes == clusters * 512


def test_refcount_metadata_is_a_fixed_point():
    # 4160 clusters at 512 B / 64-bit: 67 refcount blocks, and 1.5x room when generous
    exact = refcount_blocks_for(4160, 512, 64, generous=False)
    assert exact * 64 >= 4160 + exact + 2
    assert refcount_blocks_for(4160, 512, 64, generous=True) >= exact
