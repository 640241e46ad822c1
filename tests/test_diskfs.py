"""Which filesystem a run's disks are on (cowbench.diskfs), said once for the real backend, the
model and run.json: a run with a reflink copy is on the real backend's XFS, every VM of it;
its report's facts say so beside the run directory's own filesystem (findings ut-strat F2: a
reflink run's report said "filesystem ext4")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cowbench import diskfs
from cowbench.diskfs import disk_facts, host_filesystems, on_reflink_xfs, place, placed
from cowbench.errors import ScenarioError, UsageError
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
    assert on_reflink_xfs(reflink) and host_filesystems(reflink) == {"host1": "xfs"}
    assert not on_reflink_xfs(rbd) and host_filesystems(rbd) == {"host1": "ext4"}
    facts = disk_facts(reflink, True, "ext4")
    glance = {"model_glance_fs": "ext4"}  # not looked at: the model's default
    assert facts == {"disks_fs": "xfs", "model_disks_fs": "xfs", **glance}
    assert disk_facts(reflink, False, "ext4") == {"model_disks_fs": "xfs", **glance}
    assert disk_facts(rbd, True, "ext4") == {"disks_fs": "ext4", "model_disks_fs": "ext4",
                                             **glance}


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
    assert "Glance store's filesystem (model)" not in rows  # a run.json from before it
    meta["host"]["model_glance_fs"] = "xfs"
    assert dict(facts_table(meta).itertuples(index=False))[
        "Glance store's filesystem (model)"] == "xfs"
    meta = {"host": {"work_dir_fs": "tmpfs", "disks_fs": "tmpfs", "model_disks_fs": "per host",
                     "model_disks_fs_per_host": {"a": "xfs", "b": "ext4"},
                     "storage_dirs_fs": {"a": "xfs"},
                     "model_disks_fs_notes": ["b: the disks are on tmpfs (...)"]}}
    rows = dict(facts_table(meta).itertuples(index=False))
    assert rows["disks' filesystem (model)"] == "per host: a xfs, b ext4"
    assert rows["disks' filesystem (model), note"] == "b: the disks are on tmpfs (...)"


def _hosts(*hosts: dict[str, Any], reflink: bool = False) -> Any:
    d = small_dict(hosts=list(hosts))
    d["vms"] = [{**vm, "host": hosts[0]["name"]} for vm in d["vms"]]
    if reflink:
        d["vms"][0]["strategy"] = {"kind": "reflink_copy"}
    return parse_scenario(d)


def _on(monkeypatch: Any, table: dict[str, str]) -> None:
    """filesystem_of, as if each directory under a key of ``table`` were that filesystem."""
    def fake(path: Path, mountinfo: str | None = None) -> tuple[str, str]:
        hits = [k for k in table if str(path).startswith(k)]
        return (table[max(hits, key=len)] if hits else "ext4"), "/dev/fake"

    monkeypatch.setattr(diskfs, "filesystem_of", fake)


def test_each_host_is_modelled_as_its_storage_and_the_rest_as_ext4_said(
        monkeypatch: Any, tmp_path: Path) -> None:
    """auto: each host's storage's filesystem (a storage_dir's, else the run directory's);
    one the model has no allocator for is ext4 with a note naming its hosts, once per
    filesystem (the first five, then how many more)."""
    for d in ("x", "b", "out"):
        (tmp_path / d).mkdir()
    _on(monkeypatch, {str(tmp_path / "x"): "xfs", str(tmp_path / "b"): "btrfs",
                      str(tmp_path / "out"): "zfs"})
    s = _hosts({"name": "hx", "storage_dir": str(tmp_path / "x")},
               {"name": "hb", "storage_dir": str(tmp_path / "b"), "count": 7},
               {"name": "hz"})
    placement = place(s, "both", tmp_path / "out" / "run")
    assert placement.model == {"hx": "xfs", **{f"hb-00{i}": "ext4" for i in range(1, 8)},
                               "hz": "ext4"}
    assert placement.notes == [
        f"hb-001, hb-002, hb-003, hb-004, hb-005 and 2 more hosts: the disks are on btrfs "
        f"(storage_dir {tmp_path / 'b'}), which the model has no allocator for; predicted as "
        "ext4 (the model allocates as ext4 or xfs: hosts[].filesystem)",
        "hz: the disks are on zfs (the run directory's filesystem), which the model has no "
        "allocator for; predicted as ext4 (the model allocates as ext4 or xfs: "
        "hosts[].filesystem)",
        "Glance's store: the images are on zfs (the run directory's filesystem), which the "
        "model has no allocator for; predicted as ext4"]
    ran = placed(s, placement)
    assert host_filesystems(ran) == placement.model
    facts = disk_facts(ran, True, "zfs", placement.notes)
    assert facts["model_disks_fs"] == "per host" and facts["model_disks_fs_notes"] == \
        placement.notes and facts["model_disks_fs_per_host"]["hx"] == "xfs"
    assert facts["model_glance_fs"] == "ext4"


def test_the_glance_store_is_modelled_as_the_run_directorys_filesystem(
        monkeypatch: Any, tmp_path: Path) -> None:
    """The real backend keeps its Glance store in the run directory's ``work/glance/``, a
    reflink run's too (its XFS holds the hosts' trees only), whatever the hosts'
    ``storage_dir``: the model allocates the store's files as that filesystem, says so in
    run.json (``model_glance_fs``) and keeps it in the scenario (``nova.model_glance_fs``)
    for ``cowbench repredict``."""
    for d in ("x", "out", "ext"):
        (tmp_path / d).mkdir()
    _on(monkeypatch, {str(tmp_path / "out"): "xfs", str(tmp_path / "x"): "xfs"})
    apart = _hosts({"name": "h1", "storage_dir": str(tmp_path / "x")})
    for s, out, fs in [(_hosts({"name": "h1"}), "out", "xfs"), (apart, "out", "xfs"),
                       (apart, "ext", "ext4"), (_hosts({"name": "h1"}, reflink=True), "ext",
                                                "ext4")]:
        placement = place(s, "both", tmp_path / out / "run")
        assert placement.glance == fs and not placement.notes, (s.hosts, out)
        ran = placed(s, placement)
        assert ran.nova.model_glance_fs == fs and disk_facts(ran, True, "-")[
            "model_glance_fs"] == fs
        kept = parse_scenario(yaml.safe_load(yaml.safe_dump(ran.model_dump(mode="json"))))
        assert diskfs.glance_filesystem(kept) == fs
    assert diskfs.glance_filesystem(_hosts({"name": "h1"})) == "ext4"  # outside a run


def test_a_model_only_run_looks_only_at_storage_on_this_machine(monkeypatch: Any,
                                                                tmp_path: Path) -> None:
    """--backend sim: a storage_dir not on this machine is ext4 unless its host says (said
    when auto), one here is looked at; an explicit filesystem is the planner's, unsaid."""
    _on(monkeypatch, {str(tmp_path): "xfs"})
    s = _hosts({"name": "far", "storage_dir": "/nowhere/here"},
               {"name": "told", "storage_dir": "/nowhere/here", "filesystem": "xfs"},
               {"name": "here"}, {"name": "said", "filesystem": "ext4"})
    placement = place(s, "sim", tmp_path / "run")
    assert placement.model == {"far": "ext4", "told": "xfs", "here": "xfs", "said": "ext4"}
    assert placement.notes == ["far: the disks are in storage_dir /nowhere/here, not on this "
                               "machine; predicted as ext4 (the model allocates as ext4 or "
                               "xfs: hosts[].filesystem)"]


