"""Which filesystem a run's disks are on (cowbench.diskfs), said once for the real backend, the
model and run.json: a run with a reflink copy is on the real backend's XFS, every VM of it;
its report's facts say so beside the run directory's own filesystem (findings ut-strat F2: a
reflink run's report said "filesystem ext4")."""

from __future__ import annotations

from typing import Any

from cowbench.diskfs import disk_facts, disks_fs, on_reflink_xfs
from cowbench.notebook import facts_table
from cowbench.scenario import parse_scenario
from sim.driver import predict_space

from .conftest import small_dict

KiB = 1 << 10


def _two_vms(second: dict[str, Any]) -> dict[str, Any]:
    d = small_dict(strategy={"kind": "qcow2_overlay", "cluster_size": "128KiB",
                             "extended_l2": True})
    d["vms"] = [{**d["vms"][0], "name": "ov"}, {**d["vms"][0], "name": "other",
                                                 "strategy": second}]
    return d


def test_a_reflink_copy_puts_every_disk_on_xfs_an_rbd_clone_does_not() -> None:
    reflink = parse_scenario(_two_vms({"kind": "reflink_copy"}))
    rbd = parse_scenario(_two_vms({"kind": "rbd_clone"}))  # model only: no XFS is made
    assert on_reflink_xfs(reflink) and disks_fs(reflink) == "xfs"
    assert not on_reflink_xfs(rbd) and disks_fs(rbd) == "ext4"
    facts = disk_facts(reflink, True, "ext4")
    assert facts == {"disks_fs": "xfs", "model_disks_fs": "xfs"}
    assert disk_facts(reflink, False, "ext4") == {"model_disks_fs": "xfs"}
    assert disk_facts(rbd, True, "ext4") == {"disks_fs": "ext4", "model_disks_fs": "ext4"}


def test_the_model_allocates_the_overlay_beside_a_reflink_copy_as_xfs_does() -> None:
    """The same overlay and writes: more allocated beside a reflink copy (XFS's 1 MiB pieces,
    unwritten where not written) than beside a full copy (ext4: the blocks written)."""
    def alloc(second: dict[str, Any]) -> float:
        rec = predict_space(parse_scenario(_two_vms(second)))
        row = rec[(rec.entity == "vm:ov") & (rec.metric == "allocated_bytes")]
        return float(row.value.iloc[-1])

    on_xfs, on_ext4 = alloc({"kind": "reflink_copy"}), alloc({"kind": "full_copy"})
    assert on_xfs > on_ext4 and on_xfs % (4 * KiB) == 0


def test_the_facts_name_the_disks_filesystem_beside_the_run_directorys() -> None:
    meta = {"host": {"work_dir_fs": "ext4", "disks_fs": "xfs", "model_disks_fs": "xfs"}}
    rows = dict(facts_table(meta).itertuples(index=False))
    assert rows["run directory's filesystem"] == "ext4"
    assert rows["disks' filesystem (real)"].startswith("xfs (the run's loop-mounted")
    assert rows["disks' filesystem (model)"] == "xfs"
    meta = {"host": {"work_dir_fs": "btrfs", "disks_fs": "btrfs", "model_disks_fs": "ext4"}}
    rows = dict(facts_table(meta).itertuples(index=False))
    assert "measured on btrfs" in rows["disks' filesystem (model)"]
