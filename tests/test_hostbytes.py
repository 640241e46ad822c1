"""Host bytes of qcow2 metadata (issue 19, point 5): what qemu-nbd reads and writes beyond the
guest's data, pinned to strace and /proc/PID/io of qemu-nbd (QEMU 7.2, cache=none) and, for
the real backend, to an oracle run where metadata dominates (sim/storage/qcow2cache.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cowbench.scenario import Workload, parse_scenario
from sim.storage.disk import BaseData, HostIO, Qcow2Image, add_io
from sim.storage.qcow2_ext import Qcow2ExtImage
from sim.workload.fio import io_stream, job_seed

from .conftest import needs_tools

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def base() -> BaseData:
    return BaseData(2 * GiB, [(0, GiB)])


def run(img: Qcow2Image, name: str, **job: object) -> HostIO:
    """fio's job ``name`` through the image, then the flush, as one qemu-nbd session."""
    wl = Workload(**job)
    io = HostIO()
    for chunk in io_stream(wl, 2 * GiB, job_seed(wl, 0, 0, 0, name)):
        for off, n, w in zip(chunk.offsets.tolist(), chunk.lengths.tolist(),
                             chunk.is_write.tolist(), strict=True):
            add_io(io, img.write(off, n) if w else img.read(off, n))
    add_io(io, img.flush())
    return io


def test_the_first_read_of_a_session_loads_the_refcount_block():
    """strace of qemu-nbd: 32 MiB written in 2 MiB blocks, a new session, 1 MiB of random
    4 KiB reads: the overlay gave the refcount block (2 MiB at 4 MiB, read by
    qcow2_detect_metadata_preallocation at the first block-status query), the L2 table
    (2 MiB at 8 MiB), and the data; /proc/PID/io: 4726784 bytes read."""
    img = Qcow2Image(2 * GiB, 2 * MiB, backing=base())
    run(img, "s2m", rw="write", bs=2 * MiB, io_size=32 * MiB)
    img.open()
    io = run(img, "s2m", rw="randread", bs=4096, io_size=MiB)
    assert io.read_bytes == 4726784 and io.write_bytes == 0


def test_a_fresh_overlay_reads_its_refcount_block_once_for_reads():
    """/proc/PID/io: 32 MiB of random 4 KiB reads on a new 64 KiB overlay read 64 KiB more
    than the guest's data from the base; a second read adds nothing."""
    img = Qcow2Image(2 * GiB, 64 * KiB, backing=base())
    first = img.read(0, 4096)
    assert first.read_bytes == 64 * KiB + 4096
    assert img.read(GiB - 4096, 4096).read_bytes == 4096
    assert img.read(GiB, 4096).read_bytes == 0  # a hole of the base moves nothing


def test_extended_l2_writes_of_a_new_session_read_the_l2_tables():
    """/proc/PID/io: 1 MiB of random 4 KiB writes on a 64 KiB extended-L2 overlay, then the
    same job again in a new session (same offsets, so subclusters already allocated): the
    second session read 524288 bytes, its eight L2 tables, and wrote the guest's 1 MiB."""
    img = Qcow2ExtImage(2 * GiB, 64 * KiB, backing=base())
    run(img, "w1x", rw="randwrite", bs=4096, io_size=MiB)
    img.open()
    io = run(img, "w1x", rw="randwrite", bs=4096, io_size=MiB)
    assert (io.read_bytes, io.write_bytes) == (524288, MiB)


def test_extended_l2_metadata_writes_match_strace():
    """strace of qemu-nbd, 8192 random 4 KiB writes (job rw64x) on a 64 KiB extended-L2
    overlay of a 1 GiB-data base, then a flush: 35983360 bytes in pwrite64 calls (8192 of
    4 KiB, 37 of 64 KiB, 8 of 512 B) and one 64 KiB read."""
    img = Qcow2ExtImage(2 * GiB, 64 * KiB, backing=base())
    io = run(img, "rw64x", rw="randwrite", bs=4096, io_size=32 * MiB)
    assert (io.read_bytes, io.write_bytes) == (65536, 35983360)


