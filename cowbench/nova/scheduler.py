"""Nova's scheduler over a timeline: who boots and migrates where, in time order.

A timeline's operations (dicts, sorted by time) pass through :func:`schedule_ops` once. It
keeps every host's DISK_GB usage in a :class:`~cowbench.nova.placement.Placement` (the fleet's
own) and decides:

- a boot or migration marked ``choose`` (an arrival's; the boot of a VM of ``vms`` that
  names no host, as ``openstack server create`` without one) goes where the scheduler puts it:
  the most free disk as the DiskWeigher counts it, among the hosts whose DISK_GB holds the claim
  (:mod:`~cowbench.nova.placement`), never the migration's source; a VM whose boot fits
  nowhere is refused (NoValidHost: none of its operations happen, its events' neither), a
  migration that fits nowhere does not happen;
- other boots go to the VM's ``host`` (Nova's forced host: the filters skipped, not the
  claim), other migrations to their ``to``: a claim beyond the
  host's inventory is a problem (by the operation's index) and is not made, as Nova refuses
  it: the VM of a refused boot is never placed (its later operations pass untouched), that
  of a refused migration or resize stays as it was, and the VMs placed after it are counted
  against the claims of the VMs placed only;
- a cold (or flatten) migration's source keeps its claim (the ``<uuid>_resize`` directory, as
  in placement: the migration holds the source's allocation) until a ``confirm`` or the
  VM's ``delete`` (:class:`~cowbench.nova.resize.ResizeCopies`, the fleet's own); a live
  migration frees it at once; an automatic confirm (``choose``) of a migration that did not
  happen is dropped; meanwhile the VM neither migrates, resizes nor is snapshotted
  (VERIFY_RESIZE): a chosen migration or snapshot (an arrival's periodic one) does not happen
  (as in a fleet), any other is left to the machine to refuse;
- a resize claims its new root (a shrink is left to the machine to refuse); a delete frees
  the claim.

Who is where with what claim is a :class:`~cowbench.nova.tenancy.Tenancy`, the record the
machine (``cowbench.nova.machine``) keeps too.

Every boot leaves with its host in ``to``. Operations that make no sense (an unknown VM, a
second boot) pass untouched: ``cowbench.lifecycle.check_timeline`` names them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from ..units import format_bytes
from .claims import NO_VALID_HOST
from .placement import Placement
from .resize import ResizeCopies, leaves_copy
from .tenancy import Tenancy, claim_bytes, root_bytes

if TYPE_CHECKING:
    from ..scenario import Scenario

Raw = dict[str, object]


class _Scheduler:
    """The walk's state: placement, and who is where with what claim (a
    :class:`~cowbench.nova.tenancy.Tenancy` whose claims move in the placement)."""

    def __init__(self, s: Scenario) -> None:
        self.s = s
        self.names = [h.name for h in s.hosts]
        self.index = {h: i for i, h in enumerate(self.names)}
        self.vms = {vm.name: vm for vm in s.vms}
        self.p = Placement([h.placement_capacity for h in s.hosts],
                           [h.weighed_disk for h in s.hosts])
        self.at = Tenancy[int](claim=self.p.claim, release=self.p.release)
        self.booting = (0, 0)  # the claim and root of the boot :meth:`host_for` placed
        self.refused: set[str] = set()
        self.unplaced: set[str] = set()  # forced boots refused for want of room
        # cold migrations' sources, until confirmed: their claims (the machine: their bases)
        self.held = ResizeCopies[int, None](release=self.p.release)

    def host_for(self, r: Raw, choose: bool) -> int | None:
        """The host ``r`` moves its VM to (None: it moves nothing; NO_VALID_HOST: refused)."""
        vm, op = str(r["vm"]), r["op"]
        if op in ("confirm", "delete"):
            self.held.confirm(vm)
        if vm in self.unplaced:
            return None  # its boot was refused: nothing of it moves
        if op == "boot" and vm in self.vms and vm not in self.at:
            root = root_bytes(self.s, self.vms[vm])
            self.booting = (claim_bytes(self.s, self.vms[vm], root), root)
            return self.p.select(self.booting[0]) if choose else \
                self.index[self.s.host_of(self.vms[vm]).name]
        if vm not in self.at or self.held.refusal(vm, str(op)):
            return None  # gone, or awaiting its confirm (VERIFY_RESIZE): nothing moves
        if op == "migrate":
            return self.p.select(self.at[vm].need, exclude=self.at.host(vm)) if choose else \
                self.index.get(str(r["to"]))
        if op == "resize" and isinstance(r["root_size"], int) and \
                r["root_size"] >= self.at[vm].size:  # else the machine refuses the shrink
            return self.at.host(vm)
        if op == "delete":
            self.at.leave(vm)
        return None

    def move(self, r: Raw, host: int, choose: bool) -> str | None:
        """Claim on ``host`` for ``r``'s VM; a problem when a forced host has no room for it,
        and then nothing is claimed: Nova refuses the boot (the VM is never placed), the
        migration or the resize (the VM stays as it was), so a refused claim never counts
        against the VMs placed after it."""
        vm = str(r["vm"])
        if r["op"] in ("boot", "migrate"):
            r["to"] = self.names[host]
        if r["op"] == "boot":
            need, freed = self.booting[0], 0
        elif r["op"] == "resize":
            root = cast(int, r["root_size"])
            need, freed = claim_bytes(self.s, self.vms[vm], root), self.at[vm].need
        else:
            if self.at[vm].host == host:
                return None  # a migration to where it is: check_timeline names it
            need, freed = self.at[vm].need, 0
        room = self.p.inventory[host] - self.p.used[host] + freed
        if need > room and not choose:
            if r["op"] == "boot":
                self.unplaced.add(vm)
            return self._no_room(r, host, need, freed)
        if r["op"] == "boot":
            self.at.arrive(vm, host, *self.booting)
        elif r["op"] == "resize":
            self.at.grow(vm, root, need)
        else:
            was = self.at[vm]
            keep = leaves_copy(cast("str | None", r.get("kind")))
            if keep:
                self.held.keep(vm, was.host, None, was.need, float(str(r["t"])))
            self.at.move(vm, host, keep)
        return None

    def _no_room(self, r: Raw, host: int, need: int, freed: int) -> str:
        """Why a forced host has no room for ``r``'s claim of ``need`` bytes (``freed``: the
        claim it replaces there, a resize's old root), in binary units."""
        h = self.s.hosts[host]
        others = self.p.used[host] - freed
        return (f"no room on host {h.name!r}: it claims {format_bytes(need)} of DISK_GB, "
                f"beside {format_bytes(others)} claimed there by the VMs placed, of "
                f"{format_bytes(max(self.p.inventory[host], 0))} (capacity "
                f"{format_bytes(h.capacity_bytes or 0)} - reserved "
                f"{format_bytes(h.reserved_host_disk_bytes)} x allocation ratio "
                f"{h.disk_allocation_ratio:g})")


