"""Oracle for reflink copies: Hypothesis write/discard traces through qemu-io on a real
``cp --reflink`` clone on a loop-mounted XFS, against sim/storage/reflink.py: shared and exclusive
bytes (FIEMAP) exact, apparent size exact."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from real.storage.reflink import collect_cow_reservations, shared_exclusive, xfs_mount
from sim.storage.disk import BaseData
from sim.storage.reflink import ReflinkCopy

from .conftest import needs_tools
from .test_oracle import BASE_DATA, SIZE

KiB, MiB = 1 << 10, 1 << 20
CAN_LOOP = os.geteuid() == 0 and Path("/dev/loop-control").exists()
pytestmark = [pytest.mark.real, needs_tools,
              pytest.mark.skipif(not CAN_LOOP, reason="needs root and loop devices")]

ops_st = st.lists(
    st.tuples(st.sampled_from(["write", "write", "discard"]),
              st.integers(0, SIZE // (4 * KiB) - 1),
              st.sampled_from([4 * KiB, 8 * KiB, 64 * KiB, 192 * KiB, MiB])),
    min_size=1, max_size=30)


@pytest.fixture(scope="module")
def xfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("reflink")
    with xfs_mount(work, 1 << 30, None) as mnt:
        base = mnt / "base.raw"
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(base), str(SIZE)],
                       check=True)
        cmds = []
        for off, n in BASE_DATA:
            cmds += ["-c", f"write -q -P 0x5a {off} {n}"]
        subprocess.run(["qemu-io", "-f", "raw", *cmds, str(base)], check=True)
        yield mnt


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=ops_st)
def test_reflink_copy_equals_xfs(xfs: Path, raw: list[tuple[str, int, int]]) -> None:
    ops = [(k, b * 4 * KiB, min(n, SIZE - b * 4 * KiB)) for k, b, n in raw]
    vm = xfs / "vm.raw"
    vm.unlink(missing_ok=True)
    subprocess.run(["cp", "--reflink=always", str(xfs / "base.raw"), str(vm)], check=True)
    cmds = []
    for k, off, n in ops:
        cmds += ["-c", f"discard -q {off} {n}" if k == "discard" else
                 f"write -q -P 7 {off} {n}"]
    subprocess.run(["qemu-io", "-d", "unmap", "-t", "none", "-f", "raw", *cmds, str(vm)],
                   check=True)
    collect_cow_reservations(xfs, None)
    model = ReflinkCopy(SIZE, BaseData(SIZE, BASE_DATA))
    for k, off, n in ops:
        if k == "write":
            model.write(off, n)
        else:
            model.discard(off, n)
    shared, exclusive = shared_exclusive(vm, None)
    assert (model.shared_bytes, model.exclusive_bytes) == (shared, exclusive)
    assert model.file_bytes == vm.stat().st_size
