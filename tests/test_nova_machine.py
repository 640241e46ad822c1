"""Nova's operations are typed values dispatched by type: the validator (``Machine``), the
model's world and the real backend's carry them out by class, not by an ``op`` string."""

from __future__ import annotations

import pytest

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
    assert refusal(m.apply(Boot(*at))) is None and m.where["a"] == "h1"
    assert refusal(m.apply(Boot(*at))) == "the VM is already booted"
    assert refusal(m.apply(Migrate(*at, to="h1"))) == "the VM is already on that host"
    assert refusal(m.apply(Migrate(*at, to="h2"))) is None and m.where["a"] == "h2"
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
    assert world.where["a"] == "h1"
    with pytest.raises(TypeError, match="no executor for Run"):
        world.apply(Run(1, 0.0, "a", "test"))
