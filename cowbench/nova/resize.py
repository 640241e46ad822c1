"""A cold migration's source kept as ``<uuid>_resize`` until the migration is confirmed.

FACTS.md 1.5: a cold migration (or resize) renames the source's instance directory to
``<dir>_resize`` and leaves it there until confirm (``resize_confirm_window``: Nova confirms by
itself that long after, 0 meaning never), so space is used twice meanwhile; placement holds the
migration's DISK_GB allocation on the source until ``confirm_resize`` or the instance's
delete. 1.6: the image cache manager counts ``<uuid>_resize`` directories, so the bases the
copy is backed by stay in use.

:class:`ResizeCopies` is that, once, for the timeline's state machine
(``cowbench.nova.machine.Machine``: the copies' bases by value, ``RemoveResize``
instructions), its scheduler (``cowbench.nova.scheduler``: the claims) and a fleet's event loop
(``sim.fleet.fleet_events``: claims and a disk kind per copy, given back into its columnar
placement and user counts); :func:`auto_confirm` says when Nova confirms by itself, for the
timeline's expansion (``cowbench.lifecycle``) and the fleet's event loop alike.
Pure and numpy-free: scenario validation walks the machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

H = TypeVar("H", bound=Hashable)  # a host: its name, or its index in a fleet
B = TypeVar("B")  # the bases a copy keeps in use: values, a fleet's disk kind, or nothing


@dataclass(frozen=True)
class ResizeCopy(Generic[H, B]):
    """A ``<uuid>_resize`` directory on ``host``: it keeps ``need`` bytes of DISK_GB claimed
    there and ``bases`` in use."""

    host: H
    need: float
    bases: B


def auto_confirm(t: float, window: float, ends: float = math.inf) -> float | None:
    """When Nova confirms by itself a cold migration made at ``t``: ``window``
    (``resize_confirm_window``) later; None when it never does: a window of 0, or the copy
    gone before then, at ``ends`` (the VM's delete removes it)."""
    if window <= 0:
        return None
    at = t + window
    return at if at <= ends else None


def copy_ends(t: float, window: float, ends: float) -> float:
    """When the ``_resize`` copy of a cold migration made at ``t`` goes unless confirmed
    explicitly: at Nova's own confirm (:func:`auto_confirm`), else with the VM at ``ends``."""
    at = auto_confirm(t, window, ends)
    return ends if at is None else at


class ResizeCopies(Generic[H, B]):
    """Every VM's ``_resize`` copies: per VM, each source it left by a cold migration not yet
    confirmed and the copy there (:class:`ResizeCopy`).

    :meth:`keep` makes one when a VM leaves a host: its claim and its bases' use pass from the
    VM's disk to the copy (nothing is freed); :meth:`confirm` (a confirm, or the VM's delete)
    removes them, each claim given back through ``release`` and each copy's bases through
    ``unuse`` (a fleet's columnar state; the timeline's machine asks :meth:`copies` instead).
    """

    def __init__(self, release: Callable[[H, float], None] | None = None,
                 unuse: Callable[[H, B], None] | None = None) -> None:
        self.held: dict[Hashable, dict[H, ResizeCopy[H, B]]] = {}
        self._release = release
        self._unuse = unuse

    def __contains__(self, vm: Hashable) -> bool:
        """Whether ``vm`` has a migration not yet confirmed (Nova's VERIFY_RESIZE)."""
        return vm in self.held

    def keep(self, vm: Hashable, host: H, bases: B, need: float = 0.0) -> bool:
        """``vm`` left ``host`` by a cold migration: its disk there stays as a copy. Back on a
        source it left unconfirmed, the older copy goes first (returns True then)."""
        held = self.held.setdefault(vm, {})
        older = held.get(host)
        if older is not None:
            self._gone(older)
        held[host] = ResizeCopy(host, need, bases)
        return older is not None

    def confirm(self, vm: Hashable) -> list[ResizeCopy[H, B]]:
        """``vm``'s migrations are confirmed (or it is deleted): every copy goes, in the order
        it left their hosts; returned."""
        gone = list(self.held.pop(vm, {}).values())
        for c in gone:
            self._gone(c)
        return gone

    def _gone(self, c: ResizeCopy[H, B]) -> None:
        if self._release is not None:
            self._release(c.host, c.need)
        if self._unuse is not None:
            self._unuse(c.host, c.bases)

    def copies(self) -> Iterator[ResizeCopy[H, B]]:
        """Every copy there is (the bases they keep in use)."""
        for held in self.held.values():
            yield from held.values()
