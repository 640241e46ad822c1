"""The calibrated I/O model: service demands per guest I/O, a shared host, and the fit.

How a guest I/O is served (one host; every VM on it shares everything below):

- a *client* delay: fio's own per-I/O work between a completion and the next submission,
  not part of the latency fio reports;
- a *path* demand: the CPU and wake-ups of the software path (fio's nbd engine, qemu-nbd, the
  qcow2 driver, the thread pool), served by ``stages`` single-server stages in turn, each
  taking its share (exponentially distributed). The stages are shared by all VMs of the host:
  on a small host the path is CPU-bound, and a tandem of stages reproduces what one shared
  queue cannot, the slow climb of throughput with the I/Os in flight (measured: 4 KiB reads
  at 1/4/8/16/24 in flight ran at 10.4k/20.1k/28.6k/37.5k/38.9k IOPS, from one export or
  several). Only ``cpu_share`` of the path (``hole_cpu_share`` for reads of holes) is work on
  the stages; the rest is waiting (wake-ups, the virtual disk's round trip), a delay that
  does not hold a stage (measured: reads of holes ran at 16k IOPS at iodepth 1 but 218k at 32);
- an allocating write (a first write into a cluster, or into a subcluster with extended_l2)
  then waits ``cow_wait_s`` per copy-on-write read (the read's round trip through the thread
  pool), and takes its image file's lock alone (:class:`FileLock`, ext4's inode lock: a write
  that extends the file goes alone): one at a time per image, it does its allocation work
  through the same stages (``cow_read_s`` per copy-on-write read, ``alloc_s`` per cluster)
  and its transfer. Reads of the image's own data and overwrites share that lock, so they
  wait for the allocating writes queued before them (reads that fall through to the backing
  file do not); with ``host_alloc_s`` (fitted where several exports allocating at once
  saturated), each allocating write also takes a turn of the host's one allocator, overlapping
  its own work, so the host completes at most ``1 / host_alloc_s`` of them per second whatever
  the number of images (``sim.perf.alloc``);
- a *device* demand: the host bytes the I/O moves (``HostIO``: COW copies and metadata
  included) over the storage's bandwidth, on one device. The device serves what waits for it
  either in arrival order (``device_queue: fifo``: a 4 KiB read waits for the 64 KiB
  copies-on-write queued before it) or by sharing its bandwidth equally among the transfers
  in progress (``shared``, processor sharing: the small read passes the large ones). Which
  one is measured on the storage alone (:func:`device_interference`): on this project's 2-core
  virtual machine, a 4 KiB read at iodepth 1 took 54 us alone and 377 us beside 64 KiB reads
  at iodepth 8, whose own latency was 400 us: arrival order (``fio --ioengine=libaio
  --direct=1`` on a 1 GiB file);
- or, with ``transfer_on_path``, the transfer of an I/O that allocates nothing (a read's data,
  an overwrite) is work of the path's first stage, which every VM's path also goes through: the
  busiest stage serves the I/O's path share and then its bytes, so the saturated rate falls
  with the size as ``a + b size`` (measured through qemu-nbd here: 4, 16 and 64 KiB reads at
  iodepth 32 ran at 35.4k, 27.7k and 12.9k IOPS; a device beside the path gave 42k for
  16 KiB), and a VM moving many bytes slows every other VM's path. Allocating writes' transfers
  (copies-on-write, cluster writes) stay on the device. :func:`fit` fits both shapes and keeps
  the one closer to the probes with several I/Os in flight (a 16 KiB read at iodepth 8 tells
  them apart); the bandwidth is then what is left of the large loaded probes' time per I/O
  once the stage's share of the path is served (64 KiB reads: 1.23 GB/s here, as the storage
  alone gave, against 0.90 GB/s for the device beside the path).

The path demand is the raw path for the I/O's size (a table over block sizes, interpolated
in log size), less ``hole_read_s`` for the part of a read the device does not serve (a hole of
a sparse base: the filesystem answers with zeros), plus what the format adds: a qcow2 lookup,
a read that falls through ``d`` layers of a chain (``chain_base_s + a k + b k^2`` with
``k = d - 1``: linear per layer, superlinear in deep chains, FACTS.md 2.3 and b.3, where this
form matches qemu-img bench from 16 to 256 layers within 30%), an L2 cache miss when the
image's L2 tables outgrow the cache (FACTS.md 2.3: a 4 KiB metadata read; uniform access
assumed, so a miss has probability 1 - cache/needed).

Every parameter comes from ``cowbench calibrate``'s probes (:func:`fit`): the raw path and the
bandwidths from raw-file probes, each format cost as the difference between a probe and what
the parameters fitted before it predict for it, the number of stages by mean-value analysis of
the closed loops of the probes with several I/Os in flight.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import simpy

from cowbench.profile import FitRow, PerfParams, Probe
from sim.storage.disk import HostIO

Process = Generator[simpy.Event, Any, None]
Fmt = Literal["raw", "qcow2", "qcow2_ext"]

MIN_PATH_S = 1e-6
#: the path's part of a probe's qd1 time is never taken below this share of it
MIN_PATH_SHARE = 0.1


def interp_log(table: Sequence[tuple[int, float]], size: float) -> float:
    """Piecewise-linear in log(size) through ``table`` (sorted by size), flat past its ends."""
    xs = [math.log(max(s, 1)) for s, _ in table]
    ys = [v for _, v in table]
    return float(np.interp(math.log(max(size, 1.0)), xs, ys))


@dataclass(frozen=True)
class Demand:
    """What one guest I/O asks of the host: path seconds (over the stages), device seconds,
    and for an allocating write, the seconds of allocation work (``alloc_s``, the COW read's
    round and the cluster allocation) that it does holding its image file's lock alone,
    together with its device transfer."""

    path_s: float
    device_s: float
    alloc_s: float = 0.0
    wait_s: float = 0.0
    delay_s: float = 0.0  # the path's waiting part (wake-ups, the virtual disk's round trip)
    #: a transfer to or from the image's own file that allocates nothing: it shares the
    #: file's lock with others like it, and waits for the allocating writes before it
    shares_file: bool = False


class PerfModel:
    """Service demands from a :class:`PerfParams`."""

    def __init__(self, params: PerfParams) -> None:
        self.p = params
        self.client_s = params.client_s

    def bandwidth(self, is_write: bool, op_bytes: float) -> float:
        return interp_log(self.p.write_bw if is_write else self.p.read_bw, op_bytes)

    def raw_path(self, is_write: bool, length: int) -> float:
        return interp_log(self.p.write_path_s if is_write else self.p.read_path_s, length)

    def chain(self, depth: int) -> float:
        """What a read that falls through ``depth`` qcow2 layers adds to an allocated read:
        one layer's ``chain_base_s`` (may be negative: the base answers a read a layer does
        not hold), plus ``a k + b k^2`` for the ``k = depth - 1`` layers above it."""
        if depth <= 0:
            return 0.0
        k = depth - 1
        return self.p.chain_base_s + self.p.chain_a_s * k + self.p.chain_b_s * k * k

    def device(self, read_bytes: int, read_ops: int, write_bytes: int, write_ops: int) -> float:
        t = 0.0
        if read_bytes:
            t += read_bytes / self.bandwidth(False, read_bytes / max(read_ops, 1))
        if write_bytes:
            t += write_bytes / self.bandwidth(True, write_bytes / max(write_ops, 1))
        return t

    def demand(self, *, is_write: bool, length: int, host: HostIO, fmt: Fmt,
               depth: int = 1, l2_miss: bool = False) -> Demand:
        """The demand of one guest I/O whose host-side effect is ``host``."""
        p = self.p
        raw = self.raw_path(is_write, length)
        served = 1.0 if is_write else min(1.0, host.read_bytes / length)
        extra = alloc = wait = 0.0
        if fmt != "raw":
            extra += p.qcow2_write_s if is_write else p.qcow2_read_s
            if is_write:
                if fmt == "qcow2_ext":
                    alloc += p.subcluster_alloc_s * host.sub_allocs
                else:
                    alloc += p.alloc_s * host.allocs
                # a copy-on-write read (or an L2 table load) is a synchronous host read
                # before the data write: a round through the block layer of its own
                alloc += p.cow_read_s * host.read_ops
                wait += p.cow_wait_s * host.read_ops
            elif host.backing_reads:
                extra += self.chain(depth)
            if l2_miss:
                extra += p.l2_miss_s
        # the part of a read the device does not serve (holes) costs the hole path
        dev_path = served * raw + extra
        # a hole's path does not grow or shrink with the size read (measured: reads of a hole
        # at iodepth 1 took 58, 63 and 64 us for 4, 16 and 64 KiB): the smallest size's
        hole_path = (1 - served) * max(p.read_path_s[0][1] - p.hole_read_s, MIN_PATH_S)
        dev_path = max(dev_path, MIN_PATH_S - hole_path, 0.0)
        cpu = p.cpu_share * dev_path + p.hole_cpu_share * hole_path
        delay = dev_path + hole_path - cpu
        dev = self.device(host.read_bytes, host.read_ops, host.write_bytes, host.write_ops)
        own = fmt != "raw" and alloc == 0.0 and (
            is_write or host.read_ops > host.backing_reads)
        return Demand(cpu, dev, alloc, wait, delay, shares_file=own)

    def probe_demand(self, probe: Probe) -> Demand:
        """The demand of one I/O of a calibration probe (what its target makes the host do)."""
        w = probe.rw != "randread"
        bs, c = probe.bs, probe.cluster_size
        host = HostIO(read_bytes=0 if w else bs, read_ops=0 if w else 1,
                      write_bytes=bs if w else 0, write_ops=1 if w else 0)
        if probe.target == "device":  # the storage alone: no qemu-nbd path
            return Demand(0.0, self.device(host.read_bytes, host.read_ops, host.write_bytes,
                                           host.write_ops))
        if probe.target == "raw":
            return self.demand(is_write=w, length=bs, host=host, fmt="raw")
        if probe.target == "hole":
            return self.demand(is_write=w, length=bs, fmt="raw", host=HostIO(read_ops=1))
        if probe.target == "cow":
            n = -(-bs // c)
            cow_read = n * c - bs
            host = HostIO(read_bytes=cow_read, read_ops=int(cow_read > 0),
                          write_bytes=n * c, write_ops=1, allocs=n)
        elif probe.target == "cow_ext":
            n = -(-bs // c)
            host = HostIO(write_bytes=bs, write_ops=1, allocs=n, sub_allocs=n)
        elif probe.target == "chain":
            host.backing_reads = 1
        fmt: Fmt = "qcow2_ext" if probe.target == "cow_ext" else "qcow2"
        return self.demand(is_write=w, length=bs, host=host, fmt=fmt,
                           depth=max(probe.depth, 1), l2_miss=probe.target == "l2miss")


class SharedDevice:
    """The storage's bandwidth, shared equally by the transfers in progress (processor
    sharing): a 4 KiB read next to 64 KiB copies-on-write is slowed, not queued behind them,
    as on a device with many requests in flight."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.jobs: dict[simpy.Event, float] = {}  # remaining seconds at the full rate
        self.last = env.now
        self.version = 0

    def _advance(self) -> None:
        if self.jobs:
            dt = (self.env.now - self.last) / len(self.jobs)
            for ev in self.jobs:
                self.jobs[ev] -= dt
        self.last = self.env.now

    def _schedule(self) -> None:
        self.version += 1
        if not self.jobs:
            return
        version = self.version
        t = self.env.timeout(max(min(self.jobs.values()), 0.0) * len(self.jobs))
        t.callbacks.append(lambda _ev: self._fire(version))

    def _fire(self, version: int) -> None:
        if version != self.version:  # an arrival or a departure rescheduled since
            return
        self._advance()
        eps = 1e-12
        for ev in [ev for ev, left in self.jobs.items() if left <= eps]:
            del self.jobs[ev]
            ev.succeed()
        self._schedule()

    def transfer(self, seconds: float) -> simpy.Event:
        self._advance()
        ev = self.env.event()
        self.jobs[ev] = seconds
        self._schedule()
        return ev


