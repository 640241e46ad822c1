"""Nova's image cache manager (FACTS.md 1.6): the pass that ages unused bases out of ``_base``.

Every ``manager_interval_s`` a pass sets the mtime of every base in use to now (a base is in
use when an instance on the host, or a ``<uuid>_resize`` directory, is backed by it) and, if
``remove_unused_base_images``, removes each unused base whose mtime is at least
``remove_unused_original_minimum_age_s`` old (``remove_unused_resized_minimum_age_s`` for
resized ``<sha1>_<N>`` copies): :func:`old_enough`. Creating a disk from a base also touches
its mtime (fetching it first if missing: :func:`cowbench.nova.fetch.ensure`, for both forms).
A swap base (``swap_<MiB>``) is in use while an instance on the host has swap of its size, an
ephemeral base (``ephemeral_<GiB>_<fs>``) while one has an ephemeral disk of that size and
filesystem, and both age as a Glance base (``remove_unused_original_minimum_age_s``;
``_age_and_verify_swap_images`` and, since Nova 23.0.0, Wallaby, commit f44700935f for bug
1602193, ``_age_and_verify_ephemeral_images`` in nova/virt/libvirt/imagecache.py).

Two forms of the one pass, both deciding by :func:`old_enough`:

- :func:`cache_pass`, every base of a host (or a hosts x bases matrix) at once: the timeline's
  (``Machine.cache_pass``) and the fleet's SimPy reference;
- :class:`HostCaches`, a fleet's 10^3 hosts over 10^4 passes (issue 21): a pass looks only at
  the bases that can age out at it, each booked (:func:`first_old_pass`) for the first pass that
  would find it old enough once it falls out of use or is touched; the passes it was in use at
  are settled when it falls out of use (its mtime is then the last of them). Pass by pass the
  same bases go as with :func:`cache_pass` (``tests/test_fleet_events.py``).
"""

from __future__ import annotations

import bisect
from typing import Protocol, overload

import numpy as np
from numpy.typing import ArrayLike

from .fetch import ensure


class CacheSettings(Protocol):
    """What a pass reads (``cowbench.nova.schema.ImageCacheSettings``)."""

    @property
    def remove_unused_base_images(self) -> bool: ...
    @property
    def remove_unused_original_minimum_age_s(self) -> float: ...
    @property
    def remove_unused_resized_minimum_age_s(self) -> float: ...


@overload
def old_enough(now: float, mtime: float, min_age: float) -> bool: ...
@overload
def old_enough(now: float, mtime: np.ndarray, min_age: np.ndarray) -> np.ndarray: ...
def old_enough(now: float, mtime: float | np.ndarray, min_age: float | np.ndarray
               ) -> bool | np.ndarray:
    """Whether an unused base last touched at ``mtime`` goes at a pass at ``now`` (numpy arrays
    too: elementwise)."""
    return now - mtime >= min_age


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
    return touched, np.asarray(~used & old_enough(now, touched, age))


def first_old_pass(passes: list[float], mtime: float, min_age: float, start: int = 0) -> int:
    """Index of the first of ``passes`` (sorted), ``start`` or later, at which a base unused
    since ``mtime`` is :func:`old_enough` (``len(passes)``: none)."""
    k = bisect.bisect_left(passes, mtime + min_age, start)  # then as a pass computes it
    while k > start and old_enough(passes[k - 1], mtime, min_age):
        k -= 1
    while k < len(passes) and not old_enough(passes[k], mtime, min_age):
        k += 1
    return k


class HostCaches:
    """Every host's ``_base`` (flat lists, ``host * entries + entry``) and the passes' checks.

    Entries are the bases a host can hold; a disk of kind ``key`` (a flavor and an image) uses
    ``keys[key]`` (its Glance base, its ephemeral and its swap base, each "in use" while the
    disk exists). ``fetch``: bytes downloaded to create each entry, ``stored``: bytes it holds
    in ``_base``; ``passes``: the manager's instants, in order."""

    def __init__(self, hosts: int, keys: list[list[int]],
                 sizes: tuple[list[float], np.ndarray], ic: CacheSettings,
                 passes: list[float]) -> None:
        self.entries = keys
        self.fetch, self.stored = sizes
        self.n = n = len(self.fetch)
        self.present = [False] * (hosts * n)
        self.mtime = [0.0] * (hosts * n)
        self.users = [0] * (hosts * n)  # disks using each base
        self.busy = [0] * (hosts * n)  # passes done when the base came into use
        self.pending = [False] * (hosts * n)
        self.fetched = [0.0] * hosts
        self.remove = ic.remove_unused_base_images
        self.age = ic.remove_unused_original_minimum_age_s
        self.passes, self.done = passes, 0
        self.due: list[list[int]] = [[] for _ in passes]

    def use(self, host: int, key: int, now: float) -> None:
        """A disk created on ``host`` from the bases of ``key``: each is fetched if missing
        and touched (:func:`~.fetch.ensure`, at the host's offset), and in use."""
        base = host * self.n
        fetched = ensure(self.present, self.mtime, self.entries[key], now, base)
        if fetched:
            for e in fetched:
                self.fetched[host] += self.fetch[e]
        users = self.users
        for e in self.entries[key]:
            i = base + e
            users[i] += 1
            if users[i] == 1:
                self.busy[i] = self.done

    def hold(self, host: int, key: int, sign: int) -> None:
        """A disk backed by the bases of ``key`` comes (1) or goes (-1) on ``host``."""
        users, base = self.users, host * self.n
        for e in self.entries[key]:
            i = base + e
            users[i] += sign
            if users[i] == 0:
                self._idle(i)
            elif users[i] == 1 and sign > 0:
                self.busy[i] = self.done

    def _idle(self, i: int) -> None:
        """Base ``i`` falls out of use: the passes it was in use at touched it last at the
        latest one; it may age out from then."""
        if self.done > self.busy[i]:
            self.mtime[i] = max(self.mtime[i], self.passes[self.done - 1])
        if self.remove and self.present[i] and not self.pending[i]:
            self._book(i, self.mtime[i])

    def _book(self, i: int, mtime: float) -> None:
        """A check of base ``i``, last touched at ``mtime``, at the first pass to come that
        finds it old enough."""
        k = first_old_pass(self.passes, mtime, self.age, self.done)
        if k < len(self.passes):
            self.pending[i] = True
            self.due[k].append(i)

    def run_pass(self) -> None:
        """The next pass: the bases booked for it go if still unused and old enough."""
        k = self.done
        self.done = k + 1
        now, due = self.passes[k], self.due[k]
        self.due[k] = []
        present, mtime, users, pending = self.present, self.mtime, self.users, self.pending
        for i in due:
            pending[i] = False
            if not present[i] or users[i] > 0:  # gone, or in use (booked again when unused)
                continue
            if old_enough(now, mtime[i], self.age):
                present[i] = False
            else:
                self._book(i, mtime[i])

    def held_bytes(self) -> np.ndarray:
        """Bytes in each host's ``_base``."""
        return np.asarray(np.array(self.present, dtype=np.float64).reshape(-1, self.n)
                          @ self.stored)
