"""benchmarks/io_groups.py: what the block device did during a group's real run, from the
kernel's counters (``--disk-counters``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import load_benchmark

io_groups = load_benchmark("io_groups")

#: a ``stat`` file of the kernel's (Documentation/block/stat.rst): 17 fields
STAT = "  84018 12 2150000 13440 42782 5 3200000 6200 3 9000 19640 0 0 0 0 100 50\n"


def test_a_devices_stat_gives_its_reads_and_writes() -> None:
    assert io_groups.parse_disk_stat(STAT) == (84018, 2150000, 13440, 42782, 3200000, 6200)


def test_what_the_device_did_between_two_readings() -> None:
    before = (1000, 8000, 100, 500, 4000, 50)
    after = (3000, 24000, 400, 1500, 132000, 350)
    # 2,000 reads of 4 KiB at 150 us; 1,000 writes of 64 KiB at 300 us
    assert io_groups.disk_line(before, after) == (
        "reads 2,000 of 4.0 KiB at 150 us; writes 1,000 of 64.0 KiB at 300 us")
    assert io_groups.disk_line(before, before) == "reads 0; writes 0"


def test_a_path_with_no_block_device_has_no_counters(tmp_path: Path) -> None:
    assert io_groups.disk_counters(Path("/proc")) is None  # procfs: no device behind it
    dev = os.stat(tmp_path).st_dev
    if not Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/stat").exists():
        pytest.skip(f"{tmp_path} is on a filesystem with no block device's counters")
    got = io_groups.disk_counters(tmp_path)
    assert got is not None and all(x >= 0 for x in got)