class FileLock:
    """An image file's lock as the host filesystem takes it around O_DIRECT I/O (ext4's inode
    lock): allocating writes, which extend the file, take it alone and keep it until their
    data is on the device; reads of the file's own data and overwrites share it. Waiters are
    served in arrival order, so a read that comes after an allocating write waits for it.
    Measured here (ext4 on the virtual disk, fio 4 KiB O_DIRECT reads at iodepth 1 of a
    512 MiB file): 88 us while four `dd oflag=direct,append` extended another file, 648 us
    while they extended the same one."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.readers = 0
        self.writer = False
        self.waiting: deque[tuple[bool, simpy.Event]] = deque()

    def acquire(self, alone: bool) -> simpy.Event:
        ev = self.env.event()
        self.waiting.append((alone, ev))
        self._grant()
        return ev

    def release(self, alone: bool) -> None:
        if alone:
            self.writer = False
        else:
            self.readers -= 1
        self._grant()

    def _grant(self) -> None:
        while self.waiting and not self.writer:
            alone, ev = self.waiting[0]
            if alone and self.readers:
                return
            self.waiting.popleft()
            if alone:
                self.writer = True
            else:
                self.readers += 1
            ev.succeed()


class Host:
    """One host's shared stages and device, in a SimPy environment; ``lock(key)`` is the
    file lock of one image (allocating writes to one image run one at a time: measured,
    4 KiB first writes reached 5.3k IOPS on one export at iodepth 8 or 32 and 8.3k on four)."""

    def __init__(self, env: simpy.Environment, model: PerfModel, rng: np.random.Generator) -> None:
        self.env = env
        self.model = model
        self.rng = rng
        m = model.p.stages
        full = int(m)
        self.shares = [1.0 / m] * full + ([(m - full) / m] if m - full > 1e-9 else [])
        self.stages = [simpy.Resource(env, capacity=1) for _ in self.shares]
        self.disk = SharedDevice(env)
        self.fifo = model.p.device_queue == "fifo"
        self.on_path = model.p.transfer_on_path
        self.queue = simpy.Resource(env, capacity=1)  # the device in arrival order
        # the storage's allocation of copies-on-write and cluster writes, one for the host
        self.allocator = (simpy.Resource(env, capacity=1)
                          if model.p.host_alloc_s is not None else None)
        self._locks: dict[int, FileLock] = {}

    def lock(self, image: object) -> FileLock:
        key = id(image)  # images are mutable dataclasses: by identity
        if key not in self._locks:
            self._locks[key] = FileLock(self.env)
        return self._locks[key]

    def client(self) -> simpy.Timeout:
        return self.env.timeout(self.model.client_s)

    def _path(self, seconds: float) -> Process:
        exp = self.rng.exponential
        for stage, share in zip(self.stages, self.shares, strict=True):
            with stage.request() as req:
                yield req
                yield self.env.timeout(exp(seconds * share))

    def transfer(self, seconds: float, alloc: bool = False) -> Process:
        """One transfer of ``seconds`` at the device's full rate, as the host serves it: with
        ``transfer_on_path``, the transfer of an I/O that allocates nothing is work of the
        path's first stage (a whole one); the rest is served by the device."""
        if self.on_path and not alloc:
            with self.stages[0].request() as req:
                yield req
                yield self.env.timeout(seconds)
        elif self.fifo:
            with self.queue.request() as req:
                yield req
                yield self.env.timeout(seconds)
        else:
            yield self.disk.transfer(seconds)

    def _allocation(self, d: Demand) -> Process:
        """An allocating write's own round through the path, then its copy."""
        yield from self._path(d.alloc_s)
        if d.device_s > 0:
            yield from self.transfer(d.device_s, alloc=True)

    def _allocator_turn(self) -> Process:
        """The host storage's allocation of one write: ``host_alloc_s``, one at a time for
        every image of the host (``sim.perf.alloc``)."""
        assert self.allocator is not None and self.model.p.host_alloc_s is not None
        with self.allocator.request() as req:
            yield req
            yield self.env.timeout(self.model.p.host_alloc_s)

    def serve(self, d: Demand, image: object = None) -> Process:
        yield from self._path(d.path_s)
        if d.delay_s > 0:
            yield self.env.timeout(self.rng.exponential(d.delay_s))
        if d.wait_s > 0:  # the copy-on-write read's round trip: waiting, not working
            yield self.env.timeout(self.rng.exponential(d.wait_s))
        if d.alloc_s > 0:
            lock = self.lock(image)
            yield lock.acquire(alone=True)
            if self.allocator is None:
                yield from self._allocation(d)
            else:  # the write's own work and its turn of the host's allocator, both
                yield self.env.all_of([self.env.process(self._allocation(d)),
                                       self.env.process(self._allocator_turn())])
            lock.release(alone=True)
        elif d.shares_file and d.device_s > 0:
            lock = self.lock(image)
            yield lock.acquire(alone=False)
            yield from self.transfer(d.device_s)
            lock.release(alone=False)
        elif d.device_s > 0:
            yield from self.transfer(d.device_s)