def schedule_ops(s: Scenario, raw: list[Raw]
                 ) -> tuple[list[Raw], dict[int, str], list[tuple[str, float]]]:
    """The operations that happen, each boot and chosen migration with its host in ``to``, the
    problems of forced hosts without room (the operation's index in the list returned, the
    reason: ``no room on host ...``), and the VMs whose chosen boot was refused (NoValidHost:
    the VM and when it asked)."""
    sched = _Scheduler(s)
    out: list[Raw] = []
    problems: dict[int, str] = {}
    refused: list[tuple[str, float]] = []
    made: set[object] = set()  # the migrations made (their raw operations' ids)
    for r in raw:
        vm, choose, of = str(r["vm"]), bool(r.pop("choose", False)), r.pop("of", None)
        if vm in sched.refused or (r["op"] == "confirm" and choose and
                                   (of not in made or vm not in sched.held)):
            continue  # a refused VM's, or the automatic confirm of a migration not made
        host = sched.host_for(r, choose)
        if host == NO_VALID_HOST:
            if r["op"] == "boot":
                sched.refused.add(vm)
                refused.append((vm, float(str(r["t"]))))
            continue
        if r["op"] == "migrate" and choose and host is None or r["op"] == "snapshot" and \
                choose and sched.held.refusal(vm, "snapshot"):
            continue  # the VM is gone, or Nova refuses it (VERIFY_RESIZE), as a fleet's
        if r["op"] == "migrate":
            made.add(id(r))
        out.append(r)
        problem = sched.move(r, host, choose) if host is not None else None
        if problem:
            problems[len(out) - 1] = problem
    return out, problems, refused
