"""Oracle for reflink copies: Hypothesis write/discard traces through qemu-io on a real
``cp --reflink`` clone on a loop-mounted XFS, against sim/storage/reflink.py: shared and exclusive
bytes (FIEMAP) exact, apparent size exact. The copies that are not reflinks (a full copy, sparse
or dense, a resized base, a cold migration's scp) share nothing on that XFS and hold what the
model says."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cowbench.scenario import Strategy
from real.measure.extents import tree_space, union_bytes
from real.storage.reflink import _ROW, collect_cow_reservations, shared_exclusive, xfs_mount
from real.storage.strategies import copy_file, make_root_disk, resized_base
from sim.storage.disk import BaseData, RawImage
from sim.storage.reflink import ReflinkCopy, counted_again
from sim.storage.strategies import root_disk

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


@contextmanager
def xfs_with_base(work: Path, fs_bytes: int, size: int,
                  data: list[tuple[int, int]]) -> Iterator[Path]:
    """The real backend's reflink XFS (``xfs_mount``) of ``fs_bytes``, holding ``base.raw``: a
    raw base of ``size`` bytes whose ``data`` extents qemu-io wrote."""
    with xfs_mount(work, fs_bytes, None) as mnt:
        base = mnt / "base.raw"
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(base), str(size)],
                       check=True)
        cmds = []
        for off, n in data:
            cmds += ["-c", f"write -q -P 0x5a {off} {n}"]
        subprocess.run(["qemu-io", "-f", "raw", *cmds, str(base)], check=True)
        yield mnt


@pytest.fixture(scope="module")
def xfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with xfs_with_base(tmp_path_factory.mktemp("reflink"), 1 << 30, SIZE, BASE_DATA) as mnt:
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


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
def test_a_full_copy_on_xfs_holds_data_of_its_own(xfs: Path, sparse: bool) -> None:
    """coreutils 9's cp clones unless told not to: on this XFS a dense copy of a base with 24
    MiB of data shared those 24 MiB and kept the 40 MiB of holes (s2-copies: 252 MiB measured
    for a 1 GiB dense copy the model put at 1 GiB)."""
    st = Strategy(kind="full_copy", sparse=sparse)
    d = xfs / f"full-{sparse}"
    d.mkdir()
    fmt = make_root_disk(st, xfs / "base.raw", d / "disk", 2 * SIZE, None, "vm")
    model = root_disk(2 * SIZE, st, BaseData(SIZE, BASE_DATA))
    assert fmt == "raw" and isinstance(model, RawImage)
    collect_cow_reservations(xfs, None)
    assert shared_exclusive(d / "disk", None) == (0, model.allocated_data_bytes)
    assert (d / "disk").stat().st_blocks * 512 == model.allocated_data_bytes


def test_a_resized_base_and_an_scp_copy_on_xfs_share_nothing(xfs: Path) -> None:
    """The resized base is a sparse copy, a cold migration's scp copy a dense one; neither may
    be a clone of its source (cp clones on XFS unless told not to)."""
    d = xfs / "resized"
    d.mkdir()
    base = d / "base"
    copy_file(xfs / "base.raw", base, True, None, "cp-base")
    resized = resized_base(base, 2 * SIZE, None)
    scp = d / "scp"
    copy_file(resized, scp, False, None, "scp-copy")
    collect_cow_reservations(xfs, None)
    data = sum(n for _, n in BASE_DATA)
    assert shared_exclusive(resized, None) == (0, data)
    assert shared_exclusive(scp, None) == (0, 2 * SIZE)


def _fiemap_blocks(path: Path) -> list[tuple[int, int]]:
    """``xfs_io fiemap -v``'s physical ranges of ``path``, in 512-byte sectors [first, last]."""
    out = subprocess.run(["xfs_io", "-c", "fiemap -v", str(path)], check=True,
                         capture_output=True, text=True).stdout
    rows = []
    for _, _, where, _ in _ROW.findall(out):
        if where != "hole":
            first, last = where.split("..")
            rows.append((int(first), int(last)))
    return rows


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raws=st.lists(ops_st, min_size=1, max_size=3))
def test_a_hosts_used_bytes_is_the_union_of_its_files_extents(
        xfs: Path, raws: list[list[tuple[str, int, int]]]) -> None:
    """A host tree of a cached base and reflink clones of it, each written (and discarded):
    its ``used_bytes`` is every physical block its files map counted once (``xfs_io
    fiemap``'s ranges, merged), what ``st_blocks`` counts besides extents kept per file; the
    model's blocks less ``counted_again`` are that union."""
    host = xfs / "host"
    shutil.rmtree(host, ignore_errors=True)
    (host / "_base").mkdir(parents=True)
    base = host / "_base" / "base"
    subprocess.run(["cp", "--reflink=never", str(xfs / "base.raw"), str(base)], check=True)
    models = []
    for i, raw in enumerate(raws):
        vm = host / f"vm{i}" / "disk"
        vm.parent.mkdir()
        subprocess.run(["cp", "--reflink=always", str(base), str(vm)], check=True)
        model = ReflinkCopy(SIZE, BaseData(SIZE, BASE_DATA))
        cmds = []
        for k, b, n in raw:
            off, n = b * 4 * KiB, min(n, SIZE - b * 4 * KiB)
            cmds += ["-c", f"discard -q {off} {n}" if k == "discard" else
                     f"write -q -P {i + 1} {off} {n}"]
            model.write(off, n) if k == "write" else model.discard(off, n)
        subprocess.run(["qemu-io", "-d", "unmap", "-t", "none", "-f", "raw", *cmds, str(vm)],
                       check=True)
        models.append(model)
    collect_cow_reservations(xfs, None)
    files = [p for p in host.rglob("*") if p.is_file()]
    ranges = {p: _fiemap_blocks(p) for p in files}
    sectors = union_bytes((a, b - a + 1) for r in ranges.values() for a, b in r)
    beyond = sum(p.stat().st_blocks - sum(b - a + 1 for a, b in ranges[p]) for p in files)
    alloc, used, _ = tree_space(host)
    assert used == (sectors + beyond) * 512
    assert alloc == sum(p.stat().st_blocks for p in files) * 512
    assert alloc - used == sum(m.shared_bytes for m in models)  # each clone's shared, again
    # the model's blocks (its extent B+tree estimate aside, checked in test_reflink): the
    # union exactly
    mapped = base.stat().st_blocks * 512 + sum(int(m.mapped.sum()) * 4 * KiB for m in models)
    assert mapped - counted_again(models, True) == sectors * 512