# -- replaying probes -------------------------------------------------------------------------

def replay(params: PerfParams, probe: Probe, *, ios: int = 6000,
           seed: int = 0) -> tuple[float, float]:
    """The model's (IOPS, mean latency) for ``probe``: its exports x iodepth closed loops."""
    env = simpy.Environment()
    model = PerfModel(params)
    host = Host(env, model, np.random.default_rng(seed))
    demand = model.probe_demand(probe)
    warm = ios // 10
    lat: list[float] = []
    done = [0]
    t0 = [0.0]

    def slot(export: object) -> Process:
        while done[0] < ios + warm:
            yield host.client()
            start = env.now
            yield from host.serve(demand, export)
            done[0] += 1
            if done[0] == warm:
                t0[0] = env.now
            elif done[0] > warm:
                lat.append(env.now - start)

    procs = [env.process(slot(e)) for e in range(probe.exports) for _ in range(probe.iodepth)]
    if probe.beside is not None:  # a job beside the probe's own, on the same storage
        b = probe.beside
        other = model.probe_demand(probe.model_copy(update={
            "rw": b.rw, "bs": b.bs, "iodepth": b.iodepth, "beside": None}))

        def background() -> Process:
            while done[0] < ios + warm:
                yield host.client()
                yield from host.serve(other, "beside")

        for _ in range(b.iodepth):
            env.process(background())
    env.run(simpy.AllOf(env, procs))
    elapsed = env.now - t0[0]
    return len(lat) / elapsed, float(np.mean(lat))


