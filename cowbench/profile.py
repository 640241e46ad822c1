"""The calibration profile: what ``cowbench calibrate`` measured on a storage, and the I/O
model's parameters fitted to it.

A profile is one JSON file, versioned (``schema_version``), that records where and how it was
measured (directory, filesystem, host facts, tool versions, fio settings), every probe's
measured figures, the fitted parameters (:class:`PerfParams`), and how well the model replays
the probes (``fit``). A scenario names it in ``device.profile``; the model then predicts I/O
with these parameters instead of the uncalibrated ``device`` figures. A profile is only as good
as the machine was quiet while it was measured: ``load_before`` and ``load_after`` say how
busy the machine was.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ScenarioError, UsageError
from .probe_limits import settings_problem
from .safeload import load_json_file

PROFILE_SCHEMA = 1
PROFILE_KIND = "cowbench-calibration"

#: what a probe exercises (each one fio job per export, through qemu-nbd):
#: raw: a raw file full of data; qcow2: a qcow2 image with every cluster allocated;
#: cow: first writes into a fresh qcow2 overlay over the raw file (one write per cluster);
#: cow_ext: the same with extended_l2 (subcluster allocation); chain: reads that fall through
#: ``depth`` empty qcow2 layers to the raw file; l2miss: reads of the allocated qcow2 image with
#: an L2 cache far smaller than the image needs; hole: reads of a raw file that holds no data
#: (a sparse base's holes: the filesystem answers with zeros, the device is not reached);
#: device: the storage alone, fio's libaio engine with O_DIRECT on the raw file, no qemu-nbd
#: (with ``beside``: while another job runs on it, to see how the storage orders requests);
#: trim: whole-cluster trims of a qcow2 copy of the raw file's start, every cluster allocated
#: and written (what a trim that frees data costs: ``PerfParams.punch_s``)
Target = Literal["raw", "hole", "qcow2", "cow", "cow_ext", "chain", "l2miss", "device",
                 "trim"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Turns(_Frozen):
    """How one kind of thread served a probe's I/Os on the host's cores, from the kernel's
    scheduler statistics (``/proc/PID/task/TID/schedstat``) over fio's run, ramp included:
    evidence for the host scheduler (``sim.perf.eevdf``, whose processes batch the I/Os that
    queued and keep a core for up to a slice, where qemu-nbd's threads run some 10 to 60 us a
    turn, one to a few turns per I/O: benchmarks/io_turns.py), not used by the model yet."""

    threads: int = Field(ge=0, description="threads of this kind that ran")
    turns: float = Field(ge=0, description="turns on a core per I/O")
    cpu_s: float = Field(ge=0, description="CPU seconds per I/O")
    wait_s: float = Field(ge=0, description="seconds waited runnable for a core, per turn")


class Beside(_Frozen):
    """A job that runs beside a probe's own, on the same storage; its figures are not the
    probe's."""

    rw: Literal["randread", "randwrite"]
    bs: int = Field(gt=0)
    iodepth: int = Field(ge=1)
    exports: int = Field(default=1, ge=1, le=64, description="beside a probe through the "
                         "stack: how many exports of their own the job reads, each with "
                         "``iodepth`` in flight (a device probe's job is one)")


