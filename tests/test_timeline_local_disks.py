"""A timeline VM's local disks: a flavor's ephemeral and swap disks, made as Nova makes them.

Nova (``nova/virt/libvirt/driver.py`` ``_create_image``, the Qcow2 image backend) gives every
instance whose flavor has them ``disk.local`` and ``disk.swap``: qcow2 overlays over bases it
makes once per host in ``_base`` (``ephemeral_<GiB>_ext4``: a sparse raw file formatted by
mkfs; ``swap_<MiB>``: one made by mkswap), aged by the image cache manager as a Glance base.
A fleet counted them; until 2026-12-05 a timeline gave its VMs root disks only, so the same
VMs written as a timeline held less disk than as a fleet: per VM of a 1 GiB ephemeral and a
64 MiB swap disk 401,408 bytes of overlays less, per host 34,234,368 bytes of bases less.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cowbench.bounds import exact_cost
from cowbench.errors import ScenarioError
from cowbench.nova.instructions import Base
from cowbench.nova.machine import Boot, Delete
from cowbench.records import Recorder
from cowbench.runner import run_scenario
from cowbench.scenario import parse_scenario
from sim import simulate
from sim.fleet.fluid import OverlayGeometry
from sim.storage.fs import SWAP_BASE_BYTES, ext4_mkfs_allocated_bytes
from sim.world.timeline import World

from .conftest import needs_tools
from .test_lifecycle import life
from .test_nova_same_decisions import COMMON, DURATION, LIFETIME, SEED, VMS

MIB, GIB = 1 << 20, 1 << 30
C = 65536
LOCAL = {"name": "tiny", "root": "96MiB", "ephemeral": "1GiB", "swap": "64MiB"}
#: an empty overlay of each local disk, and the host's two bases
OVERLAYS = OverlayGeometry(GIB, C).empty_bytes + OverlayGeometry(64 * MIB, C).empty_bytes
BASES = ext4_mkfs_allocated_bytes(GIB) + SWAP_BASE_BYTES


def with_local(d: dict[str, Any]) -> dict[str, Any]:
    d = copy.deepcopy(d)
    d["flavors"] = [LOCAL]
    return d


def allocated(rec: pd.DataFrame, entity: str) -> pd.Series:
    """An entity's ``allocated_bytes`` by time, the last record of each instant."""
    x = rec[(rec.entity == entity) & (rec.metric == "allocated_bytes")]
    return x.drop_duplicates("t_s", keep="last").set_index("t_s").value


def test_a_booted_vm_has_its_local_disks_over_bases_made_once_and_loses_them_on_delete() -> None:
    s = parse_scenario(with_local(life()))
    world = World(s, Recorder("sim", s.seed))
    world.apply(Boot(0, 0.0, "a", "test"))
    eph, swap = Base.local("ephemeral", GIB), Base.local("swap", 64 * MIB)
    inst = world.hosts["h1"].instances["a"]
    assert [(b.name, x.name, x.image.virtual_size) for b, x in inst.local.items()] == [
        ("ephemeral_1_ext4", "disk.local", GIB), ("swap_64", "disk.swap", 64 * MIB)]
    assert sum(x.allocated_bytes for x in inst.local.values()) == OVERLAYS
    caches = world.hosts["h1"].caches
    assert (caches[eph].file.allocated_bytes, caches[swap].file.allocated_bytes) == (
        ext4_mkfs_allocated_bytes(GIB), SWAP_BASE_BYTES)
    world.apply(Delete(1, 70.0, "a", "test"))
    assert not world.hosts["h1"].instances and {eph, swap} <= set(caches)
    for ins in world.machine.cache_pass(1000.0):  # unused for longer than the minimum age
        world.execute(ins)
    assert not caches


