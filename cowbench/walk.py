"""A timeline walked through Nova's state machine: what both backends carry out, in order.

:func:`walk` goes through the schedule (``cowbench.lifecycle.schedule``: cache manager passes,
sample ticks, the operations of each instant) with a :class:`~cowbench.nova.machine.Machine`
and yields its stages: the instructions of a cache manager pass, the operations of an instant
each with its instructions (:class:`Operations`), the workload runs that start together
(:class:`Runs`), and a :class:`~cowbench.nova.instructions.Sample` after every step and at the
end (a scenario without a timeline has only the end's). The model (``sim.world.runs``) and the
real backend (``real.world.timeline``) execute the stages; neither decides what they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .lifecycle import Op, batches, schedule, typed
from .nova.instructions import Instruction, RunWorkload, Sample, only
from .nova.machine import Machine, Operation

if TYPE_CHECKING:
    from .scenario import Scenario


@dataclass(frozen=True)
class Operations:
    """Operations of one instant, one after the other, each with the machine's answer."""

    t: float
    planned: list[tuple[Operation, list[Instruction]]]


@dataclass(frozen=True)
class Runs:
    """Workload runs that start together at ``t``: each operation with what it runs."""

    t: float
    ops: list[Op]
    runs: list[RunWorkload]


Stage = list[Instruction] | Operations | Runs


def _every(op: Op) -> bool:
    return True


def walk(s: Scenario, machine: Machine, keep: Callable[[Op], bool] = _every) -> Iterator[Stage]:
    """The stages of ``s``'s timeline in order (``keep``: the operations a backend can carry
    out; the machine sees only those)."""
    for t, kind, ops in schedule(s):
        if kind == "pass":
            yield machine.cache_pass(t)
        for is_run, batch in batches(ops):
            kept = [op for op in batch if keep(op)]
            if is_run:
                yield Runs(t, kept, [only(machine.apply(typed(op)), RunWorkload) for op in kept])
            else:
                yield Operations(t, [(op, machine.apply(op)) for op in map(typed, kept)])
        if s.timeline is not None:  # a scenario without one has one instant: its end
            yield [Sample(t)]
    yield [Sample(None)]