def test_the_l2_cache_holds_32_mib_of_tables_least_recently_used_out():
    """QEMU's default l2-cache-size on Linux: the whole disk's tables up to 32 MiB, one entry
    per table: 512 tables at 64 KiB clusters. A 300 GiB disk has 600; after a reopen, the
    513th table read evicts the first, which is read again (and written back if dirty)."""
    img = Qcow2Image(300 * GiB, 64 * KiB)
    span = img.l2_entries * 64 * KiB  # guest bytes one table maps
    for t in range(600):
        img.write(t * span, 4096)
    img.flush()
    img.open()
    assert img.l2_cached.capacity == 512
    reads = [img.read(t * span, 4096).read_bytes for t in range(513)]
    assert reads[0] == 64 * KiB + 4096 + 64 * KiB  # the refcount block, the table, the data
    assert set(reads[1:]) == {64 * KiB + 4096}
    assert img.read(0, 4096).read_bytes == 64 * KiB + 4096  # evicted: read again
    assert img.read(512 * span, 4096).read_bytes == 4096  # still cached
    small = Qcow2Image(2 * GiB, 2 * MiB)
    assert small.l2_cached.capacity == 2  # QEMU's minimum: two entries


def _vm(name: str, workload: str, cluster: str = "64KiB", ext: bool = False,
        size: str = "2GiB") -> dict[str, object]:
    return {"name": name, "image": "base", "root_size": size, "workload": workload,
            "strategy": {"kind": "qcow2_overlay", "cluster_size": cluster, "extended_l2": ext}}


VMS = [  # (vm, first job, second job) on an overlay the first session wrote or read
    (_vm("x128", "w4m", "128KiB", True), "r2m"), (_vm("x2m", "w4m", "2MiB", True), "r2m"),
    (_vm("p64", "w4m"), "r2m"), (_vm("s64", "sw"), "r1m"), (_vm("s2m", "sw2m", "2MiB"), "r1m"),
    (_vm("w1x", "w1m", "64KiB", True), "w1m"), (_vm("r64", "r2m"), "r1m"),
    # 4 KiB clusters on 20 GiB: 10240 L2 tables, 40 MiB, more than the default 32 MiB cache
    # holds (8192 tables), so random I/O over the disk keeps evicting (and writing back)
    (_vm("c4k", "w96m", "4KiB", size="20GiB"), "r96m"),
]
ORACLE = {
    "name": "host-bytes", "seed": 1, "hosts": [{"name": "host1"}],
    "images": [{"name": "base", "virtual_size": "2GiB", "format": "qcow2",
                "synthetic": {"data": [{"offset": 0, "length": "256MiB"}]}}],
    "workloads": {"w4m": {"rw": "randwrite", "bs": "4k", "io_size": "4MiB"},
                  "w1m": {"rw": "randwrite", "bs": "4k", "io_size": "1MiB"},
                  "r2m": {"rw": "randread", "bs": "4k", "io_size": "2MiB"},
                  "r1m": {"rw": "randread", "bs": "4k", "io_size": "1MiB"},
                  "sw": {"rw": "write", "bs": "64k", "io_size": "16MiB"},
                  "sw2m": {"rw": "write", "bs": "2MiB", "io_size": "32MiB"},
                  "w96m": {"rw": "randwrite", "bs": "4k", "io_size": "96MiB"},
                  "r96m": {"rw": "randread", "bs": "4k", "io_size": "96MiB"}},
    "vms": [vm for vm, _ in VMS],
    "timeline": {"end_s": 100, "events": [
        *({"t": 0, "op": op, "vm": vm["name"]} for vm, _ in VMS for op in ("boot", "run")),
        *({"t": 50, "op": "run", "vm": vm["name"], "workload": again} for vm, again in VMS)]},
}


