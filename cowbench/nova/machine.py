"""Nova's operations as typed values, and the pure state they move: which VMs are booted, on
which host, with which disk size (FACTS.md section 1).

An expanded timeline's operations (``cowbench.lifecycle.Op``) become :class:`Boot`,
:class:`Run`, :class:`Snapshot`, :class:`Migrate`, :class:`Resize`, :class:`Confirm` and
:class:`Delete` (``cowbench.lifecycle.typed``); each executor dispatches on the class (``functools.
singledispatchmethod``): the model's world (``sim.world.timeline``), the real backend's
(``real.world.lifecycle``) and the validator, :class:`Machine`, which carries out nothing and
says what Nova would refuse. Pure: nothing from ``sim`` or ``real``, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import singledispatchmethod
from typing import TYPE_CHECKING, ClassVar

from .instructions import Instruction, Refuse

if TYPE_CHECKING:
    from cowbench.scenario import Scenario


@dataclass(frozen=True)
class Operation:
    """One operation of the timeline at ``t`` on VM ``vm`` (``index``: its place in order)."""

    index: int
    t: float
    vm: str
    source: str
    op: ClassVar[str] = ""

    @property
    def entity(self) -> str:
        """The operation's own entity in the records: ``op:<index>-<op>-<vm>``."""
        return f"op:{self.index:04d}-{self.op}-{self.vm}"


@dataclass(frozen=True)
class Boot(Operation):
    """The VM starts on ``host`` (its own, or the scheduler's choice) from its image."""

    host: str | None = None
    op: ClassVar[str] = "boot"


@dataclass(frozen=True)
class Run(Operation):
    """The VM runs ``workload`` (None: its own) to completion."""

    workload: str | None = None
    op: ClassVar[str] = "run"


@dataclass(frozen=True)
class Snapshot(Operation):
    """``kind`` live (delta, flatten, upload), external (deepen the chain) or internal."""

    kind: str = "live"
    name: str | None = None
    op: ClassVar[str] = "snapshot"


@dataclass(frozen=True)
class Migrate(Operation):
    """To host ``to``; ``kind`` cold (files copied), live (block migration), flatten."""

    to: str = ""
    kind: str = "cold"
    op: ClassVar[str] = "migrate"


@dataclass(frozen=True)
class Resize(Operation):
    """The root disk grows to ``root_size`` bytes."""

    root_size: int = 0
    op: ClassVar[str] = "resize"


@dataclass(frozen=True)
class Confirm(Operation):
    """A cold migration's source ``_resize`` directory is removed."""

    op: ClassVar[str] = "confirm"


@dataclass(frozen=True)
class Delete(Operation):
    """The VM's instance directory is removed (its base stays in the cache)."""

    op: ClassVar[str] = "delete"


class Machine:
    """Who is where: each VM's state (booted, deleted), host and disk size, moved on by
    :meth:`apply`, which returns what to do (:mod:`.instructions`): a :class:`Refuse` alone
    when Nova refuses the operation. The strategy's own limits are
    ``cowbench.lifecycle.STRATEGY_OPS`` (``allowed``)."""

    def __init__(self, s: Scenario, allowed: AllowedFn) -> None:
        self.s = s
        self.vms = {vm.name: vm for vm in s.vms}
        self.hosts = {h.name for h in s.hosts}
        self.where: dict[str, str] = {}
        self.state: dict[str, str] = {}
        self.size: dict[str, int] = {}
        self._allowed = allowed

    def apply(self, operation: Operation) -> list[Instruction]:
        """What to do for ``operation``, its effect on Nova's state made."""
        problem = self._problem(operation)
        return [Refuse(problem)] if problem else []

    def _problem(self, operation: Operation) -> str | None:
        if operation.vm not in self.vms:
            return "no such VM in 'vms'"
        st = self.state.get(operation.vm)
        if st == "deleted":
            return "the VM was already deleted"
        if st is None and not isinstance(operation, Boot):
            return "the VM has not booted yet"
        return self._apply(operation)

    @singledispatchmethod
    def _apply(self, operation: Operation) -> str | None:
        return self._allowed(self.s.strategy_of(self.vms[operation.vm]).kind, operation)

    @_apply.register
    def _(self, operation: Boot) -> str | None:
        vm = self.vms[operation.vm]
        if self.state.get(operation.vm) is not None:
            return "the VM is already booted"
        self.state[vm.name] = "booted"
        self.where[vm.name] = operation.host or self.s.host_of(vm).name
        self.size[vm.name] = self.s.root_size(vm)
        return None

    @_apply.register
    def _(self, operation: Run) -> str | None:
        name = operation.workload or self.vms[operation.vm].workload
        return None if name in self.s.workloads else f"no workload named {name!r}"

    @_apply.register
    def _(self, operation: Migrate) -> str | None:
        problem = self._allowed(self.s.strategy_of(self.vms[operation.vm]).kind, operation)
        if problem:
            return problem
        if operation.to not in self.hosts:
            return f"no host named {operation.to!r}"
        if operation.to == self.where[operation.vm]:
            return "the VM is already on that host"
        self.where[operation.vm] = operation.to
        return None

    @_apply.register
    def _(self, operation: Resize) -> str | None:
        problem = self._allowed(self.s.strategy_of(self.vms[operation.vm]).kind, operation)
        if problem:
            return problem
        if operation.root_size < self.size[operation.vm]:
            return "Nova refuses to shrink a disk"
        self.size[operation.vm] = operation.root_size
        return None

    @_apply.register
    def _(self, operation: Delete) -> str | None:
        self.state[operation.vm] = "deleted"
        return None


def refusal(instructions: list[Instruction]) -> str | None:
    """Why Nova refused the operation these instructions answer (None: it did not)."""
    return next((i.reason for i in instructions if isinstance(i, Refuse)), None)


if TYPE_CHECKING:
    from collections.abc import Callable

    AllowedFn = Callable[[str, Operation], str | None]