def test_a_reflink_run_is_xfs_and_refuses_ext4_with_the_real_backend(tmp_path: Path) -> None:
    s = _hosts({"name": "h1"}, {"name": "h2", "filesystem": "ext4"}, reflink=True)
    assert place(s, "sim", tmp_path / "run").model == {"h1": "xfs", "h2": "ext4"}
    with pytest.raises(UsageError, match=r"hosts\[1\]\.filesystem: ext4, but host h2's disks "
                       r"are on xfs \(the run's loop-mounted reflink XFS\)"):
        place(s, "real", tmp_path / "run")


def test_a_fleet_is_ext4_and_refuses_xfs() -> None:
    root = Path(__file__).resolve().parent.parent
    d = yaml.safe_load((root / "scenarios" / "fleet-small.yaml").read_text())
    assert set(place(parse_scenario(d), "sim", Path("/x")).model.values()) == {"ext4"}
    d["hosts"][0]["filesystem"] = "xfs"
    with pytest.raises(ScenarioError) as err:
        parse_scenario(d)
    assert err.value.problems[0][0] == "hosts[0].filesystem"
    assert "fleet model allocates every disk as ext4" in err.value.problems[0][1]


def test_validate_says_what_the_disks_are_allocated_as(tmp_path: Path) -> None:
    from .clirun import cowbench

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(small_dict(hosts=[{"name": "h1", "filesystem": "xfs"},
                                                     {"name": "h2"}])))
    ran = cowbench("validate", str(path))
    assert ran.code == 0, ran.stderr
    assert "disks' filesystem: h1: xfs; h2: auto: the one the disks are on when the run " \
        "starts (the host's storage_dir's, else the run directory's" in \
        ran.stdout.replace("\n", " ")