#: the oracle run's own filesystem: its base (256 MiB of data) and fetched copy, eight
#: overlays (c4k's the largest: 282 MB written), with room to spare
RUN_FS_MIB = 4096
FS_BLOCK = 4096  # ext4's block, the unit of its metadata reads
BLOCK_GROUP = 8 * FS_BLOCK * FS_BLOCK  # ext4: one bitmap block's bits, 128 MiB of 4 KiB blocks


def fs_metadata_reads(written: float) -> int:
    """The most the host filesystem may read for its own metadata while a session writes
    ``written`` bytes: one block per block group the writes can reach (they may straddle a
    group boundary, hence the one more); none where nothing is written."""
    return FS_BLOCK * (2 + int(written // BLOCK_GROUP)) if written > 0 else 0


def test_the_filesystem_metadata_allowance_is_a_block_per_group_reached():
    assert fs_metadata_reads(0) == 0
    assert fs_metadata_reads(1) == 8192
    assert fs_metadata_reads(5_305_344) == 8192  # x128's traced session: two RM reads, 8 KiB
    assert fs_metadata_reads(BLOCK_GROUP) == 12288


@pytest.mark.real
@needs_tools
def test_host_bytes_within_5_percent_where_metadata_dominates(tmp_path, small_fs, no_leaks):
    """Both backends on overlays whose second session reads or rewrites after a reopen (L2
    tables and refcount blocks read again; 4 KiB to 2 MiB clusters, with and without
    extended L2; a read-only first session too; an L2 cache too small for the disk's
    tables): every VM's host_read_bytes and
    host_write_bytes per session within 5% of qemu-nbd's /proc/PID/io, zero where it is zero
    (measured 2026-12-02: reads exact, writes within 0.5%).

    What the host's own filesystem reads is not qcow2's: ext4 reads a metadata block (REQ_META,
    a block bitmap or an extent-tree block not in the buffer cache) in the thread that
    allocates, so it lands in qemu-nbd's read_bytes. Traced (tracefs block_bio_queue, 2026-12-03)
    in a write-only first session that read 8 KiB more than predicted: two `RM` 4 KiB reads
    by qemu-nbd's workers at the first blocks of two consecutive 128 MiB block groups, beside
    qcow2's own reads, which were exact. Whether they happen depends on the host filesystem's
    cache and free space, not on the image (seen in 1 run of 4 beside busy loops, and in every
    full run on a busy day). So a session's measured reads may exceed qcow2's by at most one
    filesystem block per block group its writes can reach, never fall short of them.

    The run's disks are on a filesystem of their own (ext4, loop-mounted, :func:`small_fs`):
    on the machine's shared one, what ext4 reads for its metadata also follows what other
    writers did to it and to the buffer cache meanwhile. Three runs there beside the suite's
    other worker (load 3.2-4.1, 2026-12-03) read up to 45 KiB more than qcow2 in x2m's first
    session (2 MiB sparse clusters: an extent tree of many extents) and 12 KiB in x128's
    once (a failed run: its allowance is 8 KiB); three on a filesystem of its own read
    exactly qcow2's bytes in every session but c4k's first (8 KiB, within its 16 KiB)."""
    from cowbench.runner import run_scenario

    run = small_fs(RUN_FS_MIB) / "run"
    run_scenario(parse_scenario(ORACLE), run, "both")
    comp = pd.read_csv(run / "comparison.csv")
    rows = comp[comp.metric.isin(["host_read_bytes", "host_write_bytes"])]
    assert len(rows) == 4 * len(VMS)
    for r in rows.itertuples():
        if r.measured == 0:
            assert r.predicted == 0, r
        elif abs(r.predicted - r.measured) > 0.05 * r.measured:
            assert r.metric == "host_read_bytes", r
            session = comp.t_s.fillna(-1) == (-1 if pd.isna(r.t_s) else r.t_s)
            written = comp[(comp.entity == r.entity) & (comp.metric == "host_write_bytes")
                           & session].measured.sum()
            assert 0 < r.measured - r.predicted <= fs_metadata_reads(written), r
    reads = rows[rows.metric == "host_read_bytes"]
    assert np.count_nonzero(reads.measured) == len(reads)  # every session reads something
