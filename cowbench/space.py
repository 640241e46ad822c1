"""Will a real run fit? The model's prediction of the bytes it will allocate, per filesystem.

(A real run alone first tries ``cowbench.spacebound``'s quick upper bound; only a run that
does not fit the bound is checked against the model's prediction here.)

Before a real run writes anything, the model (``sim.simulate``) predicts what each host's tree
will hold at the end (``host:<name>`` ``allocated_bytes``: the raw bases in ``_base``, every
overlay or copy, every ``disk.info``) and what the generated Glance images take
(``image:<name>``), and the snapshots uploaded (``snapshot:<name>``). Without a timeline space
only grows during a run (overlays never shrink, a base is converted into ``<sha1>.converted``
and renamed, never copied twice), so the end state is the peak; with one, each entity's peak
over its time series is charged (a sum of peaks: never less than the true peak).

Each figure is charged to the filesystem its directory lives on (a host's ``storage_dir``, else
the run directory); directories on one filesystem share its free space (``statvfs``
``f_bavail``, what an unprivileged writer may use). The margin, per filesystem:

- ``MARGIN_FRACTION`` (10%) of the prediction: the model's allocation error is under 1% on the
  quickstart and within the oracle tests' bounds (tests/test_oracle.py), and a filesystem spends
  a little more on extent trees and directories for heavily fragmented overlays (ext4: one 4 KiB
  block per ~340 extents); 10% covers both with room to spare;
- ``MARGIN_BYTES`` (4 MiB): directories, journal commits, files too small for 10% to cover;
- ``RUN_DIR_BYTES`` (32 MiB) on the run directory's filesystem: ``raw/`` (every command's
  output, fio's JSON with percentiles), the records as Parquet and CSV;
- on the run directory's filesystem, every I/O record fio will write under ``raw/``
  (:func:`iolog_bytes`): a ``write_iolog: true`` workload's record of the real run, and the
  null-engine stream of ``offsets: auto`` or ``fio`` when the model runs too. One clone
  writes an iolog v3, one line per I/O
  (``TIME_MS FILE ACTION OFFSET LENGTH``; measured 40.9 bytes a line on average, 42 at most, for
  a 4 KiB randrw job over 20 GiB named ``vm-web-01``); several clones write latency logs with
  offsets (lat, slat, clat: three lines per I/O). Each line is charged at its widest (every
  number 20 digits). I/Os per clone: at most (``io_size`` or ``size`` or the disk) x ``loops``
  / the smallest block (x2 with ``do_verify``), and no more than the sum of the ``rate_iops``
  caps of the directions it issues x the runtime (fio paces each direction; a direction with
  no cap: no such bound); a time-based job without that bound: twice
  the model's count where its records have one, else ``IOPS_CEILING`` a second per clone;
- on the run directory's filesystem, the logs a job file asks fio for (``write_bw_log``,
  ``write_iops_log``, ``write_lat_log``: :func:`log_bytes`), per clone: one bw and one iops
  log, three latency logs (lat, slat, clat); with ``log_avg_msec=0`` a line per I/O each,
  else at most a line per window and direction (and never more than its I/Os), each line
  at its widest. A VM whose logs could pass :data:`LOG_CAP_BYTES` is refused before the run
  (:func:`log_cap_problem`), by the key path of the option that makes them so long; the same
  bound refuses them at ``cowbench validate`` (:func:`log_cap_problem_of_the_file`) and at
  ``cowbench fio-check`` (:func:`log_cap_problem_of_a_job_file`), where the job alone decides
  it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import UsageError
from .scenario import VM, Scenario, Workload
from .units import format_bytes, parse_size

if TYPE_CHECKING:
    import pandas as pd

MARGIN_FRACTION = 0.10
MARGIN_BYTES = 4 << 20
RUN_DIR_BYTES = 32 << 20
#: an iolog v3 line with every number at its widest (20 digits), the file name aside:
#: time, action (``write``), offset, length, the file's two indices, separators and newline
IOLOG_LINE_BYTES = 20 + 5 + 20 + 20 + 2 * 20 + 8
#: a latency log line ``time, value, ddir, bs, offset, prio``, every number at its widest
LATLOG_LINE_BYTES = 6 * 20 + 5 * 2 + 1
#: I/Os a second per clone assumed for a time-based job the model gives no count for (no
#: ``rate_iops``): an assumption, not a measurement, far above what fio reaches through
#: qemu-nbd on one machine (one I/O per microsecond)
IOPS_CEILING = 1_000_000
#: the most a VM's fio logs (a job file's ``write_*_log``) may take at their widest: a run
#: that could write more is refused before it starts, rather than fill the run's filesystem
#: (a per-I/O log of a million I/Os is about 655 MB at the widest, 5 logs x 131 bytes)
LOG_CAP_BYTES = 1 << 30
#: each log fio writes per clone for each option: bw, iops; lat, slat and clat
LOGS_PER_CLONE = {"write_bw_log": 1, "write_iops_log": 1, "write_lat_log": 3}
#: the model's I/O count of a time-based job without ``rate_iops`` is charged twice over
TIME_MARGIN = 2


@dataclass
class FsNeed:
    """What one filesystem must hold: the model's bytes, and who asked for them."""

    device: int
    directory: Path
    predicted: int = 0
    fixed: int = MARGIN_BYTES
    keys: list[str] = field(default_factory=list)

    @property
    def needed(self) -> int:
        return math.ceil(self.predicted * (1 + MARGIN_FRACTION)) + self.fixed


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest existing parent (a run directory does not exist yet)."""
    p = path.absolute()
    while not p.exists():
        p = p.parent
    return p


def free_bytes(path: Path) -> int:
    st = os.statvfs(existing_ancestor(path))
    return st.f_bavail * st.f_frsize


def _predicted(predicted: pd.DataFrame, entity: str) -> int:
    """The entity's peak predicted allocation: over its time series when it has one (a
    lifecycle timeline deletes as well as creates), else its end-of-run figure."""
    rows = predicted[(predicted.entity == entity) & (predicted.metric == "allocated_bytes")]
    return int(rows.value.max()) if len(rows) else 0


def needs_by_filesystem(charges: Iterable[tuple[Path, str, int, int]]) -> list[FsNeed]:
    """Sum each ``(directory, key, bytes, fixed bytes)`` into the filesystem it lives on."""
    needs: dict[int, FsNeed] = {}
    for directory, key, nbytes, fixed in charges:
        where = existing_ancestor(directory)
        dev = where.stat().st_dev
        need = needs.setdefault(dev, FsNeed(dev, where))
        need.predicted += nbytes
        need.fixed += fixed
        if key not in need.keys:
            need.keys.append(key)
    return list(needs.values())


def space_needs(scenario: Scenario, predicted: pd.DataFrame, out: Path,
                streams: bool = True) -> list[FsNeed]:
    """The bytes each filesystem must have free for the real run, from the model's records."""
    charges: list[tuple[Path, str, int, int]] = [(out, "--out", 0, RUN_DIR_BYTES)]
    used = {vm.image for vm in scenario.vms}
    for image in scenario.images:
        if image.name in used and image.synthetic is not None:
            charges.append((out, "--out", _predicted(predicted, f"image:{image.name}"), 0))
    for entity in sorted(set(predicted.entity[predicted.entity.str.startswith("snapshot:")])):
        charges.append((out, "--out", _predicted(predicted, entity), 0))  # to work/glance
    for i, host in enumerate(scenario.hosts):
        directory = Path(host.storage_dir) if host.storage_dir else out
        key = f"hosts[{i}].storage_dir" if host.storage_dir else "--out"
        charges.append((directory, key, _predicted(predicted, f"host:{host.name}"), 0))
    ios = sum(iolog_bytes(scenario, vm, predicted, streams) + log_bytes(scenario, vm, predicted)
              for vm in scenario.vms)
    charges.append((out, "--out", ios, 0))
    return needs_by_filesystem(charges)