class Probe(_Frozen):
    """One probe of the matrix and what fio measured (summed over its exports; with
    ``beside``, of the probe's own job only)."""

    name: str
    target: Target
    rw: Literal["randread", "randwrite", "write", "randtrim"]
    bs: int = Field(gt=0)
    iodepth: int = Field(ge=1)
    exports: int = Field(default=1, ge=1)
    depth: int = Field(default=0, ge=0)
    cluster_size: int = Field(default=65536, gt=0)
    runtime_s: float = Field(gt=0)
    ios: int = Field(ge=0)
    iops: float = Field(ge=0)
    bw_bytes_per_s: float = Field(ge=0)
    lat_mean_s: float = Field(ge=0)
    lat_p99_s: float = Field(ge=0)
    rounds: int = Field(default=1, ge=1, description="times the probe ran; the figures above "
                        "are medians over the rounds")
    iops_min: float | None = Field(default=None, ge=0)
    iops_max: float | None = Field(default=None, ge=0)
    beside: Beside | None = None
    issuer_cpu_s: float | None = Field(
        default=None, ge=0, description="CPU seconds per I/O of the process that issues it "
        "(fio's usr_cpu + sys_cpu over its job_runtime, per I/O); None: not measured "
        "(profiles made before it)")
    server_cpu_s: float | None = Field(
        default=None, ge=0, description="CPU seconds per I/O of the process that serves it "
        "(qemu-nbd's utime + stime over fio's run, per I/O, ramp included); None: not "
        "measured, or no server (the storage-alone probes)")
    host_cpu_s: float | None = Field(
        default=None, ge=0, description="CPU seconds per I/O of the whole machine while fio "
        "ran (/proc/stat: every core's user, nice, system, irq and softirq), ramp included: on "
        "a quiet machine, all the CPU the I/O path costs, the kernel's too; evidence, not used "
        "by the model yet. None: not measured, or a job ran beside the probe's")
    issuer_turns: float | None = Field(
        default=None, ge=0, description="fio's context switches per I/O (its JSON's ctx over "
        "its I/Os, after the ramp): how often the issuer gave up its core; None: not measured "
        "(profiles made before 2026-12-04 18:00 UTC)")
    server_main: Turns | None = Field(
        default=None, description="qemu-nbd's main thread (it speaks NBD), of the probe's own "
        "exports; None: not measured, or no server")
    server_pool: Turns | None = Field(
        default=None, description="qemu-nbd's other threads (the pool that reads and writes "
        "the image), of the probe's own exports; None: not measured, or no server")
    steal_share: float | None = Field(
        default=None, ge=0, le=1, description="the share of the machine's core-time the "
        "hypervisor took while fio ran (/proc/stat's steal over the wall time and the cores): "
        "on a virtual machine, its host's other guests and its own work (the virtual disk's "
        "emulation among it) running on the cores this machine's CPUs wanted; 0 on bare "
        "metal. Evidence of how busy the hypervisor was, for the drift (cowbench.drift), not "
        "used by the model. None: profiles made before it")


#: the size of the I/Os whose CPU the scheduler's per-kind costs are (the 4 KiB probes'):
#: ``SchedParams.*_bytes_cpu`` is for the bytes beyond it
BYTES_BASE = 4096


#: how a machine's kernel groups the processes on its cores (``SchedParams.groups``)
Groups = Literal["none", "session"]


class CpuCost(_Frozen):
    """What one kind of I/O costs the host scheduler's two processes: the issuer's and the
    server's CPU per I/O (the deepest probe's) and per wake-up (half of what the iodepth-1
    probe spent beyond it: the wake-up that serves a read of data hands it to qemu-nbd's
    worker threads, one that serves a hole's does not)."""

    issuer_io_s: float = Field(ge=0)
    issuer_wake_s: float = Field(ge=0)
    server_io_s: float = Field(ge=0)
    server_wake_s: float = Field(ge=0)

    @property
    def qd1_s(self) -> float:
        """The CPU one I/O costs alone (one in flight: each process wakes twice per I/O)."""
        return self.issuer_io_s + self.server_io_s + 2 * (self.issuer_wake_s + self.server_wake_s)


def _in_bytes(table: Sequence[tuple[Any, ...]], length: float, width: int) -> tuple[float, ...]:
    """The ``width`` figures of ``table`` (rows ``(bytes, *figures)``, sorted, all beyond a
    4 KiB I/O's) for ``length`` bytes: 0 at 4 KiB and below, linear in bytes between the
    probed sizes, and past the largest in proportion."""
    if not table or length <= BYTES_BASE:
        return (0.0,) * width
    points = [(BYTES_BASE, *(0.0,) * width), *table]
    for lo, hi in zip(points, points[1:], strict=False):
        if length <= hi[0]:
            k = (length - lo[0]) / (hi[0] - lo[0])
            return tuple(a + k * (b - a) for a, b in zip(lo[1:], hi[1:], strict=True))
    top = points[-1]
    k = (length - BYTES_BASE) / (top[0] - BYTES_BASE)
    return tuple(v * k for v in top[1:])


