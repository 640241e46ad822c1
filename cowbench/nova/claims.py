"""Placement's arithmetic without numpy (scenario validation imports it): what an instance
claims in DISK_GB and what a host offers (FACTS.md 1.6; the scheduler is :mod:`.placement`)."""

from __future__ import annotations

import math

GIB = 1 << 30

#: ``select``'s answer when no host has room: Nova's NoValidHost
NO_VALID_HOST = -1


def disk_gb_bytes(root: int, ephemeral: int = 0, swap: int = 0) -> int:
    """What an instance claims in placement's DISK_GB, in bytes: root + ephemeral + swap, the
    swap rounded up to a whole GiB (placement counts GB; flavors count swap in MB)."""
    return root + ephemeral + -(-swap // GIB) * GIB


def inventory(capacity_bytes: int | None, allocation_ratio: float = 1.0,
              reserved_bytes: int = 0) -> float:
    """A host's DISK_GB inventory as placement sees it: ``(total - reserved) x ratio``;
    ``inf`` for a host whose disk is not given (nothing is ever refused there)."""
    if capacity_bytes is None:
        return math.inf
    return (capacity_bytes - reserved_bytes) * allocation_ratio
