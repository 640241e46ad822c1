"""The model: ``simulate(scenario, seed) -> records`` (exact mode).

Hosts hold an image cache (``_base``, raw bases as Nova's ``force_raw_images`` makes them) and
one disk per VM made by the scenario's strategy. Each VM runs its fio job: every clone of the
job keeps ``iodepth`` I/Os in flight (a closed loop), each I/O is applied to the VM's exact
allocation map (``sim.storage.disk``), and the host I/O it causes is served by the host's shared
``Device`` (``sim.perf.device``). A fresh ``simpy.Environment`` per call, no module state, no files:
the caller writes results (STYLE.md point 4).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

from cowbench.iolog import Trace
from cowbench.records import Recorder
from cowbench.scenario import VM, Image, Scenario, Workload
from sim.perf.device import AnyDevice, make_device
from sim.storage.disk import BaseData, HostIO, Qcow2Image, RawImage
from sim.storage.fs import FS_BLOCK
from sim.storage.strategies import (
    Disk,
    configure_io,
    extra_figures,
    guest_write,
    resized_copies,
    root_disk,
    trim,
)
from sim.workload.fio import IoChunk, io_stream, job_seed, trace_chunks

DISK_INFO_BYTES = FS_BLOCK  # instances/<uuid>/disk.info: a tiny JSON file, one block
Process = Generator[simpy.Event, Any, None]


@dataclass
class VmStats:
    """What one VM's jobs did, collected while the model runs."""

    read_lat: list[float] = field(default_factory=list)
    write_lat: list[float] = field(default_factory=list)
    read_bytes: int = 0
    write_bytes: int = 0
    host_read: int = 0
    host_write: int = 0
    first_issue: float = math.inf
    last_done: float = 0.0

    def add_host(self, io: HostIO) -> None:
        self.host_read += io.read_bytes
        self.host_write += io.write_bytes


def base_data(image: Image) -> BaseData:
    assert image.virtual_size is not None
    return BaseData(image.virtual_size, image.data_extents())


def cache_file(image: Image) -> RawImage:
    """The raw base in ``_base``: ``qemu-img convert -O raw`` keeps zero runs as holes."""
    assert image.virtual_size is not None
    return RawImage(image.virtual_size, base_data(image))


def glance_file(image: Image) -> Qcow2Image | RawImage:
    """The image as uploaded (synthetic images are written with qemu-io, extent by extent)."""
    assert image.virtual_size is not None
    if image.format == "raw":
        return RawImage(image.virtual_size, base_data(image))
    img = Qcow2Image(image.virtual_size)
    for off, length in image.data_extents():
        img.write(off, length)
    return img


def make_disk(scenario: Scenario, vm: VM) -> Disk:
    image = scenario.image(vm.image)
    size = scenario.root_size(vm)
    return root_disk(size, scenario.strategy_of(vm), base_data(image))


class _Job:
    """One fio clone's stream, shared by its ``iodepth`` in-flight slots.

    With ``record_writes`` it keeps every write it hands out, for fio's verify phase.
    """

    def __init__(self, chunks: Iterator[IoChunk], record_writes: bool = False) -> None:
        self._chunks = chunks
        self._ios: Iterator[tuple[int, int, bool, bool]] = iter(())
        self.written: list[tuple[int, int]] | None = [] if record_writes else None
        self.exhausted = False

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


def _slot(env: simpy.Environment, job: _Job, disk: Disk, device: AnyDevice,
          stats: VmStats, deadline: float, pacer: _Pacer | None) -> Process:
    while env.now < deadline:
        io = job.next()
        if io is None:
            return
        if device.client_s:  # fio's own work between a completion and the next submission
            yield env.timeout(device.client_s)
        if pacer is not None:
            wait = pacer.reserve(env.now)
            if wait > 0:
                yield env.timeout(wait)
                if env.now >= deadline:
                    return
        offset, length, is_write, is_trim = io
        issued = env.now
        stats.first_issue = min(stats.first_issue, issued)
        if is_trim:  # a discard: space only (fio's trim figures are not recorded)
            stats.add_host(trim(disk, offset, length))
            continue
        host = guest_write(disk, offset, length) if is_write else disk.read(offset, length)
        yield from device.serve_io(disk, is_write, length, host)
        stats.add_host(host)
        done = env.now
        if is_write:
            stats.write_lat.append(done - issued)
            stats.write_bytes += length
        else:
            stats.read_lat.append(done - issued)
            stats.read_bytes += length
        stats.last_done = max(stats.last_done, done)