def log_bytes(scenario: Scenario, vm: VM, predicted: pd.DataFrame | None) -> int:
    """Upper bound of the bytes of the logs ``vm``'s job file asks fio for (see the module):
    ``predicted``, the model's records, if there are any (a time-based job's count)."""
    return sum(b for _, b in _job_log_bytes(scenario, vm, predicted))


def _job_log_bytes(scenario: Scenario, vm: VM,
                   predicted: pd.DataFrame | None) -> list[tuple[str, int]]:
    """Each job's logs' bound, with the key path of the option that sets its length."""
    wl = scenario.workload_of(vm)
    if wl is None:
        return []
    return workload_log_bytes(wl, f"workloads.{vm.workload}",
                              lambda part: _ios_per_clone(scenario, vm, part, predicted))


def workload_log_bytes(wl: Workload, at: str, ios_of: Callable[[Workload], int | None]
                       ) -> list[tuple[str, int]]:
    """Each job of ``wl`` (key path ``at``) with logs: the bound of their bytes, with the key
    path of the option that sets its length; ``ios_of(job)``, the bound of a clone's I/Os, or
    None where it is not known (such a job is left out)."""
    out = []
    for i, part in enumerate(wl.parts):
        logs = sum(n for k, n in LOGS_PER_CLONE.items() if k in part.fio_logs)
        ios = ios_of(part) if logs else None
        if ios is None:
            continue
        avg = int(part.fio_logs.get("log_avg_msec") or 0)
        lines = ios
        if avg and part.runtime is not None:  # a line a window and direction, and one at the end
            lines = min(ios, 2 * (math.ceil((part.runtime + part.ramp_s) * 1e3 / avg) + 1))
        job = f"{at}.jobs[{i}]" if wl.jobs else at
        key = "log_avg_msec" if "log_avg_msec" in part.fio_logs else \
            next(k for k in LOGS_PER_CLONE if k in part.fio_logs)
        out.append((f"{job}.fio_logs.{key}",
                    part.numjobs * logs * (lines + 2) * LATLOG_LINE_BYTES))
    return out