def fit_rows(params: PerfParams, probes: Sequence[Probe], ios: int = 3000) -> list[FitRow]:
    """The model's replay of each probe beside what was measured (``ios`` simulated I/Os
    each: 3000 replay the short matrix in about 5 s on this project's machine)."""
    rows = []
    for probe in probes:
        if probe.target == "device":  # the storage alone: it orders the device, see fit
            continue
        iops, lat = replay(params, probe, ios=ios)
        for metric, measured, model in (("iops", probe.iops, iops),
                                        ("lat_mean_s", probe.lat_mean_s, lat)):
            if measured > 0:
                rows.append(FitRow(probe=probe.name, metric=metric,
                                   measured=measured, model=model,
                                   rel_error=(model - measured) / measured))
    return rows


# -- fitting ----------------------------------------------------------------------------------

def mva_iops(params: PerfParams, probe: Probe) -> float:
    """Exact mean-value analysis of the probe's closed loop (one class, N in flight): the
    stages and the device as queues, the client as a delay. Used to fit ``stages``."""
    model = PerfModel(params)
    d = model.probe_demand(probe)
    m = params.stages
    full = int(m)
    demands = [d.path_s / m] * full
    if m - full > 1e-9:
        demands.append(d.path_s * (m - full) / m)
    if d.device_s > 0:
        if params.transfer_on_path and d.alloc_s == 0:  # work of the first (whole) stage
            demands[0] += d.device_s
        else:
            demands.append(d.device_s)
    if d.alloc_s > 0:
        demands.append(d.alloc_s)
    q = [0.0] * len(demands)
    x = 0.0
    for n in range(1, probe.exports * probe.iodepth + 1):
        r = [s * (1 + qi) for s, qi in zip(demands, q, strict=True)]
        x = n / (model.client_s + d.delay_s + d.wait_s + sum(r))
        q = [x * ri for ri in r]
    return x


