"""Unwritten blocks of allocated qcow2 clusters (``Qcow2Image.holes``): a cluster zeroed with
fallocate (a write into an image with no backing data, and every cluster ``qemu-img convert``
copies into a new qcow2 file) holds data only in the 4 KiB blocks written; its others are
unwritten extents, read as zeros with no host I/O, allocated all the same. Measured with
qemu-img 7.2 on ext4 (FIEMAP of a flattened copy, qemu-nbd's /proc/PID/io): the real oracle
is tests/test_hostbytes_chain.py::test_flattened_partial_clusters_read_no_unwritten_block."""

from __future__ import annotations

import numpy as np
import pytest

from cowbench.scenario import parse_scenario
from sim.storage.disk import BaseData, Qcow2Image
from sim.storage.engine import apply_writes
from sim.storage.fs import FS_BLOCK
from sim.world.lifecycle import Instance, Layer, flattened
from sim.world.timeline import _copied

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
C = 64 * KiB


def data_read(img: Qcow2Image, offset: int, length: int) -> int:
    """Bytes a read moves beyond the metadata: the second of two (the first loads the
    tables; data is not cached, ``cache=none``)."""
    img.read(offset, length)
    return img.read(offset, length).read_bytes


def fresh() -> Qcow2Image:
    img = Qcow2Image(GiB, C)
    img.write(C + 8 * KiB, 4 * KiB)  # cluster 1: block 2 written, the other 15 zeroed
    return img


def test_a_write_into_a_zeroed_cluster_leaves_the_rest_unwritten():
    img = fresh()
    assert img.holes == {1: 0xFFFF & ~(1 << 2)}
    assert data_read(img, C + 8 * KiB, 4 * KiB) == 4 * KiB
    assert data_read(img, C, 4 * KiB) == 0
    assert data_read(img, C + 12 * KiB, 4 * KiB) == 0
    assert data_read(img, C, C) == 4 * KiB  # the whole cluster: its one written block


def test_reads_in_part_of_a_block_count_only_written_bytes():
    img = fresh()
    assert data_read(img, C + 4 * KiB + 512, 512) == 0
    assert data_read(img, C + 6 * KiB, 4 * KiB) == 2 * KiB  # 2 KiB unwritten, 2 KiB data
    assert data_read(img, C + 10 * KiB, 4 * KiB) == 2 * KiB


def test_a_write_in_place_fills_the_blocks_it_touches():
    img = fresh()
    img.write(C + 512, 512)  # a part of block 0: the block is written whole
    assert img.holes[1] == 0xFFFF & ~0b101
    assert data_read(img, C, 4 * KiB) == 4 * KiB
    img.write(C, C)
    assert img.holes == {}
    assert data_read(img, C + 12 * KiB, 4 * KiB) == 4 * KiB


def test_copy_on_write_from_a_backing_file_writes_the_whole_cluster():
    img = Qcow2Image(GiB, C, backing=BaseData(GiB, [(0, 256 * MiB)]))
    img.write(8 * KiB, 4 * KiB)
    assert img.holes == {}
    assert data_read(img, 0, 4 * KiB) == 4 * KiB


def test_a_discarded_cluster_forgets_its_unwritten_blocks():
    img = fresh()
    img.discard(C, C)
    assert img.holes == {}
    img.write(C + 4 * KiB, 4 * KiB)  # allocated anew: zeroed again around the write
    assert img.holes == {1: 0xFFFF & ~(1 << 1)}


def test_unwritten_blocks_are_allocated():
    """fallocate(ZERO_RANGE) allocates: st_blocks counts the whole cluster, as before."""
    whole = Qcow2Image(GiB, C)
    whole.write(C, C)
    img = fresh()
    assert (img.allocated_bytes, img.file_bytes) == (whole.allocated_bytes, whole.file_bytes)


def test_small_clusters_are_not_tracked():
    img = Qcow2Image(GiB, 512)
    img.write(0, 512)
    assert img.holes == {}


