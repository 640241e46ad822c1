"""Host bytes where the copy-on-write path decides them, against qemu-nbd's /proc/PID/io
(QEMU 7.2, cache=none): reads of preallocated extended-L2 overlays, first writes over a base
that is not allocated everywhere, and the metadata writes that refcount decrements cause.
Each case was found far off in a user's run (findings/strat-scen) and is run here small."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cowbench.scenario import parse_scenario

from .conftest import needs_tools

pytestmark = [pytest.mark.real, needs_tools]
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def host_bytes(tmp_path: Path, scenario: dict[str, Any]) -> pd.DataFrame:
    """Both backends on ``scenario``; its host byte rows of comparison.csv."""
    from cowbench.runner import run_scenario

    run = tmp_path / "run"
    run_scenario(parse_scenario(scenario), run, "both")
    comp = pd.read_csv(run / "comparison.csv")
    return comp[comp.metric.isin(["host_read_bytes", "host_write_bytes"])]


#: what qemu-nbd's read_bytes (/proc/PID/io: every read from storage the process causes) may
#: hold beyond its image's reads: one 4 KiB page. Four runs of test_rsync_chain's scenario at
#: once (2026-12-06) measured 5 of their 24 sessions' reads exactly one page over the model's
#: (in whichever session: a first run, a rerun, a copied disk's first run), the others
#: exact, none under; in a whole suite a copied disk's 69,632 bytes came as 73,728 (+5.9%)
STRAY_READ = 4096


def assert_within(rows: pd.DataFrame, tolerance: float) -> None:
    """Each row's prediction within ``tolerance`` of what was measured; for reads, of what
    was measured or of that less the one page qemu-nbd may read of its own (STRAY_READ)."""
    for r in rows.itertuples():
        measured = [r.measured] + ([r.measured - STRAY_READ] if r.metric == "host_read_bytes"
                                   and r.measured >= STRAY_READ else [])
        assert any(abs(r.predicted - m) <= tolerance * m for m in measured), r


def _image(data: list[tuple[str, str]], size: str = "256MiB") -> dict[str, Any]:
    return {"name": "base", "virtual_size": size, "format": "qcow2",
            "synthetic": {"data": [{"offset": o, "length": n} for o, n in data]}}


def test_preallocated_extended_l2_reads_fall_through_to_the_base(tmp_path, no_leaks):
    """A cluster that ``preallocation=metadata`` or ``falloc`` gave a host offset has no
    subcluster allocated: random 16 KiB reads go to the base, and read nothing where the base
    has a hole (s1b-reads: 17104896 bytes predicted before, 5226496 measured and predicted
    after). Reads within 2% (4 KiB of slack: ext4's own metadata)."""
    vms = [{"name": f"x-{p}", "image": "base", "root_size": "256MiB", "workload": "r",
            "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB",
                         "extended_l2": True, "preallocation": p}}
           for p in ("metadata", "falloc")]
    rows = host_bytes(tmp_path, {
        "name": "prealloc-reads", "seed": 3, "hosts": [{"name": "h"}],
        "images": [_image([("0", "64MiB"), ("160MiB", "8MiB")])],
        "workloads": {"r": {"rw": "randread", "bs": "16k", "iodepth": 8, "io_size": "4MiB"}},
        "vms": vms})
    reads = rows[rows.metric == "host_read_bytes"]
    assert len(reads) == 2 and (reads.measured < 2 * MiB).all()  # the base is 28% data
    assert_within(reads, 0.02)


def test_first_writes_over_a_qcow2_base_zero_where_it_has_no_clusters(tmp_path, no_leaks):
    """``force_raw_images: false``: the overlays stand on the qcow2 image itself, allocated
    only where it has data, so a first write whose COW regions fall outside its clusters
    zeroes the new cluster (fallocate) and writes the guest bytes only; the raw base of the
    same image would be copied from everywhere (s8-qcow2base, vm ch: 838713856 bytes
    predicted before, 114606592 after, 114696704 measured). Writes within 2%."""
    rows = host_bytes(tmp_path, {
        "name": "qcow2-base", "seed": 2, "hosts": [{"name": "h"}],
        "images": [_image([("0", "24MiB"), ("200MiB", "4MiB")])],
        "nova": {"force_raw_images": False},
        "workloads": {"w": {"rw": "randwrite", "bs": "16k", "iodepth": 4, "io_size": "2MiB"}},
        "vms": [{"name": "ch", "image": "base", "root_size": "256MiB", "workload": "w",
                 "strategy": {"kind": "snapshot_chain", "chain_depth": 2,
                              "cluster_size": "2MiB"}},
                {"name": "ov", "image": "base", "root_size": "256MiB", "workload": "w",
                 "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB"}}]})
    assert_within(rows[rows.metric == "host_write_bytes"], 0.02)


