"""Who is where: each VM's host, what it claims in DISK_GB there and its root disk's size.

:class:`Tenancy` is that record, once, for the timeline's scheduler
(``cowbench.nova.scheduler``: hosts by index, every claim moved in its
:class:`~cowbench.nova.placement.Placement` through ``claim`` and ``release``) and its state
machine (``cowbench.nova.machine.Machine``: hosts by name, no placement: it reads the host
and the disk size for its instructions, and hands the claim to a ``_resize`` copy), as
:class:`~cowbench.nova.resize.ResizeCopies` is. A fleet's event loop keeps the same in
columns, for speed (``sim.fleet.fleet_events``).

A boot (:meth:`Tenancy.arrive`) claims on the VM's host; a migration (:meth:`Tenancy.move`)
claims on the destination and frees the source, unless the source stays as a ``_resize`` copy
that keeps the claim (:mod:`.resize`); a resize (:meth:`Tenancy.grow`) claims the new root
in place of the old; a delete (:meth:`Tenancy.leave`) frees it. What a VM claims and its root
as it boots are :func:`claim_bytes` and :func:`root_bytes`. Pure and numpy-free:
scenario validation walks the machine.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Generic, TypeVar

from .claims import disk_gb_bytes

if TYPE_CHECKING:
    from ..scenario import VM, Scenario

H = TypeVar("H", bound=Hashable)  # a host: its name, or its index


@dataclass(frozen=True)
class Tenant(Generic[H]):
    """A VM on ``host``: it claims ``need`` bytes of DISK_GB there (root, ephemeral and swap)
    and its root disk is ``size`` bytes."""

    host: H
    need: int
    size: int


class Tenancy(Generic[H]):
    """Every live VM's :class:`Tenant`, its claims moved through ``claim`` (False: the host
    is overcommitted) and ``release`` when given (a placement's usage)."""

    def __init__(self, claim: Callable[[H, float], bool] | None = None,
                 release: Callable[[H, float], None] | None = None) -> None:
        self.tenants: dict[str, Tenant[H]] = {}
        self._claim = claim
        self._release = release

    def __contains__(self, vm: str) -> bool:
        """Whether ``vm`` is on a host (booted, not deleted)."""
        return vm in self.tenants

    def __getitem__(self, vm: str) -> Tenant[H]:
        return self.tenants[vm]

    def host(self, vm: str) -> H:
        """Where ``vm`` is."""
        return self.tenants[vm].host

    def arrive(self, vm: str, host: H, need: int, size: int) -> bool:
        """``vm`` boots on ``host`` with a root of ``size`` bytes, claiming ``need``; False
        if the claim overcommits the host."""
        self.tenants[vm] = Tenant(host, need, size)
        return self._claim is None or self._claim(host, need)

    def move(self, vm: str, host: H, keep: bool = False) -> bool:
        """``vm`` migrates to ``host``: its claim made there, and freed on its source unless
        the source ``keep``\\ s it (a ``_resize`` copy); False if the claim overcommits."""
        was = self.tenants[vm]
        if not keep and self._release is not None:
            self._release(was.host, was.need)
        self.tenants[vm] = replace(was, host=host)
        return self._claim is None or self._claim(host, was.need)

    def grow(self, vm: str, size: int, need: int) -> bool:
        """``vm``'s root disk is resized to ``size`` bytes, its claim to ``need`` in place of
        the old; False if the claim overcommits its host."""
        was = self.tenants[vm]
        if self._release is not None:
            self._release(was.host, was.need)
        self.tenants[vm] = Tenant(was.host, need, size)
        return self._claim is None or self._claim(was.host, need)

    def leave(self, vm: str) -> Tenant[H]:
        """``vm`` is deleted: its claim freed; what it was returned."""
        was = self.tenants.pop(vm)
        if self._release is not None:
            self._release(was.host, was.need)
        return was


def root_bytes(s: Scenario, vm: VM) -> int:
    """``vm``'s root disk as it boots: its own ``root_size``, else its flavor's root, else its
    image's virtual size (0 while a path image's size is not known yet)."""
    fl = next((f for f in s.flavors if f.name == vm.flavor), None)
    image = next((i for i in s.images if i.name == vm.image), None)
    return vm.root_size or (fl.root if fl else None) or \
        (image.virtual_size if image else None) or 0


def claim_bytes(s: Scenario, vm: VM, root: int) -> int:
    """What ``vm`` claims in DISK_GB with a root disk of ``root`` bytes (its flavor's
    ephemeral and swap beside it)."""
    fl = next((f for f in s.flavors if f.name == vm.flavor), None)
    return disk_gb_bytes(root, fl.ephemeral if fl else 0, fl.swap if fl else 0)