class _Pacer:
    """fio's rate_iops for one job: issues no faster than one per ``1/rate`` seconds."""

    def __init__(self, rate: int) -> None:
        self.gap = 1.0 / rate
        self.next_t = 0.0

    def reserve(self, now: float) -> float:
        t = max(now, self.next_t)
        self.next_t = t + self.gap
        return t - now


def _run_vm(env: simpy.Environment, scenario: Scenario, vm: VM, vm_index: int,
            disk: Disk, device: AnyDevice, stats: VmStats, wl: Workload,
            traces: Sequence[Trace] | None = None, size: int | None = None) -> Process:
    size = scenario.root_size(vm) if size is None else size
    limit = min(x for x in (wl.runtime, scenario.duration, math.inf) if x is not None)
    deadline = env.now + limit
    configure_io(disk, scenario.strategy_of(vm), wl)
    streams = ([trace_chunks(t) for t in traces] if traces is not None else
               [io_stream(wl, size, job_seed(wl, clone, scenario.seed, vm_index))
                for clone in range(wl.numjobs)])
    clones = []
    for stream in streams:
        job = _Job(stream, record_writes=wl.verifies)
        pacer = _Pacer(wl.rate_iops) if wl.rate_iops else None
        clones.append(env.process(_clone(env, wl, job, disk, device, stats, deadline, pacer)))
    yield simpy.AllOf(env, clones)
    stats.add_host(disk.flush())


def _clone(env: simpy.Environment, wl: Workload, job: _Job, disk: Disk,
           device: AnyDevice, stats: VmStats, deadline: float, pacer: _Pacer | None) -> Process:
    """One fio clone: ``iodepth`` slots, then fio's verify phase if the job asks for it."""
    slots = [env.process(_slot(env, job, disk, device, stats, deadline, pacer))
             for _ in range(wl.iodepth)]
    yield simpy.AllOf(env, slots)
    if job.written is not None and job.exhausted and env.now < deadline:
        check = _Job(iter([verify_reads(job.written, wl)]))
        slots = [env.process(_slot(env, check, disk, device, stats, deadline, pacer))
                 for _ in range(wl.iodepth)]
        yield simpy.AllOf(env, slots)


def verify_reads(written: list[tuple[int, int]], wl: Workload) -> IoChunk:
    """The reads of fio's verify phase (``verify=...``, ``do_verify=1``; fio's ``verify.c``,
    ``backend.c`` do_verify).

    Once a clone's writes are done, fio reads back every block it logged and checks it. fio
    logs blocks in a list, in write order, when a block cannot be written twice (sequential,
    or random with the random map); otherwise in an rb-tree keyed by offset, where a rewrite
    replaces the earlier entry: so sorted, one read per block. A job cut short by its runtime
    never reaches this phase (measured: fio 3.33, runtime=1s, no read I/O). fio reports the
    verify reads as reads, which the model does too. Verify changes no offset and allocates
    nothing: the read-back hits clusters the writes just allocated.
    """
    pieces = written
    if wl.is_random and wl.norandommap:
        pieces = sorted(dict(written).items())
    arr = np.asarray(pieces, dtype=np.int64).reshape(-1, 2)
    return IoChunk(arr[:, 0].copy(), arr[:, 1].copy(), np.zeros(arr.shape[0], dtype=bool))


def simulate(scenario: Scenario, seed: int | None = None,
             traces: Mapping[str, Sequence[Trace]] | None = None) -> pd.DataFrame:
    """Run the model once; return its records (backend ``sim``).

    ``traces`` gives, per VM name, the exact I/O stream of each fio clone (``offsets: fio`` or
    ``iolog``, or a finished real run's record); other VMs generate their offsets."""
    seed = scenario.seed if seed is None else seed
    if seed != scenario.seed:
        scenario = scenario.model_copy(update={"seed": seed})
    if scenario.fleet is not None:
        from sim.fleet.fleet import simulate_fleet  # fleet scenarios: lifecycle + fluid/exact disks

        return simulate_fleet(scenario, seed)
    rec = Recorder("sim", seed)
    if scenario.timeline is not None:
        from .timeline import simulate_timeline

        _record_images(scenario, rec)
        simulate_timeline(scenario, rec)
        return rec.frame()
    env = simpy.Environment()
    devices = {h.name: make_device(env, scenario.device, seed, i)
               for i, h in enumerate(scenario.hosts)}
    disks: dict[str, Disk] = {}
    stats: dict[str, VmStats] = {}
    for i, vm in enumerate(scenario.vms):
        disks[vm.name] = make_disk(scenario, vm)
        stats[vm.name] = VmStats()
        wl = scenario.workload_of(vm)
        if wl is not None:
            env.process(_run_vm(env, scenario, vm, i, disks[vm.name],
                                devices[scenario.host_of(vm).name], stats[vm.name], wl,
                                (traces or {}).get(vm.name)))
        else:
            stats[vm.name].add_host(disks[vm.name].flush())
    env.run()
    _record(scenario, rec, disks, stats)
    return rec.frame()


