"""fio's non-uniform ``random_distribution`` for the model's own offset generator, bit for bit
(fio 3.33: lib/zipf.c, lib/gauss.c, io_u.c, filesetup.c ``__init_rand_distribution``).

zipf, pareto and normal draw from their own 32-bit Tausworthe state, seeded with fio's
``jhash`` of the file name times the thread number (or the block-offset seed when the job is
not repeatable); a *rank* is drawn (zipf by Gray et al.'s method with zeta(n, theta) summed
left to right over at most 10^7 ranks; pareto as ``(n-1) * u^(log h / log(1-h))``; normal as
the mean of 12 uniform draws on ``[0, n]`` plus a uniform deviation of ``dev`` percent of
the range, halved until it fits), then scrambled with ``__hash_u64`` (a multiply by the
64-bit golden ratio) plus ``rand_off``, modulo the ranges. fio keeps **no random map** for
these three (``init_random_map`` returns before making one), so hot blocks repeat.
``zoned``/``zoned_abs`` pick a zone with ``rand_between(zone_state, 1, 100)`` and a block in it
through the uniform path (see sim/workload/fio.py); ``Zones`` holds fio's 100-entry table.
"""

from __future__ import annotations

import math

import numpy as np

from cowbench.randdist import Dist

from .fiorand import Taus

GOLDEN_RATIO_64 = np.uint64(0x61C8864680B583EB)
ZIPF_MAX_GEN = 10_000_000
GAUSS_ITERS = 12
TWO63 = 2.0**63


def _hash_mod(rank: np.ndarray, rand_off: int, n: int) -> np.ndarray:
    """fio: ``(__hash_u64(rank) + rand_off) % nranges`` in 64-bit unsigned arithmetic."""
    with np.errstate(over="ignore"):
        h = rank.astype(np.uint64) * GOLDEN_RATIO_64 + np.uint64(rand_off)
    return np.asarray((h % np.uint64(n)).astype(np.int64))


def _to_u64(x: np.ndarray) -> np.ndarray:
    """A double to ``unsigned long long`` as gcc does on x86-64: below 2^63 by truncation,
    [2^63, 2^64) exactly, larger or infinite values wrap to 0, NaN gives 2^63."""
    big = x >= TWO63
    low = np.where(big | ~np.isfinite(x), 0.0, x).astype(np.int64).astype(np.uint64)
    with np.errstate(invalid="ignore"):
        high = np.where(big & (x < 2.0**64), x - TWO63, 0.0).astype(np.uint64)
    out = np.where(big & (x < 2.0**64), high + np.uint64(1 << 63), low)
    out = np.where(np.isnan(x), np.uint64(1 << 63), out)
    return np.asarray(np.where(np.isposinf(x), np.uint64(0), out).astype(np.uint64))


def _zetan(n: int, theta: float) -> float:
    """``zipf_update``: pow(1/(i+1), theta) summed left to right (cumsum is sequential)."""
    total = 0.0
    to_gen = min(n, ZIPF_MAX_GEN)
    for start in range(0, to_gen, 1_000_000):
        i = np.arange(start, min(start + 1_000_000, to_gen), dtype=np.float64)
        terms = np.power(1.0 / (i + 1.0), theta)
        terms[0] += total
        total = float(np.cumsum(terms)[-1])
    return total


def _center_off(n: int, center: float, bits: int) -> int:
    """fio's ``rand_off`` from a center: ``nranges * center`` (zipf, pareto: a uint64_t) or
    ``nranges * (center - 0.5)`` (normal: an unsigned int), converted as gcc does."""
    off = int(_to_u64(np.array([float(n) * center]))[0])
    return off & ((1 << bits) - 1)


