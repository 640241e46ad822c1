"""Nova's decisions are the machine's (``cowbench.nova.machine``): it answers each operation
with instructions (``cowbench.nova.instructions``) that the model's world and the real backend
both carry out, each by class; the validator carries out none."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from cowbench.lifecycle import nova_machine, schedule
from cowbench.nova import instructions as ni
from cowbench.nova.instructions import (
    Base,
    BlockCopy,
    CopyFiles,
    FetchBase,
    FlattenCopy,
    GrowDisk,
    KeepResize,
    MakeDisk,
    MakeResizedBase,
    Refuse,
    RemoveBase,
    RemoveInstance,
    RemoveResize,
    RunWorkload,
    Sample,
    SnapshotExternal,
    SnapshotInternal,
    TouchBase,
    UploadSnapshot,
)
from cowbench.nova.machine import Boot, Confirm, Delete, Migrate, Resize, Run, Snapshot
from cowbench.scenario import parse_scenario
from cowbench.walk import Operations, Runs, walk
from real.world.lifecycle import RealWorld
from sim.world.timeline import World

from .test_lifecycle import life

MIB = 1 << 20
IMG = Base("img")  # what a copied overlay is re-pointed at


def _machine(**nova: Any) -> Any:
    d = life()
    d["vms"].append({"name": "b", "image": "img", "flavor": "tiny", "host": "h1"})
    d["nova"] = {**d["nova"], **nova}
    return nova_machine(parse_scenario(d))


def at(index: int, t: float, vm: str = "a") -> tuple[int, float, str, str]:
    return (index, t, vm, "test")


def test_a_boot_fetches_its_base_once_per_host_then_touches_it() -> None:
    m = _machine()
    assert m.apply(Boot(*at(0, 0.0))) == [FetchBase("h1", "img", 0.0),
                                          MakeDisk("a", "h1", "img", 96 * MIB)]
    assert m.apply(Boot(*at(1, 5.0, "b"))) == [TouchBase("h1", Base("img"), 5.0),
                                               MakeDisk("b", "h1", "img", 96 * MIB)]


def test_a_resized_base_disk_needs_its_copy_made_from_the_base() -> None:
    d = life(strategy={"kind": "resized_base", "cluster_size": "64KiB"})
    m = nova_machine(parse_scenario(d))
    assert m.apply(Boot(*at(0, 0.0))) == [FetchBase("h1", "img", 0.0),
                                          MakeResizedBase("h1", "img", 96 * MIB, 0.0),
                                          MakeDisk("a", "h1", "img", 96 * MIB)]
    assert m.apply(Migrate(*at(1, 9.0), to="h2", kind="live")) == [
        FetchBase("h2", "img", 9.0), MakeResizedBase("h2", "img", 96 * MIB, 9.0),
        BlockCopy("a", "h1", "h2", Base("img", 96 * MIB)), RemoveInstance("a", "h1")]


@pytest.mark.parametrize("transport", ["ssh", "rsync"])
def test_a_cold_migration_copies_by_the_transport_and_keeps_its_source(transport: str) -> None:
    m = _machine(remote_filesystem_transport=transport)
    m.apply(Boot(*at(0, 0.0)))
    assert m.apply(Migrate(*at(1, 10.0), to="h2")) == [
        FetchBase("h2", "img", 10.0), CopyFiles("a", "h1", "h2", transport, IMG),
        KeepResize("a", "h1")]
    # not again before its confirm (VERIFY_RESIZE): Nova refuses it, nothing happens
    [refused] = m.apply(Migrate(*at(2, 20.0), to="h1"))
    assert isinstance(refused, Refuse) and "the cold migration at t=10 s" in refused.reason
    assert m.at.host("a") == "h2"
    assert m.apply(Confirm(*at(3, 25.0))) == [RemoveResize("a", "h1")]
    assert m.apply(Migrate(*at(4, 30.0), to="h1")) == [
        TouchBase("h1", Base("img"), 30.0), CopyFiles("a", "h2", "h1", transport, IMG),
        KeepResize("a", "h2")]
    assert m.apply(Delete(*at(5, 50.0))) == [RemoveInstance("a", "h1"), RemoveResize("a", "h2")]


def test_a_flattened_vm_needs_no_base_and_its_source_keeps_one_until_confirmed() -> None:
    m = _machine()
    m.apply(Boot(*at(0, 0.0)))
    assert m.apply(Migrate(*at(1, 10.0), to="h2", kind="flatten")) == [
        FlattenCopy("a", "h1", "h2"), KeepResize("a", "h1")]
    assert m.cache_pass(600.0) == [TouchBase("h1", Base("img"), 600.0)]  # the _resize's
    m.apply(Confirm(*at(2, 700.0)))
    assert m.cache_pass(899.0) == []  # unused for less than 300 s: not yet
    assert m.cache_pass(900.0) == [RemoveBase("h1", Base("img"), 900.0)]
    # a flattened disk names no base: copied as it is, re-pointed at nothing
    assert m.apply(Migrate(*at(3, 940.0), to="h1")) == [
        CopyFiles("a", "h2", "h1", "ssh", None), KeepResize("a", "h2")]
    assert m.apply(Delete(*at(4, 950.0))) == [RemoveInstance("a", "h1"),
                                              RemoveResize("a", "h2")]


def test_snapshots_resizes_and_refusals() -> None:
    m = _machine(snapshot_image_format="raw")
    m.apply(Boot(*at(0, 0.0)))
    assert m.apply(Snapshot(*at(1, 1.0), kind="live")) == [
        UploadSnapshot("a", "h1", "a-snap-1", "raw")]
    assert m.apply(Snapshot(*at(2, 2.0), kind="external", name="e")) == [
        SnapshotExternal("a", "h1", "e")]
    assert m.apply(Snapshot(*at(3, 3.0), kind="internal", name="i")) == [
        SnapshotInternal("a", "h1", "i")]
    assert m.apply(Resize(*at(4, 4.0), root_size=128 * MIB)) == [GrowDisk("a", "h1", 128 * MIB)]
    assert m.apply(Resize(*at(5, 5.0), root_size=MIB)) == [
        Refuse("Nova refuses to shrink a disk")]
    assert m.apply(Run(*at(6, 6.0), workload="nope")) == [Refuse("no workload named 'nope'")]


def test_a_run_names_its_workload_host_and_the_disk_size_then() -> None:
    m = _machine()
    m.apply(Boot(*at(0, 0.0)))
    assert m.apply(Run(*at(1, 0.0))) == [RunWorkload("a", "h1", "w", 96 * MIB)]
    m.apply(Resize(*at(2, 1.0), root_size=128 * MIB))
    m.apply(Migrate(*at(3, 2.0), to="h2", kind="live"))
    assert m.apply(Run(*at(4, 3.0), workload="seq")) == [
        RunWorkload("a", "h2", "seq", 128 * MIB)]


def _instruction_types() -> set[type]:
    """Every instruction but a workload run (runs of one instant go together, in a batch)."""
    return {c for _, c in inspect.getmembers(ni, inspect.isclass)
            if issubclass(c, ni.Instruction) and c not in (ni.Instruction, RunWorkload)}


@pytest.mark.parametrize("world", [World, RealWorld])
def test_both_backends_execute_every_instruction(world: type) -> None:
    registry = world.__dict__["execute"].dispatcher.registry
    assert _instruction_types() <= set(registry)


def test_the_walk_samples_after_every_step_of_a_timeline_and_only_at_the_end_without() -> None:
    s = parse_scenario(life())
    stages = list(walk(s, nova_machine(s)))
    samples = [i.t for st in stages if isinstance(st, list) for i in st if isinstance(i, Sample)]
    steps = len(schedule(s))
    assert samples == [t for t, _, _ in schedule(s)] + [None] and len(samples) == steps + 1
    runs = [st for st in stages if isinstance(st, Runs)]
    assert [r.runs[0].workload for r in runs] == ["w", "w", "seq"]
    d = life()
    del d["timeline"]
    plain = parse_scenario(d)
    stages = list(walk(plain, nova_machine(plain)))
    assert stages[-1] == [Sample(None)]
    assert not any(isinstance(i, Sample) for st in stages[:-1] if isinstance(st, list)
                   for i in st)
    ops = [st for st in stages if isinstance(st, Operations)]
    assert ops[0].planned[0][1] == [FetchBase("h1", "img", 0.0),
                                    MakeDisk("a", "h1", "img", 96 * MIB)]