class FitError(ValueError):
    """The probes do not hold what the fit needs."""


def _one(probes: Sequence[Probe], **want: Any) -> Probe:
    for p in probes:
        if all(getattr(p, k) == v for k, v in want.items()):
            return p
    raise FitError(f"no probe with {want}")


def _time(p: Probe) -> float:
    """Seconds per I/O of one export at the probe's depth: the whole loop at qd1."""
    if p.iops <= 0:
        raise FitError(f"probe {p.name} completed no I/O")
    return p.exports * p.iodepth / p.iops


def fit(probes: Sequence[Probe]) -> PerfParams:
    """Parameters from the probe matrix (see the module docstring for what comes from where).

    Two shapes of host are fitted, and the one whose mean-value analysis is closer to the
    probes with several I/Os in flight (of every block size) is kept: the device beside the
    path (its bandwidth is the large loaded probes' own), or the transfer as work of the
    path's busiest stage (``transfer_on_path``; its bandwidth is what is left of the large
    loaded probes' time per I/O once that stage's share of the path is served)."""
    beside = _fit_given(probes, _bw_table(probes, "randread"), _bw_table(probes, "randwrite"),
                        on_path=False)
    on_path = beside
    for _ in range(ON_PATH_ROUNDS):
        on_path = _fit_given(probes, _bw_solved(on_path, probes, "randread"),
                             _bw_solved(on_path, probes, "randwrite"), on_path=True)
    best = min((beside, on_path), key=lambda p: _loaded_error(p, probes))
    interference = device_interference(probes)
    if interference is not None:
        best = best.model_copy(update={
            "device_interference": round(interference, 3),
            "device_queue": "fifo" if interference >= 0.5 else "shared"})
    return best  # the host's allocation rate is fitted after: sim.perf.alloc


