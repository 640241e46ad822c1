"""The jobs fio reports for one VM's workload: its JSON ``jobs`` array, entry by entry.

fio 3.33 runs each job of a job file ``numjobs`` times (the job, then its clones, in the
file's order) and writes one entry per run to ``jobs``, unless ``group_reporting`` folds them.
Two rules decide the array, read from fio's ``init.c`` (``add_job``) and ``stat.c``
(``__show_run_stats``) and checked with its null engine:

- **groupid**: a job with ``stonewall`` (or ``wait_for_previous``) or ``new_group`` starts a
  new reporting group when the group so far has a job; its clones never do (fio clears both
  options on a clone). ``new_group`` in ``[global]`` thus numbers every job after the first.
- **entries**: a run starts a new entry unless it has ``group_reporting`` and is in the same
  group as the run before it, which it then joins (its figures summed into that entry, named
  after the entry's first run). So ``numjobs=2`` with ``group_reporting`` is one entry of both
  clones, without it two entries of the same name; and two jobs of one group both with
  ``group_reporting`` are one entry. (A mix where a run with ``group_reporting`` follows one
  without also joins it; fio then sizes its array one entry too long and writes an empty entry
  of groupid 4294967295 last, which is not reproduced here.)

cowbench names a VM's job ``<vm>``, or ``<vm>.<section>`` for one of a job file's several
sections (:func:`cowbench.fiojob.job_args`). The scenario keeps ``group_reporting`` and
``new_group`` of a job file among the options the backend replaced (the real backend asks fio
for every clone and folds them itself, :mod:`real.workload.fiogroups`); they are read from
there.
"""

from __future__ import annotations

from dataclasses import dataclass

from .jobopts import fio_flag
from .workload_schema import Workload


@dataclass(frozen=True)
class ReportedJob:
    """One entry of fio's ``jobs`` array: its name, group, and the runs it sums.

    ``runs`` are indices in fio's run order (each job's clones right after it, jobs in the
    file's order: the order of the model's clones too); ``part`` is the index in
    ``Workload.parts`` of the job its first run belongs to (its ``job options``)."""

    jobname: str
    groupid: int
    runs: tuple[int, ...]
    part: int


def reported_jobs(wl: Workload, vm: str) -> list[ReportedJob]:
    """fio's ``jobs`` array for ``wl`` run as VM ``vm``'s fio process (see the module)."""
    entries: list[tuple[str, int, list[int], int]] = []
    groupid, in_group, run = 0, 0, 0
    for p, part in enumerate(wl.parts):
        name = f"{vm}.{part.section}" if wl.jobs else vm
        folds = _set(part, "group_reporting")
        for clone in range(part.numjobs):
            if clone == 0 and (part.stonewall or _set(part, "new_group")) and in_group:
                groupid, in_group = groupid + 1, 0
            in_group += 1
            if entries and folds and entries[-1][1] == groupid:
                entries[-1][2].append(run)
            else:
                entries.append((name, groupid, [run], p))
            run += 1
    return [ReportedJob(n, g, tuple(r), p) for n, g, r, p in entries]


def _set(wl: Workload, option: str) -> bool:
    """Whether the job file turned ``option`` (a flag fio reads as on when bare or non-zero)
    on for this job; a value fio would refuse counts as off (the real run fails on it)."""
    for r in reversed(wl.replaced):  # fio takes the last value given
        if r.option == option:
            try:
                return fio_flag(option, r.value)
            except ValueError:
                return False
    return False