class SchedParams(_Frozen):
    """The host scheduler (``sim.perf.eevdf``; ``sim.perf.sched`` with ``queues: one``): the
    host's cores shared by two processes per VM on the I/O path, the *issuer* (fio; a vCPU in
    production) and the *server* (qemu-nbd; an iothread), in time slices. Each process spends
    ``*_io_s`` of CPU per I/O, half as the request goes and half as it returns, and
    ``*_wake_s`` each time it wakes from sleep (one wake-up serves every I/O that queued
    meanwhile). Measured by the calibration probes' ``issuer_cpu_s`` and ``server_cpu_s``;
    the slice is the kernel's default."""

    cores: int = Field(ge=1)
    slice_s: float = Field(gt=0)
    queues: Literal["per-core", "one"] = Field(
        default="per-core", description="how the cores are scheduled: ``per-core``, as Linux "
        "6.18 does (EEVDF on a queue per core, lags kept through sleeps, wake-up preemption, "
        "the tick: sim.perf.eevdf); ``one``, the model before 2026-12-06 (one queue for every "
        "core by vruntime, no lag kept: sim.perf.sched), kept for comparisons")
    groups: Groups = Field(
        default="none", description="the task groups on the host's cores (``per-core`` "
        "queues only): ``session``, as Linux with CONFIG_SCHED_AUTOGROUP schedules the "
        "machine's processes (each qemu-nbd, its main thread and its pool, one group "
        "whose one share is split among the cores by where its threads are; each fio job "
        "a group of one; fit version 6 fitted it); ``none``, every process on its own, "
        "each with a share: what the fit gives (version 7; the groups scored better on "
        "io-holdout.yaml and worse on io-density.yaml, docs/io-model.md)")
    issuer_io_s: float = Field(ge=0)
    issuer_wake_s: float = Field(ge=0)
    server_io_s: float = Field(ge=0)
    server_wake_s: float = Field(ge=0)
    hole: CpuCost | None = Field(
        default=None, description="what a read of a hole (the device not reached) costs the "
        "two, from the hole probes; None (profiles made before it): a data read's. Measured "
        "here: qemu-nbd spent 3-5 us per read of a sparse file's hole, 33-66 us per 4 KiB "
        "read of data")
    alloc: CpuCost | None = Field(
        default=None, description="what an allocating write (a first write into a cluster) "
        "costs the two, from the copy-on-write probes; None (profiles made before it): a "
        "data read's. Measured here: qemu-nbd spent 96-118 us per 4 KiB first write")

    read_bytes_cpu: list[tuple[int, float, float]] = Field(
        default_factory=list, description="[[bytes, issuer s, server s], ...]: what a read "
        "of data of that size costs the two beyond a 4 KiB one (its bytes copied through the "
        "socket between them and by the kernel), from the raw read probes at iodepth 1; "
        "linear in bytes between sizes and past the largest; empty (profiles made before it): "
        "every size costs a 4 KiB read's")
    write_bytes_cpu: list[tuple[int, float, float]] = Field(
        default_factory=list, description="the same for writes, from the raw write probes")
    read_kernel_cpu: list[tuple[int, float]] = Field(
        default_factory=list, description="[[bytes, s], ...]: what the machine spent per read "
        "of data of that size beyond fio, qemu-nbd and a 4 KiB read's, outside any process "
        "(the block layer's completions in softirq, kworkers), from the raw read probes with "
        "several in flight (host_cpu_s); served on the host's cores by its kernel "
        "(sim.perf.host); linear in bytes as the bytes' CPU; empty (profiles made before "
        "it): none")
    write_kernel_cpu: list[tuple[int, float]] = Field(
        default_factory=list, description="the same for writes, from the raw write probes")
    read_bytes_turns: list[tuple[int, float]] = Field(
        default_factory=list, description="[[bytes, turns], ...]: the pieces beyond one in "
        "which a read's data of that size crosses the unix socket between qemu-nbd and fio, a "
        "buffer at a time, each side waking for each (sim.perf.host.Host._across): fio's "
        "context switches per read beyond a 4 KiB one's (a short calibration here: 2.6 more "
        "per 1 MiB read, none for 64 KiB), from the raw read probes' issuer_turns; linear in bytes "
        "as the bytes' CPU, rounded to whole pieces; empty (profiles made before it): the data "
        "in one piece, as a 4 KiB read's")
    write_bytes_turns: list[tuple[int, float]] = Field(
        default_factory=list, description="the same for writes (the request carries the data, "
        "from fio to qemu-nbd), from the raw write probes")
    long_wait_p: float = Field(
        default=0.0, ge=0, le=1, description="the host's long waits (``sim.perf.eevdf``, a "
        "queue per core): the chance, at each tick of a core where a process waits, that each "
        "process runnable there is set aside, off the core for a long time, as the machine's "
        "kernel makes a thread wait now and then for 2 to 23 ms where its scheduler's rules, "
        "as the model has them, make none over 0.4 ms (docs/io-model.md, the long waits); "
        "fitted to the p99 latency of the probes of several exports (``sim.perf.tail``); 0 "
        "(profiles made before it, or without those probes): none")
    long_wait_s: float = Field(
        default=0.0, ge=0, description="the mean of a long wait (exponential), whatever the "
        "core's crowd: the kernel's tick, 4 ms, in profiles fitted before version 8; 0 when "
        "``long_wait_each_s`` sets it")
    long_wait_each_s: float = Field(
        default=0.0, ge=0, description="the mean of a long wait (exponential) for each "
        "other session runnable on the core when it is drawn (a qemu-nbd's threads one "
        "session, each fio another, at least one): the scheduler's slice, as EEVDF makes an "
        "entity that has had more than its share wait while each other one on its queue runs "
        "a slice; when ``long_wait_p`` is fitted (fit version 8, docs/io-model.md, \"Long "
        "waits as long as the crowd\"); 0 (profiles fitted before): ``long_wait_s``")
    pool_share: float = Field(
        default=0.0, ge=0, le=1, description="the share of qemu-nbd's CPU per I/O of data "
        "(a read's, a write's, a first write's) that its pool of threads spends, not its main "
        "thread: run by a process of its own for each I/O in flight (sim.perf.host), beside "
        "the main thread, on the other cores; an allocating write holds its image's lock "
        "from its pool thread's call to that thread's return, as ext4's inode lock is held "
        "for the call (docs/io-model.md, where a mixed VM's first writes wait). The median "
        "over the probes of one export at iodepth above 1 of the pool's CPU per I/O over "
        "qemu-nbd's (``Probe.server_main``, ``server_pool``; 52-56% in this machine's "
        "profiles); 0 (profiles made before it, or without the threads' figures): qemu-nbd one "
        "process")

    @property
    def qd1_s(self) -> float:
        """The CPU one I/O costs alone (one in flight: each process wakes twice per I/O)."""
        return self.issuer_io_s + self.server_io_s + 2 * (self.issuer_wake_s + self.server_wake_s)

    def bytes_cpu(self, is_write: bool, length: float) -> tuple[float, float]:
        """(issuer, server) CPU an I/O moving ``length`` bytes of data costs beyond a 4 KiB
        one: linear in bytes between the probed sizes, and past the largest in proportion."""
        issuer, server = _in_bytes(self.write_bytes_cpu if is_write else self.read_bytes_cpu,
                                   length, 2)
        return issuer, server

    def kernel_cpu(self, is_write: bool, length: float) -> float:
        """The kernel's CPU (outside the processes) an I/O of ``length`` bytes of data costs
        beyond a 4 KiB one, as :meth:`bytes_cpu` interpolates."""
        return _in_bytes(self.write_kernel_cpu if is_write else self.read_kernel_cpu,
                         length, 1)[0]

    def bytes_turns(self, is_write: bool, length: float) -> int:
        """The pieces beyond one in which an I/O's ``length`` bytes of data cross the socket,
        as :meth:`bytes_cpu` interpolates, rounded."""
        extra = _in_bytes(self.write_bytes_turns if is_write else self.read_bytes_turns,
                          length, 1)[0]
        return int(extra + 0.5)

    def cost(self, kind: Literal["data", "hole", "alloc"]) -> CpuCost:
        """What one I/O of ``kind`` costs the issuer and the server: a data read's or write's
        (the 4 KiB raw reads'), a hole read's, an allocating write's."""
        own = self.hole if kind == "hole" else self.alloc if kind == "alloc" else None
        return own or CpuCost(issuer_io_s=self.issuer_io_s, issuer_wake_s=self.issuer_wake_s,
                              server_io_s=self.server_io_s, server_wake_s=self.server_wake_s)


