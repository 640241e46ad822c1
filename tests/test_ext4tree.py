"""ext4 extent-tree growth (sim/storage/ext4tree.py)."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.storage.ext4tree import ExtentTree
from sim.storage.fs import extent_tree_bytes


def test_appends_pack_leaves_like_the_closed_form():
    for n in (1, 4, 5, 340, 341, 1360, 1361, 3729):
        t = ExtentTree()
        for i in range(n):
            t.add(2 * i, 2 * i + 1)
        assert t.extents == n
        assert t.blocks * 4096 == extent_tree_bytes([1] * n)


def test_random_order_splits_leaves_half_full():
    xs = list(range(3729))
    random.Random(1).shuffle(xs)
    t = ExtentTree()
    for i in xs:
        t.add(2 * i, 2 * i + 1)
    assert t.extents == 3729
    # measured here: 3 729 extents written out of order took 21 blocks (12 when packed)
    assert 16 <= t.blocks <= 26


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3000), unique=True, max_size=600))
def test_extents_are_the_runs_of_written_blocks_split_only_at_leaf_edges(blocks):
    t = ExtentTree()
    for b in blocks:
        t.add(b, b + 1)
    s = sorted(blocks)
    runs = sum(1 for i, b in enumerate(s) if i == 0 or s[i - 1] != b - 1)
    # ext4 merges neighbours within a leaf only, so a run can be cut where a leaf ends
    assert runs <= t.extents <= runs + t.blocks
    assert t.blocks >= extent_tree_bytes([1] * runs) // 4096