def test_the_records_count_the_local_disks_per_vm_host_and_cache() -> None:
    """The whole small lifecycle (snapshots, a cold migration, a confirm, a delete): the VM,
    its hosts and their caches hold the overlays and the bases beside the root disk, none of
    it left once the VM is deleted and the cache manager has aged the bases out."""
    bare, local = simulate(parse_scenario(life()), 5), simulate(
        parse_scenario(with_local(life())), 5)
    vm = allocated(local, "vm:a") - allocated(bare, "vm:a")
    assert (vm == OVERLAYS).all(), vm
    cache = allocated(local, "cache:h1") - allocated(bare, "cache:h1")
    assert cache[0.0] == BASES and (cache[cache.index >= 360] == 0).all()
    assert (allocated(local, "cache:h1")[cache.index >= 360] == 0).all()
    # the cold migration (t=40) copies the overlays to h2 and makes its bases there (scp
    # writes an empty overlay's holes out: 196,624 bytes fill the 49 blocks it held)
    h2 = allocated(local, "host:h2") - allocated(bare, "host:h2")
    assert h2[40.0] == BASES + OVERLAYS and h2[70.0] == BASES
    h1 = allocated(local, "host:h1") - allocated(bare, "host:h1")
    assert h1[0.0] == BASES + OVERLAYS and h1[50.0] == BASES  # the _resize copy confirmed