#: rounds of the fixed point between the bandwidths and the path (the second changed the
#: bandwidth by 4% and the third by nothing on this project's probes)
ON_PATH_ROUNDS = 2


def _loaded(probes: Sequence[Probe]) -> list[Probe]:
    return [p for p in probes if p.target == "raw" and p.exports == 1 and p.iodepth > 1
            and p.iops > 0]


def _loaded_error(params: PerfParams, probes: Sequence[Probe]) -> float:
    """Squared log error of the mean-value analysis over the raw probes with several I/Os
    in flight: what chooses between the two shapes of host."""
    return sum(math.log(mva_iops(params, p) / p.iops) ** 2 for p in _loaded(probes))


def _bw_table(probes: Sequence[Probe], rw: str) -> list[tuple[int, float]]:
    """The device's bandwidth beside the path: the best the raw probes of 64 KiB or more did."""
    best: dict[int, float] = {}
    for p in probes:
        if p.target == "raw" and p.rw == rw and p.bs >= 65536 and p.exports == 1:
            best[p.bs] = max(best.get(p.bs, 0.0), p.bw_bytes_per_s)
    if not best:
        raise FitError(f"no raw {rw} probe of 64 KiB or more")
    return sorted(best.items())


def _bw_solved(params: PerfParams, probes: Sequence[Probe],
               rw: str) -> list[tuple[int, float]]:
    """The bandwidth at each large loaded probe's size that makes the mean-value analysis
    of a host with the transfer on the path (``params`` otherwise) give that probe's IOPS;
    the path shrinks by what the transfer takes of the probe's qd1 time (bisection)."""
    qd1 = {p.bs: p for p in probes if p.target == "raw" and p.rw == rw and p.iodepth == 1
           and p.exports == 1}
    bw_key, path_key = (("read_bw", "read_path_s") if rw == "randread" else
                        ("write_bw", "write_path_s"))
    out = []
    for size, bw in _bw_table(probes, rw):
        big = max((p for p in _loaded(probes) if p.rw == rw and p.bs == size),
                  key=lambda p: p.iodepth, default=None)
        if big is None or size not in qd1:
            out.append((size, bw))
            continue
        t1 = _time(qd1[size]) - params.client_s
        lo, hi = size / t1, size / (MIN_PATH_SHARE * t1) * 100  # transfer: all of t1 .. ~none
        for _ in range(40):
            mid = math.sqrt(lo * hi)
            table = [(s, mid if s == size else b) for s, b in getattr(params, bw_key)]
            path = [(s, _path_left(t1, s, mid) if s == size else v)
                    for s, v in getattr(params, path_key)]
            trial = params.model_copy(update={"transfer_on_path": True, bw_key: table,
                                              path_key: path})
            if mva_iops(trial, big) < big.iops:  # too slow: more bandwidth
                lo = mid
            else:
                hi = mid
        out.append((size, math.sqrt(lo * hi)))
    return out


def _path_left(t: float, size: int, bw: float) -> float:
    """A raw probe's path at qd1: its time ``t`` (client excluded) less its transfer, never
    below ``MIN_PATH_SHARE`` of it."""
    return max(t - size / bw, MIN_PATH_SHARE * t)


