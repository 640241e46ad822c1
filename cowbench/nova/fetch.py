"""A disk made from bases in a host's ``_base`` (FACTS.md 1.1 "Fetch", "Touch on use"; 1.5:
a migration's destination fetches a missing base too): each base is fetched from Glance if
``_base`` lacks it, and creating the disk refreshes every one's mtime to now
(``_update_utime_ignore_eacces``), which the cache manager ages from (1.6).

:func:`ensure` is that rule, once, for the timeline's state machine
(``cowbench.nova.machine.Machine``: a disk's bases in order) and a fleet's columnar caches
(``cowbench.nova.imagecache.HostCaches``: every host's entries in flat lists, the hot path of
10^6 arrivals).
Pure and numpy-free: scenario validation walks the machine.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableSequence


def ensure(present: MutableSequence[bool], mtime: MutableSequence[float], entries: Iterable[int],
           now: float, at: int = 0) -> list[int] | None:
    """A disk made at ``now`` from the bases ``entries`` (each at ``at + entry`` in ``present``
    and ``mtime``: a fleet's hosts side by side in flat lists): those not present are fetched
    (returned, in order, now present; None when none was: no list made on a fleet's hot path)
    and every one's mtime is ``now``."""
    fetched = None
    for e in entries:
        i = at + e
        if not present[i]:
            present[i] = True
            if fetched is None:
                fetched = [e]
            else:
                fetched.append(e)
        mtime[i] = now
    return fetched
