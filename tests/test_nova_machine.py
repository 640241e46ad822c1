"""Nova's operations are typed values dispatched by type: the validator (``Machine``), the
model's world and the real backend's carry them out by class, not by an ``op`` string."""

from __future__ import annotations

from typing import Any

import pytest

from cowbench.errors import ScenarioError
from cowbench.lifecycle import _allowed, expand_timeline, typed
from cowbench.nova.machine import (
    Boot,
    Confirm,
    Delete,
    Machine,
    Migrate,
    Resize,
    Run,
    Snapshot,
    refusal,
)
from cowbench.nova.tenancy import Tenant
from cowbench.records import Recorder
from cowbench.scenario import parse_scenario
from sim.world.timeline import World

from .test_lifecycle import life


def test_every_operation_becomes_its_class_with_its_entity() -> None:
    d = life()
    d["timeline"]["events"] += [{"t": 60, "op": "resize", "vm": "a", "root_size": "128MiB"}]
    d["timeline"]["events"].sort(key=lambda e: e["t"])
    ops = expand_timeline(parse_scenario(d))
    classes = {"boot": Boot, "run": Run, "snapshot": Snapshot, "migrate": Migrate,
               "confirm": Confirm, "delete": Delete}
    for op in ops:
        t = typed(op)
        assert type(t) is classes.get(op.op, Resize) and t.entity == op.entity
        assert (t.index, t.t, t.vm) == (op.index, op.t, op.vm)
    migrate = next(typed(o) for o in ops if o.op == "migrate")
    assert isinstance(migrate, Migrate) and (migrate.to, migrate.kind) == ("h2", "cold")


def test_the_machine_follows_who_is_where() -> None:
    s = parse_scenario(life())
    m = Machine(s, _allowed)
    at = (0, 0.0, "a", "test")
    assert refusal(m.apply(Run(*at))) == "the VM has not booted yet"
    assert refusal(m.apply(Boot(*at))) is None and m.at.host("a") == "h1"
    assert refusal(m.apply(Boot(*at))) == "the VM is already booted"
    assert refusal(m.apply(Migrate(*at, to="h1"))) == "the VM is already on that host"
    assert refusal(m.apply(Migrate(*at, to="h2"))) is None and m.at.host("a") == "h2"
    for op in (Resize(*at, root_size=1 << 30), Migrate(*at, to="h1", kind="live")):
        assert "awaits its confirm (VERIFY_RESIZE" in str(refusal(m.apply(op)))
    assert refusal(m.apply(Confirm(*at))) is None
    assert refusal(m.apply(Resize(*at, root_size=1))) == "Nova refuses to shrink a disk"
    assert refusal(m.apply(Delete(*at))) is None
    assert refusal(m.apply(Confirm(*at))) == "the VM was already deleted"


def test_a_world_carries_out_operations_by_class_and_batches_runs() -> None:
    s = parse_scenario(life())
    world = World(s, Recorder("sim", s.seed))
    world.apply(Boot(0, 0.0, "a", "test"))
    assert list(world.hosts["h1"].instances) == ["a"] and not world.hosts["h2"].instances
    with pytest.raises(TypeError, match="no executor for Run"):
        world.apply(Run(1, 0.0, "a", "test"))


SWAPPY = {"name": "tiny", "root": "96MiB", "ephemeral": "1GiB", "swap": "3MiB"}
MIB, GIB = 1 << 20, 1 << 30


def test_the_machine_keeps_each_claim_and_its_resize_copy_keeps_the_vms() -> None:
    """Who is where (``Tenancy``): host, DISK_GB claim (root + ephemeral + swap rounded up to
    a GiB) and root size; a cold migration's ``_resize`` copy keeps the claim it had."""
    s = parse_scenario(life(flavors=[SWAPPY]))
    m = Machine(s, _allowed)
    at = (0, 0.0, "a", "test")
    m.apply(Boot(*at))
    assert m.at["a"] == Tenant("h1", 96 * MIB + 2 * GIB, 96 * MIB)
    m.apply(Resize(*at, root_size=128 * MIB))
    assert m.at["a"] == Tenant("h1", 128 * MIB + 2 * GIB, 128 * MIB)
    m.apply(Migrate(*at, to="h2"))
    assert m.at["a"] == Tenant("h2", 128 * MIB + 2 * GIB, 128 * MIB)
    [copy] = m.resizes.copies()
    assert (copy.host, copy.need) == ("h1", 128 * MIB + 2 * GIB)
    m.apply(Delete(*at))
    assert "a" not in m.at and not list(m.resizes.copies())


def _room(*evs: dict[str, Any], capacity: int, b: str = "h2") -> list[tuple[str, str]]:
    """The problems of ``a`` booted on h1 of ``capacity`` bytes, then ``evs`` (``b`` boots
    on its host ``b`` at t=0 unless they boot it)."""
    d = life(flavors=[SWAPPY])
    d["vms"].append({"name": "b", "image": "img", "flavor": "tiny", "host": b})
    d["hosts"][0]["capacity_bytes"] = capacity
    d["timeline"]["events"] = [{"t": 0, "op": "boot", "vm": "a"}, *evs]
    try:
        parse_scenario(d)
    except ScenarioError as err:
        return err.problems
    return []


def test_the_scheduler_claims_as_the_machine_and_leaves_a_shrink_to_it() -> None:
    """The scheduler's record is the machine's: a resize claims the new root beside the
    flavor's ephemeral and swap; a shrink Nova refuses claims nothing new."""
    claim = 96 * MIB + 2 * GIB
    grow = {"t": 8, "op": "resize", "vm": "a", "root_size": "97MiB"}
    [(path, reason)] = _room(grow, capacity=claim)
    assert path == "timeline.events[1]" and "no room on host 'h1'" in reason
    assert "it claims 2.1 GiB of DISK_GB, beside 0 B claimed there by the VMs placed" in reason
    assert _room(grow, capacity=claim + MIB) == []
    shrink = {"t": 5, "op": "resize", "vm": "a", "root_size": "64MiB"}
    b = {"t": 6, "op": "boot", "vm": "b"}
    assert [p for _, p in _room(shrink, b, capacity=2 * claim - 32 * MIB, b="h1")] == [
        "resize of 'a' at t=5 s: Nova refuses to shrink a disk",
        "boot of 'b' at t=6 s: no room on host 'h1': it claims 2.1 GiB of DISK_GB, beside "
        "2.1 GiB claimed there by the VMs placed, of 4.2 GiB (capacity 4.2 GiB - reserved 0 B x "
        "allocation ratio 1)"]