@pytest.mark.parametrize("backing", [None, BaseData(GiB, [(0, 256 * MiB)])])
def test_the_batch_engine_tracks_them_as_the_per_io_path(backing):
    offs = np.random.default_rng(1).integers(0, GiB // (4 * KiB), 3000) * 4 * KiB
    one, many = Qcow2Image(GiB, C, backing=backing), Qcow2Image(GiB, C, backing=backing)
    for off in offs.tolist():
        one.write(off, 4 * KiB)
    apply_writes(many, offs[:1000], np.full(1000, 4 * KiB))
    apply_writes(many, offs[1000:], np.full(2000, 4 * KiB))
    assert many.holes == one.holes
    assert bool(one.holes) == (backing is None)


SCENARIO = parse_scenario({
    "name": "u", "hosts": [{"name": "h"}],
    "images": [{"name": "img", "virtual_size": "1GiB", "format": "qcow2",
                "synthetic": {"data": [{"offset": 0, "length": "256MiB"}]}}],
    "vms": [{"name": "v", "image": "img", "root_size": "1GiB"}],
    "timeline": {"end_s": 1, "events": [{"t": 0, "op": "boot", "vm": "v"}]}})


def chain_with_partial_writes() -> Instance:
    """An overlay over the 256 MiB base whose guest wrote 4 KiB at 600 MiB + 8 KiB and
    4 KiB at 600 MiB + 64 KiB (two clusters past the base's data) and 4 KiB over the base."""
    vm = SCENARIO.vms[0]
    layer = Layer.new("disk", Qcow2Image(GiB, C, backing=BaseData(GiB, [(0, 256 * MiB)])), GiB)
    for off in (600 * MiB + 8 * KiB, 600 * MiB + C, 4 * MiB):
        layer.write(off, 4 * KiB)
    return Instance(vm, "img", [layer], GiB)


def test_a_flattened_copy_holds_only_the_blocks_with_data():
    flat = flattened(SCENARIO, chain_with_partial_writes(), "qcow2")
    assert isinstance(flat, Qcow2Image)
    g = 600 * MiB // C
    assert flat.holes == {g: 0xFFFF & ~(1 << 2), g + 1: 0xFFFF & ~1}  # the base's: whole
    assert data_read(flat, 600 * MiB, 4 * KiB) == 0
    assert data_read(flat, 600 * MiB + 8 * KiB, 4 * KiB) == 4 * KiB
    assert data_read(flat, 8 * MiB, 4 * KiB) == 4 * KiB


def test_a_flattened_copy_is_allocated_as_whole_clusters_were():
    """The copy's layout is unchanged: the clusters with any data, allocated whole, in order."""
    flat = flattened(SCENARIO, chain_with_partial_writes(), "qcow2")
    whole = Qcow2Image(GiB, C)
    for g in [*range(256 * MiB // C), 600 * MiB // C, 600 * MiB // C + 1]:
        whole.write(g * C, C)
    whole.flush()
    assert isinstance(flat, Qcow2Image)
    assert (flat.allocated_bytes, flat.file_bytes, flat.data_clusters) == \
        (whole.allocated_bytes, whole.file_bytes, whole.data_clusters)
    assert flat.data_host.tolist() == whole.data_host.tolist()


def test_an_scp_copy_writes_the_unwritten_blocks_out():
    """scp reads the zeros and writes them: its copy's clusters hold data in every block;
    rsync --sparse keeps them unwritten (it writes no zero block)."""
    flat = flattened(SCENARIO, chain_with_partial_writes(), "qcow2")
    assert isinstance(flat, Qcow2Image)
    inst = Instance(SCENARIO.vms[0], None, [Layer.new("disk", flat, GiB)], GiB)
    scp = _copied(inst, fill=True).top.image
    rsync = _copied(inst, fill=False).top.image
    assert isinstance(scp, Qcow2Image) and isinstance(rsync, Qcow2Image)
    assert scp.holes == {} and rsync.holes == flat.holes
    assert data_read(scp, 600 * MiB, 4 * KiB) == FS_BLOCK
