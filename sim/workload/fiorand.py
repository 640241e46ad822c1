"""fio's random number generators and seeds, bit for bit (fio 3.33: lib/rand.[ch], init.c,
hash.h), so the model's own offset streams are the ones fio issues.

- ``Taus``: fio's combined Tausworthe generators (``taus88``, 32 bit, the default, and
  ``taus258`` for ``random_generator=tausworthe64``), seeded as ``init_rand_seed`` does. Each
  component is linear over GF(2), so a block of ``BLOCK`` consecutive states jumps to the next
  block through four (eight) byte tables of the component's ``BLOCK``-th power (and the first
  block is built by doubling with the lower powers): numpy draws fio's exact sequence at a few
  nanoseconds a value.
- ``fio_seeds``: ``td->rand_seeds`` as ``setup_random_seeds`` and ``td_fill_rand_seeds`` make
  them (``randseed`` turns ``randrepeat`` off; with ``randrepeat`` the block offsets are seeded
  by ``FIO_RANDSEED * thread_number``).
- ``jhash``: fio's Jenkins hash of a file name, which seeds zipf, pareto and normal.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

M32 = (1 << 32) - 1
M64 = (1 << 64) - 1
FIO_RANDSEED = 0xB1899BED
RANDSEED_DEFAULT = 0x89  # fio's default for the randseed option (options.c)
GOLDEN_RATIO_32 = 0x61C88647
SEED_MULT = 0x9E370001
LOG2_BLOCK = 12
BLOCK = 1 << LOG2_BLOCK
# td->rand_seeds indices (fio.h)
BLOCK_OFF, MIX_OFF, ZONE_OFF, NR_OFFS = 6, 4, 16, 21


def _taus(a: int, b: int, c: int, d: int, mask: int) -> Callable[[int], int]:
    """One Tausworthe component: ``((s & c) << d) ^ (((s << a) ^ s) >> b)`` in ``mask`` bits."""
    def step(s: int) -> int:
        return (((s & c) << d) & mask) ^ ((((s << a) & mask) ^ s) >> b)
    return step


def _taus64(k: int, q: int, c: int, s_: int) -> Callable[[int], int]:
    """fio's ``__rand64`` components: ``((s & c) << s_) ^ (((s << q) ^ s) >> k)``."""
    return _taus(q, k, c, s_, M64)


COMPONENTS32 = (_taus(13, 19, 4294967294, 12, M32), _taus(2, 25, 4294967288, 4, M32),
                _taus(3, 11, 4294967280, 17, M32))
COMPONENTS64 = (_taus64(53, 1, 18446744073709551614, 10),
                _taus64(50, 24, 18446744073709551104, 5),
                _taus64(23, 3, 18446744073709547520, 29),
                _taus64(24, 5, 18446744073709420544, 23),
                _taus64(33, 3, 18446744073701163008, 8))


def _apply(cols: list[int], x: int) -> int:
    out, j = 0, 0
    while x:
        if x & 1:
            out ^= cols[j]
        x >>= 1
        j += 1
    return out


@cache
def _columns(use64: bool, which: int, log2p: int) -> tuple[int, ...]:
    """Columns of component ``which``'s step matrix to the power ``2**log2p`` (GF(2))."""
    if log2p == 0:
        step = (COMPONENTS64 if use64 else COMPONENTS32)[which]
        return tuple(step(1 << j) for j in range(64 if use64 else 32))
    half = list(_columns(use64, which, log2p - 1))
    return tuple(_apply(half, c) for c in half)  # M^2p's columns: M^p applied to M^p's


