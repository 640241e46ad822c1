"""Validation of large timelines (issue 17: linear in VMs and events). Its speed is a benchmark
(benchmarks/validate_speed.py); these tests pin what the faster code must still say."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

from cowbench.errors import ScenarioError
from cowbench.lifecycle import Op, expand_timeline
from cowbench.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from validate_speed import scenario as many_arrivals  # noqa: E402


def test_expanded_operations_are_what_validating_them_would_give() -> None:
    """The expansion builds its Op values without validating them again: each one equals
    the Op validated from its own fields, with the same types."""
    for s in (load_scenario(ROOT / "scenarios" / "nova-lifecycle.yaml"),
              parse_scenario(many_arrivals(50))):
        ops = expand_timeline(s)
        assert len(ops) > 30
        for op in ops:
            again = Op.model_validate(op.model_dump())
            assert again == op
            assert {k: type(v) for k, v in dict(again).items()} == \
                   {k: type(v) for k, v in dict(op).items()}


def test_a_bad_event_among_many_arrivals_is_named() -> None:
    d: dict[str, Any] = many_arrivals(2000)
    d["timeline"]["events"] = [{"t": 10, "op": "snapshot", "vm": "vm-1999"},
                               {"t": 20, "op": "run", "vm": "nobody"}]
    with pytest.raises(ScenarioError) as err:
        parse_scenario(d)
    assert err.value.problems == [
        ("timeline.events[0]", "snapshot of 'vm-1999' at t=10 s: the VM has not booted yet "
         "(the later operations of 'vm-1999' were not checked)"),
        ("timeline.events[1]", "run of 'nobody' at t=20 s: no such VM in 'vms'")]


def _migrations(confirm_at: list[float], first: float | None = None
                ) -> list[tuple[float, str]]:
    """``a`` cold-migrated at 5 s (and at ``first`` before it, if given), ``confirm_at``."""
    d: dict[str, Any] = copy.deepcopy(many_arrivals(1))
    before = [] if first is None else [
        {"t": first, "op": "migrate", "vm": "a", "to": "compute-2", "kind": "cold"}]
    d["timeline"] = {"events": [
        {"t": 0, "op": "boot", "vm": "a"}, *before,
        {"t": 5, "op": "migrate", "vm": "a", "to": "compute-1" if before else "compute-2",
         "kind": "cold"},
        *({"t": t, "op": "confirm", "vm": "a"} for t in confirm_at)]}
    d["vms"] = [{"name": "a", "image": "ubuntu", "flavor": "m1.small", "host": "compute-1"}]
    d["nova"] = {"resize_confirm_window_s": 30}
    return [(o.t, o.op) for o in expand_timeline(parse_scenario(d))]


def test_nova_confirms_by_itself_unless_a_confirm_follows_the_migration() -> None:
    assert _migrations([]) == [(0, "boot"), (5, "migrate"), (35, "confirm")]
    assert _migrations([8]) == [(0, "boot"), (5, "migrate"), (8, "confirm")]
    # a confirm before the migration is an earlier one's: Nova still confirms this one itself
    assert _migrations([1], first=0.5) == [(0, "boot"), (0.5, "migrate"), (1, "confirm"),
                                           (5, "migrate"), (35, "confirm")]
    with pytest.raises(ScenarioError, match=r"timeline.events\[2\]: confirm of 'a' at t=1 s: "
                       "Nova refuses it: the VM has no resize or cold migration to confirm"):
        _migrations([1])  # nothing to confirm at 1 s
