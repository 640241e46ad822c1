"""fio's ``size=N%``, ``offset=N%`` and ``io_size=N%``, in the bytes fio makes of them on a disk.

The real run hands the percentages to fio as written: its nbd engine takes them against the
export's size. fio's null engine has no disk (its "file" is the ``size`` it is given), so the
null run that gives the model its stream gets the bytes fio 3.33 computes (``filesetup.c``):

- ``offset=N%``: ``disk * N / 100``, rounded *up* to the job's smallest block size
  (``get_start_offset``, ``offset_align`` unset);
- ``offset_increment=N%``: ``disk * N / 100`` per clone, each clone's offset rounded up to
  the smallest block (refused where no offset and increment in bytes give every clone's);
- ``size=N%``: ``disk * N / 100``, at most the rest of the disk after the offset, cut down
  to a multiple of the smallest block size (``setup_files``); ``100%`` is the rest of the disk;
- ``io_size=N%``: ``region * N / 100`` of the job's region (its size in bytes, else the rest
  of the disk after the offset); ``0%`` and ``100%`` are the region itself.

Measured on a 100 MiB qemu-nbd export: ``offset=10%`` with 48 KiB blocks starts at 10,518,528
(10% is 10,485,760); ``size=30%, offset=33%`` writes 480 blocks of 64 KiB from 34,603,008.
``tests/test_fiopercent.py`` compares the null run's stream with the nbd engine's, I/O by I/O.
"""

from __future__ import annotations

from .errors import UsageError
from .scenario import Workload
from .workload_schema import increment_offsets, min_bs, percent


def on_disk(wl: Workload, disk: int) -> Workload:
    """``wl`` with ``size`` and ``offset`` in percent turned into the bytes fio makes of them
    on a disk of ``disk`` bytes; ``wl`` itself when it has none."""
    size_pct, offset_pct = percent(wl, "size"), percent(wl, "offset")
    inc_pct, io_pct = percent(wl, "offset_increment"), percent(wl, "io_size")
    if size_pct is None and offset_pct is None and inc_pct is None and io_pct is None:
        return wl
    align = min_bs(wl)
    offset = wl.offset
    if offset_pct is not None:
        offset = -(-(disk * offset_pct // 100) // align) * align
    size = wl.size
    if size_pct is not None:
        size = None if size_pct == 100 else min(disk * size_pct // 100, disk - offset)
        size = None if size is None else size - size % align
    extra = {k: v for k, v in wl.fio_extra.items() if k not in ("size", "offset", "io_size")}
    io_size = wl.io_size
    if io_pct is not None:  # of the job's region (its size, else the rest of the disk)
        io_size = (disk - offset if size is None else size) * io_pct // 100 or None
        io_size = None if io_pct in (0, 100) else io_size
    if inc_pct is not None:
        offset, inc = _increment(disk * inc_pct // 100, offset, align, wl.numjobs)
        extra["offset_increment"] = str(inc)
    return wl.model_copy(update={"offset": offset, "size": size, "io_size": io_size,
                                 "fio_extra": extra})


def _increment(raw: int, start: int, align: int, clones: int) -> tuple[int, int]:
    """``offset_increment=N%`` (``raw`` bytes) as an offset and an increment in bytes
    (:func:`cowbench.workload_schema.increment_offsets`); UsageError where fio's are uneven."""
    offset, inc, problem = increment_offsets(raw, start, align, clones)
    if problem:
        raise UsageError(problem)
    return offset, inc
