"""The fluid disk model: closed forms for what a workload class does to a qcow2 overlay.

A fleet-year is about 10^11 guest I/Os, far beyond per-I/O simulation (FACTS.md b.6 item 24),
so per VM and per instant the fluid model computes *expected* allocation in closed form:

- ``n`` random writes of ``bs`` bytes, each landing in the hot region with probability ``p``
  and uniformly on one of its ``U`` allocation units (a unit is ``max(bs, cluster)``): a given
  hot unit is still untouched with probability ``(1 - p/U)^n`` (uniform with replacement, the
  occupancy formula ``N(1 - (1 - 1/N)^w)`` of FACTS.md 4 item 2, with the hot/cold split folded
  in exactly: a binomial split of ``n`` gives the same per-unit probability);
- sequential growth covers a known run of clusters, which are then allocated for sure;
- an L2 table is allocated when any cluster under it is: the same formula per table, with the
  hot and cold units the table covers (tables are grouped into runs of identical shape);
- the qcow2 file's layout (header, refcount table and blocks, L1, where the filesystem puts its
  extent tree) is ``sim.storage.disk.Qcow2Image``'s: :class:`OverlayGeometry` asks a probe image for
  ``allocated_bytes`` and tabulates it exactly (it is ``host_clusters * cluster`` plus a
  non-decreasing step function, which bisection finds without scanning every size).

Expected values are exact for the stated write model; ``tests/test_fluid.py`` checks them against
``sim.fleet.fleet_exact``, which draws every write and applies it to a ``Qcow2Image``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cowbench.fleet import DAY, WorkloadClass
from sim.storage.disk import Qcow2Image

Interval = tuple[int, int]


class OverlayGeometry:
    """``allocated_bytes`` of a qcow2 overlay as a function of its allocated clusters.

    ``k`` = data clusters + L2 tables. Each allocation adds one host cluster, and a refcount
    block when the existing ones no longer cover the file (``sim.storage.hostfile.HostFile._grow``):
    the smallest ``R >= R0`` with ``R * covers >= H' + k + R``.
    """

    def __init__(self, virtual_size: int, cluster_size: int) -> None:
        probe = Qcow2Image(virtual_size, cluster_size)
        self._probe = probe
        self.c = cluster_size
        self.n_clusters = probe.n_clusters
        self.l2_entries = probe.l2_entries
        self.n_tables = probe.l1_entries
        self._r0 = probe.file.n_refblocks
        self._fixed = probe.host_clusters - probe.file.n_refblocks
        self._covers = probe.refblock_covers
        self.empty_bytes = probe.allocated_bytes
        h_lo = self.host_clusters(np.array([0]))[0]
        h_hi = self.host_clusters(np.array([self.n_clusters + self.n_tables]))[0]
        self._starts, self._resid = self._steps(int(h_lo), int(h_hi))

    def host_clusters(self, k: np.ndarray) -> np.ndarray:
        k = np.asarray(k, dtype=np.int64)
        r = np.maximum(self._r0, -(-(self._fixed + k) // (self._covers - 1)))
        return np.asarray(self._fixed + k + r, dtype=np.int64)

    def _resid_at(self, h: int) -> int:
        f = self._probe.file  # a file of h clusters, written end to end
        f.end = f.used = h
        return self._probe.allocated_bytes - h * self.c

    def _steps(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        starts, resid = [lo], [self._resid_at(lo)]
        grid = sorted({*np.linspace(lo, hi, 65).astype(int).tolist(), hi})
        for a, b in zip(grid, grid[1:], strict=False):
            self._bisect(a, self._resid_at(a), b, self._resid_at(b), starts, resid)
        return np.array(starts, dtype=np.int64), np.array(resid, dtype=np.int64)

    def _bisect(self, a: int, ra: int, b: int, rb: int, starts: list[int],
                resid: list[int]) -> None:
        """Append every step of the residual in (a, b]; it is constant where ra == rb."""
        if ra == rb:
            return
        if b - a == 1:
            starts.append(b)
            resid.append(rb)
            return
        m = (a + b) // 2
        rm = self._resid_at(m)
        self._bisect(a, ra, m, rm, starts, resid)
        self._bisect(m, rm, b, rb, starts, resid)

    def allocated_bytes(self, k: np.ndarray) -> np.ndarray:
        h = self.host_clusters(k)
        i = np.searchsorted(self._starts, h, side="right") - 1
        return np.asarray(h * self.c + self._resid[i], dtype=np.float64)


@dataclass(frozen=True)
class Phases:
    """A workload class resolved against one root disk and cluster size (units, regions)."""

    size: int
    c: int
    bs: int
    unit: int
    hot_clusters: int
    p_hot: float
    writes_per_s: float
    growth_per_s: float
    growth_start: int

    @classmethod
    def of(cls, wc: WorkloadClass, size: int, c: int) -> Phases:
        unit = max(wc.bs, c)
        hot = int(wc.hot_fraction * size) // unit * unit
        g0 = int(wc.growth_start * size) // unit * unit
        return cls(size, c, wc.bs, unit, hot // c, wc.hot_share if hot < size else 1.0,
                   wc.write_bytes_per_day / wc.bs / DAY, wc.growth_bytes_per_day / wc.bs / DAY, g0)

    @property
    def n_clusters(self) -> int:
        return -(-self.size // self.c)

    @property
    def regions(self) -> list[tuple[Interval, float]]:
        """(cluster interval, share of random writes) of the hot and cold regions."""
        return [((0, self.hot_clusters), self.p_hot),
                ((self.hot_clusters, self.n_clusters), 1.0 - self.p_hot)]

    def counts(self, age: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(random writes, growth writes) done after ``age`` seconds of life."""
        age = np.maximum(np.asarray(age, dtype=np.float64), 0.0)
        # the epsilon keeps whole days whole: 86400 * (w / 86400) may land just below w
        return (np.floor(age * self.writes_per_s + 1e-9),
                np.floor(age * self.growth_per_s + 1e-9))

    def growth_clusters(self, n_growth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cluster interval [g0, g1) written by ``n_growth`` sequential writes."""
        nbytes = np.minimum(n_growth * self.bs, self.size - self.growth_start)
        g0 = self.growth_start // self.c
        g1 = -(-(self.growth_start + nbytes) // self.c)
        return np.full_like(g1, g0), g1

    def untouched(self, n: np.ndarray, share: float, units: int) -> np.ndarray:
        """Probability that one unit of a region is missed by all ``n`` random writes."""
        if units == 0 or share == 0:
            return np.ones_like(n)
        return missed(n, share / units)

    @cached_property
    def table_runs(self) -> list[tuple[int, int, float, float]]:
        """Runs of L2 tables of one shape: (first, end, hot units, cold units) per run."""
        e = self.c // 8
        n_tab = -(-self.n_clusters // e)
        runs: list[tuple[int, int, float, float]] = []
        cpu = self.unit // self.c
        for j in range(n_tab):
            lo, hi = j * e, min((j + 1) * e, self.n_clusters)
            a = max(0, min(hi, self.hot_clusters) - lo) / cpu
            b = (hi - lo) / cpu - a
            if runs and runs[-1][2:] == (a, b):
                runs[-1] = (runs[-1][0], j + 1, a, b)
            else:
                runs.append((j, j + 1, a, b))
        return runs


def missed(n: np.ndarray, p: float) -> np.ndarray:
    """Probability that ``n`` independent writes, each landing on a target with probability
    ``p``, all miss it: ``(1 - p) ** n`` (1 before the first write when ``p`` is 1)."""
    if p >= 1.0:
        return np.asarray(np.asarray(n) == 0, dtype=np.float64)
    return np.asarray(np.exp(n * np.log1p(-p)))


def overlap(lo: np.ndarray, hi: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.asarray(np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0, None))


class BaseClusters:
    """Clusters of a root disk that hold base-image data: counts within cluster intervals."""

    def __init__(self, extents: list[tuple[int, int]], c: int) -> None:
        merged: list[list[int]] = []
        for off, length in sorted(extents):
            lo, hi = off // c, -(-(off + length) // c)
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self.runs = merged
        self.total = sum(hi - lo for lo, hi in merged)

    def mask(self, n_clusters: int) -> np.ndarray:
        out = np.zeros(n_clusters, dtype=bool)
        for a, b in self.runs:
            out[a:min(b, n_clusters)] = True
        return out

    def within(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        out = np.zeros(np.broadcast(lo, hi).shape)
        for a, b in self.runs:
            out += overlap(lo, hi, a, b)
        return out


@dataclass
class DiskState:
    """Expected state of root overlays at given instants (arrays, one entry per query)."""

    data_clusters: np.ndarray
    l2_tables: np.ndarray
    union_clusters: np.ndarray  # clusters holding data in the flattened image (snapshot)


def fluid_state(ph: Phases, base: BaseClusters, age: np.ndarray) -> DiskState:
    """Expected data clusters, L2 tables and flattened-image clusters after ``age`` seconds."""
    n, n_g = ph.counts(age)
    g0, g1 = ph.growth_clusters(n_g)
    cpu = ph.unit // ph.c
    data = np.zeros_like(n)
    union = np.full_like(n, float(base.total))
    for (lo, hi), share in ph.regions:
        units = (hi - lo) // cpu
        hit = 1.0 - ph.untouched(n, share, units)
        grown = overlap(g0, g1, lo, hi)
        data += grown + (hi - lo - grown) * hit
        nonbase = (hi - lo) - base.within(np.array(lo), np.array(hi))
        nonbase_grown = grown - base.within(np.maximum(g0, lo), np.minimum(g1, hi)) * (grown > 0)
        union += nonbase_grown + (nonbase - nonbase_grown) * hit
    return DiskState(data, _l2_tables(ph, n, g0, g1), union)


def _l2_tables(ph: Phases, n: np.ndarray, g0: np.ndarray, g1: np.ndarray) -> np.ndarray:
    e = ph.c // 8
    (hlo, hhi), p = ph.regions[0]
    (clo, chi), q = ph.regions[1]
    cpu = ph.unit // ph.c
    u_h, u_c = (hhi - hlo) // cpu, (chi - clo) // cpu
    t0, t1 = g0 // e, np.where(g1 > g0, -(-g1 // e), g0 // e)
    tables = np.zeros_like(n)
    for first, end, a, b in ph.table_runs:
        miss = 1.0 - (p * a / u_h if u_h else 0.0) - (q * b / u_c if u_c else 0.0)
        grown = overlap(t0, t1, first, end)
        p_miss = missed(n, 1.0 - miss)
        tables += grown + (end - first - grown) * (1.0 - p_miss)
    return tables