def log_cap_problem_of_the_file(scenario: Scenario) -> str | None:
    """:func:`log_cap_problem` where the scenario alone decides it (``cowbench validate``): a
    job bounded by time alone (no ``rate_iops``), whose count of I/Os only the model's run
    gives, is left out (what is left passing the bound is refused by the run too)."""
    for vm in scenario.vms:
        wl = scenario.workload_of(vm)
        if wl is None:
            continue
        problem = log_cap_reason(wl, workload_log_bytes(
            wl, f"workloads.{vm.workload}",
            _on_disk(scenario.root_size(vm), scenario.duration)))
        if problem is not None:
            return f"{problem[0]}: vm {vm.name}'s {problem[1]}"
    return None


def _on_disk(disk: int, duration: float | None) -> Callable[[Workload], int | None]:
    """:func:`ios_bound` of a job on a disk of ``disk`` bytes, in a run of ``duration``."""
    return lambda part: ios_bound(part, disk - part.offset, duration)


def log_cap_problem_of_a_job_file(wl: Workload, at: str) -> tuple[str, str] | None:
    """:func:`log_cap_problem` of a job file's workload ``wl`` (key path ``at``) as any VM's
    (``cowbench fio-check``, no scenario): where the file alone decides it, a job bounded by
    its own ``size``, ``io_size`` or ``rate_iops``; the key path, and why."""
    problem = log_cap_reason(wl, workload_log_bytes(
        wl, at, lambda part: ios_bound(part, None, None)))
    return None if problem is None else (problem[0], f"a VM's {problem[1]}")


def log_cap_problem(scenario: Scenario, predicted: pd.DataFrame | None) -> str | None:
    """Why the run's fio logs may pass :data:`LOG_CAP_BYTES` (the first VM's whose bound
    does), by the key path of its longest job's option; None when every VM's fit."""
    for vm in scenario.vms:
        wl = scenario.workload_of(vm)
        problem = None if wl is None else \
            log_cap_reason(wl, _job_log_bytes(scenario, vm, predicted))
        if problem is not None:
            return f"{problem[0]}: vm {vm.name}'s {problem[1]}"
    return None


def log_cap_reason(wl: Workload, jobs: list[tuple[str, int]]) -> tuple[str, str] | None:
    """The key path of the longest of ``wl``'s ``jobs`` (:func:`workload_log_bytes`) and why
    their logs are refused, when together they may pass :data:`LOG_CAP_BYTES`; else None."""
    total = sum(b for _, b in jobs)
    if total <= LOG_CAP_BYTES:
        return None
    key = max(jobs, key=lambda j: j[1])[0]
    i = int(key.split(".jobs[", 1)[1].split("]")[0]) if ".jobs[" in key else 0
    per_io = not int(wl.parts[i].fio_logs.get("log_avg_msec") or 0)  # fio's default: 0
    how = ("a line per I/O: average them (log_avg_msec=500) or bound the job's I/O "
           "(size, io_size, rate_iops)") if per_io else ("a line per window, but no more "
           "than the job's I/Os, which without a runtime bound it: give the job a "
           "runtime, or bound its I/O (size, io_size, rate_iops)")
    return key, (f"fio logs could take {format_bytes(total)} at their widest "
                 f"({LATLOG_LINE_BYTES} bytes a line), over the {format_bytes(LOG_CAP_BYTES)} "
                 f"cowbench lets fio write; refused before the run. {how}")


def iolog_bytes(scenario: Scenario, vm: VM, predicted: pd.DataFrame | None,
                streams: bool = True) -> int:
    """Upper bound of the bytes fio's I/O records of ``vm`` take under ``raw/``: its real run's
    (``write_iolog``) and, when the model runs too (``streams``), its null-engine stream's
    (``offsets: auto`` or ``fio``; a time-based one cut to what the model used). ``predicted``: the
    model's records, if there are any (a time-based job's count)."""
    wl = scenario.workload_of(vm)
    if wl is None:
        return 0
    records = int(wl.write_iolog) + int(streams and wl.offsets in ("fio", "auto"))
    if not records:
        return 0
    if wl.jobs:  # several jobs of one VM: latency logs for every clone of each
        return records * sum(part.numjobs * 3 * LATLOG_LINE_BYTES
                             * _ios_per_clone(scenario, vm, part, predicted)
                             for part in wl.jobs)
    ios = _ios_per_clone(scenario, vm, wl, predicted)
    if wl.numjobs == 1:  # iolog v3: a header, add, open, close and a line per I/O
        per_clone = (ios + 4) * (IOLOG_LINE_BYTES + len(vm.name))
    else:  # latency logs with offsets: lat, slat and clat, a line per I/O each
        per_clone = 3 * ios * LATLOG_LINE_BYTES
    return records * wl.numjobs * per_clone


