"""The vectorised engine (sim/storage/engine.py) equals the per-I/O path exactly, batch by batch."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.storage.disk import BaseData, HostIO, Qcow2Image, RawImage
from sim.storage.disk import add_io as add
from sim.storage.engine import apply_writes, first_occurrence

MiB, KiB = 1 << 20, 1 << 10
SIZE = 64 * MiB


def state(img: Qcow2Image) -> tuple:
    return (img.data_clusters, img.file_bytes, img.allocated_bytes, img.host_clusters,
            img.n_l2, sorted(img.dirty_l2), img.dirty_refblocks, img.refblock_cached,
            img.allocated.tobytes(), img.l2_allocated.tobytes(), img.data_host.tobytes(),
            img.file.end, img.file.n_refblocks, sorted(img.holes.items()))


def totals(io: HostIO) -> tuple:
    return (io.read_bytes, io.write_bytes, io.read_ops, io.write_ops)


writes_st = st.lists(
    st.tuples(st.integers(0, SIZE // 512 - 1),
              st.sampled_from([512, 4 * KiB, 8 * KiB, 16 * KiB, 64 * KiB, 100 * KiB, MiB])),
    min_size=0, max_size=80)


@settings(max_examples=150, deadline=None)
@given(raw=writes_st, cluster=st.sampled_from([512, 4 * KiB, 64 * KiB, 256 * KiB, 2 * MiB]),
       backing=st.booleans(), cuts=st.lists(st.integers(0, 80), max_size=4),
       l2_small=st.booleans())
@pytest.mark.slow
def test_batches_equal_per_io(raw, cluster, backing, cuts, l2_small):
    writes = [(s * 512, min(n, SIZE - s * 512)) for s, n in raw]
    base = BaseData(SIZE, [(0, 20 * MiB), (36 * MiB, 4 * MiB)]) if backing else None
    # a 16 MiB-per-L2 layout at 512 B clusters makes many L2 events in a small image
    one = Qcow2Image(SIZE, cluster, backing=base, l2_cache_whole=not l2_small)
    many = Qcow2Image(SIZE, cluster, backing=base, l2_cache_whole=not l2_small)
    expected = HostIO()
    for off, n in writes:
        add(expected, one.write(off, n))
    add(expected, one.flush())
    got = HostIO()
    bounds = sorted({0, len(writes), *[min(c, len(writes)) for c in cuts]})
    for a, b in zip(bounds, bounds[1:], strict=False):
        chunk = writes[a:b]
        add(got, apply_writes(many, np.array([w[0] for w in chunk], dtype=np.int64),
                              np.array([w[1] for w in chunk], dtype=np.int64)))
    add(got, many.flush())
    assert totals(got) == totals(expected)
    assert state(many) == state(one)


def test_first_occurrence_matches_unique():
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 1000, size=5000)
    _, idx = np.unique(keys, return_index=True)
    want = np.zeros(5000, dtype=bool)
    want[idx] = True
    assert np.array_equal(first_occurrence(keys, 1000), want)


def test_raw_batch_equals_per_io():
    a, b = RawImage(SIZE), RawImage(SIZE)
    offs = np.array([0, 4096, 10 * MiB + 512, 3 * MiB], dtype=np.int64)
    lens = np.array([4096, 8192, 1024, 64 * KiB], dtype=np.int64)
    for o, n in zip(offs.tolist(), lens.tolist(), strict=True):
        a.write(o, n)
    io = apply_writes(b, offs, lens)
    assert np.array_equal(a.blocks, b.blocks)
    assert io.write_bytes == int(lens.sum())


@pytest.mark.parametrize("cluster", [4 * KiB, 64 * KiB])
@pytest.mark.slow
def test_one_million_writes_consistent(cluster):
    """A large batch: the allocation count equals the distinct clusters written."""
    rng = np.random.default_rng(7)
    offs = rng.integers(0, SIZE // 4096, size=1_000_000) * 4096
    img = Qcow2Image(SIZE, cluster, backing=BaseData(SIZE, [(0, SIZE // 2)]))
    apply_writes(img, offs, np.full(offs.shape[0], 4096))
    assert img.data_clusters == np.unique(offs // cluster).shape[0]