#: the longest a profile may say one step of one I/O takes, in seconds (a disk's seek is
#: milliseconds; a whole slow I/O on a loaded machine well under a second)
MAX_STEP_S = 10.0


def _implausible(value: Any, key: str) -> str | None:
    """The first figure of a profile's parameters that is not finite, or a ``*_s`` time
    over :data:`MAX_STEP_S`, with its key; None if there is none."""
    if isinstance(value, dict):
        return next((b for k, v in value.items() if (b := _implausible(v, k)) is not None), None)
    if isinstance(value, list | tuple):
        found = next((b for v in value if (b := _implausible(v, key)) is not None), None)
        return found or _bad_table(value, key)
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{key}: {value} is not a number a profile can hold"
        if key.endswith("_s") and value > MAX_STEP_S:
            return f"{key}: {value:g} s for one step of one I/O (at most {MAX_STEP_S:g} s)"
    return None


def _bad_table(rows: list[Any] | tuple[Any, ...], key: str) -> str | None:
    """A table ``[[bs, figure, ...], ...]`` whose block size is not positive, whose bandwidth
    (``*_bw``) is not positive or whose time or CPU is negative: a hand-edited ``read_bw:
    [[0, 0]]`` ended a run in a ZeroDivisionError, a negative ``write_bw`` gave IOPS."""
    for row in rows:
        if not isinstance(row, list | tuple) or not row:
            continue
        if row[0] <= 0:
            return f"{key}: block size {row[0]} is not positive"
        if key.endswith("_bw") and any(x <= 0 for x in row[1:]):
            return f"{key}: {list(row[1:])} bytes/s at {row[0]} bytes is not positive"
        if any(x < 0 for x in row[1:]):
            return f"{key}: {list(row[1:])} at {row[0]} bytes is negative"
    return None


