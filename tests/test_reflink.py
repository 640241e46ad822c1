"""reflink copies on a loop-mounted XFS, in both backends (sim/storage/reflink.py,
real/storage/reflink.py)."""

import os
from pathlib import Path

import pytest

from cowbench.runner import run_scenario
from cowbench.scenario import parse_scenario
from sim.storage.disk import BaseData
from sim.storage.reflink import ReflinkCopy

from .conftest import mounts_under, needs_tools, small_dict

MiB, KiB = 1 << 20, 1 << 10
CAN_LOOP = os.geteuid() == 0 and Path("/dev/loop-control").exists()


def test_cow_unshares_only_the_written_blocks():
    r = ReflinkCopy(64 * MiB, BaseData(64 * MiB, [(0, 8 * MiB)]))
    assert (r.shared_bytes, r.exclusive_bytes) == (8 * MiB, 0)
    assert r.write(4 * KiB, 4 * KiB).cow
    r.write(30 * MiB, 64 * KiB)  # a hole of the base: new blocks, no copy
    assert r.shared_bytes == 8 * MiB - 4 * KiB
    assert r.exclusive_bytes == 4 * KiB + 64 * KiB
    assert r.allocated_bytes == 8 * MiB + 64 * KiB


@pytest.mark.real
@needs_tools
@pytest.mark.skipif(not CAN_LOOP, reason="needs root and loop devices to mount an XFS image")
def test_reflink_both_backends_agree(tmp_path: Path, no_leaks: None) -> None:
    d = small_dict(strategy={"kind": "reflink_copy"})
    for wl in d["workloads"].values():
        wl["offsets"] = "fio"
    out = run_scenario(parse_scenario(d), tmp_path / "run", "both")
    comp = out.comparison
    assert comp is not None
    vms = comp[comp.entity.str.startswith("vm:")]
    for metric in ("shared_bytes", "exclusive_bytes", "file_bytes"):
        rows = vms[vms.metric == metric]
        assert len(rows) == 3 and (rows.predicted == rows.measured).all(), rows
    # st_blocks adds XFS's extent B+tree, estimated (packed leaves): the 0.1%
    alloc = vms[vms.metric == "allocated_bytes"]
    assert len(alloc) == 3 and (alloc.rel_error.abs() <= 0.001).all(), alloc
    assert not (tmp_path / "run" / "work" / "reflink-xfs").exists()
    assert mounts_under(tmp_path) == []  # its XFS is unmounted