def _fit_given(probes: Sequence[Probe], read_bw: list[tuple[int, float]],
               write_bw: list[tuple[int, float]], *, on_path: bool) -> PerfParams:
    """Every other parameter, given the device's bandwidths and the host's shape."""
    qd1 = [p for p in probes if p.iodepth == 1 and p.exports == 1]
    base_r = _one(qd1, target="raw", rw="randread", bs=4096)
    base_w = _one(qd1, target="raw", rw="randwrite", bs=4096)
    # the client: what fio spends per I/O outside the latency it reports (qd1)
    client = max(0.0, min(_time(base_r) - base_r.lat_mean_s, _time(base_w) - base_w.lat_mean_s))

    def path_table(rw: str, bw: list[tuple[int, float]]) -> list[tuple[int, float]]:
        out = []
        for p in sorted((p for p in qd1 if p.target == "raw" and p.rw == rw),
                        key=lambda p: p.bs):
            out.append((p.bs, _path_left(_time(p) - client, p.bs, interp_log(bw, p.bs))))
        return out

    read_path, write_path = path_table("randread", read_bw), path_table("randwrite", write_bw)
    draft = PerfParams(stages=1.0, client_s=client, read_bw=read_bw, write_bw=write_bw,
                       read_path_s=read_path, write_path_s=write_path, qcow2_read_s=0.0,
                       qcow2_write_s=0.0, alloc_s=0.0, cow_read_s=0.0, subcluster_alloc_s=0.0,
                       chain_base_s=0.0, chain_a_s=0.0, chain_b_s=0.0, l2_miss_s=0.0,
                       transfer_on_path=on_path)
    model = PerfModel(draft)

    def extra(p: Probe) -> float:
        """What ``p`` took per I/O beyond what the draft predicts for it at qd1."""
        d = model.probe_demand(p)
        return _time(p) - client - d.path_s - d.delay_s - d.device_s - d.alloc_s - d.wait_s

    hole = [p for p in qd1 if p.target == "hole"]
    if hole:
        draft = draft.model_copy(update={"hole_read_s": max(0.0, -extra(hole[0]))})
        model = PerfModel(draft)
    q_r = _one(qd1, target="qcow2", rw="randread", bs=4096)
    q_w = _one(qd1, target="qcow2", rw="randwrite", bs=4096)
    qcow2_read, qcow2_write = extra(q_r), extra(q_w)
    draft = draft.model_copy(update={"qcow2_read_s": qcow2_read, "qcow2_write_s": qcow2_write})
    model = PerfModel(draft)
    # a whole-cluster first write allocates without copying; a 4 KiB one also copies the rest
    # of its cluster from the backing file (one synchronous read)
    whole = [p for p in qd1 if p.target == "cow" and p.bs >= p.cluster_size]
    alloc = max(0.0, extra(whole[0])) if whole else 0.0
    draft = draft.model_copy(update={"alloc_s": alloc})
    model = PerfModel(draft)
    cow_probe = _one(qd1, target="cow", bs=4096)
    cow_total = max(0.0, extra(cow_probe))
    # of the copy-on-write read's round, the part done holding the image file's lock:
    # with many first writes in flight on one image the lock is the bottleneck, so a lock
    # hold lasts 1 / IOPS; the rest of the round is waiting (thread hand-offs, the read itself)
    loaded = [p for p in probes if p.target == "cow" and p.bs == 4096 and p.exports == 1
              and p.iodepth > 1]
    cow_read = cow_total
    if loaded:
        p8 = max(loaded, key=lambda p: p.iodepth)
        d = model.probe_demand(p8)
        cow_read = min(cow_total, max(0.0, 1.0 / p8.iops - d.device_s - d.alloc_s))
    ext = _one(qd1, target="cow_ext", bs=4096)
    l2 = _one(qd1, target="l2miss", bs=4096)
    sub_alloc, l2_miss = max(0.0, extra(ext)), max(0.0, extra(l2))
    # chain_base_s = 0 and chain_a_s = 0 in the draft: extra() is the whole chain cost
    chain_pts = sorted((p.depth, extra(p)) for p in qd1 if p.target == "chain")
    if not chain_pts or chain_pts[0][0] != 1:
        raise FitError("no chain probe of depth 1")
    chain_base = chain_pts[0][1]
    chain_a, chain_b = _fit_chain([(d - 1, t - chain_base) for d, t in chain_pts[1:]])
    params = draft.model_copy(update={"cow_read_s": cow_read,
                                      "cow_wait_s": cow_total - cow_read,
                                      "subcluster_alloc_s": sub_alloc,
                                      "l2_miss_s": l2_miss, "chain_base_s": chain_base,
                                      "chain_a_s": chain_a, "chain_b_s": chain_b})
    return _fit_stages(params, probes)