#: The least path time one guest I/O takes in the calibrated model (``sim.perf.demand``): the
#: floor of its time, whatever the profile's fit, and so of the rate a clone can reach there
#: (``cowbench.bounds.fastest_io_s``).
MIN_PATH_S = 1e-6


def device_bandwidths(probes: Sequence[Probe]) -> tuple[list[tuple[int, float]],
                                                       list[tuple[int, float]]] | None:
    """The storage's own read and write bandwidths, ``[(size, bytes/s), ...]`` each: the
    best its ``device`` probes alone (fio on the raw file, no qemu-nbd) did with 64 KiB or
    more per request; None unless both ways were measured (matrices before 2026-12-06 had
    only reads of the storage alone).

    The raw probes through qemu-nbd are no measure of the device where the processes' CPU
    is served on the host's cores: 64 KiB reads at iodepth 32 ran 802 MB/s through qemu-nbd
    where the storage alone gave 1,179 MB/s at iodepth 8, and 64 KiB writes 1,074 MB/s where
    the storage alone wrote 1.9 GB/s (this project's 2-core VM, 2026-12-06). Where the
    host's processes are served on its cores, the fit takes these as the device's
    (``sim.perf.fit.fit``, ``PerfParams.device_source``; docs/io-model.md, "The storage's
    own bandwidths as the device")."""
    tables: dict[str, dict[int, float]] = {"randread": {}, "randwrite": {}}
    for p in probes:
        if (p.target == "device" and p.beside is None and p.rw in tables and p.bs >= 65536
                and p.iops > 0):
            best = tables[p.rw]
            best[p.bs] = max(best.get(p.bs, 0.0), p.bw_bytes_per_s)
    if not tables["randread"] or not tables["randwrite"]:
        return None
    return sorted(tables["randread"].items()), sorted(tables["randwrite"].items())