def problems(d: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(d)
    return info.value.problems


@pytest.mark.parametrize(("key", "size", "said"), [
    ("ephemeral", "1500MiB", "must be whole GiB, not 1.5 GiB: Nova makes and names the "
                             "ephemeral base per size in GB"),
    ("swap", "1000KiB", "must be whole MiB, not 1024000 bytes: Nova makes and names the swap "
                        "base per size in MB")])
def test_a_local_disk_nova_could_not_name_is_refused_at_its_key(key: str, size: str,
                                                                said: str) -> None:
    """The bases of disk.local and disk.swap are made and named per size (``ephemeral_<GB>``,
    ``swap_<MB>``); a root may be any size (``96MiB`` here). Before, the key path was
    ``flavors[0]`` and the reason said nothing of why."""
    d = with_local(life())
    d["flavors"] = [{**LOCAL, key: size}]
    [(path, reason)] = problems(d)
    assert path == f"flavors[0].{key}" and said in reason


def test_what_is_not_modelled_is_refused_by_key_path() -> None:
    """A raw, reflink or RBD backend makes local disks otherwise (not yet built here), and a
    2012 flattening migration flattens the root disk only: refused, never modelled wrong."""
    d = with_local(life())
    d["strategy"] = {"kind": "full_copy"}
    d["timeline"]["events"] = [{"t": 0, "op": "boot", "vm": "a"}]
    [(path, reason)] = problems(d)
    assert path == "timeline.events[0]" and "flavors[0] ('tiny') has ephemeral or swap" in reason
    assert "not modelled for full_copy" in reason
    d = with_local(life())
    d["timeline"]["events"] = [{"t": 0, "op": "boot", "vm": "a"},
                               {"t": 5, "op": "migrate", "vm": "a", "to": "h2",
                                "kind": "flatten"}]
    [(path, reason)] = problems(d)
    assert path == "timeline.events[1]" and "flattening (2012) migration" in reason


def test_the_model_plans_memory_for_the_local_disks_maps() -> None:
    """The exact model's memory estimate (``cowbench.bounds``) counts each local overlay's
    allocation map, 11 bytes a cluster, as a root disk's: a 20 GiB ephemeral disk at 64 KiB
    is 3.4 MiB a VM, which 10^4 such VMs would have kept out of the budget unseen."""
    bare, local = parse_scenario(life()), parse_scenario(with_local(life()))
    assert exact_cost(local)[0] - exact_cost(bare)[0] == (GIB + 64 * MIB) // C * 11


# -- the same VMs as a fleet and as a timeline -----------------------------------------------

def _same_vms(local: bool, kind: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The VMs of tests/test_nova_same_decisions.py on hosts room for them all, as a fleet
    and as a timeline (idle: their root disks are never written), with or without a flavor
    of a 1 GiB ephemeral and a 64 MiB swap disk."""
    flavor = {"name": "f", "root": "1GiB", **({"ephemeral": "1GiB", "swap": "64MiB"}
                                              if local else {})}
    common = {**COMMON, "flavors": [flavor],
              "hosts": [{"name": "host", "count": 3, "capacity_bytes": "1TiB"}]}
    fleet = parse_scenario({**common, "name": "as-fleet", "fleet": {
        "vms": VMS, "sample_interval_s": "1h", "lifetime": LIFETIME, "flavor_mix": {"f": 1},
        "image_mix": {"img": 1}, "classes": {"idle": {}},
        "migrations": {"share": 1.0, "every_s": "6h", "kind": kind}}})
    timeline = parse_scenario({**common, "name": "as-timeline", "vms": [], "timeline": {
        "sample_interval_s": "1h", "end_s": "2d", "arrivals": [{
            "prefix": "vm", "count": 2 * VMS, "rate_per_s": VMS / DURATION, "image": "img",
            "flavor": "f", "lifetime": LIFETIME, "migrate_every_s": "6h",
            "migrate_kind": kind}]}})
    return simulate(fleet, SEED), simulate(timeline, SEED)


def _hosts(rec: pd.DataFrame) -> pd.DataFrame:
    """Every host's and cache's ``allocated_bytes`` per sample (t > 0; a timeline's last
    record of an instant), hosts as columns."""
    x = rec[rec.entity.str.match(r"^(host|cache):") & (rec.metric == "allocated_bytes")
            & (rec.t_s > 0) & (rec.t_s % 3600 == 0)]
    x = x.drop_duplicates(["t_s", "entity"], keep="last")
    return x.pivot(index="t_s", columns="entity", values="value").sort_index()


@pytest.mark.parametrize("kind", ["live", "cold"])
@pytest.mark.slow
def test_the_same_vms_as_a_fleet_and_a_timeline_hold_the_same_local_disks(kind: str) -> None:
    """Per host and sample, what the local disks add (the with-less-without difference: the
    overlays of the VMs there, a cold migration's ``_resize`` copy's too, and the bases in
    ``_base`` until the cache manager ages them out) is the same in both engines, byte for
    byte. Before: the timeline added nothing (host-001 at 2 h: 0 bytes against the fleet's
    34,635,776, its bases and one VM's overlays)."""
    (f1, t1), (f0, t0) = _same_vms(True, kind), _same_vms(False, kind)
    fleet = _hosts(f1) - _hosts(f0)
    timeline = _hosts(t1) - _hosts(t0)
    assert (fleet.loc[:, fleet.columns.str.startswith("cache:")].max() >= BASES).all()
    assert (fleet.loc[:, fleet.columns.str.startswith("host:")].max() > BASES).all()
    pd.testing.assert_frame_equal(timeline, fleet)


# -- both backends ---------------------------------------------------------------------------

@pytest.mark.real
@needs_tools
@pytest.mark.parametrize("transport,migration", [("ssh", "cold"), ("rsync", "cold"),
                                                 ("ssh", "live")])
def test_both_backends_make_copy_and_remove_the_local_disks(tmp_path: Path, transport: str,
                                                            migration: str,
                                                            no_leaks: None) -> None:
    """The real backend runs ``qemu-img create -f raw`` with ``mkfs.ext4`` and ``mkswap`` for
    the bases and ``qemu-img create -b`` for the overlays; every VM's, host's and cache's
    allocated bytes within the small lifecycle's 0.1% of the model's."""
    d = with_local(life())
    d["nova"]["remote_filesystem_transport"] = transport
    if migration == "live":  # no external snapshot under a live migration (Nova refuses)
        d["timeline"]["events"] = [e for e in d["timeline"]["events"]
                                   if e.get("kind") not in ("external",)
                                   and e["op"] != "confirm"]
        for e in d["timeline"]["events"]:
            if e["op"] == "migrate":
                e["kind"] = "live"
    out = tmp_path / "run"
    run_scenario(parse_scenario(d), out, "both")
    comp = pd.read_csv(out / "comparison.csv")
    sizes = comp[comp.metric == "allocated_bytes"]
    bad = sizes[sizes.rel_error.abs() > 0.001]
    assert bad.empty, bad
    measured = pd.read_csv(out / "measured.csv")
    cache = allocated(measured, "cache:h2")
    assert cache.max() >= BASES  # the bases made on h2 by the migration
    steps = [p.name for p in (out / "raw").rglob("*") if p.is_dir()]  # one per command
    assert sum("mkfs-ephemeral_1_ext4" in x for x in steps) == 2, sorted(steps)
    assert sum("mkswap-swap_64" in x for x in steps) == 2  # once per host
    vm = allocated(measured, "vm:a")
    assert vm.min() >= OVERLAYS
