"""A cold migration's source kept as ``<uuid>_resize`` until the migration is confirmed.

FACTS.md 1.5: a cold migration (or resize) renames the source's instance directory to
``<dir>_resize`` and leaves it there until confirm (``resize_confirm_window``: Nova confirms by
itself that long after, 0 meaning never), so space is used twice meanwhile; placement holds the
migration's DISK_GB allocation on the source until ``confirm_resize`` or the instance's
delete. 1.6: the image cache manager counts ``<uuid>_resize`` directories, so the bases the
copy is backed by stay in use. Meanwhile the instance is RESIZED (VERIFY_RESIZE): Nova
accepts only its confirm, a revert or its delete, so it migrates, resizes or snapshots it no
more (the compute API's snapshot takes ACTIVE, STOPPED, PAUSED or SUSPENDED instances).

:class:`ResizeCopies` is that, once, for the timeline's state machine
(``cowbench.nova.machine.Machine``: the copies' bases by value, ``RemoveResize``
instructions), its scheduler (``cowbench.nova.scheduler``: the claims) and a fleet's event loop
(``sim.fleet.fleet_events``: claims and a disk kind per copy, given back into its columnar
placement and user counts); :func:`auto_confirm` says when Nova confirms by itself, for a
timeline's operations (:func:`auto_confirms`) and the fleet's event loop alike.
Pure and numpy-free: scenario validation walks the machine.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from ..units import format_duration

H = TypeVar("H", bound=Hashable)  # a host: its name, or its index in a fleet
B = TypeVar("B")  # the bases a copy keeps in use: values, a fleet's disk kind, or nothing
Raw = dict[str, object]  # a timeline's operation before it is typed


@dataclass(frozen=True)
class ResizeCopy(Generic[H, B]):
    """A ``<uuid>_resize`` directory on ``host`` since ``t``: it keeps ``need`` bytes of
    DISK_GB claimed there and ``bases`` in use."""

    host: H
    need: float
    bases: B
    t: float = math.nan


def leaves_copy(kind: str | None) -> bool:
    """Whether a migration of ``kind`` leaves a ``_resize`` copy on its source: a cold one
    (the default, None) and a flatten one do; a live (block) migration removes the source's
    directory once its copy is done."""
    return kind != "live"


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


def auto_confirms(raw: list[Raw], window: float) -> list[Raw]:
    """Nova confirms a cold migration by itself after ``resize_confirm_window``
    (:func:`auto_confirm`) unless its ``_resize`` directory went first: a confirm after the
    migration, or the VM's delete. ``raw``: a timeline's operations (``cowbench.lifecycle``);
    the confirms are marked ``choose`` and with the migration they confirm (``of``): the
    scheduler (``cowbench.nova.scheduler``) drops those of migrations not made."""
    gone: dict[tuple[object, str], list[float]] = {}  # (vm, confirm or delete) -> times
    for x in raw:
        if x["op"] in ("confirm", "delete"):
            gone.setdefault((x["vm"], str(x["op"])), []).append(float(str(x["t"])))
    for times in gone.values():
        times.sort()
    out = []
    for r in raw:
        if r["op"] != "migrate" or not leaves_copy(cast(str | None, r.get("kind"))):
            continue
        t = float(str(r["t"]))
        at = auto_confirm(t, window, min(_first(gone.get((r["vm"], "confirm")), t, after=True),
                                         _first(gone.get((r["vm"], "delete")), t)))
        if at is not None:
            out.append({"t": at, "op": "confirm", "vm": r["vm"], "choose": True, "of": id(r),
                        "source": f"{r['source']} (resize_confirm_window_s)"})
    return out


def _first(times: list[float] | None, t: float, after: bool = False) -> float:
    """The first of ``times`` (sorted) at ``t`` or later (``after``: later only; a confirm
    at the instant of a migration comes before it); ``inf`` if none."""
    if not times:
        return math.inf
    k = (bisect.bisect_right if after else bisect.bisect_left)(times, t)
    return times[k] if k < len(times) else math.inf


#: what Nova refuses while a VM's cold migration awaits its confirm (vm_state RESIZED,
#: VERIFY_RESIZE: only confirm, revert or delete): another migration, a resize, a snapshot
REFUSED = frozenset({"migrate", "resize", "snapshot"})


class ResizeCopies(Generic[H, B]):
    """Every VM's ``_resize`` copy: the source it left by a cold migration not yet confirmed,
    and the copy there (:class:`ResizeCopy`). Nova migrates, resizes or snapshots such a VM no
    more
    (:meth:`refusal`), so a VM has one copy at most.

    :meth:`keep` makes it when the VM leaves its host: its claim and its bases' use pass from
    the VM's disk to the copy (nothing is freed); :meth:`confirm` (a confirm, or the VM's
    delete) removes it, the claim given back through ``release`` and the bases through
    ``unuse`` (a fleet's columnar state; the timeline's machine asks :meth:`copies` instead).
    """

    def __init__(self, release: Callable[[H, float], None] | None = None,
                 unuse: Callable[[H, B], None] | None = None) -> None:
        self.held: dict[Hashable, ResizeCopy[H, B]] = {}
        self._release = release
        self._unuse = unuse

    def __contains__(self, vm: Hashable) -> bool:
        """Whether ``vm`` has a migration not yet confirmed (Nova's VERIFY_RESIZE)."""
        return vm in self.held

    def refusal(self, vm: Hashable, op: str) -> str | None:
        """Why Nova refuses operation ``op`` (``migrate``, ``resize``, ...) on ``vm`` now
        (None: it does not): its cold migration awaits confirmation."""
        copy = self.held.get(vm)
        if copy is None or op not in REFUSED:
            return None
        return (f"Nova refuses it: the cold migration at t={format_duration(copy.t)} awaits "
                "its confirm (VERIFY_RESIZE: only confirm, revert or delete); confirm it "
                "first or set nova.resize_confirm_window_s")

    def keep(self, vm: Hashable, host: H, bases: B, need: float = 0.0,
             t: float = math.nan) -> None:
        """``vm`` left ``host`` at ``t`` by a cold migration: its disk there stays as a copy."""
        assert vm not in self.held, "Nova refuses a second migration before the confirm"
        self.held[vm] = ResizeCopy(host, need, bases, t)

    def confirm(self, vm: Hashable) -> ResizeCopy[H, B] | None:
        """``vm``'s migration is confirmed (or it is deleted): its copy goes, returned."""
        copy = self.held.pop(vm, None)
        if copy is not None:
            if self._release is not None:
                self._release(copy.host, copy.need)
            if self._unuse is not None:
                self._unuse(copy.host, copy.bases)
        return copy

    def copies(self) -> Iterator[ResizeCopy[H, B]]:
        """Every copy there is (the bases they keep in use)."""
        return iter(self.held.values())