class Distribution:
    """Draws block numbers in ``[0, n)`` by fio's zipf, pareto or normal, from ``seed``
    (the 32-bit seed ``__init_rand_distribution`` computes), as ``dist`` (cowbench.randdist's
    reading of the spec, fio's defaults filled in) says."""

    def __init__(self, dist: Dist, n: int, seed: int) -> None:
        self.kind, self.n = dist.kind, n
        self.rand = Taus(seed)
        if dist.kind == "normal":
            dev = dist.value
            stddev = math.ceil(float(n * dev) / 100.0) if dev != 0.0 else 0
            self.stddev = min(stddev, n // 2) & 0xFFFFFFFF
            # gauss_init: 0, or nranges * (center - 0.5) into an unsigned int (gcc: through
            # a signed 64-bit conversion, so below the middle it wraps)
            self.rand_off = 0 if dist.center is None else _center_off(n, dist.center - 0.5, 32)
            return
        self.rand_off = self.rand.one()  # shared_rand_init draws it even when a center is set
        if dist.center is not None:
            self.rand_off = _center_off(n, dist.center, 64)
        if dist.kind == "zipf":
            self.theta = dist.value
            self.zeta2 = math.pow(1.0, self.theta) + math.pow(0.5, self.theta)
            self.zetan = _zetan(n, self.theta)
        else:
            h = dist.value
            self.pareto_pow = math.log(h) / math.log(1.0 - h)

    def draw(self, k: int) -> np.ndarray:
        if self.kind == "zipf":
            return _hash_mod(self._zipf(k), self.rand_off, self.n)
        if self.kind == "pareto":
            u = self.rand.take(k).astype(np.float64) / 4294967295.0
            rank = _to_u64(float(self.n - 1) * np.power(u, self.pareto_pow))
            return _hash_mod(rank, self.rand_off, self.n)
        return _hash_mod(self._gauss(k), self.rand_off, self.n)

    def _zipf(self, k: int) -> np.ndarray:
        n, theta = self.n, self.theta
        alpha = 1.0 / (1.0 - theta)
        eta = (1.0 - math.pow(2.0 / n, 1.0 - theta)) / (1.0 - self.zeta2 / self.zetan)
        u = self.rand.take(k).astype(np.float64) / 4294967295.0
        uz = u * self.zetan
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            x = float(n) * np.power(eta * u - eta + 1.0, alpha)
        with np.errstate(over="ignore"):
            val = _to_u64(x) + np.uint64(1)
        val = np.where(uz < 1.0, np.uint64(1),
                       np.where(uz < 1.0 + math.pow(0.5, theta), np.uint64(2), val))
        with np.errstate(over="ignore"):
            return np.asarray(val.astype(np.uint64) - np.uint64(1))

    def _gauss(self, k: int) -> np.ndarray:
        per = GAUSS_ITERS + (1 if self.stddev else 0)
        r = self.rand.take(k * per).reshape(k, per).astype(np.uint64)
        total = (r[:, :GAUSS_ITERS] % np.uint64(self.n + 1)).sum(axis=1, dtype=np.uint64)
        s = ((total + np.uint64(GAUSS_ITERS - 1)) // np.uint64(GAUSS_ITERS)).astype(np.int64)
        if not self.stddev:
            return np.asarray(s)
        vr = (self.stddev * (r[:, GAUSS_ITERS].astype(np.float64) / 2.0**32)).astype(np.int64)
        dev = vr - self.stddev // 2
        # ``while (dev + sum >= nranges) dev /= 2``, the sum wrapping below zero as unsigned
        while True:
            bad = (s + dev < 0) | (s + dev >= self.n)
            if not bad.any():
                break
            dev = np.where(bad, np.sign(dev) * (np.abs(dev) // 2), dev)
        return np.asarray(s + dev, dtype=np.int64)


class Zones:
    """fio's ``zone_state_index`` (zone-dist.c): for each ``v`` in 1..100, the zone's
    ``[start, end)`` in percent of the blocks (``zoned``) or in bytes (``zoned_abs``), from
    ``dist``'s zones as fio fills them in (cowbench.randdist.parse)."""

    def __init__(self, dist: Dist) -> None:
        self.absolute = dist.absolute
        self.prev = np.zeros(100, dtype=np.int64)
        self.end = np.zeros(100, dtype=np.int64)
        aprev = sprev = 0
        for share, width in dist.zones:
            self.prev[aprev:aprev + share] = sprev
            self.end[aprev:aprev + share] = sprev + width
            aprev += share
            sprev += width
