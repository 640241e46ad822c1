"""The exact fleet disk model: every write of a workload class drawn and applied to a qcow2 map.

The same write model as ``fluid`` (uniform with replacement within the hot or cold region,
sequential growth), but drawn offset by offset from a per-VM random stream and applied to a
``sim.storage.disk.Qcow2Image`` in batches by ``sim.storage.engine.apply_writes``: the exact
allocation engine the rest of the model uses, at numpy speed. It exists to check the fluid
closed forms on fleets small enough for it (``tests/test_fluid.py``).
"""

from __future__ import annotations

import numpy as np

from sim.storage.disk import BaseData, Qcow2Image
from sim.storage.engine import apply_writes

from .fluid import DiskState, Phases


def _draw_offsets(ph: Phases, n: int, rng: np.random.Generator) -> np.ndarray:
    """Byte offsets of ``n`` random writes: hot with probability p, uniform within a region."""
    cpu = ph.unit // ph.c
    u_hot = ph.hot_clusters // cpu
    u_cold = ph.n_clusters // cpu - u_hot
    hot = rng.random(n) < ph.p_hot
    unit = np.where(hot, rng.integers(0, max(u_hot, 1), size=n),
                    u_hot + rng.integers(0, max(u_cold, 1), size=n))
    within = rng.integers(0, ph.unit // ph.bs, size=n) * ph.bs
    return np.asarray(unit * ph.unit + within, dtype=np.int64)


class ExactDisk:
    """One VM's root overlay, advanced through time by the exact engine."""

    def __init__(self, ph: Phases, base: BaseData, base_mask: np.ndarray,
                 rng: np.random.Generator, horizon_age: float) -> None:
        self.ph = ph
        self.img = Qcow2Image(ph.size, ph.c, backing=base)
        self.base_mask = base_mask
        n_max, g_max = (int(x[0]) for x in ph.counts(np.array([horizon_age])))
        self.random = _draw_offsets(ph, n_max, rng)
        growth = ph.growth_start + np.arange(g_max, dtype=np.int64) * ph.bs
        self.growth = growth[growth + ph.bs <= ph.size]
        self.done = (0, 0)

    def _apply(self, offsets: np.ndarray) -> None:
        apply_writes(self.img, offsets, np.full(offsets.size, self.ph.bs, dtype=np.int64))

    def advance(self, age: float) -> tuple[int, int, int]:
        """Apply the writes done by ``age``; return (data clusters, L2 tables, union clusters)."""
        n, g = (int(x[0]) for x in self.ph.counts(np.array([age])))
        n0, g0 = self.done
        self._apply(self.random[n0:n])
        self._apply(self.growth[g0:g])
        self.done = (max(n, n0), max(g, g0))
        union = int(np.count_nonzero(self.img.allocated | self.base_mask))
        return self.img.n_data, self.img.n_l2, union


def exact_states(disk: ExactDisk, ages: np.ndarray) -> DiskState:
    """The disk's state at each of ``ages`` (any order)."""
    order = np.argsort(ages, kind="stable")
    out = np.zeros((ages.size, 3))
    for i in order.tolist():
        out[i] = disk.advance(float(ages[i]))
    return DiskState(out[:, 0], out[:, 1], out[:, 2])