def _ios_per_clone(scenario: Scenario, vm: VM, wl: Workload,
                   predicted: pd.DataFrame | None) -> int:
    """Upper bound of the I/Os one clone of ``wl`` issues on ``vm``'s disk: a time-based job
    without ``rate_iops`` twice the model's count (``predicted``), else ``IOPS_CEILING``."""
    bound = ios_bound(wl, scenario.root_size(vm) - wl.offset, scenario.duration)
    if bound is not None:
        return bound
    if predicted is not None:
        rows = predicted[(predicted.entity == f"vm:{vm.name}")
                         & predicted.metric.isin(["read_ios", "write_ios", "ramp_ios"])]
        if len(rows):
            return math.ceil(TIME_MARGIN * float(rows.value.sum()) / wl.numjobs)
    assert wl.runtime is not None or scenario.duration is not None  # time_based: a runtime
    return math.ceil(IOPS_CEILING * (_runtime(wl, scenario.duration) or 0.0))


def ios_bound(wl: Workload, region: int | None, duration: float | None) -> int | None:
    """Upper bound of the I/Os one clone of ``wl`` issues, from the job alone: its bytes
    (``io_size`` or ``size``, else ``region``, the disk's from the job's offset) and its
    ``rate_iops`` over its runtime (cut to the scenario's ``duration``); None where neither
    bounds it (a time-based job without ``rate_iops``, a job over a disk not known)."""
    runtime = _runtime(wl, duration)
    cap = wl.rate_cap
    paced = None if cap is None or runtime is None else math.ceil(cap * (runtime + 1))
    if wl.time_based:
        return paced
    region = wl.io_size or wl.size or region
    if region is None:
        return paced
    by_bytes = math.ceil(region * wl.loops / _smallest_block(wl)) \
        * (2 if wl.verify is not None and wl.do_verify else 1)
    return by_bytes if paced is None else min(by_bytes, paced)


def _runtime(wl: Workload, duration: float | None) -> float | None:
    """How long a clone of ``wl`` issues I/O, its ramp included, at most: its runtime, cut
    to the scenario's ``duration`` (the real run and the null stream are capped by it)."""
    runtime = wl.runtime
    if duration is not None:
        runtime = min(runtime, duration) if runtime is not None else duration
    return None if runtime is None else runtime + wl.ramp_s  # runtime starts after the ramp


def _smallest_block(wl: Workload) -> int:
    """The smallest block fio may issue: ``bs``, the sizes of ``bssplit``; 512 bytes (the
    smallest ``bs`` allowed) when the job file carries its own block options."""
    if any(k.startswith(("bs", "blocksize")) for k in wl.fio_extra):
        return 512
    sizes = [wl.bs] + [parse_size(part.partition("/")[0])
                       for part in (wl.bssplit or "").split(":") if part]
    return max(512, min(sizes))


def check_free_space(scenario: Scenario, predicted: pd.DataFrame, out: Path,
                     streams: bool = True) -> list[FsNeed]:
    """Raise :class:`UsageError` if some filesystem lacks the space the run will need
    (``streams``: the model runs too and takes fio's null-engine streams)."""
    problem = log_cap_problem(scenario, predicted)
    if problem:
        raise UsageError(problem)
    needs = space_needs(scenario, predicted, out, streams)
    short = shortfalls(needs)
    if short:
        raise UsageError("\n".join(short))
    return needs


def fits(needs: list[FsNeed]) -> bool:
    """Does every filesystem have what ``needs`` asks for?"""
    return not shortfalls(needs)


def shortfalls(needs: list[FsNeed]) -> list[str]:
    """One line per filesystem short of what ``needs`` asks for."""
    short = []
    for need in needs:
        free = free_bytes(need.directory)
        if need.needed > free:
            short.append(f"{' and '.join(need.keys)}: the real run needs "
                         f"{format_bytes(need.needed)} on the filesystem of {need.directory} "
                         f"(model: {format_bytes(need.predicted)}, plus "
                         f"{MARGIN_FRACTION:.0%} and {format_bytes(need.fixed)}) but only "
                         f"{format_bytes(free)} is free; refused before writing anything")
    return short
