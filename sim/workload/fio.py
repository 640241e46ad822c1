"""The offsets a fio job issues, as fio 3.33 issues them (fio HOWTO; FACTS.md section 5).

A job covers the region ``[offset, offset + size)`` in blocks of ``bs`` and issues ``io_size``
bytes (default ``size``), or runs until ``runtime`` when ``time_based``. What matters for
allocation is *which* blocks it touches, and the model follows fio's own algorithms with its
own generators and seeds (sim/workload/fiorand.py), so a random job's stream is fio's, I/O for
I/O, given the job's name (its VM's name, as the real backend names the fio job):

- ``rw=read|write``: sequential from ``offset``, wrapping at the region's end;
- random, uniform: fio's Tausworthe draw; with the random map (the default) a block already
  used this pass moves to the next free one (sim/workload/fiooffs.py); ``norandommap=1``:
  uniform with replacement; ``random_generator=lfsr``: fio's LFSR, each block once per pass;
- ``zoned``/``zoned_abs``: a zone by its access share, then as uniform inside it;
- ``zipf``/``pareto``/``normal``: fio's ranks, hashed over the region, with no random map
  (sim/workload/fiodist.py);
- rw mixes: fio's runs of reads and writes (``get_rw_ddir``).

Seeding follows fio: with ``randrepeat=1`` (fio's default) the stream depends only on the job's
options, ``randseed``, its clone number and (for zipf, pareto, normal) its name, so two VMs
running the same job under the same name issue the same offsets. Streams come in chunks so a
time_based job can run as long as the model needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cowbench import randdist
from cowbench.iolog import TRIM, WRITE, Trace
from cowbench.scenario import Workload

from .fiodist import Distribution
from .fiooffs import CHUNK, Rwmix, Stream, lfsr_blocks, uniform_blocks
from .fiorand import BLOCK_OFF, M32, fio_seeds, jhash


@dataclass(frozen=True)
class IoChunk:
    """A run of consecutive I/Os of one job: byte offsets, lengths, and which are writes."""

    offsets: np.ndarray  # int64
    lengths: np.ndarray  # int64
    is_write: np.ndarray  # bool
    is_trim: np.ndarray | None = None  # bool, when the stream holds discards

    def __len__(self) -> int:
        return int(self.offsets.shape[0])


def job_region(wl: Workload, disk_size: int) -> tuple[int, int]:
    """``(start, length)`` of the region the job addresses, trimmed to whole blocks."""
    size = wl.size if wl.size is not None else disk_size - wl.offset
    size = min(size, disk_size - wl.offset)
    size -= size % wl.bs
    return wl.offset, size


def job_io_count(wl: Workload, disk_size: int) -> int | None:
    """I/Os one clone issues, or ``None`` when the job is bounded only by time."""
    if wl.time_based:
        return None
    _, size = job_region(wl, disk_size)
    total = wl.io_size if wl.io_size is not None else size
    return total // wl.bs


@dataclass(frozen=True)
class FioSeed:
    """fio's seeds for one clone: ``td->rand_seeds``, whether the job is repeatable, and the
    seed of zipf/pareto/normal (``jhash`` of the clone's file name times its thread number)."""

    seeds: tuple[int, ...]
    repeatable: bool
    dist_seed: int


def clone_file_name(name: str, clone: int, numjobs: int) -> str:
    """The file fio makes for clone ``clone`` of job ``name`` (``name.N.0``): the first job is
    number 0, its clones are added as numjobs-1, numjobs-2, ... (init.c ``add_job``)."""
    return f"{name}.{0 if clone == 0 else numjobs - clone}.0"


def job_seed(wl: Workload, clone: int, scenario_seed: int, vm_index: int,
             name: str = "job") -> FioSeed:
    """fio's seeding for clone ``clone`` (thread ``clone + 1``) of job ``name``: fixed by the
    options unless ``randrepeat=0`` without ``randseed``, where fio reads /dev/urandom and the
    model draws from the scenario's seed and the VM's index."""
    thread = clone + 1
    randseed = wl.randseed
    if randseed is None and not wl.randrepeat:
        ss = np.random.SeedSequence([scenario_seed, vm_index, thread])
        randseed = int(ss.generate_state(1, np.uint64)[0])
    repeatable = wl.randrepeat and wl.randseed is None
    seeds = tuple(fio_seeds(randseed, thread, wl.randrepeat))
    if repeatable:
        fname = clone_file_name(name, clone, wl.numjobs).encode()
        dist_seed = (jhash(fname) * thread) & M32
    else:
        dist_seed = seeds[BLOCK_OFF] & M32
    return FioSeed(seeds, repeatable, dist_seed)


def random_blocks(wl: Workload, nblocks: int, seed: FioSeed,
                  total: int | None = None) -> Iterator[np.ndarray]:
    """Chunks of fio's block numbers in ``[0, nblocks)`` for a random job: ``total`` of them,
    or endless when ``None``."""
    kind = wl.random_distribution.partition(":")[0]
    zoned = kind.startswith("zoned")
    # measured (fio 3.33, null engine): a zoned job repeats blocks as if it had no random
    # map, its offsets equal to the model's without one I/O for I/O
    st = Stream(seed.seeds, seed.repeatable, nblocks, wl.time_based, wl.norandommap or zoned,
                wl.random_generator == "tausworthe64",
                wl.random_distribution if zoned else None, wl.bs, total)
    if kind in ("zipf", "pareto", "normal"):
        dist = Distribution(randdist.parse(wl.random_distribution), nblocks, seed.dist_seed)
        done = 0
        while (k := st.chunk(done)) > 0:
            done += k
            yield dist.draw(k)
    elif wl.random_generator == "lfsr":
        yield from lfsr_blocks(st)
    else:
        yield from uniform_blocks(st)


def io_stream(wl: Workload, disk_size: int, seed: FioSeed) -> Iterator[IoChunk]:
    """Every I/O of one job clone, in issue order, as chunks; ends when ``io_size`` is done."""
    start, size = job_region(wl, disk_size)
    nblocks = size // wl.bs
    if nblocks == 0:
        return
    mix = Rwmix(seed.seeds, wl.rwmixread) if 0.0 < wl.read_fraction < 1.0 else None
    remaining = job_io_count(wl, disk_size)
    if wl.is_random:
        blocks_iter = random_blocks(wl, nblocks, seed, remaining)
    else:
        blocks_iter = _sequential(nblocks)
    read_fraction = wl.read_fraction
    for blocks in blocks_iter:
        if remaining is not None:
            if remaining <= 0:
                return
            blocks = blocks[:remaining]
            remaining -= blocks.shape[0]
        n = blocks.shape[0]
        if n == 0:  # a pass of the random map ended at the chunk's first draw
            continue
        is_write: np.ndarray
        if read_fraction == 1.0:
            is_write = np.zeros(n, dtype=bool)
        elif read_fraction == 0.0:
            is_write = np.ones(n, dtype=bool)
        else:
            assert mix is not None
            is_write = mix.writes(n)
        yield IoChunk(start + blocks.astype(np.int64) * wl.bs,
                      np.full(n, wl.bs, dtype=np.int64), is_write)


def _sequential(nblocks: int) -> Iterator[np.ndarray]:
    pos = 0
    while True:
        yield (pos + np.arange(CHUNK, dtype=np.int64)) % nblocks
        pos = (pos + CHUNK) % nblocks


def trace_chunks(trace: Trace) -> Iterator[IoChunk]:
    """A recorded clone's I/Os (reads, writes and trims, in its order) as chunks."""
    offs, lens, ddir = trace.offsets, trace.lengths, trace.ddir
    for i in range(0, offs.shape[0], CHUNK):
        d = ddir[i:i + CHUNK]
        yield IoChunk(offs[i:i + CHUNK], lens[i:i + CHUNK], d == WRITE, d == TRIM)