class PerfParams(_Frozen):
    """The I/O model's parameters (``sim.perf``), all in seconds, bytes and bytes/s.

    Each guest I/O costs a *path* demand (CPU and wake-ups of fio, qemu-nbd and the block
    layer), served by ``stages`` shared single-server stages in turn, and a *device* demand
    (the host bytes it moves over the storage's bandwidth), served by one shared device:
    in arrival order (``device_queue: fifo``) or shared equally by the transfers in progress
    (``shared``), as the storage's ``device`` probes showed; or, with ``transfer_on_path``,
    the transfers of I/Os that allocate nothing are work of the path's first stage.
    ``*_path_s`` are tables ``[[bs, seconds], ...]`` for the raw path, interpolated in log(bs);
    the qcow2 and copy-on-write figures are what each adds to it.
    """

    stages: float = Field(ge=1, le=64)
    path: Literal["host", "vm"] = Field(
        default="host", description="whose the path's stages are: the host's, one tandem "
        "shared by every VM (profiles made before 2026-12-04, and profiles without a host "
        "scheduler), or each VM's own (vm: a tandem per VM, its processes' pipeline; the VMs "
        "share the host's cores and its device; a transfer on the path holds the VM's first "
        "stage while the device serves it)")
    cpu_share: float = Field(default=1.0, gt=0, le=1, description="share of the path demand "
                             "that is work on the shared stages; the rest is waiting")
    hole_cpu_share: float = Field(default=1.0, gt=0, le=1, description="the same for reads "
                                  "of holes")
    client_s: float = Field(ge=0)
    read_bw: list[tuple[int, float]] = Field(min_length=1)
    write_bw: list[tuple[int, float]] = Field(min_length=1)
    read_path_s: list[tuple[int, float]] = Field(min_length=1)
    write_path_s: list[tuple[int, float]] = Field(min_length=1)
    hole_read_s: float = Field(default=0.0, ge=0, description="what a read the device "
                               "does not serve (a hole of a sparse file) saves on the path")
    qcow2_read_s: float
    qcow2_write_s: float
    alloc_s: float = Field(ge=0)
    cow_read_s: float = Field(ge=0)
    cow_wait_s: float = Field(default=0.0, ge=0)
    subcluster_alloc_s: float = Field(ge=0)
    chain_base_s: float
    chain_a_s: float = Field(ge=0)
    chain_b_s: float = Field(ge=0)
    l2_miss_s: float = Field(ge=0)
    l2_cache_bytes: int = Field(default=32 << 20, gt=0)
    device_queue: Literal["shared", "fifo"] = Field(
        default="shared", description="how the device serves requests that wait for it: "
        "in arrival order (fifo) or shared equally by those in progress (shared)")
    transfer_on_path: bool = Field(
        default=False, description="the transfer of an I/O that allocates nothing is work of "
        "the path's first stage (it holds that stage) rather than of a device beside the path; "
        "allocating writes' transfers stay on the device")
    device_source: Literal["fitted", "storage"] = Field(
        default="fitted", description="where the device's bandwidths come from: fitted to "
        "the probes through qemu-nbd (fitted; profiles made before the storage alone was "
        "measured both ways), or the storage's own, measured by fio on the raw file with "
        "nothing above it (storage: the device beside the path, copies-on-write and cluster "
        "writes at the same bandwidths; sim.perf.fit)")
    alloc_shared: float = Field(
        default=1.0, ge=0, le=1, description="the share of an allocating write's allocation "
        "round (its copy-on-write read and cluster allocation, done holding its image's lock) "
        "that is work on the path's shared stages; the rest is waiting that holds only that "
        "image's lock (sim.perf.alloc): fitted where several exports allocating at once ran "
        "faster than the model with all of it shared; 1 in profiles made before it")
    alloc_bw: float | None = Field(
        default=None, gt=0, description="the device's own rate, bytes per second, for an "
        "allocating write's transfer (its copy-on-write read and cluster write), measured by "
        "several exports allocating at once (sim.perf.alloc); None (profiles made before it, "
        "or probes that showed no need): the read and write bandwidths")
    punch_s: float | None = Field(
        default=None, ge=0, description="what a trim that frees data costs beyond its bare "
        "round trip, per hole it punches in the image's file (fallocate PUNCH_HOLE on the "
        "storage: sim.perf.demand.PerfModel.trim), from the trim probe; None (profiles made "
        "before it): sim.perf.demand.PUNCH_FALLBACK_S")
    @model_validator(mode="after")
    def _plausible(self) -> PerfParams:
        """Every figure finite, and no time of one I/O's steps over :data:`MAX_STEP_S` (a
        profile edited to ``client_s: Infinity`` failed inside the model with exit 1; one
        of ``1e300`` made a run that never ended)."""
        bad = _implausible(self.model_dump(), "")
        if bad:
            raise ValueError(bad)
        return self

    @model_validator(mode="before")
    @classmethod
    def _no_host_allocator(cls, data: Any) -> Any:
        """Profiles and scenarios written before the host allocator went say
        ``host_alloc_s: null``, read as nothing; one that sets it was fitted with that
        allocator and is refused (:func:`parse_profile` names the file)."""
        if isinstance(data, dict) and "host_alloc_s" in data:
            if data["host_alloc_s"] is not None:
                raise ValueError("host_alloc_s: the host allocator of an older cowbench, "
                                 "which the I/O model no longer has; calibrate again "
                                 "(`cowbench calibrate`)")
            data = {k: v for k, v in data.items() if k != "host_alloc_s"}
        return data

    sched: SchedParams | None = Field(
        default=None, description="the host's cores shared by the processes on the I/O path "
        "(sim.perf.eevdf): their CPU is taken out of the path's time; None (profiles made "
        "before it, or probes without CPU figures): no CPU stage")
    device_interference: float | None = Field(
        default=None, ge=0, le=1, description="how much of a large job's queue a small read "
        "beside it waited for, measured on the storage alone: 1 in arrival order, near 0 "
        "when small requests pass large ones")


