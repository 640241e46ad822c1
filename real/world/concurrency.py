"""How many VMs the real backend can run at once on this machine: checked before anything is made.

The VMs whose workloads start together run together (``real.world.backend.run_workloads``):
each with its own qemu-nbd and its own fio, all at once. A scenario of a few lines can ask for
thousands (``count``, ``timeline.arrivals``); started, they would take the machine's memory and
its process ids before the first fio ended, on a machine others share. So the largest group of
runs that start together is counted first, from the scenario alone (Nova's decisions through
:func:`cowbench.walk.walk`, no executor), and a run that would not fit is refused with the
figures, as the space check refuses one that would not fit on disk (``cowbench.space``).

What each process takes, measured on this project's machine (2026-12-05, qemu-nbd 7.2, fio
3.33, ``/proc/PID/status``): qemu-nbd 9-12 MiB resident serving 4 KiB or 1 MiB random writes at
iodepth 16-32 on a qcow2 image, with 16 threads (its pool of ``--aio=threads`` workers grows,
up to 64, as requests in flight ask for them); fio's main process 30 MiB and 2 threads, each
job's process 8 MiB beside its I/O buffers (40 MiB for 1 MiB blocks at iodepth 32). The
estimate rounds each up and adds the qcow2 L2 cache QEMU may fill (its default: up to 32 MiB,
as much as the image needs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from cowbench.errors import UsageError
from cowbench.lifecycle import nova_machine
from cowbench.scenario import Scenario, Workload
from cowbench.units import format_bytes, format_duration, parse_size
from cowbench.walk import Runs, walk

MIB = 1 << 20
#: a qemu-nbd beside its L2 cache (measured 9-12 MiB)
NBD_BYTES = 16 * MIB
#: QEMU's default ceiling of a qcow2 image's L2 cache on Linux
L2_CACHE_MAX = 32 * MIB
#: fio's main process (measured 30 MiB)
FIO_BYTES = 32 * MIB
#: one job's process beside its buffers (measured 8 MiB)
JOB_BYTES = 8 * MIB
#: a qemu-nbd's threads beside its pool: the main loop, QEMU's RCU thread, one to spare
NBD_TASKS = 3
#: its pool's workers at most (one per request in flight, QEMU's default ceiling)
NBD_POOL_MAX = 64
#: fio's main process and its helper thread
FIO_TASKS = 2
#: the share of the free process ids (pid_max, less the tasks running) a run may take
TASK_SHARE = 0.5


@dataclass(frozen=True)
class Need:
    """What the largest group of runs that start together needs."""

    t: float
    vms: int
    bytes: int
    tasks: int


def check_concurrency(s: Scenario) -> None:
    """Refuse (``UsageError``, exit code 2) a real run whose largest group of VMs started
    together needs more memory than the machine has available or more processes and threads
    than its free process ids allow."""
    need = largest_group(s)
    if need is None:
        return
    key = "timeline" if s.timeline is not None else "vms"
    at = f" at t={format_duration(need.t)}" if s.timeline is not None else ""
    head = (f"{key}: {need.vms:,} VMs run their workloads at once{at} on the real backend, "
            f"each with its own qemu-nbd and fio")
    avail = available_memory()
    if avail is not None and need.bytes > avail:
        raise UsageError(f"{head}: about {format_bytes(need.bytes)} of memory, where this "
                         f"machine has {format_bytes(avail)} available; run fewer at once, or "
                         f"use --backend sim (refused before anything is made)")
    free = free_tasks()
    if free is not None and need.tasks > free * TASK_SHARE:
        raise UsageError(f"{head}: up to {need.tasks:,} processes and threads, where this "
                         f"machine has {free:,} process ids free (kernel.pid_max); run fewer "
                         f"at once, or use --backend sim (refused before anything is made)")


def largest_group(s: Scenario) -> Need | None:
    """The group of workload runs that start together needing the most memory (None: no
    VM runs a workload on the real backend)."""
    machine = nova_machine(s)
    vms = {vm.name: vm for vm in s.vms}
    best: Need | None = None
    for stage in walk(s, machine, lambda op: not s.model_only(vms[op.vm])):
        if not isinstance(stage, Runs) or not stage.runs:
            continue
        total = tasks = 0
        for run in stage.runs:
            strategy = s.strategy_of(vms[run.vm])
            entry = 16 if strategy.extended_l2 else 8
            l2 = min(L2_CACHE_MAX, math.ceil(run.size / strategy.cluster_size) * entry)
            parts = s.workloads[run.workload].parts
            total += NBD_BYTES + l2 + FIO_BYTES + sum(_job_bytes(p) for p in parts)
            in_flight = sum(p.numjobs * p.iodepth for p in parts)
            tasks += (NBD_TASKS + min(NBD_POOL_MAX, in_flight) + FIO_TASKS
                      + sum(p.numjobs for p in parts))
        if best is None or total > best.bytes:
            best = Need(stage.t, len(stage.runs), total, tasks)
    return best


def _job_bytes(p: Workload) -> int:
    """One job's processes (``numjobs`` clones), each with ``iodepth`` buffers of its largest
    block."""
    return p.numjobs * (JOB_BYTES + p.iodepth * _largest_block(p))


def _largest_block(p: Workload) -> int:
    """``bs``, or the largest size of ``bssplit`` (``4k/50:64k/50``, per direction after
    commas) or of a job file's ``bsrange`` (``4k-1m``)."""
    sizes = [p.bs]
    for value, cut in ((p.bssplit, "/"), (p.fio_extra.get("bsrange"), "-"),
                       (p.fio_extra.get("blocksize_range"), "-")):
        for direction in (value or "").split(","):
            for part in direction.split(":"):
                size = part.partition(cut)[0] if cut == "/" else part.rpartition(cut)[2]
                if size.strip():
                    sizes.append(_size(size))
    return max(sizes)


def _size(text: str) -> int:
    try:
        return parse_size(text.strip())
    except ValueError:  # fio's checks are the job file's: no figure here, no larger bound
        return 0


def available_memory() -> int | None:
    """``MemAvailable`` of /proc/meminfo in bytes (None if unreadable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def free_tasks() -> int | None:
    """Process ids not in use: ``kernel.pid_max`` less the tasks (threads) running now."""
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    except (OSError, ValueError, IndexError):
        return None
    return max(0, pid_max - running)

