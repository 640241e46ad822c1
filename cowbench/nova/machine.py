"""Nova's operations as typed values, and the pure state machine they move (FACTS.md
section 1): who is where with which disk, the bases each disk keeps in use, the ``_resize``
copies cold migrations leave, and every host's image cache with its mtimes.

An expanded timeline's operations (``cowbench.lifecycle.Op``) become :class:`Boot`,
:class:`Run`, :class:`Snapshot`, :class:`Migrate`, :class:`Resize`, :class:`Confirm` and
:class:`Delete` (``cowbench.lifecycle.typed``). :meth:`Machine.apply` dispatches on the class
(``functools.singledispatchmethod``) and answers with what to do (:mod:`.instructions`: fetch
a base, make a disk, copy files, remove a base, ...); :meth:`Machine.cache_pass` is the image
cache manager's pass. The executors carry the instructions out by class: the model's world
(``sim.world.timeline``), the real backend's (``real.world.lifecycle``) and the validator
(``cowbench.lifecycle.check_timeline``), which carries out nothing and reports a
:class:`~.instructions.Refuse`. Pure: nothing from ``sim`` or ``real``, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import singledispatchmethod
from typing import TYPE_CHECKING, ClassVar

from .fetch import ensure
from .instructions import (
    Base,
    BlockCopy,
    CopyFiles,
    FetchBase,
    FlattenCopy,
    GrowDisk,
    Instruction,
    KeepResize,
    MakeDisk,
    MakeLocalBase,
    MakeLocalDisk,
    MakeResizedBase,
    Refuse,
    RemoveBase,
    RemoveInstance,
    RemoveResize,
    RunWorkload,
    SnapshotExternal,
    SnapshotInternal,
    TouchBase,
    UploadSnapshot,
)
from .resize import ResizeCopies, leaves_copy
from .tenancy import Tenancy, claim_bytes

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
    """A cold migration's source ``_resize`` directory is removed (refused when the VM awaits
    no confirm: :data:`NOTHING_TO_CONFIRM`)."""

    op: ClassVar[str] = "confirm"


@dataclass(frozen=True)
class Delete(Operation):
    """The VM's instance directory is removed (its base stays in the cache)."""

    op: ClassVar[str] = "delete"


#: why Nova refuses a confirm (confirm_resize) of a VM that does not await one: it answers
#: 409 unless the instance is RESIZED (VERIFY_RESIZE)
NOTHING_TO_CONFIRM = ("Nova refuses it: the VM has no resize or cold migration to confirm (a "
                      "live migration needs none; an earlier confirm, its delete or Nova's own "
                      "after nova.resize_confirm_window_s confirmed the last one; a confirm at "
                      "the instant of a migration comes before it)")

#: strategies whose disk's bottom file is a qcow2 overlay naming a file in ``_base`` as its
#: backing (the last of its bases: a resized copy for ``resized_base``)
BACKED = frozenset({"qcow2_overlay", "resized_base", "snapshot_chain"})
#: strategies whose VMs' ephemeral and swap disks are modelled: Nova's Qcow2 image backend,
#: which makes them qcow2 overlays over their bases in ``_base`` (a raw, reflink or RBD
#: backend makes them otherwise, which neither backend here builds yet)
LOCAL_OVERLAYS = BACKED


