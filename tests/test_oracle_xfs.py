"""Oracle for qcow2 files on XFS: the allocation the model predicts for a run whose hosts are on
the reflink XFS (``sim.storage.xfs``), against qemu-img/qemu-io on a loop-mounted XFS made as the
real backend makes it (``real.storage.reflink.xfs_mount``), written as qemu-nbd writes
(``--cache=none``, threads), measured as it measures (``xfs_spaceman prealloc -s``, then
``st_blocks * 512``). QEMU's 1 MiB extent size hint makes XFS allocate whole pieces that ext4
leaves as holes: the figures below are a user's (findings ut-strat F1), the model's ext4 ones
before it knew."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cowbench.fsinfo import filesystem_of
from cowbench.scenario import Strategy
from real.storage.reflink import _ROW, collect_cow_reservations
from sim.storage.disk import BaseData, Qcow2Image
from sim.storage.strategies import overlay
from sim.storage.xfs import XFS_EXTSIZE_HINT, bmbt_blocks, xfs_layout

from .conftest import needs_tools
from .test_oracle_reflink import xfs_with_base

if TYPE_CHECKING:
    import pandas as pd

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
SIZE = 1 * GiB
BASE_DATA = [(0, 256 * MiB)]
CAN_LOOP = os.geteuid() == 0 and Path("/dev/loop-control").exists()
pytestmark = [pytest.mark.real, needs_tools,
              pytest.mark.skipif(not CAN_LOOP, reason="needs root and loop devices")]

#: (cluster size, extended L2) -> allocated bytes after a 4 KiB write at 4 KiB and one at
#: 512 MiB, measured on the run's XFS (and equal to qemu-io's on a hand-made one; 2 MiB
#: clusters without extended L2 on the hand-made one only: as on ext4, each cluster written
#: whole at a hint-aligned offset)
TWO_WRITES = {(64 * KiB, False): 1_249_280, (128 * KiB, True): 1_445_888,
              (2 * MiB, True): 10_489_856, (2 * MiB, False): 12_587_008}


@pytest.fixture(scope="module")
def xfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with xfs_with_base(tmp_path_factory.mktemp("xfs"), 2 * GiB, SIZE, BASE_DATA) as mnt:
        yield mnt


def real_allocated(mnt: Path, cluster: int, extended_l2: bool,
                   writes: list[tuple[int, int]]) -> int:
    """A qcow2 overlay made the Nova way on ``mnt``, ``writes`` applied as qemu-nbd would
    (cache=none, aio=threads), then measured as the real backend measures."""
    path = mnt / "disk"
    path.unlink(missing_ok=True)
    opts = f"backing_file={mnt / 'base.raw'},backing_fmt=raw,cluster_size={cluster}"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                    opts + (",extended_l2=on" if extended_l2 else ""), str(path), str(SIZE)],
                   check=True)
    cmds = []
    for off, n in writes:
        cmds += ["-c", f"write -q -P 0x11 {off} {n}"]
    subprocess.run(["qemu-io", "-t", "none", "--aio", "threads", "-f", "qcow2", *cmds,
                    str(path)], check=True)
    collect_cow_reservations(mnt, None)
    return path.stat().st_blocks * 512


def extent_bytes(path: Path) -> int:
    """Bytes in the file's extents (FIEMAP, written and unwritten): its blocks but the extent
    btree's, whose size depends on how fragmented the free space was."""
    out = subprocess.run(["xfs_io", "-c", "fiemap -v", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return sum((int(m[1]) - int(m[0]) + 1) * 512 for m in _ROW.findall(out) if m[2] != "hole")


def model_of(cluster: int, extended_l2: bool, writes: list[tuple[int, int]]) -> Qcow2Image:
    st_ = Strategy(kind="qcow2_overlay", cluster_size=cluster, extended_l2=extended_l2)
    img = overlay(SIZE, st_, BaseData(SIZE, BASE_DATA), "xfs")
    for off, n in writes:
        img.write(off, n)
    return img


@pytest.mark.parametrize(("cluster", "extended_l2"), list(TWO_WRITES))
def test_two_writes_allocate_as_the_users_xfs_did(xfs: Path, cluster: int,
                                                  extended_l2: bool) -> None:
    """The user's case: the model on XFS equals qemu-io's file and the user's figure, byte
    for byte (the model on ext4 said 462 848, 536 576, 8 523 776 and 12 587 008)."""
    writes = [(4 * KiB, 4 * KiB), (512 * MiB, 4 * KiB)]
    real = real_allocated(xfs, cluster, extended_l2, writes)
    assert real == TWO_WRITES[cluster, extended_l2]
    assert model_of(cluster, extended_l2, writes).allocated_bytes == real


writes_st = st.lists(st.tuples(st.integers(0, SIZE // (4 * KiB) - 1),
                               st.sampled_from([4 * KiB, 16 * KiB, 64 * KiB, 1 * MiB])),
                     min_size=1, max_size=40)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=writes_st, shape=st.sampled_from(list(TWO_WRITES)))
def test_model_allocates_as_xfs(xfs: Path, raw: list[tuple[int, int]],
                                shape: tuple[int, bool]) -> None:
    """Random writes, one at a time (QEMU appends each new cluster at the file's end, so XFS
    sees them in the order the model allocates): the extents' bytes those of the model's
    layout, give or take one 1 MiB piece, and the extent btree's blocks no fewer than the
    model's (the model counts the fewest records the layout needs; a filesystem whose free
    space earlier files fragmented may need more).

    One piece either way, not exact: the same writes do not always leave the same file. The
    likeliest cause, not traced: the writes qemu-io makes as it closes the image (its cached
    L2 tables and refcount blocks, through its thread pool) reach XFS in no fixed order, and
    one landing past the allocated end before another starts its piece at another
    hint-aligned offset. Measured (2026-12-05, the same nine writes on a 64 KiB overlay eight
    times, one file after another on one XFS): 2,297,856 bytes, the model's, in 7 of 8 and
    3,346,432 in one, its piece past the file's end a whole 1 MiB further; the whole suite
    failed on that example once. The two-write cases above gave their figure 10 times of 10."""
    writes = [(b * 4 * KiB, min(n, SIZE - b * 4 * KiB)) for b, n in raw]
    real = real_allocated(xfs, *shape, writes)
    img = model_of(*shape, writes)
    data = extent_bytes(xfs / "disk")
    blocks, records = xfs_layout(img.created_bytes, img.host_written(), img.requests)
    tree = bmbt_blocks(records) * 4096
    assert img.allocated_bytes - tree == blocks * 4096
    assert abs(data - blocks * 4096) in (0, XFS_EXTSIZE_HINT), (data, blocks * 4096)
    assert real - data >= tree


def test_a_reflink_runs_qcow2_disks_are_predicted_as_on_its_xfs(tmp_path: Path,
                                                                no_leaks: None) -> None:
    """The user's hand-xfs scenario through both backends: every VM of a run with a reflink
    copy is on the run's XFS, so its qcow2 overlays are predicted as XFS allocates them, within
    1% (before: -63%, -63% and -18.7%), and the host with them; run.json says the disks were
    on XFS, beside the run directory's own filesystem (F2: it said only ext4)."""
    from cowbench.runner import run_scenario
    from cowbench.scenario import parse_scenario

    two = [(4 * KiB, 4 * KiB), (512 * MiB, 4 * KiB)]
    iolog = tmp_path / "two.iolog"
    iolog.write_text("fio version 2 iolog\n/dev/nbd0 add\n/dev/nbd0 open\n"
                     + "".join(f"/dev/nbd0 write {o} {n}\n" for o, n in two)
                     + "/dev/nbd0 close\n")
    vms = [{"name": f"c{c // KiB}k{'x' if x else ''}", "image": "base", "root_size": "1GiB",
            "workload": "two", "strategy": {"kind": "qcow2_overlay", "cluster_size": c,
                                            "extended_l2": x}}
           for c, x in [(64 * KiB, False), (128 * KiB, True), (2 * MiB, True)]]
    vms.append({"name": "rl", "image": "base", "root_size": "1GiB", "workload": "two",
                "strategy": {"kind": "reflink_copy"}})
    out = run_scenario(parse_scenario({
        "name": "hand-xfs", "seed": 1, "hosts": [{"name": "host1"}],
        "images": [{"name": "base", "virtual_size": "1GiB", "format": "qcow2",
                    "synthetic": {"data": [{"offset": 0, "length": "256MiB"}]}}],
        "workloads": {"two": {"rw": "write", "bs": "4k", "read_iolog": str(iolog)}},
        "vms": vms}), tmp_path / "run", "both")
    comp = out.comparison
    assert comp is not None
    alloc = comp[(comp.metric == "allocated_bytes")
                 & comp.entity.isin(["vm:c64k", "vm:c128kx", "vm:c2048kx", "host:host1"])]
    assert len(alloc) == 4 and (alloc.rel_error.abs() <= 0.01).all(), alloc
    measured = alloc.set_index("entity").measured
    assert measured["vm:c64k"] == TWO_WRITES[64 * KiB, False]  # the user's figures
    assert measured["vm:c128kx"] == TWO_WRITES[128 * KiB, True]
    host = json.loads((tmp_path / "run" / "run.json").read_text())["host"]  # F2
    assert host["disks_fs"] == host["model_disks_fs"] == "xfs"
    assert host["work_dir_fs"] == filesystem_of(tmp_path)[0]  # the run directory's own


def test_concurrent_writers_are_predicted_within_one_percent(tmp_path: Path,
                                                             no_leaks: None) -> None:
    """qemu-nbd's threads hand XFS the writes of iodepth 4-16 out of order, the model in the
    order QEMU allocates: sequential 1 MiB writes (a pwrite spanning clusters), random 4 KiB
    and 192 KiB ones, over 64 KiB, 128 KiB extended-L2 and 2 MiB extended-L2 clusters and a
    chain, within 1% (measured here: at most 0.39%; the ext4 model was off by up to -95.9%)."""
    from cowbench.runner import run_scenario
    from cowbench.scenario import parse_scenario

    def vm(name: str, wl: str, **st_: Any) -> dict[str, Any]:
        return {"name": name, "image": "base", "root_size": "1GiB", "workload": wl,
                **({"strategy": st_} if st_ else {})}

    ext = {"kind": "qcow2_overlay", "extended_l2": True}
    out = run_scenario(parse_scenario({
        "name": "xfs-concurrent", "seed": 5, "hosts": [{"name": "host1"}],
        "images": [{"name": "base", "virtual_size": "1GiB", "format": "qcow2",
                    "synthetic": {"data": [{"offset": 0, "length": "256MiB"}]}}],
        "strategy": {"kind": "qcow2_overlay", "cluster_size": "64KiB"},
        "workloads": {"seq": {"rw": "write", "bs": "1M", "iodepth": 4, "io_size": "96MiB"},
                      "rnd": {"rw": "randwrite", "bs": "4k", "iodepth": 16,
                              "io_size": "16MiB"},
                      "mix": {"rw": "randwrite", "bs": "192k", "iodepth": 8,
                              "io_size": "32MiB"}},
        "vms": [vm("s64k", "seq"), vm("s128kx", "seq", **ext, cluster_size="128KiB"),
                vm("r128kx", "rnd", **ext, cluster_size="128KiB"),
                vm("m2mx", "mix", **ext, cluster_size="2MiB"),
                vm("ch3", "mix", kind="snapshot_chain", chain_depth=3, cluster_size="64KiB"),
                vm("rl", "rnd", kind="reflink_copy")]}), tmp_path / "run", "both")
    comp = out.comparison
    assert comp is not None
    alloc = comp[(comp.metric == "allocated_bytes") & comp.entity.str.match("(vm|host):")]
    assert len(alloc) == 7 and (alloc.rel_error.abs() <= 0.01).all(), alloc


@pytest.mark.slow
def test_nova_lifecycle_beside_a_reflink_copy_is_predicted_within_one_percent(
        tmp_path: Path, no_leaks: None) -> None:
    """scenarios/nova-lifecycle.yaml with a reflink copy booted first: its snapshots (live,
    external, internal), migrations (cold, live block, flatten), resizes and local disks all
    on the run's XFS; every sample of every VM's and host's allocated bytes within 1% (measured
    here: at most 0.41%; the ext4 model was off by up to -3.7%, log-1's 256 KiB appends)."""
    import yaml

    from cowbench.runner import run_scenario
    from cowbench.scenario import parse_scenario

    root = Path(__file__).resolve().parent.parent
    d = yaml.safe_load((root / "scenarios" / "nova-lifecycle.yaml").read_text())
    d["vms"].append({"name": "rl-1", "image": "ubuntu", "flavor": "m1.small",
                     "host": "compute-1", "workload": "app-writes",
                     "strategy": {"kind": "reflink_copy"}})
    d["timeline"]["events"][0:0] = [{"t": 0, "op": "boot", "vm": "rl-1"},
                                    {"t": 0, "op": "run", "vm": "rl-1"}]
    out = run_scenario(parse_scenario(d), tmp_path / "run", "both")
    assert_lifecycle_within_one_percent(out.comparison)


def assert_lifecycle_within_one_percent(comp: pd.DataFrame | None) -> None:
    """Every allocated_bytes sample of a Nova lifecycle run (hundreds) within 1%: the five
    worst shown when one is not."""
    assert comp is not None
    alloc = comp[comp.metric == "allocated_bytes"]
    assert len(alloc) > 500 and (alloc.rel_error.abs() <= 0.01).all(), \
        alloc.loc[alloc.rel_error.abs().nlargest(5).index]