def _record_images(scenario: Scenario, rec: Recorder) -> None:
    used = {vm.image for vm in scenario.vms}
    for image in scenario.images:
        if image.name in used and image.synthetic is not None:
            g = glance_file(image)
            rec.add(f"image:{image.name}", "allocated_bytes", g.allocated_bytes)
            rec.add(f"image:{image.name}", "file_bytes", g.file_bytes)


def _record(scenario: Scenario, rec: Recorder, disks: dict[str, Disk],
            stats: dict[str, VmStats]) -> None:
    _record_images(scenario, rec)
    for host in scenario.hosts:
        # an RBD clone lives in Ceph, not on the host (and needs no local _base)
        vms = [vm for vm in scenario.vms
               if scenario.host_of(vm).name == host.name and not scenario.model_only(vm)]
        bases = {vm.image for vm in vms}
        caches = [cache_file(scenario.image(n)) for n in sorted(bases)]
        caches += resized_copies(scenario, vms, {n: base_data(scenario.image(n)) for n in bases})
        cache_alloc = sum(c.allocated_bytes for c in caches)
        rec.add(f"cache:{host.name}", "allocated_bytes", cache_alloc)
        rec.add(f"cache:{host.name}", "file_bytes", sum(c.file_bytes for c in caches))
        disk_alloc = sum(disks[vm.name].allocated_bytes for vm in vms)
        rec.add(f"host:{host.name}", "allocated_bytes",
                cache_alloc + disk_alloc + DISK_INFO_BYTES * len(vms))
    for vm in scenario.vms:
        _record_vm(rec, f"vm:{vm.name}", disks[vm.name], stats[vm.name],
                   scenario.workload_of(vm))
        if scenario.model_only(vm):
            rec.add(f"vm:{vm.name}", "model_only", 1.0)
        for metric, value in extra_figures(disks[vm.name]).items():
            rec.add(f"vm:{vm.name}", metric, value)


def _record_vm(rec: Recorder, entity: str, disk: Disk, st: VmStats,
               wl: Workload | None) -> None:
    rec.add(entity, "allocated_bytes", disk.allocated_bytes)
    rec.add(entity, "file_bytes", disk.file_bytes)
    rec.add(entity, "data_clusters", disk.data_clusters)
    if wl is None:
        return
    record_io(rec, entity, st, wl)


def record_io(rec: Recorder, entity: str, st: VmStats, wl: Workload,
              t_s: float | None = None) -> None:
    """Host and guest I/O figures of one workload run (``t_s``: when the run started)."""
    rec.add(entity, "host_read_bytes", st.host_read, t_s)
    rec.add(entity, "host_write_bytes", st.host_write, t_s)
    elapsed = st.last_done - st.first_issue if st.last_done > st.first_issue else math.nan
    reads = wl.read_fraction > 0 or wl.verifies  # fio counts its verify reads as reads
    for kind, lat, nbytes, present in (("read", st.read_lat, st.read_bytes, reads),
                                       ("write", st.write_lat, st.write_bytes,
                                        wl.read_fraction < 1)):
        if not present:
            continue
        arr = np.asarray(lat)
        rec.add(entity, f"{kind}_ios", arr.size, t_s)
        rec.add(entity, f"{kind}_iops", arr.size / elapsed, t_s)
        rec.add(entity, f"{kind}_bw_bytes_per_s", nbytes / elapsed, t_s)
        if arr.size:
            rec.add(entity, f"{kind}_lat_mean_s", float(arr.mean()), t_s)
            rec.add(entity, f"{kind}_lat_p99_s", float(np.percentile(arr, 99)), t_s)
