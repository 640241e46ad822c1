"""One VM's fio job in SimPy: clones, in-flight slots, rate limits, verify reads, its figures.

Every clone of the job keeps ``iodepth`` I/Os in flight (a closed loop); each I/O is applied to
the VM's exact allocation map and the host I/O it causes is served by the host's shared device
(``sim.perf.device``). Used by every workload run of a timeline (``sim.world.runs``).

``startdelay`` and ``ramp_time`` as fio 3.33 does them (measured with its null engine,
``rate_iops=1000``, 4 KiB writes):

- *ramp*: a clone's first ``ramp_time`` seconds issue I/O that reaches the disk (it allocates,
  and qemu-nbd's /proc/PID/io, the real backend's host bytes, counts it) but that fio leaves
  out of every I/O figure: at the ramp's end fio resets the clone's counts, bytes, latencies
  and its runtime's start (size=4m, ramp_time=1: all 1,024 writes issued, 23 reported over
  23 ms). ``size`` and ``io_size`` count the ramp's I/Os; ``number_ios`` counts from the
  ramp's end (number_ios=1500: 2,501 issued, 1,500 reported). A time-based job runs
  ``ramp_time`` + ``runtime`` (runtime=2, ramp_time=1: 3,002 issued, 2,001 reported over
  2,001 ms). A clone that ends inside its ramp is never reset: fio then reports all its I/Os
  and bytes, its runtime from its start, but no latency (size=400k, ramp_time=1: 100 writes
  over 108 ms, clat N=0; number_ios=500: 500 of 500). Each clone ramps from its own start;
  ``group_reporting`` only sums the clones' post-ramp figures (numjobs=2: 23 + 23 = 46).
- *startdelay*: a clone issues nothing until that long after fio started, and its runtime
  counts from then (startdelay=1, runtime=1 time_based: 1,000 writes over 1,000 ms); its ramp
  starts then too. fio counts the delay from its own start, not from a ``stonewall``'s
  release: a stonewalled job with startdelay=4 after a job of 1 s started at 4.04 s, one with
  startdelay=500ms at 1.22 s, as soon as the job before it ended. A range ``LOW-HIGH`` gives
  each clone its own delay, ``rand_between`` of the clone's ``FIO_RAND_START_DELAY`` seed in
  microseconds (fio's ``fixup_options``): startdelay=1-3 with numjobs=3 draws 2.339, 1.176
  and 2.119 s for threads 1 to 3; measured from a job without delay, 2.268, 1.165 and 2.067 s
  (fio polls for due jobs, so a start lands within 0.1 s of its delay).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from cowbench.fiojobs import reported_jobs
from cowbench.iolog import READ, TRIM, WRITE, Trace
from cowbench.records import Recorder
from cowbench.scenario import VM, Scenario, Workload
from sim.perf.device import AnyDevice, CalibratedDevice
from sim.storage.disk import HostIO
from sim.storage.fs import FS_BLOCK
from sim.storage.strategies import Disk, configure_io, guest_write, trim
from sim.workload.fio import IoChunk, io_stream, job_seed, trace_chunks
from sim.workload.fiooffs import Rwmix
from sim.workload.fiorand import Taus, fio_seeds

#: fio 3.33's index of the start delay's seed in ``td->rand_seeds`` (fio.h,
#: ``FIO_RAND_START_DELAY``).
START_DELAY_SEED = 13

Process = Generator[simpy.Event, Any, None]


@dataclass
class VmStats:
    """What one VM's jobs did, collected while the model runs."""

    read_lat: list[float] = field(default_factory=list)
    write_lat: list[float] = field(default_factory=list)
    read_bytes: int = 0
    write_bytes: int = 0
    trims: int = 0  # fio's trims: each a request through the host (PerfModel.trim)
    trim_lat: list[float] = field(default_factory=list)
    trim_bytes: int = 0
    # I/Os done in the clones' ramps: on the disk and in the host's bytes, in no fio figure
    ramped: int = 0
    # reads and writes of clones that ended inside their ramp: fio counts them, with no latency
    unsampled_reads: int = 0
    unsampled_writes: int = 0
    host_read: int = 0
    host_write: int = 0
    first_issue: float = math.inf
    last_done: float = 0.0
    # when asked for: every I/O and each clone's log origin, for fio's time-series logs
    events: IoEvents | None = None
    # with an array: the 4 KiB guest blocks written get marked (what a later flatten copies)
    written: np.ndarray | None = None
    # every clone once it has finished: its stage (jobs between stonewalls), when it issued
    # its first I/O and completed its last, and how many reads, writes and trims it did
    clones: list[CloneRun] = field(default_factory=list)

    def add_host(self, io: HostIO) -> None:
        self.host_read += io.read_bytes
        self.host_write += io.write_bytes


