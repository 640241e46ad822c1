"""Nova's placement of instances on hosts by disk: DISK_GB inventories and the spread weigher.

Placement keeps, per compute node, an inventory of DISK_GB: ``(total - reserved) x
allocation_ratio`` (``reserved_host_disk_mb``, ``disk_allocation_ratio``; FACTS.md 1.6). An
instance claims its flavor's root + ephemeral + swap (swap is counted in MB and rounded up to a
whole GB by placement). The scheduler keeps the hosts whose free DISK_GB can hold the claim
(DiskFilter / placement's allocation candidates) and, with the default weigher multiplier, picks
the one with the most free disk (the DiskWeigher's *spread*); no candidate is NoValidHost.

:class:`Placement` holds the inventories and usage of every host as numpy columns, so the fleet
(10^5 arrivals on 100s of hosts) and the timeline (tens of VMs) use the very same arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .claims import GIB, NO_VALID_HOST, disk_gb_bytes, inventory

__all__ = ["GIB", "NO_VALID_HOST", "Placement", "disk_gb_bytes", "inventory"]


class Placement:
    """Usage of every host's DISK_GB inventory, and the scheduler's choice among them.

    Hosts are indices into ``inventories`` (bytes; ``inf``: unlimited). ``claim`` and
    ``release`` move usage; ``select`` is the scheduler: among hosts where the claim fits, the
    most free disk wins (spread), the lowest index among equals; among unlimited hosts (free
    disk infinite everywhere) the least used wins, so they take equal VMs in turn.
    """

    def __init__(self, inventories: Sequence[float] | np.ndarray) -> None:
        self.inventory = np.asarray(inventories, dtype=np.float64)
        self.used = np.zeros(self.inventory.size)
        self._bounded = bool(np.isfinite(self.inventory).all())

    def free(self) -> np.ndarray:
        """Free DISK_GB per host, in bytes (``inf`` on unlimited hosts)."""
        return np.asarray(self.inventory - self.used)

    def select(self, need: float, exclude: int = NO_VALID_HOST) -> int:
        """The host the scheduler picks for a claim of ``need`` bytes (``exclude``: a
        migration's source), or :data:`NO_VALID_HOST`."""
        free = self.inventory - self.used
        ok = free >= need
        if exclude >= 0:
            ok[exclude] = False
        if not ok.any():
            return NO_VALID_HOST
        if self._bounded:
            return int(np.argmax(np.where(ok, free, -np.inf)))
        best = ok & (free == free[ok].max())
        return int(np.argmin(np.where(best, self.used, np.inf)))

    def claim(self, host: int, need: float) -> bool:
        """Allocate ``need`` bytes on ``host`` (a forced host too); False if it overcommits."""
        self.used[host] += need
        return bool(self.used[host] <= self.inventory[host])

    def release(self, host: int, need: float) -> None:
        """Free a claim: the instance was deleted or moved away."""
        self.used[host] -= need