class FitRow(_Frozen):
    """A probe replayed by the model with the fitted parameters."""

    probe: str
    metric: Literal["iops", "lat_mean_s"]
    measured: float
    model: float
    rel_error: float


class Profile(_Frozen):
    schema_version: Literal[1] = 1
    kind: Literal["cowbench-calibration"] = "cowbench-calibration"
    created: str
    duration_s: float = Field(ge=0)
    matrix: Literal["quick", "short", "long"]
    dir: str
    host: dict[str, Any]
    tools: dict[str, str | bool | None]  # cowbench.store.tool_versions: git_dirty a bool
    settings: dict[str, Any]
    load_before: list[float] = Field(default_factory=list)
    load_after: list[float] = Field(default_factory=list)
    probes: list[Probe] = Field(min_length=1)
    params: PerfParams
    fit: list[FitRow] = Field(default_factory=list)
    fit_version: int = Field(
        default=0, ge=0, description="the version of the model's fit that made params "
        "(sim.perf.FIT_VERSION; 0: a profile made before it was recorded): a cached profile "
        "fitted by an older version is fitted again from its probes before a run uses it")
    fingerprint: dict[str, Any] | None = Field(
        default=None, description="the machine and storage it was measured on "
        "(cowbench.profile_cache.fingerprint): what keys it in the profile cache")

    @field_validator("settings")
    @classmethod
    def _settings_in_bounds(cls, value: dict[str, Any]) -> dict[str, Any]:
        """The probes' settings within ``calibrate``'s bounds (``cowbench.probe_limits``):
        the check before a run and ``calibrate --check`` run the probes with them."""
        bad = settings_problem(value)
        if bad:
            raise ValueError(bad)
        return value

    @property
    def aio(self) -> str:
        """qemu-nbd's ``--aio`` the probes' exports were served with (``calibrate --aio``;
        ``threads``, qemu's default, for a profile made before it was recorded)."""
        return str(self.settings.get("aio", "threads"))

    def fit_error(self, metric: str = "iops") -> float | None:
        """How well the model replays the probes: the median |rel_error| of ``metric``."""
        errs = sorted(abs(r.rel_error) for r in self.fit if r.metric == metric)
        if not errs:
            return None
        mid = len(errs) // 2
        return errs[mid] if len(errs) % 2 else (errs[mid - 1] + errs[mid]) / 2


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<profile>"


