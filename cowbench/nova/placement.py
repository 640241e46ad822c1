"""Nova's placement of instances on hosts by disk: DISK_GB inventories and the spread weigher.

Placement keeps, per compute node, an inventory of DISK_GB: ``(total - reserved) x
allocation_ratio`` (``reserved_host_disk_mb``, ``disk_allocation_ratio``; FACTS.md 1.6). An
instance claims its flavor's root + ephemeral + swap (swap is counted in MB and rounded up to a
whole GB by placement). The scheduler keeps the hosts whose free DISK_GB can hold the claim
(DiskFilter / placement's allocation candidates) and, with the default weigher multiplier, picks
the one with the most free disk (the DiskWeigher's *spread*); no candidate is NoValidHost.

:class:`Placement` is that choice for a timeline's tens of VMs and a fleet's 10^6 alike: the
hosts' free disk in a heap whose stale entries are dropped when they surface, O(log hosts) a
decision instead of a scan of every host (issue 21).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence

import numpy as np

from .claims import GIB, NO_VALID_HOST, disk_gb_bytes, inventory

__all__ = ["GIB", "NO_VALID_HOST", "Placement", "disk_gb_bytes", "inventory"]

Heap = list[tuple[float, int]]


class Placement:
    """Usage of every host's DISK_GB inventory, and the scheduler's choice among them.

    Hosts are indices into ``inventories`` (bytes; ``inf``: unlimited). ``claim`` and
    ``release`` move usage; ``select`` is the scheduler: among hosts where the claim fits, the
    most free disk wins (spread), the lowest index among equals; unlimited hosts (free disk
    infinite) come first, the least used of them, so they take equal VMs in turn.

    Each host has one valid entry ``(used - inventory, host)`` in ``heap`` (``(used, host)``
    for an unlimited host, in a heap of their own); every change of usage pushes a new one and
    leaves the old one stale, dropped when it reaches the top or at :meth:`compact`.
    """

    def __init__(self, inventories: Sequence[float] | np.ndarray) -> None:
        self.inventory = [float(x) for x in inventories]
        self.used = [0.0] * len(self.inventory)
        bounded = [math.isfinite(x) for x in self.inventory]
        self._base = [x if b else 0.0 for x, b in zip(self.inventory, bounded, strict=True)]
        self.heap: Heap = [(-x, h) for h, x in enumerate(self.inventory) if bounded[h]]
        self._open: Heap = [(0.0, h) for h in range(len(bounded)) if not bounded[h]]
        self._heap_of = [self.heap if b else self._open for b in bounded]
        heapq.heapify(self.heap)
        #: :meth:`select` and :meth:`claim` in one step (an arrival): the host, or
        #: :data:`NO_VALID_HOST` and nothing claimed
        self.place = self._placer()
        #: free a claim on a host (the instance was deleted or moved away)
        self.release = self._releaser()

    def free(self) -> np.ndarray:
        """Free DISK_GB per host, in bytes (``inf`` on unlimited hosts)."""
        return np.asarray(np.asarray(self.inventory) - np.asarray(self.used))

    def select(self, need: float, exclude: int = NO_VALID_HOST) -> int:
        """The host the scheduler picks for a claim of ``need`` bytes (``exclude``: a
        migration's source), or :data:`NO_VALID_HOST`."""
        for heap in (self._open, self.heap):
            h = self._top(heap, exclude)
            if h != NO_VALID_HOST:
                return h if self.inventory[h] - self.used[h] >= need else NO_VALID_HOST
        return NO_VALID_HOST

    def _placer(self) -> Callable[[float], int]:
        """:attr:`place`: a closure over the heap and the usage (an arrival is the hot path of
        a fleet of 10^6: a method's attribute look-ups cost as much as the choice)."""
        heap, used, base = self.heap, self.used, self._base
        pop, replace = heapq.heappop, heapq.heapreplace

        def anywhere(need: float) -> int:  # some hosts unlimited, or all
            h = self.select(need)
            if h != NO_VALID_HOST:
                self.claim(h, need)
            return h

        def place(need: float) -> int:
            """:meth:`select` and :meth:`claim` in one step (an arrival): the host, or
            :data:`NO_VALID_HOST` and nothing claimed."""
            while True:
                key, h = heap[0]
                if key == used[h] - base[h]:
                    break
                pop(heap)  # stale: the host's usage moved since
            if -key < need:
                return NO_VALID_HOST
            used[h] += need
            replace(heap, (used[h] - base[h], h))
            return h

        return anywhere if self._open or not heap else place

    def _releaser(self) -> Callable[[int, float], None]:
        """:attr:`release`, a closure as :meth:`_placer` (a death is the other hot path)."""
        used, base, heap_of, push = self.used, self._base, self._heap_of, heapq.heappush

        def release(host: int, need: float) -> None:
            """Free a claim: the instance was deleted or moved away."""
            used[host] -= need
            push(heap_of[host], (used[host] - base[host], host))

        return release

    def claim(self, host: int, need: float) -> bool:
        """Allocate ``need`` bytes on ``host`` (a forced host too); False if it overcommits."""
        used = self.used
        used[host] += need
        heapq.heappush(self._heap_of[host], (used[host] - self._base[host], host))
        return used[host] <= self.inventory[host]

    def compact(self) -> None:
        """Drop the stale entries once they outnumber the hosts (a long run's pauses)."""
        if len(self.heap) + len(self._open) > 4 * len(self.used) + 64:
            for heap in (self.heap, self._open):  # in place: callers may hold the lists
                heap[:] = [(self.used[h] - self._base[h], h) for h in range(len(self.used))
                           if self._heap_of[h] is heap]
                heapq.heapify(heap)

    def _top(self, heap: Heap, exclude: int) -> int:
        """The host of ``heap``'s first valid entry other than ``exclude`` (-1: none)."""
        used, base = self.used, self._base
        held = None
        h = NO_VALID_HOST
        while heap:
            key, top = heap[0]
            if key != used[top] - base[top]:
                heapq.heappop(heap)
            elif top == exclude:
                held = heapq.heappop(heap)
            else:
                h = top
                break
        if held is not None:
            heapq.heappush(heap, held)
        return h

