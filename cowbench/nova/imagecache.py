"""Nova's image cache manager (FACTS.md 1.6): the pass that ages unused bases out of ``_base``.

Every ``manager_interval_s`` a pass sets the mtime of every base in use to now (a base is in
use when an instance on the host, or a ``<uuid>_resize`` directory, is backed by it) and, if
``remove_unused_base_images``, removes each unused base whose mtime is at least
``remove_unused_original_minimum_age_s`` old (``remove_unused_resized_minimum_age_s`` for
resized ``<sha1>_<N>`` copies). Creating a disk from a base also touches its mtime (the caller
sets it to now when it creates the disk). Ephemeral and swap bases are never "in use" for the
manager (it checks only ``disk``'s backing file), so they age from their last creation.

One function for a whole host or a whole fleet: ``in_use`` and ``mtime`` are arrays (one entry
per base, or a hosts x bases matrix); the timeline passes a host's few bases, the fleet all.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike


class CacheSettings(Protocol):
    """What a pass reads (``cowbench.nova.schema.ImageCacheSettings``)."""

    @property
    def remove_unused_base_images(self) -> bool: ...
    @property
    def remove_unused_original_minimum_age_s(self) -> float: ...
    @property
    def remove_unused_resized_minimum_age_s(self) -> float: ...


def cache_pass(now: float, in_use: ArrayLike, mtime: ArrayLike, ic: CacheSettings,
               resized: ArrayLike = False) -> tuple[np.ndarray, np.ndarray]:
    """One pass of the manager: ``(mtime after the pass, which bases it removes)``.

    ``in_use``: bases some instance uses; ``mtime``: their mtimes (seconds, the model's clock);
    ``resized``: bases that are resized copies (the shorter minimum age applies)."""
    used = np.asarray(in_use, dtype=bool)
    touched = np.where(used, now, np.asarray(mtime, dtype=np.float64))
    if not ic.remove_unused_base_images:
        return touched, np.zeros(touched.shape, dtype=bool)
    age = np.where(np.asarray(resized, dtype=bool), ic.remove_unused_resized_minimum_age_s,
                   ic.remove_unused_original_minimum_age_s)
    return touched, np.asarray(~used & (now - touched >= age))