def test_first_writes_over_a_resized_base_copy_up_to_the_root_size(tmp_path, no_leaks):
    """``resized_base``: the overlay's backing file is the raw base grown to the root size,
    allocated to its end, so a first write past the image's end still copies its cluster
    (zeros read from the hole, the whole cluster written) (s2b-ext4, resized-b: 32057344
    bytes predicted before, 50169856 after, 49977344 measured). Writes within 2%."""
    rows = host_bytes(tmp_path, {
        "name": "resized", "seed": 5, "hosts": [{"name": "h"}],
        "images": [_image([("0", "48MiB")], size="128MiB")],
        "workloads": {"w": {"rw": "randwrite", "bs": "20k", "iodepth": 4, "io_size": "3MiB"}},
        "vms": [{"name": "rb", "image": "base", "root_size": "512MiB", "workload": "w",
                 "strategy": {"kind": "resized_base", "cluster_size": "64KiB"}}]})
    assert_within(rows[rows.metric == "host_write_bytes"], 0.02)


def test_writes_over_an_internal_snapshot_flush_metadata_at_each_turn(tmp_path, no_leaks):
    """``internal_snapshot``: a write to a shared cluster copies it and decreases the old
    one's refcount, which makes the refcount cache depend on the L2 cache; the next new
    cluster makes the L2 cache depend on the refcount cache again. Each turn writes the
    dirty tables first (s2b-ext4 internal: 21763072 bytes predicted before, 47125504
    after, 46892032 measured). Writes within 2%."""
    rows = host_bytes(tmp_path, {
        "name": "internal", "seed": 5, "hosts": [{"name": "h"}],
        "images": [_image([("0", "48MiB"), ("128MiB", "16MiB")])],
        "workloads": {"w": {"rw": "randwrite", "bs": "20k", "iodepth": 4, "io_size": "3MiB"}},
        "vms": [{"name": "int", "image": "base", "root_size": "256MiB", "workload": "w",
                 "strategy": {"kind": "internal_snapshot", "cluster_size": "64KiB"}}]})
    assert_within(rows[rows.metric == "host_write_bytes"], 0.02)


def test_discards_pay_for_the_l2_tables_and_refcount_blocks_they_change(tmp_path, no_leaks):
    """Random 4 KiB discards on 4 KiB clusters, in a session after the one that wrote the
    data: each loads its L2 table, and its refcount block into a refcount cache of four
    blocks; a miss reads the block and writes back the least recently used one, after the
    dirty L2 tables it depends on (s5c-trim2 c4k-4k: 0 read and 135168 written predicted
    before; 4358144 and 12349440 after; 4358144 and 12386304 measured). Within 2%."""
    rows = host_bytes(tmp_path, {
        "name": "trim4k", "seed": 9, "hosts": [{"name": "h"}],
        "images": [{"name": "base", "virtual_size": "256MiB", "format": "raw",
                    "synthetic": {"data": [{"offset": 0, "length": "16MiB"}]}}],
        "workloads": {
            "fill": {"rw": "write", "bs": "1MiB", "iodepth": 4, "offset": "64MiB",
                     "size": "48MiB"},
            "trim": {"rw": "randtrim", "bs": "4k", "iodepth": 4, "offset": "64MiB",
                     "size": "48MiB", "io_size": "4MiB"}},
        "vms": [{"name": "c4k", "image": "base", "root_size": "256MiB", "workload": "fill",
                 "strategy": {"kind": "qcow2_overlay", "cluster_size": "4KiB",
                              "discard": "unmap"}}],
        "timeline": {"end_s": 100, "events": [
            {"t": 50, "op": "run", "vm": "c4k", "workload": "trim"}]}})
    trim = rows[rows.t_s == 50]
    assert len(trim) == 2
    assert_within(trim, 0.02)
