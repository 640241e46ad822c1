"""cowbench.nova's pure functions: placement, draws, the cache manager's pass, the clock."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cowbench.nova.clock import PASS, SAMPLE, clock_ticks, sample_times, tick_count
from cowbench.nova.draws import arrival_times, lifetimes, streams
from cowbench.nova.imagecache import HostCaches, cache_pass, first_old_pass
from cowbench.nova.placement import NO_VALID_HOST, Placement, disk_gb_bytes, inventory
from cowbench.nova.resize import ResizeCopies, auto_confirm, copy_ends, leaves_copy
from cowbench.nova.schema import (
    BothSpellings,
    Flavor,
    HostDisk,
    ImageCacheSettings,
    Lifetime,
    renamed,
)

GIB = 1 << 30


def test_disk_gb_counts_swap_in_whole_gib_and_inventory_subtracts_reserved_first() -> None:
    assert disk_gb_bytes(20 * GIB, 10 * GIB, 512 << 20) == 31 * GIB
    assert Flavor(name="f", root="2GiB", swap="1GiB").disk_gb_bytes == 3 * GIB
    assert inventory(100, 1.5, 20) == 120
    assert inventory(None) == math.inf
    assert HostDisk(capacity_bytes="10GiB", disk_allocation_ratio=2,
                    reserved_host_disk_bytes="1GiB").placement_capacity == 18 * GIB


def test_spread_picks_the_most_free_disk_and_refuses_when_nothing_fits() -> None:
    p = Placement([10.0, 10.0, 10.0])
    assert [p.select(4) for _ in range(1)] == [0]
    for h in (0, 1, 2, 0):
        assert p.select(4) == h and p.claim(h, 4)
    assert p.select(4, exclude=1) == 2  # host 1 is the source: never the destination
    assert p.select(7) == NO_VALID_HOST
    p.release(0, 8)
    assert p.select(7) == 0
    assert not p.claim(1, 7)  # a forced host may be overcommitted: the claim says so


def test_the_spread_heap_follows_claims_and_releases_lowest_index_first() -> None:
    p = Placement([10.0, 10.0, 10.0])
    assert p.place(4.0) == 0  # select and claim at once
    assert p.select(5.0) == 1 and p.select(5.0, exclude=1) == 2
    p.claim(1, 4.0)
    p.claim(2, 6.0)
    assert p.select(6.0) == 0 and p.select(6.0, exclude=0) == 1
    assert p.select(6.5) == NO_VALID_HOST and p.select(4.0, exclude=0) == 1
    assert p.place(6.5) == NO_VALID_HOST and p.used == [4.0, 4.0, 6.0]  # nothing claimed
    p.release(0, 4.0)
    assert p.select(10.0) == 0 and p.select(10.0, exclude=0) == NO_VALID_HOST
    for _ in range(100):
        p.claim(2, 1.0)
        p.release(2, 1.0)
    p.compact()
    assert len(p.heap) == 3 and p.select(6.0) == 0 and p.free().tolist() == [10.0, 6.0, 4.0]


def test_hosts_of_different_sizes_are_weighed_by_free_disk_not_by_share() -> None:
    p = Placement([inventory(100, 1.0, 20), inventory(40, 1.0)])  # 80 and 40 free
    assert [p.place(30.0) for _ in range(4)] == [0, 0, 1, NO_VALID_HOST]  # 20 and 10 left
    assert p.place(25.0) == NO_VALID_HOST


def test_the_weigher_counts_free_disk_before_the_allocation_ratio() -> None:
    """Nova's DiskWeigher weighs ``free_disk_mb``: the host's disk less the reserve and the
    claims, no ratio (the ratio only lets the filter pass more). A user's hosts a (10 GiB,
    ratio 3.0) and b (20 GiB, ratio 1.0), four VMs of 4 GiB: before, a took the first three
    (30 GiB of inventory free against 20); Nova gives b three and a the fourth."""
    a, b = HostDisk(capacity_bytes="10GiB", disk_allocation_ratio=3.0), \
        HostDisk(capacity_bytes="20GiB")
    p = Placement([a.placement_capacity, b.placement_capacity], [a.weighed_disk, b.weighed_disk])
    assert [p.place(4.0 * GIB) for _ in range(4)] == [1, 1, 1, 0]  # b 8 GiB free, a 10: a
    # the weigher's first host does not hold the claim, another does by its ratio
    q = Placement([inventory(10, 1.0), inventory(8, 3.0)], [10.0, 8.0])
    assert q.place(9.0) == 0 and q.place(9.0) == 1 and q.place(9.0) == 1
    assert q.select(9.0) == NO_VALID_HOST and q.select(6.0) == 1  # 1 and 6 left by inventory
    assert q.select(1.0) == 0 and q.select(1.0, exclude=0) == 1  # weighed 1 and -10 free
    assert p.heap == [] and len(q.free()) == 2
    r = Placement([inventory(10, 2.0), inventory(10, 2.0)], [10.0, 10.0])  # one pool: a heap
    assert len(r.heap) == 2 and [r.place(8.0) for _ in range(5)] == [0, 1, 0, 1, NO_VALID_HOST]
    q = Placement([10.0, math.inf, math.inf])  # unlimited hosts first, the least used
    assert [q.place(5.0) for _ in range(3)] == [1, 2, 1]
    assert q.select(5.0, exclude=2) == 1 and q.select(11.0) == 2


def test_unlimited_hosts_take_vms_in_turn() -> None:
    p = Placement([math.inf] * 3)
    got = []
    for _ in range(6):
        h = p.select(5)
        p.claim(h, 5)
        got.append(h)
    assert got == [0, 1, 2, 0, 1, 2]


def test_arrivals_are_a_poisson_process_bounded_by_a_count_or_an_end() -> None:
    window = arrival_times(streams(3)["arrivals"], 0.01, until=1e7)
    assert np.all(np.diff(window) >= 0) and 0 < window[0] and window[-1] <= 1e7
    assert abs(window.size - 1e5) < 5 * math.sqrt(1e5)  # Poisson count around rate x time
    capped = arrival_times(streams(3)["arrivals"], 0.01, count=2 * 10**5, until=1e7)
    assert np.array_equal(capped, window)  # a count above the expected one changes nothing
    few = arrival_times(streams(3)["arrivals"], 0.01, count=50, until=1e7)
    gaps = arrival_times(streams(3)["arrivals"], 0.01, count=50)
    assert few.size == gaps.size == 50 and np.array_equal(few, gaps)  # the first 50
    assert np.diff(gaps, prepend=0).mean() == pytest.approx(100, rel=0.5)
    with pytest.raises(ValueError, match="a count or a finite end"):
        arrival_times(streams(3)["arrivals"], 1.0)


def test_lifetimes_keep_their_prefix_and_their_mean() -> None:
    for dist in ("fixed", "exponential", "uniform", "lognormal"):
        lt = Lifetime(distribution=dist, mean_s=100, sigma=0.5)
        x = lifetimes(lt, streams(1)["lifetimes"], 20_000)
        assert np.array_equal(x[:7], lifetimes(lt, streams(1)["lifetimes"], 7))
        assert x.mean() == pytest.approx(100, rel=0.03)


def test_a_pass_touches_bases_in_use_and_removes_old_unused_ones() -> None:
    ic = ImageCacheSettings(remove_unused_original_minimum_age_s=100,
                            remove_unused_resized_minimum_age_s=10)
    mtime, gone = cache_pass(150.0, [True, False, False, False], [0, 0, 60, 120], ic,
                             resized=[False, False, False, True])
    assert mtime.tolist() == [150, 0, 60, 120]
    assert gone.tolist() == [False, True, False, True]
    off = ImageCacheSettings(remove_unused_base_images=False)
    assert not cache_pass(1e9, [[False]], [[0.0]], off)[1].any()


def test_the_many_hosts_form_removes_what_the_passes_would() -> None:
    """HostCaches (a fleet's) against cache_pass (a timeline's) pass by pass: one host, a
    Glance base and an ephemeral base in use then not (Nova's manager ages
    ``ephemeral_<GiB>_<fs>`` as a Glance base since 23.0.0)."""
    ic = ImageCacheSettings(remove_unused_original_minimum_age_s=100)
    passes = sample_times(40.0, 600.0).tolist()
    assert first_old_pass(passes, 10.0, 100.0) == 2 and first_old_pass(passes, 10.0, 100.0, 5) \
        == 5 and first_old_pass(passes, 590.0, 100.0) == len(passes)
    caches = HostCaches(1, [[0, 1]], ([7.0, 0.0], np.array([1.0, 2.0])), ic, passes)
    mtime, present, users = np.zeros(2), np.zeros(2, dtype=bool), np.zeros(2, dtype=int)
    events = {5.0: "use", 90.0: "use", 130.0: "leave", 170.0: "leave"}
    for now in sorted([*events, *passes]):
        if now in events:  # a disk made (both bases touched and in use) or gone
            if events[now] == "use":
                caches.use(0, 0, now)
                mtime[:], present[:], users[0] = now, True, users[0] + 1
            else:
                caches.hold(0, 0, -1)
                users[0] -= 1
            continue
        caches.run_pass()
        mtime, gone = cache_pass(now, [users[0] > 0] * 2, mtime, ic)
        present &= ~gone
        assert caches.present == present.tolist(), now
    assert caches.present == [False, False] and caches.fetched == [7.0]


def test_ticks_keep_an_end_on_the_grid() -> None:
    assert tick_count(0.1, 0.3) == 3 and tick_count(None, 5) == 0
    assert tick_count(1.0, math.inf) == 0
    assert sample_times(2.0, 5.0).tolist() == [2.0, 4.0]
    assert clock_ticks([2.0, 4.0], [0.0, 4.0]) == [(0.0, SAMPLE), (2.0, PASS), (4.0, PASS),
                                                    (4.0, SAMPLE)]  # the pass first
    assert sample_times(2.0, 4.0, start=True).tolist() == [0.0, 2.0, 4.0]


def test_old_spellings_are_read_with_a_warning_and_both_at_once_is_refused() -> None:
    with pytest.warns(FutureWarning, match=r"^x\.lifetime\.mean is now spelt "
                                           r"x\.lifetime\.mean_s$"):
        assert renamed({"mean": "2d"}, "x.lifetime.", {"mean": "mean_s"}) == {"mean_s": "2d"}
    with pytest.raises(BothSpellings, match="give only capacity_bytes") as info:
        renamed({"capacity": 1, "capacity_bytes": 2}, "hosts[3].", {"capacity": "capacity_bytes"})
    assert info.value.key == "hosts[3].capacity"


def test_a_resize_copy_keeps_its_claim_and_bases_until_confirmed() -> None:
    """A cold migration's ``<uuid>_resize`` copy holds its source's claim and bases (nothing
    freed when the VM leaves); its confirm frees both, through the caller's own state;
    meanwhile Nova neither migrates, resizes nor snapshots the VM (VERIFY_RESIZE)."""
    p = Placement([10.0, 10.0])
    unused: list[tuple[int, str]] = []
    copies = ResizeCopies[int, str](release=p.release,
                                    unuse=lambda h, b: unused.append((h, b)))
    p.claim(0, 4)  # boots on 0
    assert "a" not in copies and copies.refusal("a", "migrate") is None
    copies.keep("a", 0, "img", 4, t=90.0)
    p.claim(1, 4)  # migrated to 1: 0 keeps its copy
    assert "a" in copies and p.used == [4.0, 4.0] and unused == []
    assert [(c.host, c.bases) for c in copies.copies()] == [(0, "img")]
    for op in ("migrate", "resize", "snapshot"):
        assert "migration at t=1 min 30 s awaits its confirm" in str(copies.refusal("a", op))
    assert copies.refusal("a", "run") is None and copies.refusal("b", "migrate") is None
    with pytest.raises(AssertionError):
        copies.keep("a", 1, "img", 4)
    copy = copies.confirm("a")
    assert copy is not None and (copy.host, copy.need, copy.t) == (0, 4, 90.0)
    assert "a" not in copies and p.used == [0.0, 4.0] and unused == [(0, "img")]
    assert copies.confirm("a") is None and unused == [(0, "img")]


def test_nova_confirms_a_cold_migration_by_itself_after_the_window() -> None:
    assert auto_confirm(5.0, 30.0) == 35.0
    assert auto_confirm(5.0, 0.0) is None  # resize_confirm_window 0: never
    assert auto_confirm(5.0, 30.0, ends=20.0) is None  # the copy went first (a delete)
    assert auto_confirm(5.0, 30.0, ends=35.0) == 35.0
    assert copy_ends(5.0, 30.0, 20.0) == 20.0 and copy_ends(5.0, 0.0, 20.0) == 20.0
    assert copy_ends(5.0, 30.0, math.inf) == 35.0
    # which migrations leave a copy: cold (the default) and flatten; live removes its source
    assert [leaves_copy(k) for k in ("cold", None, "flatten", "live")] == [True] * 3 + [False]
