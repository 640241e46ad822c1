"""A disk made from bases in a host's ``_base`` (FACTS.md 1.6): each base is fetched from
Glance if ``_base`` lacks it, and creating the disk sets every one's mtime to now (Nova's
``imagebackend.Image.cache``: ``fetch_func`` unless the base file exists, then the disk is
made from it).

:func:`ensure` is that rule, once, for the timeline's state machine
(``cowbench.nova.machine.Machine``, bases by value) and a fleet's columnar caches
(``cowbench.nova.imagecache.HostCaches``, bases by flat index, the hot path of 10^6 arrivals).
Pure and numpy-free: scenario validation walks the machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

K = TypeVar("K")
K_contra = TypeVar("K_contra", contravariant=True)
V = TypeVar("V")


class Slots(Protocol[K_contra, V]):
    """Where :func:`ensure` reads and writes, by base: a list by index or a dict by value."""

    def __getitem__(self, key: K_contra, /) -> V: ...
    def __setitem__(self, key: K_contra, value: V, /) -> None: ...


def ensure(present: Slots[K, bool], mtime: Slots[K, float], bases: Iterable[K],
           now: float) -> list[K] | None:
    """A disk made at ``now`` from ``bases``: those not ``present`` are fetched (returned, in
    order, now present; None when none was: no list made on a fleet's hot path) and every
    one's ``mtime`` is ``now``."""
    fetched = None
    for b in bases:
        if not present[b]:
            present[b] = True
            if fetched is None:
                fetched = [b]
            else:
                fetched.append(b)
        mtime[b] = now
    return fetched