@dataclass
class IoEvents:
    """A VM's I/Os for fio's time-series logs (``cowbench.fiologs``), kept only when asked for
    (the model's figures never need them).

    ``ios``: every I/O fio counts, as ``(issued_s, done_s, bytes, is_write, clone)``, ``clone``
    its place in fio's run order (0 for fio's thread 1). ``origins``: per clone, the instant
    fio's logs count its time from, fio's ``td->epoch``: the clone's own start, after its
    ``startdelay`` (fio 3.33, null engine: startdelay=1 logs from 100 ms, not 1,100), moved to
    its ramp's end if it runs past it (``reset_all_stats``: ramp_time=1 with runtime=2 logs
    from 100 to 2,000 ms, none of the ramp's I/Os). A stonewalled clone counts from its own
    start, not fio's (a reader after a writer of 8.2 s logs from 100 ms). ``ends``: per clone,
    when it finished (a time-based clone's runtime is up even if no I/O completes then: fio's
    helper thread still samples its rates at 500 ms of a 500 ms job)."""

    ios: list[tuple[float, float, int, bool, int]] = field(default_factory=list)
    origins: dict[int, float] = field(default_factory=dict)
    ends: dict[int, float] = field(default_factory=dict)


@dataclass
class CloneRun:
    """One fio clone's run: what fio's per-direction ``runtime`` is made of, and what fio
    reports for the clone on its own (``index``: its place in fio's run order, each job's
    clones after it; its latencies, bytes and trims), for the entries of fio's ``jobs`` array
    (:func:`record_jobs`)."""

    stage: int
    first_issue: float
    last_done: float
    reads: int
    writes: int
    index: int = 0
    read_lat: Sequence[float] = ()
    write_lat: Sequence[float] = ()
    read_bytes: int = 0
    write_bytes: int = 0
    trims: int = 0
    trim_lat: Sequence[float] = ()
    trim_bytes: int = 0


class _Job:
    """One fio clone's stream, shared by its ``iodepth`` in-flight slots.

    With ``record_writes`` it keeps every write it hands out, for fio's verify phase (a
    live ``mix`` is only ever given to a job that does not verify). It counts what its slots
    complete, and when its first I/O went and its last came back.
    """

    def __init__(self, chunks: Iterator[IoChunk], record_writes: bool = False,
                 mix: Rwmix | None = None, think: _Think | None = None) -> None:
        self._chunks = chunks
        self.think = think  # fio's thinktime: the clone's slots issue nothing while it thinks
        # a paced read/write mix of the model's own stream: each I/O's direction is chosen
        # as it issues (fio's mix, then its rate check), not taken from the stream
        self.mix = mix
        self._ios: Iterator[tuple[int, int, bool, bool]] = iter(())
        self.written: list[tuple[int, int]] | None = [] if record_writes else None
        self.exhausted = False
        self.reads = self.writes = self.trims = 0
        # each completed I/O's latency and bytes, by direction (READ, WRITE, TRIM: 0, 1, 2)
        self.lat = (array("d"), array("d"), array("d"))
        self.nbytes = [0, 0, 0]
        self.first_issue = math.inf
        self.last_done = -math.inf
        # fio's ramp: I/Os issued before ``ramp_end`` are left out of the figures, unless the
        # clone ends before it (then fio never reset its counts: see the module's docstring)
        self.ramp_end = -math.inf
        self.reset = False  # the ramp ended with the clone still running
        self.ramp = Ramp()
        # fio's number_ios: I/Os since the clone's start or its ramp's end (fio resets it too)
        self.number_ios: int | None = None
        self.since_reset = 0
        self.index = 0  # its place in fio's run order (the events it logs are its)

    def in_ramp(self, now: float) -> bool:
        """Does an I/O issued at ``now`` belong to the ramp (fio resets at its first issue
        after the ramp's end)?"""
        if now < self.ramp_end:
            return True
        if not self.reset and self.ramp_end > -math.inf:
            self.reset, self.since_reset = True, 0
        return False

    def next(self) -> tuple[int, int, bool, bool] | None:
        while True:
            io = next(self._ios, None)
            if io is not None:
                if io[2] and self.written is not None:
                    self.written.append((io[0], io[1]))
                return io
            chunk = next(self._chunks, None)
            if chunk is None:
                self.exhausted = True
                return None
            trims = chunk.is_trim if chunk.is_trim is not None else np.zeros(len(chunk), bool)
            self._ios = zip(chunk.offsets.tolist(), chunk.lengths.tolist(),
                            chunk.is_write.tolist(), trims.tolist(), strict=True)