def device_interference(probes: Sequence[Probe]) -> float | None:
    """How much of a large job's queue a small read waited for, from the ``device`` probes
    (the storage alone): ``(beside - alone) / (large - alone)`` of the mean latencies of a
    small read alone, the same read beside the large job, and the large job alone, clipped to
    [0, 1] (the mean over the probes beside a large job); None without those probes.

    In arrival order the small read waits for the whole queue, as long as a large request
    does: 1. Sharing the bandwidth, it waits only for its own share of it: for 4 KiB beside
    eight 64 KiB requests, about (8 + 1) x 4 / (8 x 64) of the large job's time, well under
    one half. So ``fit`` takes arrival order from one half up."""
    dev = [p for p in probes if p.target == "device"]

    def alone(rw: str, bs: int, iodepth: int) -> Probe:
        for p in dev:
            if p.beside is None and (p.rw, p.bs, p.iodepth) == (rw, bs, iodepth):
                return p
        raise FitError(f"no device probe of {rw} {bs} bytes at iodepth {iodepth} alone")

    shares = []
    for m in dev:
        if m.beside is None:
            continue
        small = alone(m.rw, m.bs, m.iodepth)
        large = alone(m.beside.rw, m.beside.bs, m.beside.iodepth)
        span = large.lat_mean_s - small.lat_mean_s
        shares.append(0.0 if span <= 0 else
                      min(1.0, max(0.0, (m.lat_mean_s - small.lat_mean_s) / span)))
    return float(np.mean(shares)) if shares else None


def _fit_chain(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Non-negative least squares of ``a k + b k^2`` through the time ``k`` more layers add
    to a read: the unconstrained fit if both are positive, else the better one-term fit."""
    pts = [(float(k), t) for k, t in points if k > 0]
    if not pts:
        raise FitError("no chain probe deeper than 1")
    k = np.array([x for x, _ in pts])
    t = np.array([y for _, y in pts])
    cands: list[tuple[float, float]] = []
    if len(pts) >= 2:
        sol = np.linalg.lstsq(np.column_stack([k, k * k]), t, rcond=None)[0]
        if sol[0] >= 0 and sol[1] >= 0:
            cands.append((float(sol[0]), float(sol[1])))
    cands.append((max(0.0, float(k @ t / (k @ k))), 0.0))
    q = k * k
    cands.append((0.0, max(0.0, float(q @ t / (q @ q)))))
    return min(cands, key=lambda ab: float(((ab[0] * k + ab[1] * q - t) ** 2).sum()))


def _fit_stages(params: PerfParams, probes: Sequence[Probe]) -> PerfParams:
    """The number of stages and the path's work share that best match the probes with several
    I/Os in flight (squared log error of the mean-value analysis; grids of 0.1 and 0.05), then
    the work share of hole reads from the loaded hole probes."""
    loaded = [p for p in probes if p.exports * p.iodepth > 1 and p.iops > 0
              and p.target in ("raw", "qcow2") and p.bs <= 16384]
    if not loaded:
        raise FitError("no probe with more than one I/O in flight")

    def err(trial: PerfParams, ps: Sequence[Probe]) -> float:
        return sum(math.log(mva_iops(trial, p) / p.iops) ** 2 for p in ps)

    best, best_p = math.inf, params
    for share in np.arange(0.2, 1.0001, 0.05):
        for m in np.arange(1.0, 8.0001, 0.1):
            trial = params.model_copy(update={"stages": round(float(m), 2),
                                              "cpu_share": round(float(share), 2)})
            e = err(trial, loaded)
            if e < best:
                best, best_p = e, trial
    holes = [p for p in probes if p.exports * p.iodepth > 1 and p.target == "hole"]
    if holes:
        best = math.inf
        for share in np.arange(0.02, 1.0001, 0.02):
            trial = best_p.model_copy(update={"hole_cpu_share": round(float(share), 2)})
            e = err(trial, holes)
            if e < best:
                best, hole_best = e, trial
        best_p = hole_best
    return best_p