def test_simulate_warns_of_a_host_it_predicts_as_ext4_unseen() -> None:
    from cowbench.api import FilesystemWarning, simulate

    d = small_dict(hosts=[{"name": "far", "storage_dir": "/nowhere/here"}])
    with pytest.warns(FilesystemWarning, match="far: the disks are in storage_dir "
                      "/nowhere/here, not on this machine; predicted as ext4"):
        simulate(d, profile=None, uncalibrated=True)


def test_the_quick_space_bound_leaves_a_host_on_xfs_to_the_model() -> None:
    """The bound is each file written in full, as ext4 holds it; on XFS a file can hold a
    1 MiB piece more (past its end), which only the model counts."""
    from cowbench.spacebound import bounded

    assert bounded(_hosts({"name": "h1"}, {"name": "h2", "filesystem": "ext4"}))
    assert not bounded(_hosts({"name": "h1"}, {"name": "h2", "filesystem": "xfs"}))
    xfs = place(_hosts({"name": "h1"}), "sim", Path("/x"))
    xfs.model["h1"] = "xfs"
    assert not bounded(placed(_hosts({"name": "h1"}), xfs))
    glance = place(_hosts({"name": "h1"}), "sim", Path("/x"))
    glance.glance = "xfs"  # a qcow2 image in the run directory on XFS: a piece past its end
    assert not bounded(placed(_hosts({"name": "h1"}), glance))


def test_a_missing_storage_dir_is_left_to_the_real_backends_own_check(tmp_path: Path) -> None:
    """A real run's storage_dir that does not exist is refused as such (``check_storage_dirs``),
    not as a filesystem its disks are not on."""
    s = _hosts({"name": "h1", "storage_dir": str(tmp_path / "gone"), "filesystem": "xfs"})
    assert place(s, "both", tmp_path / "run").model == {"h1": "xfs"}


def test_the_id_is_the_scenarios_not_the_filesystem_a_run_decided(tmp_path: Path) -> None:
    """``cowbench validate``'s id of a file is its runs' id (run.json's ``scenario.hash``):
    the filesystem a run fills in for each host (``model_disks_fs``, from where its disks
    land) is not the scenario's content; what the user writes (``filesystem``) is."""
    s = parse_scenario(small_dict())
    on_xfs = placed(s, place(s.model_copy(update={"hosts": [
        h.model_copy(update={"filesystem": "xfs"}) for h in s.hosts]}), "sim", tmp_path))
    as_ext4 = placed(s, place(s, "sim", tmp_path))
    decided = s.model_copy(update={"hosts": [h.model_copy(update={"model_disks_fs": "xfs"})
                                             for h in s.hosts]})
    assert as_ext4.hosts[0].model_disks_fs is not None
    assert as_ext4.scenario_id == s.scenario_id == decided.scenario_id
    assert on_xfs.hosts[0].model_disks_fs == "xfs" and on_xfs.scenario_id == s.scenario_id
    written = s.model_copy(update={"hosts": [h.model_copy(update={"filesystem": "xfs"})
                                             for h in s.hosts]})
    assert written.scenario_id != s.scenario_id
    glance = s.model_copy(update={"nova": s.nova.model_copy(update={"model_glance_fs": "xfs"})})
    assert glance.scenario_id == s.scenario_id  # where the run's Glance store lands