@dataclass
class Ramp:
    """A clone's I/Os in its ramp, kept apart in case it ends there (fio then counts them)."""

    reads: int = 0
    writes: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    first_issue: float = math.inf
    last_done: float = -math.inf

    def done(self, issued: float, done: float, length: int, is_write: bool) -> None:
        self.first_issue = min(self.first_issue, issued)
        self.last_done = max(self.last_done, done)
        if is_write:
            self.writes += 1
            self.write_bytes += length
        else:
            self.reads += 1
            self.read_bytes += length


def _slot(env: simpy.Environment, job: _Job, disk: Disk, device: AnyDevice,
          stats: VmStats, deadline: float, pacer: _Pacer | None) -> Process:
    while env.now < deadline:
        if job.number_ios is not None and job.since_reset >= job.number_ios:
            return
        if job.think is not None and job.think.thinking is not None:
            yield from job.think.ready()  # fio's work for the next I/O comes after the pause
            continue
        io = job.next()
        if io is None:
            return
        if device.client_s:  # fio's own work between a completion and the next submission
            yield env.timeout(device.client_s)
        offset, length, is_write, is_trim = io
        # fio decides the ramp before it sleeps for its rate: an I/O due at the ramp's end
        # is the ramp's (rate_iops=1000, ramp_time=1: 1,001 in the ramp)
        ramp = job.in_ramp(env.now)
        job.since_reset += 1
        if pacer is not None:
            if job.mix is not None:
                wait, ddir = pacer.choose(env.now, job.mix.propose())
                job.mix.commit(ddir)
                is_write = ddir == WRITE
            else:
                ddir = TRIM if is_trim else WRITE if is_write else READ
                wait = pacer.wait(env.now, ddir)
            pacer.issued(ddir, length)
            if wait > 0:
                yield env.timeout(wait)
                if env.now >= deadline:
                    return
        if job.think is not None and job.think.thinking is not None:  # began meanwhile
            yield from job.think.ready()
            if env.now >= deadline:
                return
        issued = env.now
        if not ramp:
            stats.first_issue = min(stats.first_issue, issued)
            job.first_issue = min(job.first_issue, issued)
        if job.think is not None:  # fio counts the ramp's I/Os between pauses too
            job.think.issued(job, deadline)
        if is_trim:  # a discard: a request of its own through the host (PerfModel.trim)
            host = trim(disk, offset, length)
            yield from device.serve_trim(disk, host)
            stats.add_host(host)
            if job.think is not None:
                job.think.completed()
            if ramp:
                stats.ramped += 1
            else:
                _done(env, job, stats, issued, length, TRIM, stats.trim_lat)
            continue
        host = guest_write(disk, offset, length) if is_write else disk.read(offset, length)
        if is_write and stats.written is not None:
            stats.written[offset // FS_BLOCK:-(-(offset + length) // FS_BLOCK)] = True
        yield from device.serve_io(disk, is_write, length, host)
        stats.add_host(host)
        if job.think is not None:
            job.think.completed()
        if ramp:  # on the disk, in no figure of fio's
            stats.ramped += 1
            job.ramp.done(issued, env.now, length, is_write)
            continue
        _done(env, job, stats, issued, length, WRITE if is_write else READ,
              stats.write_lat if is_write else stats.read_lat)
        if stats.events is not None:
            stats.events.ios.append((issued, env.now, length, is_write, job.index))


def _done(env: simpy.Environment, job: _Job, stats: VmStats, issued: float, length: int,
          ddir: int, lat: list[float]) -> None:
    """An I/O of ``ddir`` issued at ``issued`` is complete now: counted for its clone and
    its VM, its latency in ``lat``."""
    done = env.now
    job.last_done = max(job.last_done, done)
    lat.append(done - issued)
    if ddir == WRITE:
        job.writes += 1
        stats.write_bytes += length
    elif ddir == READ:
        job.reads += 1
        stats.read_bytes += length
    else:
        job.trims += 1
        stats.trims += 1
        stats.trim_bytes += length
    job.lat[ddir].append(done - issued)  # the clone's own, for fio's job entries (record_jobs)
    job.nbytes[ddir] += length
    stats.last_done = max(stats.last_done, done)


class _Think:
    """fio's ``thinktime`` for one clone: bursts of I/O with pauses between (fio 3.33,
    ``backend.c`` handle_thinktime, ``io_u.c`` io_u_quiesce).

    After each I/O it submits, fio counts the I/Os issued so far; once ``thinktime_blocks``
    more have gone since the last pause (fio's default 1; 0 acts as 1), it issues nothing
    more, waits for every I/O in flight to complete (io_u_quiesce), then pauses
    ``thinktime`` (``thinktime_spin``, part of it spinning, is refused: fio can hang). So the
    I/Os in flight never exceed ``thinktime_blocks``, and a clone's runtime includes its
    pauses, a last one after its last I/O too (measured on fio's nbd engine: 8 writes with
    thinktime=50ms thinktime_blocks=8 ran 61 ms; 9 writes, 51 ms). With ``thinktime_iotime``
    it also pauses once that long plus ``thinktime`` has passed since the last pause began
    (from the clone's start), and without ``thinktime_blocks`` only so. A pause ends with
    the clone's runtime. Measured, fio 3.33 on a qemu-nbd null-co export, randwrite 4k, 2 s:
    iodepth=1 thinktime=1000 thinktime_blocks=16: 12,304 writes (769 bursts of 16, 2.6 ms
    each: the pause, 16 writes of 84 us, and the sleep's overshoot); iodepth=8 thinktime=1000
    thinktime_blocks=4 thinktime_blocks_type=issue: 6,032 writes, at most 4 in flight. fio
    counts completed I/Os instead by default (``thinktime_blocks_type=complete``), the same
    count at iodepth 1; where fio's queue fills between pauses its nbd engine keeps an I/O
    in flight across them, which is refused (cowbench.workload_schema.think_problem).
    """

    def __init__(self, env: simpy.Environment, wl: Workload) -> None:
        assert wl.thinktime is not None
        self.env = env
        self.pause = wl.thinktime
        self.iotime = wl.thinktime_iotime
        blocks = wl.thinktime_blocks
        # fio checks the count only where thinktime_blocks is set or thinktime_iotime is not
        self.blocks = max(blocks, 1) if blocks is not None else None if self.iotime else 1
        self.count = self.last_count = 0  # I/Os issued, and as counted at the last pause
        self.last_time = env.now  # when the last pause began (the clone's start)
        self.in_flight = 0
        self.thinking: simpy.Event | None = None  # succeeds when the pause ends
        self._drained: simpy.Event | None = None

    def ready(self) -> Process:
        """Until the clone is not thinking."""
        while self.thinking is not None:
            yield self.thinking

    def issued(self, job: _Job, deadline: float) -> None:
        """An I/O went: fio's check after each submission."""
        self.count += 1
        self.in_flight += 1
        now = self.env.now
        by_time = self.iotime is not None and now - self.last_time >= self.iotime + self.pause
        by_count = self.blocks is not None and self.count >= self.last_count + self.blocks
        if self.thinking is None and (by_time or by_count):
            self.last_count = self.count
            self.last_time = now
            self.thinking = self.env.event()
            self.env.process(self._think(job, deadline))

    def completed(self) -> None:
        self.in_flight -= 1
        if not self.in_flight and self._drained is not None:
            self._drained.succeed()

    def _think(self, job: _Job, deadline: float) -> Process:
        if self.in_flight:  # io_u_quiesce: every I/O in flight completes first
            self._drained = self.env.event()
            yield self._drained
            self._drained = None
        yield self.env.timeout(max(0.0, min(self.pause, deadline - self.env.now)))
        job.last_done = max(job.last_done, self.env.now)  # fio's runtime has the pause
        assert self.thinking is not None
        thinking, self.thinking = self.thinking, None
        thinking.succeed()


class _Pacer:
    """fio's ``rate_iops`` for one clone: each direction on its own schedule (fio 3.33,
    ``backend.c`` usec_for_io, ``io_u.c`` rate_ddir).

    fio caps reads, writes and trims separately: ``rate_iops=300`` on a read/write mix lets
    300 reads AND 300 writes a second through, whatever ``rwmixread`` is (measured with the
    null engine, rwmixread 10 to 90: 600 reads and 600 writes in 2 s). A direction's next
    I/O is due when the bytes it has issued since the clone started, at ``rate x min_bs``
    bytes a second (``units``: fio's smallest block of that direction), have elapsed: a
    schedule from the start, so a clone that fell behind catches up at once rather than
    losing the time. No cap (0) is never due later than now. Before an I/O fio asks
    :meth:`choose` (a mix whose direction is picked as it issues) or, where the direction is
    the stream's, sleeps until it is due (:meth:`wait`; fio's null-engine stream of a paced
    mix already carries the directions its rate chose). In ``trimwrite`` a trim rides on the
    write schedule and does not move it (measured: ``rate_iops=100,50,20`` gave 100 writes
    and 101 trims in 2 s).
    """

    def __init__(self, rates: tuple[int, int, int], units: tuple[int, int, int], start: float,
                 trimwrite: bool = False) -> None:
        self.rates = rates
        self.units = units
        self.start = start
        self.trimwrite = trimwrite
        self.bytes = [0, 0, 0]

    def due(self, ddir: int) -> float:
        """When ``ddir`` may issue next (``-inf``: no cap)."""
        if self.trimwrite and ddir == TRIM:
            ddir = WRITE
        rate = self.rates[ddir]
        if not rate:
            return -math.inf
        return self.start + self.bytes[ddir] / (rate * self.units[ddir])

    def wait(self, now: float, ddir: int) -> float:
        """Seconds an I/O of ``ddir`` waits at ``now``."""
        return max(0.0, self.due(ddir) - now)

    def choose(self, now: float, ddir: int) -> tuple[float, int]:
        """fio's rate_ddir for a read/write mix whose mix asks for ``ddir``: that direction if
        it is due; else the other if that one is; else the one due first, after waiting."""
        if self.due(ddir) <= now:
            return 0.0, ddir
        other = ddir ^ 1
        if self.due(other) <= now:
            return 0.0, other
        if self.due(other) < self.due(ddir):
            ddir = other
        return self.due(ddir) - now, ddir

    def issued(self, ddir: int, length: int) -> None:
        if not (self.trimwrite and ddir == TRIM):
            self.bytes[ddir] += length


def run_vm(env: simpy.Environment, scenario: Scenario, vm: VM, vm_index: int,
           disk: Disk, device: AnyDevice, stats: VmStats, wl: Workload,
           traces: Sequence[Trace] | None = None, size: int | None = None) -> Process:
    size = scenario.root_size(vm) if size is None else size
    configure_io(disk, scenario.strategy_of(vm), wl)
    if isinstance(device, CalibratedDevice):
        device.label(disk, vm.name)
    # every clone of every job (several jobs of one VM: in fio's order, on the same disk)
    jobs = [part for part in wl.parts for _ in range(part.numjobs)]
    seeds = [job_seed(part, clone, scenario.seed, vm_index, vm.name)
             for part in wl.parts for clone in range(part.numjobs)]
    streams = ([trace_chunks(t) for t in traces] if traces is not None else
               [io_stream(part, size, seed) for part, seed in zip(jobs, seeds, strict=True)])
    clones: list[simpy.Process] = []
    stage = 0
    began = env.now  # fio's start, from which every clone's startdelay counts
    for i, (part, stream) in enumerate(zip(jobs, streams, strict=True)):
        if part.stonewall and clones:  # fio's stonewall: once the jobs before have finished
            yield simpy.AllOf(env, clones)
            clones = []
            stage += 1
        limit = min(x for x in (part.runtime, scenario.duration, math.inf) if x is not None)
        pacer = None
        mix = None
        if part.rate_iops is not None:
            pacer = _Pacer(part.rates, _units(part, None if traces is None else traces[i]),
                           env.now, trimwrite=part.rw == "trimwrite")
            if traces is None and 0.0 < part.read_fraction < 1.0:
                mix = Rwmix(seeds[i].seeds, part.rwmixread)
        think = _Think(env, part) if part.thinktime is not None else None
        job = _Job(stream, record_writes=part.verifies, mix=mix, think=think)
        job.number_ios = _number_ios(part)
        delay = start_delay(part, i + 1, scenario.seed, vm_index)
        clones.append(env.process(_clone(env, part, job, disk, device, stats, limit, pacer,
                                         stage, i, began + delay)))
    yield simpy.AllOf(env, clones)
    stats.add_host(disk.flush())


def _units(wl: Workload, trace: Trace | None) -> tuple[int, int, int]:
    """fio's smallest block per direction, the unit of its rate (``rate_iops x min_bs`` bytes
    a second): ``bs`` in the model's own stream; in fio's, each direction's smallest I/O
    (``bssplit`` and block ranges: fio 3.33 paces their bytes, so larger blocks go slower,
    measured: ``rate_iops=300`` with ``bssplit=4k/50:16k/50`` on a 70% read mix gave 250
    reads and 237 writes in 2 s, not 600 and 600)."""
    if trace is None:
        return wl.bs, wl.bs, wl.bs
    units = [wl.bs] * 3
    for ddir in (READ, WRITE, TRIM):
        lengths = trace.lengths[trace.ddir == ddir]
        if lengths.size:
            units[ddir] = int(lengths.min())
    return units[0], units[1], units[2]


def _clone(env: simpy.Environment, wl: Workload, job: _Job, disk: Disk,
           device: AnyDevice, stats: VmStats, limit: float, pacer: _Pacer | None,
           stage: int = 0, index: int = 0, starts: float = -math.inf) -> Process:
    """One fio clone (``index``: its place in fio's run order): from ``starts`` (its
    startdelay after fio's start; at once if that has passed), ``iodepth`` slots for its ramp
    and ``limit`` seconds more, then fio's verify phase if the job asks for it."""
    if starts > env.now:
        yield env.timeout(starts - env.now)
    job.index = index
    if stats.events is not None:
        stats.events.origins[index] = env.now
    if pacer is not None:
        pacer.start = env.now  # fio paces a clone from its own start
    if job.think is not None:
        job.think.last_time = env.now  # and counts thinktime_iotime from it
    if wl.ramp_time is not None:
        job.ramp_end = env.now + wl.ramp_time
    deadline = env.now + wl.ramp_s + limit
    slots = [env.process(_slot(env, job, disk, device, stats, deadline, pacer))
             for _ in range(wl.iodepth)]
    yield simpy.AllOf(env, slots)
    if job.written is not None and job.exhausted and env.now < deadline:
        check = _Job(iter([verify_reads(job.written, wl)]))
        check.index = index
        check.ramp_end, check.reset, check.ramp = job.ramp_end, job.reset, job.ramp
        slots = [env.process(_slot(env, check, disk, device, stats, deadline, pacer))
                 for _ in range(wl.iodepth)]
        yield simpy.AllOf(env, slots)
        job.reads += check.reads  # fio counts its verify reads as the job's reads
        job.lat[0].extend(check.lat[0])
        job.nbytes[0] += check.nbytes[0]
        job.last_done = max(job.last_done, check.last_done)
        job.first_issue = min(job.first_issue, check.first_issue)
        job.reset = job.reset or check.reset
    if not job.reset:
        _ended_in_ramp(job, stats)
    elif stats.events is not None:  # fio's logs count from the ramp's end
        stats.events.origins[index] = job.ramp_end
    if stats.events is not None:
        stats.events.ends[index] = env.now
    if job.reads or job.writes or job.trims:
        stats.clones.append(CloneRun(stage, job.first_issue, job.last_done, job.reads,
                                     job.writes, index, job.lat[0], job.lat[1],
                                     job.nbytes[0], job.nbytes[1], job.trims, job.lat[2],
                                     job.nbytes[2]))


def _ended_in_ramp(job: _Job, stats: VmStats) -> None:
    """A clone that ended inside its ramp: fio never reset it, so it reports the ramp's I/Os
    and bytes, over its runtime from its first I/O, with no latency sampled."""
    r = job.ramp
    stats.ramped -= r.reads + r.writes
    stats.unsampled_reads += r.reads
    stats.unsampled_writes += r.writes
    stats.read_bytes += r.read_bytes
    stats.write_bytes += r.write_bytes
    job.reads += r.reads
    job.writes += r.writes
    job.nbytes[0] += r.read_bytes
    job.nbytes[1] += r.write_bytes
    job.first_issue = min(job.first_issue, r.first_issue)
    job.last_done = max(job.last_done, r.last_done)
    if r.reads or r.writes:
        stats.first_issue = min(stats.first_issue, r.first_issue)
        stats.last_done = max(stats.last_done, r.last_done)


def _number_ios(wl: Workload) -> int | None:
    """fio's ``number_ios`` of a job file (carried in ``fio_extra``), a plain count; None
    otherwise (fio's own stream then ends where it does)."""
    value = (wl.fio_extra.get("number_ios") or "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def start_delay(wl: Workload, thread: int, scenario_seed: int, vm_index: int) -> float:
    """Seconds after fio's start that clone ``thread`` (fio's thread number: 1 for the first
    clone of the VM's first job, numbered on through its clones and the jobs after it) starts:
    ``startdelay``, or for a range fio 3.33's draw, ``rand_between(delay_state, low, high)``
    in microseconds from the clone's ``FIO_RAND_START_DELAY`` seed (``init.c``
    fixup_options; seeded as its offsets are, ``sim.workload.fio.job_seed``)."""
    low, high = wl.startdelay_range
    if low == high:
        return low
    randseed = wl.randseed
    if randseed is None and not wl.randrepeat:
        ss = np.random.SeedSequence([scenario_seed, vm_index, thread])
        randseed = int(ss.generate_state(1, np.uint64)[0])
    seed = fio_seeds(randseed, thread, wl.randrepeat)[START_DELAY_SEED]
    unit = float(Taus(seed, wl.random_generator == "tausworthe64").unit(1)[0])
    low_us, high_us = round(low * 1e6), round(high * 1e6)
    return (low_us + int((high_us - low_us + 1) * unit)) / 1e6


def verify_reads(written: list[tuple[int, int]], wl: Workload) -> IoChunk:
    """The reads of fio's verify phase (``verify=...``, ``do_verify=1``; fio's ``verify.c``,
    ``backend.c`` do_verify).

    Once a clone's writes are done, fio reads back every block it logged and checks it. fio
    logs blocks in a list, in write order, when a block cannot be written twice (sequential,
    or random with the random map); otherwise (``norandommap``, lfsr, zipf, pareto, normal,
    zoned) in an rb-tree keyed by offset, where a rewrite replaces the earlier entry: so
    sorted, one read per block. A job cut short by its runtime never reaches this phase
    (measured: fio 3.33, runtime=1s, no read I/O). fio reports the verify reads as reads,
    which the model does too. Verify changes no offset and allocates nothing: the read-back
    hits clusters the writes just allocated.
    """
    pieces = written
    if wl.is_random and not wl.random_map:
        pieces = sorted(dict(written).items())
    arr = np.asarray(pieces, dtype=np.int64).reshape(-1, 2)
    return IoChunk(arr[:, 0].copy(), arr[:, 1].copy(), np.zeros(arr.shape[0], dtype=bool))


def direction_runtime(clones: Sequence[CloneRun], kind: str) -> float:
    """fio's runtime of one direction over a VM's jobs, as the real backend reads it
    (real/workload/fio.py, fiogroups.py): a clone's runtime counts for a direction only if it
    did I/O that way (fio's ``update_runtime``), a stage's is its longest such clone's, and
    stages run in turn add up. A reader that stonewalls after writers reads over its own stage,
    not the VM's whole run: the model divided by the whole run, 77% low on such a file."""
    longest: dict[int, float] = {}
    for c in clones:
        if _count(c, kind) and c.last_done > c.first_issue:
            longest[c.stage] = max(longest.get(c.stage, 0.0), c.last_done - c.first_issue)
    return sum(longest.values()) if longest else math.nan


def record_io(rec: Recorder, entity: str, st: VmStats, wl: Workload,
              t_s: float | None = None) -> None:
    """Host and guest I/O figures of one workload run (``t_s``: when the run started)."""
    rec.add(entity, "host_read_bytes", st.host_read, t_s)
    rec.add(entity, "host_write_bytes", st.host_write, t_s)
    figures = {"read": (st.read_lat, st.read_bytes, st.unsampled_reads),
               "write": (st.write_lat, st.write_bytes, st.unsampled_writes),
               "trim": (st.trim_lat, st.trim_bytes, 0)}
    for kind in _directions(wl.parts):
        lat, nbytes, unsampled = figures[kind]
        arr = np.asarray(lat, dtype=float)
        elapsed = direction_runtime(st.clones, kind)
        if math.isnan(elapsed):  # none done that way: fio's 0 IOPS over the VM's run
            elapsed = st.last_done - st.first_issue if st.last_done > st.first_issue else math.nan
        _record_direction(rec, entity, kind, arr.size + unsampled, nbytes, elapsed, arr, t_s)
    if any(p.ramp_time is not None for p in wl.parts):  # what fio's figures leave out
        rec.add(entity, "ramp_ios", st.ramped, t_s)
    record_jobs(rec, entity.removeprefix("vm:"), st, wl, t_s)


def record_jobs(rec: Recorder, vm: str, st: VmStats, wl: Workload,
                t_s: float | None = None) -> None:
    """The figures of each entry of fio's ``jobs`` array, for a VM whose fio reports several
    (several job sections, or clones without ``group_reporting``: :mod:`cowbench.fiojobs`),
    as entity ``job:<vm>/<k>``, ``k`` the entry's place in the array. An entry's figures are
    those of the clones it sums, as fio sums them: I/Os, bytes and latencies add up; a
    direction's runtime is its longest clone's that did I/O that way (all in one stage), the
    rates over it. A VM of one entry records none: its own figures are that job's."""
    entries = reported_jobs(wl, vm)
    if len(entries) < 2:
        return
    part_of = [p for p, part in enumerate(wl.parts) for _ in range(part.numjobs)]
    ran = {c.index: c for c in st.clones}
    for k, entry in enumerate(entries):
        entity, clones = f"job:{vm}/{k}", [ran[i] for i in entry.runs if i in ran]
        parts = [wl.parts[p] for p in sorted({part_of[i] for i in entry.runs})]
        spans = {c.index: c.last_done - c.first_issue for c in clones
                 if (c.reads or c.writes or c.trims) and c.last_done > c.first_issue}
        for kind in _directions(parts):
            did = [c for c in clones if _count(c, kind)]
            lat = np.concatenate([np.asarray(_lat(c, kind), dtype=float) for c in did]
                                 or [np.empty(0)])
            # a clone that ended inside its ramp reports I/Os without latencies, as fio does
            count = sum(_count(c, kind) for c in did)
            nbytes = sum(_bytes(c, kind) for c in did)
            # none done that way: fio's 0 IOPS over the entry's run
            elapsed = max((spans[c.index] for c in did if c.index in spans),
                          default=max(spans.values(), default=math.nan))
            _record_direction(rec, entity, kind, count, nbytes, elapsed, lat, t_s)


def _directions(parts: Sequence[Workload]) -> list[str]:
    """The directions fio reports for jobs ``parts``: reads (its verify reads count as
    reads), writes, trims."""
    present = {"read": any(p.read_fraction > 0 or p.verifies for p in parts),
               "write": any(p.read_fraction < 1 for p in parts),
               "trim": any("trim" in p.rw for p in parts)}
    return [kind for kind, yes in present.items() if yes]


def _record_direction(rec: Recorder, entity: str, kind: str, ios: int, nbytes: int,
                      elapsed: float, lat: np.ndarray, t_s: float | None) -> None:
    """One direction's figures: I/Os, IOPS and bandwidth over ``elapsed``, and the mean and
    p99 of the latencies sampled (none: a clone that ended in its ramp, as fio)."""
    rec.add(entity, f"{kind}_ios", ios, t_s)
    rec.add(entity, f"{kind}_iops", ios / elapsed, t_s)
    rec.add(entity, f"{kind}_bw_bytes_per_s", nbytes / elapsed, t_s)
    if lat.size:
        rec.add(entity, f"{kind}_lat_mean_s", float(lat.mean()), t_s)
        rec.add(entity, f"{kind}_lat_p99_s", float(np.percentile(lat, 99)), t_s)


def _count(c: CloneRun, kind: str) -> int:
    return c.reads if kind == "read" else c.writes if kind == "write" else c.trims


def _lat(c: CloneRun, kind: str) -> Sequence[float]:
    return c.read_lat if kind == "read" else c.write_lat if kind == "write" else c.trim_lat


def _bytes(c: CloneRun, kind: str) -> int:
    return c.read_bytes if kind == "read" else c.write_bytes if kind == "write" else \
        c.trim_bytes