@cache
def _jump_tables(use64: bool, which: int, log2p: int) -> np.ndarray:
    """Byte tables of component ``which``'s ``2**log2p``-th power: ``(width/8, 256)``."""
    cols = list(_columns(use64, which, log2p))
    width = len(cols)
    tables = np.zeros((width // 8, 256), dtype=np.uint64 if use64 else np.uint32)
    for byte in range(width // 8):
        for v in range(256):
            tables[byte, v] = _apply(cols[8 * byte:8 * byte + 8], v)
    return tables


def _jump(x: np.ndarray, tables: np.ndarray) -> np.ndarray:
    out = tables[0][x & 0xFF]
    for byte in range(1, tables.shape[0]):
        out = out ^ tables[byte][(x >> (8 * byte)) & 0xFF]
    return np.asarray(out)


def _seed_state(seed: int, use64: bool) -> list[int]:
    """``__init_rand32`` / ``__init_rand64``: an LCG from 53 (fio writes 2^31 + 2^17 + 2^7,
    which in C is an XOR: 29 + 19 + 5), each state at least its minimum, then six cranks."""
    mask, mult = (M64, 6906969069) if use64 else (M32, 69069)
    mins = (1, 7, 15, 33, 49) if use64 else (1, 7, 15)
    seed &= mask
    x, state = 53, []
    for m in mins:
        x = ((x * mult) & mask) ^ seed
        x = x + m if x < m else x
        state.append(x)
    comps = COMPONENTS64 if use64 else COMPONENTS32
    for _ in range(6):
        state = [f(s) for f, s in zip(comps, state, strict=True)]
    return state


class Taus:
    """fio's ``__rand`` stream from ``init_rand_seed(seed, use64)``."""

    def __init__(self, seed: int, use64: bool = False) -> None:
        self.use64 = use64
        self.max_plus_one = 2.0**64 if use64 else 2.0**32
        comps = COMPONENTS64 if use64 else COMPONENTS32
        dtype = np.uint64 if use64 else np.uint32
        state = [f(s) for f, s in zip(comps, _seed_state(seed, use64), strict=True)]
        # the first block of BLOCK consecutive states, by doubling: the next 2^i states are
        # the step matrix to the power 2^i applied to the first 2^i
        self._block = [np.array([s], dtype=dtype) for s in state]
        for log2p in range(LOG2_BLOCK):
            self._block = [np.concatenate([b, _jump(b, _jump_tables(use64, i, log2p))])
                           for i, b in enumerate(self._block)]
        self._tables = [_jump_tables(use64, i, LOG2_BLOCK) for i in range(len(comps))]
        self._buf = self._output()
        self._pos = 0

    def _output(self) -> np.ndarray:
        out = self._block[0]
        for comp in self._block[1:]:
            out = np.bitwise_xor(out, comp)
        return np.asarray(out)

    def _advance(self) -> None:
        self._block = [_jump(b, t) for b, t in zip(self._block, self._tables, strict=True)]
        self._buf = self._output()
        self._pos = 0

    def take(self, k: int) -> np.ndarray:
        """The next ``k`` values of ``__rand`` (uint32, or uint64 for tausworthe64)."""
        parts = []
        while k > 0:
            if self._pos == BLOCK:
                self._advance()
            n = min(k, BLOCK - self._pos)
            parts.append(self._buf[self._pos:self._pos + n])
            self._pos += n
            k -= n
        if not parts:
            return self._buf[:0]
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)

    def one(self) -> int:
        return int(self.take(1)[0])

    def unit(self, k: int) -> np.ndarray:
        """``r / (rand_max + 1.0)`` in doubles, as fio scales a draw to a range."""
        return np.asarray(self.take(k).astype(np.float64) / self.max_plus_one)

    def between(self, k: int, start: int, end: int) -> np.ndarray:
        """fio's ``rand_between(state, start, end)`` (32-bit state), both ends inclusive."""
        span = float(end - start + 1)
        return np.asarray(start + (span * (self.take(k) / 2.0**32)).astype(np.int64))


def fio_seeds(randseed: int | None, thread_number: int, randrepeat: bool) -> list[int]:
    """``td->rand_seeds`` after ``setup_random_seeds`` and ``td_fill_rand_seeds``.

    The seeds come from ``randseed`` (default 0x89) and the thread number; with ``randrepeat``
    (fio's default) the block offsets are pinned to ``FIO_RANDSEED * thread_number``. fio 3.33
    makes the seeds *before* ``fixup_options`` lets a ``randseed`` turn ``randrepeat`` off, so
    the pin holds even with ``randseed`` set (measured: ``--randseed=7`` issues the default
    offsets); only ``randrepeat=0`` frees them."""
    seed = RANDSEED_DEFAULT if randseed is None else randseed
    for _ in range(4):
        seed = (seed * SEED_MULT) & M64
    seeds = []
    for i in range(NR_OFFS):
        seeds.append((seed * thread_number + i) & M64)
        seed = (seed * SEED_MULT) & M64
    if randrepeat:
        seeds[BLOCK_OFF] = (FIO_RANDSEED * thread_number) & M64
    return seeds


def _rol32(w: int, s: int) -> int:
    return ((w << s) | (w >> (32 - s))) & M32


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    for x, y, z, r in ((0, 2, 1, 4), (1, 0, 2, 6), (2, 1, 0, 8), (0, 2, 1, 16),
                       (1, 0, 2, 19), (2, 1, 0, 4)):
        v = [a, b, c]
        v[x] = (v[x] - v[y]) & M32
        v[x] ^= _rol32(v[y], r)
        v[y] = (v[y] + v[z]) & M32
        a, b, c = v
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    for x, y, r in ((2, 1, 14), (0, 2, 11), (1, 0, 25), (2, 1, 16), (0, 2, 4), (1, 0, 14),
                    (2, 1, 24)):
        v = [a, b, c]
        v[x] ^= v[y]
        v[x] = (v[x] - _rol32(v[y], r)) & M32
        a, b, c = v
    return c


def jhash(key: bytes, initval: int = 0) -> int:
    """fio's ``jhash`` (hash.h), including its quirk: a full 12-byte block adds only its
    bytes 0, 4 and 8."""
    length = len(key)
    a = b = c = (GOLDEN_RATIO_32 + length + initval) & M32
    k = 0
    while length > 12:
        a = (a + key[k]) & M32
        b = (b + key[k + 4]) & M32
        c = (c + key[k + 8]) & M32
        a, b, c = _mix(a, b, c)
        length -= 12
        k += 12
    if length == 0:
        return c
    tail = key[k:k + length]
    words = [0, 0, 0]
    for i, byte in enumerate(tail):
        words[i // 4] += byte << (8 * (i % 4))
    a, b, c = ((a + words[0]) & M32, (b + words[1]) & M32, (c + words[2]) & M32)
    return _final(a, b, c)
