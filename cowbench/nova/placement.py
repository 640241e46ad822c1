"""Nova's placement of instances on hosts by disk: DISK_GB inventories and the spread weigher.

Placement keeps, per compute node, an inventory of DISK_GB: ``(total - reserved) x
allocation_ratio`` (``reserved_host_disk_mb``, ``disk_allocation_ratio``; FACTS.md 1.6). An
instance claims its flavor's root + ephemeral + swap (swap is counted in MB and rounded up to a
whole GB by placement). The scheduler keeps the hosts whose free DISK_GB can hold the claim
(DiskFilter / placement's allocation candidates) and, with the default weigher multiplier, picks
the one with the most free disk (the DiskWeigher's *spread*); no candidate is NoValidHost.

The two steps count differently. The filter counts the inventory, the ratio applied. The
DiskWeigher (``nova/scheduler/weights/disk.py``) weighs ``host_state.free_disk_mb``, which
``nova/scheduler/host_manager.py`` takes as ``min(free_disk_gb, disk_available_least)``, both
*without* the ratio: ``free_disk_gb = local_gb - local_gb_used``, the host's disk less
``reserved_host_disk_mb`` and every instance's flavor disks (the resource tracker), and
``disk_available_least`` the filesystem's free space less the instances' disks' over-commit
(their virtual less their actual size; libvirt's ``_get_disk_over_committed_size_total``),
which is about the disk less the bases and every disk's virtual size. So a host of 10 GiB at
ratio 3.0 offers 30 GiB to the filter but weighs 10 GiB free, less than an empty host of
20 GiB at ratio 1.0.

Here the weight is ``free_disk_gb``: ``capacity - reserved`` less the claims, no ratio. The
decision is taken before any byte is written (a fleet's plan and a timeline's schedule are made
first, the disks' growth after), so ``disk_available_least`` is not seen; it differs from
``free_disk_gb`` by the bases in ``_base`` against the reserve (the disks' virtual sizes are
the claims), a few GiB against hosts' TiB. The claim weighed is placement's (swap rounded up
to a GiB, where the resource tracker counts its MB).

:class:`Placement` is that choice for a timeline's tens of VMs and a fleet's 10^6 alike: the
hosts' free disk in a heap whose stale entries are dropped when they surface, O(log hosts) a
decision instead of a scan of every host (issue 21).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .claims import GIB, NO_VALID_HOST, disk_gb_bytes, inventory

if TYPE_CHECKING:  # numpy only for :meth:`Placement.free`: a timeline's walk needs none
    import numpy as np

__all__ = ["GIB", "NO_VALID_HOST", "Placement", "disk_gb_bytes", "inventory"]

Heap = list[tuple[float, int]]


class Placement:
    """Usage of every host's DISK_GB inventory, and the scheduler's choice among them.

    Hosts are indices into ``inventories`` (bytes; ``inf``: unlimited); ``disks`` is what
    the weigher counts of each (``capacity - reserved``, no ratio; the inventories when not
    given). ``claim`` and ``release`` move usage; ``select`` is the scheduler: among hosts
    where the claim fits the inventory, the most free disk (``disk - used``) wins (spread),
    the lowest index among equals; unlimited hosts (free disk infinite) come first, the least
    used of them, so they take equal VMs in turn.

    Hosts whose inventory exceeds their disk by the same amount (the same ratio and size, the
    usual pool) rank alike by either count, so the first of them is the only one that may fit:
    they share a heap. Each host has one valid entry ``(used - disk, host)`` in its group's
    heap (``(used, host)`` for an unlimited host, in a heap of their own); every change of
    usage pushes a new one and leaves the old one stale, dropped when it reaches the top or at
    :meth:`compact`. A choice looks at each group's first host only: O(groups x log hosts).
    """

    def __init__(self, inventories: Sequence[float] | np.ndarray,
                 disks: Sequence[float] | np.ndarray | None = None) -> None:
        self.inventory = [float(x) for x in inventories]
        disk = self.inventory if disks is None else [float(x) for x in disks]
        self.used = [0.0] * len(self.inventory)
        bounded = [math.isfinite(x) for x in self.inventory]
        self._base = [x if b else 0.0 for x, b in zip(disk, bounded, strict=True)]
        groups: dict[float, Heap] = {}
        self._open: Heap = [(0.0, h) for h in range(len(bounded)) if not bounded[h]]
        self._heap_of: list[Heap] = []
        for h, b in enumerate(bounded):
            heap = groups.setdefault(self.inventory[h] - disk[h], []) if b else self._open
            if b:
                heap.append((-disk[h], h))
            self._heap_of.append(heap)
        #: per group of hosts ranked alike, its heap and by how much inventory exceeds disk
        self._groups = [(heap, extra) for extra, heap in groups.items()]
        for heap, _ in self._groups:
            heapq.heapify(heap)
        #: the hosts' heap when there is one group (the common pool), else an empty list
        self.heap: Heap = self._groups[0][0] if len(self._groups) == 1 else []
        #: :meth:`select` and :meth:`claim` in one step (an arrival): the host, or
        #: :data:`NO_VALID_HOST` and nothing claimed
        self.place = self._placer()
        #: free a claim on a host (the instance was deleted or moved away)
        self.release = self._releaser()

    def free(self) -> np.ndarray:
        """Free DISK_GB per host, in bytes (``inf`` on unlimited hosts)."""
        import numpy as np

        return np.asarray(np.asarray(self.inventory) - np.asarray(self.used))

    def select(self, need: float, exclude: int = NO_VALID_HOST) -> int:
        """The host the scheduler picks for a claim of ``need`` bytes (``exclude``: a
        migration's source), or :data:`NO_VALID_HOST`: each group's first host other than
        ``exclude`` is the only one of the group that may fit; of those that fit, the most
        free disk wins, the lowest index among equals."""
        h = self._top(self._open, exclude)
        if h != NO_VALID_HOST:
            return h
        best = (math.inf, NO_VALID_HOST)
        for heap, _ in self._groups:
            h = self._top(heap, exclude)
            if h != NO_VALID_HOST and self.inventory[h] - self.used[h] >= need:
                best = min(best, (self.used[h] - self._base[h], h))
        return best[1]

    def _placer(self) -> Callable[[float], int]:
        """:attr:`place`: a closure over the heap and the usage (an arrival is the hot path of
        a fleet of 10^6: a method's attribute look-ups cost as much as the choice)."""
        heap, used, base = self.heap, self.used, self._base
        pop, replace = heapq.heappop, heapq.heapreplace
        extra = self._groups[0][1] if len(self._groups) == 1 else 0.0

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
            if extra - key < need:
                return NO_VALID_HOST
            used[h] += need
            replace(heap, (used[h] - base[h], h))
            return h

        return anywhere if self._open or len(self._groups) != 1 else place

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
        heaps = [self._open, *(heap for heap, _ in self._groups)]
        if sum(len(heap) for heap in heaps) > 4 * len(self.used) + 64:
            for heap in heaps:  # in place: callers may hold the lists
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