def parse_profile(data: Any, source: str) -> Profile:
    """A :class:`Profile` from parsed JSON, or a :class:`UsageError` naming the key path."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: not a cowbench calibration profile (a JSON object)")
    if data.get("kind") != PROFILE_KIND:
        raise UsageError(f"{source}: kind: not a cowbench calibration profile "
                         f"(expected {PROFILE_KIND!r})")
    if data.get("schema_version") != PROFILE_SCHEMA:
        raise UsageError(f"{source}: schema_version: {data.get('schema_version')!r} is not "
                         f"supported (this cowbench reads {PROFILE_SCHEMA}); calibrate again")
    params = data.get("params")
    if isinstance(params, dict) and params.get("host_alloc_s") is not None:
        raise UsageError(f"{source}: params.host_alloc_s: made with the host allocator of "
                         "an older cowbench, which the I/O model no longer has; make the "
                         "profile again with `cowbench calibrate` (a cached one is remade by "
                         "the next `cowbench run`)")
    try:
        return Profile.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        where = _loc(tuple(first["loc"]))
        if ": " in msg and first["type"] == "value_error":  # a validator's own key path
            key, _, msg = msg.partition(": ")
            where = f"{where}.{key}" if where else key
        raise UsageError(f"{source}: {where}: {msg}") from None


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cowbench/profiles`` (``~/.cache`` if unset or relative): where
    ``cowbench calibrate`` and a first run keep this machine's profiles
    (``cowbench.profile_cache``)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "cowbench" / "profiles"


def cached(path: Path) -> bool:
    """Whether ``path`` (symlinks followed) is a file of this user's profile cache:
    cowbench's own, in a directory only this user writes, so it is read as such and not
    held to the rule for a file a user names (``cowbench.safeload.read_input``): under sudo,
    ``/root/.cache`` is not the invoking user's to read, but a run uses its profile."""
    try:
        return cache_dir().resolve() in path.resolve().parents
    except OSError:
        return False


def load_profile(path: Path) -> Profile:
    try:
        own = cached(path)  # read at its real path: O_NOFOLLOW (safeload) refuses a symlink
        data = load_json_file(path.resolve() if own else path, "profile", for_user=not own,
                              cache=own)
    except ScenarioError as err:
        raise UsageError(f"{path}: cannot read the profile: {err.problems[0][1]}") from None
    return parse_profile(data, str(path))


def profile_json(profile: Profile) -> str:
    return json.dumps(profile.model_dump(mode="json"), indent=1) + "\n"