class Machine:
    """Nova's state, moved on by :meth:`apply`, which returns what to do (:mod:`.instructions`;
    a :class:`Refuse` alone when Nova refuses the operation): each VM's state (booted,
    deleted), who is where with its claim and disk size (:class:`~.tenancy.Tenancy`, as the
    scheduler's), the bases each disk keeps in use; the ``_resize`` copies cold migrations
    leave, each with its claim; every host's image cache (bases and their mtimes), aged by
    :meth:`cache_pass`. The strategy's own limits are ``cowbench.lifecycle.STRATEGY_OPS``
    (``allowed``)."""

    def __init__(self, s: Scenario, allowed: AllowedFn) -> None:
        self.s = s
        self.vms = {vm.name: vm for vm in s.vms}
        self.hosts = {h.name for h in s.hosts}
        self.at = Tenancy[str]()  # who is where, its claim and disk size (as the scheduler's)
        self.state: dict[str, str] = {}
        self.bases: dict[str, tuple[Base, ...]] = {}  # a live VM's bases, on its host
        self.resizes = ResizeCopies[str, tuple[Base, ...]]()  # the _resize copies' bases
        self.cache: dict[str, dict[Base, float]] = {h.name: {} for h in s.hosts}  # -> mtime
        self.snapshots_below: dict[str, int] = {}  # a disk's layers under its top: external
        self.resized: set[str] = set()  # resized since their last confirm (VERIFY_RESIZE)
        self._allowed = allowed

    def apply(self, operation: Operation) -> list[Instruction]:
        """What to do for ``operation``, its effect on Nova's state made."""
        problem = self._problem(operation)
        return [Refuse(problem)] if problem else self._apply(operation)

    def _problem(self, operation: Operation) -> str | None:
        if operation.vm not in self.vms:
            return "no such VM in 'vms'"
        st = self.state.get(operation.vm)
        if st == "deleted":
            return "the VM was already deleted"
        if st is None and not isinstance(operation, Boot):
            return "the VM has not booted yet"
        if isinstance(operation, Boot) and st is not None:
            return "the VM is already booted"
        refused = self.resizes.refusal(operation.vm, operation.op)
        if refused:
            return refused
        return self._allowed(self.s.strategy_of(self.vms[operation.vm]).kind, operation)

    @singledispatchmethod
    def _apply(self, operation: Operation) -> list[Instruction]:
        return []

    @_apply.register
    def _(self, operation: Boot) -> list[Instruction]:
        vm = self.vms[operation.vm]
        # the scheduler's for every expanded boot; a Boot made by hand: the VM's or the first
        host = operation.host or self.s.host_of(vm).name
        size = self.s.root_size(vm)
        local = self._local_bases(vm.name)
        if isinstance(local, str):
            return [Refuse(local)]
        self.state[vm.name] = "booted"
        self.at.arrive(vm.name, host, claim_bytes(self.s, vm, size), size)
        self.bases[vm.name] = self._bases_of(vm.name, size) + local
        return [*self._ensure(host, self.bases[vm.name], operation.t),
                MakeDisk(vm.name, host, vm.image, size),
                *(MakeLocalDisk(vm.name, host, b) for b in local)]

    def _local_bases(self, name: str) -> tuple[Base, ...] | str:
        """The bases of the VM's local disks (its flavor's ephemeral, then swap: Nova's
        ``disk.local`` and ``disk.swap``, each a qcow2 overlay over its base in ``_base``), or
        why they are not modelled for its strategy (only Nova's Qcow2 image backend is)."""
        vm = self.vms[name]
        j, fl = next(((j, f) for j, f in enumerate(self.s.flavors) if f.name == vm.flavor),
                     (-1, None))
        if fl is None or not (fl.ephemeral or fl.swap):
            return ()
        kind = self.s.strategy_of(vm).kind
        if kind not in LOCAL_OVERLAYS:
            return (f"flavors[{j}] ({fl.name!r}) has ephemeral or swap disks, made as qcow2 "
                    f"overlays over their bases in _base (Nova's Qcow2 image backend) for "
                    f"{', '.join(sorted(LOCAL_OVERLAYS))} disks; not modelled for {kind}: "
                    "give the VM a flavor without them or one of those strategies")
        return tuple(Base.local(k, z) for k, z in (("ephemeral", fl.ephemeral),
                                                     ("swap", fl.swap)) if z)

    def _bases_of(self, name: str, size: int) -> tuple[Base, ...]:
        """What a new disk keeps in use in ``_base``: nothing for an RBD clone (in Ceph), the
        base and its resized copy for ``resized_base``, else the base."""
        vm = self.vms[name]
        if self.s.model_only(vm):
            return ()
        resized = self.s.strategy_of(vm).kind == "resized_base"
        return (Base(vm.image),) + ((Base(vm.image, size),) if resized else ())

    def _ensure(self, host: str, bases: tuple[Base, ...], t: float) -> list[Instruction]:
        """Each base on ``host`` fetched if missing, else touched (:func:`~.fetch.ensure`): a
        resized copy is made from its base, which comes before it in ``bases``; every one's
        mtime is then ``t``."""
        assert all(Base(b.image) in bases[:i] for i, b in enumerate(bases) if b.resized)
        assert all(not b.is_local for b in bases[:len(bases) - self._n_local(bases)])
        cache = self.cache[host]
        present, mtime = [b in cache for b in bases], [math.nan] * len(bases)
        fetched = set(ensure(present, mtime, range(len(bases)), t) or ())
        cache.update(zip(bases, mtime, strict=True))
        return [_brought(host, b, t) if i in fetched else TouchBase(host, b, t)
                for i, b in enumerate(bases)]

    @_apply.register
    def _(self, operation: Run) -> list[Instruction]:
        vm = operation.vm
        name = operation.workload or self.vms[vm].workload
        if name is None or name not in self.s.workloads:
            return [Refuse(f"no workload named {name!r}")]
        return [RunWorkload(vm, self.at.host(vm), name, self.at[vm].size)]

    @_apply.register
    def _(self, operation: Snapshot) -> list[Instruction]:
        vm, host = operation.vm, self.at.host(operation.vm)
        name = operation.name or f"{vm}-snap-{operation.index}"
        if operation.kind == "internal":
            st = self.s.strategy_of(self.vms[vm])  # as for the internal_snapshot kind
            if st.extended_l2:
                return [Refuse("internal snapshots are modelled without extended_l2 (a write "
                               "into a cluster they share copies it subcluster-wise)")]
            if st.refcount_bits < 2:
                return [Refuse("an internal snapshot adds a reference to every cluster: "
                               "refcount_bits 1 cannot count it")]
            return [SnapshotInternal(vm, host, name)]
        if operation.kind == "external":
            self.snapshots_below[vm] = self.snapshots_below.get(vm, 0) + 1
            return [SnapshotExternal(vm, host, name)]
        return [UploadSnapshot(vm, host, name, self.s.nova.snapshot_image_format)]

    @_apply.register
    def _(self, operation: Migrate) -> list[Instruction]:
        vm, to = operation.vm, operation.to
        if to not in self.hosts:
            return [Refuse(f"no host named {to!r}")]
        was = self.at[vm]
        src = was.host
        if to == src:
            return [Refuse("the VM is already on that host")]
        below = self.snapshots_below.get(vm, 0)
        if operation.kind == "live" and below:
            # libvirt's block migration (VIR_MIGRATE_NON_SHARED_INC) mirrors the top layer
            # onto a disk Nova makes over the destination's base: a layer between them is lost
            return [Refuse(f"a live migration copies only the disk's top layer, onto the base "
                           f"on {to!r}; the guest's writes before the external snapshot"
                           f"{'s' if below > 1 else ''} are in {below} layer"
                           f"{'s' if below > 1 else ''} below it and would not reach it: "
                           "migrate it cold (kind: cold) or flattened (kind: flatten)")]
        if operation.kind == "flatten" and self._n_local(self.bases[vm]):
            return [Refuse("a flattening (2012) migration of a VM with ephemeral or swap disks "
                           "is not modelled (it flattens the root disk only): migrate it cold "
                           "or live")]
        if operation.kind == "flatten":
            self.snapshots_below.pop(vm, None)  # one file ships, the chain flattened
        self.at.move(vm, to, keep=leaves_copy(operation.kind))
        bases, t, backing = self.bases[vm], operation.t, self._backing(vm)
        if not leaves_copy(operation.kind):  # the source's directory goes after the copy
            return [*self._ensure(to, bases, t), BlockCopy(vm, src, to, backing),
                    RemoveInstance(vm, src)]
        if operation.kind == "flatten":  # the whole image ships: it needs no base any more
            self.bases[vm] = ()
            copy: list[Instruction] = [FlattenCopy(vm, src, to)]
        else:
            transport = self.s.nova.remote_filesystem_transport
            copy = [*self._ensure(to, bases, t), CopyFiles(vm, src, to, transport, backing)]
        self.resizes.keep(vm, src, bases, was.need, t)  # the source stays as _resize
        return [*copy, KeepResize(vm, src)]

    def _backing(self, vm: str) -> Base | None:
        """The base the VM's bottom file names as its backing file, if it names one."""
        bases = self.bases[vm]
        bases = bases[:len(bases) - self._n_local(bases)]  # the root disk's
        backed = self.s.strategy_of(self.vms[vm]).kind in BACKED
        return bases[-1] if bases and backed else None

    @staticmethod
    def _n_local(bases: tuple[Base, ...]) -> int:
        """How many of a VM's bases (its root disk's first) are its local disks'."""
        return sum(b.is_local for b in bases)

    @_apply.register
    def _(self, operation: Resize) -> list[Instruction]:
        vm, size = operation.vm, operation.root_size
        if size < self.at[vm].size:
            return [Refuse("Nova refuses to shrink a disk")]
        self.at.grow(vm, size, claim_bytes(self.s, self.vms[vm], size))
        self.resized.add(vm)
        return [GrowDisk(vm, self.at.host(vm), size)]

    @_apply.register
    def _(self, operation: Confirm) -> list[Instruction]:
        vm = operation.vm
        if vm not in self.resizes and vm not in self.resized:
            return [Refuse(NOTHING_TO_CONFIRM)]
        self.resized.discard(vm)
        return self._confirm(vm)

    @_apply.register
    def _(self, operation: Delete) -> list[Instruction]:
        vm = operation.vm
        self.state[vm] = "deleted"
        self.bases.pop(vm, None)
        self.snapshots_below.pop(vm, None)
        self.resized.discard(vm)
        return [RemoveInstance(vm, self.at.leave(vm).host), *self._confirm(vm)]

    def _confirm(self, vm: str) -> list[Instruction]:
        """The VM's ``_resize`` copy goes, if it has one (:class:`~.resize.ResizeCopies`)."""
        copy = self.resizes.confirm(vm)
        return [RemoveResize(vm, copy.host)] if copy else []

    def claims(self) -> dict[str, tuple[float, int]]:
        """Per host, what is claimed there in DISK_GB (every VM on it, and every ``_resize``
        copy a cold migration left there until its confirm: placement's usage, which decides
        where the next VM fits) and how many VMs are on it (copies not counted)."""
        out = {h.name: (0.0, 0) for h in self.s.hosts}
        for tenant in self.at.tenants.values():
            need, n = out[tenant.host]
            out[tenant.host] = (need + tenant.need, n + 1)
        for copy in self.resizes.copies():
            need, n = out[copy.host]
            out[copy.host] = (need + copy.need, n)
        return out

    def cache_pass(self, t: float) -> list[Instruction]:
        """Nova's image cache manager at ``t`` (:mod:`.imagecache`): every base in use
        touched, the unused ones old enough removed (resized copies: their own minimum age)."""
        from .imagecache import cache_pass  # numpy: not at validation

        used = self._in_use()
        out: list[Instruction] = []
        for host, cache in self.cache.items():
            names = list(cache)
            mtime, removed = cache_pass(t, [b in used[host] for b in names],
                                        [cache[b] for b in names], self.s.nova.image_cache,
                                        [b.resized for b in names])
            for b, m, gone in zip(names, mtime.tolist(), removed.tolist(), strict=True):
                cache[b] = m
                if b in used[host]:
                    out.append(TouchBase(host, b, t))
                elif gone:
                    del cache[b]
                    out.append(RemoveBase(host, b, t))
        return out

    def _in_use(self) -> dict[str, set[Base]]:
        """Per host, the bases a live disk or a ``_resize`` copy there is backed by."""
        used: dict[str, set[Base]] = {h: set() for h in self.cache}
        for vm, bases in self.bases.items():
            used[self.at.host(vm)].update(bases)
        for copy in self.resizes.copies():
            used[copy.host].update(copy.bases)
        return used


def refusal(instructions: list[Instruction]) -> str | None:
    """Why Nova refused the operation these instructions answer (None: it did not)."""
    return next((i.reason for i in instructions if isinstance(i, Refuse)), None)


if TYPE_CHECKING:
    from collections.abc import Callable

    AllowedFn = Callable[[str, Operation], str | None]


def _brought(host: str, base: Base, t: float) -> Instruction:
    """A base missing on ``host`` at ``t``: fetched from Glance, a local disk's base made
    there, or a resized copy made from its base (which is on the host by then)."""
    if base.is_local:
        return MakeLocalBase(host, base, t)
    if base.size is None:
        return FetchBase(host, base.image, t)
    return MakeResizedBase(host, base.image, base.size, t)
